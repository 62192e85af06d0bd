"""Confidence intervals per setting and paired model comparisons from the runs' test predictions.

Every run of the cohort is evaluated on the same stratified patient resamples of the test split
(probelab.report.bootstrap). Two intervals per row:

- `ci_low` / `ci_high` resample the test **patients**: a setting's value in a resample is its
  metric averaged over all its seeds, so the interval describes the seed-averaged number the
  tables report, for the seeds that were run.
- `ci_low_seeds` / `ci_high_seeds` resample the **seeds and the test patients together**
  (two-level bootstrap): resample b also draws the setting's seeds with replacement and averages
  the metric over the drawn seeds, so the interval adds the spread between training runs (subset
  and initialisation) to the test-set sampling.

A comparison's value is the difference of two settings' values in the same resample (and the same
seed draws), so it is paired on the test images. Rank metrics (AUROC, AP) are computed on the
logits where the predictions carry them; decisions are `logit >= logit threshold`. Every macro
and pooled metric of every run averages one set, the pathologies every run of the table evaluates
(probelab.report.aggregate.report_pathologies; column pathology_set), in the estimate and in every
resample: a setting's seeds, a curve's sizes and a comparison's two models never average
different pathologies.

Test labels may be NaN (not observed; predictions_test.parquet keeps the index's NaN): they are
masked out of every resampled metric (probelab.report.bootstrap) and of the strata.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from probelab.layout import CohortLayout
from probelab.masking import negatives as negative_labels
from probelab.masking import observed
from probelab.masking import positives as positive_labels
from probelab.report.aggregate import (
    Run,
    RunFolderError,
    evaluated_sets,
    report_pathologies,
    set_name,
)
from probelab.report.bootstrap import (
    BOOTSTRAP_METRICS,
    LOWER_IS_BETTER,
    THRESHOLD_FREE,
    PatientResampler,
    acceleration,
    bootstrap_interval,
    seed_draws,
    weighted_metrics,
)
from probelab.subsets import read_mix

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
    "interval",
    "ci_low_seeds",
    "ci_high_seeds",
    "interval_seeds",
    "n_seeds",
    "n_images",
    "n_patients",
    "strata",
    "resamples",
    "confidence",
    "pathology_set",
    "subset_policy",
    "train_all_negative_share",
    "train_mean_prevalence",
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
    "interval",
    "ci_low_seeds",
    "ci_high_seeds",
    "excludes_zero_seeds",
    "interval_seeds",
    "higher_is_better",
    "resamples",
    "confidence",
    "pathology_set",
]
# A metric and a difference of two metrics are fractions: normal-interval fallbacks are clipped.
METRIC_BOUNDS = (0.0, 1.0)
DIFFERENCE_BOUNDS = (-1.0, 1.0)


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int
    seed: int
    confidence: float
    metrics: tuple[str, ...]
    reference: str
    compared: tuple[str, ...]
    interval: str = "logit"
    # report.comparisons.pairs: (model, reference) pairs compared besides `compared` x `reference`
    pairs: tuple[tuple[str, str], ...] = ()


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


@dataclass(frozen=True)
class RunTestSet:
    """What the resampling of one run needs before its scores are read: its test images (sorted
    ids), their labels, and the pathologies its macro metrics average."""

    run: Run
    image_ids: tuple[str, ...]
    truth: np.ndarray  # (N, P) float 0/1, NaN = not observed; rows in image_ids order
    evaluated: list[int] | None  # columns of metrics.json "evaluated_pathologies"; None = old run
    logit_thresholds: dict = field(repr=False, compare=False)  # metrics.json, {} in an old run


def _predictions_path(run: Run) -> Path:
    path = run.folder / "predictions_test.parquet"
    if not path.exists():
        raise RunFolderError(
            f"{path} is missing; the bootstrap needs every run's test predictions."
        )
    return path


def _columns_of(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _read_test_set(
    run: Run,
    pathologies: list[str],
    test_ids: pd.Index,
    seen: dict[tuple[str, ...], np.ndarray],
    within: set[str] | None = None,
) -> RunTestSet:
    """A run's test images and labels (`seen`: the labels of image sets read before, shared
    between runs so that memory does not grow with the number of runs)."""
    path = _predictions_path(run)
    needed = ["image_id"] + [f"prob_{p}" for p in pathologies] + [f"true_{p}" for p in pathologies]
    present = set(_columns_of(path))
    missing = [column for column in needed if column not in present]
    if missing:
        raise RunFolderError(f"{path} lacks the column(s) {', '.join(missing[:5])}.")
    frame = pd.read_parquet(path, columns=["image_id"] + [f"true_{p}" for p in pathologies])
    ids = frame["image_id"].astype(str)
    if ids.duplicated().any():
        raise RunFolderError(f"{path} lists image {ids[ids.duplicated()].iloc[0]!r} twice.")
    unknown = ids[~ids.isin(test_ids)]
    if len(unknown):
        raise RunFolderError(
            f"{path} has image {unknown.iloc[0]!r}, which is not in the test split of "
            "split.parquet."
        )
    order = np.argsort(ids.to_numpy(), kind="stable")
    image_ids = tuple(ids.to_numpy()[order])
    truth = frame.drop(columns="image_id").to_numpy(dtype=np.float64, na_value=np.nan)[order]
    if image_ids in seen:
        other = seen[image_ids]
        same = (other == truth) | (~observed(other) & ~observed(truth))  # NaN == NaN here
        differs = np.flatnonzero(~same.all(axis=1))
        if differs.size:
            raise RunFolderError(
                f"{path} disagrees with another run's test predictions on the labels of test "
                f"image {image_ids[differs[0]]!r}."
            )
        truth = seen[image_ids]
    seen.setdefault(image_ids, truth)
    document = json.loads((run.folder / "metrics.json").read_text())
    evaluated = document.get("evaluated_pathologies")
    columns_of = {p: k for k, p in enumerate(pathologies)}
    if evaluated is not None:
        strange = [p for p in evaluated if p not in columns_of]
        if strange:
            raise RunFolderError(
                f"{run.folder}/metrics.json evaluates {strange[0]!r}, which is not a configured "
                "pathology."
            )
        evaluated = sorted(columns_of[p] for p in evaluated if within is None or p in within)
    logit_thresholds = document.get("logit_thresholds") or {}
    return RunTestSet(run, image_ids, truth, evaluated, logit_thresholds)


def _both_classes(truth: np.ndarray) -> np.ndarray:
    """Per column, whether the observed labels hold a positive and a negative."""
    return positive_labels(truth).any(axis=0) & negative_labels(truth).any(axis=0)


@dataclass
class RunScores:
    """One run's test predictions, rows in the order of its image set."""

    scores: np.ndarray  # (N, P) logits, or probabilities for runs written before logits
    decisions: dict[str, np.ndarray]  # policy -> (N, P) bool
    ranking_columns: list[int]
    decision_columns: list[int]


