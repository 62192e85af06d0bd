"""Fine-tuning the encoder with a classification head through the Hugging Face Trainer, per cell
of the matrix (training size x seed), with a small grid of settings chosen on validation.

For each grid point (learning rate x epochs), evaluation and checkpointing happen every epoch on
the validation split; the best checkpoint by `metric_for_best_model` is reloaded at the end and
early stopping ends training when validation stops improving. The grid point whose best
checkpoint scores best on validation is chosen, and only then is the test split handed out
(`HeldOutTest`) and evaluated, once. `run_finetune` is the workflow step around `finetune`: it
loads the splits and writes the cell's metrics, test predictions and log history.
"""

from __future__ import annotations

import gc
import importlib.util
import itertools
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from probelab.io import write_json
from probelab.sentiment import SentimentDataError
from probelab.sentiment.data import load_splits
from probelab.sentiment.encoder import load_tokenizer, resolve_model
from probelab.sentiment.matrix import (
    HEAD_POOLING,
    HeldOutTest,
    choose,
    stratified_subset,
    subset_id,
)
from probelab.sentiment.metrics import binary_metrics, metric_rows

log = logging.getLogger(__name__)

# report_to value -> the modules of which one must be importable
INTEGRATIONS = {"wandb": ("wandb",), "tensorboard": ("tensorboard", "tensorboardX")}
# the optional dependencies that install every tracker (pyproject.toml)
TRACKING_EXTRA = "tracking"


def check_report_to(report_to: list[str]) -> None:
    """Refuse a `report_to` tracker whose Python package is not installed."""
    for name in report_to:
        if name in INTEGRATIONS and not any(
            importlib.util.find_spec(m) for m in INTEGRATIONS[name]
        ):
            raise SentimentDataError(
                f"config key 'sentiment.finetune.report_to' asks for '{name}', but the Python "
                f"package {INTEGRATIONS[name][0]} is not installed; install the optional extra "
                f"with `pip install 'probelab[{TRACKING_EXTRA}]'` or remove '{name}'."
            )


def compute_metrics(prediction: Any) -> dict[str, float]:
    """Trainer hook: accuracy, precision, recall and F1 of the positive class from the logits."""
    logits, labels = prediction.predictions, prediction.label_ids
    return binary_metrics(np.asarray(labels), np.argmax(logits, axis=-1))


def _progress_callback() -> Any:
    from transformers import TrainerCallback

    class LogProgress(TrainerCallback):
        """Sends the Trainer's periodic logs (loss, learning rate, eval metrics) to the log file."""

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 (Trainer API)
            if logs:
                shown = ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()
                )
                log.info(
                    "step %d/%d (epoch %.2f): %s",
                    state.global_step,
                    state.max_steps,
                    state.epoch or 0,
                    shown,
                )

    return LogProgress()


def _best_evaluation(log_history: list[dict[str, Any]], best_step: int | None) -> dict[str, float]:
    """The validation log entry of the best checkpoint (the last evaluation if none was best)."""
    evaluations = [entry for entry in log_history if "eval_loss" in entry]
    if not evaluations:
        raise RuntimeError(
            "the Trainer logged no validation evaluation; "
            "evaluation runs at the end of every epoch."
        )
    chosen = [entry for entry in evaluations if entry.get("step") == best_step]
    return (chosen or evaluations)[-1]


def _strip(values: dict[str, Any], prefix: str) -> dict[str, float]:
    return {
        k.removeprefix(f"{prefix}_"): float(v)
        for k, v in values.items()
        if k.startswith(f"{prefix}_")
    }


