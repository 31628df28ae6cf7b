"""Live progress of a registration run: a tqdm bar over specimens plus a periodic log line (job logs
on a cluster keep the log lines; the bar is for interactive terminals)."""

import logging
import time

from tqdm import tqdm

from raypath.logs import is_terminal

log = logging.getLogger(__name__)


class SpecimenProgress:
    """Counts specimens registered and failed as their results reach the driver."""

    def __init__(self, *, total: int, log_every_s: float = 30.0) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.started = self._last_log = time.perf_counter()
        self._log_every_s = log_every_s
        self._bar = tqdm(total=total, unit="specimen", desc="register", dynamic_ncols=True, mininterval=1.0,
                         disable=not is_terminal())  # log lines below elsewhere

    def add(self, status: str) -> None:
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        self._bar.update(1)
        self._bar.set_postfix(done=self.done, failed=self.failed, refresh=False)
        now = time.perf_counter()
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            rate = 60.0 * self.done / (now - self.started)
            log.info("%d/%d specimens (done %d, failed %d), %.2f specimens/min", self.done + self.failed,
                     self.total, self.done, self.failed, rate)

    def close(self) -> None:
        self._bar.close()
