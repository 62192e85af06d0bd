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
    "pathology_set",
]
# A metric row over many pathologies: "macro" (mean of the per-pathology values) or "micro"
# (pooled cells; exact match and Hamming loss carry it too, or "macro" in older run folders).
OVER_A_SET = ("macro", "micro")
# The metrics whose macro is the mean of per-pathology rows.
PER_PATHOLOGY_METRICS = ("auroc", "average_precision", "precision", "recall", "f1")
# How a set of pathologies is written in a table's pathology_set column.
SET_SEPARATOR = "|"
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
    "train_positive_patients",
    "val_positive_patients",
    "test_positive_patients",
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
    # what the evaluation rule judged; {} in a metrics.json written before it counted patients
    positive_patients: dict[str, dict[str, int]] = field(default_factory=dict)

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
        positive_patients=data.get("positive_patients") or {},
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


def evaluated_sets(runs: list[Run]) -> dict[tuple[str, str, str, int], list[str]]:
    """Each run's evaluated pathologies (a run written before the evaluation rule: every
    pathology it has thresholds for, less its excluded ones)."""
    sets = {}
    for run in runs:
        names = run.evaluated
        if names is None:
            names = [p for p in run.thresholds if p not in run.excluded]
        sets[run.key] = list(names)
    return sets


def report_pathologies(sets: dict[tuple[str, str, str, int], list[str]]) -> list[str]:
    """The report's pathology set: those every run evaluates, in the runs' order.

    Every macro and pooled metric of the report's tables, curves and comparisons averages this
    one set, so that no curve, seed mean or difference mixes pathology sets (a size whose
    subsets lack a rare label's positives would otherwise average fewer, easier pathologies).
    """
    if not sets:
        return []
    common = set.intersection(*(set(names) for names in sets.values()))
    order = [p for names in sets.values() for p in names]
    return list(dict.fromkeys(p for p in order if p in common))


def set_name(pathologies: list[str]) -> str:
    return SET_SEPARATOR.join(pathologies)


def set_members(cell: Any) -> list[str]:
    """A pathology_set cell as a list; [] for the empty set, which a CSV reader gives back as
    NaN."""
    return [] if pd.isna(cell) or cell == "" else str(cell).split(SET_SEPARATOR)


def summarise_by_setting(
    metrics: pd.DataFrame, sets: dict[tuple[str, str, str, int], list[str]]
) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds per encoder x model x size x split x policy x
    metric x pathology. n_seeds counts the defined values, n_runs all seeds.

    Metrics over many pathologies cover the report's set (`report_pathologies` of `sets`, each
    run's evaluated pathologies), named in column pathology_set: a run's macro is recomputed as
    the mean of its per-pathology values over that set; a pooled ("micro") value cannot be
    recomputed from the table, so a setting whose runs pooled another set gets NaN there (its
    interval table, bootstrap_ci.csv, has it over the report's set).
    """
    keys = ["cohort", *SETTING, "split", "policy", "metric", "pathology"]
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    report = report_pathologies(sets)
    run_keys = ["encoder", "model", "n", "seed"]
    per_run = metrics.assign(n=metrics["n"].astype(str), seed=metrics["seed"].astype(int))
    own = per_run[run_keys].apply(tuple, axis=1).map(lambda key: sets.get(key))
    per_run["_other_set"] = own.map(lambda names: names is None or set(names) != set(report))
    per_run = _macro_over(per_run, report)
    pooled = _pooled(per_run)
    per_run.loc[pooled & per_run["_other_set"], "value"] = math.nan
    grouped = per_run.groupby(keys, sort=True, dropna=False)
    summary = grouped["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    summary["n_runs"] = grouped["seed"].nunique().to_numpy()
    # n_train of "all" is the same for every seed; of a number it is that number
    summary["n_train"] = grouped["n_train"].median().round().astype(int).to_numpy()
    mixed = grouped["_other_set"].any().to_numpy() & _pooled(summary).to_numpy()
    summary.loc[mixed, ["mean", "std"]] = math.nan
    summary.loc[mixed, "n_seeds"] = 0
    summary["pathology_set"] = summary["pathology"].where(
        ~summary["pathology"].isin(OVER_A_SET), set_name(report)
    )
    return summary[SUMMARY_COLUMNS]


def _pooled(rows: pd.DataFrame) -> pd.Series:
    """Rows of a metric over pooled cells of many pathologies."""
    over_a_set = rows["pathology"].isin(OVER_A_SET)
    return over_a_set & ~(
        (rows["pathology"] == "macro") & rows["metric"].isin(PER_PATHOLOGY_METRICS)
    )


def _macro_over(per_run: pd.DataFrame, pathologies: list[str]) -> pd.DataFrame:
    """`per_run` with every macro value replaced by the mean of the run's per-pathology values
    over `pathologies` (NaN where one of them is undefined, or the set is empty)."""
    keys = ["cohort", "encoder", "model", "n", "seed", "split", "policy", "metric"]
    members = per_run[per_run["pathology"].isin(pathologies)]
    means = members.groupby(keys, dropna=False)["value"].agg(["mean", "count"])
    means = means["mean"].where(means["count"] == len(pathologies)).rename("_macro")
    macro = (per_run["pathology"] == "macro") & per_run["metric"].isin(PER_PATHOLOGY_METRICS)
    values = per_run[keys].merge(means, left_on=keys, right_index=True, how="left")["_macro"]
    per_run.loc[macro, "value"] = values.to_numpy()[macro.to_numpy()]
    return per_run


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
                    **{
                        f"{split}_positive_patients": run.positive_patients.get(split, {}).get(name)
                        for split in ("train", "val", "test")
                    },
                    "evaluated": name not in run.excluded
                    and (run.evaluated is None or name in run.evaluated),
                    "reason": run.excluded.get(name, ""),
                }
            )
    table = pd.DataFrame(rows, columns=PATHOLOGY_COLUMNS)
    for split in ("train", "val", "test"):
        for counted in ("positives", "positive_patients"):
            table[f"{split}_{counted}"] = table[f"{split}_{counted}"].astype("Int64")
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
