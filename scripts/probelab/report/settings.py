"""Which part of the config each report rule sees. Each rule gets only the settings it uses as
Snakemake params, so that changing a figure setting reruns the figure rules and nothing else."""

from __future__ import annotations

import copy
from typing import Any

from probelab.config import ConfigError


def figure_settings(report: dict[str, Any]) -> dict[str, Any]:
    """The figure rules' settings: report.figures plus the model order shared with the summary."""
    return {**report["figures"], "model_order": list(report["model_order"])}


def summary_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the summary sees it: everything but the figure settings, which only change
    how figures look (the summary's config hash is therefore the hash of this reduced config)."""
    reduced = copy.deepcopy(config)
    reduced.get("report", {}).pop("figures", None)
    return reduced


def check_report_config(config: dict[str, Any]) -> None:
    """Rules across report keys that the JSON schema cannot express."""
    report = config["report"]
    missing = [
        m
        for m in report["figures"]["learning_curve_metrics"]
        if m not in report["bootstrap"]["metrics"]
    ]
    if missing:
        raise ConfigError(
            f"config key 'report.figures.learning_curve_metrics' is invalid: {', '.join(missing)} must also be "
            "listed in report.bootstrap.metrics, which gives the learning curves their confidence bands."
        )


FIGURES = ("learning_curves", "auroc_heatmap", "precision_recall", "training_curves")
SENTIMENT_FIGURE = "sentiment_comparison"


def figure_names(config: dict[str, Any]) -> list[str]:
    """The figures of this config: the CXR figures, plus the sentiment comparison when that
    track is enabled."""
    names = list(FIGURES)
    if (config.get("sentiment") or {}).get("enabled"):
        names.append(SENTIMENT_FIGURE)
    return names


def summary_figures(config: dict[str, Any]) -> list[str]:
    """File names summary.md links: the PNG of each figure where PNG is written, else its first format."""
    formats = config["report"]["figures"]["formats"]
    kind = "png" if "png" in formats else formats[0]
    return [f"{name}.{kind}" for name in figure_names(config)]


def report_dir(config: dict[str, Any]) -> str:
    return f"results/{config['cohort']}/report"


def figure_files(config: dict[str, Any], name: str) -> list[str]:
    """The files of one figure, one per configured format."""
    return [
        f"{report_dir(config)}/{name}.{kind}" for kind in config["report"]["figures"]["formats"]
    ]


def report_figures(config: dict[str, Any]) -> list[str]:
    return [path for name in figure_names(config) for path in figure_files(config, name)]


def summary_inputs(config: dict[str, Any]) -> dict[str, str]:
    """What summary.md is written from: the aggregated tables and the cohort's counts. Not the
    figures: summary.md links them by name, so redrawing a figure does not rewrite it."""
    results = f"results/{config['cohort']}"
    inputs = {
        "by_setting": f"{report_dir(config)}/summary_by_setting.csv",
        "ci": f"{report_dir(config)}/bootstrap_ci.csv",
        "comparisons": f"{report_dir(config)}/comparisons.csv",
        "index_counts": f"{results}/index_counts.json",
        "index": f"{results}/index.parquet",
        "split": f"{results}/split.parquet",
    }
    if SENTIMENT_FIGURE in figure_names(config):
        inputs["sentiment"] = f"{report_dir(config)}/sentiment.csv"
    return inputs
