"""SVM on frozen text features: a grid search over C, kernel and gamma, then a refit on train.

Two searches give the same candidates, folds, scores and best parameters:

- `plain`: scikit-learn's GridSearchCV over Pipeline(StandardScaler, SVC). Every fit computes
  its own kernel values from the features (D multiply-adds per value) in libsvm.
- `precomputed` (the default): per fold, the scaler is fitted on the fold's
  training part exactly as the pipeline does, and each kernel's Gram matrix is computed once with
  one BLAS matrix product; every C (and, for rbf, every gamma from the same squared distances)
  reuses it through SVC(kernel="precomputed"), so libsvm only looks kernel values up. Fits run in
  parallel threads (libsvm releases the GIL), longest first.

On Rotten Tomatoes MiniLM features the grid's time is dominated by the SMO iterations of the
linear kernel at large C, which precomputation does not shorten: the gain there comes from the
parallel fits (docs/sentiment.md has the measurements).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.io import atomic_path
from probelab.sentiment import SentimentDataError

log = logging.getLogger(__name__)

# libsvm caches kernel values as 4-byte floats; a cache of n*n*4 bytes holds the whole kernel.
BYTES_PER_KERNEL_VALUE = 4


@dataclass
class SearchResult:
    best_params: dict[str, Any]
    best_score: float
    cv_results: pd.DataFrame  # one row per candidate, GridSearchCV's cv_results_ columns
    seconds: float


def parameter_grid(C: list[float], kernel: list[str], gamma: list[Any]) -> list[dict[str, list]]:
    """The grid as GridSearchCV takes it; gamma only for kernels that use it (no duplicate linear
    fits)."""
    grid = []
    for name in kernel:
        if name == "linear":
            grid.append({"C": list(C), "kernel": ["linear"]})
        else:
            grid.append({"C": list(C), "gamma": list(gamma), "kernel": [name]})
    return grid


def kernel_cache_mb(n_samples: int, max_cache_mb: float) -> float:
    """A libsvm kernel cache that holds the whole n x n kernel when `max_cache_mb` allows."""
    return float(
        min(max_cache_mb, max(200.0, n_samples * n_samples * BYTES_PER_KERNEL_VALUE / 2**20 + 16))
    )


def make_pipeline(params: dict[str, Any], cache_size: float) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return Pipeline([("scale", StandardScaler()), ("svc", SVC(cache_size=cache_size, **params))])


def _folds(y: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    # GridSearchCV(cv=int) on a classifier uses StratifiedKFold without shuffling
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_splits=folds).split(np.zeros(len(y)), y))


def _rank_and_pick(frame: pd.DataFrame, folds: int) -> tuple[pd.DataFrame, int]:
    from scipy.stats import rankdata

    scores = frame[[f"split{k}_test_score" for k in range(folds)]].to_numpy()
    frame["mean_test_score"] = scores.mean(axis=1)
    frame["std_test_score"] = scores.std(axis=1)
    frame["rank_test_score"] = rankdata(-frame["mean_test_score"].to_numpy(), method="min").astype(
        int
    )
    best = int(np.flatnonzero(frame["rank_test_score"].to_numpy() == 1)[0])
    return frame, best


def plain_search(
    X: np.ndarray,
    y: np.ndarray,
    grid: list[dict[str, list]],
    folds: int,
    scoring: str,
    n_jobs: int,
    cache_size: float = 200.0,
) -> SearchResult:
    """GridSearchCV over Pipeline(StandardScaler, SVC): the reference the fast search must match."""
    from sklearn.model_selection import GridSearchCV

    pipeline_grid = [{f"svc__{key}": values for key, values in part.items()} for part in grid]
    start = time.perf_counter()
    search = GridSearchCV(
        make_pipeline({}, cache_size),
        pipeline_grid,
        cv=folds,
        scoring=scoring,
        n_jobs=n_jobs,
        refit=False,
    )
    search.fit(X, y)
    seconds = time.perf_counter() - start
    raw = pd.DataFrame(search.cv_results_)
    frame = pd.DataFrame(
        {"params": [{k.removeprefix("svc__"): v for k, v in p.items()} for p in raw["params"]]}
    )
    for column in raw.columns:
        if column.startswith("param_"):
            frame[column.replace("param_svc__", "param_")] = raw[column].astype(object).to_numpy()
        elif column not in ("params",) and not column.endswith("test_score"):
            frame[column] = raw[column]
    for k in range(folds):
        frame[f"split{k}_test_score"] = raw[f"split{k}_test_score"]
    frame, best = _rank_and_pick(frame, folds)
    return SearchResult(
        dict(frame["params"][best]), float(frame["mean_test_score"][best]), frame, seconds
    )


def _gamma_value(gamma: Any, X: np.ndarray) -> float:
    """SVC's own resolution of gamma for the (scaled, float64) training data X."""
    if gamma == "scale":
        variance = X.var()
        return 1.0 / (X.shape[1] * variance) if variance != 0 else 1.0
    if gamma == "auto":
        return 1.0 / X.shape[1]
    return float(gamma)


