"""`raypath.publish`, the one way raypath writes a final name: a writer killed (SIGKILL, a real
process) before any of its steps leaves the old version or the new one, whole, never a mix; and no
other module renames files into place itself."""

import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raypath.publish import publish_directory, publish_file, write_text

PACKAGE = Path(__file__).resolve().parents[1] / "raypath"

WRITER = textwrap.dedent('''
    """Publish the new version of argv[2] (a file or a directory), SIGKILLed before step argv[3]."""
    import os, shutil, signal, sys
    from pathlib import Path
    import raypath.publish as publish

    kind, target, kill_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    steps = [0]

    def step():
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        steps[0] += 1

    class Tripwire:
        """The module `real` whose functions below take one step each before they run."""
        def __init__(self, real, names):
            self.real, self.names = real, names
        def __getattr__(self, name):
            attr = getattr(self.real, name)
            if name not in self.names:
                return attr
            def wrapped(*args, **kwargs):
                step()
                return attr(*args, **kwargs)
            return wrapped

    publish.os = Tripwire(os, {"open", "close", "fsync", "replace", "rename", "link"})
    publish.shutil = Tripwire(shutil, {"rmtree"})
    exchange = publish._exchange
    publish._exchange = lambda *a: (step(), exchange(*a))[1]

    def write_half_then_all(path):  # a write in two steps: half a version is on disk in between
        with open(path, "w") as sink:
            sink.write("new-")
            sink.flush()
            step()
            sink.write("version")

    if kind == "file":
        publish.publish_file(target, write_half_then_all)
    else:
        def write_directory(directory):
            for name in ("a", "b"):
                write_half_then_all(directory / name)
                step()
        publish.publish_directory(target, write_directory)
    print(steps[0])
''')


def _write(kind: str, target: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRITER, kind, str(target), str(kill_at)],
                          capture_output=True, text=True, timeout=120, check=False)


def _version(kind: str, target: Path) -> list[str]:
    files = [target] if kind == "file" else [target / "a", target / "b"]
    return [f.read_text() for f in files]


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_writer_killed_before_any_step_leaves_the_old_version_or_the_new_one(kind, tmp_path):
    old, new = ["old-version"], ["new-version"]
    if kind == "directory":
        old, new = old * 2, new * 2
    kill_at, seen = 0, []
    while True:
        target = tmp_path / str(kill_at) / "published"
        if kind == "file":
            write_text(target, old[0])
        else:
            publish_directory(target, lambda d: [(d / n).write_text(old[0]) for n in ("a", "b")])
        finished = _write(kind, target, kill_at)
        seen.append(_version(kind, target))
        assert seen[-1] in (old, new), (kill_at, seen[-1])
        if finished.returncode == 0:
            break
        assert finished.returncode == -signal.SIGKILL, finished.stderr[-2000:]
        kill_at += 1
    assert seen[0] == old and seen[-1] == new and kill_at >= 5, (kill_at, seen)


def test_an_error_in_the_writer_leaves_the_old_version_and_no_temporary(tmp_path):
    target = tmp_path / "x.json"
    write_text(target, "old")

    def fail(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        publish_file(target, fail)
    with pytest.raises(RuntimeError):
        publish_directory(tmp_path / "d", lambda d: fail(d / "a"))
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_a_kept_version_stays_when_another_writer_placed_one_first(tmp_path):
    assert publish_file(tmp_path / "f", lambda p: p.write_text("first"), replace=False)
    assert not publish_file(tmp_path / "f", lambda p: p.write_text("second"), replace=False)
    assert publish_directory(tmp_path / "d", lambda d: (d / "a").write_text("first"), replace=False)
    assert not publish_directory(tmp_path / "d", lambda d: (d / "a").write_text("second"), replace=False)
    assert (tmp_path / "f").read_text() == (tmp_path / "d" / "a").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


RENAMES = re.compile(r"\bos\.(replace|rename|renames)\(|\b\w+\.replace\((?!\")\w*(path|target)\w*\)|"
                     r"shutil\.move\(|mkstemp\(")


def test_no_module_but_publish_renames_files_into_place():
    sites = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.name != "publish.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if RENAMES.search(line)]
    assert not sites, "publish through raypath.publish instead:\n" + "\n".join(sites)
