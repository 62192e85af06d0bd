"""Write the demo's generated movie-review set (train / validation / test JSON lines)."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.demo import make_demo_reviews


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__, argv, paths={"--out": {"help": "folder for train/validation/test.jsonl"}}
    )
    make_demo_reviews(args.out, config["sentiment"]["demo"])


if "snakemake" in globals():
    snakemake_job(snakemake)
    make_demo_reviews(Path(snakemake.output[0]).parent, snakemake.params.demo)
elif __name__ == "__main__":
    main()
