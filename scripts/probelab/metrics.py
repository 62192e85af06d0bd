"""Multilabel metrics (scikit-learn), F1-optimal thresholds, the trivial baselines, and the one
rule that says which pathologies a run can evaluate.

Every metric is returned as rows of the `metrics.json` contract (docs/architecture.md):
{"split", "policy", "metric", "pathology", "value"}, with value None where the metric is
undefined or the pathology is not evaluated.

Scores are logits (the raw score before the sigmoid), never probabilities: for a CLIP-type
zero-shot model (logit scale 100, no bias) sigmoid(100 * cos) is exactly 1.0 in float64 from
cos >= 0.368, so ranking or thresholding probabilities would tie images that the logits order.
A decision is `logit >= logit threshold`.

Which pathologies a macro (or pooled) metric covers: exactly the `evaluated` ones (default all),
the same set for every metric. A pathology outside it gets value None in its own rows; a macro
over a set that holds a pathology whose metric is undefined in the split is itself None, never an
average over fewer pathologies.

Labels may be NaN: not observed (probelab.masking). Every metric, count and threshold uses the
observed labels only: a pathology's metrics its images that observe it, the pooled ("micro")
metrics the observed cells, exact match each image's observed labels (an image with none is left
out), Hamming loss the mean over observed cells. With every label observed the numbers are
computed exactly as before masks existed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from probelab.masking import is_masked, observed
from probelab.masking import negatives as negative_labels
from probelab.masking import positives as positive_labels

# The fixed threshold of the "t0.5" policy, on the logit scale: logit >= 0 is probability >= 0.5.
# Also the threshold of a pathology whose tuned threshold cannot be chosen because the validation
# split has no positive for it.
DEFAULT_LOGIT_THRESHOLD = 0.0
# The same threshold as a probability (metrics.json "thresholds" are probabilities for readers).
DEFAULT_THRESHOLD = 0.5

# How the splits are named in the reasons of excluded pathologies.
SPLIT_WORDS = {"train": "the training subset", "val": "validation", "test": "test"}

Row = dict[str, object]


def _value(x: float | None) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return float(x)


def _row(split: str, policy: str, metric: str, pathology: str, value: float | None) -> Row:
    return {
        "split": split,
        "policy": policy,
        "metric": metric,
        "pathology": pathology,
        "value": _value(value),
    }


# --- which pathologies can be evaluated ---------------------------------------------------------


def label_counts(
    truth: np.ndarray, patients: Sequence[object] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative *patients* per column of a 0/1/NaN label matrix (N x P), as int
    arrays: a patient counts once as a positive of a pathology when one of their images is
    observed positive, once as a negative when one is observed negative (a NaN label, not
    observed, is neither). `patients` gives each row's patient; None counts every image as a
    patient of its own.

    Patients, not images, because the report's intervals resample patients: three positive
    images of one patient are one draw, with no more variance than one image
    (docs/rare_labels.md).
    """
    truth = np.asarray(truth)
    positive, negative = positive_labels(truth), negative_labels(truth)
    if patients is None:
        return positive.sum(axis=0).astype(int), negative.sum(axis=0).astype(int)
    _, rows_of = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    n_patients = int(rows_of.max()) + 1 if rows_of.size else 0
    counts = []
    for labels in (positive, negative):
        any_of = np.zeros((n_patients, truth.shape[1]), dtype=bool)
        np.logical_or.at(any_of, rows_of, labels)
        counts.append(any_of.sum(axis=0).astype(int))
    return counts[0], counts[1]


