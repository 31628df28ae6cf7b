"""Path helpers shared by every stage: local paths and fsspec/pyarrow URIs (s3://, gs://)."""

import uuid
from pathlib import Path

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "hdfs://")


def is_remote(path: str | Path) -> bool:
    """True for object-store URIs, which must not be handled with pathlib."""
    return str(path).startswith(REMOTE_SCHEMES)


def join(root: str | Path, *parts: str) -> str:
    """Join path parts under a local root or a URI without collapsing the scheme's `//`."""
    if is_remote(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return str(Path(root).joinpath(*parts))


def ensure_inside(root: str | Path, candidate: str | Path) -> Path:
    """Resolve `candidate` and refuse it unless it lies under `root` (hostile ids, symlinks)."""
    resolved_root = Path(root).resolve()
    resolved = Path(candidate).resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ValueError(f"output path {resolved} escapes the output root {resolved_root}")
    return resolved


TEMPORARY_MARK = ".tmp-"


def temporary_name(name: str, *, owner: str = "") -> str:
    """A hidden sibling name to write `name` under before renaming it into place; it carries the
    writer's owner token so other runs can tell whether its writer is still there."""
    return f".{name}{TEMPORARY_MARK}{owner + '-' if owner else ''}{uuid.uuid4().hex[:8]}"


def temporary_owner(name: str) -> str | None:
    """The owner token in a `temporary_name` (for an unowned one, its random part, which no owner
    has); None when `name` is not a temporary file."""
    if not name.startswith(".") or TEMPORARY_MARK not in name:
        return None
    return name.rsplit(TEMPORARY_MARK, 1)[1].split("-", 1)[0]
