"""Explore the review splits: sizes, label balance, text lengths in characters and in tokens."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.data import DEMO_FOLDER_OPTION
from probelab.sentiment.explore import explore


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--out-json": {"help": "explore/explore.json"},
            "--out-figure": {"help": "explore/lengths.png"},
        },
        options=DEMO_FOLDER_OPTION,
    )
    s = config["sentiment"]
    explore(
        s["data"],
        args.demo_folder,
        s["encoders"],
        s["data"]["label_names"],
        s["features"]["max_length"],
        s["explore"]["bins"],
        args.out_json,
        args.out_figure,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    p = snakemake.params
    explore(
        p.data,
        p.demo_folder,
        p.encoders,
        p.data["label_names"],
        p.max_length,
        p.bins,
        Path(snakemake.output.json),
        Path(snakemake.output.figure),
    )
elif __name__ == "__main__":
    main()
