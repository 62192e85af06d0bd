"""SVM grid search: plain GridSearchCV(Pipeline(StandardScaler, SVC)) vs the workflow's search.

On the frozen MiniLM features of the real Rotten Tomatoes training split (the cache that rule
sentiment_text_features writes), over the grid and folds of a config (default: the real-data
config), times
  (a) plain: scikit-learn's GridSearchCV over the pipeline with SVC's defaults (200 MB kernel
      cache) and n_jobs=1, i.e. what one writes first;
  (b) the workflow's search (`probelab.sentiment.svm.precomputed_search`: one Gram matrix per
      fold and kernel shared by every C, sized kernel cache) with 1 job, and with the config's
      n_jobs,
checks that all give the same best parameters and the same cross-validation scores, and prints
the times and ratios. Target: (b) with the config's n_jobs >= 2x faster than (a).
The plain search on all 8,530 rows takes over 15 minutes on 2 CPU cores; --subsample N times
every search on the same stratified random N training rows instead (say so when quoting).

Run from the repository root, after the workflow has built the features:
  .venv/bin/python benchmarks/svm_grid.py [--subsample 3000]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from probelab.config import load_config
from probelab.layout import SentimentLayout
from probelab.sentiment.features import read_text_features
from probelab.sentiment.matrix import poolings
from probelab.sentiment.svm import parameter_grid, plain_search, precomputed_search

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", type=Path, default=REPO / "configs" / "rotten_tomatoes_local.yaml"
    )
    parser.add_argument(
        "--features",
        type=Path,
        default=None,
        help="text features cache "
        "(default: results/sentiment/<dataset>/features/<first encoder>/<first pooling>.h5)",
    )
    parser.add_argument(
        "--subsample",
        type=int,
        default=None,
        help="time every search on N stratified training rows",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsample")
    parser.add_argument("--skip-plain", action="store_true", help="time only the workflow's search")
    args = parser.parse_args()

    sentiment = load_config(args.config)["sentiment"]
    svm = sentiment["svm"]
    features = args.features or REPO / SentimentLayout.of(sentiment).features(
        sentiment["encoders"][0]["name"], poolings(sentiment)[0]
    )
    cache = read_text_features(features, {"dataset": sentiment["dataset"]})
    X, y = cache.features["train"], cache.labels["train"]
    if args.subsample and args.subsample < len(y):
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(
            X, y, train_size=args.subsample, stratify=y, random_state=args.seed
        )
    grid = parameter_grid(svm["C"], svm["kernel"], svm["gamma"])
    print(
        f"features: {features} -> {X.shape[0]} x {X.shape[1]} training rows"
        f"{' (subsample)' if args.subsample else ''}; grid {grid}; {svm['folds']} folds; "
        f"scoring {svm['scoring']}",
        flush=True,
    )

    # CPU seconds beside wall seconds: on a shared machine the wall time depends on the others' load
    results, cpu = {}, {}
    if not args.skip_plain:
        start = time.process_time()
        results["plain GridSearchCV, 1 job"] = plain_search(
            X, y, grid, svm["folds"], svm["scoring"], n_jobs=1
        )
        cpu["plain GridSearchCV, 1 job"] = time.process_time() - start
        print(f"plain done: {results['plain GridSearchCV, 1 job'].seconds:.1f} s", flush=True)
    for jobs in sorted({1, svm["n_jobs"]}):
        name = f"precomputed, {jobs} job{'s' if jobs > 1 else ''}"
        start = time.process_time()
        results[name] = precomputed_search(
            X, y, grid, svm["folds"], svm["scoring"], jobs, svm["max_cache_mb"]
        )
        cpu[name] = time.process_time() - start
        print(f"{name} done: {results[name].seconds:.1f} s", flush=True)

    reference_name = next(iter(results))
    reference = results[reference_name]
    score_columns = [f"split{k}_test_score" for k in range(svm["folds"])] + ["mean_test_score"]
    print()
    print(
        f"{'search':<28} {'seconds':>9} {'speed-up':>9} {'CPU s':>8}  "
        f"best parameters, mean CV {svm['scoring']}, max |score diff|"
    )
    for name, result in results.items():
        difference = np.abs(
            result.cv_results[score_columns].to_numpy(float)
            - reference.cv_results[score_columns].to_numpy(float)
        ).max()
        print(
            f"{name:<28} {result.seconds:9.1f} {reference.seconds / result.seconds:8.2f}x "
            f"{cpu[name]:8.1f}  "
            f"{result.best_params}, {result.best_score:.5f}, {difference:.1e}"
        )
        if result.best_params != reference.best_params:
            print(f"  !! best parameters differ from {reference_name}")
    print()
    print(
        reference.cv_results[
            ["params", "mean_test_score", "rank_test_score", "mean_fit_time"]
        ].to_string(index=False)
    )


if __name__ == "__main__":
    main()