def _save_atomically(trainer: Any, model_dir: Path) -> None:
    """Save the model and tokenizer to a hidden sibling folder, then swap it in for `model_dir`."""
    staged = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
    try:
        trainer.save_model(str(staged))
        if model_dir.exists():
            shutil.rmtree(model_dir)
        staged.rename(model_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def grid_points(params: dict[str, Any]) -> list[dict[str, float]]:
    """The settings tried per cell: learning_rate x epochs from `grid`, each falling back to the
    single configured value."""
    grid = params.get("grid") or {}
    rates = grid.get("learning_rate") or [params["learning_rate"]]
    epochs = grid.get("epochs") or [params["epochs"]]
    return [
        {"learning_rate": float(rate), "epochs": float(budget)}
        for rate, budget in itertools.product(rates, epochs)
    ]


def run_finetune(
    data: dict[str, Any],
    demo_folder: Path | None,
    dataset: str,
    name: str,
    model: str,
    params: dict[str, Any],
    size: str,
    seed: int,
    out_folder: Path,
    threads: int,
) -> dict[str, Any]:
    """The fine-tuning step of one cell: fine-tune encoder `name` (`model`) on the stratified
    subset (`size`, `seed`) of the training split of `data` for every grid point, choose on
    validation, evaluate test once.

    Writes to `out_folder`: metrics.json (validation and test metrics of the chosen setting, every
    grid point's validation metrics, run facts), predictions.csv (test), log_history.json (the
    chosen run's) and, with `save_model`, the chosen model in model/; returns the metrics.
    `params` is the config's `sentiment.finetune` section."""
    from probelab.sentiment.frozen import write_predictions

    start = time.perf_counter()
    splits = load_splits(data, demo_folder)
    outcome = finetune(
        splits,
        model,
        params,
        data["label_names"],
        size,
        seed,
        out_folder / "model" if params.get("save_model") else None,
        out_folder / "logs",
        threads,
        run_name=f"{name}-n{size}-seed{seed}",
        origin=(
            f"folder {demo_folder}"
            if data["source"] == "demo"
            else f"{'hub data set' if data['source'] == 'hub' else 'folder'} {data['path']}"
        ),
    )
    metrics = []
    for split in ("validation", "test"):
        metrics += metric_rows(split, outcome[split])
        log.info(
            "%s: %s",
            split,
            ", ".join(
                f"{k} {outcome[split][k]:.4f}" for k in ("accuracy", "precision", "recall", "f1")
            ),
        )
    write_json(out_folder / "log_history.json", outcome["log_history"])
    write_predictions(out_folder / "predictions.csv", {"test": outcome["test_predictions"]})
    result = {
        "method": "finetune",
        "model": name,
        "dataset": dataset,
        "pooling": HEAD_POOLING,
        "n": str(size),
        "seed": int(seed),
        "n_train": outcome["n_train"],
        "subset": outcome["subset"],
        "metrics": metrics,
        "model_id": model,
        "selected_by": f"validation {params['metric_for_best_model']} of each grid point's best "
        "checkpoint",
        "best_params": outcome["chosen"],
        "grid": outcome["grid"],
        "epochs_run": outcome["epochs_run"],
        "steps_run": outcome["steps_run"],
        "best_checkpoint": outcome["best_checkpoint"],
        "best_validation_" + params["metric_for_best_model"]: outcome["best_metric"],
        "validation_loss": outcome["validation"].get("loss"),
        "test_loss": outcome["test"].get("loss"),
        "n_validation": len(splits["validation"]),
        "n_test": len(splits["test"]),
        "train_seconds": outcome["train_seconds"],
        "wall_seconds": time.perf_counter() - start,
        "hyperparameters": params,
    }
    write_json(out_folder / "metrics.json", result)
    return result


def finetune(
    splits: Any,
    model: str,
    params: dict[str, Any],
    label_names: list[str],
    size: str,
    seed: int,
    model_dir: Path | None,
    log_dir: Path,
    threads: int,
    run_name: str = "finetune",
    origin: str = "the training data",
) -> dict[str, Any]:
    """Fine-tune `model` on the (`size`, `seed`) subset of splits["train"] for every grid point,
    choose the grid point on validation, then evaluate test once with its best model.

    `params` is the config's `sentiment.finetune` section. The chosen model (and its tokenizer) is
    written to `model_dir` when given (through a temporary sibling, then renamed); trackers' logs
    (TensorBoard, W&B offline) go to `log_dir`. Returns the chosen setting's validation and test
    metrics, its test predictions and Trainer log history, and every grid point's validation
    metrics. `origin` names the data in errors."""
    import torch

    report_to = [name for name in params["report_to"] if name != "none"]
    check_report_to(report_to)
    torch.set_num_threads(max(1, threads))
    labels = np.asarray(splits["train"]["label"])
    rows = stratified_subset(labels, size, seed, origin)
    tokenizer = load_tokenizer(model)
    tokenized = _tokenize(splits, tokenizer, params["max_length"])
    train = tokenized["train"].select(rows)
    held_out = HeldOutTest(tokenized["test"])
    metric = params["metric_for_best_model"]
    points = grid_points(params)

    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".checkpoints.", dir=log_dir.parent) as work:
        grid: list[dict[str, Any]] = []
        scores: list[float] = []
        best: tuple[int, Any] | None = None
        for number, point in enumerate(points):
            name = f"{run_name}-lr{point['learning_rate']:g}-ep{point['epochs']:g}"
            trainer, outcome = _train_point(
                model, label_names, tokenizer, train, tokenized["validation"], params,
                {**point, "seed": seed}, f"{work}/{number}", log_dir, name, report_to,
            )  # fmt: skip
            grid.append({**point, **outcome})
            scores.append(float(outcome["validation"].get(metric, float("nan"))))
            log.info("grid point %s: validation %s %.4f", point, metric, scores[-1])
            # keep only the best trainer so far: memory for two models, whatever the grid
            if best is None or choose([scores[best[0]], scores[-1]], metric).index == 1:
                best = (number, trainer)
            del trainer
            gc.collect()
        choice = choose(scores, metric)
        if best is None or choice.index != best[0]:
            raise RuntimeError("the grid's choice differs from the kept trainer's; a bug.")
        trainer = best[1]
        # the test split only now, once, for the setting chosen on validation
        test = _predict(trainer, held_out.for_choice(choice))
        if model_dir is not None:
            _save_atomically(trainer, model_dir)
    chosen = grid[choice.index]
    log.info("chosen on validation %s: %s", metric, points[choice.index])
    return {
        "validation": chosen["validation"],
        "test": test["metrics"],
        "test_predictions": test["predictions"],
        "log_history": chosen["log_history"],
        "grid": [{k: v for k, v in point.items() if k != "log_history"} for point in grid],
        "chosen": points[choice.index],
        "epochs_run": chosen["epochs_run"],
        "steps_run": chosen["steps_run"],
        "best_checkpoint": chosen["best_checkpoint"],
        "best_metric": chosen["best_metric"],
        "train_seconds": float(sum(point["train_seconds"] for point in grid)),
        "n_train": len(train),
        "subset": subset_id(rows),
    }


