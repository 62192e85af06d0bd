"""The report's figures, drawn from the aggregated tables only (never from run folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from probelab.report.aggregate import (
    ReportInputError,
    overall_test_rows,
    pick_size,
    set_members,
    size_order,
)
from probelab.report.style import (
    POLICY_LABELS,
    THRESHOLD_FREE,
    apply_theme,
    metric_axis_label,
    metric_title,
    model_colors,
    model_order,
    plt,
    save_figure,
    size_label,
    sns,
)
from probelab.subsets import mix_kind

BASELINE_POLICIES = ("all_negative", "prevalence")
MODEL_POLICIES = ("t0.5", "tuned")
SENTIMENT_METHODS = {
    "svm": "SVM on frozen features",
    "logreg": "logistic regression on frozen features",
    "finetune": "fine-tuned encoder",
}
SENTIMENT_POOLINGS = {"cls": "[CLS]", "mean": "mean-pooled"}
# line style per pooling of the frozen-feature methods (fine-tuning pools with its own head)
SENTIMENT_DASHES = {"cls": "--", "mean": "-", "head": "-"}


class FigureInputError(ReportInputError):
    """An aggregated table lacks what a figure needs."""


def _policy_rows(table: pd.DataFrame, metric: str, policy: str) -> pd.DataFrame:
    """Rows of `metric` under `policy`; a threshold-free metric may be stored under any model
    policy."""
    rows = table[(table["metric"] == metric) & table["policy"].isin(MODEL_POLICIES)]
    if metric in THRESHOLD_FREE:
        rows = rows.assign(_rank=(rows["policy"] != policy).astype(int)).sort_values("_rank")
        return rows.drop_duplicates(
            [c for c in ("encoder", "model", "n", "pathology") if c in rows.columns]
        )
    return rows[rows["policy"] == policy]


def _grid(
    rows: int, cols: int, settings: dict[str, Any], **kwargs: Any
) -> tuple[plt.Figure, np.ndarray]:
    figure, axes = plt.subplots(
        rows,
        cols,
        figsize=(settings["panel_width"] * cols, settings["panel_height"] * rows),
        squeeze=False,
        **kwargs,
    )
    return figure, axes


def _figure_legend(figure: plt.Figure, handles: list, labels: list[str]) -> None:
    figure.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model"
    )


def learning_curves(
    by_setting: pd.DataFrame,
    ci: pd.DataFrame,
    paths: list[Path],
    settings: dict[str, Any],
    policy: str,
) -> plt.Figure:
    """Test metrics vs training-set size (log x), mean over seeds with interval bands, and the
    all-negative baseline as a reference line; rows = encoders, columns = metrics.

    Line and band both come from bootstrap_ci.csv (estimate, interval), so they average the same
    pathologies, those every run evaluates (its pathology_set, named in the title).

    Bands resample seeds and test patients together (bootstrap_ci.csv ci_low_seeds /
    ci_high_seeds; tables without them: the patient interval). A size whose training mix differs
    distinctly from the curve's other sizes (`mix_outliers`, e.g. `all` under the balanced
    sampling policy) gets a hollow marker and a dashed segment, and the title says how."""
    apply_theme(settings)
    metrics = settings["learning_curve_metrics"]
    macro = overall_test_rows(by_setting)
    if macro.empty:
        raise FigureInputError("summary_by_setting.csv has no test rows; nothing to plot.")
    missing = [m for m in metrics if m not in set(ci["metric"])]
    if missing:
        raise FigureInputError(
            f"bootstrap_ci.csv has no interval for {', '.join(missing)}; "
            "add it to report.bootstrap.metrics."
        )
    low, high, band_words = _band_columns(ci)
    marked, mix_note = mix_outliers(ci)
    encoders = sorted(macro["encoder"].unique())
    models = model_order(
        macro.loc[~macro["policy"].isin(BASELINE_POLICIES), "model"].unique().tolist(),
        settings["model_order"],
    )
    colours = model_colors(models, settings)
    figure, axes = _grid(len(encoders), len(metrics), settings, sharex=True)
    handles: dict[str, Any] = {}
    for row, encoder in enumerate(encoders):
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            mine = macro[macro["encoder"] == encoder]
            bands = ci[
                (ci["encoder"] == encoder) & (ci["metric"] == metric) & (ci["policy"] == policy)
            ]
            for model in models:
                band = bands[bands["model"] == model].sort_values("n_train")
                if band.empty:
                    continue
                handles.setdefault(model, _curve(ax, band, marked, colours[model]))
                ax.fill_between(
                    band["n_train"],
                    band[low],
                    band[high],
                    color=colours[model],
                    alpha=0.2,
                    linewidth=0,
                )
            baseline = _baseline_value(mine, metric, policy)
            if baseline is not None:
                value, name = baseline
                handles.setdefault(
                    name, ax.axhline(value, color="0.35", linestyle="--", linewidth=1.2)
                )
            ax.set_xscale("log")
            ticks = mine.drop_duplicates("n")[["n", "n_train"]].sort_values("n_train")
            ax.set_xticks(
                ticks["n_train"].tolist(),
                [size_label(n, t) for n, t in zip(ticks["n"], ticks["n_train"], strict=True)],
            )
            ax.minorticks_off()
            ax.set_title(f"{encoder}\n{metric_title(metric, policy)}", fontsize="medium")
            ax.set_ylabel(metric_axis_label(metric))
            if row == len(encoders) - 1:
                ax.set_xlabel("training images (log scale)")
    if marked:
        handles["different training mix"] = Line2D(
            [], [], color="0.35", linestyle="--", marker="o", markerfacecolor="white"
        )
    confidence = _confidence_words(ci)
    title = f"Learning curves on the test split: mean over seeds, band = {confidence}{band_words}"
    title += "\n" + pathology_set_words(ci)
    figure.suptitle(title + (f"\n{mix_note}" if mix_note else ""), y=1.0)
    _figure_legend(figure, list(handles.values()), list(handles))
    figure.tight_layout()
    save_figure(figure, paths, settings["dpi"])
    return figure


def _band_columns(ci: pd.DataFrame) -> tuple[str, str, str]:
    """The interval columns the bands show and how to name them."""
    if {"ci_low_seeds", "ci_high_seeds"} <= set(ci.columns) and ci["ci_low_seeds"].notna().any():
        return "ci_low_seeds", "ci_high_seeds", " interval over seeds and test patients"
    return "ci_low", "ci_high", " patient-bootstrap interval"


def _confidence_words(ci: pd.DataFrame) -> str:
    if "confidence" in ci.columns and ci["confidence"].notna().any():
        return f"{float(ci['confidence'].dropna().iloc[0]):.0%}"
    return "95%"


def pathology_set_words(table: pd.DataFrame) -> str:
    """What the table's metrics over many pathologies average, from its pathology_set column."""
    if "pathology_set" not in table.columns or table.empty:
        return "macro metrics over each run's evaluated pathologies"
    members = set_members(table["pathology_set"].iloc[0])
    if not members:
        return "no pathology is evaluated by every run: no macro value"
    return f"every macro metric averages the {len(members)} pathologies every run evaluates: " + (
        ", ".join(members)
    )


