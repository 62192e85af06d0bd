"""Draw one report figure from the aggregated tables (never from run folders), in every
configured format: learning_curves, auroc_heatmap, precision_recall, training_curves,
sentiment_comparison."""

import argparse
import logging
from pathlib import Path
from typing import Any

from probelab.report import figures
from probelab.report.aggregate import read_table

log = logging.getLogger("figures")

# figure name -> the aggregated tables it reads
TABLES = {
    "learning_curves": ("by_setting", "ci"),
    "auroc_heatmap": ("by_setting",),
    "precision_recall": ("by_setting", "ci"),
    "training_curves": ("history",),
    "sentiment_comparison": ("sentiment",),
}
TABLE_FILES = {
    "by_setting": "summary_by_setting.csv",
    "ci": "bootstrap_ci.csv",
    "history": "history.csv",
    "sentiment": "sentiment.csv",
}


def draw_figure(
    name: str,
    tables: dict[str, Path],
    outputs: list[Path],
    settings: dict[str, Any],
    policy: str,
    pathologies: list[str],
) -> None:
    """Draw figure `name` into `outputs` (one path per format) from the tables it needs."""
    if name not in TABLES:
        raise ValueError(f"unknown figure {name!r}; expected one of {', '.join(TABLES)}.")
    data = {key: read_table(tables[key]) for key in TABLES[name]}
    if name == "learning_curves":
        figures.learning_curves(data["by_setting"], data["ci"], outputs, settings, policy)
    elif name == "auroc_heatmap":
        figures.auroc_heatmap(data["by_setting"], outputs, settings, policy, pathologies)
    elif name == "precision_recall":
        figures.precision_recall(data["by_setting"], data["ci"], outputs, settings, policy)
    elif name == "training_curves":
        figures.training_curves(data["history"], outputs, settings)
    else:
        figures.sentiment_comparison(data["sentiment"], outputs, settings)
    log.info("wrote %s", ", ".join(map(str, outputs)))


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging
    from probelab.report.settings import figure_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("figure", choices=sorted(TABLES))
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument(
        "--report-dir",
        type=Path,
        required=True,
        help="results/{cohort}/report: tables in, figures out",
    )
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    settings = figure_settings(config["report"])
    tables = {key: args.report_dir / file for key, file in TABLE_FILES.items()}
    outputs = [args.report_dir / f"{args.figure}.{kind}" for kind in settings["formats"]]
    draw_figure(
        args.figure, tables, outputs, settings, config["report"]["policy"], config["pathologies"]
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    draw_figure(
        snakemake.params.figure,
        {key: Path(path) for key, path in snakemake.input.items()},
        [Path(path) for path in snakemake.output],
        snakemake.params.settings,
        snakemake.params.policy,
        snakemake.params.pathologies,
    )
elif __name__ == "__main__":
    main()
