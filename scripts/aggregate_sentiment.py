"""Collect the sentiment track's cells (metrics.json and test predictions of every method, size
and seed) into its report tables: learning curves with intervals, every cell, paired
comparisons against the reference setting."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.report.sentiment import aggregate_sentiment_track
from probelab.sentiment.matrix import reference_setting


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        positional={
            "metrics": {
                "type": Path,
                "nargs": "+",
                "help": "results/sentiment/{dataset}/.../n{n}/seed{seed}/metrics.json",
            }
        },
        paths={
            "--out": {"help": "report/sentiment.csv"},
            "--out-runs": {"help": "report/sentiment_runs.csv"},
            "--out-comparisons": {"help": "report/sentiment_comparisons.csv"},
        },
    )
    aggregate_sentiment_track(
        args.metrics,
        config["report"]["bootstrap"],
        reference_setting(config["sentiment"]),
        args.out,
        args.out_runs,
        args.out_comparisons,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    out = snakemake.output
    aggregate_sentiment_track(
        [Path(path) for path in snakemake.input.metrics],
        snakemake.params.resampling,
        snakemake.params.reference,
        Path(out.by_setting),
        Path(out.runs),
        Path(out.comparisons),
    )
elif __name__ == "__main__":
    main()