def _curve(ax, line: pd.DataFrame, marked: set[str], colour: Any) -> Line2D:
    """One model's mean curve (bootstrap_ci.csv estimates): solid between sizes of the same
    training mix, dashed into a size whose mix differs, hollow marker on that size. Returns the
    legend handle."""
    x = line["n_train"].to_numpy(float)
    y = line["estimate"].to_numpy(float)
    odd = line["n"].astype(str).isin(marked).to_numpy()
    for i in range(len(x) - 1):
        style = "--" if odd[i] or odd[i + 1] else "-"
        ax.plot(x[i : i + 2], y[i : i + 2], color=colour, linestyle=style)
    for hollow in (False, True):
        keep = odd == hollow
        if keep.any():
            ax.plot(
                x[keep],
                y[keep],
                linestyle="none",
                marker="o",
                color=colour,
                markerfacecolor="white" if hollow else colour,
                markeredgewidth=1.5,
            )
    return Line2D([], [], color=colour, marker="o")


# A size's training mix differs "distinctly" from the rest of its curve when its all-negative
# share is this far (absolute) from theirs, or its mean prevalence differs by this fraction.
MIX_SHARE_GAP = 0.05
MIX_PREVALENCE_RATIO = 0.25


def mix_outliers(ci: pd.DataFrame) -> tuple[set[str], str]:
    """The sizes whose training mix differs distinctly from the other sizes', and a sentence
    saying how ("" when none does or the table has no mix columns).

    The reference mix is the median over the sizes drawn with the mix the sampling policy aims at
    (bootstrap_ci.csv subset_policy; probelab.subsets.mix_kind): the balanced sizes for
    `balanced`, where the size `all` keeps the natural mix, every size for `stratified`. A size is
    marked when its all-negative share or mean prevalence (means over seeds, from the subsets' mix
    files) differs from the reference by MIX_SHARE_GAP or by MIX_PREVALENCE_RATIO of it."""
    needed = {"n", "subset_policy", "train_all_negative_share", "train_mean_prevalence"}
    if not needed <= set(ci.columns):
        return set(), ""
    sizes = (
        ci.dropna(subset=["train_all_negative_share", "train_mean_prevalence"])
        .assign(
            n=lambda t: t["n"].astype(str), subset_policy=lambda t: t["subset_policy"].astype(str)
        )
        .groupby("n")
        .agg(
            policy=("subset_policy", "first"),
            share=("train_all_negative_share", "mean"),
            prevalence=("train_mean_prevalence", "mean"),
            n_train=("n_train", "max"),
        )
    )
    if sizes.empty:
        return set(), ""
    policy = sizes["policy"].iloc[0]
    aimed = "natural" if policy == "stratified" else "balanced"
    reference = sizes[[mix_kind(policy, n) == aimed for n in sizes.index]]
    if reference.empty:
        return set(), ""
    share, prevalence = reference["share"].median(), reference["prevalence"].median()
    distinct = sizes[
        ((sizes["share"] - share).abs() >= MIX_SHARE_GAP)
        | ((sizes["prevalence"] - prevalence).abs() >= MIX_PREVALENCE_RATIO * prevalence)
    ]
    if distinct.empty:
        return set(), ""
    described = ", ".join(
        f"{size_label(n, int(row['n_train']))}: {row['share']:.2f}, {row['prevalence']:.3f}"
        for n, row in distinct.iterrows()
    )
    note = (
        f"Hollow marker, dashed line: training mix differs from the {aimed} mix of the other "
        f"sizes ({policy} sampling; all-negative share, mean prevalence: {described} vs "
        f"{share:.2f}, {prevalence:.3f})"
    )
    return set(distinct.index), note


