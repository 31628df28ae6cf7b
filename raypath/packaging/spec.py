"""What a trained model needs besides its weights, written next to them as `model.json`.

Enough to rebuild the network, to predict exactly as the model was evaluated (feature precision,
tile sampling, decision rule) and to refuse features it was not trained on (FM, weights, tiling).
Two kinds: `frozen_features` (a MIL head on a frozen FM's features) and `finetuned` (a MIL head on
the features of an FM with LoRA adapters, trained together by `raypath finetune`): the spec then
names the base FM weights and the adapter file with their hashes, and its provenance describes the
adapted encoder's features, so the same provenance checks keep the two apart.
"""

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from raypath.config import StrictModel
from raypath.encoders.lora import LoraSettings
from raypath.slides.config import TilingConfig

SPEC_VERSION = 1
PROVENANCE_CHECKED = ("encoder", "weights_hash", "tiling_hash", "embed_dim")


class AdapterSpec(StrictModel):
    """A finetuned model's encoder: the base FM weights it was trained on and its adapter file."""

    base: str = Field(description="model-card name of the base FM")
    hub_id: str | None = Field(
        None, description="the card's hub id (where base weights come from by default)")
    checkpoint: str | None = Field(None, description="local base checkpoint it was trained with, if any")
    base_weights_hash: str = Field(description="sha256 of the base FM's state dict (raypath.encoders)")
    seed: int = Field(0, description="seed of a tiny card's random base weights")
    lora: LoraSettings
    file: str = Field("adapter.safetensors", description="the adapter weights in the model package")
    adapter_hash: str = Field(description="sha256 of the adapter's state dict")


class ModelSpec(StrictModel):
    """One trained MIL model: task, network, evaluation settings, and its features' provenance."""

    version: int = SPEC_VERSION
    kind: Literal["frozen_features", "finetuned"] = Field(
        "frozen_features", description="MIL head on frozen FM features, or on an FM with trained adapters")
    adapter: AdapterSpec | None = Field(None, description="base FM and adapter of a finetuned model")
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

    @model_validator(mode="after")
    def _adapter_iff_finetuned(self) -> "ModelSpec":
        if (self.kind == "finetuned") != (self.adapter is not None):
            raise ValueError(f"a {self.kind} model spec must {'' if self.kind == 'finetuned' else 'not '}"
                             "name an adapter")
        return self

    @classmethod
    def read(cls, path: Path | str) -> "ModelSpec":
        return cls.model_validate(json.loads(Path(path).read_text()))

    def write(self, path: Path | str) -> Path:
        Path(path).write_text(self.model_dump_json(indent=2))
        return Path(path)

    def prediction_provenance(self) -> dict[str, Any]:
        """The provenance of the features this model predicts from: its training features', tiled on
        each slide's own grid. Prediction pairs no scans, and a model trained on reference-grid
        features (`tiling.grid: reference`) saw tiles of the same size, resolution and tissue rule;
        its reference scans were tiled exactly so."""
        trained = self.provenance.get("tiling") or {}
        if trained.get("grid") != "reference":
            return dict(self.provenance)
        tiling = TilingConfig.model_validate({**trained, "grid": "per_scan"})
        return {**self.provenance, "tiling": tiling.model_dump(), "tiling_hash": tiling.cache_key()}

    def feature_mismatch(self, metadata: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """{field: (model's, features')} for every provenance field that differs: empty when the
        features are the ones this model predicts from (`prediction_provenance`)."""
        expected = self.prediction_provenance()
        return {k: (expected.get(k), metadata.get(k)) for k in PROVENANCE_CHECKED
                if expected.get(k) != metadata.get(k)}
