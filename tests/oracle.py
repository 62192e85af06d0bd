"""An oracle for every number the workflow reports, independent of the code that computes them.

It reads only what a finished workflow wrote to disk (the index, the split, the subset files,
each run's metrics.json thresholds and evaluated pathologies, its predictions_test.parquet) and
the config, and recomputes every reported value the plainest way there is: scikit-learn called
ONE PATHOLOGY AT A TIME ON 1-D ARRAYS, with the labels a pathology does not observe (NaN)
dropped first. It imports nothing of probelab: a reference built with the same call as the code
under test proves nothing (docs: DESIGN.md, "An oracle that is not our own code").

The rules it encodes (issue 23):

- Decisions: logit >= threshold; policy "t0.5" uses logit threshold 0, "tuned" metrics.json's
  "logit_thresholds". AUROC and AP rank logits.
- Per pathology: roc_auc_score, average_precision_score, precision_score / recall_score /
  f1_score (zero_division=0) of the observed labels. Macro = the plain mean of the per-pathology
  values over a set; micro (pooled) = the same call on the concatenated observed cells of the
  set; exact match = share of images with at least one observed label in the set whose observed
  labels are all right; Hamming loss = wrong observed cells / observed cells.
- R1: every macro and pooled value of a run covers exactly its "evaluated_pathologies"; the
  per-pathology values of the others are null.
- R2: the report set of a cohort is the intersection of every run's evaluated pathologies, and
  every aggregated macro value (summary_by_setting.csv, bootstrap_ci.csv, comparisons.csv)
  averages it; pooled rows only stand where every run of the setting evaluated exactly it.
  transfer.csv: one set per external cohort, evaluated by every internal run and every
  external evaluation.
- R3: a run evaluates a pathology when its training subset and validation hold at least
  `training.min_positives` positive PATIENTS (and one negative patient) and test at least the
  test minimum (`training.min_test_positives` when the schema has it, else min_positives).
- R4: every metric printed in summary.md equals the oracle to its printed rounding; its data
  counts equal a hand count of the index and split.

Every check returns a list of Mismatch (empty = agrees), so a test reports all disagreements at
once instead of the first.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

TOLERANCE = 1e-9
RANKING = ("auroc", "average_precision")
DECISION = ("precision", "recall", "f1")
POOLED = ("exact_match", "hamming_loss")
MODEL_POLICIES = ("t0.5", "tuned")
BASELINES = ("all_negative", "prevalence")
SPLITS = ("val", "test")
REPO = Path(__file__).resolve().parents[1]

Value = float | None
# (metric, pathology) -> value; pathology is a name, "macro" or "micro"
Values = dict[tuple[str, str], Value]
# (split, policy, metric, pathology) -> value
Rows = dict[tuple[str, str, str, str], Value]


# --- comparing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """One reported value that disagrees with the oracle."""

    check: str  # which rule / file, e.g. "R1 metrics.json"
    where: str  # which file or row
    key: str  # which value
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return (
            f"[{self.check}] {self.where} {self.key}: oracle {self.expected!r}, "
            f"reported {self.actual!r}"
        )


def missing(value: Any) -> bool:
    """None, NaN or an empty cell: an undefined value."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == "" or value.strip().lower() == "nan"
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def same(expected: Any, actual: Any, tolerance: float = TOLERANCE) -> bool:
    """Equal within `tolerance`, both undefined counting as equal."""
    if missing(expected) or missing(actual):
        return missing(expected) and missing(actual)
    return abs(float(expected) - float(actual)) <= tolerance


# How many values each check compared, for the tests' notes (how much a green run covered).
COMPARED: Counter[str] = Counter()


def compare(
    check: str, where: str, expected: Mapping[Any, Any], actual: Mapping[Any, Any]
) -> list[Mismatch]:
    """Every key of `expected` against `actual` (a key absent from `actual` is a mismatch)."""
    COMPARED[check] += len(expected)
    out = []
    for key, value in expected.items():
        if key not in actual:
            out.append(Mismatch(check, where, str(key), value, "<no such row>"))
        elif not same(value, actual[key]):
            out.append(Mismatch(check, where, str(key), value, actual[key]))
    return out


def mean(values: Iterable[Value]) -> Value:
    """Plain mean; None when there is no value or one is undefined."""
    values = list(values)
    if not values or any(missing(v) for v in values):
        return None
    return float(np.mean([float(v) for v in values]))


def parse_set(cell: Any) -> set[str] | None:
    """A table cell naming a set of pathologies ("A|B", "A, B"); None for an empty cell."""
    if missing(cell):
        return None
    parts = re.split(r"\s*[|,;]\s*", str(cell).strip())
    return {p for p in parts if p}


# --- metrics of one pathology, on 1-D arrays ----------------------------------------------------


def _seen(truth: np.ndarray) -> np.ndarray:
    return ~np.isnan(np.asarray(truth, dtype=float))


def ranking_values(truth: np.ndarray, scores: np.ndarray) -> dict[str, Value]:
    """AUROC and AP of one pathology: its observed labels (1-D) against its scores (1-D)."""
    truth, scores = np.asarray(truth, dtype=float), np.asarray(scores, dtype=float)
    keep = _seen(truth)
    y, s = truth[keep].astype(int), scores[keep]
    out: dict[str, Value] = {"auroc": None, "average_precision": None}
    if y.size and y.any():
        out["average_precision"] = float(average_precision_score(y, s))
        if not y.all():
            out["auroc"] = float(roc_auc_score(y, s))
    return out


def decision_values(truth: np.ndarray, decided: np.ndarray) -> dict[str, Value]:
    """Precision, recall and F1 of one pathology (positive class 1, zero_division=0) on its
    observed labels (1-D)."""
    truth = np.asarray(truth, dtype=float)
    keep = _seen(truth)
    if not keep.any():
        return dict.fromkeys(DECISION)
    y, d = truth[keep].astype(int), np.asarray(decided)[keep].astype(int)
    return {
        "precision": float(precision_score(y, d, zero_division=0)),
        "recall": float(recall_score(y, d, zero_division=0)),
        "f1": float(f1_score(y, d, zero_division=0)),
    }


def set_values(
    truth: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray] | None,
    decided: Mapping[str, np.ndarray] | None,
    within: Sequence[str],
    pooled_ranking: bool = True,
) -> Values:
    """Per-pathology, macro and micro values over the set `within`, from 1-D columns keyed by
    pathology (truth: 0/1/NaN; scores: logits; decided: 0/1). `scores` None leaves the ranking
    metrics out, `decided` None the decision metrics; `pooled_ranking` False leaves the pooled
    AUROC / AP out (a constant per-pathology score whose constants are unknown)."""
    out: Values = {}
    within = list(within)
    if scores is not None:
        per = {p: ranking_values(truth[p], scores[p]) for p in within}
        for metric in RANKING:
            for p in within:
                out[(metric, p)] = per[p][metric]
            out[(metric, "macro")] = mean(per[p][metric] for p in within)
        if pooled_ranking:
            if within:
                y = np.concatenate([np.asarray(truth[p], dtype=float) for p in within])
                s = np.concatenate([np.asarray(scores[p], dtype=float) for p in within])
                pooled = ranking_values(y, s)
            else:
                pooled = dict.fromkeys(RANKING)
            for metric in RANKING:
                out[(metric, "micro")] = pooled[metric]
    if decided is not None:
        per = {p: decision_values(truth[p], decided[p]) for p in within}
        for metric in DECISION:
            for p in within:
                out[(metric, p)] = per[p][metric]
            out[(metric, "macro")] = mean(per[p][metric] for p in within)
        if within:
            y = np.concatenate([np.asarray(truth[p], dtype=float) for p in within])
            d = np.concatenate([np.asarray(decided[p]).astype(int) for p in within])
            pooled = decision_values(y, d)
        else:
            pooled = dict.fromkeys(DECISION)
        for metric in DECISION:
            out[(metric, "micro")] = pooled[metric]
        out[("exact_match", "micro")], out[("hamming_loss", "micro")] = _sample_values(
            truth, decided, within
        )
    return out