def label_exclusions(
    counts: Mapping[str, tuple[np.ndarray, np.ndarray]],
    pathologies: Sequence[str],
    min_positives: int | Mapping[str, int],
) -> dict[str, str]:
    """The pathologies that fail the evaluation rule, each with the reason.

    The rule: a pathology is evaluated when each split in `counts` (split name -> positive and
    negative patients per pathology, see `label_counts`) has at least `min_positives` positive
    patients (one number, or one per split) and at least one negative patient of it, counting
    observed labels only (a NaN label is neither). Fewer positives make its AUROC, AP, recall
    and tuned threshold undefined or rest on a handful of patients, whose interval is too
    narrow; no negative makes AUROC undefined.
    """
    reasons: dict[str, str] = {}
    for k, name in enumerate(pathologies):
        parts = []
        for split, (positives, negatives) in counts.items():
            where = SPLIT_WORDS.get(split, split)
            least = min_positives if isinstance(min_positives, int) else min_positives[split]
            if positives[k] < least:
                word = "patient" if positives[k] == 1 else "patients"
                parts.append(f"{positives[k]} positive {word} in {where} (needs {least})")
            if negatives[k] < 1:
                parts.append(f"no negative in {where}")
        if parts:
            reasons[name] = ", ".join(parts)
    return reasons


def _columns(pathologies: Sequence[str], evaluated: Sequence[str] | None) -> list[int]:
    """Column indices of the evaluated pathologies (all when `evaluated` is None)."""
    if evaluated is None:
        return list(range(len(pathologies)))
    unknown = set(evaluated) - set(pathologies)
    if unknown:
        raise ValueError(f"evaluated pathologies {sorted(unknown)} are not in {list(pathologies)}.")
    wanted = set(evaluated)
    return [k for k, name in enumerate(pathologies) if name in wanted]


# --- thresholds ---------------------------------------------------------------------------------


