"""Training subsets: results/{cohort}/subsets/n{n}/seed{seed}.txt and their label mix
seed{seed}.json (config subsets.policy: balanced or stratified; algorithm: probelab.subsets)."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.subsets import write_subsets


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--index": {"help": "results/{cohort}/index.parquet"},
            "--split": {"help": "results/{cohort}/split.parquet"},
            "--out": {"help": "subset file to write"},
        },
        options={
            "--n": {"required": True, "help": "subset size or 'all'"},
            "--seed": {"type": int, "required": True},
        },
    )
    write_subsets(
        args.index,
        args.split,
        config["pathologies"],
        args.n,
        args.seed,
        args.out,
        config["subsets"]["no_finding_share"],
        config["subsets"]["policy"],
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    write_subsets(
        Path(snakemake.input.index),
        Path(snakemake.input.split),
        snakemake.params.pathologies,
        snakemake.wildcards.n,
        int(snakemake.wildcards.seed),
        Path(snakemake.output.ids),
        snakemake.params.no_finding_share,
        snakemake.params.policy,
        Path(snakemake.output.mix),
    )
elif __name__ == "__main__":
    main()
