"""One look for every figure: non-interactive backend, seaborn theme, a fixed colour per model,
readable names for metrics and sizes, and atomic saving in every configured format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are written by batch jobs without a display

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from probelab.io import atomic_path  # noqa: E402

METRIC_LABELS = {
    "auroc": "macro AUROC",
    "average_precision": "macro average precision",
    "precision": "macro precision",
    "recall": "macro recall",
    "f1": "macro F1",
    "exact_match": "exact-match ratio",
    "hamming_loss": "Hamming loss",
}
POLICY_LABELS = {"t0.5": "threshold 0.5", "tuned": "tuned thresholds"}
THRESHOLD_FREE = frozenset({"auroc", "average_precision"})


def metric_axis_label(metric: str) -> str:
    """Axis label with its unit: every metric is a fraction in [0, 1]."""
    label = METRIC_LABELS.get(metric, metric)
    return (
        f"{label} (fraction)\nlower is better"
        if metric == "hamming_loss"
        else f"{label} (fraction)"
    )


def metric_title(metric: str, policy: str) -> str:
    """Panel title: the metric and, for thresholded metrics, the threshold policy."""
    label = METRIC_LABELS.get(metric, metric)
    return label if metric in THRESHOLD_FREE else f"{label}, {POLICY_LABELS[policy]}"


def model_order(models: list[str], preferred: list[str]) -> list[str]:
    """The configured order first, then any other model alphabetically."""
    present = set(models)
    return [m for m in preferred if m in present] + sorted(present - set(preferred))


def model_colors(models: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """A colour per model that does not depend on which models a figure shows: the palette is
    indexed by the model's place in the configured order (plus the other models seen)."""
    ordered = model_order(list(models) + list(settings["model_order"]), settings["model_order"])
    colours = sns.color_palette(settings["palette"], n_colors=max(len(ordered), 1))
    mapping = {model: colours[i % len(colours)] for i, model in enumerate(ordered)}
    mapping.update(settings["model_colors"])
    return mapping


def apply_theme(settings: dict[str, Any]) -> None:
    sns.set_theme(style=settings["style"], context=settings["context"])
    plt.rcParams["svg.hashsalt"] = (
        "probelab"  # stable SVG ids, so unchanged figures are byte-identical
    )
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable, editable SVGs


def size_label(n: str, n_train: int) -> str:
    return f"all ({n_train})" if n == "all" else str(n)


def save_figure(figure: plt.Figure, paths: list[Path], dpi: int) -> None:
    """Write the figure in every requested format (from the file suffix), each atomically."""
    for path in paths:
        path = Path(path)
        kind = path.suffix.lstrip(".")
        # no creation date in vector formats, so an unchanged figure is byte-identical
        metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(kind, {})
        with atomic_path(path, suffix=path.suffix) as tmp:
            figure.savefig(tmp, format=kind, dpi=dpi, bbox_inches="tight", metadata=metadata)
    plt.close(figure)
