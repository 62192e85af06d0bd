"""Confidence intervals per setting and paired model comparisons from the runs' test predictions.

Every run of the cohort is evaluated on the same patient resamples of the test split. A setting's
value in a resample is its metric averaged over seeds; a comparison's value is the difference of
two settings' values in the same resample, so the comparison is paired on the test images.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from probelab.report.aggregate import Run, RunFolderError
from probelab.report.bootstrap import (
    BOOTSTRAP_METRICS,
    LOWER_IS_BETTER,
    THRESHOLD_FREE,
    PatientResampler,
    percentile_interval,
    weighted_metrics,
)

log = logging.getLogger(__name__)

POLICIES = ("t0.5", "tuned")
CI_COLUMNS = [
    "encoder",
    "model",
    "n",
    "n_train",
    "policy",
    "metric",
    "estimate",
    "ci_low",
    "ci_high",
    "n_seeds",
    "n_images",
    "n_patients",
    "resamples",
    "confidence",
]
COMPARISON_COLUMNS = [
    "encoder",
    "n",
    "n_train",
    "model",
    "reference",
    "policy",
    "metric",
    "model_value",
    "reference_value",
    "difference",
    "ci_low",
    "ci_high",
    "excludes_zero",
    "higher_is_better",
    "resamples",
    "confidence",
]


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int
    seed: int
    confidence: float
    metrics: tuple[str, ...]
    reference: str
    compared: tuple[str, ...]


def test_patients(split_path: Path) -> pd.DataFrame:
    """The test split's images and patients, sorted by image id."""
    split = pd.read_parquet(split_path)
    missing = {"image_id", "patient_id", "split"} - set(split.columns)
    if missing:
        raise RunFolderError(f"{split_path} lacks the column(s) {', '.join(sorted(missing))}.")
    test = split.loc[split["split"] == "test", ["image_id", "patient_id"]]
    if test.empty:
        raise RunFolderError(f"{split_path} has no image in the test split; nothing to bootstrap.")
    return test.astype(str).sort_values("image_id", ignore_index=True)


def _read_predictions(
    run: Run, pathologies: list[str], positions_of: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = run.folder / "predictions_test.parquet"
    if not path.exists():
        raise RunFolderError(
            f"{path} is missing; the bootstrap needs every run's test predictions."
        )
    frame = pd.read_parquet(path)
    needed = ["image_id"] + [f"prob_{p}" for p in pathologies] + [f"true_{p}" for p in pathologies]
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        raise RunFolderError(f"{path} lacks the column(s) {', '.join(missing[:5])}.")
    ids = frame["image_id"].astype(str)
    positions = ids.map(positions_of)
    if positions.isna().any():
        unknown = ids[positions.isna()].iloc[0]
        raise RunFolderError(
            f"{path} has image {unknown!r}, which is not in the test split of split.parquet."
        )
    if ids.duplicated().any():
        raise RunFolderError(f"{path} lists image {ids[ids.duplicated()].iloc[0]!r} twice.")
    probs = frame[[f"prob_{p}" for p in pathologies]].to_numpy(np.float64)
    truth = frame[[f"true_{p}" for p in pathologies]].to_numpy().astype(bool)
    return positions.to_numpy(np.int64), probs, truth


def _thresholds(run: Run, policy: str, pathologies: list[str]) -> np.ndarray:
    if policy == "t0.5":
        return np.full(len(pathologies), 0.5)
    missing = [p for p in pathologies if p not in run.thresholds]
    if missing:
        raise RunFolderError(f"{run.folder}/metrics.json has no tuned threshold for {missing[0]}.")
    return np.array([run.thresholds[p] for p in pathologies])


def evaluate_run(
    run: Run,
    pathologies: list[str],
    resampler: PatientResampler,
    positions_of: pd.Series,
    metrics: tuple[str, ...],
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], np.ndarray], frozenset[int]]:
    """(policy, metric) -> full-sample value and -> resample values (B,); plus the image
    positions."""
    positions, probs, truth = _read_predictions(run, pathologies, positions_of)
    point: dict[tuple[str, str], float] = {}
    resampled: dict[tuple[str, str], np.ndarray] = {}
    # threshold-free metrics are computed once and listed under each policy, for uniform lookups
    groups = [(POLICIES, tuple(m for m in metrics if m in THRESHOLD_FREE))]
    groups += [
        ((policy,), tuple(m for m in metrics if m not in THRESHOLD_FREE)) for policy in POLICIES
    ]
    for policies, names in groups:
        if not names:
            continue
        thresholds = _thresholds(run, policies[0], pathologies)
        full = weighted_metrics(probs, truth, thresholds, np.ones((1, len(positions))), names)
        blocks = [
            weighted_metrics(probs, truth, thresholds, w, names)
            for w in resampler.blocks(positions)
        ]
        for metric in names:
            values = np.concatenate([block[metric] for block in blocks])
            for policy in policies:
                point[(policy, metric)] = float(full[metric][0])
                resampled[(policy, metric)] = values
    return point, resampled, frozenset(positions.tolist())