def _sample_values(
    truth: Mapping[str, np.ndarray], decided: Mapping[str, np.ndarray], within: Sequence[str]
) -> tuple[Value, Value]:
    """Exact match (images with an observed label in the set, all observed ones right) and
    Hamming loss (wrong observed cells / observed cells), counted by hand, pathology by
    pathology."""
    if not within:
        return None, None
    n = len(np.asarray(truth[within[0]]))
    observed_any = np.zeros(n, dtype=bool)
    all_right = np.ones(n, dtype=bool)
    wrong, cells = 0, 0
    for p in within:
        y = np.asarray(truth[p], dtype=float)
        d = np.asarray(decided[p]).astype(int)
        seen = _seen(y)
        bad = seen & (y != d)
        observed_any |= seen
        all_right &= ~bad
        wrong += int(bad.sum())
        cells += int(seen.sum())
    exact = float(all_right[observed_any].mean()) if observed_any.any() else None
    hamming = wrong / cells if cells else None
    return exact, hamming


# --- the workflow's files -----------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _schema_default(section: str, key: str) -> Any:
    """A key's default from the config schema (schemas/probe.schema.yaml etc.); missing if the
    schema has no such key."""
    schema = load_yaml(REPO / "schemas" / f"{section}.schema.yaml")
    for block in schema.get("$defs", {}).values():
        properties = block.get("properties", {}) if isinstance(block, dict) else {}
        if key in properties:
            return properties[key].get("default")
    raise KeyError(key)


def schema_has(section: str, key: str) -> bool:
    try:
        _schema_default(section, key)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class EvaluationRule:
    """R3: the fewest positive patients per split ("train" = the run's training subset)."""

    least: dict[str, int]

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> EvaluationRule:
        training = config.get("training") or {}
        train = int(training.get("min_positives", _schema_default("probe", "min_positives")))
        if "min_test_positives" in training:
            test = int(training["min_test_positives"])
        elif schema_has("probe", "min_test_positives"):
            test = int(_schema_default("probe", "min_test_positives"))
        else:
            test = train
        return cls({"train": train, "val": train, "test": test})


class Cohort:
    """A cohort's index and split as the workflow wrote them (results/{cohort} or an external
    cohort's folder), and hand counts over them."""

    def __init__(self, folder: Path, pathologies: Sequence[str]) -> None:
        self.folder = Path(folder)
        self.index = pd.read_parquet(self.folder / "index.parquet")
        self.split = pd.read_parquet(self.folder / "split.parquet")
        self.pathologies = list(pathologies)
        self.by_id = self.index.assign(image_id=self.index["image_id"].astype(str)).set_index(
            "image_id"
        )
        self.split_of = pd.Series(
            self.split["split"].astype(str).to_numpy(),
            index=self.split["image_id"].astype(str).to_numpy(),
        )

    def ids(self, split: str) -> list[str]:
        return sorted(self.split_of.index[self.split_of == split])

    def truth(self, image_ids: Sequence[str], pathology: str) -> np.ndarray:
        """1-D labels (0/1/NaN) of `pathology` for `image_ids`; NaN throughout for a pathology
        the cohort does not label."""
        if pathology not in self.by_id.columns:
            return np.full(len(image_ids), np.nan)
        return self.by_id.loc[list(image_ids), pathology].to_numpy(dtype=float)

    def patients(self, image_ids: Sequence[str]) -> np.ndarray:
        return self.by_id.loc[list(image_ids), "patient_id"].astype(str).to_numpy()

    def patient_counts(self, image_ids: Sequence[str], pathology: str) -> tuple[int, int]:
        """(patients with an observed positive image, patients with an observed negative
        image) of `pathology` among `image_ids`."""
        y = self.truth(image_ids, pathology)
        who = self.patients(image_ids)
        return len(set(who[y == 1])), len(set(who[y == 0]))

    def image_counts(self, image_ids: Sequence[str], pathology: str) -> tuple[int, int]:
        y = self.truth(image_ids, pathology)
        return int((y == 1).sum()), int((y == 0).sum())


@dataclass
class RunFolder:
    """One run folder (internal or external): metrics.json and its stored predictions."""

    folder: Path
    document: dict[str, Any]
    test: pd.DataFrame
    val: pd.DataFrame | None
    _rows: Rows | None = field(default=None, repr=False)

    @classmethod
    def read(cls, folder: Path) -> RunFolder:
        folder = Path(folder)
        document = json.loads((folder / "metrics.json").read_text())
        test = pd.read_parquet(folder / "predictions_test.parquet")
        val_path = folder / "predictions_val.parquet"
        val = pd.read_parquet(val_path) if val_path.exists() else None
        return cls(folder, document, test, val)

    @property
    def info(self) -> dict[str, Any]:
        return self.document["run"]

    @property
    def key(self) -> tuple[str, str, str, int]:
        info = self.info
        return (str(info["encoder"]), str(info["model"]), str(info["n"]), int(info["seed"]))

    @property
    def setting(self) -> tuple[str, str, str]:
        return self.key[:3]

    @property
    def evaluated(self) -> list[str]:
        return [str(p) for p in self.document.get("evaluated_pathologies") or []]

    def rows(self) -> Rows:
        """metrics.json's rows as (split, policy, metric, pathology) -> value (a copy)."""
        if self._rows is None:
            self._rows = {}
            for row in self.document["metrics"]:
                key = (row["split"], row["policy"], row["metric"], str(row["pathology"]))
                self._rows[key] = row["value"]
        return dict(self._rows)

    def predictions(self, split: str) -> pd.DataFrame | None:
        frame = self.test if split == "test" else self.val
        if frame is None:
            return None
        return frame.assign(image_id=frame["image_id"].astype(str)).set_index("image_id")

    def logit_threshold(self, policy: str, pathology: str) -> float:
        if policy == "t0.5":
            return 0.0
        value = (self.document.get("logit_thresholds") or {}).get(pathology)
        return math.nan if value is None else float(value)


# --- R3: which pathologies a run evaluates ------------------------------------------------------


def subset_ids(cohort_root: Path, n: str, seed: int) -> list[str]:
    path = Path(cohort_root) / "subsets" / f"n{n}" / f"seed{seed}.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def trained_pathologies(
    cohort: Cohort, train_ids: Sequence[str], rule: EvaluationRule
) -> list[str]:
    """The pathologies with enough positive patients and a negative patient in the training
    subset and in validation (the others get no model output)."""
    chosen = []
    for p in cohort.pathologies:
        ok = True
        for split, ids in (("train", train_ids), ("val", cohort.ids("val"))):
            positive, negative = cohort.patient_counts(ids, p)
            ok &= positive >= rule.least[split] and negative >= 1
        if ok:
            chosen.append(p)
    return chosen


