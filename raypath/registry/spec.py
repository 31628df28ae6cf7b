"""What a trained model needs besides its weights, written next to them as `model.json`.

Enough to rebuild the network, to predict exactly as the model was evaluated (feature precision,
tile sampling, decision rule) and to refuse features it was not trained on (FM, weights, tiling).
"""

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from raypath.config import StrictModel

SPEC_VERSION = 1
PROVENANCE_CHECKED = ("encoder", "weights_hash", "tiling_hash", "embed_dim")


class ModelSpec(StrictModel):
    """One trained MIL model: task, network, evaluation settings, and its features' provenance."""

    version: int = SPEC_VERSION
    task: str
    n_outputs: int = Field(ge=1)
    in_dim: int = Field(ge=1)
    model: dict[str, Any] = Field(description="the `model` section it was trained with")
    threshold: float = Field(0.5, description="probability cut of a positive decision (binary)")
    risk_cut: float | None = Field(None, description="risk above which a case is 'high risk' (survival)")
    feature_storage: str = Field("float32", description="precision the features had in training")
    eval_max_tiles: int | None = Field(None, description="tiles per bag at evaluation (evenly spaced)")
    provenance: dict[str, Any] = Field(description="the feature store's: encoder, card, weights, tiling")
    training: dict[str, Any] = Field(default_factory=dict, description="sweep, FM, seed, params, metrics")
    raypath_version: str = ""
    code_hash: str = ""

    @classmethod
    def read(cls, path: Path | str) -> "ModelSpec":
        return cls.model_validate(json.loads(Path(path).read_text()))

    def write(self, path: Path | str) -> Path:
        Path(path).write_text(self.model_dump_json(indent=2))
        return Path(path)

    def feature_mismatch(self, metadata: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """{field: (model's, features')} for every provenance field that differs: empty when the
        features are the ones this model expects."""
        return {k: (self.provenance.get(k), metadata.get(k)) for k in PROVENANCE_CHECKED
                if self.provenance.get(k) != metadata.get(k)}
