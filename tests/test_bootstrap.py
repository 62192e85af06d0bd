"""Patient-level bootstrap: weighted metrics equal scikit-learn on the resampled data, resamples are
patient-level, stratified and seeded, every macro metric averages one fixed set of pathologies,
the intervals cover a known value (rare labels too) and never exclude their estimate, the
seeds-and-patients interval adds the spread between seeds, and comparisons are paired."""

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
    evaluated_sets,
    metrics_table,
    read_runs,
    read_table,
    summarise_by_setting,
)
from probelab.report.bootstrap import (
    BOOTSTRAP_METRICS,
    PatientResampler,
    acceleration,
    bootstrap_interval,
    covering_strata,
    percentile_interval,
    seed_draws,
    weighted_auroc,
    weighted_metrics,
)
from probelab.report.intervals import BootstrapSettings, bootstrap_tables
from probelab.subsets import choose_subset, mix_path, subset_mix

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
    # AUROC / AP over the pathologies with both classes, thresholded metrics over all, as the
    # metrics.json of a run written before "evaluated_pathologies" did
    values = weighted_metrics(
        probs, truth, probs >= thresholds, weights, BOOTSTRAP_METRICS, ranking_columns=[0, 1, 2]
    )
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


def test_every_macro_averages_exactly_its_columns_and_an_undefined_one_makes_it_undefined():
    rng = np.random.default_rng(1)
    truth = rng.random((60, 3)) < 0.4
    scores = rng.normal(size=(60, 3)) + truth
    predicted = scores >= 0.5
    weights = np.ones((2, 60))
    weights[1, truth[:, 2]] = 0.0  # the second "resample" has no positive of pathology 2
    values = weighted_metrics(scores, truth, predicted, weights, BOOTSTRAP_METRICS, [0, 2], [0, 2])
    t, p = truth[:, [0, 2]], predicted[:, [0, 2]]
    assert values["auroc"][0] == pytest.approx(
        np.mean([roc_auc_score(truth[:, k], scores[:, k]) for k in (0, 2)])
    )
    assert values["f1"][0] == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    assert values["exact_match"][0] == pytest.approx(accuracy_score(t, p))
    assert values["hamming_loss"][0] == pytest.approx(hamming_loss(t, p))
    # never an average over fewer pathologies: undefined, and left out of the interval
    assert np.isnan(values["auroc"][1]) and np.isnan(values["average_precision"][1])


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
    # rescaled bootstrap: 29 draws weighted 30/29, so a resample weighs as many patients as
    # there are
    np.testing.assert_allclose(per_patient[:, :, 0].sum(axis=1), 30)
    np.testing.assert_allclose(np.round(weights * 29 / 30) * 30 / 29, weights)
    assert (weights == 0).any() and (weights >= 2).any()


def _rare_labels(rng: np.random.Generator, n_patients: int) -> tuple[np.ndarray, np.ndarray]:
    """Two images per patient; two common pathologies and three with 1, 2 and 3 positive
    images."""
    patients = np.repeat(np.arange(n_patients), 2)
    truth = np.zeros((2 * n_patients, 5), dtype=bool)
    truth[:, 0] = np.repeat(rng.random(n_patients) < 0.3, 2)
    truth[:, 1] = rng.random(2 * n_patients) < 0.1
    for column, k in ((2, 1), (3, 2), (4, 3)):
        truth[rng.choice(2 * n_patients, k, replace=False), column] = True
    return patients, truth


