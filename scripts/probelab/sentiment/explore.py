"""Exploring the review splits: sizes, label balance, text lengths in characters and in tokens.

Writes `explore/explore.json` and the figure `explore/lengths.png` (docs/sentiment.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from probelab.io import atomic_path, write_json
from probelab.sentiment import SPLITS
from probelab.sentiment.data import load_splits
from probelab.sentiment.encoder import load_tokenizer

log = logging.getLogger(__name__)

PERCENTILES = (5, 25, 50, 75, 95, 99)


def length_stats(lengths: np.ndarray, max_length: int | None = None) -> dict[str, Any]:
    """Minimum, maximum, mean and percentiles of `lengths`, and the share above `max_length`."""
    stats: dict[str, Any] = {
        "min": int(lengths.min()),
        "max": int(lengths.max()),
        "mean": float(lengths.mean()),
        **{f"p{p}": float(np.percentile(lengths, p)) for p in PERCENTILES},
    }
    if max_length is not None:
        # share of texts the features / fine-tuning steps will truncate
        stats["over_max_length"] = float((lengths > max_length).mean())
    return stats


def explore(
    data: dict[str, Any],
    demo_folder: Path | None,
    encoders: list[dict[str, str]],
    label_names: list[str],
    max_length: int,
    bins: int,
    out_json: Path,
    out_figure: Path,
) -> dict[str, Any]:
    """Write split sizes, label balance and length distributions (JSON) and their figure."""
    splits = load_splits(data, demo_folder)
    tokenizers = {encoder["name"]: load_tokenizer(encoder["model"]) for encoder in encoders}
    summary: dict[str, Any] = {"splits": {}, "max_length": max_length}
    lengths: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        texts, labels = list(splits[split]["text"]), np.asarray(list(splits[split]["label"]))
        lengths[split] = {"characters": np.array([len(t) for t in texts])}
        for name, tokenizer in tokenizers.items():
            # full length (no truncation), with the special tokens the model sees
            lengths[split][name] = np.array([len(ids) for ids in tokenizer(texts)["input_ids"]])
        summary["splits"][split] = {
            "n": len(texts),
            "labels": {label_names[k]: int((labels == k).sum()) for k in range(len(label_names))},
            "positive_share": float(labels.mean()),
            "characters": length_stats(lengths[split]["characters"]),
            "tokens": {name: length_stats(lengths[split][name], max_length) for name in tokenizers},
        }
        log.info(
            "%s: %d texts, %.1f%% positive, median %d characters",
            split,
            len(texts),
            100 * labels.mean(),
            np.median(lengths[split]["characters"]),
        )
    write_json(out_json, summary)
    _figure(summary, lengths, list(tokenizers), label_names, bins, out_figure)
    return summary


def integer_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """About `bins` bins of equal integer width: lengths are integers, and unequal integer counts
    per bin would draw a comb."""
    low, high = int(values.min()), int(values.max())
    width = max(1, -(-(high - low + 1) // bins))
    return np.arange(low, high + width + 1, width) - 0.5


def _figure(
    summary: dict[str, Any],
    lengths: dict[str, dict[str, np.ndarray]],
    encoders: list[str],
    label_names: list[str],
    bins: int,
    out: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["labels", "characters", *encoders]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    width = 0.8 / len(label_names)
    for k, name in enumerate(label_names):
        counts = [summary["splits"][split]["labels"][name] for split in SPLITS]
        axes[0].bar(np.arange(len(SPLITS)) + k * width, counts, width, label=name)
    axes[0].set_xticks(np.arange(len(SPLITS)) + width * (len(label_names) - 1) / 2, SPLITS)
    axes[0].set_title("label balance")
    axes[0].set_ylabel("reviews")
    axes[0].legend()
    for axis, panel in zip(axes[1:], panels[1:], strict=True):
        edges = integer_bins(np.concatenate([lengths[split][panel] for split in SPLITS]), bins)
        for split in SPLITS:
            axis.hist(lengths[split][panel], bins=edges, density=True, histtype="step", label=split)
        axis.set_title(
            "length in characters" if panel == "characters" else f"length in tokens ({panel})"
        )
        axis.set_ylabel("density")
        axis.legend()
    figure.tight_layout()
    with atomic_path(out, suffix=out.suffix) as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)
