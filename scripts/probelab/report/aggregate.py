"""Read run folders (docs/architecture.md) into tidy tables: every metric row, seed summaries,
which pathologies each run evaluated (and why not the others), training histories, and the
sentiment track's metrics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.io import atomic_path

RUN_KEYS = ("encoder", "model", "n", "seed", "n_train")
ROW_KEYS = ("split", "policy", "metric", "pathology", "value")
SETTING = ["encoder", "model", "n"]
METRIC_COLUMNS = [
    "cohort",
    "encoder",
    "model",
    "n",
    "n_train",
    "seed",
    "split",
    "policy",
    "metric",
    "pathology",
    "value",
]
SUMMARY_COLUMNS = [
    "cohort",
    "encoder",
    "model",
    "n",
    "n_train",
    "split",
    "policy",
    "metric",
    "pathology",
    "mean",
    "std",
    "n_seeds",
    "n_runs",
]
HISTORY_COLUMNS = [
    "encoder",
    "model",
    "n",
    "n_train",
    "seed",
    "epoch",
    "train_loss",
    "val_loss",
    "lr",
]
# One row per sentiment cell x split x metric. A metrics.json written before the matrix (no n,
# seed or pooling) reads as the whole training split, seed 0, pooling "cls" (the SVM's default
# then) or "head" (fine-tuning's own classifier head).
SENTIMENT_COLUMNS = [
    "dataset",
    "method",
    "model",
    "pooling",
    "n",
    "n_train",
    "seed",
    "split",
    "metric",
    "value",
]
PATHOLOGY_COLUMNS = [
    "cohort",
    "encoder",
    "model",
    "n",
    "n_train",
    "seed",
    "pathology",
    "train_positives",
    "val_positives",
    "test_positives",
    "evaluated",
    "reason",
]


class RunFolderError(ValueError):
    """A run folder or one of its files does not follow docs/architecture.md."""


@dataclass(frozen=True)
class Run:
    folder: Path
    info: dict[str, Any]
    thresholds: dict[str, float]  # probabilities; NaN for a pathology that was not trained
    rows: pd.DataFrame
    logit_thresholds: dict[str, float] = field(default_factory=dict)
    # None in a metrics.json written before the evaluation rule (every pathology counted)
    evaluated: list[str] | None = None
    excluded: dict[str, str] = field(default_factory=dict)
    positives: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> pathology -> n

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (
            self.info["encoder"],
            self.info["model"],
            str(self.info["n"]),
            int(self.info["seed"]),
        )


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing; every run folder needs a metrics.json.") from None
    except json.JSONDecodeError as error:
        raise RunFolderError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno})."
        ) from None


def read_run(folder: str | Path) -> Run:
    """Read and check one run folder's metrics.json."""
    folder = Path(folder)
    path = folder / "metrics.json"
    data = _load_json(path)
    if not isinstance(data, dict) or not {"run", "metrics"} <= set(data):
        raise RunFolderError(f"{path} must be an object with keys 'run' and 'metrics'.")
    info = data["run"]
    missing = [key for key in RUN_KEYS if key not in info]
    if missing:
        raise RunFolderError(f"{path}: the 'run' block lacks {', '.join(missing)}.")
    for number, row in enumerate(data["metrics"]):
        if not isinstance(row, dict) or set(ROW_KEYS) - set(row):
            raise RunFolderError(
                f"{path}: metrics row {number} must have keys {', '.join(ROW_KEYS)}, got {row!r}."
            )
        value = row["value"]
        if value is not None and not (
            isinstance(value, (int, float)) and not isinstance(value, bool)
        ):
            raise RunFolderError(
                f"{path}: metrics row {number} has value {value!r}; expected a number or null."
            )
    rows = pd.DataFrame(data["metrics"], columns=list(ROW_KEYS))
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce").astype(float)
    evaluated = data.get("evaluated_pathologies")
    return Run(
        folder,
        info,
        _numbers(data.get("thresholds")),
        rows,
        logit_thresholds=_numbers(data.get("logit_thresholds")),
        evaluated=None if evaluated is None else [str(p) for p in evaluated],
        excluded={str(k): str(v) for k, v in (data.get("excluded_pathologies") or {}).items()},
        positives=data.get("positives") or {},
    )


def _numbers(mapping: dict[str, Any] | None) -> dict[str, float]:
    """A pathology -> number block of metrics.json, null read as NaN."""
    return {str(k): math.nan if v is None else float(v) for k, v in (mapping or {}).items()}


def read_runs(folders: list[str | Path]) -> list[Run]:
    runs = [read_run(folder) for folder in folders]
    seen: dict[tuple, Path] = {}
    for run in runs:
        if run.key in seen:
            raise RunFolderError(
                f"{run.folder}/metrics.json describes the same run {run.key} "
                f"as {seen[run.key]}/metrics.json."
            )
        seen[run.key] = run.folder
    return runs


def metrics_table(runs: list[Run], cohort: str) -> pd.DataFrame:
    """One row per run x split x policy x metric x pathology-or-macro."""
    frames = []
    for run in runs:
        frame = run.rows.copy()
        frame["cohort"] = cohort
        frame["encoder"] = run.info["encoder"]
        frame["model"] = run.info["model"]
        frame["n"] = str(run.info["n"])
        frame["n_train"] = int(run.info["n_train"])
        frame["seed"] = int(run.info["seed"])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    return pd.concat(frames, ignore_index=True)[METRIC_COLUMNS]


