"""Binary classification metrics and the metrics-JSON rows shared by the svm and finetune steps
(format: docs/architecture.md, "results/sentiment/{dataset}/...")."""

from __future__ import annotations

from typing import Any

import numpy as np

METRICS = ("accuracy", "precision", "recall", "f1")


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, and precision / recall / F1 of the positive class (label 1); 0 where undefined."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="binary", pos_label=1, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def metric_rows(split: str, values: dict[str, float]) -> list[dict[str, Any]]:
    return [{"split": split, "metric": name, "value": float(values[name])} for name in METRICS]
