"""Hand-made cohort and run folders in the formats of docs/architecture.md, for the report tests.

Predictions are synthetic (a noisy score per pathology, better with more training images and for
the fusion models); metrics.json values are computed with scikit-learn, as the probe stage does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    hamming_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

PATHOLOGIES = ["Atelectasis", "Effusion", "Hernia"]
MODELS = ["baseline_mlp", "two_branch_concat", "linear_probe"]
EPOCH_MODELS = {"baseline_mlp", "two_branch_concat", "weighted_sum"}
SKILL = {
    "baseline_mlp": 1.0,
    "two_branch_concat": 1.3,
    "weighted_sum": 1.2,
    "linear_probe": 0.8,
    "zero_shot": 0.4,
}


def write_cohort(
    results: Path, n_patients: int = 60, images_per_patient: int = 3, seed: int = 0
) -> pd.DataFrame:
    """index.parquet, index_counts.json and split.parquet under `results` (= results/{cohort})."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(n_patients):
        split = ("train", "train", "val", "test", "test")[patient % 5]
        for follow_up in range(images_per_patient):
            labels = {p: int(rng.random() < 0.25) for p in PATHOLOGIES}
            rows.append(
                {
                    "image_id": f"{patient:05d}_{follow_up:03d}.png",
                    "path": f"images/{patient:05d}_{follow_up:03d}.png",
                    "patient_id": str(patient),
                    "view": "PA",
                    "follow_up": follow_up,
                    "split": split,
                    **labels,
                }
            )
    frame = pd.DataFrame(rows)
    results.mkdir(parents=True, exist_ok=True)
    frame.drop(columns="split").to_parquet(results / "index.parquet", index=False)
    frame[["image_id", "patient_id", "split"]].to_parquet(results / "split.parquet", index=False)
    counts = {
        "listed": len(frame) + 7,
        "present": len(frame),
        "missing": 7,
        "unlisted_files": 0,
        "positives": {p: int(frame[p].sum()) for p in PATHOLOGIES},
        "no_finding": int((frame[PATHOLOGIES].sum(axis=1) == 0).sum()),
        "views": {"PA": len(frame)},
    }
    (results / "index_counts.json").write_text(json.dumps(counts))
    return frame


def _scores(truth: np.ndarray, skill: float, rng: np.random.Generator) -> np.ndarray:
    logits = skill * (2 * truth - 1) + rng.normal(0, 1.0, truth.shape)
    return np.round(1 / (1 + np.exp(-logits)), 4)


def _metric_rows(
    split: str, probs: np.ndarray, truth: np.ndarray, thresholds: np.ndarray
) -> list[dict]:
    rows = []
    for p, name in enumerate(PATHOLOGIES):
        defined = 0 < truth[:, p].sum() < len(truth)
        for metric, function in (
            ("auroc", roc_auc_score),
            ("average_precision", average_precision_score),
        ):
            value = float(function(truth[:, p], probs[:, p])) if defined else None
            for policy in ("t0.5", "tuned"):
                rows.append(
                    {
                        "split": split,
                        "policy": policy,
                        "metric": metric,
                        "pathology": name,
                        "value": value,
                    }
                )
    for metric, function in (
        ("auroc", roc_auc_score),
        ("average_precision", average_precision_score),
    ):
        values = [
            function(truth[:, p], probs[:, p])
            for p in range(truth.shape[1])
            if 0 < truth[:, p].sum() < len(truth)
        ]
        for policy in ("t0.5", "tuned"):
            rows.append(
                {
                    "split": split,
                    "policy": policy,
                    "metric": metric,
                    "pathology": "macro",
                    "value": float(np.mean(values)),
                }
            )
    policies = {
        "t0.5": probs >= 0.5,
        "tuned": probs >= thresholds,
        "all_negative": np.zeros_like(truth),
    }
    for policy, predicted in policies.items():
        rows.append(
            {
                "split": split,
                "policy": policy,
                "metric": "exact_match",
                "pathology": "macro",
                "value": float(accuracy_score(truth, predicted)),
            }
        )
        rows.append(
            {
                "split": split,
                "policy": policy,
                "metric": "hamming_loss",
                "pathology": "macro",
                "value": float(hamming_loss(truth, predicted)),
            }
        )
        per_class = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
        micro = precision_recall_fscore_support(truth, predicted, average="micro", zero_division=0)
        for i, metric in enumerate(("precision", "recall", "f1")):
            rows.append(
                {
                    "split": split,
                    "policy": policy,
                    "metric": metric,
                    "pathology": "macro",
                    "value": float(per_class[i].mean()),
                }
            )
            rows.append(
                {
                    "split": split,
                    "policy": policy,
                    "metric": metric,
                    "pathology": "micro",
                    "value": float(micro[i]),
                }
            )
            for p, name in enumerate(PATHOLOGIES):
                rows.append(
                    {
                        "split": split,
                        "policy": policy,
                        "metric": metric,
                        "pathology": name,
                        "value": float(per_class[i][p]),
                    }
                )
    return rows


