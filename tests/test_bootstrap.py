"""Patient-level bootstrap: weighted metrics equal scikit-learn on the resampled data, resamples are
patient-level and seeded, the intervals cover a known value, and comparisons are paired."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from report_fixtures import PATHOLOGIES, write_cohort, write_runs
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from probelab.report import steps
from probelab.report.aggregate import (
    RunFolderError,
    metrics_table,
    read_runs,
    read_table,
    summarise_by_setting,
)
from probelab.report.bootstrap import (
    BOOTSTRAP_METRICS,
    PatientResampler,
    percentile_interval,
    weighted_auroc,
    weighted_metrics,
)
from probelab.report.intervals import BootstrapSettings, bootstrap_tables

SETTINGS = BootstrapSettings(
    resamples=200,
    seed=3,
    confidence=0.95,
    metrics=BOOTSTRAP_METRICS,
    reference="baseline_mlp",
    compared=("two_branch_concat", "linear_probe"),
)


def test_weighted_metrics_equal_sklearn_on_the_expanded_resample():
    rng = np.random.default_rng(0)
    truth = rng.random((120, 4)) < 0.3
    truth[:, 3] = False  # a pathology without positives: AUROC undefined, left out of the macro
    probs = np.round(rng.random((120, 4)) * 0.6 + 0.4 * truth, 1)  # rounding makes ties
    thresholds = np.array([0.5, 0.4, 0.6, 0.5])
    weights = rng.integers(0, 3, (4, 120)).astype(float)
    values = weighted_metrics(probs, truth, thresholds, weights, BOOTSTRAP_METRICS)
    for b in range(len(weights)):
        rows = np.repeat(np.arange(120), weights[b].astype(int))
        t, p = truth[rows], probs[rows]
        predicted = p >= thresholds
        expected = {
            "auroc": np.mean([roc_auc_score(t[:, j], p[:, j]) for j in range(3)]),
            "average_precision": np.mean(
                [average_precision_score(t[:, j], p[:, j]) for j in range(3)]
            ),
            "precision": precision_score(t, predicted, average="macro", zero_division=0),
            "recall": recall_score(t, predicted, average="macro", zero_division=0),
            "f1": f1_score(t, predicted, average="macro", zero_division=0),
            "exact_match": accuracy_score(t, predicted),
            "hamming_loss": hamming_loss(t, predicted),
        }
        for metric, value in expected.items():
            assert values[metric][b] == pytest.approx(value, abs=1e-12), metric


def test_auroc_is_undefined_without_both_classes():
    scores = np.array([0.1, 0.4, 0.8])
    weights = np.array([[1.0, 1.0, 1.0], [0.0, 3.0, 0.0]])
    values = weighted_auroc(scores, np.array([0, 1, 1]), weights)
    assert values[0] == 1.0
    assert np.isnan(values[1])


def test_resamples_draw_patients_not_images():
    patients = np.repeat([f"p{i}" for i in range(30)], 4)  # 4 images per patient
    resampler = PatientResampler(patients, n_resamples=50, seed=1)
    weights = np.concatenate(list(resampler.blocks(np.arange(len(patients)))))
    assert weights.shape == (50, 120)
    per_patient = weights.reshape(50, 30, 4)
    assert (per_patient == per_patient[:, :, :1]).all(), (
        "images of one patient must be drawn together"
    )
    assert (per_patient[:, :, 0].sum(axis=1) == 30).all(), (
        "each resample draws as many patients as there are"
    )
    assert (weights == 0).any() and (weights >= 2).any()


def test_resamples_are_seeded_and_independent_of_their_number():
    patients = np.arange(40).astype(str)
    first = PatientResampler(patients, 100, seed=5).patient_counts
    again = PatientResampler(patients, 100, seed=5).patient_counts
    fewer = PatientResampler(patients, 30, seed=5).patient_counts
    other = PatientResampler(patients, 100, seed=6).patient_counts
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[:30], fewer)
    assert not np.array_equal(first, other)


def _clustered_sample(rng: np.random.Generator, n_patients: int, per_patient: int, shift: float):
    """Labels per patient; score = shift * label + patient effect + image noise."""
    labels = np.repeat(rng.random(n_patients) < 0.4, per_patient)
    effect = np.repeat(rng.normal(0, 1, n_patients), per_patient)
    scores = shift * labels + effect + rng.normal(0, 0.3, labels.size)
    patients = np.repeat(np.arange(n_patients), per_patient)
    return scores, labels, patients


def test_patient_bootstrap_covers_the_true_auroc_and_image_bootstrap_does_not():
    # True AUROC: a positive and a negative image always belong to different patients, so their
    # score difference is normal with mean `shift` and variance 2 * (1 + 0.3^2).
    shift = 1.0
    true_auroc = norm.cdf(shift / np.sqrt(2 * (1 + 0.09)))
    rng = np.random.default_rng(2024)
    covered = {"patient": 0, "image": 0}
    repetitions = 150
    for rep in range(repetitions):
        scores, labels, patients = _clustered_sample(rng, n_patients=60, per_patient=5, shift=shift)
        for unit, ids in (("patient", patients), ("image", np.arange(labels.size))):
            resampler = PatientResampler(ids.astype(str), n_resamples=300, seed=rep)
            values = np.concatenate(
                [
                    weighted_auroc(scores, labels, w)
                    for w in resampler.blocks(np.arange(labels.size))
                ]
            )
            low, high = percentile_interval(values, 0.95)
            covered[unit] += low <= true_auroc <= high
    patient_coverage = covered["patient"] / repetitions
    image_coverage = covered["image"] / repetitions
    assert 0.88 <= patient_coverage <= 0.99, patient_coverage
    # resampling images ignores the correlation within patients: its intervals are too narrow
    assert image_coverage < patient_coverage - 0.15, (image_coverage, patient_coverage)


@pytest.fixture(scope="module")
def cohort_runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results") / "demo"
    cohort = write_cohort(results)
    folders = write_runs(results, cohort)
    return results, folders


def test_estimates_are_the_seed_means_of_the_runs_metrics(cohort_runs):
    results, folders = cohort_runs
    runs = read_runs(folders)
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
    summary = summarise_by_setting(metrics_table(runs, "demo"))
    test = summary[(summary["split"] == "test") & (summary["pathology"] == "macro")]
    merged = test.merge(ci, on=["encoder", "model", "n", "policy", "metric"])
    assert len(merged) == len(ci) == 2 * 3 * 2 * 2 * len(BOOTSTRAP_METRICS)
    np.testing.assert_allclose(merged["mean"], merged["estimate"], atol=1e-12)
    assert (merged["ci_low"] <= merged["estimate"] + 1e-12).all()
    assert (merged["estimate"] <= merged["ci_high"] + 1e-12).all()
    assert (ci["n_patients"] == 24).all() and (ci["n_images"] == 72).all()


def test_comparisons_are_paired_differences_for_every_encoder_and_size(cohort_runs):
    results, folders = cohort_runs
    ci, comparisons = bootstrap_tables(
        read_runs(folders), results / "split.parquet", PATHOLOGIES, SETTINGS
    )
    keys = set(zip(comparisons["encoder"], comparisons["n"], comparisons["model"], strict=True))
    assert keys == {
        (e, n, m)
        for e in ("enc_a", "enc_b")
        for n in ("10", "all")
        for m in ("two_branch_concat", "linear_probe")
    }
    assert (comparisons["reference"] == "baseline_mlp").all()
    np.testing.assert_allclose(
        comparisons["difference"],
        comparisons["model_value"] - comparisons["reference_value"],
        atol=1e-12,
    )
    assert not comparisons.loc[comparisons["metric"] == "hamming_loss", "higher_is_better"].any()
    # pairing: the interval of a difference is narrower than the two settings' intervals
    # side by side
    row = comparisons[(comparisons["metric"] == "auroc") & (comparisons["policy"] == "tuned")].iloc[
        0
    ]
    width = row["ci_high"] - row["ci_low"]
    sides = ci[
        (ci["encoder"] == row["encoder"])
        & (ci["n"] == row["n"])
        & (ci["metric"] == "auroc")
        & (ci["policy"] == "tuned")
    ]
    widths = sides.set_index("model")["ci_high"] - sides.set_index("model")["ci_low"]
    assert width < widths[row["model"]] + widths["baseline_mlp"]


def test_bootstrap_is_deterministic(cohort_runs, tmp_path):
    results, folders = cohort_runs
    report = {"resamples": 100, "seed": 0, "confidence": 0.9, "metrics": ["auroc", "f1"]}
    compared = {"reference": "baseline_mlp", "models": ["two_branch_concat"]}
    outputs = []
    for name in ("a", "b"):
        steps.bootstrap(
            folders,
            results / "split.parquet",
            PATHOLOGIES,
            report,
            compared,
            tmp_path / f"{name}_ci.csv",
            tmp_path / f"{name}_cmp.csv",
        )
        outputs.append(
            (
                (tmp_path / f"{name}_ci.csv").read_bytes(),
                (tmp_path / f"{name}_cmp.csv").read_bytes(),
            )
        )
    assert outputs[0] == outputs[1]
    assert set(read_table(tmp_path / "a_ci.csv")["metric"]) == {"auroc", "f1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a_ci.csv",
        "a_cmp.csv",
        "b_ci.csv",
        "b_cmp.csv",
    ]


def test_predictions_of_an_image_outside_the_test_split_are_refused(cohort_runs, tmp_path):
    results, folders = cohort_runs
    runs = read_runs(folders[:1])
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / "metrics.json").write_text((runs[0].folder / "metrics.json").read_text())
    predictions = pd.read_parquet(runs[0].folder / "predictions_test.parquet")
    predictions.loc[0, "image_id"] = "99999_000.png"
    predictions.to_parquet(bad / "predictions_test.parquet")
    with pytest.raises(
        RunFolderError,
        match=r"predictions_test.parquet has image '99999_000.png', which is not in the test split",
    ):
        bootstrap_tables(read_runs([bad]), results / "split.parquet", PATHOLOGIES, SETTINGS)


def test_a_missing_tuned_threshold_is_named(cohort_runs, tmp_path):
    results, folders = cohort_runs
    bad = tmp_path / "run"
    bad.mkdir()
    metrics = json.loads((folders[0] / "metrics.json").read_text())
    del metrics["thresholds"]["Effusion"]
    (bad / "metrics.json").write_text(json.dumps(metrics))
    (bad / "predictions_test.parquet").write_bytes(
        (folders[0] / "predictions_test.parquet").read_bytes()
    )
    with pytest.raises(RunFolderError, match="has no tuned threshold for Effusion"):
        bootstrap_tables(read_runs([bad]), results / "split.parquet", PATHOLOGIES, SETTINGS)


def test_missing_predictions_and_missing_columns_are_named(cohort_runs, tmp_path):
    results, folders = cohort_runs
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / "metrics.json").write_text((folders[0] / "metrics.json").read_text())
    with pytest.raises(RunFolderError, match="predictions_test.parquet is missing"):
        bootstrap_tables(read_runs([bad]), results / "split.parquet", PATHOLOGIES, SETTINGS)
    pd.read_parquet(folders[0] / "predictions_test.parquet").drop(columns="prob_Hernia").to_parquet(
        bad / "predictions_test.parquet"
    )
    with pytest.raises(RunFolderError, match="lacks the column.*prob_Hernia"):
        bootstrap_tables(read_runs([bad]), results / "split.parquet", PATHOLOGIES, SETTINGS)


def test_a_split_without_test_images_is_refused(cohort_runs, tmp_path):
    results, folders = cohort_runs
    split = pd.read_parquet(results / "split.parquet")
    split["split"] = split["split"].replace({"test": "val"})
    split.to_parquet(tmp_path / "split.parquet")
    with pytest.raises(RunFolderError, match="has no image in the test split"):
        bootstrap_tables(read_runs(folders[:1]), tmp_path / "split.parquet", PATHOLOGIES, SETTINGS)
