"""Training of every probe model on a separable synthetic problem: learning, determinism, early
stopping with best-epoch restore, NaN detection, schedules, and the two non-neural probes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from probelab.linear import fit_linear_probe, sigmoid, zero_shot_map
from probelab.metrics import ranking_rows
from probelab.probe import Prompts, fit_and_freeze
from probelab.training import (
    NonFiniteInputError,
    TrainingDivergedError,
    TrainSettings,
    _batches,
    positive_weights,
    predict_logits,
    train_head,
)

DIM, P = 16, 3
PATHOLOGIES = ["A", "B", "C"]
TRAINING = {"device": "cpu", "threads": 1, "eval_batch_size": 64}
HEAD = {
    "hidden": [16],
    "branch_width": 16,
    "dropout": 0.0,
    "noise_std": 0.01,
    "lr": 0.01,
    "weight_decay": 0.0,
    "epochs": 25,
    "batch_size": 32,
    "scheduler": "cosine",
    "plateau_factor": 0.5,
    "plateau_patience": 1,
    "patience": 5,
    "pos_weight": False,
}
# Tiny problems: one thread is faster than two fighting over a shared CPU, and it is what jobs use.
torch.set_num_threads(1)

LINEAR = {"C": [0.01, 1.0], "standardize": True, "pos_weight": False, "max_iter": 500}


def separable(n: int, seed: int, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features with a positive label wherever they point towards that pathology's direction."""
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    y = (x @ directions.T > 0.8).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def problem() -> dict[str, np.ndarray]:
    directions = np.random.default_rng(99).normal(size=(P, DIM))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    data = {"directions": directions}
    for split, n, seed in (("train", 240, 0), ("val", 120, 1), ("test", 120, 2)):
        data[f"x_{split}"], data[f"y_{split}"] = separable(n, seed, directions)
    return data


def prompts_for(problem: dict[str, np.ndarray]) -> Prompts:
    return Prompts(
        per_pathology=problem["directions"].astype(np.float32),
        mega_vector=problem["directions"].astype(np.float32).ravel(),
        logit_scale=10.0,
        logit_bias=float("nan"),
    )


def fit(model: str, problem: dict[str, np.ndarray], seed: int = 0, **overrides):
    params = {**(LINEAR if model == "linear_probe" else HEAD), **overrides}
    features = {split: problem[f"x_{split}"] for split in ("train", "val", "test")}
    return fit_and_freeze(
        model,
        params,
        TRAINING,
        features,
        problem["y_train"],
        problem["y_val"],
        seed=seed,
        run_name=f"test/{model}",
        prompts=prompts_for(problem),
    )


def macro_auroc(truth: np.ndarray, scores: np.ndarray) -> float:
    rows = ranking_rows("test", "t0.5", truth, scores, PATHOLOGIES)
    return next(r["value"] for r in rows if r["metric"] == "auroc" and r["pathology"] == "macro")


@pytest.mark.parametrize(
    "model", ["baseline_mlp", "two_branch_concat", "weighted_sum", "linear_probe", "zero_shot"]
)
def test_every_model_beats_the_all_negative_baseline(
    model: str, problem: dict[str, np.ndarray]
) -> None:
    run = fit(model, problem)
    all_negative = macro_auroc(problem["y_test"], np.zeros_like(problem["y_test"], dtype=float))
    assert all_negative == pytest.approx(0.5)
    assert macro_auroc(problem["y_test"], run.test_probs) > 0.85
    assert run.test_probs.shape == problem["y_test"].shape
    assert run.thresholds.shape == (P,)


@pytest.mark.parametrize(
    "model", ["baseline_mlp", "two_branch_concat", "weighted_sum", "linear_probe"]
)
def test_same_seed_gives_identical_results_and_another_seed_does_not(
    model: str, problem: dict[str, np.ndarray]
) -> None:
    first, second = fit(model, problem, seed=3), fit(model, problem, seed=3)
    np.testing.assert_array_equal(first.val_probs, second.val_probs)
    np.testing.assert_array_equal(first.test_probs, second.test_probs)
    np.testing.assert_array_equal(first.thresholds, second.thresholds)
    assert first.history == second.history
    if model != "linear_probe":  # lbfgs on a convex problem has one answer whatever the seed
        assert not np.array_equal(first.test_probs, fit(model, problem, seed=4).test_probs)