def _baseline_value(rows: pd.DataFrame, metric: str, policy: str) -> tuple[float, str] | None:
    """The trivial baseline of a metric: all negative, else predicting the prevalence."""
    for baseline in BASELINE_POLICIES:
        values = rows[(rows["policy"] == baseline) & (rows["metric"] == metric)]["mean"].dropna()
        if not values.empty:
            return float(values.mean()), f"{baseline.replace('_', '-')} baseline"
    return None


def auroc_heatmap(
    by_setting: pd.DataFrame,
    paths: list[Path],
    settings: dict[str, Any],
    policy: str,
    pathologies: list[str],
) -> plt.Figure:
    """Per-pathology test AUROC (mean over seeds) at one size: pathologies x models, one panel per
    encoder."""
    apply_theme(settings)
    size = pick_size(by_setting, settings["heatmap_size"], "report.figures.heatmap_size")
    rows = by_setting[(by_setting["split"] == "test") & (by_setting["n"] == size)]
    rows = _policy_rows(rows[rows["pathology"].isin(pathologies)], "auroc", policy)
    if rows.empty:
        raise FigureInputError(
            f"summary_by_setting.csv has no per-pathology test AUROC at size {size}."
        )
    encoders = sorted(rows["encoder"].unique())
    models = model_order(rows["model"].unique().tolist(), settings["model_order"])
    n_train = int(rows["n_train"].max())
    low = float(min(0.5, rows["mean"].min()))
    figure, axes = _grid(1, len(encoders), settings, sharey=True)
    # cells stay readable whatever the number of models and pathologies
    figure.set_size_inches(
        max(settings["panel_width"], 1.1 * len(models) + 2) * len(encoders),
        max(settings["panel_height"], 0.45 * len(pathologies) + 2.5),
    )
    for col, encoder in enumerate(encoders):
        grid = (
            rows[rows["encoder"] == encoder]
            .pivot(index="pathology", columns="model", values="mean")
            .reindex(index=pathologies, columns=models)
        )
        ax = axes[0, col]
        sns.heatmap(
            grid,
            ax=ax,
            vmin=low,
            vmax=1.0,
            cmap=settings["heatmap_colormap"],
            annot=True,
            fmt=".2f",
            cbar=col == len(encoders) - 1,
            cbar_kws={"label": "test AUROC (fraction, 0–1)"},
            linewidths=0.5,
        )
        ax.set_title(encoder)
        ax.set_xlabel("model")
        ax.set_ylabel("pathology" if col == 0 else "")
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0)
    figure.suptitle(
        f"Per-pathology test AUROC at {size_label(size, n_train)} training images, mean over seeds "
        "(blank = undefined: no positive test image)"
    )
    figure.tight_layout()
    save_figure(figure, paths, settings["dpi"])
    return figure