def test_strata_keep_a_positive_and_a_negative_of_every_pathology_in_every_resample():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        patients, truth = _rare_labels(rng, n_patients=int(rng.integers(12, 60)))
        ids = patients.astype(str)
        plain = PatientResampler(ids, 1, 0)
        strata = covering_strata(plain.patient_index, truth, plain.n_patients)
        assert len(np.unique(strata)) <= 2 * truth.shape[1] + 1
        resampler = PatientResampler(ids, 200, seed, strata)
        positions = np.arange(len(ids))
        for weights in [*resampler.blocks(positions), *resampler.jackknife_blocks(positions)]:
            positives = weights @ truth.astype(float)
            negatives = weights @ (~truth).astype(float)
            assert (positives > 0).all() and (negatives > 0).all(), seed
            # each stratum keeps its weight
            for s in np.unique(strata):
                members = np.flatnonzero(strata[resampler.patient_index] == s)
                np.testing.assert_allclose(weights[:, members].sum(axis=1), len(members), rtol=1e-9)
        # without strata, a pathology with one or two positive images drops out of many resamples
        unstratified = PatientResampler(ids, 200, seed)
        weights = np.concatenate(list(unstratified.blocks(positions)))
        assert ((weights @ truth[:, 3].astype(float)) == 0).mean() > 0.05


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


RARE_METRICS = ("auroc", "average_precision", "f1")


def _rare_cohort(rng: np.random.Generator, n_patients: int, rare: tuple[int, ...]):
    """Three images per patient; two common pathologies (patient-level, 30 % and 15 %) and one
    pathology per entry of `rare` with exactly that many positive images, each in its own
    patient. logit = shift * label + patient effect + image noise; rare findings are weak, so
    their AP is low and their few positives sit among many negatives."""
    per = 3
    patients = np.repeat(np.arange(n_patients), per)
    columns = [np.repeat(rng.random(n_patients) < share, per) for share in (0.3, 0.15)]
    for k in rare:
        column = np.zeros(n_patients * per, dtype=bool)
        chosen = rng.choice(n_patients, k, replace=False)
        column[chosen * per + rng.integers(0, per, k)] = True
        columns.append(column)
    truth = np.stack(columns, axis=1)
    shift = np.array([1.5, 1.5] + [1.0] * len(rare))
    effect = np.repeat(rng.normal(0, 1, n_patients), per)
    logits = truth * shift + effect[:, None] + rng.normal(0, 0.5, truth.shape)
    return logits, truth, patients


def _macro_values(logits, truth, weights):
    return weighted_metrics(logits, truth, logits >= 1.0, weights, RARE_METRICS)


def test_rare_label_coverage_of_macro_auroc_ap_f1_and_no_interval_excludes_its_estimate():
    """The population value of each macro metric comes from one sample 150 times larger (rare
    pathologies with 150 times as many positives, the same prevalence). Over 150 simulated test
    sets of 80 patients with 2, 3 and 5 positive images of three rare pathologies: no resample may
    lose an evaluated pathology, not one interval of any kind may exclude its own estimate, and
    the logit intervals (the default) must cover the population value nearly as often as they
    claim. Quantile intervals cover the average precision much less often: its resamples run high
    (a duplicated rare positive raises its own precision), which shifts their quantiles away from
    the estimate while their spread stays right."""
    rare = (2, 3, 5)
    big_logits, big_truth, _ = _rare_cohort(np.random.default_rng(7), 80 * 150, (300, 450, 750))
    population = _macro_values(big_logits, big_truth, np.ones((1, len(big_truth))))
    rng = np.random.default_rng(2026)
    repetitions, confidence, methods = 150, 0.95, ("logit", "bca", "percentile")
    covered = {(method, metric): 0 for method in methods for metric in RARE_METRICS}
    excluded, fallbacks, undefined = [], 0, 0
    for rep in range(repetitions):
        logits, truth, patients = _rare_cohort(rng, 80, rare)
        resampler = PatientResampler.covering(patients.astype(str), truth, 200, rep)
        positions = np.arange(len(truth))
        estimate = _macro_values(logits, truth, np.ones((1, len(truth))))
        boot = [_macro_values(logits, truth, w) for w in resampler.blocks(positions)]
        jack = [_macro_values(logits, truth, w) for w in resampler.jackknife_blocks(positions)]
        for metric in RARE_METRICS:
            values = np.concatenate([b[metric] for b in boot])
            undefined += int(np.isnan(values).sum())
            accel = acceleration(
                np.concatenate([j[metric] for j in jack]), resampler.jackknife_strata
            )
            point = float(estimate[metric][0])
            for method in methods:
                interval = bootstrap_interval(values, point, confidence, accel, method)
                fallbacks += interval.method == "logit-fallback"
                if not interval.low <= point <= interval.high:
                    excluded.append((rep, metric, method, point, interval))
                truth_value = population[metric][0]
                covered[(method, metric)] += interval.low <= truth_value <= interval.high
    coverage = {key: count / repetitions for key, count in covered.items()}
    print("population", {m: round(float(v[0]), 4) for m, v in population.items()})
    print("coverage", coverage, "fallbacks", fallbacks)
    assert undefined == 0, "a resample lost the positives of an evaluated pathology"
    assert not excluded, excluded[:3]
    for metric in RARE_METRICS:
        assert 0.85 <= coverage[("logit", metric)] <= 0.99, coverage
    assert coverage[("logit", "average_precision")] > coverage[("bca", "average_precision")]
    assert coverage[("bca", "average_precision")] > coverage[("percentile", "average_precision")]