def evaluated_pathologies(
    cohort: Cohort, train_ids: Sequence[str], rule: EvaluationRule
) -> list[str]:
    """R3 for a run of the training cohort."""
    trained = trained_pathologies(cohort, train_ids, rule)
    chosen = []
    for p in trained:
        positive, negative = cohort.patient_counts(cohort.ids("test"), p)
        if positive >= rule.least["test"] and negative >= 1:
            chosen.append(p)
    return chosen


def external_evaluated(
    external: Cohort, labelled: Sequence[str], trained: Sequence[str], rule: EvaluationRule
) -> list[str]:
    """R3 for an external evaluation: trained by the run, labelled by the external cohort, with
    the test minimum of positive patients and a negative patient there."""
    chosen = []
    for p in external.pathologies:
        if p not in labelled or p not in trained:
            continue
        positive, negative = external.patient_counts(external.ids("test"), p)
        if positive >= rule.least["test"] and negative >= 1:
            chosen.append(p)
    return chosen


# --- R1: a run's metrics ------------------------------------------------------------------------


def _columns(
    run: RunFolder, cohort: Cohort, split: str, pathologies: Sequence[str]
) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """(image ids, truth from the index, logits from the predictions) of one split, pathology
    by pathology; None when the split's predictions are not stored."""
    frame = run.predictions(split)
    if frame is None:
        return None
    ids = sorted(frame.index)
    truth = {p: cohort.truth(ids, p) for p in pathologies}
    logits = {p: frame.loc[ids, f"logit_{p}"].to_numpy(dtype=float) for p in pathologies}
    return ids, truth, logits


def expected_rows(run: RunFolder, cohort: Cohort) -> Rows:
    """What metrics.json's rows must hold, by the oracle, for every split whose predictions are
    stored: the model policies' values over the run's evaluated pathologies, the all-negative
    baseline's, the prevalence baseline's per-pathology and macro ranking values, and null for
    every per-pathology value of a pathology the run does not evaluate. Validation without stored
    predictions: only the all-negative baseline (from the index) and the nulls."""
    pathologies = cohort.pathologies
    evaluated = [p for p in pathologies if p in set(run.evaluated)]
    others = [p for p in pathologies if p not in set(evaluated)]
    rows = run.rows()
    splits = [s for s in SPLITS if any(r[0] == s for r in rows)]
    out: Rows = {}
    for split in splits:
        stored = _columns(run, cohort, split, pathologies)
        ids = stored[0] if stored else cohort.ids(split)
        truth = stored[1] if stored else {p: cohort.truth(ids, p) for p in pathologies}
        policies = list(MODEL_POLICIES)
        if any(r[:2] == (split, "all_negative") for r in rows):
            policies += list(BASELINES)
        for policy in policies:
            values: Values = {}
            if policy in MODEL_POLICIES and stored:
                logits = stored[2]
                decided = {
                    p: logits[p] >= run.logit_threshold(policy, p) for p in evaluated
                }  # NaN logit or threshold: never >=, so negative
                values = set_values(truth, logits, decided, evaluated)
            elif policy == "all_negative":
                zeros = {p: np.zeros(len(ids)) for p in pathologies}
                values = set_values(truth, zeros, zeros, evaluated)
            elif policy == "prevalence":
                # a constant score per pathology ranks like any constant; the pooled ranking
                # depends on the constants, which the docstring does not pin down (subset or
                # split prevalence), so it is left out, as are the seeded random decisions
                constant = {p: np.full(len(ids), 0.5) for p in pathologies}
                values = set_values(truth, constant, None, evaluated, pooled_ranking=False)
            for (metric, pathology), value in values.items():
                out[(split, policy, metric, pathology)] = value
            for p in others:
                for metric in RANKING + DECISION:
                    out[(split, policy, metric, p)] = None
    return out


def val_consistency(run: RunFolder, pathologies: Sequence[str]) -> list[Mismatch]:
    """Validation rows without stored predictions: each macro equals the mean of the run's
    per-pathology rows over its evaluated pathologies."""
    rows = run.rows()
    evaluated = [p for p in pathologies if p in set(run.evaluated)]
    out = []
    for policy in (*MODEL_POLICIES, *BASELINES):
        for metric in RANKING + DECISION:
            key = ("val", policy, metric, "macro")
            if key not in rows:
                continue
            expected = mean(rows.get(("val", policy, metric, p)) for p in evaluated)
            if not same(expected, rows[key]):
                out.append(Mismatch("R1 val macro", str(run.folder), str(key), expected, rows[key]))
    return out


def check_run(
    run: RunFolder,
    cohort: Cohort,
    rule: EvaluationRule,
    train_ids: Sequence[str] | None,
    expected_evaluated: Sequence[str] | None,
) -> list[Mismatch]:
    """R1 and R3 for one run folder: its evaluated pathologies, its predictions' labels against
    the index, its thresholds, and every value of metrics.json."""
    where = str(run.folder)
    out: list[Mismatch] = []
    if expected_evaluated is not None and list(run.evaluated) != list(expected_evaluated):
        out.append(
            Mismatch(
                "R3 evaluated_pathologies", where, "evaluated", expected_evaluated, run.evaluated
            )
        )
    # the stored labels are the index's, and the test images are the test split's
    for split in SPLITS:
        frame = run.predictions(split)
        if frame is None:
            continue
        ids = sorted(frame.index)
        if ids != cohort.ids(split):
            out.append(
                Mismatch(
                    "R1 predictions", where, f"{split} images", len(cohort.ids(split)), len(ids)
                )
            )
        for p in cohort.pathologies:
            stored = frame.loc[ids, f"true_{p}"].to_numpy(dtype=float)
            if not np.array_equal(stored, cohort.truth(ids, p), equal_nan=True):
                out.append(
                    Mismatch("R1 predictions", where, f"{split} true_{p}", "index", "differs")
                )
    for p in run.evaluated:
        if not math.isfinite(run.logit_threshold("tuned", p)):
            out.append(Mismatch("R1 thresholds", where, p, "a finite threshold", None))
    expected = expected_rows(run, cohort)
    out += compare("R1 metrics.json", where, expected, run.rows())
    if run.val is None:
        out += val_consistency(run, cohort.pathologies)
    info = run.info
    if train_ids is not None and "external" not in info:
        counts = {
            "n_train": len(train_ids),
            "n_val": len(cohort.ids("val")),
            "n_test": len(cohort.ids("test")),
        }
        out += compare("R1 run block", where, counts, info)
    return out


# --- the whole workflow -------------------------------------------------------------------------


