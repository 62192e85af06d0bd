"""Aggregate run folders into the report's tables: metrics.csv (every metric row of every run),
summary_by_setting.csv (mean, std and count over seeds) and history.csv (training histories)."""

import argparse
import logging
from pathlib import Path

import pandas as pd

from probelab.report.aggregate import (
    history_table,
    metrics_table,
    read_runs,
    summarise_by_setting,
    write_table,
)

log = logging.getLogger("aggregate")


def aggregate(
    run_dirs: list[Path], cohort: str, metrics_out: Path, by_setting_out: Path, history_out: Path
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read every run folder and write the three tables; returns them."""
    runs = read_runs(run_dirs)
    metrics = metrics_table(runs, cohort)
    by_setting = summarise_by_setting(metrics)
    history = history_table(runs)
    write_table(metrics_out, metrics)
    write_table(by_setting_out, by_setting)
    write_table(history_out, history)
    log.info(
        "%d runs -> %d metric rows, %d settings rows, %d history rows",
        len(runs),
        len(metrics),
        len(by_setting),
        len(history),
    )
    return metrics, by_setting, history


def main(argv: list[str] | None = None) -> None:
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run folders (results/{cohort}/runs/...)"
    )
    parser.add_argument("--cohort", required=True)
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="report folder (results/{cohort}/report)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    out = args.out_dir
    aggregate(
        args.runs,
        args.cohort,
        out / "metrics.csv",
        out / "summary_by_setting.csv",
        out / "history.csv",
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    aggregate(
        [Path(path).parent for path in snakemake.input.metrics],
        snakemake.params.cohort,
        Path(snakemake.output.metrics),
        Path(snakemake.output.by_setting),
        Path(snakemake.output.history),
    )
elif __name__ == "__main__":
    main()
