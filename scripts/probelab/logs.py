"""Logging set-up shared by the step scripts (Snakemake's log file, or stderr from the shell)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send the package's and the script's log records to `log_file` (or stderr)."""
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="w")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type, exc, traceback) -> None:
    """Put the reason a step failed into its log (Snakemake prints failed jobs' logs)."""
    logging.getLogger("probelab").error("%s", exc, exc_info=(exc_type, exc, traceback))
    sys.__excepthook__(exc_type, exc, traceback)
