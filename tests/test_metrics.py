"""Metrics against values computed by hand on a tiny example, thresholds, the baselines, logits
against saturated probabilities, and the rule of which pathologies are evaluated."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from probelab.metrics import (
    baseline_rows,
    decision_rows,
    evaluate,
    f1_optimal_threshold,
    label_counts,
    label_exclusions,
    tune_thresholds,
)

PATHOLOGIES = ["A", "B", "C"]
# C has no positive: its AUROC and average precision are undefined.
TRUTH = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
SCORES = np.array([[0.9, 0.2, 0.1], [0.4, 0.6, 0.3], [0.6, 0.4, 0.7], [0.2, 0.7, 0.2]])


def lookup(
    rows: list[dict], metric: str, pathology: str, policy: str | None = None
) -> float | None:
    found = [
        r["value"]
        for r in rows
        if r["metric"] == metric and r["pathology"] == pathology and policy in (None, r["policy"])
    ]
    assert len(found) == 1, (metric, pathology, policy, found)
    return found[0]


@pytest.fixture
def rows() -> list[dict]:
    return evaluate("test", TRUTH, SCORES, {"t0.5": 0.5}, PATHOLOGIES)


def test_rows_follow_the_metrics_json_contract(rows: list[dict]) -> None:
    for row in rows:
        assert set(row) == {"split", "policy", "metric", "pathology", "value"}
        assert row["split"] == "test" and row["policy"] == "t0.5"
        assert row["value"] is None or (
            isinstance(row["value"], float) and math.isfinite(row["value"])
        )
    assert {r["metric"] for r in rows} == {
        "exact_match",
        "hamming_loss",
        "precision",
        "recall",
        "f1",
        "auroc",
        "average_precision",
    }
    assert "NaN" not in json.dumps(rows)


def test_sample_level_metrics_by_hand(rows: list[dict]) -> None:
    # predictions at 0.5: [1,0,0] [0,1,0] [1,0,1] [0,1,0];
    # rows 0 and 1 exactly right; 3 of 12 cells wrong
    assert lookup(rows, "exact_match", "micro") == pytest.approx(0.5)
    assert lookup(rows, "hamming_loss", "micro") == pytest.approx(0.25)


def test_precision_recall_f1_by_hand(rows: list[dict]) -> None:
    expected = {
        ("A", "precision"): 1.0,
        ("A", "recall"): 1.0,
        ("A", "f1"): 1.0,
        ("B", "precision"): 0.5,
        ("B", "recall"): 0.5,
        ("B", "f1"): 0.5,
        # C: one false positive, no positive at all -> precision 0, recall 0/0 counted as 0
        ("C", "precision"): 0.0,
        ("C", "recall"): 0.0,
        ("C", "f1"): 0.0,
        ("macro", "precision"): 0.5,
        ("macro", "recall"): 0.5,
        ("macro", "f1"): 0.5,
        # micro: TP 3, FP 2, FN 1
        ("micro", "precision"): 0.6,
        ("micro", "recall"): 0.75,
        ("micro", "f1"): 2 * 0.6 * 0.75 / 1.35,
    }
    for (pathology, metric), value in expected.items():
        assert lookup(rows, metric, pathology) == pytest.approx(value), (pathology, metric)


def test_auroc_and_average_precision_by_hand_with_an_undefined_pathology(rows: list[dict]) -> None:
    assert lookup(rows, "auroc", "A") == pytest.approx(1.0)
    assert lookup(rows, "auroc", "B") == pytest.approx(
        0.5
    )  # 2 of 4 positive-negative pairs ordered
    assert lookup(rows, "auroc", "C") is None
    # C is evaluated (the default: all) but undefined: the macro is undefined too, never an
    # average over fewer pathologies than it says
    assert lookup(rows, "auroc", "macro") is None
    assert lookup(rows, "average_precision", "macro") is None
    assert lookup(rows, "auroc", "micro") == pytest.approx(
        25.5 / 32
    )  # pooled cells, one tie at 0.4
    assert lookup(rows, "average_precision", "A") == pytest.approx(1.0)
    assert lookup(rows, "average_precision", "B") == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert lookup(rows, "average_precision", "C") is None
    evaluated = evaluate("test", TRUTH, SCORES, {"t0.5": 0.5}, PATHOLOGIES, evaluated=["A", "B"])
    assert lookup(evaluated, "auroc", "macro") == pytest.approx(0.75)
    assert lookup(evaluated, "average_precision", "macro") == pytest.approx((1 + 7 / 12) / 2)


def test_all_auroc_undefined_gives_null_macro() -> None:
    rows = evaluate(
        "val",
        np.zeros((3, 2), dtype=int),
        0.4 * np.random.default_rng(0).random((3, 2)),
        {"t0.5": 0.5},
        ["X", "Y"],
    )
    assert lookup(rows, "auroc", "macro") is None
    assert lookup(rows, "auroc", "micro") is None
    assert lookup(rows, "exact_match", "micro") == 1.0


def test_ranking_metrics_are_repeated_under_every_policy() -> None:
    rows = evaluate(
        "val", TRUTH, SCORES, {"t0.5": 0.5, "tuned": np.array([0.6, 0.4, 0.8])}, PATHOLOGIES
    )
    assert lookup(rows, "auroc", "A", "t0.5") == lookup(rows, "auroc", "A", "tuned") == 1.0
    assert lookup(rows, "f1", "B", "t0.5") == pytest.approx(0.5) and lookup(
        rows, "f1", "B", "tuned"
    ) == pytest.approx(0.8)


def test_per_pathology_thresholds_apply_per_column() -> None:
    rows = evaluate("val", TRUTH, SCORES, {"tuned": np.array([0.6, 0.4, 0.8])}, PATHOLOGIES)
    assert lookup(rows, "f1", "B") == pytest.approx(0.8)  # rows 1, 2 and 3 predicted: TP 2, FP 1
    assert lookup(rows, "precision", "C") == 0.0 and lookup(
        rows, "hamming_loss", "micro"
    ) == pytest.approx(1 / 12)


def test_f1_optimal_thresholds_by_hand() -> None:
    thresholds = tune_thresholds(TRUTH, SCORES)
    # A: >= 0.6 separates perfectly; B: >= 0.4 gives F1 0.8 (the best); C: no positive -> logit 0
    np.testing.assert_allclose(thresholds, [0.6, 0.4, 0.0])
    # a pathology without logits (not trained) gets no threshold
    untrained = SCORES.copy()
    untrained[:, 2] = np.nan
    assert np.isnan(tune_thresholds(TRUTH, untrained)[2])
    assert f1_optimal_threshold(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3])) == pytest.approx(
        0.3
    )


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"labels \(4, 3\) and scores \(4, 2\)"):
        evaluate("val", TRUTH, SCORES[:, :2], {"t0.5": 0.5}, PATHOLOGIES)


def test_all_negative_baseline_by_hand() -> None:
    rows = baseline_rows("test", TRUTH, np.array([0.5, 0.25, 0.0]), PATHOLOGIES, seed=0)
    negative = [r for r in rows if r["policy"] == "all_negative"]
    assert lookup(negative, "exact_match", "micro") == pytest.approx(
        0.25
    )  # only the last image has no finding
    assert lookup(negative, "hamming_loss", "micro") == pytest.approx(4 / 12)
    assert lookup(negative, "auroc", "A") == pytest.approx(0.5)
    assert lookup(negative, "auroc", "C") is None
    assert lookup(negative, "average_precision", "B") == pytest.approx(0.5)  # = prevalence
    assert lookup(negative, "f1", "macro") == 0.0


def test_prevalence_baseline_is_seeded_and_uses_training_prevalence() -> None:
    rows = baseline_rows("val", TRUTH, np.array([1.0, 0.0, 0.0]), PATHOLOGIES, seed=0)
    prevalence = [r for r in rows if r["policy"] == "prevalence"]
    # A always guessed positive, B and C never: A recall 1 and precision 2/4
    assert lookup(prevalence, "recall", "A") == 1.0 and lookup(prevalence, "precision", "A") == 0.5
    assert lookup(prevalence, "recall", "B") == 0.0
    assert lookup(prevalence, "auroc", "A") == pytest.approx(0.5)
    random_guess = np.full(3, 0.5)
    big_truth = np.random.default_rng(1).integers(0, 2, (400, 3))
    first = baseline_rows("val", big_truth, random_guess, PATHOLOGIES, seed=7)
    assert first == baseline_rows("val", big_truth, random_guess, PATHOLOGIES, seed=7)
    assert first != baseline_rows("val", big_truth, random_guess, PATHOLOGIES, seed=8)
    assert lookup(
        [r for r in first if r["policy"] == "prevalence"], "recall", "micro"
    ) == pytest.approx(0.5, abs=0.06)


def test_saturated_zero_shot_scores_are_ranked_and_thresholded_on_logits() -> None:
    """CLIP-type zero-shot: logit scale 100, no bias. sigmoid(100 cos) is exactly 1.0 in float64
    from cos >= 0.368, so probabilities tie where the logits (and the raw cosines) do not."""
    rng = np.random.default_rng(0)
    n = 400
    truth = (rng.random((n, 2)) < 0.3).astype(int)
    cosine = 0.33 + 0.06 * truth + rng.normal(0, 0.06, (n, 2))
    logits = 100.0 * cosine
    probs = expit(logits)
    assert (probs == 1.0).mean() > 0.3  # saturated: a third of the probabilities tie at 1.0
    rows = evaluate("test", truth, logits, {"t0.5": 0.0}, ["X", "Y"])
    for k, name in enumerate(("X", "Y")):
        on_cosine = roc_auc_score(truth[:, k], cosine[:, k])
        assert lookup(rows, "auroc", name) == pytest.approx(on_cosine, abs=1e-12)
        assert roc_auc_score(truth[:, k], probs[:, k]) < on_cosine - 0.01  # what the ties cost

    # thresholds tuned on logits can fall among the images whose probabilities all read 1.0
    def f1_at(scores: np.ndarray) -> float:
        predicted = scores >= f1_optimal_threshold(truth[:, 0], scores)
        hits = (predicted & (truth[:, 0] == 1)).sum()
        return 2 * hits / (predicted.sum() + truth[:, 0].sum())

    assert f1_at(logits[:, 0]) == pytest.approx(f1_at(cosine[:, 0]))
    assert f1_at(logits[:, 0]) >= f1_at(probs[:, 0])


def test_the_evaluation_rule_names_each_failing_split() -> None:
    train = np.array([[1, 1, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1]])
    val = np.array([[1, 0, 1, 1], [0, 1, 0, 0]])
    test = np.array([[1, 1, 1, 0], [1, 0, 0, 1]])
    counts = {"train": label_counts(train), "val": label_counts(val), "test": label_counts(test)}
    assert label_exclusions(counts, ["A", "B", "C", "D"], 1) == {
        "A": "no negative in test",
        "C": "0 positive patients in the training subset (needs 1)",
        "D": "no negative in the training subset",
    }
    assert label_exclusions(counts, ["A", "B", "C", "D"], 2)["B"] == (
        "1 positive patient in validation (needs 2), 1 positive patient in test (needs 2)"
    )
    limits = {"train": 1, "val": 1, "test": 2}
    assert label_exclusions(counts, ["A", "B", "C", "D"], limits)["B"] == (
        "1 positive patient in test (needs 2)"
    )


def test_the_evaluation_rule_counts_positive_patients_not_images() -> None:
    """Two positive images of one patient are one draw of the patient bootstrap."""
    truth = np.array([[1, 0], [1, 0], [0, 1], [0, np.nan], [1, 1]])
    patients = ["p1", "p1", "p2", "p2", "p3"]
    positives, negatives = label_counts(truth, patients)
    # by hand: A positive in p1, p3; negative in p2. B positive in p2, p3; negative in p1.
    assert positives.tolist() == [2, 2] and negatives.tolist() == [1, 1]
    assert label_counts(truth)[0].tolist() == [3, 2]  # images
    reasons = label_exclusions({"test": (positives, negatives)}, ["A", "B"], 3)
    assert reasons == {
        "A": "2 positive patients in test (needs 3)",
        "B": "2 positive patients in test (needs 3)",
    }


def test_macro_metrics_average_exactly_the_evaluated_pathologies() -> None:
    """A pathology without validation positives: excluded, its rows null, the macros (and pooled
    metrics) over the rest equal the metrics computed without it."""
    rng = np.random.default_rng(3)
    truth = (rng.random((60, 3)) < 0.4).astype(int)
    truth[:, 1] = 0  # B: no positive in this split
    logits = rng.normal(size=(60, 3)) + 2 * truth
    everything = evaluate("val", truth, logits, {"t0.5": 0.0}, PATHOLOGIES, ["A", "C"])
    without_b = evaluate("val", truth[:, [0, 2]], logits[:, [0, 2]], {"t0.5": 0.0}, ["A", "C"])
    for metric in ("auroc", "average_precision", "precision", "recall", "f1"):
        assert lookup(everything, metric, "B") is None
        for pathology in ("macro", "micro", "A", "C"):
            assert lookup(everything, metric, pathology) == pytest.approx(
                lookup(without_b, metric, pathology)
            ), (metric, pathology)
    for metric in ("exact_match", "hamming_loss"):
        assert lookup(everything, metric, "micro") == lookup(without_b, metric, "micro")
    # nothing evaluated: every summary is undefined, nothing is averaged over nothing
    nothing = evaluate("val", truth, logits, {"t0.5": 0.0}, PATHOLOGIES, [])
    assert all(r["value"] is None for r in nothing)
    baseline = baseline_rows("val", truth, truth.mean(axis=0), PATHOLOGIES, 0, ["A", "C"])
    assert lookup([r for r in baseline if r["policy"] == "all_negative"], "auroc", "B") is None


def test_one_evaluated_pathology_gives_its_own_precision_recall_and_f1():
    """Issue 23.1: an (N, 1) array is a binary problem over {0, 1} to scikit-learn; the values
    must be the positive class's, counted here by hand."""
    truth = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
    predicted = np.array([[1, 0], [0, 1], [0, 1], [1, 0]])
    rows = decision_rows("test", "tuned", truth, predicted, ["A", "B"], ["A"])
    value = {(r["metric"], r["pathology"]): r["value"] for r in rows}
    # A: 3 positives, 2 found, no false positive
    for pathology in ("A", "macro", "micro"):
        assert value[("precision", pathology)] == 1.0
        assert value[("recall", pathology)] == pytest.approx(2 / 3)
        assert value[("f1", pathology)] == pytest.approx(0.8)
    assert value[("exact_match", "micro")] == 0.75  # one of four A labels is wrong
    assert value[("recall", "B")] is None


def test_all_negative_baseline_of_one_pathology_finds_nothing():
    truth = np.array([[1.0], [0.0], [1.0], [0.0]])
    rows = baseline_rows("test", truth, np.array([0.5]), ["A"], seed=0)
    value = {(r["policy"], r["metric"], r["pathology"]): r["value"] for r in rows}
    for metric in ("precision", "recall", "f1"):
        assert value[("all_negative", metric, "macro")] == 0.0
        assert value[("all_negative", metric, "A")] == 0.0
