"""Settings of `raypath demo`: one section per stage; paths between stages are filled in by the demo."""

from pathlib import Path
from typing import Any

from pydantic import Field

from raypath.config import LocalPath, RaySettings, StrictModel
from raypath.slides.synth.config import SynthConfig


class DemoConfig(StrictModel):
    """The whole pipeline on a synthetic cohort under `out`.

    Each section holds the fields of that stage's own config (SynthConfig, RegisterConfig,
    ExtractConfig, SweepConfig, CompareConfig) except the paths that join the stages, which the
    demo sets so that each stage reads exactly the previous stage's output. Every section is
    validated before any work starts.
    """

    out: LocalPath = Field(Path("demo"), validate_default=True,
                           description="everything the demo writes goes under here")
    synth: SynthConfig = SynthConfig()
    registration: dict[str, Any] = Field(default_factory=dict)
    extract: dict[str, Any] = Field(default_factory=dict)
    sweep: dict[str, Any] = Field(default_factory=dict)
    compare: dict[str, Any] = Field(default_factory=dict)
    ray: RaySettings = Field(RaySettings(), description="start-up of the local Ray instance (extract, sweep)")
