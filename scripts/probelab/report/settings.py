"""Which part of the config each report rule sees. Each rule gets only the settings it uses as
Snakemake params, so that changing a figure setting reruns the figure rules and nothing else."""

from __future__ import annotations

import copy
from typing import Any

from probelab.layout import FIGURES, SENTIMENT_FIGURE, TRANSFER_FIGURE


def figure_settings(report: dict[str, Any]) -> dict[str, Any]:
    """The figure rules' settings: report.figures plus the model order shared with the summary."""
    return {**report["figures"], "model_order": list(report["model_order"])}


def summary_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the summary sees it: everything but the figure settings, which only change
    how figures look (the summary's config hash is therefore the hash of this reduced config)."""
    reduced = copy.deepcopy(config)
    reduced.get("report", {}).pop("figures", None)
    return reduced


def figure_names(config: dict[str, Any]) -> list[str]:
    """The figures of this config: the CXR figures, plus the sentiment comparison when that
    track is enabled."""
    names = [name for name in FIGURES if name not in (SENTIMENT_FIGURE, TRANSFER_FIGURE)]
    if config.get("external"):
        names.append(TRANSFER_FIGURE)
    if (config.get("sentiment") or {}).get("enabled"):
        names.append(SENTIMENT_FIGURE)
    return names


def summary_figures(config: dict[str, Any]) -> list[str]:
    """File names summary.md links: each figure's PNG where PNG is written, else its first
    format."""
    formats = config["report"]["figures"]["formats"]
    kind = "png" if "png" in formats else formats[0]
    return [f"{name}.{kind}" for name in figure_names(config)]
