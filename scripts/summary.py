"""Write results/{cohort}/report/summary.md: headline table with intervals, comparisons,
figures, data counts, encoders, provenance (config hash, package versions) and caveats."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.layout import CohortLayout, image_caches
from probelab.report.settings import summary_config, summary_figures
from probelab.report.steps import write_summary

TABLES = ("by_setting", "ci", "comparisons", "pathologies", "sentiment", "transfer")
COHORT_FILES = ("index_counts", "split", "index")
CACHE = "cache_"  # input name prefix of an encoder's image cache


def main(argv: list[str] | None = None) -> None:
    _, config = command_line(__doc__, argv)
    paths = CohortLayout.of(config)
    tables = {key: Path(paths.report_table(key)) for key in TABLES}
    if not config["sentiment"]["enabled"]:
        del tables["sentiment"]
    if not config["external"]:
        del tables["transfer"]
    cohort_files = {key: Path(getattr(paths, key)) for key in COHORT_FILES}
    write_summary(
        summary_config(config),
        tables,
        cohort_files,
        summary_figures(config),
        Path(paths.summary),
        {name: Path(path) for name, path in image_caches(config).items()},
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    inputs = snakemake.input
    write_summary(
        snakemake.params.config,
        {key: Path(inputs[key]) for key in TABLES if key in inputs.keys()},
        {key: Path(inputs[key]) for key in COHORT_FILES},
        snakemake.params.figures,
        Path(snakemake.output[0]),
        {
            key.removeprefix(CACHE): Path(path)
            for key, path in inputs.items()
            if key.startswith(CACHE)
        },
    )
elif __name__ == "__main__":
    main()
