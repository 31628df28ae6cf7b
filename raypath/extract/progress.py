"""Live progress on the driver: a tqdm bar over slides with tiles/s, plus a periodic log line
(job logs on a cluster keep the log lines; the bar is for interactive terminals)."""

import logging
import time

from tqdm import tqdm

from raypath.logs import is_terminal

log = logging.getLogger(__name__)


class Progress:
    """Counts slides done/skipped/failed and encoded tiles as results reach the driver."""

    def __init__(self, *, total: int, log_every_s: float = 30.0) -> None:
        self.total = total
        self.done = self.skipped = self.failed = self.tiles = 0
        self.started = time.perf_counter()
        self._log_every_s, self._last_log = log_every_s, self.started
        self._bar = tqdm(total=total, unit="slide", desc="extract", dynamic_ncols=True, mininterval=1.0,
                         disable=not is_terminal())  # log lines below elsewhere

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def tiles_per_s(self) -> float:
        return self.tiles / self.elapsed if self.elapsed > 0 else 0.0

    def add_tiles(self, count: int) -> None:
        self.tiles += count
        self._refresh(advance=0)

    def add_slide(self, status: str) -> None:
        if status == "done":
            self.done += 1
        elif status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
        self._refresh(advance=1)

    def _refresh(self, *, advance: int) -> None:
        self._bar.update(advance)
        self._bar.set_postfix(done=self.done, skipped=self.skipped, failed=self.failed,
                              tiles=self.tiles, tiles_s=f"{self.tiles_per_s:.1f}", refresh=False)
        now = time.perf_counter()
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            log.info("%s", self.line())

    def line(self) -> str:
        return (f"{self.done + self.skipped + self.failed}/{self.total} slides (done {self.done}, "
                f"skipped {self.skipped}, failed {self.failed}), {self.tiles} tiles, "
                f"{self.tiles_per_s:.1f} tiles/s")

    def close(self) -> None:
        self._bar.close()
