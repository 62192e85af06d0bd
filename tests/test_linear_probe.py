"""The linear probe's joint L-BFGS solver against scikit-learn's per-pathology regressions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from probelab.demo.features import probe_problem
from probelab.linear import fit_linear_probe, fit_linear_probe_sklearn

SETTINGS = dict(c_grid=[0.001, 0.01, 0.1, 1.0, 10.0], standardize=True, max_iter=2000)


def _splits(n_train: int, dim: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x, y = probe_problem(n_train + 2000, dim, seed=seed)
    cuts = {"train": slice(0, n_train), "val": slice(n_train, n_train + 1000)}
    cuts["test"] = slice(n_train + 1000, None)
    return {name: (x[cut], y[cut]) for name, cut in cuts.items()}


@pytest.mark.parametrize("balanced", [False, True])
def test_the_joint_solver_picks_scikit_learns_c_and_matches_its_test_auroc(balanced) -> None:
    data = _splits(3000, 96, seed=1)
    fits = {
        name: fit(*data["train"], *data["val"], balanced=balanced, **SETTINGS)
        for name, fit in (("joint", fit_linear_probe), ("sklearn", fit_linear_probe_sklearn))
    }
    (joint, joint_grid), (reference, reference_grid) = fits["joint"], fits["sklearn"]
    assert joint.chosen["C"] == reference.chosen["C"]
    np.testing.assert_allclose(
        [g["val_loss"] for g in joint_grid], [g["val_loss"] for g in reference_grid], rtol=1e-3
    )
    x_test, y_test = data["test"]
    for k in range(y_test.shape[1]):
        aurocs = [
            roc_auc_score(y_test[:, k], fit.logits(x_test)[:, k]) for fit in (joint, reference)
        ]
        assert abs(aurocs[0] - aurocs[1]) <= 0.005, f"pathology {k}: {aurocs}"
    assert 0.7 < np.mean(aurocs) < 1.0  # the problem has signal: the check above is not vacuous


def test_masked_labels_and_single_class_pathologies_match_scikit_learn() -> None:
    data = _splits(1500, 48, seed=2)
    x_train, y_train = data["train"]
    y_train = y_train.copy()
    rng = np.random.default_rng(0)
    y_train[rng.random(y_train.shape) < 0.2] = np.nan  # unobserved labels
    y_train[:, 3] = 0.0  # no positive in training: the prior, not a regression
    settings = {**SETTINGS, "c_grid": [0.01, 1.0]}
    joint, _ = fit_linear_probe(x_train, y_train, *data["val"], balanced=True, **settings)
    reference, _ = fit_linear_probe_sklearn(
        x_train, y_train, *data["val"], balanced=True, **settings
    )
    assert joint.chosen == reference.chosen
    assert np.all(joint.weight[3] == 0) and joint.bias[3] == reference.bias[3]
    # scikit-learn stops at a looser tolerance: the joint solver must reach at least its optimum
    for k in set(range(y_train.shape[1])) - {3}:
        ours, theirs = (_objective(fit, k, x_train, y_train) for fit in (joint, reference))
        assert ours <= theirs + 1e-6 * abs(theirs), f"pathology {k}: {ours} > {theirs}"
    x_test = data["test"][0]
    np.testing.assert_allclose(
        joint.predict_proba(x_test), reference.predict_proba(x_test), atol=0.02
    )


def _objective(fit, k: int, x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's objective for pathology k at the fit's C: 0.5 |w|^2 + C * sum of the
    class-balanced log losses over the images that observe the label."""
    rows = ~np.isnan(y[:, k])
    truth = y[rows, k]
    logits = ((x[rows] - fit.mean) / fit.scale) @ fit.weight[k] + fit.bias[k]
    positives = truth.sum()
    weights = np.where(
        truth > 0.5, len(truth) / (2 * positives), len(truth) / (2 * (len(truth) - positives))
    )
    losses = weights * (np.logaddexp(0.0, logits) - truth * logits)
    return 0.5 * fit.weight[k] @ fit.weight[k] + fit.chosen["C"] * losses.sum()
