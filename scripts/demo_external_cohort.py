"""Write a synthetic external test cohort in CheXpert's format (train.csv with 1 / 0 / -1 / blank
label columns, JPEG files under CheXpert-v1.0-small/) for the demo's transfer table."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.demo.chexpert import write_chexpert_style_cohort


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__, argv, options={"--external": {"required": True, "help": "external cohort name"}}
    )
    external = config["external"][args.external]
    demo = external["demo"]
    write_chexpert_style_cohort(
        Path(external["data"]["root"]),
        config["pathologies"],
        n_images=demo["n_images"],
        image_size=demo["image_size"],
        seed=demo["seed"],
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    demo = snakemake.params.demo
    write_chexpert_style_cohort(
        Path(snakemake.output[0]),
        snakemake.params.pathologies,
        n_images=demo["n_images"],
        image_size=demo["image_size"],
        seed=demo["seed"],
    )
elif __name__ == "__main__":
    main()
