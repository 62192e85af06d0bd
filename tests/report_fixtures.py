"""Hand-made cohort and run folders in the formats of docs/architecture.md, for the report tests.

Predictions are synthetic (a noisy logit per pathology, better with more training images and for
the fusion models); metrics.json values are computed with scikit-learn, as the probe stage does:
rank metrics on the logits, decisions as logit >= logit threshold, every macro over the run's
evaluated pathologies (`write_runs(legacy=True)`: the format written before logits).
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


def _logits(truth: np.ndarray, skill: float, rng: np.random.Generator) -> np.ndarray:
    return skill * (2 * truth - 1) + rng.normal(0, 1.0, truth.shape)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logits))


def _macro(values: list[float | None], columns: list[int]) -> float | None:
    chosen = [values[k] for k in columns]
    return None if not chosen or any(v is None for v in chosen) else float(np.mean(chosen))


def _metric_rows(
    split: str,
    scores: np.ndarray,
    truth: np.ndarray,
    decisions: dict[str, np.ndarray],
    ranking_columns: list[int],
    decision_columns: list[int],
) -> list[dict]:
    """metrics.json rows: AUROC / AP of `ranking_columns` and the thresholded metrics of
    `decision_columns` (every macro over exactly those), per policy -> decisions."""

    def row(policy, metric, pathology, value):
        value = None if value is None else float(value)
        return {
            "split": split,
            "policy": policy,
            "metric": metric,
            "pathology": pathology,
            "value": value,
        }

    rows = []
    for metric, function in (
        ("auroc", roc_auc_score),
        ("average_precision", average_precision_score),
    ):
        values = [
            float(function(truth[:, p], scores[:, p]))
            if p in ranking_columns and 0 < truth[:, p].sum() < len(truth)
            else None
            for p in range(len(PATHOLOGIES))
        ]
        for policy in ("t0.5", "tuned"):
            for p, name in enumerate(PATHOLOGIES):
                rows.append(row(policy, metric, name, values[p]))
            rows.append(row(policy, metric, "macro", _macro(values, ranking_columns)))
    columns = decision_columns
    for policy, predicted in decisions.items():
        t, d = truth[:, columns], predicted[:, columns]
        rows.append(row(policy, "exact_match", "macro", accuracy_score(t, d)))
        rows.append(row(policy, "hamming_loss", "macro", hamming_loss(t, d)))
        per_class = precision_recall_fscore_support(t, d, average=None, zero_division=0)
        micro = precision_recall_fscore_support(t, d, average="micro", zero_division=0)
        for i, metric in enumerate(("precision", "recall", "f1")):
            rows.append(row(policy, metric, "macro", per_class[i].mean()))
            rows.append(row(policy, metric, "micro", micro[i]))
            for p, name in enumerate(PATHOLOGIES):
                value = per_class[i][columns.index(p)] if p in columns else None
                rows.append(row(policy, metric, name, value))
    return rows


def write_runs(
    results: Path,
    cohort: pd.DataFrame,
    encoders: tuple[str, ...] = ("enc_a", "enc_b"),
    models: tuple[str, ...] = tuple(MODELS),
    sizes: tuple[str, ...] = ("10", "all"),
    seeds: tuple[int, ...] = (0, 1),
    legacy: bool = False,
    evaluated: tuple[str, ...] | None = None,
    seed_skill: dict[int, float] | None = None,
) -> list[Path]:
    """One run folder per encoder x model x size x seed; returns the folders.

    The runs follow the current contract: predictions carry `logit_<p>` (raw scores), `prob_<p>`
    (their sigmoid, rounded to 4 decimals so that probabilities tie as saturated ones do) and
    `true_<p>`; metrics.json has probability and logit thresholds and the evaluated pathologies
    (`evaluated`, default all), and its metrics are computed on the logits, every macro over the
    evaluated pathologies. `legacy=True` writes runs as before logits: probabilities only, rank
    metrics on them, macro AUROC / AP over the pathologies defined in the split and thresholded
    metrics over all. `seed_skill` multiplies a seed's skill (seeds that differ a lot)."""
    folders = []
    n_all = int((cohort["split"] == "train").sum())
    evaluated = list(PATHOLOGIES if evaluated is None else evaluated)
    evaluated_columns = [PATHOLOGIES.index(p) for p in evaluated]
    for e, encoder in enumerate(encoders):
        for model in models:
            for size in sizes:
                n_train = n_all if size == "all" else int(size)
                for seed in seeds:
                    rng = np.random.default_rng([e, len(model), n_train, seed])
                    skill = SKILL[model] * (1 + np.log10(n_train) / 2)
                    skill *= (seed_skill or {}).get(seed, 1.0)
                    folder = results / "runs" / encoder / model / f"n{size}" / f"seed{seed}"
                    folder.mkdir(parents=True, exist_ok=True)
                    thresholds = np.round(rng.uniform(0.3, 0.6, len(PATHOLOGIES)), 3)
                    logit_thresholds = np.log(thresholds / (1 - thresholds))
                    rows = []
                    for split in ("val", "test"):
                        part = cohort[cohort["split"] == split]
                        truth = part[PATHOLOGIES].to_numpy()
                        logits = _logits(truth, skill, rng)
                        probs = np.round(_sigmoid(logits), 4)
                        predictions = pd.DataFrame({"image_id": part["image_id"].to_numpy()})
                        for p, name in enumerate(PATHOLOGIES):
                            if not legacy:
                                predictions[f"logit_{name}"] = logits[:, p]
                            predictions[f"prob_{name}"] = probs[:, p]
                            predictions[f"true_{name}"] = truth[:, p].astype("int8")
                        predictions.to_parquet(folder / f"predictions_{split}.parquet", index=False)
                        if legacy:
                            scores, decide = probs, thresholds
                            ranking = [
                                p
                                for p in range(len(PATHOLOGIES))
                                if 0 < truth[:, p].sum() < len(truth)
                            ]
                            deciding = list(range(len(PATHOLOGIES)))
                            half = 0.5
                        else:
                            scores, decide = logits, logit_thresholds
                            ranking = deciding = evaluated_columns
                            half = 0.0
                        decisions = {
                            "t0.5": scores >= half,
                            "tuned": scores >= decide,
                            "all_negative": np.zeros_like(truth),
                        }
                        rows += _metric_rows(split, scores, truth, decisions, ranking, deciding)
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
                    if not legacy:
                        metrics["logit_thresholds"] = dict(
                            zip(PATHOLOGIES, logit_thresholds.tolist(), strict=True)
                        )
                        metrics["evaluated_pathologies"] = evaluated
                        metrics["excluded_pathologies"] = {
                            p: "excluded by the test" for p in PATHOLOGIES if p not in evaluated
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
