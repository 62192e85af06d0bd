"""Probes that use the prompt text as per-pathology structure, and the prompt-ablation input.

`text_init_linear`: a linear head on L2-normalised image features x whose row for pathology p
starts at the zero-shot classifier (logit_scale * unit prompt embedding of p, bias logit_bias or
0) and is pulled back toward it by an anchor penalty:

    sum_i BCE(y_ip, x_i . w_p + b_p) + lambda * |w_p - w0_p|^2 / logit_scale^2

(a Gaussian prior centred on the zero-shot classifier, as in CLAP / LP++ / WiSE-style anchoring).
w0_p is the zero-shot row Platt-scaled on the training subset (a positive slope per pathology, so
its ranking is zero-shot's: the temperature of a CLIP logit scale is not that of a sigmoid); the
bias b_p is free. The penalty does not grow with the training set, so the data take over as n
grows: zero-shot as n -> 0 (or lambda -> inf, or zero optimisation steps), a linear probe on the
normalised features as n grows. lambda is chosen on validation log loss (linear_probe's criterion)
from a grid, with lambda = inf (the Platt-scaled zero-shot classifier) always a candidate.
Dividing by logit_scale^2 makes lambda a relative strength that transfers between encoders with
different logit scales.

`ablation_vector`: the input of the prompt-ablation controls (`*_no_text`): the fusion heads'
mega-vector with each pathology's block replaced by a seeded random vector of the same norm (or
by zeros). Everything else of the control's run (head, settings, initial weights, batches, noise,
dropout) is the same as its fusion model's, so the paired difference measures what the prompt
content adds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from probelab.linear import (
    LinearMap,
    fit_logistic_rows,
    mean_bce,
    normalize_rows,
    sigmoid,
    zero_shot_map,
)
from probelab.masking import fill_masked, is_masked, observed
from probelab.masking import positives as positive_labels
from probelab.models import ABLATIONS

log = logging.getLogger(__name__)

# Smallest Platt slope of the zero-shot logits (see `_calibrate`).
MIN_SLOPE = 1e-3
# Seeds the ablation's random vectors apart from every other stream drawn from the run seed.
_ABLATION_STREAM = 0x7E47


def ablation_vector(
    mega_vector: np.ndarray, n_pathologies: int, replacement: str, seed: int
) -> np.ndarray:
    """The mega-vector (P*D) with every pathology's block replaced: `random` = a Gaussian
    direction drawn from `seed`, scaled to that block's norm (so the input has the same scale as
    the real one and the optimisation sees the same magnitudes); `zeros` = all zero."""
    blocks = np.asarray(mega_vector, dtype=np.float64).reshape(n_pathologies, -1)
    if replacement == "zeros":
        return np.zeros(blocks.size, dtype=np.float32)
    if replacement != "random":
        raise ValueError(f"unknown prompt replacement '{replacement}'; expected random or zeros.")
    draws = np.random.default_rng([_ABLATION_STREAM, seed]).standard_normal(blocks.shape)
    draws *= np.linalg.norm(blocks, axis=1, keepdims=True) / np.linalg.norm(
        draws, axis=1, keepdims=True
    )
    return draws.reshape(-1).astype(np.float32)


def fusion_input(model: str, params: dict[str, Any], prompts: Any, seed: int) -> np.ndarray:
    """The prompt vector a neural head of `model` gets from `prompts` (probelab.probe.Prompts):
    the real mega-vector, or for an ablation control (probelab.models.ABLATIONS) its replacement
    (params["replacement"]), drawn from the run seed."""
    if model not in ABLATIONS:
        return prompts.mega_vector
    return ablation_vector(
        prompts.mega_vector, len(prompts.per_pathology), params["replacement"], seed
    )


def fit_text_init_linear(
    features: dict[str, np.ndarray],
    y_train: np.ndarray,
    y_val: np.ndarray,
    prompts: Any,
    params: dict[str, Any],
) -> tuple[LinearMap, list[dict[str, Any]]]:
    """The text_init_linear branch of probelab.probe.fit_model: `features` by split, `prompts`
    (probelab.probe.Prompts) of the pathologies trained, `params` its config section."""
    return anchored_linear_head(
        features["train"],
        y_train,
        features["val"],
        y_val,
        text_embeddings=prompts.per_pathology,
        logit_scale=prompts.logit_scale,
        logit_bias=prompts.logit_bias,
        strengths=params["anchor_strengths"],
        max_iter=params["max_iter"],
    )


def anchored_linear_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    text_embeddings: np.ndarray,
    logit_scale: float,
    logit_bias: float,
    strengths: Sequence[float],
    max_iter: int,
) -> tuple[LinearMap, list[dict[str, Any]]]:
    """Fit the anchored linear head for lambda = inf (the zero-shot classifier, each pathology's
    logits Platt-scaled on the training subset) and then for every strength of the grid,
    strongest first, each warm-started from the previous solution; keep the one with the lowest
    validation log loss. `max_iter` = 0 returns the zero-shot classifier unchanged.

    A pathology the training subset shows one class of keeps its zero-shot row (no data to move
    it); its bias is set so that its mean training logit is the add-half smoothed prior log-odds
    (fitting would run it off to -inf). Returns the chosen map and the validation loss of every
    strength."""
    if not logit_scale > 0:
        raise ValueError(
            f"text_init_linear needs the encoder's positive logit scale, got {logit_scale}."
        )
    zero_shot = zero_shot_map(text_embeddings, logit_scale, logit_bias, x_train.shape[1])
    if max_iter == 0:
        zero_shot.chosen = {"anchor_strength": "inf", "steps": 0}
        return zero_shot, []
    x = normalize_rows(x_train.astype(np.float64))
    # NaN labels (not observed, probelab.masking) are masked out of the Platt scaling, the
    # anchored fit and the validation loss; `mask` is None when every label is observed, which
    # keeps the unmasked arithmetic exactly.
    seen = observed(y_train)
    mask = seen.astype(np.float64) if is_masked(y_train) else None
    y = fill_masked(y_train)
    mu = x.mean(axis=0)
    spread = x.std(axis=0)
    sigma = np.where(spread > 0, spread, 1.0)
    z = (x - mu) / sigma
    positives = positive_labels(y_train).sum(axis=0)
    counts = seen.sum(axis=0)
    varied = (positives > 0) & (positives < counts)
    # lambda = inf: the zero-shot rows, each pathology's logits Platt-scaled on the training
    # subset (slope > 0, so rankings stay zero-shot's); this calibrated classifier is the anchor.
    zero_logits = x @ zero_shot.weight.T + zero_shot.bias
    slope, intercept = np.ones(y.shape[1]), np.zeros(y.shape[1])
    if varied.any():
        slope[varied], intercept[varied] = _calibrate(
            zero_logits[:, varied],
            y[:, varied],
            max_iter,
            None if mask is None else mask[:, varied],
        )
    prior = np.log((positives + 0.5) / (counts - positives + 0.5))
    # A single-class pathology: mean training logit (over the images that observe its label) =
    # the add-half smoothed prior log-odds.
    if mask is None:
        mean_logit = zero_logits.mean(axis=0)
    else:
        mean_logit = (zero_logits * mask).sum(axis=0) / np.maximum(counts, 1)
    intercept[~varied] = (prior - mean_logit)[~varied]
    w0 = zero_shot.weight * slope[:, None]
    b0 = zero_shot.bias * slope + intercept
    # Standardised coordinates: U = W * sigma, c = b + W @ mu. The change of variables leaves
    # the minimiser unchanged and conditions L-BFGS far better than the raw normalised features,
    # whose spread is tiny.
    u, c = w0 * sigma, b0 + w0 @ mu

    def candidate(u_varied: np.ndarray, c_varied: np.ndarray, strength: float) -> LinearMap:
        weight, bias = u.copy(), c.copy()
        weight[varied], bias[varied] = u_varied, c_varied
        chosen = {"anchor_strength": strength, "zero_shot_slopes": slope.tolist()}
        return LinearMap(weight, bias, mu, sigma, unit_inputs=True, chosen=chosen)

    best = candidate(u[varied], c[varied], "inf")
    best_loss = mean_bce(y_val, best.logits(x_val))
    grid: list[dict[str, Any]] = [{"anchor_strength": "inf", "val_loss": best_loss}]
    log.info("text_init_linear lambda=inf: validation log loss %.4f", best_loss)
    fitted = (u[varied], c[varied])
    for strength in sorted((float(s) for s in strengths), reverse=True):
        fitted = fit_logistic_rows(
            z,
            y[:, varied],
            fitted,
            penalty=strength / (len(z) * logit_scale**2),
            max_iter=max_iter,
            gtol=1e-9,
            weights=None if mask is None else mask[:, varied],
            anchor=w0[varied],
            sigma=sigma,
        )
        model = candidate(*fitted, strength)
        loss = mean_bce(y_val, model.logits(x_val))
        grid.append({"anchor_strength": strength, "val_loss": loss})
        log.info("text_init_linear lambda=%g: validation log loss %.4f", strength, loss)
        if loss < best_loss:
            best, best_loss = model, loss
    return best, grid


def _calibrate(
    logits: np.ndarray, y: np.ndarray, max_iter: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per pathology, Platt scaling of the zero-shot logits on the training subset: the slope
    a >= MIN_SLOPE and intercept c minimising the log loss of a * logits + c. A positive slope
    keeps every pathology's ranking (AUROC, AP, tuned thresholds) exactly the zero-shot one, even
    where the text points the wrong way on the training subset (the slope then stays at the
    floor: the anchor is nearly zero there, a plain ridge penalty). `mask` (float 0/1, None when
    every label is observed) multiplies the masked cells out of the loss and gradient; the sum
    stays divided by N, a constant per pathology that leaves each minimiser unchanged."""
    from scipy.optimize import minimize

    p = y.shape[1]

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, c = params[:p], params[p:]
        z = logits * a + c
        cells = np.logaddexp(0.0, z) - y * z
        residual = sigmoid(z) - y
        if mask is not None:
            cells, residual = cells * mask, residual * mask
        g = residual / len(y)
        value = float(np.sum(cells)) / len(y)
        return value, np.concatenate([(g * logits).sum(axis=0), g.sum(axis=0)])

    start = np.concatenate([np.ones(p), np.zeros(p)])
    result = minimize(
        loss,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(MIN_SLOPE, None)] * p + [(None, None)] * p,
        options={"maxiter": max_iter, "gtol": 1e-9},
    )
    return result.x[:p], result.x[p:]