def test_an_interval_never_excludes_its_estimate():
    rng = np.random.default_rng(3)
    symmetric = rng.normal(0.5, 0.05, 2000)
    low, high = percentile_interval(symmetric, 0.95)
    for method in ("logit", "bca", "percentile"):
        interval = bootstrap_interval(symmetric, 0.5, 0.95, 0.0, method)
        assert interval.method == method
        assert abs(interval.low - low) < 0.006 and abs(interval.high - high) < 0.006
    # resamples biased upwards: BCa moves the interval down against the bias, the percentile
    # interval follows it, the logit interval stays centred on the estimate
    shifted = symmetric + 0.07
    moved = bootstrap_interval(shifted, 0.5, 0.95, 0.0, "bca")
    low, high = percentile_interval(shifted, 0.95)
    assert moved.method == "bca" and moved.low < 0.5 < moved.high
    assert moved.low < low - 0.05 and moved.high < high - 0.05
    # almost every resample above the estimate: quantile intervals would exclude it
    one_sided = 0.5 + np.abs(rng.normal(0.12, 0.02, 1000))
    assert percentile_interval(one_sided, 0.95)[0] > 0.5
    for method in ("bca", "percentile"):
        fallback = bootstrap_interval(one_sided, 0.5, 0.95, 0.0, method)
        assert fallback.method == "logit-fallback" and fallback.low < 0.5 < fallback.high
    # the logit interval stays in the range and is asymmetric near its ends
    near_one = bootstrap_interval(rng.normal(0.97, 0.03, 500), 0.97, 0.95)
    assert near_one.high < 1.0 and near_one.high - 0.97 < 0.97 - near_one.low
    difference = bootstrap_interval(rng.normal(-0.9, 0.1, 500), -0.9, 0.95, bounds=(-1.0, 1.0))
    assert -1.0 < difference.low < -0.9 < difference.high
    # a constant statistic gives a point; no finite resample gives no interval
    point = bootstrap_interval(np.full(100, 0.3), 0.3, 0.95)
    assert (point.low, point.high) == (0.3, 0.3)
    assert bootstrap_interval(np.full(10, np.nan), 0.3, 0.95).method == ""


def test_acceleration_is_the_skewness_of_the_jackknife():
    assert acceleration(np.array([1.0, 1.0, 1.0]), np.zeros(3)) == 0.0
    values = np.array([0.0, 0.0, 0.0, 1.0])  # one replicate far above: d negative skew
    d = values.mean() - values
    assert acceleration(values, np.zeros(4)) == pytest.approx(
        (d**3).sum() / (6 * (d**2).sum() ** 1.5)
    )
    # strata are centred on their own means
    assert acceleration(np.r_[values, values + 5], np.r_[np.zeros(4), np.ones(4)]) == pytest.approx(
        (2 * (d**3).sum()) / (6 * (2 * (d**2).sum()) ** 1.5)
    )


