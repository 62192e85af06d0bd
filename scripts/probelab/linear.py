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


def _fit_one_c(
    x: np.ndarray, y: np.ndarray, c: float, balanced: bool, max_iter: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import (
        LogisticRegression,
    )  # only linear_probe jobs pay for this import

    weight = np.zeros((y.shape[1], x.shape[1]))
    bias = np.zeros(y.shape[1])
    seen = observed(y)
    for k in range(y.shape[1]):
        # Each pathology is fitted on the images that observe its label (NaN: masked).
        rows = seen[:, k]
        column, x_k = (y[:, k], x) if rows.all() else (y[rows, k], x[rows])
        if not len(column):  # no observed label at all: no data, the prior of none
            continue
        if column.min() == column.max():
            bias[k] = _prior_log_odds(column)
            continue
        model = LogisticRegression(
            C=c, class_weight="balanced" if balanced else None, max_iter=max_iter, random_state=seed
        )
        model.fit(x_k, column)
        weight[k], bias[k] = model.coef_[0], model.intercept_[0]
    return weight, bias


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
    seed: int,
) -> tuple[LinearMap, list[dict[str, float]]]:
    """One logistic regression per pathology; the inverse regularisation C (shared by all
    pathologies) is the grid value with the lowest validation log loss.

    NaN labels (not observed, probelab.masking) are masked: each pathology's regression drops the
    training images without its label, and the validation log loss averages observed labels only.
    The standardisation uses every training image (it needs no label).

    Returns the chosen map and the validation loss of every grid value.
    """
    if x_train.shape[0] < 2:
        raise ValueError(
            f"the linear probe needs at least 2 training images, got {x_train.shape[0]}."
        )
    x_train = x_train.astype(np.float64)
    mean = x_train.mean(axis=0) if standardize else np.zeros(x_train.shape[1])
    # A feature constant over the training subset keeps scale 1: dividing by ~0 would blow it up.
    spread = x_train.std(axis=0)
    scale = np.where(spread > 0, spread, 1.0) if standardize else np.ones(x_train.shape[1])
    z_train = (x_train - mean) / scale
    grid_losses: list[dict[str, float]] = []
    best, best_loss = None, math.inf
    for c in c_grid:
        weight, bias = _fit_one_c(z_train, y_train, c, balanced, max_iter, seed)
        candidate = LinearMap(weight, bias, mean, scale, chosen={"C": float(c)})
        loss = mean_bce(y_val, candidate.logits(x_val))
        grid_losses.append({"C": float(c), "val_loss": loss})
        log.info("linear probe C=%g: validation log loss %.4f", c, loss)
        if best is None or loss < best_loss:
            best, best_loss = candidate, loss
    if best is None:
        raise ValueError("the linear probe needs at least one value of C to try.")
    return best, grid_losses


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
