"""Train probe models on one encoder's cached features: the runs of one train_probe job (every
seed of one model and subset size, of one model, or of every model: config key training.job_scope).

Writes one run folder per model x size x seed (docs/architecture.md): model.pt, history.csv,
predictions_val.parquet, then, once every run's model and thresholds are frozen,
predictions_test.parquet and metrics.json. Test labels are read only for that last step.
The runs share one process so that importing torch and reading the caches are paid once per job.
"""

# No `from __future__ import annotations`: Snakemake puts its preamble above the script.
import argparse
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
from probelab.models import needs_prompts
from probelab.probe import FrozenRun, LabelReader, Prompts, final_evaluation, fit_and_freeze

log = logging.getLogger("train_probe")

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
                f"image cache {self.path} has no features for image {absent[0]!r} of {what} ({len(absent)} in all); rebuild the cache."
            )
        return kept

    def take(self, image_ids: Sequence[str]) -> np.ndarray:
        return np.ascontiguousarray(
            self.features[self.rows.get_indexer(list(image_ids))], dtype=np.float32
        )


def read_subset(path: Path, train_ids: set[str]) -> list[str]:
    """The training image ids of a subset file, refusing an empty file or an id outside the train split."""
    ids = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(
            f"subset file {path} lists no image ids; expected one training image id per line."
        )
    outside = [i for i in ids if i not in train_ids]
    if outside:
        raise ValueError(
            f"subset file {path}: image {outside[0]!r} is not in the train split ({len(outside)} such ids); rebuild the subsets."
        )
    return ids


def read_split(path: Path) -> dict[str, list[str]]:
    table = pd.read_parquet(path, columns=["image_id", "split"])
    return {
        name: table.loc[table["split"] == name, "image_id"].astype(str).tolist()
        for name in ("train", "val", "test")
    }


def _save_model(path: Path, run: FrozenRun) -> None:
    import torch

    state = {name: torch.from_numpy(np.array(value)) for name, value in run.state_dict.items()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"state_dict": state, "hparams": run.hparams}, tmp)


def _predictions(
    image_ids: Sequence[str], probs: np.ndarray, truth: np.ndarray, pathologies: Sequence[str]
) -> pd.DataFrame:
    columns: dict[str, Any] = {"image_id": list(image_ids)}
    for k, name in enumerate(pathologies):
        columns[f"prob_{name}"] = probs[:, k]
        columns[f"true_{name}"] = truth[:, k].astype(np.int8)
    return pd.DataFrame(columns)


