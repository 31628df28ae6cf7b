"""Weights: from a local file or directory, or the card's hub id; never an arbitrary unpickle.

Checkpoints are read with safetensors or `torch.load(weights_only=True)` only. A `.bin` whose
unpickling would construct arbitrary objects (i.e. run code) is refused, never retried unsafely.
"""

import hashlib
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from raypath.encoders.card import ModelCard

log = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("model.safetensors", "pytorch_model.bin")


class WeightsError(RuntimeError):
    """Weights could not be found, fetched or matched to the architecture."""


class UnsafeCheckpointError(WeightsError):
    """The checkpoint is a pickle that needs more than tensors to load; raypath will not run it."""


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read one checkpoint file as a flat name → tensor mapping."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it is not a plain tensor checkpoint and raypath never unpickles "
            f"arbitrary objects (torch.load weights_only=True said: {str(error).splitlines()[0]}); "
            "convert it to safetensors with a trusted tool") from error
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a mapping of parameter names to tensors")
    return dict(state)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file itself, or the one checkpoint inside a directory."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise WeightsError(f"checkpoint {path} does not exist")
    for name in CHECKPOINT_NAMES:
        if (path / name).is_file():
            return path / name
    candidates = sorted([*path.glob("*.safetensors"), *path.glob("*.bin")])
    if len(candidates) != 1:
        raise WeightsError(f"checkpoint directory {path} must hold one of {CHECKPOINT_NAMES} "
                           f"(found {[c.name for c in candidates]})")
    return candidates[0]


def fetch_from_hub(card: ModelCard) -> Path:
    """Download (or reuse the cached) weights file named on the card from its hub repository."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if card.hub_id is None:
        raise WeightsError(f"{card.title} has no hub id; pass --checkpoint DIR")
    error: Exception | None = None
    for filename in card.hub_files:
        try:
            return Path(hf_hub_download(card.hub_id, filename))
        except EntryNotFoundError as missing:
            if isinstance(missing, LocalEntryNotFoundError):  # offline: trying other names won't help
                error = missing
                break
            error = missing  # the repository has no file of this name; try the next one
        except Exception as failure:  # network, gating, auth: all end the same way for the user
            error = failure
            break
    reason = str(error).splitlines()[0] if error else "no file to try"
    raise WeightsError(f"could not fetch weights for {card.title} from hub id {card.hub_id}: {reason}; "
                       "pass --checkpoint DIR (a directory holding model.safetensors or pytorch_model.bin)")


def resolve_checkpoint(card: ModelCard, checkpoint: str | Path | None) -> Path:
    """The weights file to load: the local one given, else the card's hub file."""
    path = find_checkpoint(checkpoint) if checkpoint is not None else fetch_from_hub(card)
    log.info("loading %s weights from %s", card.title, path)
    return path


def state_dict_hash(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes in sorted-name order: identical weights hash
    identically whatever file format or key order they came from."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()
