"""Internal vs external test: the transfer table (transfer.csv) and its figure.

Each row is one setting (encoder x model x training-set size, seeds averaged) and metric: the
estimate and interval on the training cohort's test split and on an external cohort, both from
the same patient bootstrap (probelab.report.intervals) over the same pathologies: those the run
evaluates on both sides. The two intervals come from different patients, so they are not a paired
test of the difference: a gap much wider than both intervals is a shift in performance; a
smaller one is not evidence either way. A pathology the external cohort does not label is out of
both sides and named in the `missing` column.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from probelab.report.aggregate import Run

if TYPE_CHECKING:  # matplotlib is imported by the figure only, not by the transfer table's step
    import matplotlib.pyplot as plt

TRANSFER_METRICS = ("auroc", "average_precision", "f1")
TRANSFER_COLUMNS = [
    "external",
    "encoder",
    "model",
    "n",
    "n_train",
    "policy",
    "metric",
    "internal",
    "internal_low",
    "internal_high",
    "external_value",
    "external_low",
    "external_high",
    "difference",
    "pathologies",
    "missing",
    "n_external_images",
    "n_external_patients",
    "confidence",
]


def shared_pathologies(internal: list[Run], external: list[Run]) -> dict[tuple, set[str]]:
    """Run key -> the pathologies the run evaluates both internally and externally."""
    evaluated = {run.key: set(run.evaluated or []) for run in external}
    return {
        run.key: set(run.evaluated or []) & evaluated.get(run.key, set())
        for run in internal
        if run.key in evaluated
    }


def transfer_table(
    name: str,
    internal: pd.DataFrame,
    external: pd.DataFrame,
    common: dict[tuple, set[str]],
    external_runs: list[Run],
) -> pd.DataFrame:
    """One external cohort's rows of transfer.csv from the two CI tables."""
    keys = ["encoder", "model", "n", "policy", "metric"]
    both = internal.merge(external, on=keys, suffixes=("_in", "_out"), validate="one_to_one")
    missing = {
        run.key[:3]: sorted(p for p, why in run.excluded.items() if "not labelled" in why)
        for run in external_runs
    }
    shared = {key[:3]: sorted(value) for key, value in common.items()}
    rows = []
    for _, row in both.iterrows():
        setting = (row["encoder"], row["model"], str(row["n"]))
        rows.append(
            [
                name,
                *setting,
                row["n_train_in"],
                row["policy"],
                row["metric"],
                row["estimate_in"],
                row["ci_low_in"],
                row["ci_high_in"],
                row["estimate_out"],
                row["ci_low_out"],
                row["ci_high_out"],
                row["estimate_out"] - row["estimate_in"],
                "|".join(shared.get(setting, [])),
                "|".join(missing.get(setting, [])),
                row["n_images_out"],
                row["n_patients_out"],
                row["confidence_in"],
            ]
        )
    return pd.DataFrame(rows, columns=TRANSFER_COLUMNS)


def headline_rows(table: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """The rows at each setting's largest training-set size, one metric, tuned policy."""
    rows = table[(table["metric"] == metric) & (table["policy"] == "tuned")]
    largest = rows.groupby(["external", "encoder", "model"])["n_train"].transform("max")
    return rows[rows["n_train"] == largest]


def transfer_figure(table: pd.DataFrame, paths: list[Path], settings: dict[str, Any]) -> plt.Figure:
    """Macro AUROC on the internal test split and on each external cohort, per model, at the
    largest training-set size, with each side's bootstrap interval."""
    import matplotlib.pyplot as plt

    from probelab.report.style import (
        apply_theme,
        model_colors,
        model_order,
        save_figure,
        size_label,
    )

    apply_theme(settings)
    rows = headline_rows(table)
    panels = sorted(rows.groupby(["external", "encoder"]).groups)
    order = model_order(list(rows["model"].unique()), settings["model_order"])
    colours = model_colors(order, settings)
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(max(6.0, 0.55 * len(order) + 1.5) * len(panels), 5.2),
        squeeze=False,
        sharey=True,
    )
    for ax, (external, encoder) in zip(axes[0], panels, strict=True):
        panel = rows[(rows["external"] == external) & (rows["encoder"] == encoder)]
        for x, model in enumerate(order):
            line = panel[panel["model"] == model]
            if line.empty:
                continue
            row = line.iloc[0]
            values = [row["internal"], row["external_value"]]
            lows = [row["internal_low"], row["external_low"]]
            highs = [row["internal_high"], row["external_high"]]
            xs = [x - 0.15, x + 0.15]
            ax.plot(xs, values, color=colours[model], linewidth=1)
            for xi, value, low, high, marker in zip(xs, values, lows, highs, "os", strict=True):
                ax.errorbar(
                    xi,
                    value,
                    yerr=np.array([[value - low], [high - value]]),
                    fmt=marker,
                    color=colours[model],
                    capsize=2,
                )
        ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xticks(range(len(order)), order, rotation=40, ha="right", fontsize="x-small")
        n_train = int(panel["n_train"].max()) if not panel.empty else 0
        missing = panel["missing"].iloc[0] if not panel.empty else ""
        title = f"{encoder} → {external}: {size_label('all', n_train)} training images"
        if missing:
            title += "\n" + textwrap.fill(f"not labelled there: {missing.replace('|', ', ')}", 60)
        ax.set_title(title, fontsize="small")
        ax.set_ylabel("macro AUROC (test)")
    confidence = float(rows["confidence"].iloc[0]) if not rows.empty else 0.95
    figure.suptitle(
        textwrap.fill(
            "Internal (circle, left) vs external (square, right) test of the same frozen runs "
            f"and thresholds; bars: {confidence:.0%} patient-bootstrap intervals of the seed "
            "mean, over the pathologies both sides evaluate. The sides are different patients: "
            "overlap is not a test.",
            110,
        ),
        fontsize="small",
    )
    figure.tight_layout()
    save_figure(figure, paths, settings["dpi"])
    return figure