def _read_scores(test_set: RunTestSet, pathologies: list[str]) -> RunScores:
    """The run's rank scores (logits; probabilities in a run written before logits) and its
    decisions per policy: logit >= logit threshold (0 for t0.5), or, without logit thresholds,
    probability >= threshold as the run's metrics.json decided."""
    run = test_set.run
    path = _predictions_path(run)
    on_logits = all(f"logit_{p}" in set(_columns_of(path)) for p in pathologies)
    probs_names = [f"prob_{p}" for p in pathologies]
    logit_names = [f"logit_{p}" for p in pathologies] if on_logits else []
    frame = pd.read_parquet(path, columns=["image_id", *probs_names, *logit_names])
    frame = frame.assign(image_id=frame["image_id"].astype(str)).set_index("image_id")
    frame = frame.loc[list(test_set.image_ids)]
    probs = frame[probs_names].to_numpy(np.float64)
    logits = frame[logit_names].to_numpy(np.float64) if on_logits else None
    truth = test_set.truth
    if test_set.evaluated is None:
        # a run written before "evaluated_pathologies": the macro AUROC / AP of its metrics.json
        # average the pathologies with both classes in the test split, the others all of them
        defined = _both_classes(truth)
        ranking_columns = [int(k) for k in np.flatnonzero(defined)]
        decision_columns = list(range(len(pathologies)))
    else:
        ranking_columns = decision_columns = list(test_set.evaluated)
    logit_thresholds = test_set.logit_thresholds
    decisions = {}
    for policy in POLICIES:
        thresholds = np.full(len(pathologies), np.nan)
        if policy == "t0.5":
            basis = probs if logits is None else logits
            thresholds[decision_columns] = 0.5 if logits is None else 0.0
        else:
            on_logit_scale = logits is not None and bool(logit_thresholds)
            basis = logits if on_logit_scale else probs
            chosen = logit_thresholds if on_logit_scale else run.thresholds
            for k in decision_columns:
                value = chosen.get(pathologies[k])
                if value is None or not math.isfinite(float(value)):
                    where = " in logit_thresholds" if on_logit_scale else ""
                    raise RunFolderError(
                        f"{run.folder}/metrics.json has no tuned threshold for "
                        f"{pathologies[k]}{where}."
                    )
                thresholds[k] = float(value)
        with np.errstate(invalid="ignore"):
            decisions[policy] = basis >= thresholds[None, :]
    return RunScores(
        probs if logits is None else logits, decisions, ranking_columns, decision_columns
    )