def precision_recall(
    by_setting: pd.DataFrame,
    ci: pd.DataFrame,
    paths: list[Path],
    settings: dict[str, Any],
    policy: str,
) -> plt.Figure:
    """Macro precision vs macro recall per model at one size, with bootstrap CIs and iso-F1
    curves."""
    apply_theme(settings)
    size = pick_size(by_setting, settings["heatmap_size"], "report.figures.heatmap_size")
    macro = overall_test_rows(by_setting[by_setting["n"] == size])
    encoders = sorted(macro["encoder"].unique())
    models = model_order(
        macro.loc[macro["policy"].isin(MODEL_POLICIES), "model"].unique().tolist(),
        settings["model_order"],
    )
    colours = model_colors(models, settings)
    n_train = int(macro["n_train"].max())
    figure, axes = _grid(1, len(encoders), settings, sharex=True, sharey=True)
    recall_grid = np.linspace(0.01, 1, 200)
    handles: dict[str, Any] = {}
    for col, encoder in enumerate(encoders):
        ax = axes[0, col]
        for f1 in (0.2, 0.4, 0.6, 0.8):
            with np.errstate(divide="ignore", invalid="ignore"):
                precision = f1 * recall_grid / (2 * recall_grid - f1)
            keep = (precision > 0) & (precision <= 1)
            ax.plot(recall_grid[keep], precision[keep], color="0.8", linestyle=":", linewidth=1)
            ax.annotate(
                f"F1={f1}",
                (recall_grid[keep][-1], precision[keep][-1]),
                fontsize="x-small",
                color="0.5",
            )
        mine = macro[(macro["encoder"] == encoder) & (macro["policy"] == policy)]
        intervals = ci[
            (ci["encoder"] == encoder) & (ci["n"].astype(str) == size) & (ci["policy"] == policy)
        ]
        for model in models:
            point = mine[mine["model"] == model].set_index("metric")["mean"]
            if not {"precision", "recall"} <= set(point.index):
                continue
            x, y = point["recall"], point["precision"]
            bounds = intervals[intervals["model"] == model].set_index("metric")
            xerr = _error_bar(bounds, "recall", x)
            yerr = _error_bar(bounds, "precision", y)
            handles[model] = ax.errorbar(
                x, y, xerr=xerr, yerr=yerr, fmt="o", color=colours[model], capsize=3, markersize=7
            )
        ax.set_xlim(0, 1.03)
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("macro recall (fraction, 0–1)")
        ax.set_ylabel("macro precision (fraction, 0–1)" if col == 0 else "")
        ax.set_title(encoder)
    figure.suptitle(
        f"Test macro precision vs recall at {size_label(size, n_train)} training images "
        f"({POLICY_LABELS[policy]}); bars = 95% patient-bootstrap CI"
    )
    _figure_legend(figure, list(handles.values()), list(handles))
    figure.tight_layout()
    save_figure(figure, paths, settings["dpi"])
    return figure


