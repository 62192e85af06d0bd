"""Index the label table against the images actually on disk.

Writes results/{cohort}/index.parquet (one row per present image) and index_counts.json
(probelab.cohort).
"""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.cohort import index_images


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--out-index": {"help": "results/{cohort}/index.parquet"},
            "--out-counts": {"help": "results/{cohort}/index_counts.json"},
        },
    )
    index_images(
        config["data"],
        config["pathologies"],
        config["no_finding_label"],
        args.out_index,
        args.out_counts,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    index_images(
        snakemake.params.data,
        snakemake.params.pathologies,
        snakemake.params.no_finding,
        Path(snakemake.output.index),
        Path(snakemake.output.counts),
    )
elif __name__ == "__main__":
    main()
