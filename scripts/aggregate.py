"""Aggregate run folders into the report's tables: metrics.csv (every metric row of every run),
summary_by_setting.csv (mean, std and count over seeds), history.csv (training histories) and
pathologies.csv (which pathologies each run evaluated, and why not the others)."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.layout import CohortLayout
from probelab.report.steps import aggregate


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        positional={"runs": {"type": Path, "nargs": "+", "help": "run folders"}},
    )
    paths = CohortLayout.of(config)
    keys = ("metrics", "by_setting", "history", "pathologies")
    tables = [Path(paths.report_table(key)) for key in keys]
    aggregate(args.runs, config["cohort"], *tables)


if "snakemake" in globals():
    snakemake_job(snakemake)
    aggregate(
        [Path(path).parent for path in snakemake.input.metrics],
        snakemake.params.cohort,
        Path(snakemake.output.metrics),
        Path(snakemake.output.by_setting),
        Path(snakemake.output.history),
        Path(snakemake.output.pathologies),
    )
elif __name__ == "__main__":
    main()
