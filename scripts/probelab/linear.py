"""The two probes without a neural head: a logistic-regression probe and CLIP-style zero-shot.

Both are plain numpy (plus scikit-learn for the regression); each ends as one linear map from
image features to one logit per pathology, kept as arrays so the step script can save them in the
same `model.pt` format as the heads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from probelab.masking import fill_masked, is_masked, observed

log = logging.getLogger(__name__)

# Stopping tolerance of the linear probe's L-BFGS (largest gradient entry of the mean loss), far
# below scikit-learn's 1e-4 per regression: the joint fit then reaches at least scikit-learn's
# optimum for every pathology (tests/test_linear_probe.py). 1e-4 would be about 2.5x faster
# (docs/performance.md) but stops short of it.
LINEAR_PROBE_GTOL = 1e-6


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, exact in the negative tail (no rounding to 0 before ~-745)."""
    return expit(logits)


def mean_bce(truth: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy over the observed cells (NaN labels are masked,
    probelab.masking), computed from logits without overflow."""
    if not is_masked(truth):
        return float(np.mean(np.logaddexp(0.0, logits) - truth * logits))
    seen = observed(truth)
    per_cell = np.logaddexp(0.0, logits) - fill_masked(truth) * logits
    return float(per_cell[seen].mean()) if seen.any() else math.nan


@dataclass
class LinearMap:
    """logits = ((x' - mean) / scale) @ weight.T + bias, with x' = x / |x| when `unit_inputs`."""

    weight: np.ndarray  # P x D
    bias: np.ndarray  # P
    mean: np.ndarray  # D
    scale: np.ndarray  # D
    unit_inputs: bool = False
    chosen: dict[str, float] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = features.astype(np.float64)
        if self.unit_inputs:
            x = normalize_rows(x)
        return ((x - self.mean) / self.scale) @ self.weight.T + self.bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(features))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias, "mean": self.mean, "scale": self.scale}


def _prior_log_odds(column: np.ndarray) -> float:
    """Log-odds of a label the training subset shows only one class of, with add-half smoothing
    (a logistic regression cannot be fitted to a single class, and 0 or 1 would be
    overconfident)."""
    positives = float(column.sum())
    return math.log((positives + 0.5) / (len(column) - positives + 0.5))


def _penalised_loss(
    params: np.ndarray,
    z: np.ndarray,
    y: np.ndarray,
    penalty: float,
    weights: np.ndarray | None,
    anchor: np.ndarray | None,
    sigma: np.ndarray | None,
) -> tuple[float, np.ndarray]:
    """The objective of `fit_logistic_rows` and its gradient; params = (U, c) flattened."""
    p, d = y.shape[1], z.shape[1]
    u, c = params[: p * d].reshape(p, d), params[p * d :]
    logits = z @ u.T + c
    cells = np.logaddexp(0.0, logits) - y * logits
    residual = sigmoid(logits) - y
    if weights is not None:
        cells, residual = cells * weights, residual * weights
    n = len(z)
    loss = float(np.sum(cells)) / n
    g = residual / n
    # (z.T @ g).T, not g.T @ z: the same numbers, but OpenBLAS takes ~20x longer for the
    # latter's short-and-wide product (measured at 5,000 x 768 with 14 labels)
    grad_u, grad_c = (z.T @ g).T, g.sum(axis=0)
    shift = u if sigma is None else u / sigma
    if anchor is not None:
        shift = shift - anchor
    loss += penalty * float(np.sum(shift**2))
    grad_u += 2 * penalty * (shift if sigma is None else shift / sigma)
    return loss, np.concatenate([grad_u.ravel(), grad_c])


def fit_logistic_rows(
    z: np.ndarray,
    y: np.ndarray,
    start: tuple[np.ndarray, np.ndarray],
    *,
    penalty: float,
    max_iter: int,
    gtol: float,
    weights: np.ndarray | None = None,
    anchor: np.ndarray | None = None,
    sigma: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """P logistic regressions on the same features, fitted together as one D x P layer by L-BFGS
    from `start` = (U, c), logits = z @ U.T + c. Minimises

        (1/N) sum_ik weights_ik * BCE(y_ik, logit_ik) + penalty * sum_k |U_k / sigma - anchor_k|^2

    (weights, anchor and sigma default to 1, 0 and 1). The objective is a sum over pathologies,
    so its minimiser is every pathology's own; fitting them together reads z once per
    iteration for all P instead of once per pathology, which is where the time goes. A weight
    of 0 removes a cell (a masked label: its placeholder in y has no effect)."""
    from scipy.optimize import minimize

    u, c = start
    if not len(u):
        return u, c
    p, d = u.shape
    result = minimize(
        _penalised_loss,
        np.concatenate([u.ravel(), c]),
        args=(z, y, penalty, weights, anchor, sigma),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": gtol},
    )
    if not math.isfinite(result.fun):
        raise FloatingPointError("the logistic regression's loss became non-finite.")
    return result.x[: p * d].reshape(p, d), result.x[p * d :]


def _cell_weights(y: np.ndarray, seen: np.ndarray, balanced: bool) -> np.ndarray | None:
    """Per-cell loss weights: 0 for a masked label; with `balanced`, scikit-learn's
    class_weight="balanced" per pathology (n / (2 * count of the cell's class), over the images
    that observe the label). None when every weight is 1."""
    if not balanced:
        return None if seen.all() else seen.astype(np.float64)
    counts = seen.sum(axis=0).astype(np.float64)
    positives = (y * seen).sum(axis=0)
    negatives = counts - positives
    to_positive = counts / (2 * np.maximum(positives, 1))
    to_negative = counts / (2 * np.maximum(negatives, 1))
    return np.where(y > 0.5, to_positive, to_negative) * seen


def _standardise(x: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, scale) with z = (x - mean) / scale in float64: the training subset's statistics
    with `standardize`, else the identity."""
    x = x.astype(np.float64)
    if not standardize:
        return x, np.zeros(x.shape[1]), np.ones(x.shape[1])
    mean = x.mean(axis=0)
    # A feature constant over the training subset keeps scale 1: dividing by ~0 would blow it up.
    spread = x.std(axis=0)
    scale = np.where(spread > 0, spread, 1.0)
    return (x - mean) / scale, mean, scale


def fit_linear_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    c_grid: Sequence[float],
    standardize: bool,
    balanced: bool,
    max_iter: int,
) -> tuple[LinearMap, list[dict[str, float]]]:
    """One L2-regularised logistic regression per pathology, scikit-learn's LogisticRegression
    objective (0.5 |w|^2 + C * sum of log losses, the intercept free, class_weight balanced with
    `balanced`); the inverse regularisation C (shared by all pathologies) is the grid value with
    the lowest validation log loss.

    All pathologies are fitted together (`fit_logistic_rows`), and along the C path from the
    strongest regularisation up, each fit warm-started from the previous solution. The grid's
    validation losses are reported in the configured order.

    NaN labels (not observed, probelab.masking) are masked: each pathology's regression ignores
    the training images without its label, and the validation log loss averages observed labels
    only. The standardisation uses every training image (it needs no label). A pathology the
    training subset shows one class of gets weight 0 and the smoothed prior log-odds as bias.

    Returns the chosen map and the validation loss of every grid value.
    """
    if x_train.shape[0] < 2:
        raise ValueError(
            f"the linear probe needs at least 2 training images, got {x_train.shape[0]}."
        )
    if not len(c_grid):
        raise ValueError("the linear probe needs at least one value of C to try.")
    z_train, mean, scale = _standardise(x_train, standardize)
    seen = observed(y_train)
    y = fill_masked(y_train)
    counts = seen.sum(axis=0)
    positives = (y * seen).sum(axis=0)
    varied = (positives > 0) & (positives < counts)
    weight = np.zeros((y.shape[1], z_train.shape[1]))
    bias = np.zeros(y.shape[1])
    for k in np.flatnonzero(~varied & (counts > 0)):
        bias[k] = _prior_log_odds(y[seen[:, k], k])
    cell_weights = _cell_weights(y[:, varied], seen[:, varied], balanced)
    fitted = (weight[varied], bias[varied])
    by_c: dict[float, tuple[LinearMap, float]] = {}
    for c in sorted({float(c) for c in c_grid}):
        fitted = fit_logistic_rows(
            z_train,
            y[:, varied],
            fitted,
            penalty=1.0 / (2.0 * c * len(z_train)),
            max_iter=max_iter,
            gtol=LINEAR_PROBE_GTOL,
            weights=cell_weights,
        )
        weight, bias = weight.copy(), bias.copy()
        weight[varied], bias[varied] = fitted
        candidate = LinearMap(weight, bias, mean, scale, chosen={"C": c})
        by_c[c] = candidate, mean_bce(y_val, candidate.logits(x_val))
        log.info("linear probe C=%g: validation log loss %.4f", c, by_c[c][1])
    grid_losses = [{"C": float(c), "val_loss": by_c[float(c)][1]} for c in c_grid]
    # ties go to the first C in the configured order, as a sequential search would keep it
    best = min(grid_losses, key=lambda entry: entry["val_loss"])
    return by_c[best["C"]][0], grid_losses


def fit_linear_probe_sklearn(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    c_grid: Sequence[float],
    standardize: bool,
    balanced: bool,
    max_iter: int,
) -> tuple[LinearMap, list[dict[str, float]]]:
    """The reference `fit_linear_probe` is checked against (tests/test_linear_probe.py,
    benchmarks/probe_training.py): one scikit-learn LogisticRegression per pathology and value
    of C, each from zero, on the same standardised features, masks and C criterion."""
    from sklearn.linear_model import LogisticRegression

    z_train, mean, scale = _standardise(x_train, standardize)
    seen = observed(y_train)
    grid_losses, maps = [], []
    for c in c_grid:
        weight, bias = np.zeros((y_train.shape[1], z_train.shape[1])), np.zeros(y_train.shape[1])
        for k in range(y_train.shape[1]):
            column, rows = y_train[seen[:, k], k], z_train[seen[:, k]]
            if not len(column):
                continue
            if column.min() == column.max():
                bias[k] = _prior_log_odds(column)
                continue
            model = LogisticRegression(
                C=c, class_weight="balanced" if balanced else None, max_iter=max_iter
            ).fit(rows, column)
            weight[k], bias[k] = model.coef_[0], model.intercept_[0]
        maps.append(LinearMap(weight, bias, mean, scale, chosen={"C": float(c)}))
        grid_losses.append({"C": float(c), "val_loss": mean_bce(y_val, maps[-1].logits(x_val))})
    best = min(range(len(maps)), key=lambda i: grid_losses[i]["val_loss"])
    return maps[best], grid_losses


def zero_shot_map(
    text_embeddings: np.ndarray, logit_scale: float, logit_bias: float, image_dim: int
) -> LinearMap:
    """Zero-shot as a linear map: logit = scale * cos(image, pathology prompt) + bias.

    The map normalises image vectors itself, so caches with or without L2 normalisation give
    the same scores. A model without a bias (CLIP) gets bias 0.
    """
    text = text_embeddings.astype(np.float64)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    bias = 0.0 if math.isnan(logit_bias) else float(logit_bias)
    return LinearMap(
        weight=logit_scale * text,
        bias=np.full(text.shape[0], bias),
        mean=np.zeros(image_dim),
        scale=np.ones(image_dim),
        unit_inputs=True,
        chosen={"logit_scale": float(logit_scale), "logit_bias": bias},
    )


def normalize_rows(features: np.ndarray) -> np.ndarray:
    """L2-normalise each row (a zero row stays zero)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)