@dataclass
class Workflow:
    """A finished workflow's files under `workdir` and what the oracle makes of them."""

    workdir: Path
    config: dict[str, Any]
    cohort: Cohort
    runs: dict[tuple[str, str, str, int], RunFolder]
    externals: dict[str, tuple[Cohort, list[str], dict[tuple, RunFolder]]] = field(
        default_factory=dict
    )
    _run_values: dict[tuple, Rows] = field(default_factory=dict, repr=False)
    _test_values: dict[tuple, Values] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, workdir: Path, config_path: Path) -> Workflow:
        config = load_yaml(config_path)
        root = Path(workdir) / "results" / config["cohort"]
        cohort = Cohort(root, config["pathologies"])
        runs = {}
        for path in sorted((root / "runs").glob("*/*/n*/seed*/metrics.json")):
            run = RunFolder.read(path.parent)
            runs[run.key] = run
        externals = {}
        for name, settings in (config.get("external") or {}).items():
            folder = root / "external" / name
            labelled = settings.get("pathologies") or list(config["pathologies"])
            external = Cohort(folder, config["pathologies"])
            folders = {}
            for path in sorted((folder / "runs").glob("*/*/n*/seed*/metrics.json")):
                run = RunFolder.read(path.parent)
                folders[run.key] = run
            externals[name] = (external, list(labelled), folders)
        return cls(Path(workdir), config, cohort, runs, externals)

    @property
    def root(self) -> Path:
        return self.workdir / "results" / self.config["cohort"]

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def rule(self) -> EvaluationRule:
        return EvaluationRule.of(self.config)

    def train_ids(self, key: tuple[str, str, str, int]) -> list[str]:
        return subset_ids(self.root, key[2], key[3])

    def settings(self) -> dict[tuple[str, str, str], list[RunFolder]]:
        out: dict[tuple[str, str, str], list[RunFolder]] = {}
        for key in sorted(self.runs):
            out.setdefault(key[:3], []).append(self.runs[key])
        return out

    def report_set(self) -> list[str]:
        """R2: the pathologies every run of the cohort evaluates, in config order."""
        sets = [set(run.evaluated) for run in self.runs.values()]
        common = set.intersection(*sets) if sets else set()
        return [p for p in self.cohort.pathologies if p in common]

    # -- per-run values: the oracle's where it can recompute them, else the run's own row --

    def run_values(self, key: tuple[str, str, str, int]) -> Rows:
        if key not in self._run_values:
            run = self.runs[key]
            values = dict(run.rows())
            values.update(expected_rows(run, self.cohort))
            self._run_values[key] = values
        return self._run_values[key]

    def test_values(self, run: RunFolder, cohort: Cohort, within: Sequence[str]) -> Values:
        """A run's test metrics over `within` (any set), for both model policies, from its
        stored logits, keyed ("policy/metric", pathology)."""
        key = (str(run.folder), str(cohort.folder), tuple(within))
        if key in self._test_values:
            return self._test_values[key]
        stored = _columns(run, cohort, "test", cohort.pathologies)
        assert stored is not None
        _, truth, logits = stored
        out: Values = {}
        for policy in MODEL_POLICIES:
            decided = {p: logits[p] >= run.logit_threshold(policy, p) for p in within}
            values = set_values(truth, logits, decided, within)
            for (metric, pathology), value in values.items():
                out[(f"{policy}/{metric}", pathology)] = value
        self._test_values[key] = out
        return out

    def estimate(
        self,
        runs: Sequence[RunFolder],
        cohort: Cohort,
        within: Sequence[str],
        policy: str,
        metric: str,
    ) -> Value:
        """Mean over the runs (seeds) of the full-test metric over `within`: macro for AUROC,
        AP, precision, recall, F1; pooled for exact match and Hamming loss."""
        which = "micro" if metric in POOLED else "macro"
        if not within:
            return None
        return mean(
            self.test_values(run, cohort, within)[(f"{policy}/{metric}", which)] for run in runs
        )


def check_runs(flow: Workflow) -> list[Mismatch]:
    """R1 and R3 for every internal and external run folder."""
    out = []
    for key, run in flow.runs.items():
        train = flow.train_ids(key)
        expected = evaluated_pathologies(flow.cohort, train, flow.rule)
        out += check_run(run, flow.cohort, flow.rule, train, expected)
        trained = [
            p for p in flow.cohort.pathologies if math.isfinite(run.logit_threshold("tuned", p))
        ]
        should = trained_pathologies(flow.cohort, train, flow.rule)
        if trained != should:
            out.append(Mismatch("R3 trained", str(run.folder), "logit_thresholds", should, trained))
    for name, (external, labelled, folders) in flow.externals.items():
        for key, run in folders.items():
            internal = flow.runs.get(key)
            trained = (
                trained_pathologies(flow.cohort, flow.train_ids(key), flow.rule)
                if internal is not None
                else []
            )
            expected = external_evaluated(external, labelled, trained, flow.rule)
            out += check_run(run, external, flow.rule, None, expected)
            if internal is not None and run.document.get(
                "logit_thresholds"
            ) != internal.document.get("logit_thresholds"):
                out.append(
                    Mismatch(
                        f"R1 external {name}",
                        str(run.folder),
                        "logit_thresholds",
                        "internal",
                        "differs",
                    )
                )
    return out


def check_counts(flow: Workflow) -> list[Mismatch]:
    """Hand counts: metrics.json's "positives" (images) and "positive_patients" blocks per split,
    and pathologies.csv (positives per split, whether each run evaluated each pathology)."""
    out: list[Mismatch] = []
    cohort = flow.cohort
    for key, run in flow.runs.items():
        ids = {"train": flow.train_ids(key), "val": cohort.ids("val"), "test": cohort.ids("test")}
        for block, patients in (("positives", False), ("positive_patients", True)):
            counts = run.document.get(block)
            if counts is None:
                continue
            expected = {
                (split, p): _positives(cohort, ids[split], p, patients)
                for split in ids
                for p in cohort.pathologies
            }
            actual = {(split, p): v for split, per in counts.items() for p, v in per.items()}
            out += compare(f"counts metrics.json {block}", str(run.folder), expected, actual)
    path = flow.report / "pathologies.csv"
    if path.exists():
        table = pd.read_csv(path, dtype={"n": str})
        for row in table.itertuples(index=False):
            key = (row.encoder, row.model, str(row.n), int(row.seed))
            run = flow.runs.get(key)
            if run is None:
                continue
            where = f"pathologies.csv {key} {row.pathology}"
            evaluated = str(row.evaluated) == "True"
            if evaluated != (row.pathology in run.evaluated):
                out.append(
                    Mismatch("counts pathologies.csv", where, "evaluated", not evaluated, evaluated)
                )
            ids = {
                "train": flow.train_ids(key),
                "val": cohort.ids("val"),
                "test": cohort.ids("test"),
            }
            fields = row._asdict()
            for split, split_ids in ids.items():
                for column, patients in (
                    (f"{split}_positives", False),
                    (f"{split}_positive_patients", True),
                ):
                    if column in fields:
                        count = _positives(cohort, split_ids, row.pathology, patients)
                        if not same(count, fields[column]):
                            out.append(
                                Mismatch(
                                    "counts pathologies.csv", where, column, count, fields[column]
                                )
                            )
    return out


def check_metrics_csv(flow: Workflow) -> list[Mismatch]:
    """metrics.csv: every run's rows, equal to the oracle (and n_train to the subset file)."""
    table = pd.read_csv(flow.report / "metrics.csv", dtype={"n": str, "pathology": str})
    out = []
    actual: dict[tuple, Any] = {}
    for row in table.itertuples(index=False):
        key = (row.encoder, row.model, str(row.n), int(row.seed))
        actual[(key, row.split, row.policy, row.metric, str(row.pathology))] = row.value
        if key in flow.runs and int(row.n_train) != len(flow.train_ids(key)):
            out.append(
                Mismatch(
                    "R1 metrics.csv", str(key), "n_train", len(flow.train_ids(key)), row.n_train
                )
            )
    for key in flow.runs:
        expected = {(key, *k): v for k, v in flow.run_values(key).items()}
        out += compare("R1 metrics.csv", "metrics.csv", expected, actual)
    return out


def _dedupe(mismatches: list[Mismatch]) -> list[Mismatch]:
    seen, out = set(), []
    for m in mismatches:
        if (m.check, m.where, m.key) not in seen:
            seen.add((m.check, m.where, m.key))
            out.append(m)
    return out


