"""The end-of-run summary of a registration run: counts, throughput, weak scans, the exit code."""

from dataclasses import asdict, dataclass, field
from typing import Any

EXIT_OK = 0
EXIT_FAILED_SPECIMENS = 1
SHOWN = 10


@dataclass
class RegisterSummary:
    """`already_done` specimens had a stored result for these settings and inputs before the run."""

    run_id: str
    output: str
    specimens: int = 0
    scans: int = 0
    already_done: int = 0
    finished_elsewhere: int = 0
    done: int = 0
    failed: int = 0
    weak_scans: int = 0
    seconds: float = 0.0
    nodes: int = 0
    failed_specimens: list[str] = field(default_factory=list)
    weak_slides: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """Non-zero when any specimen could not be registered (failures.csv names them)."""
        return EXIT_FAILED_SPECIMENS if self.failed else EXIT_OK

    @property
    def specimens_per_min(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "specimens_per_min": round(self.specimens_per_min, 3),
                "exit_code": self.exit_code}

    def text(self) -> str:
        lines = [f"registration run {self.run_id} -> {self.output}",
                 f"  specimens: {self.specimens} ({self.scans} scans; {self.already_done} already done, "
                 f"{self.done} registered, {self.finished_elsewhere} by another run, {self.failed} failed)",
                 f"  {self.done} in {self.seconds:.1f} s on {self.nodes} node(s) "
                 f"({self.specimens_per_min:.2f} specimens/min)"]
        if self.weak_slides:
            lines.append(f"  weak registrations ({self.weak_scans}): {_listed(self.weak_slides)} "
                         "(score, residual_um and regions columns)")
        if self.failed_specimens:
            lines.append(f"  FAILED: {_listed(self.failed_specimens)} (see failures.csv)")
        return "\n".join(lines)


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more
