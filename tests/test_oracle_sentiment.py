"""The sentiment track's tables and summary.md (rule R5 of tests/oracle.py) against metrics
recomputed from each cell's stored test predictions, over hypothesis-drawn small matrices (methods,
sizes, seeds, poolings). Its own file so that pytest-xdist runs it beside the chest X-ray oracle
test (tests/test_oracle_workflow.py), whose configuration helpers it shares."""

from __future__ import annotations

import oracle
import pytest
import yaml
from conftest import run_snakemake
from hypothesis import given, note
from hypothesis import strategies as st
from test_oracle_workflow import SUMMARY, CohortSpec, Drawn, _log_tail, write_config

pytestmark = pytest.mark.workflow


# --- the sentiment track (R5) -------------------------------------------------------------------


@st.composite
def sentiment_sections(draw) -> dict:
    """A tiny sentiment matrix: sizes, seeds, methods (always the reference, logistic regression
    on mean-pooled features) and poolings."""
    methods = ["logreg", *draw(st.sampled_from([("svm", "finetune"), ("svm",), (), ("finetune",)]))]
    return {
        "enabled": True,
        "dataset": "oracle_reviews",
        "data": {"source": "demo"},
        "demo": {"n_reviews": 60, "seed": draw(st.integers(0, 100))},
        "encoders": [{"name": "minilm", "model": "bundled:all-minilm-l6-v2"}],
        "matrix": {
            # the first (simplest) draw, the one `make test` runs, is one cell per method and
            # pooling; the thorough profile draws the matrices
            "sizes": list(draw(st.sampled_from([("all",), (16, "all"), (12,)]))),
            "seeds": list(draw(st.sampled_from([(0,), (0, 1), (2,)]))),
        },
        "methods": methods,
        "reference": {"method": "logreg", "pooling": "mean"},
        "inspect": {"n_samples": 1},
        "features": {
            "pooling": list(draw(st.sampled_from([("cls", "mean"), ("mean",)]))),
            "max_length": 32,
            "batch_size": 16,
            "threads": 1,
        },
        "svm": {"C": [1], "kernel": ["linear"], "folds": 2, "n_jobs": 1},
        "logreg": {"C": [0.1, 1]},
        "finetune": {
            "grid": {"learning_rate": [1e-4], "epochs": [1]},
            "max_steps": 1,
            "batch_size": 8,
            "eval_batch_size": 32,
            "max_length": 32,
            "logging_steps": 1,
            "threads": 1,
        },
    }


# The chest X-ray side of the sentiment test: the smallest configuration that writes summary.md
# (no prompt model, so no prompt embedding job).
SMALL = Drawn(
    pathologies=("Effusion", "Nodule"),
    cohort=CohortSpec(("Effusion", "Nodule"), (0.5, 0.35), 50, 0, columns=False),
    views=(),
    row_filter="",
    blank="negative",
    sizes=("all",),
    seeds=(0,),
    min_positives=1,
    min_test_positives=2,
    policy="balanced",
    report_policy="tuned",
    epochs=2,
)


@given(sentiment=sentiment_sections())
def test_every_sentiment_number_equals_the_oracle(sentiment: dict, tmp_path_factory) -> None:
    """sentiment_runs.csv, sentiment.csv, sentiment_comparisons.csv and summary.md's sentiment
    table against metrics recomputed from each cell's stored test predictions."""
    note(f"sentiment section: {sentiment}")
    workdir = tmp_path_factory.mktemp("oracle_sentiment")
    config = write_config(SMALL, workdir, ("linear_probe", "baseline_mlp"), sentiment)
    result = run_snakemake(workdir, SUMMARY, configfile=config, timeout=1800)
    assert result.returncode == 0, _log_tail(workdir, result)
    settings = yaml.safe_load(config.read_text())
    results = oracle.check_workflow(oracle.Workflow.read(workdir, config))
    results["sentiment (R5)"] = oracle.check_sentiment(workdir, settings)
    report = oracle.describe(results)
    note(report)
    assert not any(results.values()), report
