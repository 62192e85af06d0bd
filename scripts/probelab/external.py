"""External test sets: every frozen run evaluated on another cohort, without retraining or
re-tuning.

An external cohort (config key `external.{name}`) has its own index and image cache, built by the
same code as the training cohort's. Rule evaluate_external loads each run's model.pt, scores the
external images with it, and writes a run folder in the training cohort's layout under
results/{cohort}/external/{name}/runs/: predictions_test.parquet (all external images are its
test split) and metrics.json with the run's facts and its validation-tuned thresholds, copied
unchanged. The patient bootstrap then runs on those folders exactly as on the internal ones, so
internal and external intervals are computed the same way (docs/report.md, "External test sets").

A pathology the external cohort does not label has NaN truth there (masked, probelab.masking) and
is listed in metrics.json's excluded_pathologies with that reason; one it labels but with too few
positive patients (training.min_test_positives, the test side of the evaluation rule) or no
negative patient likewise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.io import write_json, write_parquet
from probelab.linear import LinearMap
from probelab.masking import positives
from probelab.metrics import DEFAULT_LOGIT_THRESHOLD, evaluate, label_counts
from probelab.probe_job import predictions_table, read_features

log = logging.getLogger(__name__)

NOT_LABELLED = "not labelled in external cohort {name}"


@dataclass(frozen=True)
class ExternalRun:
    """A frozen run of the training cohort and the folder of its external evaluation."""

    run_dir: Path
    out_dir: Path


def frozen_scorer(model_pt: Path, pathologies: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """features (N x D) -> logits (N x P, one column per configured pathology; NaN for one the
    run did not train), from a run's model.pt alone."""
    import torch

    saved = torch.load(model_pt, weights_only=True)
    state = {name: value.numpy() for name, value in saved["state_dict"].items()}
    hparams = saved["hparams"]
    model = hparams["model"]
    trained = hparams.get("trained_pathologies", list(pathologies))
    columns = [list(pathologies).index(name) for name in trained]
    if "weight" in state and "scale" in state:  # linear_probe, zero_shot, text_init_linear
        linear = LinearMap(
            state["weight"],
            state["bias"],
            state["mean"],
            state["scale"],
            unit_inputs=bool(hparams.get("unit_inputs", False)),
        )
        score = linear.logits
    else:
        from probelab.heads import build_head
        from probelab.training import predict_logits

        buffer = state.get("mega_vector")
        mega = torch.zeros(buffer.shape[-1]) if buffer is not None else None
        head = build_head(model, hparams["image_dim"], hparams["n_outputs"], hparams, mega)
        head.load_state_dict(saved["state_dict"])
        head.eval()

        def score(features: np.ndarray) -> np.ndarray:
            tensor = torch.from_numpy(np.array(features, dtype=np.float32))
            return predict_logits(head, tensor, 4096).double().numpy()

    def scorer(features: np.ndarray) -> np.ndarray:
        logits = np.full((features.shape[0], len(pathologies)), np.nan)
        logits[:, columns] = score(features)
        return logits

    return scorer


def external_scope(
    truth: np.ndarray,
    pathologies: Sequence[str],
    labelled: Sequence[str],
    internal: dict[str, Any],
    min_positives: int,
    name: str,
    patients: np.ndarray | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The pathologies an external evaluation covers: trained by the run, labelled by the external
    cohort, with at least min_positives positive and one negative external patient (`patients`:
    each row's patient; None counts images)."""
    excluded: dict[str, str] = {}
    not_trained = {
        p: reason
        for p, reason in internal.get("excluded_pathologies", {}).items()
        if reason.endswith("not trained")
    }
    pos, neg = label_counts(truth, patients)
    for k, pathology in enumerate(pathologies):
        if pathology not in labelled:
            excluded[pathology] = NOT_LABELLED.format(name=name)
        elif pathology in not_trained:
            excluded[pathology] = not_trained[pathology]
        elif pos[k] < min_positives or neg[k] < 1:
            excluded[pathology] = (
                f"{int(pos[k])} positive and {int(neg[k])} negative patients in external cohort "
                f"{name} (needs {min_positives} positive)"
            )
    return [p for p in pathologies if p not in excluded], excluded


def evaluate_external(
    *,
    name: str,
    encoder: str,
    image_cache: Path,
    fingerprint: dict[str, Any] | None,
    index: Path,
    runs: Sequence[ExternalRun],
    pathologies: list[str],
    labelled: list[str],
    min_positives: int,
) -> None:
    """Score every external image with every run's frozen model; write the external run
    folders (predictions_test.parquet, metrics.json)."""
    features = read_features(image_cache, index, encoder, fingerprint)
    table_index = pd.read_parquet(index)
    image_ids = features.usable(sorted(table_index["image_id"]), f"external cohort {name}")
    rows = table_index.set_index("image_id").loc[image_ids]
    truth = np.column_stack(
        [
            rows[p].to_numpy(dtype=np.float64) if p in labelled else np.full(len(rows), np.nan)
            for p in pathologies
        ]
    )
    x = features.take(image_ids)
    for run in runs:
        internal = json.loads((run.run_dir / "metrics.json").read_text())
        logits = frozen_scorer(run.run_dir / "model.pt", pathologies)(x)
        evaluated, excluded = external_scope(
            truth,
            pathologies,
            labelled,
            internal,
            min_positives,
            name,
            rows["patient_id"].astype(str).to_numpy(),
        )
        write_parquet(
            run.out_dir / "predictions_test.parquet",
            predictions_table(image_ids, logits, truth, pathologies),
        )
        write_json(
            run.out_dir / "metrics.json",
            {
                "run": {**internal["run"], "n_test": len(image_ids), "external": name},
                "thresholds": internal["thresholds"],
                "logit_thresholds": internal["logit_thresholds"],
                "evaluated_pathologies": evaluated,
                "excluded_pathologies": excluded,
                "metrics": evaluate(
                    "test",
                    truth,
                    logits,
                    {
                        "t0.5": DEFAULT_LOGIT_THRESHOLD,
                        "tuned": _logit_thresholds(internal, pathologies),
                    },
                    pathologies,
                    evaluated,
                ),
                "positives": {
                    "test": dict(
                        zip(pathologies, map(int, positives(truth).sum(axis=0)), strict=True)
                    )
                },
            },
        )
        log.info(
            "%s: %d of %d pathologies evaluated on %s",
            run.run_dir,
            len(evaluated),
            len(pathologies),
            name,
        )


def _logit_thresholds(internal: dict[str, Any], pathologies: Sequence[str]) -> np.ndarray:
    """The run's validation-tuned logit thresholds (NaN for an untrained pathology)."""
    values = internal["logit_thresholds"]
    return np.array([np.nan if values.get(p) is None else float(values[p]) for p in pathologies])