def write_runs(
    results: Path,
    cohort: pd.DataFrame,
    encoders: tuple[str, ...] = ("enc_a", "enc_b"),
    models: tuple[str, ...] = tuple(MODELS),
    sizes: tuple[str, ...] = ("10", "all"),
    seeds: tuple[int, ...] = (0, 1),
) -> list[Path]:
    """One run folder per encoder x model x size x seed; returns the folders."""
    folders = []
    n_all = int((cohort["split"] == "train").sum())
    for e, encoder in enumerate(encoders):
        for model in models:
            for size in sizes:
                n_train = n_all if size == "all" else int(size)
                for seed in seeds:
                    rng = np.random.default_rng([e, len(model), n_train, seed])
                    skill = SKILL[model] * (1 + np.log10(n_train) / 2)
                    folder = results / "runs" / encoder / model / f"n{size}" / f"seed{seed}"
                    folder.mkdir(parents=True, exist_ok=True)
                    thresholds = np.round(rng.uniform(0.3, 0.6, len(PATHOLOGIES)), 3)
                    rows = []
                    for split in ("val", "test"):
                        part = cohort[cohort["split"] == split]
                        truth = part[PATHOLOGIES].to_numpy()
                        probs = _scores(truth, skill, rng)
                        predictions = pd.DataFrame({"image_id": part["image_id"].to_numpy()})
                        for p, name in enumerate(PATHOLOGIES):
                            predictions[f"prob_{name}"] = probs[:, p]
                            predictions[f"true_{name}"] = truth[:, p].astype("int8")
                        predictions.to_parquet(folder / f"predictions_{split}.parquet", index=False)
                        rows += _metric_rows(split, probs, truth, thresholds)
                    run = {
                        "cohort": "demo",
                        "encoder": encoder,
                        "model": model,
                        "n": size if size == "all" else int(size),
                        "seed": seed,
                        "n_train": n_train,
                        "n_val": int((cohort["split"] == "val").sum()),
                        "n_test": int((cohort["split"] == "test").sum()),
                        "epochs_run": 0,
                        "best_epoch": 0,
                        "train_seconds": 0.1,
                        "hyperparameters": {},
                    }
                    metrics = {
                        "run": run,
                        "thresholds": dict(zip(PATHOLOGIES, thresholds.tolist(), strict=True)),
                        "metrics": rows,
                    }
                    (folder / "metrics.json").write_text(json.dumps(metrics))
                    history = pd.DataFrame(columns=["epoch", "train_loss", "val_loss", "lr"])
                    if model in EPOCH_MODELS:
                        epochs = np.arange(1, 9)
                        history = pd.DataFrame(
                            {
                                "epoch": epochs,
                                "train_loss": 0.7 / epochs**0.5,
                                "val_loss": 0.6 / epochs**0.3 + 0.01 * epochs,
                                "lr": 1e-3 * 0.9**epochs,
                            }
                        )
                    history.to_csv(folder / "history.csv", index=False)
                    folders.append(folder)
    return folders


def write_sentiment(root: Path, dataset: str = "demo_reviews", model: str = "minilm") -> list[Path]:
    """results/sentiment/{dataset}/{svm,finetune}/{model}/metrics.json."""
    files = []
    for method, base in (("svm", 0.71), ("finetune", 0.78)):
        path = root / dataset / method / model / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        metrics = [
            {
                "split": split,
                "metric": metric,
                "value": round(base + 0.01 * i - 0.02 * (split == "test"), 3),
            }
            for split in ("validation", "test")
            for i, metric in enumerate(("accuracy", "precision", "recall", "f1"))
        ]
        path.write_text(
            json.dumps({"method": method, "model": model, "dataset": dataset, "metrics": metrics})
        )
        files.append(path)
    return files
