"""SVM on frozen text features: grid search on train (config's grid and folds), refit, evaluate."""

import json
import logging
import time
from pathlib import Path
from typing import Any

from probelab.io import atomic_path, write_json
from probelab.sentiment.features import read_text_features
from probelab.sentiment.metrics import binary_metrics, metric_rows
from probelab.sentiment.svm import grid_search, kernel_cache_mb, make_pipeline

log = logging.getLogger("sentiment_svm")


def run_svm(
    features_path: Path,
    expected: dict[str, Any],
    svm: dict[str, Any],
    out_metrics: Path,
    out_cv: Path,
    out_model: Path,
    threads: int,
) -> dict[str, Any]:
    """Grid-search C / kernel / gamma on train by cross-validation, refit the best Pipeline
    (StandardScaler + SVC) on all of train, and report validation and test metrics."""
    import joblib

    start = time.perf_counter()
    cache = read_text_features(features_path, expected)
    X, y = cache.features["train"], cache.labels["train"]
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

    refit_start = time.perf_counter()
    pipeline = make_pipeline(search.best_params, kernel_cache_mb(len(y), svm["max_cache_mb"]))
    pipeline.fit(X, y)
    refit_seconds = time.perf_counter() - refit_start
    metrics = []
    for split in ("validation", "test"):
        values = binary_metrics(cache.labels[split], pipeline.predict(cache.features[split]))
        metrics += metric_rows(split, values)
        log.info("%s: %s", split, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))

    cv = search.cv_results.copy()
    cv["params"] = [json.dumps(p, sort_keys=True) for p in cv["params"]]
    with atomic_path(out_cv, suffix=".csv") as tmp:
        cv.to_csv(tmp, index=False)
    with atomic_path(out_model, suffix=".joblib") as tmp:
        joblib.dump(pipeline, tmp)
    result = {
        "method": "svm",
        "model": cache.attrs["model"],
        "dataset": cache.attrs["dataset"],
        "metrics": metrics,
        "best_params": search.best_params,
        "cv_best_score": search.best_score,
        "scoring": svm["scoring"],
        "folds": svm["folds"],
        "search": svm["search"],
        "n_support": int(pipeline.named_steps["svc"].n_support_.sum()),
        "n_train": int(len(y)),
        "n_validation": int(len(cache.labels["validation"])),
        "n_test": int(len(cache.labels["test"])),
        "search_seconds": search.seconds,
        "refit_seconds": refit_seconds,
        "wall_seconds": time.perf_counter() - start,
        "features": {
            key: cache.attrs[key]
            for key in ("model_id", "weights", "pooling", "max_length", "embedding_dim")
        },
    }
    write_json(out_metrics, result)
    return result


def main(argv: list[str] | None = None) -> None:
    from probelab.sentiment.workflow import expected_features, parse_command_line

    args, s = parse_command_line(
        __doc__, argv, ["--features", "--out-dir"], demo_folder=False, threads=True
    )
    run_svm(
        args.features,
        expected_features(s, args.model),
        s["svm"],
        args.out_dir / "metrics.json",
        args.out_dir / "cv_results.csv",
        args.out_dir / "model.joblib",
        args.threads,
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    out = snakemake.output
    run_svm(
        Path(snakemake.input.features),
        snakemake.params.expected,
        snakemake.params.svm,
        Path(out.metrics),
        Path(out.cv_results),
        Path(out.model),
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