@dataclass
class Evaluation:
    """One run's values per (policy, metric): full sample, resamples (B,), jackknife (J,)."""

    seed: int
    point: dict[tuple[str, str], float]
    resampled: dict[tuple[str, str], np.ndarray]
    jackknife: dict[tuple[str, str], np.ndarray]


def evaluate_run(
    test_set: RunTestSet,
    pathologies: list[str],
    resampler: PatientResampler,
    positions: np.ndarray,
    metrics: tuple[str, ...],
    with_jackknife: bool = False,
) -> Evaluation:
    """(policy, metric) -> full-sample value, resample values (B,) and jackknife values (J,; only
    `with_jackknife`, which BCa needs, else empty)."""
    data = _read_scores(test_set, pathologies)
    truth = test_set.truth
    point: dict[tuple[str, str], float] = {}
    resampled: dict[tuple[str, str], np.ndarray] = {}
    jackknife: dict[tuple[str, str], np.ndarray] = {}
    # threshold-free metrics are computed once and listed under each policy, for uniform lookups
    groups = [(POLICIES, tuple(m for m in metrics if m in THRESHOLD_FREE))]
    groups += [
        ((policy,), tuple(m for m in metrics if m not in THRESHOLD_FREE)) for policy in POLICIES
    ]
    for policies, names in groups:
        if not names:
            continue

        def values(weights, policies=policies, names=names):
            return weighted_metrics(
                data.scores,
                truth,
                data.decisions[policies[0]],
                weights,
                names,
                data.ranking_columns,
                data.decision_columns,
            )

        full = values(np.ones((1, len(positions))))
        blocks = [values(w) for w in resampler.blocks(positions)]
        jack = [values(w) for w in resampler.jackknife_blocks(positions)] if with_jackknife else []
        for metric in names:
            boot = np.concatenate([block[metric] for block in blocks])
            jk = np.concatenate([block[metric] for block in jack]) if jack else np.empty(0)
            for policy in policies:
                point[(policy, metric)] = float(full[metric][0])
                resampled[(policy, metric)] = boot
                jackknife[(policy, metric)] = jk
    return Evaluation(int(test_set.run.info["seed"]), point, resampled, jackknife)


@dataclass
class ImageSet:
    """Test images that some runs share, their patients and the resampler over them."""

    image_ids: tuple[str, ...]
    resampler: PatientResampler
    n_patients: int


