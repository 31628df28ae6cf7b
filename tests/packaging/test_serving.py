"""A saved model serves in a fresh environment that holds only its own requirements: a clean virtualenv
(no system site packages, no raypath) whose site-packages holds exactly the installed distributions in
the closure of the model's `requirements.txt` (linked from this environment: no downloads), where
`mlflow.pyfunc.load_model` loads it with the raypath code it carries and predicts what it predicts here."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from raypath.packaging.package import save_model
from tests.packaging.test_pyfunc import _tiles, _trained

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SERVE = """
import sys, mlflow, pandas as pd
model_dir, tiles, out = sys.argv[1:]
assert "raypath" not in sys.modules
model = mlflow.pyfunc.load_model(model_dir)
model.predict(pd.read_parquet(tiles)).drop(columns="attention").to_parquet(out)
import raypath
print(raypath.__file__)
"""


def _requirements(model: Path) -> list[Requirement]:
    lines = (model / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith(("#", "-"))]


def requirement_closure(requirements: list[Requirement]) -> dict[str, importlib.metadata.Distribution]:
    """Installed distributions these requirements need, transitively (markers evaluated here, with the
    extras asked for); a missing one fails, naming who needs it."""
    found: dict[str, importlib.metadata.Distribution] = {}
    queue = [(r, "requirements.txt") for r in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while queue:
        requirement, needed_by = queue.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = found.get(name) or importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{requirement} (needed by {needed_by}) is not installed here: cannot build "
                        "the clean environment")
        found[name] = dist
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in {"", *extras}):
                queue.append((child, name))
    return found


def clean_environment(root: Path, dists: dict[str, importlib.metadata.Distribution]) -> Path:
    """A venv without system site packages whose site-packages links the top-level entries of `dists`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if top != "__pycache__" and (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    return root / "bin" / "python"


def test_the_model_loads_and_predicts_in_a_clean_environment_of_its_own_requirements(tmp_path):
    _, weights, spec = _trained(tmp_path)
    model = save_model(tmp_path / "model", weights=weights, spec=spec)
    dists = requirement_closure(_requirements(model))
    assert "raypath" not in dists and {"torch", "mlflow", "safetensors"} <= dists.keys()
    python = clean_environment(tmp_path / "venv", dists)
    tiles = _tiles(np.random.default_rng(2), {"a": 5, "b": 3, "c": 1})
    tiles.to_parquet(tmp_path / "tiles.parquet")

    args = [str(model), str(tmp_path / "tiles.parquet"), str(tmp_path / "served.parquet")]
    done = subprocess.run([str(python), "-I", "-c", SERVE, *args], capture_output=True, text=True,
                          cwd=tmp_path / "venv", timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.strip().splitlines()[-1]).is_relative_to(model / "code")  # the bundled code
    served = pd.read_parquet(tmp_path / "served.parquet")
    here = mlflow.pyfunc.load_model(str(model)).predict(tiles).drop(columns="attention")
    pd.testing.assert_frame_equal(served, here, check_exact=False, atol=1e-6)
