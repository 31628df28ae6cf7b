"""Settings of the feature-extraction job (`raypath extract`, `jobs/extract.py`)."""

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from raypath.config import LocalPath, Location, RayJob, StrictModel
from raypath.slides.config import TilingConfig


class EncoderSpec(StrictModel):
    """One foundation model to run: a registry name and, for real weights, a local checkpoint."""

    name: str = Field(..., min_length=1, description="model-card name, e.g. 'uni' or 'tiny-uni'")
    checkpoint: Location | None = Field(
        None, description="local checkpoint dir/file; default the card's hub weights")


class ExtractConfig(RayJob):
    """Manifest in, one Parquet file per slide per encoder out; resources of each pipeline stage."""

    manifest: LocalPath | None = Field(None, description="manifest.csv of the cohort (required to run)")
    output: Location | None = Field(None, description="feature-store root: local dir or s3:// URI")
    encoders: list[EncoderSpec] = Field(
        default_factory=lambda: [EncoderSpec(name="tiny-uni")], min_length=1,
        description="encoders run on the same decoded tiles (each tile is decoded once)")
    tiling: TilingConfig = TilingConfig()
    registration: LocalPath | None = Field(
        None, description="registration.parquet; required by tiling.grid: reference (moving scans are tiled "
                          "on their reference scan's grid mapped through it)")
    qc_pictures: bool = Field(
        True, description="write <output>/_qc/<tiling hash>/<slide_id>.jpg per slide (thumbnail, tissue "
                          "contour and tile grid, to check the tiling by eye) and <slide_id>.geojson (the "
                          "same contour and grid in level-0 pixels, for QuPath)")
    non_pyramidal: Literal["skip", "process"] = Field(
        "skip", description="single-level slides: record as skipped, or tile them anyway")
    batch_size: int = Field(64, gt=0, description="tiles per inference batch")
    concurrency: int = Field(1, gt=0, description="inference actors per encoder")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per inference actor; 0 = CPU inference")
    encoder_cpus: float = Field(1.0, gt=0, description="CPUs reserved per inference actor")
    torch_threads: int | None = Field(None, gt=0, description="CPU inference threads; default all cores")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="inference precision; auto = bf16 autocast on GPU, fp32 on CPU")
    decode_cpus: float = Field(1.0, gt=0, description="CPUs reserved per slide-reading task")
    decode_gpus: float = Field(
        0.0, ge=0, description="GPU share per slide-reading task; > 0 decodes JPEG tiles on that GPU "
                               "(nvImageCodec), on the CPU where no GPU or library is usable")
    decode_memory_mb: int = Field(512, gt=0, description="memory reserved per slide-reading task")
    tiles_per_chunk: int = Field(64, gt=0, description="decoded tiles per streamed block")
    max_attempts: int = Field(2, ge=1, description="tries per slide when its reader fails or dies")
    read_timeout_s: float = Field(600.0, gt=0, description="a reader silent this long is killed")
    write_threads: int = Field(2, gt=0, description="driver threads writing finished slides")
    claims_dir: Location | None = Field(
        None, description="directory where runs on one output claim slides (local or NFS, shared by every "
                          "run); default <output>/_claims for a local output, no coordination on s3://")
    claim_lease_s: float = Field(
        300.0, gt=0, description="a run whose heartbeat is older than this is gone: its claims and "
                                 "temporary files are taken over")
    run_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="name of this run's log dir under <output>/_runs/ (no path parts); default = timestamp")

    @model_validator(mode="after")
    def _grid_has_registration(self) -> "ExtractConfig":
        if self.tiling.grid == "reference" and self.registration is None:
            raise ValueError("tiling.grid: reference needs `registration` (registration.parquet, "
                             "--registration)")
        return self

    @field_validator("encoders", mode="before")
    @classmethod
    def _names_as_specs(cls, value: Any) -> Any:
        """Allow `encoders: [uni, virchow2]` in YAML as shorthand for `[{name: uni}, ...]`."""
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("encoders")
    @classmethod
    def _unique_names(cls, value: list[EncoderSpec]) -> list[EncoderSpec]:
        names = [spec.name for spec in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"encoder listed twice: {duplicates}")
        return value
