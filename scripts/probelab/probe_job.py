"""One train_probe job: its runs' inputs, run folders and metrics documents.

A job trains several runs of one encoder (every seed of one model and subset size, of one model,
or of every model: config key training.job_scope) in one process, so that importing torch and
reading the caches are paid once per job. Each run gets a folder (docs/architecture.md):
model.pt, history.csv and predictions_val.parquet as soon as it is fitted, then, once every run of
the job has frozen its model and thresholds, predictions_test.parquet and metrics.json. Test
labels are read only for that last step (probelab.probe). Pathologies a run cannot evaluate
(config training.min_positives) are warned about in the job log and listed with their reason in
metrics.json. Labels the index does not observe (NaN) are masked everywhere (probelab.masking).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.cache import read_image_cache, read_prompt_cache
from probelab.cohort import index_hash
from probelab.io import atomic_path, write_json, write_parquet, write_text
from probelab.linear import sigmoid
from probelab.masking import is_masked
from probelab.models import needs_prompts
from probelab.probe import (
    EvaluationScope,
    FrozenRun,
    LabelReader,
    Prompts,
    evaluation_scope,
    final_evaluation,
    fit_and_freeze,
)
from probelab.splits import read_split
from probelab.subsets import read_subset

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr"]


@dataclass(frozen=True)
class RunSpec:
    """One run of the job: model, subset size and seed, the subset file, the run folder."""

    model: str
    n: str
    seed: int
    subset: Path
    out_dir: Path


class FeatureTable:
    """Image id -> row of the cached features, for the images that were encoded."""

    def __init__(
        self, image_ids: np.ndarray, features: np.ndarray, failed_ids: Sequence[str], path: Path
    ) -> None:
        self.rows = pd.Index(image_ids)
        self.features = features
        self.failed = set(failed_ids)
        self.path = path

    def usable(self, image_ids: Sequence[str], what: str) -> list[str]:
        """`image_ids` minus the images the cache records as failed (with a warning).

        An image neither encoded nor failed means the cache does not cover this cohort.
        """
        kept = [i for i in image_ids if i not in self.failed]
        if len(kept) < len(image_ids):
            log.warning(
                "%s: %d image(s) skipped, they failed to decode when %s was built",
                what,
                len(image_ids) - len(kept),
                self.path,
            )
        absent = [i for i in kept if i not in self.rows]
        if absent:
            raise ValueError(
                f"image cache {self.path} has no features for image {absent[0]!r} of {what} "
                f"({len(absent)} in all); rebuild the cache."
            )
        return kept

    def take(self, image_ids: Sequence[str]) -> np.ndarray:
        return np.ascontiguousarray(
            self.features[self.rows.get_indexer(list(image_ids))], dtype=np.float32
        )


@dataclass(frozen=True)
class EvaluationImages:
    """What every run of the job shares: the train split, and the validation and test images
    with their features (and validation labels; test labels come only after freezing)."""

    train_split: set[str]
    val_ids: list[str]
    test_ids: list[str]
    features: dict[str, np.ndarray]  # "val" and "test"
    y_val: np.ndarray
    patients: dict[str, np.ndarray]  # "val" and "test": each image's patient


def train_probe(
    *,
    image_cache: Path,
    prompt_cache: Path | None,
    index: Path,
    split: Path,
    runs: Sequence[RunSpec],
    cohort: str,
    encoder: str,
    models: dict[str, dict[str, Any]],
    pathologies: list[str],
    training: dict[str, Any],
    threads: int,
    fingerprints: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train every run (its model's settings from `models`, the config's `models` section; one
    subset file and one output folder each) on `threads` CPU threads; return the metrics.json
    documents written. `fingerprints` ("images", "prompts"): what the caches must have been
    computed under (probelab.fingerprint); a cache built under anything else is refused."""
    fingerprints = fingerprints or {}
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    # NumPy's BLAS (scikit-learn) gets the job's threads too: on small matrices extra threads
    # only fight over the cores the other jobs use.
    with threadpool_limits(limits=threads):
        table = read_features(image_cache, index, encoder, fingerprints.get("images"))
        prompts = read_prompts(
            prompt_cache,
            runs,
            encoder,
            pathologies,
            table.features.shape[1],
            fingerprints.get("prompts"),
        )
        labels = LabelReader(Path(index), pathologies)
        images = read_evaluation_images(split, table, labels)
        frozen = fit_runs(
            runs,
            table,
            images,
            labels,
            prompts,
            encoder=encoder,
            models=models,
            training=training,
            pathologies=pathologies,
        )
        # Every model and threshold is fixed above; only now are the test labels read.
        return evaluate_on_test(
            runs, frozen, images, labels, cohort=cohort, encoder=encoder, pathologies=pathologies
        )


