"""The sentiment track's report tables: every cell's metrics, learning curves with intervals, and
paired comparisons against a reference setting, from the cells' metrics.json and predictions.csv.

A setting is (dataset, encoder, method, pooling, training size). Its value is the mean over seeds
of the cell metrics. Its interval pools two sources of variation: for every seed, the test set is
resampled with replacement (`resamples` times, the same resamples for every setting), and the
interval is the percentile interval of the metric over all seeds x resamples. A paired difference
against the reference (frozen mean-pooled features + logistic regression by default) compares
the same seed (so the same training subset) on the same resampled test reviews:
difference(seed, resample) = metric(setting) - metric(reference); the point is the mean over seeds
of the full-test differences, the interval is over seeds x resamples, and `share_better` is the
share of those differences above zero. Only test accuracy and F1 get intervals; no
scikit-learn here (the report environment has none).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.report.aggregate import RunFolderError, sentiment_table, size_order, write_table

log = logging.getLogger("probelab.report")

SETTING = ["dataset", "model", "method", "pooling", "n"]
BOOTSTRAP_METRICS = ("accuracy", "f1")
BY_SETTING_COLUMNS = [
    *SETTING,
    "n_train",
    "split",
    "metric",
    "value",
    "std",
    "n_seeds",
    "lower",
    "upper",
    "reference",
    "difference",
    "difference_lower",
    "difference_upper",
]
COMPARISON_COLUMNS = [
    *SETTING,
    "metric",
    "reference",
    "value",
    "reference_value",
    "difference",
    "lower",
    "upper",
    "share_better",
    "n_seeds",
    "resamples",
]


def resampled_scores(
    labels: np.ndarray, predicted: np.ndarray, resamples: np.ndarray
) -> dict[str, np.ndarray]:
    """Accuracy and F1 (positive class 1, 0 where undefined) on every resample of the test rows
    (`resamples`: B x N row indices)."""
    labels, predicted = np.asarray(labels)[resamples], np.asarray(predicted)[resamples]
    tp = ((predicted == 1) & (labels == 1)).sum(axis=1)
    wrong_positive = ((predicted == 1) & (labels == 0)).sum(axis=1)
    wrong_negative = ((predicted == 0) & (labels == 1)).sum(axis=1)
    denominator = 2 * tp + wrong_positive + wrong_negative
    f1 = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    return {"accuracy": (predicted == labels).mean(axis=1), "f1": f1}


def read_predictions(metrics_file: Path) -> pd.DataFrame:
    """The test rows of the predictions.csv beside a cell's metrics.json."""
    path = Path(metrics_file).with_name("predictions.csv")
    if not path.is_file():
        raise RunFolderError(f"{path} is missing; every sentiment cell writes its predictions.")
    table = pd.read_csv(path)
    missing = {"split", "row", "label", "prediction"} - set(table.columns)
    if missing:
        raise RunFolderError(f"{path} lacks column(s) {', '.join(sorted(missing))}.")
    return table[table["split"] == "test"].sort_values("row", ignore_index=True)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def sentiment_tables(
    metrics_files: list[Path], resampling: dict[str, Any], reference: tuple[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(by_setting, comparisons, runs): the learning-curve table with intervals and differences,
    the paired comparisons against `reference` (method, pooling), and every cell's metrics.

    `resampling` is the config's report.bootstrap (resamples, seed, confidence)."""
    runs = sentiment_table(metrics_files)
    cells = runs.drop_duplicates([*SETTING, "seed"])[[*SETTING, "seed"]].reset_index(drop=True)
    if len(cells) != len(metrics_files):
        raise RunFolderError("two sentiment metrics.json files describe the same cell.")
    confidence, count = float(resampling["confidence"]), int(resampling["resamples"])
    # per dataset: one set of test resamples shared by every setting, so differences are paired
    scores: dict[tuple, dict[str, np.ndarray]] = {}
    full: dict[tuple, dict[str, float]] = {}
    keys = {Path(file): _cell_key(file) for file in metrics_files}
    for dataset in sorted(set(cells["dataset"])):
        tests = {f: read_predictions(f) for f, key in keys.items() if key[0] == dataset}
        labels = next(iter(tests.values()))["label"].to_numpy()
        for file, test in tests.items():
            if not np.array_equal(test["label"].to_numpy(), labels):
                raise RunFolderError(
                    f"{Path(file).with_name('predictions.csv')} has other test labels than the "
                    f"other cells of data set {dataset}; the paired bootstrap needs one test set."
                )
        rng = np.random.default_rng(int(resampling["seed"]))
        resamples = rng.integers(0, len(labels), size=(count, len(labels)))
        everything = np.arange(len(labels))[None, :]
        for file, test in tests.items():
            key = keys[file]
            prediction = test["prediction"].to_numpy()
            scores[key] = resampled_scores(labels, prediction, resamples)
            whole = resampled_scores(labels, prediction, everything)
            full[key] = {metric: float(values[0]) for metric, values in whole.items()}

    by_setting = _by_setting(runs, scores, full, reference, confidence)
    comparisons = _comparisons(by_setting, scores, full, reference, confidence, count)
    return by_setting, comparisons, runs


def _cell_key(file: Path) -> tuple:
    """(dataset, model, method, pooling, n, seed) of a cell's metrics.json."""
    row = sentiment_table([file]).iloc[0]
    return (row["dataset"], row["model"], row["method"], row["pooling"], row["n"], row["seed"])


def _seed_keys(setting: tuple, seeds: list[int]) -> list[tuple]:
    return [(*setting, seed) for seed in seeds]


def _by_setting(
    runs: pd.DataFrame,
    scores: dict[tuple, dict[str, np.ndarray]],
    full: dict[tuple, dict[str, float]],
    reference: tuple[str, str],
    confidence: float,
) -> pd.DataFrame:
    rows = []
    for values, group in runs.groupby([*SETTING, "split", "metric"], sort=False):
        setting = tuple(values[: len(SETTING)])
        split, metric = values[len(SETTING) :]
        seeds = sorted(group["seed"].unique())
        row = dict(zip([*SETTING, "split", "metric"], values, strict=True))
        row |= {
            "n_train": int(group["n_train"].max()) if group["n_train"].notna().any() else None,
            "value": float(group["value"].mean()),
            "std": float(group["value"].std(ddof=1)) if len(group) > 1 else 0.0,
            "n_seeds": len(seeds),
            "reference": f"{reference[0]} / {reference[1]}",
        }
        if split == "test" and metric in BOOTSTRAP_METRICS:
            pooled = np.concatenate([scores[k][metric] for k in _seed_keys(setting, seeds)])
            row["lower"], row["upper"] = _interval(pooled, confidence)
            difference = _paired(setting, seeds, metric, scores, full, reference, confidence)
            if difference is not None:
                row["difference"] = difference["difference"]
                row["difference_lower"] = difference["lower"]
                row["difference_upper"] = difference["upper"]
        rows.append(row)
    table = pd.DataFrame(rows, columns=BY_SETTING_COLUMNS)
    order = {n: i for i, n in enumerate(size_order(list(table["n"])))}
    table["order"] = table["n"].map(order)
    table = table.sort_values(["dataset", "model", "method", "pooling", "order"], kind="stable")
    return table.drop(columns="order").reset_index(drop=True)


def _paired(
    setting: tuple,
    seeds: list[int],
    metric: str,
    scores: dict[tuple, dict[str, np.ndarray]],
    full: dict[tuple, dict[str, float]],
    reference: tuple[str, str],
    confidence: float,
) -> dict[str, float] | None:
    """The setting minus the reference (same dataset, encoder and size), paired by seed and
    resample; None for the reference itself or where the reference lacks the seeds."""
    dataset, model, method, pooling, n = setting
    if (method, pooling) == reference:
        return None
    base = (dataset, model, *reference, n)
    shared = [seed for seed in seeds if (*base, seed) in scores]
    if not shared:
        return None
    differences = np.concatenate(
        [scores[(*setting, s)][metric] - scores[(*base, s)][metric] for s in shared]
    )
    point = float(np.mean([full[(*setting, s)][metric] - full[(*base, s)][metric] for s in shared]))
    lower, upper = _interval(differences, confidence)
    return {
        "difference": point,
        "lower": lower,
        "upper": upper,
        "share_better": float((differences > 0).mean()),
        "reference_value": float(np.mean([full[(*base, s)][metric] for s in shared])),
        "value": float(np.mean([full[(*setting, s)][metric] for s in shared])),
        "n_seeds": len(shared),
    }


def _comparisons(
    by_setting: pd.DataFrame,
    scores: dict[tuple, dict[str, np.ndarray]],
    full: dict[tuple, dict[str, float]],
    reference: tuple[str, str],
    confidence: float,
    count: int,
) -> pd.DataFrame:
    rows = []
    tested = by_setting[
        (by_setting["split"] == "test") & by_setting["metric"].isin(BOOTSTRAP_METRICS)
    ]
    for _, line in tested.iterrows():
        setting = tuple(line[SETTING])
        seeds = sorted(key[-1] for key in scores if key[:-1] == setting)
        difference = _paired(setting, seeds, line["metric"], scores, full, reference, confidence)
        if difference is None:
            continue
        rows.append(
            {
                **dict(zip(SETTING, setting, strict=True)),
                "metric": line["metric"],
                "reference": line["reference"],
                **difference,
                "resamples": count,
            }
        )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def aggregate_sentiment_track(
    metrics_files: list[Path],
    resampling: dict[str, Any],
    reference: tuple[str, str],
    out_by_setting: Path,
    out_runs: Path,
    out_comparisons: Path,
) -> pd.DataFrame:
    """The aggregate_sentiment step: sentiment.csv (learning curves: mean over seeds, intervals
    over seeds x test resamples, paired difference to the reference), sentiment_runs.csv (every
    cell's metrics) and sentiment_comparisons.csv (the paired comparisons); returns the first."""
    by_setting, comparisons, runs = sentiment_tables(metrics_files, resampling, tuple(reference))
    write_table(out_by_setting, by_setting)
    write_table(out_runs, runs)
    write_table(out_comparisons, comparisons)
    log.info(
        "%d sentiment cells -> %d setting rows, %d comparison rows (%d resamples)",
        len(metrics_files),
        len(by_setting),
        len(comparisons),
        resampling["resamples"],
    )
    return by_setting