def test_seed_draws_are_seeded_and_shared_by_settings_with_as_many_seeds():
    draws = seed_draws(3, 100, seed=4)
    assert draws.shape == (100, 3) and set(np.unique(draws)) == {0, 1, 2}
    np.testing.assert_array_equal(draws, seed_draws(3, 100, seed=4))
    assert (seed_draws(1, 10, 4) == 0).all()


@pytest.fixture(scope="module")
def cohort_runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results") / "demo"
    cohort = write_cohort(results)
    folders = write_runs(results, cohort)
    return results, folders


def _macro_test_means(runs) -> pd.DataFrame:
    summary = summarise_by_setting(metrics_table(runs, "demo"), evaluated_sets(runs))
    return summary[(summary["split"] == "test") & (summary["pathology"] == "macro")]


def _check_estimates(runs, ci) -> None:
    merged = _macro_test_means(runs).merge(ci, on=["encoder", "model", "n", "policy", "metric"])
    assert len(merged) == len(ci)
    np.testing.assert_allclose(merged["mean"], merged["estimate"], atol=1e-12)
    for low, high in (("ci_low", "ci_high"), ("ci_low_seeds", "ci_high_seeds")):
        assert (merged[low] <= merged["estimate"]).all() and (
            merged["estimate"] <= merged[high]
        ).all()


@pytest.mark.parametrize("legacy", [False, True], ids=["logits", "before-logits"])
def test_estimates_are_the_seed_means_of_the_runs_metrics(tmp_path, legacy):
    """Both formats: runs with logits and evaluated pathologies (ranked on logits), and runs
    written before them (ranked on probabilities; macro AUROC / AP over the pathologies defined in
    the test split)."""
    results = tmp_path / "demo"
    runs = read_runs(write_runs(results, write_cohort(results), legacy=legacy))
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
    assert len(ci) == 2 * 3 * 2 * 2 * len(BOOTSTRAP_METRICS)
    _check_estimates(runs, ci)
    assert (ci["n_patients"] == 24).all() and (ci["n_images"] == 72).all()
    assert (ci["strata"] > 1).all() and set(ci["interval"]) == set(ci["interval_seeds"]) == {
        "logit"
    }


def test_rank_metrics_use_the_logits_not_saturated_probabilities(cohort_runs, tmp_path):
    results, folders = cohort_runs
    copies = []
    for folder in folders[:4]:  # enc_a / baseline_mlp: both sizes, both seeds
        copy = tmp_path / folder.relative_to(results)
        copy.mkdir(parents=True)
        (copy / "metrics.json").write_text((folder / "metrics.json").read_text())
        predictions = pd.read_parquet(folder / "predictions_test.parquet")
        for name in PATHOLOGIES:  # a saturated sigmoid: every probability 1.0, all tied
            predictions[f"prob_{name}"] = 1.0
        predictions.to_parquet(copy / "predictions_test.parquet")
        copies.append(copy)
    runs = read_runs(copies)
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
    _check_estimates(runs, ci)  # metrics.json ranked the logits, and so does the bootstrap
    assert (ci.loc[ci["metric"] == "auroc", "estimate"] > 0.6).all()


def test_every_macro_averages_the_runs_evaluated_pathologies(tmp_path):
    results = tmp_path / "demo"
    cohort = write_cohort(results)
    evaluated = ("Atelectasis", "Effusion")
    runs = read_runs(write_runs(results, cohort, models=("baseline_mlp",), evaluated=evaluated))
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
    _check_estimates(runs, ci)
    # the same predictions averaged over all three pathologies give other numbers
    everything = read_runs(write_runs(tmp_path / "all", cohort, models=("baseline_mlp",)))
    merged = _macro_test_means(everything).merge(
        ci, on=["encoder", "model", "n", "policy", "metric"]
    )
    assert (merged["mean"] - merged["estimate"]).abs().max() > 0.01


