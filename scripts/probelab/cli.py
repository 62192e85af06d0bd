"""The step scripts' two entry points, built in one place.

Every script in scripts/ is a thin adapter over one package function: under Snakemake it sets up
logging into the job's log and passes the rule's input, output and params; from the shell it reads
`--config` (validated, defaults filled in) plus the script's own path options. Both entry points
come from here, so each script only says which function it runs and which paths it takes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# An option's argparse settings: `"--index": {"help": "..."}`; paths default to type=Path and
# required=True, other options say their own type.
Options = dict[str, dict[str, Any]]


def command_line(
    description: str | None,
    argv: list[str] | None,
    *,
    paths: Options | None = None,
    options: Options | None = None,
    positional: Options | None = None,
) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse a step script's command line and load its config.

    Every script takes `--config` (default config.yaml); `paths` are required Path options,
    `options` any other options, `positional` positional arguments. Logging goes to stderr.
    Returns the parsed arguments and the validated config.
    """
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=_first_paragraph(description))
    for name, settings in (positional or {}).items():
        parser.add_argument(name, **settings)
    parser.add_argument("--config", default="config.yaml", help="probelab config (YAML)")
    for name, settings in (paths or {}).items():
        parser.add_argument(name, **{"type": Path, "required": True, **settings})
    for name, settings in (options or {}).items():
        parser.add_argument(name, **settings)
    args = parser.parse_args(argv)
    setup_logging()
    return args, load_config(args.config)


def snakemake_job(snakemake: Any) -> None:
    """Set up logging into the Snakemake job's log file."""
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])


def _first_paragraph(text: str | None) -> str | None:
    return text.strip().split("\n\n")[0] if text else None