def _fold_kernels(
    X: np.ndarray, train: np.ndarray, test: np.ndarray, candidates: list[dict[str, Any]]
) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """(kernel, gamma) -> (train x train, test x train) kernel matrices for one fold."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X[train])
    # the pipeline hands SVC the scaler's output in the features' dtype; SVC converts it to float64
    A = np.ascontiguousarray(scaler.transform(X[train]), dtype=np.float64)
    B = np.ascontiguousarray(scaler.transform(X[test]), dtype=np.float64)
    linear_train, linear_test = A @ A.T, B @ A.T
    kernels: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    # squared distances, shared by every gamma
    distances: tuple[np.ndarray, np.ndarray] | None = None
    for candidate in candidates:
        key = (candidate["kernel"], candidate.get("gamma"))
        if key in kernels:
            continue
        if candidate["kernel"] == "linear":
            kernels[key] = (linear_train, linear_test)
        elif candidate["kernel"] == "rbf":
            if distances is None:
                squared_a, squared_b = np.einsum("ij,ij->i", A, A), np.einsum("ij,ij->i", B, B)
                distances = (
                    np.maximum(squared_a[:, None] + squared_a[None, :] - 2 * linear_train, 0),
                    np.maximum(squared_b[:, None] + squared_a[None, :] - 2 * linear_test, 0),
                )
            gamma = _gamma_value(candidate["gamma"], A)
            kernels[key] = (np.exp(-gamma * distances[0]), np.exp(-gamma * distances[1]))
        else:
            raise ValueError(
                f"kernel '{candidate['kernel']}' has no precomputed form; use linear or rbf."
            )
    return kernels


def precomputed_search(
    X: np.ndarray,
    y: np.ndarray,
    grid: list[dict[str, list]],
    folds: int,
    scoring: str,
    n_jobs: int,
    max_cache_mb: float = 1024.0,
) -> SearchResult:
    """The same search as `plain_search`, with one Gram matrix per fold and kernel shared by every
    C."""
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import ParameterGrid
    from sklearn.svm import SVC

    scorer = get_scorer(scoring)
    candidates = list(ParameterGrid(grid))
    splits = _folds(y, folds)
    start = time.perf_counter()
    kernels = []
    for k, (train, test) in enumerate(splits):
        kernels.append(_fold_kernels(X, train, test, candidates))
        log.info(
            "fold %d/%d: kernels for %d training rows ready (%.1f s)",
            k + 1,
            folds,
            len(train),
            time.perf_counter() - start,
        )

    def fit_and_score(task: tuple[int, int]) -> tuple[float, float, float]:
        k, c = task
        train, test = splits[k]
        candidate = candidates[c]
        gram_train, gram_test = kernels[k][(candidate["kernel"], candidate.get("gamma"))]
        svc = SVC(
            kernel="precomputed",
            C=candidate["C"],
            cache_size=kernel_cache_mb(len(train), max_cache_mb),
        )
        fit_start = time.perf_counter()
        svc.fit(gram_train, y[train])
        fit_seconds = time.perf_counter() - fit_start
        score = float(scorer(svc, gram_test, y[test]))
        log.info("fold %d %s: %s = %.4f (fit %.1f s)", k, candidate, scoring, score, fit_seconds)
        return score, fit_seconds, time.perf_counter() - fit_start - fit_seconds

    # longest first, so that no slow fit starts last while the other threads idle: linear fits
    # at large C converge slowest, rbf fits on a precomputed kernel take about a second
    tasks = sorted(
        ((k, c) for c in range(len(candidates)) for k in range(folds)),
        key=lambda task: (candidates[task[1]]["kernel"] == "linear", candidates[task[1]]["C"]),
        reverse=True,
    )
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        outcomes = dict(zip(tasks, pool.map(fit_and_score, tasks), strict=True))
    seconds = time.perf_counter() - start

    frame = pd.DataFrame({"params": candidates})
    for name in sorted({key for candidate in candidates for key in candidate}):
        frame[f"param_{name}"] = [candidate.get(name, np.nan) for candidate in candidates]
    fit_times = np.array(
        [[outcomes[(k, c)][1] for k in range(folds)] for c in range(len(candidates))]
    )
    score_times = np.array(
        [[outcomes[(k, c)][2] for k in range(folds)] for c in range(len(candidates))]
    )
    frame["mean_fit_time"], frame["std_fit_time"] = fit_times.mean(axis=1), fit_times.std(axis=1)
    frame["mean_score_time"], frame["std_score_time"] = (
        score_times.mean(axis=1),
        score_times.std(axis=1),
    )
    for k in range(folds):
        frame[f"split{k}_test_score"] = [outcomes[(k, c)][0] for c in range(len(candidates))]
    frame, best = _rank_and_pick(frame, folds)
    return SearchResult(
        dict(frame["params"][best]), float(frame["mean_test_score"][best]), frame, seconds
    )


def grid_search(X: np.ndarray, y: np.ndarray, svm: dict[str, Any], n_jobs: int) -> SearchResult:
    """Run the search configured in the config's `sentiment.svm` section."""
    grid = parameter_grid(svm["C"], svm["kernel"], svm["gamma"])
    if svm["search"] == "plain":
        cache = kernel_cache_mb(len(y) * (svm["folds"] - 1) // svm["folds"], svm["max_cache_mb"])
        return plain_search(X, y, grid, svm["folds"], svm["scoring"], n_jobs, cache)
    return precomputed_search(X, y, grid, svm["folds"], svm["scoring"], n_jobs, svm["max_cache_mb"])


def check_training_labels(y: np.ndarray, folds: int, origin: str) -> None:
    """Refuse training labels the grid search cannot use: every label needs at least `folds`
    rows, as StratifiedKFold does, so that every fold trains and is scored on both labels.

    `load_splits` already refuses a one-label training split; this also covers a features cache
    written before that check, and a label too rare for the configured folds, where scikit-learn
    would warn and then fail with "The number of classes has to be greater than one"."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=2)
    for label, count in enumerate(counts):
        if count < folds:
            raise SentimentDataError(
                f"the training split in {origin} has {count} review(s) with label {label}, fewer "
                f"than the {folds} cross-validation folds (config key sentiment.svm.folds); the "
                f"SVM needs at least {folds} of each label."
            )


def fit_svm(
    X: np.ndarray, y: np.ndarray, svm: dict[str, Any], threads: int, origin: str
) -> tuple[Any, SearchResult]:
    """Grid-search C / kernel / gamma on (X, y) by cross-validation and refit the best Pipeline
    (StandardScaler + SVC) on all of it; `svm` is the config's `sentiment.svm` section."""
    check_training_labels(y, svm["folds"], origin)
    log.info(
        "grid search (%s) on %d x %d training features, %d folds, %d jobs",
        svm["search"],
        *X.shape,
        svm["folds"],
        threads,
    )
    search = grid_search(X, y, svm, threads)
    log.info(
        "best %s = %.4f with %s (%.1f s)",
        svm["scoring"],
        search.best_score,
        search.best_params,
        search.seconds,
    )
    pipeline = make_pipeline(search.best_params, kernel_cache_mb(len(y), svm["max_cache_mb"]))
    pipeline.fit(X, y)
    return pipeline, search


def write_cv_results(search: SearchResult, out: Path) -> None:
    """The search's cv_results_ as CSV, parameters as sorted JSON."""
    cv = search.cv_results.copy()
    cv["params"] = [json.dumps(p, sort_keys=True) for p in cv["params"]]
    with atomic_path(out, suffix=".csv") as tmp:
        cv.to_csv(tmp, index=False)
