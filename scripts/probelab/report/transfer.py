"""Internal vs external test: the transfer table (transfer.csv) and its figure.

Each row is one setting (encoder x model x training-set size, seeds averaged) and metric: the
estimate and interval on the training cohort's test split and on an external cohort, both from
the same patient bootstrap (probelab.report.intervals) over the same pathologies: those the run
evaluates on both sides. The two intervals come from different patients, so they are not a paired
test of the difference: a gap much wider than both intervals is a shift in performance; a
smaller one is not evidence either way. A pathology the external cohort does not label is out of
both sides and named in the `missing` column; one it labels that is not compared (too few
positives there, not trained, not evaluated internally) is named with the reason in `excluded`.
When no pathology is compared at all, the estimates are empty and `not_compared` says why.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from probelab.report.aggregate import Run, set_members

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
    "excluded",
    "n_external_images",
    "n_external_patients",
    "confidence",
]


# The reason of a pathology the external run evaluates but the internal run does not (the
# external metrics.json lists only its own side's exclusions).
NOT_EVALUATED_INTERNALLY = "not evaluated on the internal test split"


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
    excluded = _excluded(external_runs, shared)
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
                excluded.get(setting, ""),
                row["n_images_out"],
                row["n_patients_out"],
                row["confidence_in"],
            ]
        )
    return pd.DataFrame(rows, columns=TRANSFER_COLUMNS)


def _excluded(external_runs: list[Run], shared: dict[tuple, list[str]]) -> dict[tuple, str]:
    """Setting -> "pathology: reason|..." for every pathology the external cohort labels that the
    setting does not compare, with each distinct reason of its seeds (" / "-joined: a reason
    may hold a ";")."""
    reasons: dict[tuple, dict[str, list[str]]] = defaultdict(dict)
    for run in external_runs:
        setting = run.key[:3]
        for pathology in [*(run.evaluated or []), *run.excluded]:
            why = run.excluded.get(pathology, NOT_EVALUATED_INTERNALLY)
            if pathology in shared.get(setting, []) or "not labelled" in why:
                continue
            seen = reasons[setting].setdefault(pathology, [])
            if why not in seen:
                seen.append(why)
    return {
        setting: "|".join(f"{p}: {' / '.join(whys)}" for p, whys in sorted(found.items()))
        for setting, found in reasons.items()
    }


def compared(table: pd.DataFrame) -> pd.Series:
    """Whether each row of transfer.csv compares at least one pathology."""
    return table["pathologies"].map(lambda cell: bool(set_members(cell)))


def not_compared(name: str, rows: pd.DataFrame) -> str:
    """One sentence: why nothing is compared on external cohort `name`, from its rows of
    transfer.csv (none of which has a pathology evaluated on both sides). A transfer.csv written
    before the `excluded` column gives the sentence without the reasons."""
    reasons: dict[str, list[str]] = {}
    for cell in rows["excluded"] if "excluded" in rows else []:
        for entry in set_members(cell):
            pathology, why = entry.split(": ", 1)
            seen = reasons.setdefault(pathology, [])
            if why not in seen:
                seen.append(why)
    missing = sorted({p for cell in rows["missing"] for p in set_members(cell)})
    size = (
        f" ({int(rows['n_external_images'].iloc[0])} images of "
        f"{int(rows['n_external_patients'].iloc[0])} patients)"
        if not rows.empty
        else ""
    )
    described = [f"{p} ({' / '.join(whys)})" for p, whys in sorted(reasons.items())]
    if len(described) == 1:
        why = f"the only configured pathology it labels is not compared: {described[0]}"
    elif described:
        why = f"no configured pathology it labels is compared: {', '.join(described)}"
    elif rows.empty:
        why = "no run was scored on it (transfer.csv has no row for it)"
    else:
        why = "no pathology is evaluated both by the runs and there"
    unlabelled = f"; it does not label {', '.join(missing)}" if missing else ""
    return f"Nothing is compared on external cohort {name}{size}: {why}{unlabelled}."


def headline_rows(table: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """The rows at each setting's largest training-set size, one metric, tuned policy."""
    rows = table[(table["metric"] == metric) & (table["policy"] == "tuned")]
    largest = rows.groupby(["external", "encoder", "model"])["n_train"].transform("max")
    return rows[rows["n_train"] == largest]


def _message(ax: plt.Axes, text: str) -> None:
    """A panel that says in words why it has nothing to draw."""
    ax.text(0.5, 0.5, textwrap.fill(text, 60), ha="center", va="center", fontsize="small")
    ax.set_axis_off()


def transfer_figure(table: pd.DataFrame, paths: list[Path], settings: dict[str, Any]) -> plt.Figure:
    """Macro AUROC on the internal test split and on each external cohort, per model, at the
    largest training-set size, with each side's bootstrap interval. A panel whose runs compare no
    pathology says why (`not_compared`) instead; a table without a headline row gives a figure
    that says so, as training_curves does for runs without epochs."""
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
    if not panels:
        figure, ax = plt.subplots(figsize=(6.0, 3.0))
        _message(ax, "transfer.csv has no tuned-threshold macro AUROC: nothing to compare.")
        figure.suptitle("External test sets")
        save_figure(figure, paths, settings["dpi"])
        return figure
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
        largest = panel.loc[panel["n_train"].idxmax()]
        size = size_label(str(largest["n"]), int(largest["n_train"]))
        title = f"{encoder} → {external}: {size} training images"
        if not compared(panel).any():
            ax.set_title(title, fontsize="small")
            _message(ax, not_compared(external, panel))
            continue
        for x, model in enumerate(order):
            line = panel[(panel["model"] == model) & compared(panel)]
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
        missing = set_members(panel["missing"].iloc[0])
        if missing:
            title += "\n" + textwrap.fill(f"not labelled there: {', '.join(missing)}", 60)
        ax.set_title(title, fontsize="small")
        ax.set_ylabel("macro AUROC (test)")
    confidence = float(rows["confidence"].iloc[0])
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
