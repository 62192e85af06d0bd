"""Patient-level bootstrap of test metrics, vectorised over resamples.

A bootstrap resample draws test *patients* with replacement; every image of a drawn patient
enters the resample as often as its patient was drawn. Images of one patient are correlated
(follow-up studies, shared anatomy), so resampling images would understate the uncertainty.

Instead of materialising resampled prediction tables, every metric is computed with integer
weights: one row of weights per resample (how often each image's patient was drawn). All metrics
follow scikit-learn's definitions (zero_division=0 for precision / recall / F1, AUROC and average
precision undefined for a pathology without positives or negatives in the resample).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

THRESHOLD_FREE = ("auroc", "average_precision")
THRESHOLDED = ("precision", "recall", "f1", "exact_match", "hamming_loss")
BOOTSTRAP_METRICS = THRESHOLD_FREE + THRESHOLDED
LOWER_IS_BETTER = frozenset({"hamming_loss"})
# Weight matrices of resamples x images are processed in blocks of at most this many cells so
# that memory stays flat on the full NIH test set (25,596 images); results do not depend on it.
_BLOCK_CELLS = 4_000_000


class PatientResampler:
    """Seeded patient-level resamples of a fixed list of test images.

    Resample b uses its own generator seeded with (seed, b), so resample b is the same whichever
    run is evaluated and however many resamples are drawn: every model sees the same resamples,
    which is what makes model comparisons paired.
    """

    def __init__(self, patient_ids: np.ndarray, n_resamples: int, seed: int) -> None:
        self.patient_index, uniques = _factorize(patient_ids)
        self.n_patients = len(uniques)
        self.n_resamples = n_resamples
        self.seed = seed
        uniform = np.full(self.n_patients, 1.0 / self.n_patients)
        # (B, K): how often each patient is drawn in each resample
        self.patient_counts = np.stack(
            [
                np.random.default_rng([seed, b]).multinomial(self.n_patients, uniform)
                for b in range(n_resamples)
            ]
        ).astype(np.float64)

    def blocks(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        """Weights of the images at `positions` for all resamples, in blocks of shape
        (block, len)."""
        size = max(1, _BLOCK_CELLS // max(1, len(positions)))
        patients = self.patient_index[positions]
        for start in range(0, self.n_resamples, size):
            yield self.patient_counts[start : start + size][:, patients]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return codes.astype(np.int64), uniques


def _tied_group_sums(
    scores: np.ndarray, labels: np.ndarray, weights_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per group of tied scores, groups in ascending score order,
    each (G, B); weights_t is (N, B). AUROC and average precision are both functions of these
    sums. Groups run along the first axis: numpy reduces contiguous rows much faster."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights_t[order]
    total = np.add.reduceat(w, starts, axis=0)
    pos = np.add.reduceat(w * labels[order].astype(bool)[:, None], starts, axis=0)
    return pos, total - pos


def _auroc_from_groups(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney statistic: a tie between a positive and a negative counts one half."""
    neg_below = np.cumsum(neg, axis=0) - neg
    numerator = (pos * (neg_below + 0.5 * neg)).sum(axis=0)
    denominator = pos.sum(axis=0) * neg.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _average_precision_from_groups(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """scikit-learn's step-wise average precision (no interpolation), thresholds from high to
    low."""
    pos, neg = pos[::-1], neg[::-1]
    true_pos = np.cumsum(pos, axis=0)
    predicted = true_pos + np.cumsum(neg, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, true_pos / predicted, 0.0)
        total = pos.sum(axis=0)
        return np.where(total > 0, (pos * precision).sum(axis=0) / total, np.nan)


def weighted_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one pathology under each row of `weights` (B, N) -> (B,); NaN where undefined."""
    return _auroc_from_groups(*_tied_group_sums(scores, labels, np.ascontiguousarray(weights.T)))


def weighted_average_precision(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Average precision of one pathology per weight row -> (B,); NaN without positives."""
    return _average_precision_from_groups(
        *_tied_group_sums(scores, labels, np.ascontiguousarray(weights.T))
    )


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, 0.0)


def weighted_metrics(
    probs: np.ndarray,
    truth: np.ndarray,
    thresholds: np.ndarray,
    weights: np.ndarray,
    metrics: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """Macro (or sample-level) metrics of one run under each weight row.

    probs, truth: (N, P); thresholds: (P,) applied as prob >= threshold; weights: (B, N).
    Returns metric -> (B,). Macro AUROC / AP average the pathologies defined in the resample.
    """
    out: dict[str, np.ndarray] = {}
    truth = truth.astype(bool)
    n_path = truth.shape[1]
    ranking = [name for name in THRESHOLD_FREE if name in metrics]
    if ranking:
        functions = {
            "auroc": _auroc_from_groups,
            "average_precision": _average_precision_from_groups,
        }
        per_path: dict[str, list[np.ndarray]] = {name: [] for name in ranking}
        weights_t = np.ascontiguousarray(weights.T)
        for p in range(n_path):
            groups = _tied_group_sums(probs[:, p], truth[:, p], weights_t)
            for name in ranking:
                per_path[name].append(functions[name](*groups))
        for name in ranking:
            values = np.column_stack(per_path[name])
            defined = np.isfinite(values)
            count = defined.sum(axis=1)
            total = np.where(defined, values, 0.0).sum(axis=1)
            out[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    if set(metrics) & set(THRESHOLDED):
        predicted = probs >= thresholds[None, :]
        tp = weights @ (predicted & truth).astype(np.float64)
        fp = weights @ (predicted & ~truth).astype(np.float64)
        fn = weights @ (~predicted & truth).astype(np.float64)
        total = weights.sum(axis=1)
        per_class = {
            "precision": _safe_ratio(tp, tp + fp),
            "recall": _safe_ratio(tp, tp + fn),
            "f1": _safe_ratio(2 * tp, 2 * tp + fp + fn),
        }
        for name in set(metrics) & set(per_class):
            out[name] = per_class[name].mean(axis=1)
        if "exact_match" in metrics:
            out["exact_match"] = _safe_ratio(
                weights @ (predicted == truth).all(axis=1).astype(np.float64), total
            )
        if "hamming_loss" in metrics:
            out["hamming_loss"] = _safe_ratio(weights @ (predicted != truth).mean(axis=1), total)
    return out


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval over the finite resample values (NaN, NaN if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)
