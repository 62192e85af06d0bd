"""Multilabel metrics (scikit-learn), F1-optimal thresholds, and the trivial baselines.

Every metric is returned as rows of the `metrics.json` contract (docs/architecture.md):
{"split", "policy", "metric", "pathology", "value"}, with value None where the metric is
undefined (AUROC of a pathology that has no positives, or no negatives, in the split).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    hamming_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

# The fixed threshold of the "t0.5" policy; also used for a pathology whose tuned threshold cannot
# be chosen because the validation split has no positive for it.
DEFAULT_THRESHOLD = 0.5

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


def f1_optimal_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (predict positive when score >= threshold) that maximises F1.

    Falls back to DEFAULT_THRESHOLD when `truth` has no positive: F1 is then undefined for every
    threshold.
    """
    if truth.sum() == 0:
        return DEFAULT_THRESHOLD
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(thresholds[int(np.argmax(f1))])


def tune_thresholds(val_truth: np.ndarray, val_scores: np.ndarray) -> np.ndarray:
    """Per-pathology F1-optimal thresholds, chosen on validation labels and scores (N x P)."""
    _check_shapes(val_truth, val_scores)
    return np.array(
        [f1_optimal_threshold(val_truth[:, k], val_scores[:, k]) for k in range(val_truth.shape[1])]
    )


def binarize(scores: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """Predict positive where score >= threshold (a scalar, or one threshold per pathology
    column)."""
    return (scores >= np.asarray(thresholds, dtype=float)).astype(np.int8)


def _check_shapes(truth: np.ndarray, scores: np.ndarray) -> None:
    if truth.shape != scores.shape or truth.ndim != 2:
        raise ValueError(
            f"labels {truth.shape} and scores {scores.shape} "
            "must both be N x P arrays of one shape."
        )


def _defined(truth_column: np.ndarray) -> bool:
    """AUROC needs both classes present."""
    positives = int(truth_column.sum())
    return 0 < positives < len(truth_column)


def _per_column(
    metric, truth: np.ndarray, scores: np.ndarray, columns: list[int], n: int
) -> list[float | None]:
    """`metric` of each listed column in one scikit-learn call (one input validation), None
    elsewhere."""
    values: list[float | None] = [None] * n
    if len(columns) == 1:
        values[columns[0]] = float(metric(truth[:, columns[0]], scores[:, columns[0]]))
    elif columns:
        for k, value in zip(
            columns, metric(truth[:, columns], scores[:, columns], average=None), strict=True
        ):
            values[k] = float(value)
    return values


def ranking_rows(
    split: str, policy: str, truth: np.ndarray, scores: np.ndarray, pathologies: Sequence[str]
) -> list[Row]:
    """Per-pathology, macro and micro AUROC and average precision.

    Macro averages only the pathologies where the metric is defined; it is None when none is.
    AUROC needs positives and negatives; average precision needs positives.
    """
    n = len(pathologies)
    auroc = _per_column(
        roc_auc_score, truth, scores, [k for k in range(n) if _defined(truth[:, k])], n
    )
    ap = _per_column(
        average_precision_score, truth, scores, [k for k in range(n) if truth[:, k].sum() > 0], n
    )
    rows: list[Row] = []
    for k, name in enumerate(pathologies):
        rows.append(_row(split, policy, "auroc", name, auroc[k]))
        rows.append(_row(split, policy, "average_precision", name, ap[k]))
    for metric, values in (("auroc", auroc), ("average_precision", ap)):
        defined = [v for v in values if v is not None]
        rows.append(
            _row(split, policy, metric, "macro", float(np.mean(defined)) if defined else None)
        )
    flat_truth, flat_scores = truth.ravel(), scores.ravel()
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
            average_precision_score(flat_truth, flat_scores) if flat_truth.sum() > 0 else None,
        )
    )
    return rows


def decision_rows(
    split: str, policy: str, truth: np.ndarray, predicted: np.ndarray, pathologies: Sequence[str]
) -> list[Row]:
    """Exact match, Hamming loss, and per-pathology / macro / micro precision, recall and F1.

    Exact match and Hamming loss pool all labels of all images, so they carry pathology "micro".
    Precision of a pathology never predicted positive (and recall of one never positive) counts as
    0, scikit-learn's `zero_division=0` convention, so that macro averages stay over all
    pathologies.
    """
    rows = [
        _row(split, policy, "exact_match", "micro", accuracy_score(truth, predicted)),
        _row(split, policy, "hamming_loss", "micro", hamming_loss(truth, predicted)),
    ]
    per_class = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    for k, name in enumerate(pathologies):
        for metric, values in zip(("precision", "recall", "f1"), per_class[:3], strict=True):
            rows.append(_row(split, policy, metric, name, values[k]))
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(
            truth, predicted, average=average, zero_division=0
        )
        rows += [
            _row(split, policy, "precision", average, p),
            _row(split, policy, "recall", average, r),
            _row(split, policy, "f1", average, f),
        ]
    return rows


def evaluate(
    split: str,
    truth: np.ndarray,
    scores: np.ndarray,
    policies: Mapping[str, np.ndarray | float],
    pathologies: Sequence[str],
) -> list[Row]:
    """All metric rows of one split for each threshold policy (name -> threshold, or one per
    pathology). AUROC and average precision do not depend on the threshold: computed once, they
    are repeated under every policy so that each policy's rows are complete."""
    _check_shapes(truth, scores)
    ranking = ranking_rows(split, "", truth, scores, pathologies)
    rows: list[Row] = []
    for policy, thresholds in policies.items():
        rows += [{**row, "policy": policy} for row in ranking]
        rows += decision_rows(split, policy, truth, binarize(scores, thresholds), pathologies)
    return rows


def baseline_rows(
    split: str,
    truth: np.ndarray,
    train_prevalence: np.ndarray,
    pathologies: Sequence[str],
    seed: int,
) -> list[Row]:
    """The two trivial baselines on the same split.

    all_negative: every label predicted negative (scores all 0, so AUROC 0.5).
    prevalence: the score of each pathology is its training prevalence (AUROC 0.5, average
    precision = the split's prevalence), and each label is predicted positive at random with that
    probability (seeded): the F1 a label-frequency guesser reaches.
    """
    n = truth.shape[0]
    zeros = np.zeros(truth.shape)
    prevalence_scores = np.broadcast_to(np.asarray(train_prevalence, dtype=float), truth.shape)
    guesses = (np.random.default_rng(seed).random(truth.shape) < prevalence_scores).astype(np.int8)
    rows = ranking_rows(split, "all_negative", truth, zeros, pathologies)
    rows += decision_rows(
        split, "all_negative", truth, np.zeros((n, truth.shape[1]), dtype=np.int8), pathologies
    )
    rows += ranking_rows(split, "prevalence", truth, np.array(prevalence_scores), pathologies)
    rows += decision_rows(split, "prevalence", truth, guesses, pathologies)
    return rows
