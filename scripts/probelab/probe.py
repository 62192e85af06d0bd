"""One probe run, in two phases that keep the test split honest.

Phase 1 (`fit_and_freeze`) sees training and validation labels only: it fits the model (the
regularisation, the best epoch) and tunes the per-pathology thresholds on validation, and returns
a `FrozenRun` whose arrays are read-only. Phase 2 (`final_evaluation`) is the only place that
takes test labels, and `LabelReader.test_labels` hands them out only against frozen runs, so no
choice can depend on them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.linear import fit_linear_probe, zero_shot_map
from probelab.metrics import DEFAULT_THRESHOLD, Row, baseline_rows, evaluate, tune_thresholds
from probelab.models import MODELS, NEURAL_HEADS, needs_prompts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompts:
    """What the prompt models take from the prompt cache."""

    per_pathology: np.ndarray  # P x D
    mega_vector: np.ndarray  # P*D
    logit_scale: float
    logit_bias: float  # NaN when the encoder has none


@dataclass(frozen=True)
class FrozenRun:
    """A fitted model with its validation-tuned thresholds; nothing in it may change any more."""

    seed: int
    model: str
    val_probs: np.ndarray
    test_probs: np.ndarray
    thresholds: np.ndarray
    train_prevalence: np.ndarray
    state_dict: dict[str, np.ndarray]
    hparams: dict[str, Any]
    history: list[dict[str, float]]
    best_epoch: int | None
    train_seconds: float
    n_train: int

    def __post_init__(self) -> None:
        for array in (self.val_probs, self.test_probs, self.thresholds, self.train_prevalence):
            array.flags.writeable = False


@dataclass
class LabelReader:
    """Reads the 0/1 label columns of chosen images from the cohort index, on demand.

    Only the requested rows are read (a parquet filter on image_id), so test labels are not even
    in memory until `test_labels` is called, and that needs the frozen runs as proof.
    """

    index_path: Path
    pathologies: Sequence[str]

    def labels(self, image_ids: Sequence[str]) -> np.ndarray:
        return read_labels(self.index_path, image_ids, self.pathologies)

    def test_labels(self, image_ids: Sequence[str], frozen: Sequence[FrozenRun]) -> np.ndarray:
        if not frozen or not all(isinstance(run, FrozenRun) for run in frozen):
            raise RuntimeError("test labels are read only for the final evaluation of frozen runs.")
        return read_labels(self.index_path, image_ids, self.pathologies)


def read_labels(
    index_path: Path, image_ids: Sequence[str], pathologies: Sequence[str]
) -> np.ndarray:
    """Labels (N x P, float32) of `image_ids`, in that order, from the index's pathology columns."""
    wanted = list(image_ids)
    table = pd.read_parquet(
        index_path, columns=["image_id", *pathologies], filters=[("image_id", "in", wanted)]
    )
    table = table.drop_duplicates("image_id").set_index("image_id")
    missing = [image_id for image_id in wanted if image_id not in table.index]
    if missing:
        raise ValueError(
            f"{index_path}: image {missing[0]!r} ({len(missing)} in all) "
            "is not in the cohort index."
        )
    return table.loc[wanted, list(pathologies)].to_numpy(dtype=np.float32)


def fit_and_freeze(
    model: str,
    params: dict[str, Any],
    training: dict[str, Any],
    features: dict[str, np.ndarray],
    y_train: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    run_name: str,
    prompts: Prompts | None = None,
) -> FrozenRun:
    """Phase 1: fit `model` on train, choose everything on val, predict val and test, freeze.

    `features` maps "train", "val", "test" to float32 feature arrays (N x D).
    """
    if needs_prompts(model) and prompts is None:
        raise ValueError(
            f"run {run_name}: model '{model}' needs the prompt cache, but none was given."
        )
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    best_epoch: int | None = None
    hparams: dict[str, Any] = {"model": model, **params}
    if model in NEURAL_HEADS:
        import torch

        from probelab.training import TrainSettings, predict_proba, train_head

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(array, dtype=np.float32))  # a writable copy

        settings = TrainSettings.from_config(params, training)
        result = train_head(
            model,
            params,
            settings,
            tensor(features["train"]),
            tensor(y_train),
            tensor(features["val"]),
            tensor(y_val),
            seed=seed,
            run_name=run_name,
            mega_vector=tensor(prompts.mega_vector) if prompts else None,
        )
        val_probs = predict_proba(result.model, tensor(features["val"]), settings.eval_batch_size)
        test_probs = predict_proba(result.model, tensor(features["test"]), settings.eval_batch_size)
        state = {name: value.numpy() for name, value in result.model.state_dict().items()}
        history, best_epoch = result.history, result.best_epoch
        hparams.update(image_dim=features["train"].shape[1], n_outputs=y_train.shape[1])
    elif model in ("linear_probe", "zero_shot"):
        if model == "linear_probe":
            linear, grid = fit_linear_probe(
                features["train"],
                y_train,
                features["val"],
                y_val,
                c_grid=params["C"],
                standardize=params["standardize"],
                balanced=params["pos_weight"],
                max_iter=params["max_iter"],
                seed=seed,
            )
            hparams["val_loss_by_C"] = grid
        else:
            linear = zero_shot_map(
                prompts.per_pathology,
                prompts.logit_scale,
                prompts.logit_bias,
                features["train"].shape[1],
            )
        hparams.update(linear.chosen, unit_inputs=linear.unit_inputs)
        val_probs, test_probs = (
            linear.predict_proba(features["val"]),
            linear.predict_proba(features["test"]),
        )
        state = linear.arrays()
    else:
        raise ValueError(
            f"run {run_name}: unknown model '{model}'; expected one of {', '.join(MODELS)}."
        )
    _warn_saturated(run_name, val_probs)
    thresholds = tune_thresholds(y_val, val_probs)
    return FrozenRun(
        seed=seed,
        model=model,
        val_probs=val_probs,
        test_probs=test_probs,
        thresholds=thresholds,
        train_prevalence=y_train.mean(axis=0).astype(np.float64),
        state_dict=state,
        hparams=hparams,
        history=history,
        best_epoch=best_epoch,
        train_seconds=time.perf_counter() - started,
        n_train=int(y_train.shape[0]),
    )


def _warn_saturated(run_name: str, probs: np.ndarray) -> None:
    """Probabilities rounded to exactly 0 or 1 tie, which blunts AUROC; say so instead of hiding
    it."""
    saturated = float(np.mean((probs == 0.0) | (probs == 1.0)))
    if saturated > 0:
        log.warning(
            "%s: %.1f%% of validation probabilities are exactly 0 or 1 (ties for AUROC).",
            run_name,
            100 * saturated,
        )


def final_evaluation(
    run: FrozenRun, y_val: np.ndarray, y_test: np.ndarray, pathologies: Sequence[str]
) -> list[Row]:
    """Phase 2: every metric row of both splits, for the model's two threshold policies and both
    baselines (the prevalence baseline guesses with the run's seed)."""
    rows: list[Row] = []
    for split, truth, probs in (("val", y_val, run.val_probs), ("test", y_test, run.test_probs)):
        rows += evaluate(
            split, truth, probs, {"t0.5": DEFAULT_THRESHOLD, "tuned": run.thresholds}, pathologies
        )
        rows += baseline_rows(split, truth, run.train_prevalence, pathologies, run.seed)
    return rows
