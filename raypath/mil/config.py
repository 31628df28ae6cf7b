"""The `model` and `losses` sections of a training config, generated from the two registries.

`ModelConfig.kind` names a registered backbone and carries the settings backbones declare;
`LossConfig` has one weight per registered robustness loss (0 = off: not computed, no head) plus
the settings losses declare. Unknown keys are still rejected.
"""

from pydantic import Field, field_validator

from raypath.config import StrictModel, did_you_mean
from raypath.mil.models import BACKBONES
from raypath.mil.registry import LOSSES
from raypath.mil.settings import merge_declared, section_model


class _ModelBase(StrictModel):
    kind: str = Field("gated", description=f"MIL backbone, one of {sorted(BACKBONES)}")
    hidden: int = Field(128, gt=0, description="tile projection / slide embedding width")
    dropout: float = Field(0.1, ge=0, lt=1)
    projection_dim: int | None = Field(64, gt=0, description="contrastive projection heads; null = none")

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        if kind not in BACKBONES:
            raise ValueError(f"unknown MIL backbone {kind!r}{did_you_mean(kind, BACKBONES)}; "
                             f"registered: {sorted(BACKBONES)}")
        return kind

    def backbone_settings(self) -> dict:
        """The declared settings of the chosen backbone, as keyword arguments of its factory."""
        return {name: getattr(self, name) for name in BACKBONES[self.kind].settings}


class _LossBase(StrictModel):
    tau: float = Field(0.1, gt=0, description="temperature of the contrastive losses")

    def weights(self) -> dict[str, float]:
        """Weight of every registered loss, in registration order."""
        return {name: getattr(self, name) for name in LOSSES}

    def options(self) -> dict:
        """The settings losses declared (e.g. tile_mode), by name."""
        declared = merge_declared({n: s.settings for n, s in LOSSES.items()}, kind="loss")
        return {name: getattr(self, name) for name in declared}


ModelConfig = section_model(
    "ModelConfig", base=_ModelBase, doc="MIL backbone and head sizes.",
    fields=merge_declared({n: s.settings for n, s in BACKBONES.items()}, kind="backbone"))

_WEIGHTS = {name: (float, Field(0.0, ge=0, description=spec.description)) for name, spec in LOSSES.items()}
LossConfig = section_model(
    "LossConfig", base=_LossBase, doc="Robustness loss weights λ_j (0 = off and not computed) and settings.",
    fields={**_WEIGHTS, **merge_declared({n: s.settings for n, s in LOSSES.items()}, kind="loss")})
