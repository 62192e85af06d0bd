"""Index an external test cohort (config key external.{name}) against its images on disk, as
index_images does for the training cohort, and write its split: every image a test image."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.cohort import index_external


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--out-index": {"help": "results/{cohort}/external/{name}/index.parquet"},
            "--out-counts": {"help": "results/{cohort}/external/{name}/index_counts.json"},
            "--out-split": {"help": "results/{cohort}/external/{name}/split.parquet"},
        },
        options={"--external": {"required": True, "help": "external cohort name"}},
    )
    external = config["external"][args.external]
    index_external(
        external["data"],
        external["pathologies"] or config["pathologies"],
        config["no_finding_label"],
        args.out_index,
        args.out_counts,
        args.out_split,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    index_external(
        snakemake.params.data,
        snakemake.params.pathologies,
        snakemake.params.no_finding,
        Path(snakemake.output.index),
        Path(snakemake.output.counts),
        Path(snakemake.output.split),
    )
elif __name__ == "__main__":
    main()
