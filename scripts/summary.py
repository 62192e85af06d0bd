"""Write results/{cohort}/report/summary.md: headline table with CIs, comparisons, figures, data
counts, encoders, provenance (config hash, package versions) and caveats."""

import argparse
import logging
from pathlib import Path
from typing import Any

from probelab.io import write_text
from probelab.report.aggregate import read_table
from probelab.report.summary import write_summary_text

log = logging.getLogger("summary")


def write_summary(
    config: dict[str, Any],
    tables: dict[str, Path],
    cohort_files: dict[str, Path],
    figures: list[str],
    out: Path,
) -> str:
    """tables: by_setting, ci, comparisons and optionally sentiment (CSV paths); cohort_files:
    index_counts, split, index; figures: file names of the figures (next to summary.md) to link;
    config: the validated config without report.figures (probelab.report.settings.summary_config)."""
    sentiment = read_table(tables["sentiment"]) if tables.get("sentiment") else None
    text = write_summary_text(
        config=config,
        by_setting=read_table(tables["by_setting"]),
        ci=read_table(tables["ci"]),
        comparisons=read_table(tables["comparisons"]),
        figures=figures,
        index_counts=cohort_files["index_counts"],
        split_path=cohort_files["split"],
        index_path=cohort_files["index"],
        sentiment=sentiment,
    )
    write_text(out, text)
    log.info("wrote %s (%d lines)", out, text.count("\n"))
    return text


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging
    from probelab.report.settings import summary_config, summary_figures

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    results = Path("results") / config["cohort"]
    report = results / "report"
    tables = {
        "by_setting": report / "summary_by_setting.csv",
        "ci": report / "bootstrap_ci.csv",
        "comparisons": report / "comparisons.csv",
    }
    if (report / "sentiment.csv").exists():
        tables["sentiment"] = report / "sentiment.csv"
    figures = summary_figures(config)
    cohort_files = {
        "index_counts": results / "index_counts.json",
        "split": results / "split.parquet",
        "index": results / "index.parquet",
    }
    write_summary(summary_config(config), tables, cohort_files, figures, report / "summary.md")


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    inputs = snakemake.input
    write_summary(
        snakemake.params.config,
        {
            key: Path(inputs[key])
            for key in ("by_setting", "ci", "comparisons", "sentiment")
            if key in inputs.keys()
        },
        {key: Path(inputs[key]) for key in ("index_counts", "split", "index")},
        snakemake.params.figures,
        Path(snakemake.output[0]),
    )
elif __name__ == "__main__":
    main()
