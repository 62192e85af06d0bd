"""Synthetic frozen features shaped like an NIH probe problem, for tests and benchmarks of the
probe training code (no images, no encoder).

Each label is a noisy linear function of the features, thresholded at NIH's rough average
prevalence, so a probe has something to find (test AUROC around 0.8) and solvers can be compared
on their predictions, not only on their speed.
"""

from __future__ import annotations

import numpy as np

N_LABELS = 14
PREVALENCE = 0.04  # NIH ChestX-ray14's average finding prevalence, roughly


def probe_problem(
    n: int, dim: int, *, n_labels: int = N_LABELS, prevalence: float = PREVALENCE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(features n x dim float32, labels n x n_labels float32 in {0, 1}). The same `seed` gives
    the same label model, so several calls with one seed and different `n` are one population
    only if drawn in one call: split one draw into train, validation and test."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, dim)).astype(np.float32)
    # a few informative directions per label, with unit-variance noise on top
    directions = rng.standard_normal((dim, n_labels)) / np.sqrt(dim) * 1.5
    scores = features @ directions + rng.standard_normal((n, n_labels))
    cut = np.quantile(scores, 1.0 - prevalence, axis=0)
    return features, (scores > cut).astype(np.float32)
