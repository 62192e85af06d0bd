"""Patient-level bootstrap of the test metrics: bootstrap_ci.csv (a CI per setting) and
comparisons.csv (paired differences between models on the same test images)."""

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.report.aggregate import read_runs, write_table
from probelab.report.intervals import BootstrapSettings, bootstrap_tables

log = logging.getLogger("bootstrap")


def bootstrap(
    run_dirs: list[Path],
    split_path: Path,
    pathologies: list[str],
    resampling: dict[str, Any],
    comparisons: dict[str, Any],
    ci_out: Path,
    comparisons_out: Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap every run's test predictions; resampling = config report.bootstrap,
    comparisons = config report.comparisons."""
    settings = BootstrapSettings(
        resamples=resampling["resamples"],
        seed=resampling["seed"],
        confidence=resampling["confidence"],
        metrics=tuple(resampling["metrics"]),
        reference=comparisons["reference"],
        compared=tuple(comparisons["models"]),
    )
    ci, paired = bootstrap_tables(read_runs(run_dirs), split_path, pathologies, settings)
    write_table(ci_out, ci)
    write_table(comparisons_out, paired)
    log.info(
        "%d interval rows, %d comparison rows (%d resamples)",
        len(ci),
        len(paired),
        settings.resamples,
    )
    return ci, paired


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run folders (results/{cohort}/runs/...)"
    )
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--split", type=Path, required=True, help="results/{cohort}/split.parquet")
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="report folder (results/{cohort}/report)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    bootstrap(
        args.runs,
        args.split,
        config["pathologies"],
        config["report"]["bootstrap"],
        config["report"]["comparisons"],
        args.out_dir / "bootstrap_ci.csv",
        args.out_dir / "comparisons.csv",
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    bootstrap(
        [Path(path).parent for path in snakemake.input.predictions],
        Path(snakemake.input.split),
        snakemake.params.pathologies,
        snakemake.params.resampling,
        snakemake.params.comparisons,
        Path(snakemake.output.ci),
        Path(snakemake.output.comparisons),
    )
elif __name__ == "__main__":
    main()
