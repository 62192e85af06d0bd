"""Patient-disjoint train / val / test split of the cohort index -> split.parquet
(probelab.splits)."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.splits import make_split


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--index": {"help": "results/{cohort}/index.parquet"},
            "--out": {"help": "results/{cohort}/split.parquet"},
        },
    )
    make_split(args.index, args.out, config["split"], config["data"])


if "snakemake" in globals():
    snakemake_job(snakemake)
    make_split(
        Path(snakemake.input.index),
        Path(snakemake.output[0]),
        snakemake.params.split,
        snakemake.params.data,
    )
elif __name__ == "__main__":
    main()
