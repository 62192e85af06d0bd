"""probelab.metrics against the oracle (tests/oracle.py): scikit-learn called one pathology at a
time on 1-D arrays, masked labels dropped per pathology.

Hypothesis draws truth and logit matrices of 1 to 14 pathologies with NaN masks, all-negative
columns, a single evaluated pathology and tied logits, and every row that `evaluate`,
`ranking_rows`, `decision_rows` and `baseline_rows` return must equal the oracle's value (1e-9)
or, for a pathology the rows do not evaluate, be null. No Snakemake here: these run in seconds.
"""

from __future__ import annotations

import numpy as np
import oracle
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from probelab.metrics import baseline_rows, decision_rows, evaluate, ranking_rows

NAMES = [chr(ord("A") + k) for k in range(14)]
# These take milliseconds: 25 examples for each example of the profile's slow tests
# (tests/conftest.py: "ci" 50, "thorough" 625), the rest of the profile unchanged.
FAST = settings(max_examples=25 * settings().max_examples)


def as_rows(rows: list[dict]) -> dict[tuple[str, str, str], object]:
    """(policy, metric, pathology) -> value; a key twice is an error."""
    out: dict[tuple[str, str, str], object] = {}
    for row in rows:
        key = (row["policy"], row["metric"], str(row["pathology"]))
        assert key not in out, f"row {key} appears twice"
        out[key] = row["value"]
    return out


def expected_for(
    truth: np.ndarray,
    scores: np.ndarray | None,
    decided: np.ndarray | None,
    names: list[str],
    evaluated: list[str],
    policy: str,
) -> dict[tuple[str, str, str], object]:
    """The oracle's rows of one policy: values over `evaluated`, null for every other
    pathology's per-pathology rows."""
    columns = {name: k for k, name in enumerate(names)}
    values = oracle.set_values(
        {p: truth[:, columns[p]] for p in names},
        None if scores is None else {p: scores[:, columns[p]] for p in names},
        None if decided is None else {p: decided[:, columns[p]] for p in names},
        evaluated,
    )
    out: dict[tuple[str, str, str], object] = {
        (policy, metric, pathology): value for (metric, pathology), value in values.items()
    }
    metrics = (oracle.RANKING if scores is not None else ()) + (
        oracle.DECISION if decided is not None else ()
    )
    for name in names:
        if name not in evaluated:
            for metric in metrics:
                out[(policy, metric, name)] = None
    return out


def mismatches(expected: dict, actual: dict) -> list[oracle.Mismatch]:
    return oracle.compare("metrics", "probelab.metrics", expected, actual)


# --- the issue's reproduction (issue 23, case 1) ------------------------------------------------

ISSUE_TRUTH = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
ISSUE_PREDICTED = np.array([[1, 0], [0, 1], [0, 1], [1, 0]])


def test_the_oracle_agrees_with_a_hand_count_on_the_issues_example() -> None:
    """A: 3 positives, 2 predicted and both right: precision 1, recall 2/3, F1 0.8."""
    values = oracle.set_values(
        {"A": ISSUE_TRUTH[:, 0], "B": ISSUE_TRUTH[:, 1]},
        None,
        {"A": ISSUE_PREDICTED[:, 0], "B": ISSUE_PREDICTED[:, 1]},
        ["A"],
    )
    assert values[("precision", "A")] == 1.0
    assert values[("recall", "A")] == pytest.approx(2 / 3, abs=1e-12)
    assert values[("f1", "A")] == pytest.approx(0.8, abs=1e-12)
    assert values[("recall", "micro")] == pytest.approx(2 / 3, abs=1e-12)
    assert values[("exact_match", "micro")] == 0.75 and values[("hamming_loss", "micro")] == 0.25


def test_one_evaluated_pathology_gives_its_own_precision_and_recall() -> None:
    """decision_rows with one evaluated pathology of two: A's values, not the negative class's,
    and macro and micro equal to them."""
    rows = as_rows(decision_rows("test", "tuned", ISSUE_TRUTH, ISSUE_PREDICTED, ["A", "B"], ["A"]))
    assert rows[("tuned", "precision", "A")] == pytest.approx(1.0, abs=1e-9)
    assert rows[("tuned", "recall", "A")] == pytest.approx(2 / 3, abs=1e-9)
    for metric in ("precision", "recall", "f1"):
        assert rows[("tuned", metric, "macro")] == pytest.approx(
            rows[("tuned", metric, "A")], abs=1e-9
        )
        assert rows[("tuned", metric, "B")] is None
    assert rows[("tuned", "recall", "micro")] == pytest.approx(2 / 3, abs=1e-9)
    expected = expected_for(ISSUE_TRUTH, None, ISSUE_PREDICTED, ["A", "B"], ["A"], "tuned")
    assert not mismatches(expected, rows)


def test_the_all_negative_baseline_recalls_nothing_with_one_evaluated_pathology() -> None:
    """Predicting every label negative: macro recall and F1 are 0 (the issue saw 0.5 and 0.16)."""
    rows = as_rows(baseline_rows("test", ISSUE_TRUTH, np.array([0.5, 0.25]), ["A", "B"], 0, ["A"]))
    assert rows[("all_negative", "recall", "macro")] == 0.0
    assert rows[("all_negative", "f1", "macro")] == 0.0
    zeros = np.zeros_like(ISSUE_TRUTH)
    expected = expected_for(ISSUE_TRUTH, zeros, zeros, ["A", "B"], ["A"], "all_negative")
    assert not mismatches(expected, rows)


