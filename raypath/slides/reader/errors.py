"""Slide errors: each names the file, so a failed slide in a 10,000-slide cohort is findable."""

from pathlib import Path


class SlideError(Exception):
    """Base of every error raised while opening or reading a slide."""


class SlideNotFoundError(SlideError, FileNotFoundError):
    """The manifest points at a path that does not exist."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"slide not found: {path}")


class UnsupportedSlideError(SlideError):
    """No reader can open the file: wrong format, truncated, empty or not a slide at all."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"unsupported or unreadable slide: {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class MissingMppError(SlideError):
    """The file carries no pixel size; tiling at a physical resolution would silently be wrong."""

    def __init__(self, path: str | Path, backend: str) -> None:
        super().__init__(
            f"{path}: no microns-per-pixel in the slide metadata (read with {backend}); "
            "give it in the manifest's 'mpp' column (mpp_override) if you know it"
        )


class SlideReadError(SlideError):
    """A region could not be decoded (corrupt tile); the reader stays usable for other regions."""
