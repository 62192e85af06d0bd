"""Collect the sentiment track's metrics.json files (svm and finetune) into one tidy table."""

import argparse
import logging
from pathlib import Path

import pandas as pd

from probelab.report.aggregate import sentiment_table, write_table

log = logging.getLogger("aggregate_sentiment")


def aggregate_sentiment(metrics_files: list[Path], out: Path) -> pd.DataFrame:
    table = sentiment_table(metrics_files)
    write_table(out, table)
    log.info("%d sentiment metric rows from %d files", len(table), len(metrics_files))
    return table


def main(argv: list[str] | None = None) -> None:
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "metrics",
        type=Path,
        nargs="+",
        help="results/sentiment/{dataset}/{method}/{model}/metrics.json",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    aggregate_sentiment(args.metrics, args.out)


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    aggregate_sentiment([Path(path) for path in snakemake.input], Path(snakemake.output[0]))
elif __name__ == "__main__":
    main()
