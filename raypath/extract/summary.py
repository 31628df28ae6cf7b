"""The end-of-run summary: what was done, skipped and failed, throughput, and the exit code."""

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED_SLIDES = 1


@dataclass
class RunSummary:
    """Counts for one run; `already_done` slides had every requested file before it started."""

    run_id: str
    output: str
    slides: int = 0
    already_done: int = 0
    finished_elsewhere: int = 0  # finished by another run on the same output while this one waited
    done: int = 0
    skipped: int = 0
    failed: int = 0
    tiles: int = 0
    seconds: float = 0.0
    startup_s: float = 0.0  # until the first results reached the driver (actor start, model load)
    startup_tiles: int = 0  # tiles in that first result batch
    encoded: dict[str, int] = field(default_factory=dict)
    failed_slides: list[str] = field(default_factory=list)
    qc_dir: str = ""  # where the per-slide QC pictures are; "" when they are off

    @property
    def tiles_per_s(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """Non-zero when any slide failed; skipped slides are not errors."""
        return EXIT_FAILED_SLIDES if self.failed else EXIT_OK

    @property
    def steady_tiles_per_s(self) -> float:
        """Throughput once the pipeline is running: what a long cohort run converges to."""
        busy = self.seconds - self.startup_s
        return (self.tiles - self.startup_tiles) / busy if busy > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tiles_per_s": round(self.tiles_per_s, 2),
                "steady_tiles_per_s": round(self.steady_tiles_per_s, 2), "exit_code": self.exit_code}

    def text(self) -> str:
        lines = [
            f"extraction run {self.run_id} -> {self.output}",
            f"  slides: {self.slides} ({self.already_done} already done, {self.done} written, "
            f"{self.finished_elsewhere} written by another run, {self.skipped} skipped, "
            f"{self.failed} failed)",
            f"  tiles:  {self.tiles} in {self.seconds:.1f} s ({self.tiles_per_s:.1f} tiles/s; "
            f"{self.steady_tiles_per_s:.1f} tiles/s after {self.startup_s:.1f} s start-up)",
        ]
        lines += [f"  {name}: {count} tiles encoded" for name, count in self.encoded.items()]
        if self.qc_dir:
            lines.append(f"  QC pictures (tissue contour, tile grid): {self.qc_dir}/<slide_id>.jpg, "
                         "and .geojson for QuPath")
        if self.failed_slides:
            shown = ", ".join(self.failed_slides[:10])
            more = f" and {len(self.failed_slides) - 10} more" if len(self.failed_slides) > 10 else ""
            lines.append(f"  FAILED: {shown}{more} (see failures.csv)")
        return "\n".join(lines)
