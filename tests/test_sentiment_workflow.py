"""The sentiment track through real snakemake on a tiny demo matrix (2 sizes x 2 seeds, both
poolings, fine-tuning two steps per grid point)."""

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake

DATASET = "tiny_reviews"


def tiny_config(tmp_path: Path, **sentiment: object) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["sentiment"] = {
        "enabled": True,
        "dataset": DATASET,
        "data": {"source": "demo"},
        "demo": {"n_reviews": 60, "seed": 1},
        "encoders": [{"name": "minilm", "model": "bundled:all-minilm-l6-v2"}],
        "matrix": {"sizes": [16, "all"], "seeds": [0, 1]},
        "inspect": {"n_samples": 2},
        "features": {"pooling": ["cls", "mean"], "max_length": 32, "batch_size": 16, "threads": 1},
        "svm": {"C": [1], "kernel": ["linear", "rbf"], "folds": 2, "n_jobs": 1},
        "logreg": {"C": [0.1, 1]},
        "finetune": {
            "grid": {"learning_rate": [5e-5, 1e-4], "epochs": [1]},
            "max_steps": 2,
            "batch_size": 8,
            "eval_batch_size": 32,
            "max_length": 32,
            "logging_steps": 1,
            "threads": 1,
        },
        **sentiment,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


CELLS = [(n, seed) for n in ("16", "all") for seed in (0, 1)]
SPLIT_METRICS = {
    (s, m) for s in ("validation", "test") for m in ("accuracy", "precision", "recall", "f1")
}


@pytest.mark.workflow
def test_sentiment_matrix_runs_end_to_end(tmp_path: Path):
    """2 sizes x 2 seeds x (SVM and logistic regression on [CLS] and mean features, and
    fine-tuning with a 2-point grid), then the report's sentiment tables."""
    # the report's tables (the figure and summary section are drawn from them in
    # tests/test_sentiment_matrix.py)
    targets = ("sentiment", "aggregate_sentiment")
    result = run_snakemake(tmp_path, *targets, configfile=tiny_config(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results" / "sentiment" / DATASET
    # features are encoded once per encoder (one pass, pooled both ways), never per cell
    assert len(re.findall(r"rule sentiment_text_features:", result.stdout + result.stderr)) == 1
    assert len(re.findall(r"rule sentiment_finetune:", result.stdout + result.stderr)) == 4

    explore = json.loads((out / "explore/explore.json").read_text())
    assert explore["splits"]["train"]["n"] == 36 and explore["splits"]["test"]["n"] == 12
    assert set(explore["splits"]["validation"]["labels"]) == {"negative", "positive"}
    assert explore["splits"]["train"]["tokens"]["minilm"]["max"] > 5
    assert (out / "explore/lengths.png").stat().st_size > 1000

    inspect = json.loads((out / "inspect/minilm.json").read_text())
    assert len(inspect["samples"]) == 2 and inspect["samples"][0]["tokens"][0] == "[CLS]"
    assert (
        inspect["samples"][0]["cls_size"] == 384
        and inspect["batch"]["last_hidden_state_shape"][2] == 384
    )
    assert inspect["batch"]["hidden_states"] == 7  # embeddings + 6 layers

    caches = {}
    for pooling in ("cls", "mean"):
        with h5py.File(out / f"features/minilm/{pooling}.h5") as h5:
            assert h5["train/features"].shape == (36, 384)
            assert h5.attrs["pooling"] == pooling and h5.attrs["max_length"] == 32
            caches[pooling] = h5["train/features"][()]
    assert not np.allclose(caches["cls"], caches["mean"])

    subsets = {}
    for method, pooling in [(m, p) for m in ("svm", "logreg") for p in ("cls", "mean")] + [
        ("finetune", None)
    ]:
        folder = out / method / "minilm" / (pooling or "")
        for n, seed in CELLS:
            metrics = json.loads((folder / f"n{n}/seed{seed}/metrics.json").read_text())
            assert (metrics["method"], metrics["model"], metrics["dataset"]) == (
                method,
                "minilm",
                DATASET,
            )
            assert (metrics["n"], metrics["seed"]) == (n, seed)
            assert metrics["n_train"] == (16 if n == "16" else 36)
            assert {(r["split"], r["metric"]) for r in metrics["metrics"]} == SPLIT_METRICS
            subsets.setdefault((n, seed), set()).add(metrics["subset"])
            if method != "svm":
                # chosen on validation only: the grid point with the best validation score
                key = "f1" if method == "finetune" else "accuracy"
                scores = [point["validation"][key] for point in metrics["grid"]]
                chosen = metrics["grid"][int(np.argmax(scores))]
                assert all(metrics["best_params"][k] == chosen[k] for k in metrics["best_params"])
    # every method and pooling trained on the same rows in a cell; seeds draw other rows
    assert all(len(ids) == 1 for ids in subsets.values())
    assert subsets[("16", 0)] != subsets[("16", 1)]
    assert subsets[("all", 0)] == subsets[("all", 1)]

    cell = out / "finetune/minilm/n16/seed1"
    finetune = json.loads((cell / "metrics.json").read_text())
    assert len(finetune["grid"]) == 2 and finetune["steps_run"] == 2
    assert [p["learning_rate"] for p in finetune["grid"]] == [5e-5, 1e-4]
    history = json.loads((cell / "log_history.json").read_text())
    assert any("eval_accuracy" in entry for entry in history)
    assert not list(cell.glob(".checkpoints*")) and not (cell / "model").exists()
    log = (out / "logs/finetune/minilm/n16/seed1.log").read_text()
    assert "step 2/2" in log and "chosen on validation f1" in log

    report = tmp_path / "results" / yaml.safe_load((REPO / "config.yaml").read_text())["cohort"]
    by_setting = pd.read_csv(report / "report/sentiment.csv", dtype={"n": str})
    settings = set(zip(by_setting["method"], by_setting["pooling"], strict=True))
    assert settings == {
        ("svm", "cls"),
        ("svm", "mean"),
        ("logreg", "cls"),
        ("logreg", "mean"),
        ("finetune", "head"),
    }
    assert set(by_setting["n"]) == {"16", "all"} and (by_setting["n_seeds"] == 2).all()
    comparisons = pd.read_csv(report / "report/sentiment_comparisons.csv", dtype={"n": str})
    assert len(comparisons) == 4 * 2 * 2  # 4 settings vs the reference x 2 sizes x 2 metrics

    again = run_snakemake(tmp_path, *targets, "-n", configfile=tiny_config(tmp_path))
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
def test_disabled_sentiment_target_is_empty(tmp_path: Path):
    result = run_snakemake(
        tmp_path, "sentiment", "-n", configfile=tiny_config(tmp_path, enabled=False)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not re.search(r"rule sentiment_\w+:", result.stdout + result.stderr)


@pytest.mark.workflow
def test_workflow_with_the_sentiment_rules_lints_clean(tmp_path: Path):
    # the demo source, so that every sentiment rule (sentiment_demo_data too) is defined
    result = run_snakemake(tmp_path, "--lint", configfile=tiny_config(tmp_path))
    lint = result.stdout + result.stderr
    # snakemake --lint exits 1 after printing "Lints for rule ..." or "Lints for snakefile ..."
    # blocks; it prints the congratulation only when it found nothing
    assert result.returncode == 0, lint[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in lint, lint[-3000:]
    assert "Lints for" not in lint, lint[-3000:]
