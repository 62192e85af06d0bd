"""Fine-tuning helpers (the Trainer run itself is exercised by the workflow test)."""

import importlib.util

import numpy as np
import pytest
from conftest import REPO

from probelab.config import load_config
from probelab.sentiment import SentimentDataError
from probelab.sentiment.finetune import check_report_to, compute_metrics, training_arguments
from probelab.sentiment.metrics import binary_metrics, metric_rows


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


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_report_to_an_integration_that_is_not_installed_is_refused():
    check_report_to(["none"])
    with pytest.raises(
        SentimentDataError, match=r"asks for 'wandb', but the Python package wandb is not installed"
    ):
        check_report_to(["wandb"])


def test_training_arguments_follow_the_config(tmp_path):
    params = load_config(REPO / "config.yaml")["sentiment"]["finetune"]
    args = training_arguments({**params, "max_steps": None}, str(tmp_path), [])
    assert args.max_steps == -1 and args.num_train_epochs == params["epochs"]
    assert args.per_device_train_batch_size == params["batch_size"]
    assert args.learning_rate == params["learning_rate"] and args.seed == params["seed"]
    # evaluation and checkpoints every epoch, so that the best epoch can be reloaded at the end
    assert args.eval_strategy == args.save_strategy == "epoch" and args.load_best_model_at_end
    assert args.metric_for_best_model == params["metric_for_best_model"]
    assert training_arguments({**params, "max_steps": 7}, str(tmp_path), []).max_steps == 7