def _history(run: FrozenRun) -> str:
    return pd.DataFrame(run.history, columns=HISTORY_COLUMNS).to_csv(index=False)


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
) -> list[dict[str, Any]]:
    """Train every run (its model's settings from `models`, the config's `models` section; one
    subset file and one output folder each); return the metrics.json documents written."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(training["threads"])
    # NumPy's BLAS (scikit-learn) gets the job's threads too: on small matrices extra threads
    # only fight over the cores the other jobs use.
    with threadpool_limits(limits=training["threads"]):
        identity = pd.read_parquet(index, columns=["image_id", "path"])
        cache = read_image_cache(image_cache, encoder=encoder, index_hash=index_hash(identity))
        table = FeatureTable(cache.image_ids, cache.features, cache.failed_ids, Path(image_cache))
        prompts = None
        prompt_models = [spec.model for spec in runs if needs_prompts(spec.model)]
        if prompt_models:
            if prompt_cache is None:
                raise ValueError(
                    f"model '{prompt_models[0]}' needs the prompt cache of encoder '{encoder}', but none was given."
                )
            loaded = read_prompt_cache(
                prompt_cache, encoder=encoder, pathologies=pathologies, dim=cache.features.shape[1]
            )
            prompts = Prompts(
                loaded.per_pathology, loaded.mega_vector, loaded.logit_scale, loaded.logit_bias
            )

        splits = read_split(split)
        for name in ("val", "test"):
            if not splits[name]:
                raise ValueError(
                    f"split file {split} has no '{name}' images; probes need validation and test images."
                )
        val_ids = table.usable(splits["val"], "the val split")
        test_ids = table.usable(splits["test"], "the test split")
        features = {"val": table.take(val_ids), "test": table.take(test_ids)}
        labels = LabelReader(Path(index), pathologies)
        y_val = labels.labels(val_ids)
        train_split = set(splits["train"])

        frozen: list[FrozenRun] = []
        for spec in runs:
            run_name = f"{encoder}/{spec.model}/n{spec.n}/seed{spec.seed}"
            train_ids = table.usable(
                read_subset(Path(spec.subset), train_split), f"subset {spec.subset}"
            )
            log.info(
                "%s: %d training, %d validation, %d test images",
                run_name,
                len(train_ids),
                len(val_ids),
                len(test_ids),
            )
            run = fit_and_freeze(
                spec.model,
                models[spec.model],
                training,
                {**features, "train": table.take(train_ids)},
                labels.labels(train_ids),
                y_val,
                seed=spec.seed,
                run_name=run_name,
                prompts=prompts,
            )
            out = Path(spec.out_dir)
            _save_model(out / "model.pt", run)
            write_text(out / "history.csv", _history(run))
            write_parquet(
                out / "predictions_val.parquet",
                _predictions(val_ids, run.val_probs, y_val, pathologies),
            )
            log.info("%s: fitted in %.1f s; thresholds frozen", run_name, run.train_seconds)
            frozen.append(run)

        # Every model and threshold is fixed above; only now are the test labels read.
        y_test = labels.test_labels(test_ids, frozen)
        documents = []
        for run, spec in zip(frozen, runs, strict=True):
            out = Path(spec.out_dir)
            write_parquet(
                out / "predictions_test.parquet",
                _predictions(test_ids, run.test_probs, y_test, pathologies),
            )
            document = {
                "run": {
                    "cohort": cohort,
                    "encoder": encoder,
                    "model": spec.model,
                    "n": int(spec.n) if str(spec.n).isdigit() else str(spec.n),
                    "seed": run.seed,
                    "n_train": run.n_train,
                    "n_val": len(val_ids),
                    "n_test": len(test_ids),
                    "epochs_run": len(run.history),
                    "best_epoch": run.best_epoch,
                    "train_seconds": round(run.train_seconds, 3),
                    "hyperparameters": run.hparams,
                },
                "thresholds": dict(zip(pathologies, run.thresholds.tolist(), strict=True)),
                "metrics": final_evaluation(run, y_val, y_test, pathologies),
            }
            write_json(out / "metrics.json", document)
            documents.append(document)
        return documents


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", required=True, help="subset size or 'all'")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--image-cache", type=Path, required=True)
    parser.add_argument("--prompt-cache", type=Path, default=None)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument(
        "--subsets", type=Path, nargs="+", required=True, help="one subset file per seed"
    )
    parser.add_argument(
        "--out-dirs", type=Path, nargs="+", required=True, help="one run folder per seed"
    )
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    if args.model not in config["models"]:
        parser.error(f"model '{args.model}' is not configured under 'models' in {args.config}.")
    if not len(args.seeds) == len(args.subsets) == len(args.out_dirs):
        parser.error("give one subset file and one output folder per seed.")
    train_probe(
        image_cache=args.image_cache,
        prompt_cache=args.prompt_cache,
        index=args.index,
        split=args.split,
        runs=[
            RunSpec(args.model, args.n, seed, subset, out)
            for seed, subset, out in zip(args.seeds, args.subsets, args.out_dirs, strict=True)
        ],
        cohort=config["cohort"],
        encoder=args.encoder,
        models=config["models"],
        pathologies=config["pathologies"],
        training=config["training"],
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    train_probe(
        image_cache=Path(snakemake.input.images),
        prompt_cache=Path(snakemake.input.prompts[0]) if snakemake.input.prompts else None,
        index=Path(snakemake.input.index),
        split=Path(snakemake.input.split),
        runs=[
            RunSpec(r["model"], str(r["n"]), int(r["seed"]), Path(r["subset"]), Path(r["out_dir"]))
            for r in snakemake.params.runs
        ],
        cohort=snakemake.params.cohort,
        encoder=snakemake.wildcards.encoder,
        models=snakemake.params.models,
        pathologies=snakemake.params.pathologies,
        training=snakemake.params.training,
    )
elif __name__ == "__main__":
    main()
