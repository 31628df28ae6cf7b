"""Weight loading: the real-FM code path, refused pickles, hub failures, hashes."""

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from raypath.encoders import UnsafeCheckpointError, WeightsError, build_encoder, get_card, list_cards, loading
from raypath.encoders.formats import from_hf_dinov2

TINY = [card.name for card in list_cards(tiny=True)]


def _save_published(name: str, root: Path, layouts) -> tuple[torch.nn.Module, Path, Path]:
    """A tiny model's weights in its family's published layout, as safetensors and as .bin."""
    encoder = build_encoder(name, seed=7)
    state = layouts[encoder.card.weights_format](encoder.state_dict())
    state = {key: value.contiguous() for key, value in state.items()}
    (root / "st").mkdir()
    (root / "bin").mkdir()
    save_file(state, str(root / "st" / "model.safetensors"))
    torch.save(state, root / "bin" / "pytorch_model.bin")
    return encoder, root / "st", root / "bin"


@pytest.mark.parametrize("name", TINY)
def test_saved_weights_load_back_through_the_real_path(name, tiles, tmp_path, published_layout):
    original, st_dir, bin_dir = _save_published(name, tmp_path, published_layout)
    x = original.preprocess(tiles)
    expected = original(x)
    for checkpoint in (st_dir, bin_dir, bin_dir / "pytorch_model.bin"):
        loaded = build_encoder(name, checkpoint=checkpoint)
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
        assert loaded.weights_hash == original.weights_hash  # same tensors whatever the file format


def test_hf_registers_fold_the_cls_position_embedding(published_layout):
    tiny = build_encoder("tiny-hibou-l")
    hf = published_layout["hf-dinov2"](tiny.state_dict())
    hf["embeddings.position_embeddings"][:, :1] = 0.5
    converted = from_hf_dinov2(hf)
    torch.testing.assert_close(converted["backbone.cls_token"], hf["embeddings.cls_token"] + 0.5)
    assert converted["backbone.pos_embed"].shape == tiny.backbone.pos_embed.shape


class _WritesMarker:
    """Unpickling this object would create a file: the code-execution a checkpoint must not get."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_executed(writer, tmp_path):
    marker = tmp_path / "pwned"
    payload = {"backbone.cls_token": torch.zeros(1), "evil": _WritesMarker(marker)}
    path = tmp_path / "pytorch_model.bin"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        build_encoder("tiny-uni", checkpoint=tmp_path)
    assert not marker.exists()


def test_hub_failure_names_the_model_and_the_way_out(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []

    def offline(repo_id, filename):
        calls.append((repo_id, filename))
        raise LocalEntryNotFoundError("Name or service not known")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", offline)
    with pytest.raises(WeightsError) as error:
        build_encoder("uni")
    message = str(error.value)
    assert message.startswith("could not fetch weights for UNI from hub id MahmoodLab/UNI: ")
    assert "pass --checkpoint DIR" in message and "Name or service not known" in message
    assert calls == [("MahmoodLab/UNI", "pytorch_model.bin")]  # offline: no retries over other names


def test_hub_tries_the_next_file_name_only_when_the_file_is_absent(monkeypatch, tmp_path):
    from huggingface_hub.errors import EntryNotFoundError

    target = tmp_path / "pytorch_model.bin"

    def fake(repo_id, filename):
        if filename == "model.safetensors":
            raise EntryNotFoundError("404: no such file in the repository")
        return str(target)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake)
    assert loading.fetch_from_hub(get_card("h-optimus-0")) == target


def test_wrong_architecture_and_missing_checkpoints_are_clear_errors(tmp_path, published_layout):
    _save_published("tiny-uni", tmp_path, published_layout)
    with pytest.raises(WeightsError, match="does not match the tiny-H-optimus-0 architecture"):
        build_encoder("tiny-h-optimus-0", checkpoint=tmp_path / "st")
    with pytest.raises(WeightsError, match="does not exist"):
        build_encoder("uni", checkpoint=tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="must hold one of"):
        build_encoder("uni", checkpoint=tmp_path)  # a directory of directories


def test_state_dict_hash_depends_on_values_not_key_order():
    a = {"x": torch.arange(4.0), "y": torch.ones(2, dtype=torch.bfloat16)}
    b = dict(reversed(list(a.items())))
    assert loading.state_dict_hash(a) == loading.state_dict_hash(b)
    assert loading.state_dict_hash(a) != loading.state_dict_hash({**a, "x": torch.arange(4.0) + 1})
