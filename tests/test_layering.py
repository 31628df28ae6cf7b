"""The package graph reads in pipeline order: each package imports only from packages below it.

A backward edge (e.g. training importing the sweep, or a config importing a stage) or a cycle fails
here, naming the importing module and line. Function-level imports count too: they hide cycles,
they do not remove them.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "raypath"
# Lowest first. Modules directly under raypath/ are named by their stem.
LAYERS = [
    {"__init__", "paths", "logs", "units", "errors"},
    {"publish"},
    {"config"},
    {"cluster"},
    {"cohort"},
    {"store"},
    {"slides"},
    {"simulate"},
    {"encoders"},
    {"extract"},
    {"register"},
    {"metrics"},
    {"mil"},
    {"packaging"},
    {"train"},
    {"tracking"},
    {"distributed"},
    {"sweep"},
    {"compare"},
    {"evaluate_fm"},
    {"finetune"},
    {"predict"},
    {"demo"},
    {"commands", "cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "raypath":
                edges.append((node.lineno, parts[1] if len(parts) > 1 else "__init__"))
    return edges


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer():
    assert {_unit(path) for path in _modules()} <= set(RANK), "add new packages to LAYERS"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_pipeline(path):
    unit = _unit(path)
    backward = [f"{path.relative_to(PACKAGE.parent)}:{line} imports raypath.{target}"
                for line, target in _imports(path)
                if target in RANK and target != unit and RANK[target] > RANK[unit]]
    assert not backward, "backward edges:\n" + "\n".join(backward)


def _third_party_imports(paths: list[Path], roots: set[str]) -> list[str]:
    """'file:line' of every import (function-level ones too) of a top-level package in `roots`."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(name.split(".")[0] in roots for name in names):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_training_is_plain_torch():
    heavy = _third_party_imports(list((PACKAGE / "train").rglob("*.py")), {"ray", "mlflow", "optuna"})
    assert not heavy, f"raypath/train imports Ray, MLflow or Optuna: {heavy}"


def test_only_tracking_and_packaging_talk_to_mlflow():
    """MLflow code has one home per concern: runs (`tracking/`) and models (`packaging/`)."""
    elsewhere = [path for path in _modules() if _unit(path) not in {"tracking", "packaging"}]
    found = _third_party_imports(elsewhere, {"mlflow"})
    assert not found, f"MLflow imported outside raypath/tracking and raypath/packaging: {found}"
