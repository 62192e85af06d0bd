"""Patient-level bootstrap of the test metrics: bootstrap_ci.csv (an interval per setting) and
comparisons.csv (paired differences between models on the same test images)."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.layout import CohortLayout
from probelab.report.steps import bootstrap


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        positional={"runs": {"type": Path, "nargs": "+", "help": "run folders"}},
    )
    paths = CohortLayout.of(config)
    report = config["report"]
    bootstrap(
        args.runs,
        Path(paths.split),
        config["pathologies"],
        report["bootstrap"],
        report["comparisons"],
        Path(paths.report_table("ci")),
        Path(paths.report_table("comparisons")),
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    bootstrap(
        [Path(path).parent for path in snakemake.input.predictions],
        Path(snakemake.input.split),
        snakemake.params.pathologies,
        snakemake.params.resampling,
        snakemake.params.comparisons,
        Path(snakemake.output.ci),
        Path(snakemake.output.comparisons),
    )
elif __name__ == "__main__":
    main()
