"""What a cohort declares about itself once, for every command: `cohort.yaml` beside its labels.

A cohort built as a test of scanner robustness has scanners that exist only to test on (a scanner
never seen in training). Declared here, no command can forget it: `train`, `sweep`, `finetune` and
`evaluate-fm` read the file next to the labels they are given and never train or validate on those
scanners, whatever their own config says (a config can add held-out scanners, not remove declared
ones). `raypath synth` and `raypath simulate` write it for the cohorts they build.
"""

import logging
from pathlib import Path

import yaml
from pydantic import Field

from raypath.config import StrictModel, load_config
from raypath.publish import write_text

log = logging.getLogger(__name__)
DECLARATION = "cohort.yaml"


class CohortDeclaration(StrictModel):
    """The cohort's own facts that every command must honour."""

    held_out_scanners: list[str] = Field(
        default_factory=list, description="scanners only tested on: never trained or validated on")


def declaration_path(labels: str | Path) -> Path:
    """Where the declaration of the cohort whose labels are at `labels` lives."""
    return Path(labels).parent / DECLARATION


def read_declaration(labels: str | Path) -> CohortDeclaration:
    """The declaration beside `labels`; an empty one when the cohort declares nothing."""
    path = declaration_path(labels)
    if not path.is_file():
        return CohortDeclaration()
    declared = load_config(CohortDeclaration, path)
    if declared.held_out_scanners and str(path) not in _ANNOUNCED:  # once per process, not per reader
        _ANNOUNCED.add(str(path))
        log.info("%s: held-out scanners %s (never trained or validated on)", path, declared.held_out_scanners)
    return declared


_ANNOUNCED: set[str] = set()


def write_declaration(declaration: CohortDeclaration, directory: Path) -> Path:
    """Write `cohort.yaml` into `directory` (atomically: a reader never sees half of it)."""
    path = Path(directory) / DECLARATION
    text = ("# What every raypath command honours for this cohort (see raypath/cohort/declaration.py).\n"
            + yaml.safe_dump(declaration.model_dump(), sort_keys=True))
    write_text(path, text)
    return path