# --- drawn matrices -----------------------------------------------------------------------------


@st.composite
def problems(draw) -> dict:
    """Truth (0/1/NaN), logits with ties, per-pathology thresholds and an evaluated subset."""
    n_images = draw(st.integers(2, 40))
    n_paths = draw(st.integers(1, 14))
    names = NAMES[:n_paths]
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    prevalence = rng.choice([0.0, 0.05, 0.3, 0.6, 1.0], n_paths)
    truth = (rng.random((n_images, n_paths)) < prevalence).astype(float)
    mask_share = draw(st.sampled_from([0.0, 0.0, 0.2, 0.6]))
    truth[rng.random(truth.shape) < mask_share] = np.nan
    # a few distinct values make ties in ranking and at the thresholds
    levels = draw(st.sampled_from([3, 8, 1000]))
    logits = rng.integers(-levels, levels + 1, truth.shape) / max(1, levels // 3)
    thresholds = rng.integers(-levels, levels + 1, n_paths) / max(1, levels // 3)
    evaluated = draw(
        st.one_of(
            st.just(names),
            st.lists(st.sampled_from(names), min_size=1, max_size=1),
            st.lists(st.sampled_from(names), unique=True),
        )
    )
    evaluated = [p for p in names if p in set(evaluated)]
    return {
        "truth": truth,
        "logits": logits.astype(float),
        "thresholds": thresholds.astype(float),
        "names": names,
        "evaluated": evaluated,
        "seed": seed,
    }


def _note(problem: dict) -> None:
    note(
        f"names={problem['names']} evaluated={problem['evaluated']}\n"
        f"truth=\n{problem['truth']}\nlogits=\n{problem['logits']}\n"
        f"thresholds={problem['thresholds']}"
    )


@FAST
@given(problems())
def test_evaluate_equals_the_oracle(problem: dict) -> None:
    _note(problem)
    truth, logits, names = problem["truth"], problem["logits"], problem["names"]
    policies = {"t0.5": 0.0, "tuned": problem["thresholds"]}
    rows = as_rows(evaluate("test", truth, logits, policies, names, problem["evaluated"]))
    expected: dict = {}
    for policy, thresholds in policies.items():
        decided = logits >= np.broadcast_to(thresholds, logits.shape)
        expected |= expected_for(truth, logits, decided, names, problem["evaluated"], policy)
    found = mismatches(expected, rows)
    assert not found, "\n".join(map(str, found[:20]))


@FAST
@given(problems())
def test_ranking_rows_equal_the_oracle(problem: dict) -> None:
    _note(problem)
    truth, logits, names = problem["truth"], problem["logits"], problem["names"]
    rows = as_rows(ranking_rows("test", "p", truth, logits, names, problem["evaluated"]))
    expected = expected_for(truth, logits, None, names, problem["evaluated"], "p")
    found = mismatches(expected, rows)
    assert not found, "\n".join(map(str, found[:20]))


@FAST
@given(problems())
def test_decision_rows_equal_the_oracle(problem: dict) -> None:
    _note(problem)
    truth, logits, names = problem["truth"], problem["logits"], problem["names"]
    decided = (logits >= problem["thresholds"][None, :]).astype(np.int8)
    rows = as_rows(decision_rows("test", "tuned", truth, decided, names, problem["evaluated"]))
    expected = expected_for(truth, None, decided, names, problem["evaluated"], "tuned")
    found = mismatches(expected, rows)
    assert not found, "\n".join(map(str, found[:20]))


@FAST
@given(problems())
def test_baselines_equal_the_oracle(problem: dict) -> None:
    """All-negative: every value; prevalence: its per-pathology and macro ranking values (a
    constant score), and nulls outside the evaluated set. The prevalence baseline's seeded
    random decisions are not recomputed (the docstring does not state the draw)."""
    _note(problem)
    truth, names, evaluated = problem["truth"], problem["names"], problem["evaluated"]
    prevalence = np.linspace(0.1, 0.9, len(names))
    rows = as_rows(baseline_rows("test", truth, prevalence, names, problem["seed"], evaluated))
    zeros = np.zeros(truth.shape)
    expected = expected_for(truth, zeros, zeros, names, evaluated, "all_negative")
    constant = np.broadcast_to(prevalence, truth.shape)
    ranked = expected_for(truth, constant, None, names, evaluated, "prevalence")
    expected |= {k: v for k, v in ranked.items() if k[2] != "micro"}
    for name in names:
        if name not in evaluated:
            for metric in oracle.DECISION:
                expected[("prevalence", metric, name)] = None
    found = mismatches(expected, rows)
    assert not found, "\n".join(map(str, found[:20]))


def test_the_oracle_reports_a_wrong_value() -> None:
    """The comparison itself: a value off by more than 1e-9, a null where a number belongs and a
    missing row are each reported."""
    expected = {("t", "f1", "A"): 0.5, ("t", "f1", "B"): None, ("t", "f1", "C"): 0.25}
    actual = {("t", "f1", "A"): 0.5 + 1e-6, ("t", "f1", "B"): 0.0}
    found = {m.key for m in mismatches(expected, actual)}
    assert found == {str(("t", "f1", "A")), str(("t", "f1", "B")), str(("t", "f1", "C"))}
