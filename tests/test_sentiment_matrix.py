"""The sentiment matrix: stratified nested subsets, validation-only choices, the frozen-feature
methods over every cell, and the report's learning-curve and paired-comparison tables."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from probelab.config import ConfigError, load_config
from probelab.report.sentiment import aggregate_sentiment_track, resampled_scores
from probelab.sentiment import SentimentDataError
from probelab.sentiment.features import TextFeatures, write_text_features
from probelab.sentiment.frozen import fit_logreg, run_frozen
from probelab.sentiment.matrix import (
    Choice,
    HeldOutTest,
    choose,
    poolings,
    reference_setting,
    stratified_subset,
)

LABELS = np.array([0] * 70 + [1] * 30)


def test_stratified_subsets_keep_the_label_mix_are_nested_and_seeded():
    small = stratified_subset(LABELS, 20, 0, "x")
    large = stratified_subset(LABELS, 50, 0, "x")
    assert len(small) == 20 and LABELS[small].sum() == 6  # 30 % positives, as the split
    assert LABELS[large].sum() == 15 and set(small) <= set(large)  # nested for one seed
    assert list(small) == sorted(small)  # file order
    assert not np.array_equal(small, stratified_subset(LABELS, 20, 1, "x"))
    np.testing.assert_array_equal(small, stratified_subset(LABELS, 20, 0, "x"))
    np.testing.assert_array_equal(stratified_subset(LABELS, "all", 3, "x"), np.arange(100))
    # rounding: 7 of 23 would be 6.9 positives; the largest remainder gets the extra row
    assert LABELS[stratified_subset(LABELS, 23, 0, "x")].sum() == 7


def test_a_size_above_the_training_split_is_refused_in_one_sentence():
    with pytest.raises(SentimentDataError) as caught:
        stratified_subset(LABELS, 500, 0, "file data/train.jsonl")
    assert str(caught.value) == (
        "config key 'sentiment.matrix.sizes' asks for 500 training reviews, but the training "
        "split in file data/train.jsonl has only 100."
    )


def _config_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "config.yaml").read_text()
    assert old in text
    (tmp_path / "c.yaml").write_text(text.replace(old, new, 1))
    return tmp_path / "c.yaml"


def test_unknown_pooling_and_a_reference_not_run_are_refused_in_one_sentence(tmp_path: Path):
    bad = _config_with(tmp_path, "pooling: [cls, mean]", "pooling: [cls, max]")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert str(caught.value) == (
        "config key 'sentiment.features.pooling[1]' is invalid: 'max' is not one of "
        "['cls', 'mean']."
    )
    sentiment = load_config(_config_with(tmp_path, "pooling: [cls, mean]", "pooling: cls"))[
        "sentiment"
    ]
    assert poolings(sentiment) == ["cls"]  # a single name is still accepted
    with pytest.raises(SentimentDataError) as caught:
        reference_setting(sentiment)
    assert str(caught.value) == (
        "config key 'sentiment.reference' is logreg on mean-pooled features, which the config "
        "does not run (sentiment.methods: svm, logreg, finetune; sentiment.features.pooling: cls)."
    )
    with pytest.raises(ConfigError, match=r"config key 'sentiment\.matrix\.sizes\[0\]'"):
        load_config(_config_with(tmp_path, "sizes: [100, all]", "sizes: [5, all]"))


def test_choice_is_the_best_validation_score_and_unlocks_test_once():
    assert choose([0.7, 0.8, 0.8], "accuracy").index == 1  # ties go to the first
    assert choose([0.5, 0.3, float("nan")], "loss").index == 1  # loss is minimised
    held_out = HeldOutTest("test rows")
    with pytest.raises(RuntimeError, match="only to evaluate a setting chosen on validation"):
        held_out.for_choice(1)
    assert held_out.for_choice(Choice(0, (0.5,), "accuracy")) == "test rows"
    with pytest.raises(RuntimeError, match="evaluated once per cell"):
        held_out.for_choice(Choice(0, (0.5,), "accuracy"))


def test_logistic_regression_chooses_C_on_validation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    y = (X[:, 0] + rng.normal(scale=0.5, size=80) > 0).astype(int)
    pipeline, choice, rows = fit_logreg(
        X[:50],
        y[:50],
        X[50:],
        y[50:],
        {"C": [10, 0.001, 1], "scoring": "accuracy", "max_iter": 500},
    )
    assert [row["C"] for row in rows] == [0.001, 1, 10]
    scores = [row["validation"]["accuracy"] for row in rows]
    assert choice.index == int(np.argmax(scores)) and choice.scores == tuple(scores)
    assert pipeline.named_steps["logreg"].C == rows[choice.index]["C"]


def synthetic_cache(path: Path, pooling: str, shift: float) -> None:
    """A features cache of 60 / 40 / 50 reviews whose first feature carries the label."""
    rng = np.random.default_rng(1)
    sizes = {"train": 60, "validation": 40, "test": 50}
    labels = {s: np.arange(n) % 2 for s, n in sizes.items()}
    features = {}
    for split, n in sizes.items():
        X = rng.normal(size=(n, 5)).astype(np.float32)
        X[:, 0] += shift * (2 * labels[split] - 1)
        features[split] = X
    attrs = {"dataset": "d", "model": "m", "model_id": "x", "weights": "w", "pooling": pooling}
    attrs |= {"max_length": 16, "dtype": "float32", "data_hash": "h", "embedding_dim": 5}
    write_text_features(
        path, TextFeatures(features, labels, {s: np.ones(n, int) for s, n in sizes.items()}, attrs)
    )


def test_frozen_methods_fill_every_cell_and_the_report_compares_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cells = [("20", 0), ("20", 1), ("all", 0), ("all", 1)]
    svm = load_config(REPO / "config.yaml")["sentiment"]["svm"] | {"C": [1.0], "folds": 2}
    logreg = {"C": [0.01, 1.0], "scoring": "accuracy", "max_iter": 500}
    # the test split is read only after each cell's choice
    opened = []
    original = HeldOutTest.for_choice

    def watched(self, choice):
        opened.append(choice)
        return original(self, choice)

    monkeypatch.setattr(HeldOutTest, "for_choice", watched)
    files = []
    for pooling, shift in (("cls", 0.6), ("mean", 1.5)):
        synthetic_cache(tmp_path / f"{pooling}.h5", pooling, shift)
        for method, params in (("svm", svm), ("logreg", logreg)):
            folder = tmp_path / method / "m" / pooling
            results = run_frozen(
                method, tmp_path / f"{pooling}.h5", {"pooling": pooling}, params, cells, folder, 1
            )
            assert [(r["n"], r["seed"], r["n_train"]) for r in results] == [
                ("20", 0, 20),
                ("20", 1, 20),
                ("all", 0, 60),
                ("all", 1, 60),
            ]
            # the whole split is the same rows for every seed: fitted once, reused
            assert [r["fitted_in_seed"] for r in results] == [0, 1, 0, 0]
            for n, seed in cells:
                cell = folder / f"n{n}" / f"seed{seed}"
                assert (cell / "model.joblib").is_file() and (cell / "predictions.csv").is_file()
                files.append(cell / "metrics.json")
    assert len(opened) == 16 and all(isinstance(choice, Choice) for choice in opened)
    logreg_cell = json.loads((tmp_path / "logreg/m/mean/n20/seed1/metrics.json").read_text())
    validation = [row["validation"]["accuracy"] for row in logreg_cell["grid"]]
    assert logreg_cell["best_params"]["C"] == logreg_cell["grid"][int(np.argmax(validation))]["C"]
    # the same cell draws the same training rows whatever the method and pooling
    subsets = {json.loads(f.read_text())["subset"] for f in files if "n20/seed0" in str(f)}
    assert len(subsets) == 1

    out = tmp_path / "report"
    resampling = {"resamples": 200, "seed": 0, "confidence": 0.95}
    by_setting = aggregate_sentiment_track(
        files,
        resampling,
        ("logreg", "mean"),
        out / "sentiment.csv",
        out / "sentiment_runs.csv",
        out / "sentiment_comparisons.csv",
    )
    runs = pd.read_csv(out / "sentiment_runs.csv", dtype={"n": str})
    assert len(runs) == 16 * 2 * 4  # cells x splits x metrics
    test_accuracy = by_setting[
        (by_setting["split"] == "test") & (by_setting["metric"] == "accuracy")
    ]
    assert len(test_accuracy) == 8 and (test_accuracy["n_seeds"] == 2).all()
    assert (test_accuracy["lower"] <= test_accuracy["upper"]).all()
    reference = test_accuracy[
        (test_accuracy["method"] == "logreg") & (test_accuracy["pooling"] == "mean")
    ]
    assert reference["difference"].isna().all()  # no difference to itself
    comparisons = pd.read_csv(out / "sentiment_comparisons.csv", dtype={"n": str})
    assert len(comparisons) == 3 * 2 * 2  # 3 other settings x 2 sizes x (accuracy, F1)
    row = comparisons[
        (comparisons["method"] == "logreg")
        & (comparisons["pooling"] == "cls")
        & (comparisons["n"] == "all")
        & (comparisons["metric"] == "accuracy")
    ].iloc[0]
    assert row["difference"] == pytest.approx(row["value"] - row["reference_value"])
    assert row["lower"] <= row["difference"] <= row["upper"]
    assert row["difference"] < 0  # the weaker shift of the cls features shows

    from probelab.report import figures
    from probelab.report.summary import sentiment_section

    settings = load_config(REPO / "config.yaml")["report"]["figures"]
    paths = [tmp_path / "sentiment_comparison.png"]
    figure = figures.sentiment_comparison(by_setting, paths, settings)
    labels = {text.get_text() for legend in figure.legends for text in legend.get_texts()}
    assert "logistic regression on frozen features, mean-pooled" in labels and len(labels) == 4
    assert paths[0].stat().st_size > 5000
    summary = sentiment_section(by_setting)
    assert "### d / m, all (60) training reviews" in summary and "reference" in summary


def test_resampled_scores_match_the_plain_metrics():
    labels = np.array([0, 1, 1, 0, 1])
    predicted = np.array([0, 1, 0, 1, 1])
    scores = resampled_scores(labels, predicted, np.arange(5)[None, :])
    assert scores["accuracy"][0] == pytest.approx(0.6)
    assert scores["f1"][0] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
