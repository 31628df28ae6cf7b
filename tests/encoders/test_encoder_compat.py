"""The torchvision guard: timm imports and runs; unrelated import errors are not swallowed."""

import pytest
import torch

from raypath.encoders import compat


def test_timm_imports_and_a_vit_runs_after_the_guard():
    timm = compat.import_timm()
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 192)


def test_guard_is_idempotent():
    first = compat.ensure_torchvision()
    assert compat.ensure_torchvision() is first


def test_only_the_missing_op_error_is_patched(monkeypatch):
    def broken(name):
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(compat.importlib, "import_module", broken)
    with pytest.raises(RuntimeError, match="CUDA driver"):
        compat.ensure_torchvision.__wrapped__()


def test_missing_op_error_is_recognised():
    assert compat._is_missing_op_error(RuntimeError("operator torchvision::nms does not exist"))
    assert not compat._is_missing_op_error(RuntimeError("operator aten::nms does not exist"))
    assert not compat._is_missing_op_error(ImportError("operator torchvision::nms does not exist"))