def check_summary_by_setting(flow: Workflow) -> list[Mismatch]:
    """R2 for summary_by_setting.csv."""
    table = pd.read_csv(flow.report / "summary_by_setting.csv", dtype={"n": str, "pathology": str})
    report_set = flow.report_set()
    out: list[Mismatch] = []
    has_set_column = "pathology_set" in table.columns
    if not has_set_column:
        out.append(
            Mismatch(
                "R2 summary_by_setting",
                "summary_by_setting.csv",
                "pathology_set column",
                "present",
                "absent",
            )
        )
    actual = {
        (r.encoder, r.model, str(r.n), r.split, r.policy, r.metric, str(r.pathology)): r
        for r in table.itertuples(index=False)
    }
    for setting, runs in flow.settings().items():
        values = [flow.run_values(run.key) for run in runs]
        exact = all(set(run.evaluated) == set(report_set) for run in runs)
        keys = {k for v in values for k in v}
        for split, policy, metric, pathology in sorted(keys):
            row = actual.get((*setting, split, policy, metric, pathology))
            where = f"{'/'.join(setting)} {split} {policy} {metric} {pathology}"
            if row is None:
                out.append(Mismatch("R2 summary_by_setting", where, "row", "present", "absent"))
                continue
            if pathology == "macro":
                per_run = [
                    mean(v.get((split, policy, metric, p)) for p in report_set) for v in values
                ]
                expected = mean(per_run)
            elif pathology == "micro":
                per_run = [v.get((split, policy, metric, "micro")) for v in values]
                expected = mean(per_run) if exact and report_set else None
            else:
                defined = [
                    float(v[(split, policy, metric, pathology)])
                    for v in values
                    if not missing(v.get((split, policy, metric, pathology)))
                ]
                expected = float(np.mean(defined)) if defined else None
                std = float(np.std(defined, ddof=1)) if len(defined) > 1 else None
                if not same(std, row.std):
                    out.append(Mismatch("R2 summary_by_setting", where, "std", std, row.std))
                if int(row.n_seeds) != len(defined):
                    out.append(
                        Mismatch(
                            "R2 summary_by_setting", where, "n_seeds", len(defined), row.n_seeds
                        )
                    )
            if not same(expected, row.mean):
                out.append(Mismatch("R2 summary_by_setting", where, "mean", expected, row.mean))
            if has_set_column and pathology in ("macro", "micro"):
                named = parse_set(row.pathology_set)
                if (named or set()) != set(report_set) and not (not report_set and named is None):
                    out.append(
                        Mismatch(
                            "R2 summary_by_setting",
                            where,
                            "pathology_set",
                            sorted(report_set),
                            row.pathology_set,
                        )
                    )
    return out


def _ci_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"n": str})


def check_bootstrap(flow: Workflow) -> list[Mismatch]:
    """R2 for bootstrap_ci.csv estimates and comparisons.csv values."""
    out: list[Mismatch] = []
    report_set = flow.report_set()
    settings = flow.settings()
    ci = _ci_table(flow.report / "bootstrap_ci.csv")
    if "pathology_set" not in ci.columns:
        out.append(
            Mismatch(
                "R2 bootstrap_ci", "bootstrap_ci.csv", "pathology_set column", "present", "absent"
            )
        )
    test_ids = flow.cohort.ids("test")
    n_patients = len(set(flow.cohort.patients(test_ids)))
    estimates: dict[tuple, Value] = {}
    for row in ci.itertuples(index=False):
        setting = (row.encoder, row.model, str(row.n))
        where = f"bootstrap_ci {'/'.join(setting)} {row.policy} {row.metric}"
        runs = settings.get(setting)
        if runs is None:
            out.append(Mismatch("R2 bootstrap_ci", where, "setting", "a run", "none"))
            continue
        expected = flow.estimate(runs, flow.cohort, report_set, row.policy, row.metric)
        estimates[(*setting, row.policy, row.metric)] = expected
        if not same(expected, row.estimate):
            out.append(Mismatch("R2 bootstrap_ci", where, "estimate", expected, row.estimate))
        if "pathology_set" in ci.columns:
            named = parse_set(row.pathology_set)
            if (named or set()) != set(report_set):
                out.append(
                    Mismatch(
                        "R2 bootstrap_ci",
                        where,
                        "pathology_set",
                        sorted(report_set),
                        row.pathology_set,
                    )
                )
        counts = {"n_seeds": len(runs), "n_images": len(test_ids), "n_patients": n_patients}
        out += compare("R2 bootstrap_ci counts", where, counts, row._asdict())
    comparisons = _ci_table(flow.report / "comparisons.csv")
    for row in comparisons.itertuples(index=False):
        where = (
            f"comparisons {row.encoder}/{row.n} {row.model} − {row.reference} "
            f"{row.policy} {row.metric}"
        )
        values = {}
        for side, model in (("model_value", row.model), ("reference_value", row.reference)):
            key = (row.encoder, model, str(row.n), row.policy, row.metric)
            runs = settings.get(key[:3], [])
            values[side] = estimates.get(
                key, flow.estimate(runs, flow.cohort, report_set, row.policy, row.metric)
            )
        values["difference"] = (
            None
            if missing(values["model_value"]) or missing(values["reference_value"])
            else values["model_value"] - values["reference_value"]
        )
        out += compare("R2 comparisons", where, values, row._asdict())
        if "pathology_set" in comparisons.columns:
            named = parse_set(row.pathology_set)
            if (named or set()) != set(report_set):
                out.append(
                    Mismatch(
                        "R2 comparisons",
                        where,
                        "pathology_set",
                        sorted(report_set),
                        row.pathology_set,
                    )
                )
    if "pathology_set" not in comparisons.columns:
        out.append(
            Mismatch(
                "R2 comparisons", "comparisons.csv", "pathology_set column", "present", "absent"
            )
        )
    return out


def transfer_set(flow: Workflow, name: str) -> list[str]:
    """R2 for an external cohort: evaluated by every internal run and every external
    evaluation of it."""
    _, _, folders = flow.externals[name]
    common = set(flow.report_set())
    for run in folders.values():
        common &= set(run.evaluated)
    if not folders:
        common = set()
    return [p for p in flow.cohort.pathologies if p in common]


def check_transfer(flow: Workflow) -> list[Mismatch]:
    """R2 for transfer.csv."""
    if not flow.externals:
        return []
    path = flow.report / "transfer.csv"
    table = pd.read_csv(path, dtype={"n": str}, keep_default_na=False, na_values=[""])
    out: list[Mismatch] = []
    settings = flow.settings()
    for name, (external, labelled, folders) in flow.externals.items():
        within = transfer_set(flow, name)
        rows = table[table["external"] == name]
        if rows.empty:
            out.append(Mismatch("R2 transfer", "transfer.csv", name, "rows", "none"))
        ids = external.ids("test")
        unlabelled = set(flow.cohort.pathologies) - set(labelled)
        for row in rows.itertuples(index=False):
            setting = (row.encoder, row.model, str(row.n))
            where = f"transfer {name} {'/'.join(setting)} {row.policy} {row.metric}"
            internal_runs = settings.get(setting, [])
            external_runs = [folders[r.key] for r in internal_runs if r.key in folders]
            internal = flow.estimate(internal_runs, flow.cohort, within, row.policy, row.metric)
            outside = flow.estimate(external_runs, external, within, row.policy, row.metric)
            difference = None if missing(internal) or missing(outside) else outside - internal
            expected = {"internal": internal, "external_value": outside, "difference": difference}
            out += compare("R2 transfer", where, expected, row._asdict())
            named = parse_set(row.pathologies) or set()
            if named != set(within):
                out.append(Mismatch("R2 transfer", where, "pathologies", within, row.pathologies))
            if (parse_set(row.missing) or set()) != unlabelled:
                out.append(
                    Mismatch("R2 transfer", where, "missing", sorted(unlabelled), row.missing)
                )
            counts = {
                "n_external_images": len(ids),
                "n_external_patients": len(set(external.patients(ids))),
            }
            out += compare("R2 transfer counts", where, counts, row._asdict())
    return out