def _train_point(
    model: str,
    label_names: list[str],
    tokenizer: Any,
    train: Any,
    validation: Any,
    params: dict[str, Any],
    point: dict[str, float],
    output_dir: str,
    log_dir: Path,
    run_name: str,
    report_to: list[str],
) -> tuple[Any, dict[str, Any]]:
    """Train one grid point (`point`: learning_rate, epochs, seed), evaluating on validation every
    epoch and reloading the best checkpoint: the trainer, and its validation metrics, log history
    and run facts."""
    from transformers import set_seed

    set_seed(int(point["seed"]))  # before the head is created, so its initialisation is seeded
    classifier = _classifier(model, label_names)
    _send_tracker_logs_to(log_dir, run_name, report_to)
    settings = {**params, **point}
    single = evaluations(settings, len(train)) <= 1
    args = training_arguments(settings, output_dir, report_to, run_name, checkpoints=not single)
    trainer = _trainer(classifier, tokenizer, train, validation, args, params, not single)
    start = time.perf_counter()
    try:
        trainer.train()
    finally:
        _finish_wandb_run()
    state = trainer.state
    outcome = {
        "validation": _strip(_best_evaluation(state.log_history, state.best_global_step), "eval"),
        "log_history": state.log_history,
        "epochs_run": float(state.epoch or 0.0),
        "steps_run": int(state.global_step),
        "best_checkpoint": (
            Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None
        ),
        "train_seconds": time.perf_counter() - start,
    }
    outcome["best_metric"] = outcome["validation"].get(params["metric_for_best_model"])
    return trainer, outcome


def evaluations(params: dict[str, Any], n_train: int) -> int:
    """How many validation evaluations a run makes (one per epoch begun, the last one at the end
    of training): with one, there is no epoch to choose, so no checkpoint is written."""
    steps_per_epoch = math.ceil(n_train / params["batch_size"])
    steps = params["max_steps"] or math.ceil(params["epochs"] * steps_per_epoch)
    return math.ceil(steps / steps_per_epoch)


