"""One probe run, in two phases that keep the test split honest.

Phase 1 (`fit_and_freeze`) sees training and validation labels only: it drops the pathologies
that too few training or validation images are positive for (config training.min_positives),
fits the model on the rest (`fit_model`: the regularisation, the best epoch), tunes the
per-pathology logit thresholds on validation, and returns a `FrozenRun` whose arrays are
read-only. Phase 2 (`evaluation_scope`, `final_evaluation`) is the only place that takes test
labels, and `LabelReader.test_labels` hands them out only against frozen runs, so no choice can
depend on them.

Every model ends in logits (the raw score before the sigmoid); ranking metrics and thresholds use
them, never the probabilities, which saturate (probelab.metrics).

Labels are float32 with NaN where the cohort index does not observe a label (probelab.masking).
Every step masks them: the counts behind min_positives are observed positives and negatives, the
models' losses and the validation choices skip them, and so does every metric.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.linear import fit_linear_probe, sigmoid, zero_shot_map
from probelab.masking import check_labels, observed
from probelab.masking import positives as positive_labels
from probelab.metrics import (
    DEFAULT_LOGIT_THRESHOLD,
    Row,
    baseline_rows,
    evaluate,
    label_counts,
    label_exclusions,
    tune_thresholds,
)
from probelab.models import MODELS, NEURAL_HEADS, needs_prompts
from probelab.text_heads import fit_text_init_linear, fusion_input

log = logging.getLogger(__name__)

# Defaults of config keys training.min_positives and training.min_test_positives
# (schemas/probe.schema.yaml).
MIN_POSITIVES = 1
MIN_TEST_POSITIVES = 10


@dataclass(frozen=True)
class Prompts:
    """What the prompt models take from the prompt cache."""

    per_pathology: np.ndarray  # P x D
    mega_vector: np.ndarray  # P*D
    logit_scale: float
    logit_bias: float  # NaN when the encoder has none

    def subset(self, columns: Sequence[int]) -> Prompts:
        """The prompts of the pathologies in `columns` only (rows of per_pathology, blocks of the
        mega-vector), for a model trained on those pathologies."""
        columns = list(columns)
        blocks = self.mega_vector.reshape(len(self.per_pathology), -1)
        return Prompts(
            self.per_pathology[columns],
            blocks[columns].ravel(),
            self.logit_scale,
            self.logit_bias,
        )


@dataclass(frozen=True)
class Fitted:
    """What one model branch of `fit_model` returns: logits (N x K) of validation and test for the
    K pathologies it was given, in their order, and what model.pt and metrics.json keep."""

    val_logits: np.ndarray
    test_logits: np.ndarray
    state_dict: dict[str, np.ndarray]
    hparams: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None


@dataclass(frozen=True)
class FrozenRun:
    """A fitted model with its validation-tuned thresholds; nothing in it may change any more.

    Logits and thresholds have one column per configured pathology; a pathology that was not
    trained (`not_trained`, name -> reason) has NaN logits and a NaN threshold.
    """

    seed: int
    model: str
    val_logits: np.ndarray
    test_logits: np.ndarray
    logit_thresholds: np.ndarray
    train_prevalence: np.ndarray
    state_dict: dict[str, np.ndarray]
    hparams: dict[str, Any]
    history: list[dict[str, float]]
    best_epoch: int | None
    train_seconds: float
    n_train: int
    min_positives: int = MIN_POSITIVES
    min_test_positives: int = MIN_TEST_POSITIVES
    train_counts: tuple[np.ndarray, np.ndarray] | None = None  # positive, negative patients
    train_positive_images: np.ndarray | None = None
    not_trained: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for array in (
            self.val_logits,
            self.test_logits,
            self.logit_thresholds,
            self.train_prevalence,
        ):
            array.flags.writeable = False

    @staticmethod
    def _readonly(array: np.ndarray) -> np.ndarray:
        array.flags.writeable = False
        return array

    @property
    def val_probs(self) -> np.ndarray:
        """Sigmoid of the validation logits (for readers; they saturate, metrics use logits)."""
        return self._readonly(sigmoid(self.val_logits))

    @property
    def test_probs(self) -> np.ndarray:
        return self._readonly(sigmoid(self.test_logits))

    @property
    def thresholds(self) -> np.ndarray:
        """The tuned thresholds as probabilities (sigmoid of the logit thresholds)."""
        return self._readonly(sigmoid(self.logit_thresholds))


@dataclass(frozen=True)
class EvaluationScope:
    """Which pathologies a run's metrics cover, by the rule of probelab.metrics.label_exclusions
    applied to its training subset, validation and test labels."""

    evaluated: list[str]
    excluded: dict[str, str]  # pathology -> reason
    positives: dict[str, dict[str, int]]  # split -> pathology -> positive images (for readers)
    positive_patients: dict[str, dict[str, int]] = field(default_factory=dict)  # what was judged


@dataclass
class LabelReader:
    """Reads the 0/1 label columns of chosen images from the cohort index, on demand (NaN where
    a label is not observed, probelab.masking).

    Only the requested rows are read (a parquet filter on image_id), so test labels are not even
    in memory until `test_labels` is called, and that needs the frozen runs as proof.
    """

    index_path: Path
    pathologies: Sequence[str]

    def labels(self, image_ids: Sequence[str]) -> np.ndarray:
        return read_labels(self.index_path, image_ids, self.pathologies)

    def patients(self, image_ids: Sequence[str]) -> np.ndarray:
        """The patient of each image, in order (the evaluation rule counts patients)."""
        wanted = list(image_ids)
        table = pd.read_parquet(
            self.index_path,
            columns=["image_id", "patient_id"],
            filters=[("image_id", "in", wanted)],
        )
        table = table.drop_duplicates("image_id").set_index("image_id")
        return table.loc[wanted, "patient_id"].astype(str).to_numpy()

    def test_labels(self, image_ids: Sequence[str], frozen: Sequence[FrozenRun]) -> np.ndarray:
        if not frozen or not all(isinstance(run, FrozenRun) for run in frozen):
            raise RuntimeError("test labels are read only for the final evaluation of frozen runs.")
        return read_labels(self.index_path, image_ids, self.pathologies)


def read_labels(
    index_path: Path, image_ids: Sequence[str], pathologies: Sequence[str]
) -> np.ndarray:
    """Labels (N x P, float32) of `image_ids`, in that order, from the index's pathology columns:
    0, 1, or NaN where the index does not observe the label (int8 columns have none; float32
    columns, or nullable integers, mark them). Anything else is refused."""
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
    labels = table.loc[wanted, list(pathologies)].to_numpy(dtype=np.float32, na_value=np.nan)
    check_labels(labels, f"cohort index {index_path}")
    return labels


def fit_model(
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
) -> Fitted:
    """Fit `model` on train (choosing what it chooses on val) and return its validation and test
    logits for the pathologies (columns of y_train, rows of prompts) it is given.

    One branch per model; a new model only has to return a `Fitted`.
    """
    if model in NEURAL_HEADS:
        import torch

        from probelab.training import TrainSettings, predict_logits, train_head

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
            mega_vector=tensor(fusion_input(model, params, prompts, seed)) if prompts else None,
        )

        def logits(split: str) -> np.ndarray:
            return (
                predict_logits(result.model, tensor(features[split]), settings.eval_batch_size)
                .double()
                .numpy()
            )

        return Fitted(
            val_logits=logits("val"),
            test_logits=logits("test"),
            state_dict={name: value.numpy() for name, value in result.model.state_dict().items()},
            hparams={"image_dim": features["train"].shape[1], "n_outputs": y_train.shape[1]},
            history=result.history,
            best_epoch=result.best_epoch,
        )
    if model in ("linear_probe", "zero_shot", "text_init_linear"):
        hparams: dict[str, Any] = {}
        if model == "text_init_linear":  # probelab.text_heads
            linear, hparams["val_loss_by_anchor_strength"] = fit_text_init_linear(
                features, y_train, y_val, prompts, params
            )
        elif model == "linear_probe":
            linear, grid = fit_linear_probe(
                features["train"],
                y_train,
                features["val"],
                y_val,
                c_grid=params["C"],
                standardize=params["standardize"],
                balanced=params["pos_weight"],
                max_iter=params["max_iter"],
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
        return Fitted(
            val_logits=linear.logits(features["val"]),
            test_logits=linear.logits(features["test"]),
            state_dict=linear.arrays(),
            hparams=hparams,
        )
    raise ValueError(
        f"run {run_name}: unknown model '{model}'; expected one of {', '.join(MODELS)}."
    )


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
    pathologies: Sequence[str] | None = None,
    patients: dict[str, np.ndarray] | None = None,
) -> FrozenRun:
    """Phase 1: drop the pathologies the training subset or validation cannot support, fit
    `model` on the others, choose everything on val, predict val and test logits, freeze.

    `features` maps "train", "val", "test" to float32 feature arrays (N x D); `pathologies` names
    the label columns (for the log and the reasons; default their numbers); `patients` ("train",
    "val") the patient of each row, whom the evaluation rule counts (default: each image its own).
    """
    if needs_prompts(model) and prompts is None:
        raise ValueError(
            f"run {run_name}: model '{model}' needs the prompt cache, but none was given."
        )
    started = time.perf_counter()
    names = [str(k) for k in range(y_train.shape[1])] if pathologies is None else list(pathologies)
    patients = patients or {}
    min_positives = int(training.get("min_positives", MIN_POSITIVES))
    train_counts = label_counts(y_train, patients.get("train"))
    not_trained = {
        name: f"{reason}; not trained"
        for name, reason in label_exclusions(
            {"train": train_counts, "val": label_counts(y_val, patients.get("val"))},
            names,
            min_positives,
        ).items()
    }
    for name, reason in not_trained.items():
        log.warning(
            "%s: pathology %s is left out of training and evaluation: %s", run_name, name, reason
        )
    kept = [k for k, name in enumerate(names) if name not in not_trained]
    if not kept:
        raise ValueError(
            f"run {run_name}: no pathology has at least {min_positives} positive training and "
            "validation patient(s), so there is nothing to train; lower training.min_positives "
            "or leave this training-set size out of subsets.sizes."
        )
    fitted = fit_model(
        model,
        params,
        training,
        features,
        y_train[:, kept],
        y_val[:, kept],
        seed=seed,
        run_name=run_name,
        prompts=prompts.subset(kept) if prompts is not None else None,
    )
    val_logits = _all_columns(fitted.val_logits, kept, len(names), "validation", run_name)
    test_logits = _all_columns(fitted.test_logits, kept, len(names), "test", run_name)
    _note_saturated(run_name, val_logits)
    hparams: dict[str, Any] = {"model": model, **params, **fitted.hparams}
    if len(kept) < len(names):
        hparams["trained_pathologies"] = [names[k] for k in kept]
    return FrozenRun(
        seed=seed,
        model=model,
        val_logits=val_logits,
        test_logits=test_logits,
        logit_thresholds=tune_thresholds(y_val, val_logits),
        train_prevalence=_prevalence(y_train),
        state_dict=fitted.state_dict,
        hparams=hparams,
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        train_seconds=time.perf_counter() - started,
        n_train=int(y_train.shape[0]),
        min_positives=min_positives,
        min_test_positives=int(training.get("min_test_positives", MIN_TEST_POSITIVES)),
        train_counts=train_counts,
        train_positive_images=positive_labels(y_train).sum(axis=0).astype(int),
        not_trained=not_trained,
    )


def _prevalence(labels: np.ndarray) -> np.ndarray:
    """Per pathology, the share of positives among the observed labels (NaN where none is
    observed; such a pathology is never trained, so no baseline uses it)."""
    if not (seen := observed(labels)).all():
        counts = seen.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return positive_labels(labels).sum(axis=0) / np.where(counts > 0, counts, np.nan)
    return labels.mean(axis=0).astype(np.float64)


def _all_columns(
    logits: np.ndarray, kept: list[int], n_columns: int, split: str, run_name: str
) -> np.ndarray:
    """The model's logits of the kept pathologies placed in their columns; NaN elsewhere."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(kept):
        raise ValueError(
            f"run {run_name}: the model gave {split} logits of shape {logits.shape}, "
            f"expected one column per trained pathology ({len(kept)})."
        )
    full = np.full((logits.shape[0], n_columns), np.nan)
    full[:, kept] = logits
    return full