# --- R4: summary.md -----------------------------------------------------------------------------


def markdown_sections(text: str) -> dict[str, str]:
    """'## Title' -> the section's text (up to the next '## ')."""
    out = {}
    for block in re.split(r"(?m)^## ", text)[1:]:
        title, _, body = block.partition("\n")
        out[title.strip()] = body
    return out


def markdown_tables(body: str) -> list[tuple[str, list[dict[str, str]]]]:
    """Every Markdown table of a section: (the paragraph just before it, rows of header ->
    cell)."""
    tables, lines = [], body.splitlines()
    paragraph: list[str] = []
    last = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        ruler = i + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[i + 1])
        if line.startswith("|") and ruler:
            header = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, _cells(lines[i]), strict=False)))
                i += 1
            tables.append((" ".join(paragraph) or last, rows))
            paragraph, last = [], ""
            continue
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            last, paragraph = " ".join(paragraph), []
        i += 1
    return tables


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def printed_number(cell: str) -> str:
    """The first number of a printed cell ("0.712 [0.6, 0.8]" -> "0.712"; "—" stays)."""
    return cell.strip().split(" ")[0] if cell.strip() else ""


def printed_as(value: Value, form: str) -> set[str]:
    """The strings a value may print as in `form` (".3f" / "+.3f"), allowing for the
    tolerance at a rounding edge; an undefined value prints as a dash (or nan)."""
    if missing(value):
        return {"—", "-", "nan", "+nan", "", "n/a"}
    v = float(value)
    return {format(v + d, form) for d in (-TOLERANCE, 0.0, TOLERANCE)} | (
        {format(0.0, form).replace("+", "-")} if form.startswith("+") and abs(v) < 5e-4 else set()
    )


METRIC_NAMES = {
    "auroc": "macro AUROC",
    "average_precision": "macro AP",
    "precision": "macro precision",
    "recall": "macro recall",
    "f1": "macro F1",
    "exact_match": "exact match",
    "hamming_loss": "Hamming loss",
}


def all_negative_values(flow: Workflow, within: Sequence[str]) -> dict[str, Value]:
    """The all-negative baseline on the test split over `within`: the same for every run."""
    ids = flow.cohort.ids("test")
    truth = {p: flow.cohort.truth(ids, p) for p in flow.cohort.pathologies}
    zeros = {p: np.zeros(len(ids)) for p in flow.cohort.pathologies}
    values = set_values(truth, zeros, zeros, within)
    return {
        metric: values.get((metric, "micro" if metric in POOLED else "macro"))
        for metric in METRIC_NAMES
    }


def check_summary(flow: Workflow) -> list[Mismatch]:
    """R4: the numbers and counts summary.md prints."""
    text = (flow.report / "summary.md").read_text()
    sections = markdown_sections(text)
    report = flow.config["report"]
    policy = report.get("policy", "tuned")
    report_set = flow.report_set()
    settings = flow.settings()
    n_train = {key[2]: len(flow.train_ids(key)) for key in flow.runs}
    out: list[Mismatch] = []

    def expect(where: str, value: Value, cell: str, form: str = ".3f") -> None:
        COMPARED["R4 summary.md"] += 1
        if printed_number(cell) not in printed_as(value, form):
            out.append(
                Mismatch(
                    "R4 summary.md", where, cell, format_value(value, form), printed_number(cell)
                )
            )

    # headline
    headline = next((t for t in sections if t.startswith("Headline")), None)
    if headline is None:
        out.append(Mismatch("R4 summary.md", "Headline", "section", "present", "absent"))
    else:
        size = _headline_size(flow, report, n_train)
        table = markdown_tables(sections[headline])[0][1]
        for row in table:
            if row.get("encoder") == "all-negative baseline":
                baseline = all_negative_values(flow, report_set)
                for metric, title in METRIC_NAMES.items():
                    if title in row:
                        expect(f"headline all-negative {metric}", baseline[metric], row[title])
                continue
            runs = settings.get((row["encoder"], row["model"], size))
            if runs is None:
                out.append(
                    Mismatch(
                        "R4 summary.md",
                        "headline",
                        f"{row['encoder']}/{row['model']}/{size}",
                        "runs",
                        "none",
                    )
                )
                continue
            for metric, title in METRIC_NAMES.items():
                if title in row:
                    value = flow.estimate(runs, flow.cohort, report_set, policy, metric)
                    expect(f"headline {row['model']} n={size} {metric}", value, row[title])
    # macro AUROC at every size
    sizes = sections.get("Macro AUROC at every training-set size")
    if sizes is not None:
        for row in markdown_tables(sizes)[0][1]:
            for column, cell in row.items():
                match = re.match(r"n = (\w+)", column)
                if not match:
                    continue
                runs = settings.get((row["encoder"], row["model"], match.group(1)))
                value = (
                    flow.estimate(runs or [], flow.cohort, report_set, "tuned", "auroc")
                    if runs
                    else None
                )
                expect(f"sizes {row['model']} {column}", value, cell)
    # paired comparisons
    for title, section in sections.items():
        if not title.startswith("Paired comparisons"):
            continue
        for _, table in markdown_tables(section):
            for row in table:
                if "pair" in row:
                    model, _, reference = row["pair"].partition(" − ")
                else:
                    model, reference = row["model"], report["comparisons"]["reference"]
                n = _size_of(row["size"])
                for metric, name in METRIC_NAMES.items():
                    column = f"Δ {name}"
                    if column not in row:
                        continue
                    a = (
                        flow.estimate(
                            settings.get((row["encoder"], model, n), []),
                            flow.cohort,
                            report_set,
                            policy,
                            metric,
                        )
                        if (row["encoder"], model, n) in settings
                        else None
                    )
                    b = (
                        flow.estimate(
                            settings.get((row["encoder"], reference, n), []),
                            flow.cohort,
                            report_set,
                            policy,
                            metric,
                        )
                        if (row["encoder"], reference, n) in settings
                        else None
                    )
                    difference = None if missing(a) or missing(b) else a - b
                    expect(
                        f"{title}: {model} − {reference} n={n} {metric}",
                        difference,
                        row[column],
                        "+.3f",
                    )
    # external test sets
    external = sections.get("External test sets")
    if external is not None and flow.externals:
        out += _check_transfer_section(flow, external, expect)
    out += check_data_section(flow, sections)
    return out


def format_value(value: Value, form: str) -> str:
    return "—" if missing(value) else format(float(value), form)


def _size_of(cell: str) -> str:
    return "all" if cell.startswith("all") else cell.strip()


def _headline_size(flow: Workflow, report: Mapping[str, Any], n_train: Mapping[str, int]) -> str:
    wanted = str(report.get("headline_size", "largest"))
    if wanted != "largest":
        return wanted
    return max(n_train, key=lambda n: n_train[n])