def read_features(
    image_cache: Path, index: Path, encoder: str, fingerprint: Any = None
) -> FeatureTable:
    """The image cache of `encoder`, refused unless it was built from this cohort index (and
    under `fingerprint`, when given)."""
    identity = pd.read_parquet(index, columns=["image_id", "path"])
    cache = read_image_cache(
        image_cache, encoder=encoder, index_hash=index_hash(identity), fingerprint=fingerprint
    )
    return FeatureTable(cache.image_ids, cache.features, cache.failed_ids, Path(image_cache))


def read_prompts(
    prompt_cache: Path | None,
    runs: Sequence[RunSpec],
    encoder: str,
    pathologies: list[str],
    dim: int,
    fingerprint: Any = None,
) -> Prompts | None:
    """The prompt vectors of `encoder` when a run's model needs them, else None."""
    prompt_models = [spec.model for spec in runs if needs_prompts(spec.model)]
    if not prompt_models:
        return None
    if prompt_cache is None:
        raise ValueError(
            f"model '{prompt_models[0]}' needs the prompt cache of encoder '{encoder}', "
            "but none was given."
        )
    loaded = read_prompt_cache(
        prompt_cache, encoder=encoder, pathologies=pathologies, dim=dim, fingerprint=fingerprint
    )
    return Prompts(loaded.per_pathology, loaded.mega_vector, loaded.logit_scale, loaded.logit_bias)


def read_evaluation_images(
    split: Path, table: FeatureTable, labels: LabelReader
) -> EvaluationImages:
    """The split file's validation and test images that have features, with the validation
    labels."""
    splits = read_split(split)
    for name in ("val", "test"):
        if not splits[name]:
            raise ValueError(
                f"split file {split} has no '{name}' images; "
                "probes need validation and test images."
            )
    val_ids = table.usable(splits["val"], "the val split")
    test_ids = table.usable(splits["test"], "the test split")
    return EvaluationImages(
        train_split=set(splits["train"]),
        val_ids=val_ids,
        test_ids=test_ids,
        features={"val": table.take(val_ids), "test": table.take(test_ids)},
        y_val=labels.labels(val_ids),
        patients={"val": labels.patients(val_ids), "test": labels.patients(test_ids)},
    )


def fit_runs(
    runs: Sequence[RunSpec],
    table: FeatureTable,
    images: EvaluationImages,
    labels: LabelReader,
    prompts: Prompts | None,
    *,
    encoder: str,
    models: dict[str, dict[str, Any]],
    training: dict[str, Any],
    pathologies: list[str],
) -> list[FrozenRun]:
    """Phase 1 of every run, one after the other: fit on its subset, freeze, and write model.pt,
    history.csv and predictions_val.parquet into its folder."""
    frozen = []
    for spec in runs:
        run_name = f"{encoder}/{spec.model}/n{spec.n}/seed{spec.seed}"
        train_ids = table.usable(
            read_subset(Path(spec.subset), images.train_split), f"subset {spec.subset}"
        )
        log.info(
            "%s: %d training, %d validation, %d test images",
            run_name,
            len(train_ids),
            len(images.val_ids),
            len(images.test_ids),
        )
        run = fit_and_freeze(
            spec.model,
            models[spec.model],
            training,
            {**images.features, "train": table.take(train_ids)},
            labels.labels(train_ids),
            images.y_val,
            seed=spec.seed,
            run_name=run_name,
            prompts=prompts,
            pathologies=pathologies,
            patients={"train": labels.patients(train_ids), "val": images.patients["val"]},
        )
        out = Path(spec.out_dir)
        _save_model(out / "model.pt", run)
        write_text(out / "history.csv", _history(run))
        write_parquet(
            out / "predictions_val.parquet",
            predictions_table(images.val_ids, run.val_logits, images.y_val, pathologies),
        )
        log.info("%s: fitted in %.1f s; thresholds frozen", run_name, run.train_seconds)
        frozen.append(run)
    return frozen