def _error_bar(bounds: pd.DataFrame, metric: str, value: float) -> np.ndarray | None:
    if metric not in bounds.index:
        return None
    low, high = bounds.loc[metric, "ci_low"], bounds.loc[metric, "ci_high"]
    return np.array([[max(value - low, 0.0)], [max(high - value, 0.0)]])


def training_curves(
    history: pd.DataFrame, paths: list[Path], settings: dict[str, Any]
) -> plt.Figure:
    """Train and validation loss per epoch of one representative run per encoder x model."""
    apply_theme(settings)
    if history.empty:
        figure, ax = plt.subplots(figsize=(settings["panel_width"], settings["panel_height"]))
        ax.text(0.5, 0.5, "no model with training epochs was run", ha="center", va="center")
        ax.set_axis_off()
        figure.suptitle("Training curves")
        save_figure(figure, paths, settings["dpi"])
        return figure
    history = history.assign(n=history["n"].astype(str))
    chosen = settings["training_curves"]
    size = pick_size(history, chosen["size"], "report.figures.training_curves.size")
    runs = history[history["n"] == size]
    seed = int(runs["seed"].min()) if chosen["seed"] is None else int(chosen["seed"])
    runs = runs[runs["seed"] == seed]
    if runs.empty:
        raise FigureInputError(
            f"history.csv has no run with seed {seed} at size {size} "
            "(report.figures.training_curves)."
        )
    encoders = sorted(runs["encoder"].unique())
    models = model_order(runs["model"].unique().tolist(), settings["model_order"])
    colours = model_colors(models, settings)
    figure, axes = _grid(len(encoders), len(models), settings, sharex=True)
    for row, encoder in enumerate(encoders):
        for col, model in enumerate(models):
            ax = axes[row, col]
            run = runs[(runs["encoder"] == encoder) & (runs["model"] == model)].sort_values("epoch")
            if run.empty:
                ax.set_axis_off()
                continue
            ax.plot(run["epoch"], run["train_loss"], color=colours[model], label="training loss")
            ax.plot(
                run["epoch"],
                run["val_loss"],
                color=colours[model],
                linestyle="--",
                label="validation loss",
            )
            best = run.loc[run["val_loss"].idxmin(), "epoch"]
            ax.axvline(
                best, color="0.5", linestyle=":", linewidth=1, label="lowest validation loss"
            )
            ax.set_title(f"{encoder} / {model}")
            ax.set_ylabel("BCE loss per label (mean)" if col == 0 else "")
            if row == len(encoders) - 1:
                ax.set_xlabel("epoch")
            ax.legend(fontsize="x-small")
    n_train = int(runs["n_train"].max())
    figure.suptitle(
        "Training curves of representative runs: "
        f"{size_label(size, n_train)} training images, seed {seed}"
    )
    figure.tight_layout()
    save_figure(figure, paths, settings["dpi"])
    return figure


def _sentiment_label(method: str, pooling: str, several_poolings: bool) -> str:
    name = SENTIMENT_METHODS.get(method, method)
    if several_poolings and pooling in SENTIMENT_POOLINGS:
        return f"{name}, {SENTIMENT_POOLINGS[pooling]}"
    return name


