"""SVM grid search: the grid comes from the config, and the fast search equals GridSearchCV."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probelab.config import ConfigError, load_config
from probelab.sentiment import SentimentDataError
from probelab.sentiment.features import TextFeatures, write_text_features
from probelab.sentiment.frozen import run_frozen
from probelab.sentiment.svm import (
    check_training_labels,
    grid_search,
    kernel_cache_mb,
    parameter_grid,
    plain_search,
    precomputed_search,
)

REPO = Path(__file__).resolve().parents[1]


def separable_enough(n: int = 150, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + rng.normal(scale=0.8, size=n) > 0.5).astype(int)
    X[:, 2] *= 50  # unscaled column: the per-fold scaler matters
    return X, y


def test_parameter_grid_gives_gamma_only_to_rbf():
    assert parameter_grid([0.1, 1], ["linear", "rbf"], ["scale", 0.5]) == [
        {"C": [0.1, 1], "kernel": ["linear"]},
        {"C": [0.1, 1], "gamma": ["scale", 0.5], "kernel": ["rbf"]},
    ]


def test_kernel_cache_holds_the_kernel_up_to_the_limit():
    assert kernel_cache_mb(100, 1024) == 200.0  # never below libsvm's usual default
    assert 277 < kernel_cache_mb(8530, 1024) < 300  # 8530^2 * 4 bytes
    assert kernel_cache_mb(100_000, 1024) == 1024


@pytest.mark.parametrize("scoring", ["accuracy", "f1"])
def test_precomputed_search_matches_gridsearchcv(scoring: str):
    X, y = separable_enough()
    grid = parameter_grid([0.1, 1, 10], ["linear", "rbf"], ["scale", "auto", 0.05])
    plain = plain_search(X, y, grid, 3, scoring, n_jobs=1)
    fast = precomputed_search(X, y, grid, 3, scoring, n_jobs=2)
    assert fast.best_params == plain.best_params
    assert fast.best_score == pytest.approx(plain.best_score, abs=1e-12)
    columns = [c for c in plain.cv_results.columns if c.endswith("test_score")]
    assert list(fast.cv_results["params"]) == list(plain.cv_results["params"])
    np.testing.assert_allclose(
        fast.cv_results[columns].to_numpy(float), plain.cv_results[columns].to_numpy(float)
    )


def test_svm_step_takes_its_grid_from_the_config(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text((REPO / "config.yaml").read_text())
    config_data = load_config(config)
    svm = {
        **config_data["sentiment"]["svm"],
        "C": [0.5, 2.0],
        "kernel": ["rbf"],
        "gamma": [0.1, "scale"],
        "folds": 2,
    }
    X, y = separable_enough(60)
    attrs = {
        "dataset": "d",
        "model": "m",
        "model_id": "x",
        "weights": "w",
        "pooling": "cls",
        "max_length": 16,
        "dtype": "float32",
        "data_hash": "h",
        "embedding_dim": X.shape[1],
    }
    cache = TextFeatures(
        features={"train": X, "validation": X[:20], "test": X[20:40]},
        labels={"train": y, "validation": y[:20], "test": y[20:40]},
        n_tokens={s: np.ones(n, int) for s, n in (("train", 60), ("validation", 20), ("test", 20))},
        attrs=attrs,
    )
    write_text_features(tmp_path / "f.h5", cache)
    (result,) = run_frozen(
        "svm",
        tmp_path / "f.h5",
        {"model": "m", "pooling": "cls"},
        svm,
        [("all", 0)],
        tmp_path / "out",
        threads=1,
    )
    cell = tmp_path / "out/nall/seed0"
    cv = pd.read_csv(cell / "cv_results.csv")
    assert sorted(json.loads(p)["C"] for p in cv["params"]) == [0.5, 0.5, 2.0, 2.0]
    assert {json.loads(p)["gamma"] for p in cv["params"]} == {0.1, "scale"}
    assert [c for c in cv.columns if c.startswith("split")] == [
        "split0_test_score",
        "split1_test_score",
    ]
    assert result["best_params"]["kernel"] == "rbf" and result["folds"] == 2
    written = json.loads((cell / "metrics.json").read_text())
    assert written["method"] == "svm" and written["model"] == "m" and written["dataset"] == "d"
    assert {(row["split"], row["metric"]) for row in written["metrics"]} == {
        (s, m) for s in ("validation", "test") for m in ("accuracy", "precision", "recall", "f1")
    }
    assert all(0 <= row["value"] <= 1 for row in written["metrics"])
    # how the features were made, as the cache recorded it
    assert written["features"] == {
        "model_id": "x",
        "weights": "w",
        "pooling": "cls",
        "max_length": 16,
        "embedding_dim": X.shape[1],
    }
    # same config, plain search: same best parameters
    assert grid_search(X, y, {**svm, "search": "plain"}, 1).best_params == result["best_params"]


def test_bad_svm_config_is_refused_in_one_sentence(tmp_path: Path):
    text = (REPO / "config.yaml").read_text().replace("    folds: 3\n", "    folds: 1\n", 1)
    assert "folds: 1" in text
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"config key 'sentiment\.svm\.folds' is invalid"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        # a one-label cache (written before load_splits refused one-label training splits)
        ([1] * 12, "has 0 review(s) with label 0, fewer than the 3 cross-validation folds"),
        # one review of label 0: scikit-learn would fit folds without it and fail in libsvm
        ([0] + [1] * 11, "has 1 review(s) with label 0, fewer than the 3 cross-validation folds"),
    ],
)
def test_svm_refuses_training_labels_the_folds_cannot_use(
    tmp_path: Path, labels: list[int], message: str
):
    X = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    y = np.array(labels)
    cache = TextFeatures(
        features={"train": X, "validation": X[:4], "test": X[4:8]},
        labels={"train": y, "validation": y[:4], "test": y[4:8]},
        n_tokens={s: np.ones(n, int) for s, n in (("train", 12), ("validation", 4), ("test", 4))},
        attrs={"dataset": "d", "model": "m", "dtype": "float32", "embedding_dim": 4},
    )
    write_text_features(tmp_path / "f.h5", cache)
    svm = {"C": [1.0], "kernel": ["linear"], "gamma": ["scale"], "folds": 3}
    svm |= {"search": "precomputed", "scoring": "f1", "max_cache_mb": 256}
    with pytest.raises(SentimentDataError) as caught:
        run_frozen("svm", tmp_path / "f.h5", {}, svm, [("all", 0)], tmp_path / "out", threads=1)
    assert str(caught.value) == (
        f"the training split in text features cache {tmp_path / 'f.h5'} {message} "
        "(config key sentiment.svm.folds); the SVM needs at least 3 of each label."
    )
    check_training_labels(np.array([0, 1, 0, 1, 0, 1]), 3, "x")  # three of each is enough