def _image_sets(
    test_sets: list[RunTestSet], test: pd.DataFrame, settings: BootstrapSettings
) -> dict[tuple[str, ...], ImageSet]:
    """One stratified resampler per distinct set of test images (normally one for all runs): its
    strata cover every pathology that one of its runs evaluates, with that set's labels."""
    patient_of = pd.Series(test["patient_id"].to_numpy(), index=test["image_id"].to_numpy())
    by_images: dict[tuple[str, ...], list[RunTestSet]] = defaultdict(list)
    for test_set in test_sets:
        by_images[test_set.image_ids].append(test_set)
    out = {}
    for image_ids, members in by_images.items():
        truth = members[0].truth
        columns = sorted(
            {
                k
                for m in members
                for k in (
                    m.evaluated
                    if m.evaluated is not None
                    else np.flatnonzero(_both_classes(m.truth))
                )
            }
        )
        patients = patient_of.loc[list(image_ids)].to_numpy()
        resampler = PatientResampler.covering(
            patients, truth[:, columns], settings.resamples, settings.seed
        )
        out[image_ids] = ImageSet(image_ids, resampler, resampler.n_patients)
        log.info(
            "%d test images of %d patients in %d strata (%d evaluated pathologies)",
            len(image_ids),
            resampler.n_patients,
            resampler.n_strata,
            len(columns),
        )
    return out


def _subset_mix(split_path: Path, n: str, seeds: list[int]) -> dict[str, object]:
    """Policy, all-negative share and mean prevalence of a setting's training subsets (mean over
    seeds), from the mix files the subset rule writes beside the subsets; NaN when absent."""
    layout = CohortLayout("cohort")
    mixes = []
    for seed in seeds:
        relative = Path(layout.subset(n, seed)).relative_to(layout.root)
        mix = read_mix(Path(split_path).parent / relative)
        if mix is not None:
            mixes.append(mix)
    if not mixes:
        return {
            "subset_policy": "",
            "train_all_negative_share": math.nan,
            "train_mean_prevalence": math.nan,
        }
    return {
        "subset_policy": "/".join(sorted({str(m.get("policy", "")) for m in mixes})),
        # a mix file written before all_negative_share: unknown, not the no-finding share
        "train_all_negative_share": float(
            np.mean([m.get("all_negative_share", math.nan) for m in mixes])
        ),
        "train_mean_prevalence": float(np.mean([m["mean_prevalence"] for m in mixes])),
    }


@dataclass
class SettingValues:
    """A setting's values per (policy, metric), averaged over seeds."""

    seeds: list[int]
    estimate: dict[tuple[str, str], float]
    patients: dict[tuple[str, str], np.ndarray]  # (B,) seeds averaged, patients resampled
    two_level: dict[tuple[str, str], np.ndarray]  # (B,) seeds and patients resampled
    jackknife: dict[tuple[str, str], np.ndarray]  # (J,) patient replicates of the seed mean
    per_seed: dict[tuple[str, str], np.ndarray]  # (S,) full-sample value of each seed


def _average(evaluations: list[Evaluation], draws: np.ndarray) -> SettingValues:
    evaluations = sorted(evaluations, key=lambda e: e.seed)
    values = SettingValues([e.seed for e in evaluations], {}, {}, {}, {}, {})
    rows = np.arange(draws.shape[0])[:, None]
    for key in evaluations[0].point:
        per_seed = np.array([e.point[key] for e in evaluations])
        stacked = np.stack([e.resampled[key] for e in evaluations])  # (S, B)
        values.per_seed[key] = per_seed
        values.estimate[key] = float(per_seed.mean())
        values.patients[key] = stacked.mean(axis=0)
        values.two_level[key] = stacked.T[rows, draws].mean(axis=1)
        values.jackknife[key] = np.mean([e.jackknife[key] for e in evaluations], axis=0)
    return values