def sentiment_comparison(
    sentiment: pd.DataFrame, paths: list[Path], settings: dict[str, Any]
) -> plt.Figure:
    """Sentiment track: test accuracy and F1 against the training-set size (log axis), one line
    per method x pooling (mean over seeds), with the band of sentiment.csv's lower / upper
    (interval over seeds x test-set bootstrap resamples) where the table has it."""
    apply_theme(settings)
    if sentiment.empty:
        raise FigureInputError(
            "sentiment.csv holds no metric; the sentiment track wrote no metrics.json."
        )
    table = sentiment.copy()
    for column, default in (("pooling", "cls"), ("n", "all"), ("n_train", np.nan)):
        if column not in table.columns:
            table[column] = default
    table["n"] = table["n"].astype(str)
    test = table[(table["split"] == "test") & table["metric"].isin(("accuracy", "f1"))]
    if test.empty:
        raise FigureInputError("sentiment.csv holds no test accuracy or F1.")
    frozen = test[test["method"] != "finetune"]
    several_poolings = frozen["pooling"].nunique() > 1
    lines = test.groupby(["method", "pooling"], sort=False).size().index.tolist()
    order = {m: i for i, m in enumerate(SENTIMENT_METHODS)}
    lines.sort(key=lambda line: (order.get(line[0], len(order)), line[1]))
    methods = list(dict.fromkeys(method for method, _ in lines))
    # one clearly distinct colour per method; the pooling is the line style
    colours = dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))
    metrics = [m for m in ("accuracy", "f1") if m in set(test["metric"])]
    groups = sorted(test.groupby(["dataset", "model"]).groups)
    figure, axes = _grid(len(groups), len(metrics), settings, sharey=True)
    banded = {"lower", "upper"} <= set(test.columns) and test["lower"].notna().any()
    handles, labels = [], []
    for row, (dataset, model) in enumerate(groups):
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            ticks: dict[float, str] = {}
            for method, pooling in lines:
                rows = test[
                    (test["dataset"] == dataset)
                    & (test["model"] == model)
                    & (test["metric"] == metric)
                    & (test["method"] == method)
                    & (test["pooling"] == pooling)
                ]
                if rows.empty:
                    continue
                curve = rows.groupby("n", sort=False).agg(
                    value=("value", "mean"),
                    n_train=("n_train", "max"),
                    **({"lower": ("lower", "min"), "upper": ("upper", "max")} if banded else {}),
                )
                curve = curve.loc[size_order(list(curve.index))]
                # the whole split's size where a table lacks n_train (a single size): x = 1
                x = curve["n_train"].fillna(1).to_numpy(float)
                for n, position in zip(curve.index, x, strict=True):
                    ticks[position] = size_label(n, int(position)) if n == "all" else n
                colour = colours[method]
                (handle,) = ax.plot(
                    x,
                    curve["value"].to_numpy(float),
                    color=colour,
                    linestyle=SENTIMENT_DASHES.get(pooling, "-"),
                    marker="o",
                )
                if banded and curve["lower"].notna().any():
                    ax.fill_between(
                        x,
                        curve["lower"].to_numpy(float),
                        curve["upper"].to_numpy(float),
                        color=colour,
                        alpha=0.15,
                        linewidth=0,
                    )
                label = _sentiment_label(method, pooling, several_poolings)
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
            ax.set_xscale("log")
            # the configured sizes as ticks ("all" at the whole split's size)
            ax.set_xticks(sorted(ticks), [ticks[t] for t in sorted(ticks)])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_title(f"{dataset} / {model}: test {metric}")
            ax.set_xlabel("training reviews (log scale)")
            ax.set_ylabel("score (fraction)" if col == 0 else "")
    figure.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="method"
    )
    band = "; bands: interval over seeds and test-set bootstrap resamples" if banded else ""
    figure.suptitle(
        "Sentiment track: SVM on frozen encoder features vs fine-tuning (and logistic "
        f"regression)\ntest score vs training-set size; lines: mean over seeds{band}"
    )
    figure.tight_layout()
    save_figure(figure, paths, settings["dpi"])
    return figure
