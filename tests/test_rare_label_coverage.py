"""benchmarks/rare_label_coverage.py at a tiny size: the facts its coverage table rests on.

A positive patient alone in its stratum weighs 1 in every resample (the AUROC interval then has
no positive-side variance); two positive patients give each resample exactly one of them, twice
weighted; the population AP it compares with is right where it is known exactly and agrees with
a large sample; and the table has the documented columns."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import REPO
from scipy.stats import norm
from sklearn.metrics import average_precision_score

from probelab.report.bootstrap import PatientResampler


def _load_benchmark():
    # benchmarks/ is not a package; registered before running so that its dataclass resolves
    path = REPO / "benchmarks" / "rare_label_coverage.py"
    spec = importlib.util.spec_from_file_location("rare_label_coverage", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


coverage = _load_benchmark()


def _resampler_of_split(k: int, resamples: int = 200):
    design = coverage.Design(resamples=resamples)
    shifts = np.array([coverage.binormal_shift(0.9)])
    patients, labels, _ = coverage.draw_split(np.random.default_rng(5), k, shifts, design)
    resampler = PatientResampler.covering(patients, labels[:, None].astype(float), resamples, 0)
    return resampler, labels


def test_one_positive_patient_weighs_one_in_every_resample():
    resampler, labels = _resampler_of_split(k=1)
    positive = np.unique(resampler.patient_index[labels])
    assert positive.size == 1
    assert (resampler.patient_counts[:, positive] == 1.0).all()
    # so every positive image has weight 1 in every resample: nothing on the positive side varies
    weights = np.concatenate(list(resampler.blocks(np.arange(labels.size))))
    assert (weights[:, labels] == 1.0).all()
    assert weights[:, ~labels].std(axis=0).min() > 0


def test_two_positive_patients_give_each_resample_one_of_them_twice_weighted():
    resampler, labels = _resampler_of_split(k=2)
    counts = resampler.patient_counts[:, np.unique(resampler.patient_index[labels])]
    assert sorted(map(tuple, np.unique(counts, axis=0))) == [(0.0, 2.0), (2.0, 0.0)]


def test_population_average_precision():
    # a score that ignores the label: precision is the prevalence at every threshold
    assert coverage.population_average_precision(0.0, 0.2) == pytest.approx(0.2, abs=1e-7)
    shift = coverage.binormal_shift(0.9)
    assert norm.cdf(shift / np.sqrt(2)) == pytest.approx(0.9)
    rng = np.random.default_rng(11)
    positives, negatives = 20_000, 180_000
    scores = np.r_[rng.normal(shift, 1, positives), rng.normal(0, 1, negatives)]
    labels = np.r_[np.ones(positives), np.zeros(negatives)]
    assert coverage.population_average_precision(shift, 0.1) == pytest.approx(
        average_precision_score(labels, scores), abs=0.01
    )


def test_the_table_has_its_documented_columns_and_one_row_per_metric_auroc_and_k():
    table = coverage.simulate((1, 20), (0.75, 0.9), 3, coverage.Design(resamples=50))
    assert list(table.columns) == coverage.COLUMNS
    assert len(table) == 2 * 2 * 2
    assert set(table["k"]) == {1, 20}
    assert (table["repeats"] == 3).all()
    assert table["coverage"].between(0, 1).all()
    assert (table["mean_width"] >= 0).all()
    auroc = table[table["metric"] == "auroc"]
    assert (auroc["true_value"] == auroc["true_auroc"]).all()
    # the population AP grows with the prevalence, i.e. with k at a fixed number of negatives
    ap = table[table["metric"] == "average_precision"].set_index(["true_auroc", "k"])
    assert (ap.xs(20, level="k")["true_value"] > ap.xs(1, level="k")["true_value"]).all()
    draws = table.groupby("k")["positive_draws"].max()
    assert draws[1] == 1 and draws[20] > 1
