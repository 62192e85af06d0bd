"""Fine-tuning helpers, the validation-only grid choice and the experiment trackers."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from probelab.config import load_config
from probelab.sentiment import SentimentDataError
from probelab.sentiment.finetune import (
    check_report_to,
    compute_metrics,
    evaluations,
    grid_points,
    training_arguments,
)
from probelab.sentiment.metrics import binary_metrics, metric_rows

MINILM = "bundled:all-minilm-l6-v2"


class Prediction:
    def __init__(self, logits: np.ndarray, labels: np.ndarray) -> None:
        self.predictions, self.label_ids = logits, labels


def test_compute_metrics_takes_the_argmax_of_the_logits():
    logits = np.array([[2.0, -1.0], [0.1, 0.3], [-1.0, 1.0], [0.5, 0.2]])
    labels = np.array([0, 1, 0, 1])
    metrics = compute_metrics(Prediction(logits, labels))
    # predictions 0, 1, 1, 0: one true positive, one false positive, one false negative
    assert metrics == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_undefined_precision_is_zero_and_rows_follow_the_report_format():
    values = binary_metrics(np.array([0, 1, 1]), np.array([0, 0, 0]))
    assert (
        values["precision"] == 0.0
        and values["recall"] == 0.0
        and values["accuracy"] == pytest.approx(1 / 3)
    )
    rows = metric_rows("test", values)
    assert [row["metric"] for row in rows] == ["accuracy", "precision", "recall", "f1"]
    assert {row["split"] for row in rows} == {"test"}


def test_a_tracker_that_is_not_installed_is_refused_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch,
):
    check_report_to(["none"])
    # as if the optional extra were not installed, whatever this environment has
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    for tracker in ("wandb", "tensorboard"):
        with pytest.raises(SentimentDataError) as caught:
            check_report_to([tracker])
        assert str(caught.value) == (
            f"config key 'sentiment.finetune.report_to' asks for '{tracker}', but the Python "
            f"package {tracker} is not installed; install the optional extra with "
            f"`pip install 'probelab[tracking]'` or remove '{tracker}'."
        )


def test_training_arguments_follow_the_config(tmp_path):
    params = load_config(REPO / "config.yaml")["sentiment"]["finetune"]
    params = {**params, "seed": 3, "epochs": 2}  # a grid point's values and the cell's seed
    args = training_arguments({**params, "max_steps": None}, str(tmp_path), [])
    assert args.max_steps == -1 and args.num_train_epochs == params["epochs"]
    assert args.per_device_train_batch_size == params["batch_size"]
    assert args.learning_rate == params["learning_rate"] and args.seed == params["seed"]
    # evaluation and checkpoints every epoch, so that the best epoch can be reloaded at the end
    assert args.eval_strategy == args.save_strategy == "epoch" and args.load_best_model_at_end
    assert args.metric_for_best_model == params["metric_for_best_model"]
    assert training_arguments({**params, "max_steps": 7}, str(tmp_path), []).max_steps == 7
    # one evaluation in all: nothing to reload, so no checkpoint is written
    single = training_arguments(params, str(tmp_path), [], checkpoints=False)
    assert single.save_strategy == "no" and not single.load_best_model_at_end
    assert evaluations({**params, "epochs": 1}, 100) == 1 and evaluations(params, 100) == 2
    assert evaluations({**params, "max_steps": 3}, 100) == 1


def test_the_grid_falls_back_to_the_single_values():
    params = {"learning_rate": 1e-4, "epochs": 2, "grid": {"learning_rate": [1e-5, 3e-5]}}
    assert grid_points(params) == [
        {"learning_rate": 1e-5, "epochs": 2.0},
        {"learning_rate": 3e-5, "epochs": 2.0},
    ]
    assert grid_points({**params, "grid": {}}) == [{"learning_rate": 1e-4, "epochs": 2.0}]


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("wandb", "tensorboard")),
    reason="the optional extra probelab[tracking] is not installed",
)
def test_both_trackers_write_runs_holding_the_logged_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """One tiny fine-tuning cell (two grid points, two steps each) with report_to [wandb,
    tensorboard]: an offline W&B run and TensorBoard event files per grid point, each holding the
    training loss and the validation metrics recorded in metrics.json; the chosen grid point is
    the best on validation."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from probelab.sentiment.demo import make_demo_reviews
    from probelab.sentiment.finetune import run_finetune

    # the step sets these for its run; monkeypatch puts the test process's values back after
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "probelab-test")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "TENSORBOARD_LOGGING_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "unused"))
    config = load_config(REPO / "config.yaml")["sentiment"]
    make_demo_reviews(tmp_path / "data", {**config["demo"], "n_reviews": 40})
    params = {
        **config["finetune"],
        "grid": {"learning_rate": [1e-5, 1e-4], "epochs": [1]},
        "max_steps": 2,
        "batch_size": 8,
        "max_length": 16,
        "logging_steps": 1,
        "report_to": ["wandb", "tensorboard"],
    }
    out = tmp_path / "cell"
    result = run_finetune(
        config["data"], tmp_path / "data", "d", "minilm", MINILM, params, "16", 0, out, 1
    )
    assert result["n_train"] == 16 and len(result["grid"]) == 2
    scores = [point["validation"]["f1"] for point in result["grid"]]
    assert result["best_params"] == {
        k: result["grid"][int(np.argmax(scores))][k] for k in ("learning_rate", "epochs")
    }
    predictions = pd.read_csv(out / "predictions.csv")
    assert set(predictions["split"]) == {"test"} and len(predictions) == result["n_test"]

    validation = {
        f"minilm-n16-seed0-lr{point['learning_rate']:g}-ep1": point["validation"]
        for point in result["grid"]
    }
    # W&B: one offline run per grid point, named after it, whose history holds the metrics
    runs = {}
    for path in sorted((out / "logs").glob("wandb/offline-run-*/run-*.wandb")):
        name, logged = "", {}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                name = record.run.display_name
            elif kind == "history":
                for item in record.history.item:
                    logged[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        runs[name] = logged
    assert set(runs) == set(validation)
    for name, logged in runs.items():
        assert {"train/loss", "eval/accuracy", "eval/f1", "eval/loss"} <= set(logged)
        assert logged["eval/accuracy"] == pytest.approx(validation[name]["accuracy"])
    # TensorBoard: event files per grid point, read back with TensorBoard's own reader
    event_folders = sorted((out / "logs/tensorboard").iterdir())
    assert {folder.name for folder in event_folders} == set(validation)
    for folder in event_folders:
        assert list(folder.glob("events.out.tfevents.*"))
        events = EventAccumulator(str(folder))
        events.Reload()
        assert {"train/loss", "eval/accuracy", "eval/f1"} <= set(events.Tags()["scalars"])
        assert events.Scalars("eval/accuracy")[-1].value == pytest.approx(
            validation[folder.name]["accuracy"], abs=1e-6
        )


def wandb_records(path: Path):
    """The protobuf records of an offline W&B run file (run-*.wandb): a LevelDB-style log of
    32 KiB blocks after a 7-byte file header, each record chunk with a 7-byte header (checksum,
    length, type: 1 full, 2 first, 3 middle, 4 last). wandb 0.31 ships no Python reader, and
    offline runs write no wandb-summary.json."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    offset, block, chunks = 7, 32768, b""
    while offset + 7 <= len(data):
        room = block - offset % block
        _, length, kind = (
            struct.unpack("<IHB", data[offset : offset + 7]) if room >= 7 else (0, 0, 0)
        )
        if room < 7 or (length == 0 and kind == 0):
            offset += room  # the rest of the block is padding
            continue
        chunks += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record