def _seed_replicates(per_seed: np.ndarray) -> np.ndarray:
    """Leave-one-seed-out means (the seed level of the two-level jackknife); none for one seed."""
    if per_seed.size < 2:
        return np.empty(0)
    return (per_seed.sum() - per_seed) / (per_seed.size - 1)


def bootstrap_tables(
    runs: list[Run],
    split_path: Path,
    pathologies: list[str],
    settings: BootstrapSettings,
    within: set[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(CI table per setting, paired comparison table). Every metric over many pathologies
    averages the pathologies every run evaluates (`report_pathologies`), narrowed to `within`
    when given (the transfer table compares internal and external tests on the same
    pathologies)."""
    test = test_patients(split_path)
    test_ids = pd.Index(test["image_id"])
    metrics = tuple(m for m in BOOTSTRAP_METRICS if m in settings.metrics)
    common = report_pathologies(
        {
            key: [p for p in names if within is None or p in within]
            for key, names in evaluated_sets(runs).items()
        }
    )
    if runs and not common:
        log.warning(
            "no pathology is evaluated by every run, so every metric over pathologies is empty; "
            "pathologies.csv says which runs leave out which pathology and why"
        )
    seen: dict[tuple[str, ...], np.ndarray] = {}
    test_sets = [_read_test_set(run, pathologies, test_ids, seen, set(common)) for run in runs]
    image_sets = _image_sets(test_sets, test, settings)

    by_setting: dict[tuple[str, str, str], list[Evaluation]] = defaultdict(list)
    setting_images: dict[tuple[str, str, str], set[tuple[str, ...]]] = defaultdict(set)
    n_train: dict[tuple[str, str, str], int] = {}
    for test_set in test_sets:
        run = test_set.run
        setting = run.key[:3]
        image_set = image_sets[test_set.image_ids]
        positions = np.arange(len(test_set.image_ids))
        by_setting[setting].append(
            evaluate_run(
                test_set,
                pathologies,
                image_set.resampler,
                positions,
                metrics,
                with_jackknife=settings.interval == "bca",
            )
        )
        setting_images[setting].add(test_set.image_ids)
        n_train[setting] = int(run.info["n_train"])
        log.info("bootstrapped %s", "/".join(map(str, run.key)))

    averaged: dict[tuple[str, str, str], SettingValues] = {}
    images: dict[tuple[str, str, str], tuple[str, ...]] = {}
    draws_of: dict[int, np.ndarray] = {}
    ci_rows = []
    for setting, evaluations in sorted(by_setting.items()):
        if len(setting_images[setting]) > 1:
            raise RunFolderError(
                f"the seeds of {'/'.join(setting)} were tested on different image sets."
            )
        images[setting] = next(iter(setting_images[setting]))
        image_set = image_sets[images[setting]]
        resampler = image_set.resampler
        strata = _jackknife_strata(resampler, settings)
        if len(evaluations) not in draws_of:
            draws_of[len(evaluations)] = seed_draws(
                len(evaluations), settings.resamples, settings.seed
            )
        values = _average(evaluations, draws_of[len(evaluations)])
        averaged[setting] = values
        mix = _subset_mix(split_path, setting[2], values.seeds)
        for key, estimate in values.estimate.items():
            jackknife = values.jackknife[key]
            patients = bootstrap_interval(
                values.patients[key],
                estimate,
                settings.confidence,
                acceleration(jackknife, strata),
                settings.interval,
                METRIC_BOUNDS,
            )
            seeds = _two_level_interval(
                values.two_level[key],
                estimate,
                jackknife,
                strata,
                _seed_replicates(values.per_seed[key]),
                settings,
                METRIC_BOUNDS,
            )
            ci_rows.append(
                [
                    *setting,
                    n_train[setting],
                    *key,
                    estimate,
                    patients.low,
                    patients.high,
                    patients.method,
                    seeds.low,
                    seeds.high,
                    seeds.method,
                    len(evaluations),
                    len(images[setting]),
                    image_set.n_patients,
                    resampler.n_strata,
                    settings.resamples,
                    settings.confidence,
                    set_name(common),
                    mix["subset_policy"],
                    mix["train_all_negative_share"],
                    mix["train_mean_prevalence"],
                ]
            )
    ci = pd.DataFrame(ci_rows, columns=CI_COLUMNS)
    paired = _all_comparisons(averaged, images, image_sets, n_train, settings, set_name(common))
    return ci, paired


def _all_comparisons(
    averaged, images, image_sets, n_train, settings: BootstrapSettings, pathology_set: str
):
    """Every compared model against the reference, then every configured pair (model,
    reference) the same way (report.comparisons.pairs, e.g. a fusion model against its
    prompt-ablation control); a pair whose models were not run is skipped."""
    frames = [_comparisons(averaged, images, image_sets, n_train, settings, pathology_set)]
    for model, reference in settings.pairs:
        if reference == settings.reference and model in settings.compared:
            continue  # already a row of the first table
        one_pair = replace(settings, reference=reference, compared=(model,))
        frames.append(_comparisons(averaged, images, image_sets, n_train, one_pair, pathology_set))
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _jackknife_strata(resampler: PatientResampler, settings: BootstrapSettings) -> np.ndarray:
    """The stratum of each jackknife replicate; none unless BCa asked for the jackknife."""
    return resampler.jackknife_strata if settings.interval == "bca" else np.empty(0, np.int64)


def _two_level_interval(
    values: np.ndarray,
    estimate: float,
    jackknife: np.ndarray,
    strata: np.ndarray,
    seed_replicates: np.ndarray,
    settings: BootstrapSettings,
    bounds: tuple[float, float],
):
    """Interval over seeds and patients; its acceleration joins the patient jackknife and the
    leave-one-seed-out replicates (a level of its own)."""
    accel = acceleration(
        np.concatenate([jackknife, seed_replicates]),
        np.concatenate([strata, np.full(seed_replicates.size, -1)]),
    )
    return bootstrap_interval(
        values, estimate, settings.confidence, accel, settings.interval, bounds
    )


def _comparisons(
    averaged, images, image_sets, n_train, settings: BootstrapSettings, pathology_set: str
):
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
        strata = _jackknife_strata(image_sets[images[reference]].resampler, settings)
        other = averaged[reference]
        for key, estimate in values.estimate.items():
            difference = estimate - other.estimate[key]
            jackknife = values.jackknife[key] - other.jackknife[key]
            patients = bootstrap_interval(
                values.patients[key] - other.patients[key],
                difference,
                settings.confidence,
                acceleration(jackknife, strata),
                settings.interval,
                DIFFERENCE_BOUNDS,
            )
            if values.seeds == other.seeds:  # paired on seeds: leave each seed out of both
                seed_replicates = _seed_replicates(values.per_seed[key] - other.per_seed[key])
            else:
                seed_replicates = np.concatenate(
                    [
                        _seed_replicates(values.per_seed[key]) - other.estimate[key],
                        estimate - _seed_replicates(other.per_seed[key]),
                    ]
                )
            seeds = _two_level_interval(
                values.two_level[key] - other.two_level[key],
                difference,
                jackknife,
                strata,
                seed_replicates,
                settings,
                DIFFERENCE_BOUNDS,
            )
            rows.append(
                [
                    encoder,
                    n,
                    n_train[(encoder, model, n)],
                    model,
                    settings.reference,
                    *key,
                    estimate,
                    other.estimate[key],
                    difference,
                    patients.low,
                    patients.high,
                    bool(patients.low > 0 or patients.high < 0),
                    patients.method,
                    seeds.low,
                    seeds.high,
                    bool(seeds.low > 0 or seeds.high < 0),
                    seeds.method,
                    key[1] not in LOWER_IS_BETTER,
                    settings.resamples,
                    settings.confidence,
                    pathology_set,
                ]
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