def evaluate_on_test(
    runs: Sequence[RunSpec],
    frozen: Sequence[FrozenRun],
    images: EvaluationImages,
    labels: LabelReader,
    *,
    cohort: str,
    encoder: str,
    pathologies: list[str],
) -> list[dict[str, Any]]:
    """Phase 2 of every run: read the test labels (the one time they are read), write each run's
    predictions_test.parquet and metrics.json, and return the metrics documents."""
    y_test = labels.test_labels(images.test_ids, frozen)
    documents = []
    for run, spec in zip(frozen, runs, strict=True):
        out = Path(spec.out_dir)
        write_parquet(
            out / "predictions_test.parquet",
            predictions_table(images.test_ids, run.test_logits, y_test, pathologies),
        )
        scope = evaluation_scope(run, images.y_val, y_test, pathologies, images.patients)
        for name, reason in scope.excluded.items():
            if name not in run.not_trained:  # those were warned about when fitting
                log.warning(
                    "%s/%s/n%s/seed%s: pathology %s is left out of evaluation: %s",
                    encoder,
                    spec.model,
                    spec.n,
                    spec.seed,
                    name,
                    reason,
                )
        document = {
            "run": _run_facts(spec, run, images, cohort, encoder),
            **_thresholds(run, pathologies),
            **_scope_facts(scope),
            "metrics": final_evaluation(run, images.y_val, y_test, pathologies, scope),
        }
        write_json(out / "metrics.json", document)
        documents.append(document)
    return documents


def _run_facts(
    spec: RunSpec, run: FrozenRun, images: EvaluationImages, cohort: str, encoder: str
) -> dict[str, Any]:
    """The `run` section of metrics.json."""
    return {
        "cohort": cohort,
        "encoder": encoder,
        "model": spec.model,
        "n": int(spec.n) if str(spec.n).isdigit() else str(spec.n),
        "seed": run.seed,
        "n_train": run.n_train,
        "n_val": len(images.val_ids),
        "n_test": len(images.test_ids),
        "epochs_run": len(run.history),
        "best_epoch": run.best_epoch,
        "train_seconds": round(run.train_seconds, 3),
        "min_positives": run.min_positives,
        "min_test_positives": run.min_test_positives,
        "hyperparameters": run.hparams,
    }


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _thresholds(run: FrozenRun, pathologies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The tuned thresholds as probabilities (for readers) and as logits (what decides: a label
    is predicted positive when logit >= its logit threshold); null for an untrained pathology."""
    logit = run.logit_thresholds
    return {
        "thresholds": {
            name: _json_number(value)
            for name, value in zip(pathologies, sigmoid(logit).tolist(), strict=True)
        },
        "logit_thresholds": {
            name: _json_number(value)
            for name, value in zip(pathologies, logit.tolist(), strict=True)
        },
    }


def _scope_facts(scope: EvaluationScope) -> dict[str, Any]:
    """Which pathologies every macro and pooled metric of the run averages over, the others with
    their reason, the positive patients per split they were judged on, and the positive images."""
    return {
        "evaluated_pathologies": scope.evaluated,
        "excluded_pathologies": scope.excluded,
        "positive_patients": scope.positive_patients,
        "positives": scope.positives,
    }


def _save_model(path: Path, run: FrozenRun) -> None:
    import torch

    state = {name: torch.from_numpy(np.array(value)) for name, value in run.state_dict.items()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"state_dict": state, "hparams": run.hparams}, tmp)


def predictions_table(
    image_ids: Sequence[str], logits: np.ndarray, truth: np.ndarray, pathologies: Sequence[str]
) -> pd.DataFrame:
    """image_id, then per pathology logit_ (float64, what metrics and thresholds use; NaN when
    the pathology was not trained), prob_ (its sigmoid, for readers) and true_: int8 when every
    image observes the label, else float32 with NaN where it is not observed (masked,
    probelab.masking), as the cohort index has it."""
    columns: dict[str, Any] = {"image_id": list(image_ids)}
    probs = sigmoid(logits)
    for k, name in enumerate(pathologies):
        columns[f"logit_{name}"] = logits[:, k].astype(np.float64)
        columns[f"prob_{name}"] = probs[:, k]
        label = truth[:, k]
        columns[f"true_{name}"] = (
            label.astype(np.float32) if is_masked(label) else label.astype(np.int8)
        )
    return pd.DataFrame(columns)


def _history(run: FrozenRun) -> str:
    return pd.DataFrame(run.history, columns=HISTORY_COLUMNS).to_csv(index=False)
