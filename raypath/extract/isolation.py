"""Run untrusted slide decoding in a short-lived child process, so a crash kills only the child.

OpenSlide and cuCIM are C libraries; some damaged files make them segfault or abort. Decoding a
slide in a child means such a file costs one child, never the Ray worker that streams other
slides' tiles. Children are forked from a `forkserver` that has already imported the readers, so a
child starts in milliseconds and never inherits the Ray worker's threads (forking those is unsafe).
"""

import logging
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

_DONE = "__done__"


class ReaderProcessError(RuntimeError):
    """The child process died (signal, abort, OOM kill) or went silent past the timeout."""


def _context(preload: tuple[str, ...]) -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context


def _child_main(conn: Connection, target: Callable[..., Iterator[Any]], kwargs: dict[str, Any]) -> None:
    """Forward each message the target yields; a Python exception here is a bug, reported as such."""
    try:
        for message in target(**kwargs):
            conn.send(message)
        conn.send((_DONE,))
    finally:
        conn.close()


def describe_exit(exitcode: int | None) -> str:
    """Human-readable reason a child ended, e.g. 'killed by SIGSEGV'."""
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def stream_in_child(
    target: Callable[..., Iterator[Any]], *, kwargs: dict[str, Any], timeout_s: float,
    preload: tuple[str, ...] = (),
) -> Iterator[Any]:
    """Yield the tuples `target(**kwargs)` yields (first item: a str kind), computed in a child.

    Raises ReaderProcessError when the child dies or stays silent longer than `timeout_s`.

    The pipe gives natural back-pressure: the child blocks on send until the consumer is ready,
    so at most about one chunk is in flight per slide.
    """
    context = _context(preload)
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(sender, target, kwargs), daemon=True)
    process.start()
    sender.close()
    try:
        while True:
            if not receiver.poll(timeout_s):
                raise ReaderProcessError(f"reader silent for {timeout_s:.0f} s; killed")
            try:
                message = receiver.recv()
            except EOFError:
                process.join(timeout=10)
                raise ReaderProcessError(f"reader process {describe_exit(process.exitcode)}") from None
            if message[0] == _DONE:
                return
            yield message
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