def test_the_seeds_interval_adds_the_spread_between_seeds(tmp_path):
    """Two seeds of very different skill: the interval over seeds and patients is much wider than
    the patient interval of the seed mean; seeds of equal skill widen it much less."""
    ratios = {}
    for name, seed_skill in (("alike", None), ("apart", {0: 0.25, 1: 1.75})):
        results = tmp_path / name
        runs = read_runs(
            write_runs(
                results,
                write_cohort(results),
                encoders=("enc_a",),
                models=("baseline_mlp",),
                seed_skill=seed_skill,
            )
        )
        ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
        _check_estimates(runs, ci)
        auroc = ci[(ci["metric"] == "auroc") & (ci["policy"] == "tuned")]
        width = auroc["ci_high"] - auroc["ci_low"]
        ratios[name] = ((auroc["ci_high_seeds"] - auroc["ci_low_seeds"]) / width).min()
    assert ratios["apart"] > 1.5 and ratios["apart"] > ratios["alike"] + 0.4, ratios


def test_bca_intervals_on_request(cohort_runs):
    results, folders = cohort_runs
    runs = read_runs(folders[:8])
    settings = BootstrapSettings(200, 3, 0.95, BOOTSTRAP_METRICS, "baseline_mlp", (), "bca")
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, settings)
    _check_estimates(runs, ci)
    assert set(ci["interval"]) <= {"bca", "logit-fallback"} and "bca" in set(ci["interval"])


def test_the_training_mix_of_each_setting_comes_from_the_subsets_mix_files(cohort_runs, tmp_path):
    results, folders = cohort_runs
    runs = read_runs(folders[:4])  # enc_a / baseline_mlp at 10 and all, seeds 0 and 1
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
    assert (
        ci["train_all_negative_share"].isna().all() and (ci["subset_policy"].fillna("") == "").all()
    )
    index = pd.read_parquet(results / "index.parquet")
    split = pd.read_parquet(results / "split.parquet")
    train = index[index["image_id"].isin(split.loc[split["split"] == "train", "image_id"])]
    for n, seed in ((n, seed) for n in ("10", "all") for seed in (0, 1)):
        ids = choose_subset(train, PATHOLOGIES, n, seed, "balanced", 0.2)
        mix = subset_mix(train.set_index("image_id").loc[ids], PATHOLOGIES, n, seed, "balanced")
        path = results / "subsets" / f"n{n}" / f"seed{seed}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(ids) + "\n")
        mix_path(path).write_text(json.dumps(mix))
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
    assert set(ci["subset_policy"]) == {"balanced"}
    by_size = ci.groupby("n")[["train_all_negative_share", "train_mean_prevalence"]].first()
    natural = train[PATHOLOGIES].to_numpy()
    assert by_size.loc["all", "train_all_negative_share"] == pytest.approx(
        (natural.sum(axis=1) == 0).mean()
    )
    assert by_size.loc["all", "train_mean_prevalence"] == pytest.approx(natural.mean())
    assert by_size.loc["10", "train_all_negative_share"] == pytest.approx(0.2)


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
    del metrics["logit_thresholds"]["Effusion"]
    (bad / "metrics.json").write_text(json.dumps(metrics))
    (bad / "predictions_test.parquet").write_bytes(
        (folders[0] / "predictions_test.parquet").read_bytes()
    )
    with pytest.raises(
        RunFolderError, match="has no tuned threshold for Effusion in logit_thresholds"
    ):
        bootstrap_tables(read_runs([bad]), results / "split.parquet", PATHOLOGIES, SETTINGS)
    # a run written before logits decides on probabilities and needs those thresholds
    del metrics["logit_thresholds"]
    del metrics["thresholds"]["Effusion"]
    (bad / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunFolderError, match="has no tuned threshold for Effusion"):
        bootstrap_tables(read_runs([bad]), results / "split.parquet", PATHOLOGIES, SETTINGS)
    # a pathology the run did not evaluate needs none
    metrics["evaluated_pathologies"] = ["Atelectasis", "Hernia"]
    (bad / "metrics.json").write_text(json.dumps(metrics))
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


