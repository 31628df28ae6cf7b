"""Make `import timm` work when the installed torchvision wheel cannot load its C ops.

timm imports torchvision at import time. On CPU-only machines the registry's torchvision wheel is
a CUDA build whose `_C` extension fails to load against CPU torch, and torchvision >= 0.2x then
crashes in `_meta_registrations` with "operator torchvision::nms does not exist", because it
registers fake kernels for `nms`/`qnms` unconditionally. raypath never calls torchvision's C ops
(only timm's layers), so it is enough to declare those two op schemas; torchvision then imports,
reports `extension._has_ops() == False`, and any real call to its C ops still fails loudly.

The guard is a no-op when torchvision imports cleanly (e.g. a GPU machine with matching wheels).
"""

import functools
import importlib
import logging
import sys

import torch

log = logging.getLogger(__name__)

# Schemas exactly as torchvision's C++ `TORCH_LIBRARY_FRAGMENT(torchvision, m)` declares them.
_MISSING_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
# Kept alive for the process: a Library deregisters its definitions when garbage-collected.
_LIBRARY: torch.library.Library | None = None


def _is_missing_op_error(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, RuntimeError) and "torchvision::" in text and "does not exist" in text


def _define_missing_schemas() -> list[str]:
    global _LIBRARY
    _LIBRARY = _LIBRARY or torch.library.Library("torchvision", "FRAGMENT")
    defined = []
    for name, schema in _MISSING_OP_SCHEMAS.items():
        if not _op_exists(name):
            _LIBRARY.define(schema)
            defined.append(name)
    return defined


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _forget_partial_import() -> None:
    """Drop half-initialised torchvision modules so the retry runs its __init__ again."""
    for module in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[module]


@functools.cache
def ensure_torchvision() -> bool:
    """Import torchvision, patching the missing-op case; True if a patch was needed."""
    try:
        importlib.import_module("torchvision")
        return False
    except RuntimeError as error:
        if not _is_missing_op_error(error):
            raise
        log.warning("torchvision cannot load its C ops (%s); declaring op schemas so timm imports "
                    "(raypath does not use torchvision ops)", error)
    _forget_partial_import()
    defined = _define_missing_schemas()
    importlib.import_module("torchvision")
    log.debug("torchvision imported after defining torchvision::%s", ", torchvision::".join(defined))
    return True


def import_timm():
    """`import timm` behind the torchvision guard; the one place raypath imports timm from."""
    ensure_torchvision()
    return importlib.import_module("timm")


def import_peft():
    """`import peft` behind the same guard: peft imports transformers, which imports torchvision."""
    ensure_torchvision()
    return importlib.import_module("peft")