def bootstrap_tables(
    runs: list[Run], split_path: Path, pathologies: list[str], settings: BootstrapSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(CI table per setting, paired comparison table)."""
    test = test_patients(split_path)
    positions_of = pd.Series(np.arange(len(test)), index=test["image_id"])
    resampler = PatientResampler(test["patient_id"].to_numpy(), settings.resamples, settings.seed)
    metrics = tuple(m for m in BOOTSTRAP_METRICS if m in settings.metrics)

    by_setting: dict[tuple[str, str, str], list] = defaultdict(list)
    n_train: dict[tuple[str, str, str], int] = {}
    for run in runs:
        setting = run.key[:3]
        by_setting[setting].append(evaluate_run(run, pathologies, resampler, positions_of, metrics))
        n_train[setting] = int(run.info["n_train"])
        log.info("bootstrapped %s", "/".join(map(str, run.key)))

    # per setting: (policy, metric) -> (point estimate, resample values), both averaged over seeds
    averaged: dict[tuple[str, str, str], dict[tuple[str, str], tuple[float, np.ndarray]]] = {}
    images: dict[tuple[str, str, str], frozenset[int]] = {}
    ci_rows = []
    for setting, evaluations in sorted(by_setting.items()):
        image_sets = {evaluation[2] for evaluation in evaluations}
        if len(image_sets) > 1:
            raise RunFolderError(
                f"the seeds of {'/'.join(setting)} were tested on different image sets."
            )
        images[setting] = image_sets.pop()
        patients = len(np.unique(resampler.patient_index[sorted(images[setting])]))
        averaged[setting] = {}
        for key in evaluations[0][0]:
            estimate = float(np.mean([evaluation[0][key] for evaluation in evaluations]))
            values = np.mean([evaluation[1][key] for evaluation in evaluations], axis=0)
            averaged[setting][key] = (estimate, values)
            low, high = percentile_interval(values, settings.confidence)
            ci_rows.append(
                [
                    *setting,
                    n_train[setting],
                    *key,
                    estimate,
                    low,
                    high,
                    len(evaluations),
                    len(images[setting]),
                    patients,
                    settings.resamples,
                    settings.confidence,
                ]
            )
    ci = pd.DataFrame(ci_rows, columns=CI_COLUMNS)
    return ci, _comparisons(averaged, images, n_train, settings)


def _comparisons(averaged, images, n_train, settings: BootstrapSettings) -> pd.DataFrame:
    rows = []
    for (encoder, model, n), values in sorted(averaged.items()):
        reference = (encoder, settings.reference, n)
        if model not in settings.compared or reference not in averaged:
            continue
        if images[reference] != images[(encoder, model, n)]:
            raise RunFolderError(
                f"{encoder}/{model}/n{n} and {encoder}/{settings.reference}/n{n} "
                "were tested on different images; "
                "a paired comparison needs the same test images."
            )
        for key, (estimate, resampled) in values.items():
            reference_estimate, reference_resampled = averaged[reference][key]
            low, high = percentile_interval(resampled - reference_resampled, settings.confidence)
            rows.append(
                [
                    encoder,
                    n,
                    n_train[(encoder, model, n)],
                    model,
                    settings.reference,
                    *key,
                    estimate,
                    reference_estimate,
                    estimate - reference_estimate,
                    low,
                    high,
                    bool(low > 0 or high < 0),
                    key[1] not in LOWER_IS_BETTER,
                    settings.resamples,
                    settings.confidence,
                ]
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
