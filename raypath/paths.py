"""Path helpers shared by every stage: local paths and fsspec/pyarrow URIs (s3://, gs://)."""

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
