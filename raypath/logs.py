"""One logging set-up for the CLI and jobs; library modules only call `logging.getLogger`."""

import logging
import sys


def setup_logging(*, verbose: bool = False) -> None:
    """Configure root logging once, to stderr, with timestamps; quiet noisy third parties."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for noisy in ("urllib3", "alembic", "mlflow", "filelock", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