def _note_saturated(run_name: str, logits: np.ndarray) -> None:
    """Probabilities that round to exactly 0 or 1 would tie; metrics and thresholds use the
    logits, so this only tells readers of the prob_ columns."""
    probs = sigmoid(logits[:, ~np.isnan(logits).any(axis=0)])
    saturated = float(np.mean((probs == 0.0) | (probs == 1.0))) if probs.size else 0.0
    if saturated > 0:
        log.info(
            "%s: %.1f%% of validation probabilities are exactly 0 or 1 in float64; ranks and "
            "thresholds use the logits, which do not tie.",
            run_name,
            100 * saturated,
        )


def evaluation_scope(
    run: FrozenRun,
    y_val: np.ndarray,
    y_test: np.ndarray,
    pathologies: Sequence[str],
    patients: dict[str, np.ndarray] | None = None,
) -> EvaluationScope:
    """Phase 2: the pathologies every metric of `run` covers and why the others do not.

    The rule (probelab.metrics.label_exclusions) over the training subset, validation and test,
    counting positive patients (`patients`: "val", "test" -> the patient of each row): at least
    training.min_positives in the training subset and validation, training.min_test_positives
    in test, where the intervals resample them (docs/rare_labels.md). A pathology left out of
    training is excluded; one trained but short of test positives is excluded from evaluation
    only (the test split may not change what was trained).
    """
    names = list(pathologies)
    patients = patients or {}
    counts = {
        "val": label_counts(y_val, patients.get("val")),
        "test": label_counts(y_test, patients.get("test")),
    }
    if run.train_counts is not None:
        counts = {"train": run.train_counts, **counts}
    limits = {"train": run.min_positives, "val": run.min_positives, "test": run.min_test_positives}
    positive_images = {
        split: positive_labels(truth).sum(axis=0)
        for split, truth in (("val", y_val), ("test", y_test))
    }
    if run.train_positive_images is not None:
        positive_images = {"train": run.train_positive_images, **positive_images}
    failing = label_exclusions(counts, names, limits)
    excluded = {
        name: run.not_trained.get(name) or f"{reason}; trained, not evaluated"
        for name, reason in failing.items()
    }
    excluded.update({n: r for n, r in run.not_trained.items() if n not in excluded})
    excluded = {name: excluded[name] for name in names if name in excluded}
    return EvaluationScope(
        evaluated=[name for name in names if name not in excluded],
        excluded=excluded,
        positives={
            split: dict(zip(names, (int(v) for v in images), strict=True))
            for split, images in positive_images.items()
        },
        positive_patients={
            split: dict(zip(names, (int(v) for v in positives), strict=True))
            for split, (positives, _) in counts.items()
        },
    )


def final_evaluation(
    run: FrozenRun,
    y_val: np.ndarray,
    y_test: np.ndarray,
    pathologies: Sequence[str],
    scope: EvaluationScope | None = None,
) -> list[Row]:
    """Phase 2: every metric row of both splits, for the model's two threshold policies and both
    baselines (the prevalence baseline guesses with the run's seed), over the evaluated
    pathologies of `scope` (computed when not given)."""
    scope = scope or evaluation_scope(run, y_val, y_test, pathologies)
    policies = {"t0.5": DEFAULT_LOGIT_THRESHOLD, "tuned": run.logit_thresholds}
    rows: list[Row] = []
    for split, truth, logits in (
        ("val", y_val, run.val_logits),
        ("test", y_test, run.test_logits),
    ):
        rows += evaluate(split, truth, logits, policies, pathologies, scope.evaluated)
        rows += baseline_rows(
            split, truth, run.train_prevalence, pathologies, run.seed, scope.evaluated
        )
    return rows