def _check_transfer_section(flow: Workflow, body: str, expect) -> list[Mismatch]:
    out: list[Mismatch] = []
    settings = flow.settings()
    names = list(flow.externals)
    for _, table in markdown_tables(body):
        for row in table:
            name = next((n for n in names if n in row), None)
            if name is None:
                continue
            within = transfer_set(flow, name)
            external, _, folders = flow.externals[name]
            n = _size_of(row["n"])
            runs = settings.get((row["encoder"], row["model"], n), [])
            inside = flow.estimate(runs, flow.cohort, within, "tuned", "auroc")
            outside = flow.estimate(
                [folders[r.key] for r in runs if r.key in folders],
                external,
                within,
                "tuned",
                "auroc",
            )
            expect(f"transfer {name} {row['model']} n={n} internal", inside, row["internal test"])
            expect(f"transfer {name} {row['model']} n={n} external", outside, row[name])
            difference = None if missing(inside) or missing(outside) else outside - inside
            expect(
                f"transfer {name} {row['model']} n={n} difference",
                difference,
                row["external − internal"],
                "+.3f",
            )
    return out


def check_data_section(flow: Workflow, sections: Mapping[str, str]) -> list[Mismatch]:
    """R4: the Data and Training subsets sections' counts against a hand count of the index,
    the split and the subset files."""
    out: list[Mismatch] = []
    body = sections.get("Data")
    if body is None:
        return [Mismatch("R4 summary.md data", "Data", "section", "present", "absent")]
    cohort = flow.cohort

    def expect(where: str, key: str, expected: Any, cell: str) -> None:
        COMPARED["R4 summary.md data"] += 1
        if printed_number(cell) != str(expected):
            out.append(Mismatch("R4 summary.md data", where, key, expected, cell))

    for caption, table in markdown_tables(body):
        if not table:
            continue
        columns = set(table[0])
        if {"images", "count"} <= columns:
            for row in table:
                label = row["images"].lower()
                if "no finding" in label and "indexed" in label:
                    expect(
                        "images", row["images"], int(cohort.index["no_finding"].sum()), row["count"]
                    )
                elif "indexed" in label:
                    expect("images", row["images"], len(cohort.index), row["count"])
        elif {"split", "images", "patients"} <= columns:
            for row in table:
                ids = cohort.ids(row["split"])
                expect(f"split {row['split']}", "images", len(ids), row["images"])
                expect(
                    f"split {row['split']}",
                    "patients",
                    len(set(cohort.patients(ids))),
                    row["patients"],
                )
        elif {"pathology", "present"} <= columns:
            # the caption says what each column counts: images or patients
            said = caption.lower().replace("*", "")
            in_index = "patients present" in said
            per_split = bool(re.search(r"patients (per|in each) split", said))
            fewest = bool(re.search(r"fewest (positive )?(training )?patients", said))
            every = sorted(cohort.by_id.index)
            for row in table:
                p = row["pathology"]
                if p not in cohort.pathologies:
                    continue
                count = _positives(cohort, every, p, in_index)
                expect(f"positives {p}", "present", count, row["present"])
                for split in ("train", "val", "test"):
                    if f"{split} split" in row:
                        count = _positives(cohort, cohort.ids(split), p, per_split)
                        expect(f"positives {p}", f"{split} split", count, row[f"{split} split"])
                for column, cell in row.items():
                    match = re.match(r"n = (\w+).*: fewest", column)
                    if match:
                        n = match.group(1)
                        seeds = sorted({k[3] for k in flow.runs if k[2] == n})
                        counts = [
                            _positives(cohort, subset_ids(flow.root, n, seed), p, fewest)
                            for seed in seeds
                        ]
                        if counts:
                            expect(f"positives {p}", column, min(counts), cell)
    subsets = sections.get("Training subsets")
    if subsets is not None:
        out += _check_subsets_section(flow, subsets)
    return out


def _check_subsets_section(flow: Workflow, body: str) -> list[Mismatch]:
    """The training subsets' composition by hand (issue 23, case 5): images, the all-negative
    share (no observed positive of any configured pathology), the mean over pathologies of the
    prevalence among the images that observe the label, and the fewest positive patients and
    images of any pathology in any seed's subset."""
    out: list[Mismatch] = []
    cohort = flow.cohort
    seeds = sorted({k[3] for k in flow.runs})
    for _, table in markdown_tables(body):
        for row in table:
            if "n" not in row:
                continue
            n = _size_of(row["n"])
            subsets = [subset_ids(flow.root, n, seed) for seed in seeds]
            shares, prevalences, patients, images = [], [], [], []
            for ids in subsets:
                truth = {p: cohort.truth(ids, p) for p in cohort.pathologies}
                positive = np.zeros(len(ids), dtype=bool)
                per_pathology = []
                for p, y in truth.items():
                    positive |= y == 1
                    if (~np.isnan(y)).any():
                        per_pathology.append(float(np.nanmean(y)))
                    patients.append(cohort.patient_counts(ids, p)[0])
                    images.append(cohort.image_counts(ids, p)[0])
                shares.append(float((~positive).mean()))
                prevalences.append(float(np.mean(per_pathology)) if per_pathology else math.nan)
            expected: dict[str, Any] = {
                "seeds": str(len(seeds)),
                "images": str(len(subsets[0])) if len({len(s) for s in subsets}) == 1 else None,
                "all-negative share": float(np.mean(shares)),
                "mean prevalence": float(np.mean(prevalences)),
                "fewest positive patients": str(min(patients)),
                "fewest positive images": str(min(images)),
            }
            for column, value in expected.items():
                if value is None or column not in row:
                    continue
                printed = printed_number(row[column])
                ok = (
                    printed in printed_as(value, ".3f")
                    if isinstance(value, float)
                    else (printed == value)
                )
                if not ok:
                    shown = format_value(value, ".3f") if isinstance(value, float) else value
                    out.append(
                        Mismatch("R4 summary.md subsets", f"n = {n}", column, shown, row[column])
                    )
    return out


def _positives(cohort: Cohort, ids: Sequence[str], pathology: str, patients: bool) -> int:
    if patients:
        return cohort.patient_counts(ids, pathology)[0]
    return cohort.image_counts(ids, pathology)[0]


def check_workflow(flow: Workflow) -> dict[str, list[Mismatch]]:
    """Every check, by name."""
    checks = {
        "runs (R1, R3)": check_runs,
        "metrics.csv (R1)": check_metrics_csv,
        "counts (metrics.json, pathologies.csv)": check_counts,
        "summary_by_setting.csv (R2)": check_summary_by_setting,
        "bootstrap_ci.csv / comparisons.csv (R2)": check_bootstrap,
        "transfer.csv (R2)": check_transfer,
        "summary.md (R4)": check_summary,
    }
    return {name: _dedupe(check(flow)) for name, check in checks.items()}


def describe(results: Mapping[str, list[Mismatch]], limit: int = 12) -> str:
    """A readable account of the checks: counts, and the first mismatches of each, then how many
    values each check compared so far."""
    lines = []
    for name, mismatches in results.items():
        lines.append(f"{name}: {'ok' if not mismatches else f'{len(mismatches)} mismatch(es)'}")
        lines += [f"    {m}" for m in mismatches[:limit]]
    lines.append("values compared: " + ", ".join(f"{k} {v}" for k, v in sorted(COMPARED.items())))
    return "\n".join(lines)


# --- R5: the sentiment track --------------------------------------------------------------------

SENTIMENT_METRICS = ("accuracy", "precision", "recall", "f1")