def test_frozen_run_cannot_be_changed(problem: dict[str, np.ndarray]) -> None:
    run = fit("linear_probe", problem)
    with pytest.raises(ValueError):
        run.thresholds[0] = 0.0
    with pytest.raises(ValueError):
        run.test_probs[0, 0] = 1.0


def settings(**overrides) -> TrainSettings:
    return TrainSettings.from_config({**HEAD, **overrides}, TRAINING)


def tensors(problem: dict[str, np.ndarray], n_train: int | None = None) -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.from_numpy(problem[key][:n_train] if "train" in key else problem[key])
        for key in ("x_train", "y_train", "x_val", "y_val")
    )


def test_best_epoch_is_restored_after_overfitting(problem: dict[str, np.ndarray]) -> None:
    x_train, y_train, x_val, y_val = tensors(problem, n_train=24)
    params = {**HEAD, "hidden": [64], "lr": 0.05}
    result = train_head(
        "baseline_mlp",
        params,
        settings(lr=0.05, epochs=40, patience=100, scheduler="none", noise_std=0.0),
        x_train,
        y_train,
        x_val,
        y_val,
        seed=0,
        run_name="overfit",
    )
    val_losses = [h["val_loss"] for h in result.history]
    assert result.epochs_run == 40
    assert result.best_epoch == int(np.argmin(val_losses)) + 1 < 40, (
        "the setting must overfit for this test to mean anything"
    )
    restored = torch.nn.functional.binary_cross_entropy_with_logits(
        predict_logits(result.model, x_val, 64), y_val
    ).item()
    assert restored == pytest.approx(min(val_losses), rel=1e-5)


def test_early_stopping_ends_after_patience_epochs_without_improvement(
    problem: dict[str, np.ndarray],
) -> None:
    x_train, y_train, x_val, y_val = tensors(problem, n_train=24)
    result = train_head(
        "baseline_mlp",
        {**HEAD, "hidden": [64]},
        settings(lr=0.05, epochs=200, patience=3, scheduler="none"),
        x_train,
        y_train,
        x_val,
        y_val,
        seed=0,
        run_name="stop",
    )
    assert result.epochs_run == result.best_epoch + 3 < 200


def test_nan_loss_stops_the_run_naming_run_and_epoch(problem: dict[str, np.ndarray]) -> None:
    x_train, y_train, x_val, y_val = tensors(problem)
    # finite inputs and a learning rate nothing survives: the message blames the learning rate
    with pytest.raises(
        TrainingDivergedError,
        match=r"run enc/baseline_mlp/n50/seed0: .*NaN.* at epoch 1 .*inputs are finite; "
        r"lower models\.baseline_mlp\.lr\.",
    ):
        train_head(
            "baseline_mlp",
            HEAD,
            settings(lr=math.inf),
            x_train,
            y_train,
            x_val,
            y_val,
            seed=0,
            run_name="enc/baseline_mlp/n50/seed0",
        )


@pytest.mark.parametrize(
    ("split", "value", "name"),
    [("x_train", math.nan, "training features"), ("x_val", math.inf, "validation features")],
)
def test_non_finite_features_are_refused_before_training_without_blaming_the_lr(
    problem: dict[str, np.ndarray], split: str, value: float, name: str
) -> None:
    inputs = dict(zip(("x_train", "y_train", "x_val", "y_val"), tensors(problem), strict=True))
    inputs[split] = inputs[split].clone()
    inputs[split][5, 2] = value
    inputs[split][9, 0] = value
    with pytest.raises(NonFiniteInputError) as caught:
        train_head(
            "baseline_mlp",
            HEAD,
            settings(),
            *inputs.values(),
            seed=0,
            run_name="enc/baseline_mlp/n50/seed0",
        )
    message = str(caught.value)
    assert message.startswith(
        f"run enc/baseline_mlp/n50/seed0: the {name} hold NaN or infinite values in 2 row(s) "
        "(first row(s) 5, 9)"
    )
    assert "rebuild the image cache" in message and "lr" not in message


