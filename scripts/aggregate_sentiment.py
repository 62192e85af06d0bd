"""Collect the sentiment track's metrics.json files (svm and finetune) into one tidy table."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.report.steps import aggregate_sentiment


def main(argv: list[str] | None = None) -> None:
    args, _ = command_line(
        __doc__,
        argv,
        positional={
            "metrics": {
                "type": Path,
                "nargs": "+",
                "help": "results/sentiment/{dataset}/{method}/{model}/metrics.json",
            }
        },
        paths={"--out": {"help": "report/sentiment.csv"}},
    )
    aggregate_sentiment(args.metrics, args.out)


if "snakemake" in globals():
    snakemake_job(snakemake)
    aggregate_sentiment([Path(path) for path in snakemake.input], Path(snakemake.output[0]))
elif __name__ == "__main__":
    main()