def test_every_table_averages_the_pathologies_every_run_evaluates(tmp_path):
    """Issue 23.3: runs at n = 10 evaluate Atelectasis and Effusion only (Hernia had no training
    positive), runs on the whole split all three. A curve over both sizes, its seed means and its
    comparisons must average one set; the references are computed here from metrics.json's
    per-pathology values and, for the interval table, from the predictions with scikit-learn one
    pathology at a time."""
    results = tmp_path / "demo"
    cohort = write_cohort(results)
    folders = write_runs(results, cohort, sizes=("10",), evaluated=("Atelectasis", "Effusion"))
    folders += write_runs(results, cohort, sizes=("all",))
    runs = read_runs(folders)
    shared = ["Atelectasis", "Effusion"]
    summary = summarise_by_setting(metrics_table(runs, "demo"), evaluated_sets(runs))
    over_a_set = summary["pathology"].isin(["macro", "micro"])
    assert set(summary.loc[over_a_set, "pathology_set"]) == {"Atelectasis|Effusion"}
    ci, comparisons = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, SETTINGS)
    assert set(ci["pathology_set"]) == set(comparisons["pathology_set"]) == {"Atelectasis|Effusion"}
    test = cohort[cohort["split"] == "test"].sort_values("image_id")
    for run in runs:
        if run.info["n"] != "all" or run.info["model"] != "linear_probe":
            continue
        document = json.loads((run.folder / "metrics.json").read_text())
        assert document["evaluated_pathologies"] == PATHOLOGIES
        by_hand = np.mean(
            [
                next(
                    r["value"]
                    for r in document["metrics"]
                    if (r["split"], r["policy"], r["metric"], r["pathology"])
                    == ("test", "tuned", "auroc", p)
                )
                for p in shared
            ]
        )
        predictions = pd.read_parquet(run.folder / "predictions_test.parquet")
        predictions = predictions.set_index("image_id").loc[test["image_id"]]
        sklearn = np.mean(
            [roc_auc_score(predictions[f"true_{p}"], predictions[f"logit_{p}"]) for p in shared]
        )
        assert by_hand == pytest.approx(sklearn, abs=1e-12)
    for frame, value in ((summary, "mean"), (ci, "estimate")):
        rows = frame[
            (frame["encoder"] == "enc_a")
            & (frame["model"] == "linear_probe")
            & (frame["n"] == "all")
            & (frame["policy"] == "tuned")
            & (frame["metric"] == "auroc")
        ]
        if "pathology" in rows:
            rows = rows[(rows["pathology"] == "macro") & (rows["split"] == "test")]
        seeds = [run for run in runs if run.key[:3] == ("enc_a", "linear_probe", "all")]
        expected = np.mean(
            [
                np.mean(
                    [
                        roc_auc_score(
                            *pd.read_parquet(run.folder / "predictions_test.parquet")[
                                [f"true_{p}", f"logit_{p}"]
                            ].T.to_numpy()
                        )
                        for p in shared
                    ]
                )
                for run in seeds
            ]
        )
        assert rows[value].iloc[0] == pytest.approx(expected, abs=1e-9)
    # a pooled metric cannot be recomputed from the table: over another set, it is left empty
    pooled = summary[
        (summary["n"] == "all")
        & (summary["metric"] == "exact_match")
        & (summary["split"] == "test")
    ]
    assert pooled["mean"].isna().all() and (pooled["n_seeds"] == 0).all()
    assert (
        summary.loc[(summary["n"] == "10") & (summary["metric"] == "exact_match"), "mean"]
        .notna()
        .all()
    )