@pytest.mark.parametrize(
    ("scheduler", "check"),
    [
        (
            "cosine",
            lambda lrs: lrs[0] == 0.05 and all(a > b for a, b in itertools.pairwise(lrs)),
        ),
        ("none", lambda lrs: set(lrs) == {0.05}),
        ("plateau", lambda lrs: lrs[0] == 0.05 and 0.0125 in lrs),
    ],
)
def test_learning_rate_schedules(scheduler: str, check, problem: dict[str, np.ndarray]) -> None:
    x_train, y_train, x_val, y_val = tensors(problem, n_train=24)
    result = train_head(
        "baseline_mlp",
        {**HEAD, "hidden": [64]},
        settings(scheduler=scheduler, epochs=20, patience=100, lr=0.05),
        x_train,
        y_train,
        x_val,
        y_val,
        seed=0,
        run_name="lr",
    )
    lrs = [h["lr"] for h in result.history]
    assert check(lrs), lrs


def test_positive_weights_are_negatives_over_positives() -> None:
    labels = torch.tensor([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(positive_weights(labels), torch.tensor([1.0, 4.0, 1 / 3]))


def test_pos_weight_changes_training(problem: dict[str, np.ndarray]) -> None:
    plain, weighted = fit("baseline_mlp", problem), fit("baseline_mlp", problem, pos_weight=True)
    assert weighted.test_probs.mean() > plain.test_probs.mean()


def test_a_lone_last_row_joins_the_previous_batch() -> None:
    batches = _batches(65, 32, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [32, 33]
    assert sorted(torch.cat(batches).tolist()) == list(range(65))


def test_training_needs_two_images(problem: dict[str, np.ndarray]) -> None:
    x_train, y_train, x_val, y_val = tensors(problem, n_train=1)
    with pytest.raises(ValueError, match="run tiny: training needs at least 2 images, got 1"):
        train_head(
            "baseline_mlp",
            HEAD,
            settings(),
            x_train,
            y_train,
            x_val,
            y_val,
            seed=0,
            run_name="tiny",
        )


def test_linear_probe_keeps_the_c_with_the_lowest_validation_loss(
    problem: dict[str, np.ndarray],
) -> None:
    probe, grid = fit_linear_probe(
        problem["x_train"],
        problem["y_train"],
        problem["x_val"],
        problem["y_val"],
        c_grid=[1e-4, 0.1, 100.0],
        standardize=True,
        balanced=False,
        max_iter=500,
    )
    best = min(grid, key=lambda g: g["val_loss"])
    assert probe.chosen["C"] == best["C"]
    assert [g["C"] for g in grid] == [1e-4, 0.1, 100.0]


def test_linear_probe_handles_a_pathology_without_training_positives(
    problem: dict[str, np.ndarray],
) -> None:
    y_train = problem["y_train"].copy()
    y_train[:, 1] = 0
    probe, _ = fit_linear_probe(
        problem["x_train"],
        y_train,
        problem["x_val"],
        problem["y_val"],
        c_grid=[1.0],
        standardize=False,
        balanced=True,
        max_iter=500,
    )
    probs = probe.predict_proba(problem["x_test"])
    expected = 0.5 / (len(y_train) + 1.0)  # add-half smoothed prevalence of a never-positive label
    np.testing.assert_allclose(probs[:, 1], expected)
    assert np.all(probe.weight[1] == 0)


def test_zero_shot_is_scaled_cosine_plus_bias() -> None:
    text = np.array([[3.0, 4.0], [0.0, 2.0]])
    images = np.array([[1.0, 0.0], [0.0, 5.0]])
    scores = zero_shot_map(text, logit_scale=10.0, logit_bias=-2.0, image_dim=2).predict_proba(
        images
    )
    cosines = np.array([[0.6, 0.0], [0.8, 1.0]])
    np.testing.assert_allclose(scores, sigmoid(10.0 * cosines - 2.0))
    no_bias = zero_shot_map(text, logit_scale=10.0, logit_bias=math.nan, image_dim=2).predict_proba(
        images
    )
    np.testing.assert_allclose(no_bias, sigmoid(10.0 * cosines))
    np.testing.assert_allclose(
        sigmoid(np.array([0.0, 40.0, -40.0])),
        [0.5, 1 / (1 + math.exp(-40)), 1 / (1 + math.exp(40))],
    )