def _finish_wandb_run() -> None:
    """Close the W&B run the Trainer opened, so that the next grid point gets a run of its own
    (the Trainer would reuse an open one). Looked up in sys.modules: if wandb was never imported,
    no run was opened."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _predict(trainer: Any, test_set: Any) -> dict[str, Any]:
    """Test metrics and predictions of the trainer's (best) model, in the test split's file order.

    Not `trainer.predict`: with length-grouped batches the Trainer also groups evaluation batches
    by length, so its predictions come back in another order than the rows (the metrics would
    agree, the paired bootstrap over the same reviews would not); and trackers get no test
    metrics (they are in metrics.json)."""
    import torch
    from torch.utils.data import DataLoader

    model = trainer.model
    model.eval()
    loader = DataLoader(
        test_set,
        batch_size=trainer.args.per_device_eval_batch_size,
        collate_fn=trainer.data_collator,
    )
    logits, labels, losses = [], [], []
    with torch.inference_mode():
        for batch in loader:
            batch = {key: value.to(model.device) for key, value in batch.items()}
            output = model(**batch)
            losses.append(float(output.loss) * len(batch["labels"]))
            logits.append(output.logits.float().cpu().numpy())
            labels.append(batch["labels"].cpu().numpy())
    y_true, scores = np.concatenate(labels), np.concatenate(logits)
    predicted = np.argmax(scores, axis=-1)
    metrics = {**binary_metrics(y_true, predicted), "loss": sum(losses) / len(y_true)}
    return {"metrics": metrics, "predictions": (y_true, predicted)}


def _tokenize(splits: Any, tokenizer: Any, max_length: int) -> Any:
    """The splits with `text` replaced by the tokenizer's input ids (unpadded: the collator pads
    each batch)."""
    return splits.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
    )


def _classifier(model: str, label_names: list[str]) -> Any:
    """The encoder `model` with a new sequence-classification head for `label_names`."""
    from transformers import AutoModelForSequenceClassification

    id2label = dict(enumerate(label_names))
    return AutoModelForSequenceClassification.from_pretrained(
        resolve_model(model),
        num_labels=len(label_names),
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
    )


def _send_tracker_logs_to(log_dir: Path, run_name: str, report_to: list[str]) -> None:
    """Trackers read their locations from the environment (the TensorBoard callback when the
    Trainer is built): keep them beside the cell's results, one TensorBoard folder per grid
    point. W&B stays offline unless WANDB_MODE says otherwise."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if "wandb" in report_to:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_PROJECT", "probelab-sentiment")
        os.environ["WANDB_DIR"] = str(log_dir)
    if "tensorboard" in report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(log_dir / "tensorboard" / run_name)


def training_arguments(
    params: dict[str, Any],
    output_dir: str,
    report_to: list[str],
    run_name: str = "finetune",
    checkpoints: bool = True,
) -> Any:
    """The Trainer's settings from the config's `sentiment.finetune` section (with one grid
    point's learning_rate, epochs and the cell's seed filled in): evaluation and a checkpoint
    every epoch, the best one by `metric_for_best_model` reloaded at the end. Without
    `checkpoints` (a run with a single evaluation) nothing is saved or reloaded."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=output_dir,
        run_name=run_name,
        num_train_epochs=params["epochs"],
        max_steps=params["max_steps"] if params["max_steps"] is not None else -1,
        per_device_train_batch_size=params["batch_size"],
        per_device_eval_batch_size=params["eval_batch_size"],
        learning_rate=params["learning_rate"],
        weight_decay=params["weight_decay"],
        # Transformers 5: a float in [0, 1) is a ratio of all steps
        warmup_steps=params["warmup_ratio"],
        lr_scheduler_type=params["lr_scheduler"],
        # batches of similar lengths pad less: the same epochs for less compute
        train_sampling_strategy="group_by_length" if params["group_by_length"] else "random",
        eval_strategy="epoch",
        save_strategy="epoch" if checkpoints else "no",
        # checkpoints exist only to reload the best epoch: no optimizer state (a third the size)
        save_only_model=True,
        save_total_limit=2,
        load_best_model_at_end=checkpoints,
        metric_for_best_model=params["metric_for_best_model"],
        logging_strategy="steps",
        logging_steps=params["logging_steps"],
        report_to=report_to or "none",
        seed=params["seed"],
        data_seed=params["seed"],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _trainer(
    classifier: Any,
    tokenizer: Any,
    train: Any,
    validation: Any,
    args: Any,
    params: dict[str, Any],
    early_stopping: bool = True,
) -> Any:
    """A Trainer on the training subset, evaluating on validation, with early stopping (when
    there are epochs to stop between) and progress logging."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

    callbacks = [_progress_callback()]
    if early_stopping:
        callbacks.insert(
            0,
            EarlyStoppingCallback(
                params["early_stopping_patience"], params["early_stopping_threshold"]
            ),
        )
    return Trainer(
        model=classifier,
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )
