"""Evaluate every frozen run of one encoder on an external test cohort: its model.pt and
validation-tuned thresholds, unchanged, on the external image cache (probelab.external)."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.external import ExternalRun, evaluate_external


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--cache": {"help": "the external cohort's image cache of the encoder (.h5)"},
            "--index": {"help": "results/{cohort}/external/{name}/index.parquet"},
            "--out": {"help": "folder of the external run folders ({model}/n{n}/seed{seed})"},
        },
        options={
            "--external": {"required": True, "help": "external cohort name"},
            "--encoder": {"required": True, "help": "encoder name"},
        },
        positional={"runs": {"type": Path, "nargs": "+", "help": "frozen run folders"}},
    )
    evaluate_external(
        name=args.external,
        encoder=args.encoder,
        image_cache=args.cache,
        fingerprint=None,
        index=args.index,
        runs=[
            ExternalRun(run, args.out / run.parent.parent.name / run.parent.name / run.name)
            for run in args.runs
        ],
        pathologies=config["pathologies"],
        labelled=config["external"][args.external]["pathologies"] or config["pathologies"],
        min_positives=config["training"]["min_test_positives"],
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    evaluate_external(
        name=snakemake.wildcards.external,
        encoder=snakemake.wildcards.encoder,
        image_cache=Path(snakemake.input.cache),
        fingerprint=snakemake.params.fingerprint,
        index=Path(snakemake.input.index),
        runs=[
            ExternalRun(Path(model).parent, Path(out).parent)
            for model, out in zip(snakemake.input.models, snakemake.output.metrics, strict=True)
        ],
        pathologies=snakemake.params.pathologies,
        labelled=snakemake.params.labelled,
        min_positives=snakemake.params.min_positives,
    )
elif __name__ == "__main__":
    main()