def binary_values(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy (share right, by hand) and precision / recall / F1 of class 1 (zero_division=0)."""
    y, d = np.asarray(labels).astype(int), np.asarray(predicted).astype(int)
    return {
        "accuracy": float((y == d).mean()),
        "precision": float(precision_score(y, d, zero_division=0)),
        "recall": float(recall_score(y, d, zero_division=0)),
        "f1": float(f1_score(y, d, zero_division=0)),
    }


@dataclass
class SentimentCell:
    folder: Path
    document: dict[str, Any]
    test: dict[str, float]  # the oracle's test metrics from predictions.csv

    @property
    def setting(self) -> tuple[str, str, str, str, str]:
        d = self.document
        pooling = d.get("pooling", "head" if d["method"] == "finetune" else "cls")
        return (d["dataset"], d["model"], d["method"], pooling, str(d.get("n", "all")))

    @property
    def seed(self) -> int:
        return int(self.document.get("seed", 0))

    def value(self, split: str, metric: str) -> Value:
        """The oracle's test value; validation (no stored predictions): the cell's own."""
        if split == "test":
            return self.test[metric]
        for row in self.document["metrics"]:
            if (row["split"], row["metric"]) == (split, metric):
                return row["value"]
        return None


def sentiment_cells(workdir: Path) -> list[SentimentCell]:
    cells = []
    for path in sorted((Path(workdir) / "results" / "sentiment").glob("*/**/seed*/metrics.json")):
        predictions = path.with_name("predictions.csv")
        if not predictions.exists():
            continue
        table = pd.read_csv(predictions)
        test = table[table["split"] == "test"].sort_values("row")
        cells.append(
            SentimentCell(
                path.parent,
                json.loads(path.read_text()),
                binary_values(test["label"].to_numpy(), test["prediction"].to_numpy()),
            )
        )
    return cells


def check_sentiment(workdir: Path, config: Mapping[str, Any]) -> list[Mismatch]:
    """R5: each cell's test metrics from its stored predictions; sentiment_runs.csv,
    sentiment.csv (means over seeds, paired differences to the reference) and
    sentiment_comparisons.csv from them; the summary's sentiment table."""
    out: list[Mismatch] = []
    cells = sentiment_cells(workdir)
    if not cells:
        return [Mismatch("R5 sentiment", str(workdir), "cells", "some", "none")]
    report = Path(workdir) / "results" / config["cohort"] / "report"
    for cell in cells:
        rows = {(r["split"], r["metric"]): r["value"] for r in cell.document["metrics"]}
        expected = {("test", m): cell.test[m] for m in SENTIMENT_METRICS}
        out += compare("R5 sentiment metrics.json", str(cell.folder), expected, rows)
    runs = pd.read_csv(report / "sentiment_runs.csv", dtype={"n": str})
    actual = {
        (r.dataset, r.model, r.method, r.pooling, str(r.n), int(r.seed), r.split, r.metric): r.value
        for r in runs.itertuples(index=False)
    }
    expected_runs = {}
    for cell in cells:
        for split in ("validation", "test"):
            for metric in SENTIMENT_METRICS:
                expected_runs[(*cell.setting, cell.seed, split, metric)] = cell.value(split, metric)
    out += compare("R5 sentiment_runs.csv", "sentiment_runs.csv", expected_runs, actual)

    by_setting: dict[tuple, list[SentimentCell]] = {}
    for cell in cells:
        by_setting.setdefault(cell.setting, []).append(cell)
    reference = (
        config["sentiment"]["reference"]["method"],
        config["sentiment"]["reference"]["pooling"],
    )

    def difference(setting: tuple, metric: str) -> tuple[Value, Value, Value]:
        dataset, model, method, pooling, n = setting
        if (method, pooling) == reference:
            return None, None, None
        base = {c.seed: c for c in by_setting.get((dataset, model, *reference, n), [])}
        shared = [c for c in by_setting[setting] if c.seed in base]
        if not shared:
            return None, None, None
        value = mean(c.test[metric] for c in shared)
        reference_value = mean(base[c.seed].test[metric] for c in shared)
        return (
            value,
            reference_value,
            mean(c.test[metric] - base[c.seed].test[metric] for c in shared),
        )

    table = pd.read_csv(report / "sentiment.csv", dtype={"n": str})
    for row in table.itertuples(index=False):
        setting = (row.dataset, row.model, row.method, row.pooling, str(row.n))
        where = f"sentiment.csv {'/'.join(setting)} {row.split} {row.metric}"
        members = by_setting.get(setting, [])
        expected = {
            "value": mean(c.value(row.split, row.metric) for c in members),
            "n_seeds": len(members),
        }
        if row.split == "test" and row.metric in ("accuracy", "f1"):
            expected["difference"] = difference(setting, row.metric)[2]
        out += compare("R5 sentiment.csv", where, expected, row._asdict())
    comparisons = pd.read_csv(report / "sentiment_comparisons.csv", dtype={"n": str})
    for row in comparisons.itertuples(index=False):
        setting = (row.dataset, row.model, row.method, row.pooling, str(row.n))
        value, reference_value, diff = difference(setting, row.metric)
        where = f"sentiment_comparisons.csv {'/'.join(setting)} {row.metric}"
        expected = {"value": value, "reference_value": reference_value, "difference": diff}
        out += compare("R5 sentiment_comparisons.csv", where, expected, row._asdict())
    summary = report / "summary.md"
    if summary.exists():
        out += _check_sentiment_section(summary.read_text(), by_setting, difference)
    return out


def _check_sentiment_section(text: str, by_setting, difference) -> list[Mismatch]:
    """summary.md's sentiment tables: test accuracy and F1, the difference in accuracy to the
    reference and validation accuracy at the largest size, as printed."""
    out: list[Mismatch] = []
    body = markdown_sections(text).get("Sentiment track")
    if body is None:
        return [Mismatch("R5 summary.md", "Sentiment track", "section", "present", "absent")]
    labels = {
        "SVM on frozen features": "svm",
        "logistic regression on frozen features": "logreg",
        "fine-tuned encoder": "finetune",
    }
    poolings = {"[CLS]": "cls", "mean": "mean", "classifier head": "head"}
    headings = re.findall(r"(?m)^### (\S+) / (\S+), (.+?) training reviews$", body)
    for (dataset, model, size), (_, table) in zip(headings, markdown_tables(body), strict=False):
        n = "all" if size.startswith("all") else size
        for row in table:
            setting = (
                dataset,
                model,
                labels.get(row["method"], row["method"]),
                poolings.get(row["pooling"], row["pooling"]),
                n,
            )
            members = by_setting.get(setting, [])
            where = f"summary.md sentiment {'/'.join(setting)}"
            checks = [
                ("test accuracy", mean(c.value("test", "accuracy") for c in members), ".3f"),
                ("test F1", mean(c.value("test", "f1") for c in members), ".3f"),
                (
                    "validation accuracy",
                    mean(c.value("validation", "accuracy") for c in members),
                    ".3f",
                ),
            ]
            if row.get("Δ accuracy vs reference", "reference") != "reference":
                checks.append(
                    ("Δ accuracy vs reference", difference(setting, "accuracy")[2], "+.3f")
                )
            for column, value, form in checks:
                COMPARED["R5 summary.md"] += column in row
                if column in row and printed_number(row[column]) not in printed_as(value, form):
                    out.append(
                        Mismatch(
                            "R5 summary.md", where, column, format_value(value, form), row[column]
                        )
                    )
    return out
