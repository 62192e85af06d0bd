"""The frozen-feature methods over the whole matrix: SVM (grid search by cross-validation on the
cell's training subset) and logistic regression (C chosen on validation), one job per method,
encoder and pooling.

The features cache is read once; each cell (size, seed) takes its training rows by index
(`probelab.sentiment.matrix.stratified_subset`), so nothing is re-encoded. Both methods are
deterministic given their training rows, so a cell whose rows equal an earlier cell's (the size
`all` of every seed) reuses that fit instead of repeating it. The test split is handed out per
cell only after the setting is chosen (`HeldOutTest`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.io import atomic_path, write_json
from probelab.layout import cell_path
from probelab.sentiment.features import encoding_attrs, read_text_features
from probelab.sentiment.matrix import (
    FROZEN_METHODS,
    Choice,
    HeldOutTest,
    choose,
    stratified_subset,
    subset_id,
)
from probelab.sentiment.metrics import binary_metrics, metric_rows

log = logging.getLogger(__name__)


def fit_logreg(
    X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, logreg: dict[str, Any]
) -> tuple[Any, Choice, list[dict[str, Any]]]:
    """Fit Pipeline(StandardScaler, LogisticRegression) for every C of the config's
    `sentiment.logreg` section (smallest first, so ties go to the stronger regularisation) and
    choose C by the validation `scoring`. Returns the chosen pipeline, the choice and one row per
    C with its validation metrics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipelines, rows = [], []
    for C in sorted(logreg["C"]):
        pipeline = Pipeline(
            [
                ("scale", StandardScaler()),
                ("logreg", LogisticRegression(C=C, max_iter=logreg["max_iter"])),
            ]
        )
        pipeline.fit(X, y)
        pipelines.append(pipeline)
        rows.append({"C": float(C), "validation": binary_metrics(y_val, pipeline.predict(X_val))})
    choice = choose([row["validation"][logreg["scoring"]] for row in rows], logreg["scoring"])
    return pipelines[choice.index], choice, rows


def _fit_cell(
    method: str,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    params: dict[str, Any],
    threads: int,
    origin: str,
) -> dict[str, Any]:
    """One cell's fit and choice: the pipeline, the Choice, and what metrics.json records of the
    selection."""
    if method == "svm":
        from probelab.sentiment.svm import fit_svm

        pipeline, search = fit_svm(X, y, params, threads, origin)
        frame = search.cv_results
        best = int(np.flatnonzero(frame["rank_test_score"].to_numpy() == 1)[0])
        choice = Choice(best, tuple(frame["mean_test_score"].astype(float)), params["scoring"])
        selection = {
            "selected_by": f"{params['folds']}-fold cross-validation {params['scoring']} on the "
            "training subset",
            "best_params": search.best_params,
            "cv_best_score": search.best_score,
            "scoring": params["scoring"],
            "folds": params["folds"],
            "search": params["search"],
            "search_seconds": search.seconds,
            "n_support": int(pipeline.named_steps["svc"].n_support_.sum()),
        }
        return {"pipeline": pipeline, "choice": choice, "selection": selection, "search": search}
    pipeline, choice, rows = fit_logreg(X, y, X_val, y_val, params)
    selection = {
        "selected_by": f"validation {params['scoring']}",
        "best_params": {"C": rows[choice.index]["C"]},
        "grid": rows,
    }
    return {"pipeline": pipeline, "choice": choice, "selection": selection, "search": None}


def write_predictions(out: Path, predictions: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """predictions.csv: split, row (index in the split's file order), label, prediction."""
    frames = [
        pd.DataFrame(
            {
                "split": split,
                "row": np.arange(len(labels)),
                "label": labels,
                "prediction": predicted,
            }
        )
        for split, (labels, predicted) in predictions.items()
    ]
    with atomic_path(out, suffix=".csv") as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)


def run_frozen(
    method: str,
    features_path: Path,
    expected: dict[str, Any],
    params: dict[str, Any],
    cells: list[tuple[str, int]],
    out_folder: Path,
    threads: int,
) -> list[dict[str, Any]]:
    """Train `method` ("svm" or "logreg", config section `params`) on the `pooling` features of
    one encoder for every cell (size, seed) and write each cell's metrics.json, predictions.csv,
    model.joblib (and cv_results.csv for the SVM) to `out_folder`/n{size}/seed{seed}/.

    `expected` is the provenance the features cache must have (`features.required_attrs`)."""
    import joblib

    if method not in FROZEN_METHODS:
        raise ValueError(f"unknown frozen-feature method {method!r}; expected svm or logreg.")
    cache = read_text_features(features_path, expected)
    train_labels = cache.labels["train"]
    origin = f"text features cache {features_path}"
    fitted: dict[str, tuple[dict[str, Any], int]] = {}
    results = []
    for size, seed in cells:
        start = time.perf_counter()
        rows = stratified_subset(train_labels, size, seed, origin)
        key = subset_id(rows)
        if key in fitted:
            # same rows, deterministic fit: the same model; say which cell it was fitted in
            fit, fitted_seed = fitted[key]
            log.info(
                "n=%s seed %d: same training rows as seed %d, fit reused", size, seed, fitted_seed
            )
        else:
            log.info("n=%s seed %d: %s on %d training rows", size, seed, method, len(rows))
            fit = _fit_cell(
                method,
                cache.features["train"][rows],
                train_labels[rows],
                cache.features["validation"],
                cache.labels["validation"],
                params,
                threads,
                origin,
            )
            fitted_seed = seed
            fitted[key] = (fit, seed)
        pipeline = fit["pipeline"]
        held_out = HeldOutTest((cache.features["test"], cache.labels["test"]))
        predictions = {
            "validation": (
                cache.labels["validation"],
                pipeline.predict(cache.features["validation"]),
            )
        }
        # the test split only now, for the setting chosen above
        test_features, test_labels = held_out.for_choice(fit["choice"])
        predictions["test"] = (test_labels, pipeline.predict(test_features))
        metrics = []
        for split, (labels, predicted) in predictions.items():
            values = binary_metrics(labels, predicted)
            metrics += metric_rows(split, values)
            log.info(
                "n=%s seed %d %s: %s",
                size,
                seed,
                split,
                ", ".join(f"{k} {v:.4f}" for k, v in values.items()),
            )
        folder = Path(cell_path(out_folder, size, seed))
        folder.mkdir(parents=True, exist_ok=True)
        write_predictions(folder / "predictions.csv", predictions)
        with atomic_path(folder / "model.joblib", suffix=".joblib") as tmp:
            joblib.dump(pipeline, tmp)
        if fit["search"] is not None:
            from probelab.sentiment.svm import write_cv_results

            write_cv_results(fit["search"], folder / "cv_results.csv")
        result = {
            "method": method,
            "model": cache.attrs["model"],
            "dataset": cache.attrs["dataset"],
            "pooling": cache.attrs["pooling"],
            "n": str(size),
            "seed": int(seed),
            "n_train": int(len(rows)),
            "subset": key,
            "fitted_in_seed": int(fitted_seed),
            "metrics": metrics,
            **fit["selection"],
            "n_validation": int(len(cache.labels["validation"])),
            "n_test": int(len(test_labels)),
            "wall_seconds": time.perf_counter() - start,
            "features": encoding_attrs(cache.attrs),
        }
        write_json(folder / "metrics.json", result)
        results.append(result)
    return results