def f1_optimal_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The score (logit) threshold, predict positive when score >= threshold, that maximises F1.

    Falls back to DEFAULT_LOGIT_THRESHOLD when `truth` has no positive (F1 is then undefined for
    every threshold), and is NaN when the scores are (a pathology that was not trained). Images
    whose label is NaN (not observed) take no part.
    """
    if np.isnan(scores).any():
        return math.nan
    if is_masked(truth):
        seen = observed(truth)
        truth, scores = truth[seen], scores[seen]
    if truth.sum() == 0:
        return DEFAULT_LOGIT_THRESHOLD
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(thresholds[int(np.argmax(f1))])


def tune_thresholds(val_truth: np.ndarray, val_logits: np.ndarray) -> np.ndarray:
    """Per-pathology F1-optimal logit thresholds, chosen on validation labels and logits (N x P);
    NaN for a column without logits."""
    _check_shapes(val_truth, val_logits)
    return np.array(
        [f1_optimal_threshold(val_truth[:, k], val_logits[:, k]) for k in range(val_truth.shape[1])]
    )


def binarize(scores: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """Predict positive where score >= threshold (a scalar, or one threshold per pathology
    column); a NaN score or threshold predicts negative."""
    return (scores >= np.asarray(thresholds, dtype=float)).astype(np.int8)


def _check_shapes(truth: np.ndarray, scores: np.ndarray) -> None:
    if truth.shape != scores.shape or truth.ndim != 2:
        raise ValueError(
            f"labels {truth.shape} and scores {scores.shape} "
            "must both be N x P arrays of one shape."
        )


# --- metrics ------------------------------------------------------------------------------------


def _defined(truth_column: np.ndarray) -> bool:
    """AUROC needs both classes present among the observed labels."""
    return bool(positive_labels(truth_column).any() and negative_labels(truth_column).any())


def _has_positive(truth_column: np.ndarray) -> bool:
    return bool(positive_labels(truth_column).any())


def _per_column(
    metric, truth: np.ndarray, scores: np.ndarray, columns: list[int], n: int
) -> list[float | None]:
    """`metric` of each listed column in one scikit-learn call (one input validation), None
    elsewhere; a column with masked labels on its observed images, in a call of its own."""
    values: list[float | None] = [None] * n
    if is_masked(truth[:, columns]):
        for k in columns:
            seen = observed(truth[:, k])
            values[k] = float(metric(truth[seen, k], scores[seen, k]))
        return values
    if len(columns) == 1:
        values[columns[0]] = float(metric(truth[:, columns[0]], scores[:, columns[0]]))
    elif columns:
        for k, value in zip(
            columns, metric(truth[:, columns], scores[:, columns], average=None), strict=True
        ):
            values[k] = float(value)
    return values


def _macro(values: list[float | None], columns: list[int]) -> float | None:
    """Mean over exactly `columns`; None when there is none or one of them is undefined."""
    chosen = [values[k] for k in columns]
    if not chosen or any(v is None for v in chosen):
        return None
    return float(np.mean(chosen))


def ranking_rows(
    split: str,
    policy: str,
    truth: np.ndarray,
    scores: np.ndarray,
    pathologies: Sequence[str],
    evaluated: Sequence[str] | None = None,
) -> list[Row]:
    """Per-pathology, macro and micro AUROC and average precision of the evaluated pathologies.

    `scores` are logits (any monotone score ranks the same; saturated probabilities do not).
    AUROC needs positives and negatives; average precision needs positives.
    """
    n = len(pathologies)
    columns = _columns(pathologies, evaluated)
    auroc = _per_column(
        roc_auc_score, truth, scores, [k for k in columns if _defined(truth[:, k])], n
    )
    ap = _per_column(
        average_precision_score,
        truth,
        scores,
        [k for k in columns if _has_positive(truth[:, k])],
        n,
    )
    rows: list[Row] = []
    for k, name in enumerate(pathologies):
        rows.append(_row(split, policy, "auroc", name, auroc[k]))
        rows.append(_row(split, policy, "average_precision", name, ap[k]))
    for metric, values in (("auroc", auroc), ("average_precision", ap)):
        rows.append(_row(split, policy, metric, "macro", _macro(values, columns)))
    flat_truth, flat_scores = truth[:, columns].ravel(), scores[:, columns].ravel()
    if is_masked(flat_truth):  # the pooled metrics pool the observed cells
        seen = observed(flat_truth)
        flat_truth, flat_scores = flat_truth[seen], flat_scores[seen]
    rows.append(
        _row(
            split,
            policy,
            "auroc",
            "micro",
            roc_auc_score(flat_truth, flat_scores) if _defined(flat_truth) else None,
        )
    )
    rows.append(
        _row(
            split,
            policy,
            "average_precision",
            "micro",
            average_precision_score(flat_truth, flat_scores) if _has_positive(flat_truth) else None,
        )
    )
    return rows


def decision_rows(
    split: str,
    policy: str,
    truth: np.ndarray,
    predicted: np.ndarray,
    pathologies: Sequence[str],
    evaluated: Sequence[str] | None = None,
) -> list[Row]:
    """Exact match, Hamming loss, and per-pathology / macro / micro precision, recall and F1, over
    the evaluated pathologies.

    Exact match and Hamming loss pool the evaluated labels of all images, so they carry pathology
    "micro". Precision of a pathology never predicted positive (and recall of one never positive)
    counts as 0, scikit-learn's `zero_division=0` convention; under the evaluation rule an
    evaluated pathology always has positives, so only the first can happen.

    Every per-pathology value comes from a 1-D binary call on one column (`_column_decision_rows`),
    never from a 2-D one: scikit-learn reads an (N, 1) label array as a binary problem over the
    classes {0, 1}, so with one evaluated pathology its "per class" values would be the negative
    class's and its "macro" the mean over both classes.
    """
    columns = _columns(pathologies, evaluated)
    if not columns:
        rows = [
            _row(split, policy, "exact_match", "micro", None),
            _row(split, policy, "hamming_loss", "micro", None),
        ]
        for name in [*pathologies, "macro", "micro"]:
            rows += [_row(split, policy, m, name, None) for m in ("precision", "recall", "f1")]
        return rows
    return _column_decision_rows(
        split, policy, truth[:, columns], predicted[:, columns], pathologies, columns
    )


def _column_decision_rows(
    split: str,
    policy: str,
    truth_e: np.ndarray,
    predicted_e: np.ndarray,
    pathologies: Sequence[str],
    columns: list[int],
) -> list[Row]:
    """`decision_rows` over the observed cells of the evaluated columns (`truth_e`, `predicted_e`:
    those columns only; every cell observed when the labels carry no NaN): per pathology its
    observed images; micro precision, recall and F1 the pooled observed cells (multilabel micro
    averaging pools true and false positives over cells the same way); exact match the share of
    images (with at least one observed label) whose observed labels are all right; Hamming loss
    the share of observed cells that are wrong."""
    seen = observed(truth_e)
    truth_filled = np.where(seen, truth_e, 0).astype(np.int8)
    predicted_e = np.asarray(predicted_e).astype(np.int8)
    wrong = (truth_filled != predicted_e) & seen
    kept = seen.any(axis=1)
    rows = [
        _row(
            split,
            policy,
            "exact_match",
            "micro",
            float(np.mean(~wrong[kept].any(axis=1))) if kept.any() else None,
        ),
        _row(
            split,
            policy,
            "hamming_loss",
            "micro",
            float(wrong.sum() / seen.sum()) if seen.any() else None,
        ),
    ]
    per_class: dict[int, tuple[float | None, ...]] = {}
    for i, k in enumerate(columns):
        rows_i = seen[:, i]
        per_class[k] = (None, None, None)  # no observed label: undefined, not 0
        if rows_i.any():
            per_class[k] = tuple(
                precision_recall_fscore_support(
                    truth_filled[rows_i, i],
                    predicted_e[rows_i, i],
                    average="binary",
                    zero_division=0,
                )[:3]
            )
    for k, name in enumerate(pathologies):
        for j, metric in enumerate(("precision", "recall", "f1")):
            value = per_class[k][j] if k in per_class else None
            rows.append(_row(split, policy, metric, name, value))
    # macro: the mean of the per-pathology values (None when one is undefined, as `_macro`)
    macro = [
        _macro([per_class[k][j] for k in columns], list(range(len(columns)))) for j in range(3)
    ]
    micro: tuple = (None, None, None)
    if seen.any():
        micro = precision_recall_fscore_support(
            truth_filled[seen], predicted_e[seen], average="binary", zero_division=0
        )[:3]
    for average, (p, r, f) in (("macro", macro), ("micro", micro)):
        rows += [
            _row(split, policy, "precision", average, p),
            _row(split, policy, "recall", average, r),
            _row(split, policy, "f1", average, f),
        ]
    return rows


def evaluate(
    split: str,
    truth: np.ndarray,
    logits: np.ndarray,
    policies: Mapping[str, np.ndarray | float],
    pathologies: Sequence[str],
    evaluated: Sequence[str] | None = None,
) -> list[Row]:
    """All metric rows of one split for each threshold policy (name -> logit threshold, or one per
    pathology), over the evaluated pathologies (default all). AUROC and average precision do not
    depend on the threshold: computed once, they are repeated under every policy so that each
    policy's rows are complete."""
    _check_shapes(truth, logits)
    ranking = ranking_rows(split, "", truth, logits, pathologies, evaluated)
    rows: list[Row] = []
    for policy, thresholds in policies.items():
        rows += [{**row, "policy": policy} for row in ranking]
        rows += decision_rows(
            split, policy, truth, binarize(logits, thresholds), pathologies, evaluated
        )
    return rows