def summarise_by_setting(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds per encoder x model x size x split x policy x
    metric x pathology. n_seeds counts the defined values, n_runs all seeds."""
    keys = ["cohort", *SETTING, "split", "policy", "metric", "pathology"]
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    grouped = metrics.groupby(keys, sort=True, dropna=False)
    summary = grouped["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    summary["n_runs"] = grouped["seed"].nunique().to_numpy()
    # n_train of "all" is the same for every seed; of a number it is that number
    summary["n_train"] = grouped["n_train"].median().round().astype(int).to_numpy()
    return summary[SUMMARY_COLUMNS]


def pathology_table(runs: list[Run], cohort: str) -> pd.DataFrame:
    """One row per run x pathology: positive images in the run's training subset, validation and
    test, whether the run evaluated it (every macro metric of the run averages over exactly the
    evaluated ones) and, if not, why. A run written before the evaluation rule counts every
    pathology as evaluated, with unknown positives."""
    rows = []
    for run in runs:
        names = list(run.thresholds) or sorted(set(run.rows["pathology"]) - {"macro", "micro"})
        for name in names:
            rows.append(
                {
                    "cohort": cohort,
                    "encoder": run.info["encoder"],
                    "model": run.info["model"],
                    "n": str(run.info["n"]),
                    "n_train": int(run.info["n_train"]),
                    "seed": int(run.info["seed"]),
                    "pathology": name,
                    **{
                        f"{split}_positives": run.positives.get(split, {}).get(name)
                        for split in ("train", "val", "test")
                    },
                    "evaluated": name not in run.excluded
                    and (run.evaluated is None or name in run.evaluated),
                    "reason": run.excluded.get(name, ""),
                }
            )
    table = pd.DataFrame(rows, columns=PATHOLOGY_COLUMNS)
    for split in ("train", "val", "test"):
        table[f"{split}_positives"] = table[f"{split}_positives"].astype("Int64")
    return table


def history_table(runs: list[Run]) -> pd.DataFrame:
    """Training histories of all runs (models without epochs contribute no rows)."""
    frames = []
    for run in runs:
        path = run.folder / "history.csv"
        if not path.exists():
            raise RunFolderError(
                f"{path} is missing; every run folder needs a history.csv "
                "(empty for models without epochs)."
            )
        try:
            history = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            continue
        missing = {"epoch", "train_loss", "val_loss", "lr"} - set(history.columns)
        if missing:
            raise RunFolderError(f"{path} lacks the column(s) {', '.join(sorted(missing))}.")
        if history.empty:
            continue
        history = history[["epoch", "train_loss", "val_loss", "lr"]].copy()
        for column, value in zip(RUN_KEYS, run.key + (int(run.info["n_train"]),), strict=True):
            history[column] = value
        frames.append(history)
    if not frames:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[HISTORY_COLUMNS]


def sentiment_table(files: list[str | Path]) -> pd.DataFrame:
    """The sentiment track's metrics.json files as one tidy table."""
    rows = []
    for file in files:
        path = Path(file)
        data = _load_json(path)
        if not isinstance(data, dict) or not {"method", "model", "dataset", "metrics"} <= set(data):
            raise RunFolderError(
                f"{path} must be an object with keys method, model, dataset and metrics."
            )
        for number, row in enumerate(data["metrics"]):
            if not isinstance(row, dict) or {"split", "metric", "value"} - set(row):
                raise RunFolderError(
                    f"{path}: metrics row {number} must have keys split, metric and value."
                )
            value = row["value"]
            rows.append(
                {
                    "dataset": data["dataset"],
                    "method": data["method"],
                    "model": data["model"],
                    "pooling": data.get(
                        "pooling", "head" if data["method"] == "finetune" else "cls"
                    ),
                    "n": str(data.get("n", "all")),
                    "n_train": data.get("n_train"),
                    "seed": int(data.get("seed", 0)),
                    "split": row["split"],
                    "metric": row["metric"],
                    "value": float("nan") if value is None else float(value),
                }
            )
    table = pd.DataFrame(rows, columns=SENTIMENT_COLUMNS)
    table["order"] = table["n"].map(lambda n: math.inf if n == "all" else int(n))
    table = table.sort_values(
        ["dataset", "model", "method", "pooling", "order", "seed", "split", "metric"],
        ignore_index=True,
    )
    return table.drop(columns="order")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read an aggregated table back with sizes as strings ("50", "all")."""
    return pd.read_csv(
        path, dtype={"n": str, "cohort": str, "pathology": str}, keep_default_na=True
    )


def size_order(sizes: list[str]) -> list[str]:
    """Sizes from small to large; "all" last."""
    return sorted(set(sizes), key=lambda s: math.inf if s == "all" else int(s))


def write_table(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a CSV table atomically (a finished table is never half-written)."""
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)


def overall_test_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Test rows of the metrics over all pathologies: macro, or micro where a metric has only that
    (exact match and Hamming loss are computed over images and may be tagged micro)."""
    rows = table[(table["split"] == "test") & table["pathology"].isin(["macro", "micro"])]
    rows = rows.assign(_rank=(rows["pathology"] != "macro").astype(int)).sort_values(
        "_rank", kind="stable"
    )
    keys = [c for c in ("encoder", "model", "n", "seed", "policy", "metric") if c in rows.columns]
    return rows.drop_duplicates(keys).drop(columns="_rank")


class ReportInputError(ValueError):
    """An aggregated table lacks what the report was asked to show."""


def pick_size(table: pd.DataFrame, wanted: Any, key: str) -> str:
    """The size a figure or table shows: "largest" = the size with the most training images."""
    if table.empty:
        raise ReportInputError("the aggregated table holds no run; nothing to show.")
    if wanted == "largest":
        return str(table.loc[table["n_train"].idxmax(), "n"])
    sizes = size_order(table["n"].astype(str).tolist())
    if str(wanted) not in sizes:
        raise ReportInputError(
            f"config key '{key}' is {wanted!r}, but only sizes {', '.join(sizes)} were run."
        )
    return str(wanted)
