"""The sentiment track through real snakemake on a tiny demo config (fine-tuning two steps)."""

import json
import re
from pathlib import Path

import h5py
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
        "inspect": {"n_samples": 2},
        "features": {"max_length": 32, "batch_size": 16, "threads": 1},
        "svm": {"C": [1], "kernel": ["linear", "rbf"], "folds": 2, "n_jobs": 1},
        "finetune": {
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


@pytest.mark.workflow
def test_sentiment_track_runs_end_to_end(tmp_path: Path):
    result = run_snakemake(tmp_path, "sentiment", configfile=tiny_config(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results" / "sentiment" / DATASET

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

    with h5py.File(out / "features/minilm.h5") as h5:
        assert h5["train/features"].shape == (36, 384)
        assert h5.attrs["pooling"] == "cls" and h5.attrs["max_length"] == 32

    rows = {"svm": None, "finetune": None}
    for method in rows:
        metrics = json.loads((out / method / "minilm/metrics.json").read_text())
        assert (
            metrics["method"] == method
            and metrics["model"] == "minilm"
            and metrics["dataset"] == DATASET
        )
        assert {(r["split"], r["metric"]) for r in metrics["metrics"]} == {
            (s, m)
            for s in ("validation", "test")
            for m in ("accuracy", "precision", "recall", "f1")
        }
        rows[method] = metrics
    assert (
        len((out / "svm/minilm/cv_results.csv").read_text().splitlines()) == 3
    )  # header + 2 candidates
    assert (
        rows["finetune"]["steps_run"] == 2 and rows["finetune"]["best_checkpoint"] == "checkpoint-2"
    )
    assert (out / "finetune/minilm/model/config.json").is_file()
    config = json.loads((out / "finetune/minilm/model/config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    history = json.loads((out / "finetune/minilm/log_history.json").read_text())
    assert any("eval_accuracy" in entry for entry in history)
    assert not list((out / "finetune/minilm").glob(".checkpoints*"))
    assert "step 2/2" in (out / "logs/finetune/minilm.log").read_text()  # progress reaches the log

    again = run_snakemake(tmp_path, "sentiment", "-n", configfile=tiny_config(tmp_path))
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