def baseline_rows(
    split: str,
    truth: np.ndarray,
    train_prevalence: np.ndarray,
    pathologies: Sequence[str],
    seed: int,
    evaluated: Sequence[str] | None = None,
) -> list[Row]:
    """The two trivial baselines on the same split, over the same evaluated pathologies.

    all_negative: every label predicted negative (scores all equal, so AUROC 0.5).
    prevalence: the score of each pathology is its training prevalence (AUROC 0.5, average
    precision = the split's prevalence), and each label is predicted positive at random with that
    probability (seeded): the F1 a label-frequency guesser reaches.
    """
    n = truth.shape[0]
    zeros = np.zeros(truth.shape)
    prevalence_scores = np.broadcast_to(np.asarray(train_prevalence, dtype=float), truth.shape)
    guesses = (np.random.default_rng(seed).random(truth.shape) < prevalence_scores).astype(np.int8)
    negative = np.zeros((n, truth.shape[1]), dtype=np.int8)
    rows = ranking_rows(split, "all_negative", truth, zeros, pathologies, evaluated)
    rows += decision_rows(split, "all_negative", truth, negative, pathologies, evaluated)
    rows += ranking_rows(
        split, "prevalence", truth, np.array(prevalence_scores), pathologies, evaluated
    )
    rows += decision_rows(split, "prevalence", truth, guesses, pathologies, evaluated)
    return rows
