"""Fine-tuning the encoder with a classification head through the Hugging Face Trainer.

Evaluation and checkpointing happen every epoch on the validation split; the best checkpoint by
`metric_for_best_model` is reloaded at the end and early stopping ends training when validation
stops improving. The test split is evaluated once, after training, with that best model.
`run_finetune` is the workflow step around `finetune`: it loads the splits and writes the metrics
and the log history.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from probelab.io import write_json
from probelab.sentiment import SentimentDataError
from probelab.sentiment.data import load_splits
from probelab.sentiment.encoder import load_tokenizer, resolve_model
from probelab.sentiment.metrics import binary_metrics, metric_rows

log = logging.getLogger(__name__)

# report_to value -> the modules of which one must be importable
INTEGRATIONS = {"wandb": ("wandb",), "tensorboard": ("tensorboard", "tensorboardX")}


def check_report_to(report_to: list[str]) -> None:
    """Refuse a `report_to` integration whose Python package is not installed."""
    for name in report_to:
        if name in INTEGRATIONS and not any(
            importlib.util.find_spec(m) for m in INTEGRATIONS[name]
        ):
            raise SentimentDataError(
                f"config key 'sentiment.finetune.report_to' asks for '{name}', but the Python "
                f"package {INTEGRATIONS[name][0]} is not installed; install it or remove '{name}'."
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


def run_finetune(
    data: dict[str, Any],
    demo_folder: Path | None,
    dataset: str,
    name: str,
    model: str,
    params: dict[str, Any],
    out_metrics: Path,
    out_history: Path,
    model_dir: Path,
    threads: int,
) -> dict[str, Any]:
    """The fine-tuning step: fine-tune encoder `name` (`model`) on the review splits of `data`.

    Writes the best model to `model_dir`, the Trainer's log history to `out_history` and the
    validation / test metrics with the run's facts and hyperparameters to `out_metrics`, which it
    also returns. `params` is the config's `sentiment.finetune` section.
    """
    start = time.perf_counter()
    splits = load_splits(data, demo_folder)
    outcome = finetune(
        splits, model, params, data["label_names"], model_dir, out_metrics.parent / "logs", threads
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
    write_json(out_history, outcome["log_history"])
    result = {
        "method": "finetune",
        "model": name,
        "dataset": dataset,
        "metrics": metrics,
        "model_id": model,
        "epochs_run": outcome["epochs_run"],
        "steps_run": outcome["steps_run"],
        "best_checkpoint": outcome["best_checkpoint"],
        "best_validation_" + params["metric_for_best_model"]: outcome["best_metric"],
        "validation_loss": outcome["validation"].get("loss"),
        "test_loss": outcome["test"].get("loss"),
        "n_train": outcome["n_train"],
        "n_validation": len(splits["validation"]),
        "n_test": len(splits["test"]),
        "train_seconds": outcome["train_seconds"],
        "wall_seconds": time.perf_counter() - start,
        "hyperparameters": params,
    }
    write_json(out_metrics, result)
    return result


def finetune(
    splits: Any,
    model: str,
    params: dict[str, Any],
    label_names: list[str],
    model_dir: Path,
    log_dir: Path,
    threads: int,
) -> dict[str, Any]:
    """Fine-tune `model` on splits["train"], choose the best epoch on validation, evaluate test.

    `params` is the config's `sentiment.finetune` section. The best model (and its tokenizer) is
    written to `model_dir` (through a temporary sibling, then renamed); integrations' logs
    (TensorBoard, W&B offline) go to `log_dir`. Returns validation and test metrics, the
    Trainer's log history and run facts.
    """
    import torch
    from transformers import set_seed

    report_to = list(params["report_to"])
    check_report_to(report_to)
    torch.set_num_threads(max(1, threads))
    set_seed(params["seed"])  # before the head is created, so its initialisation is seeded too
    tokenizer = load_tokenizer(model)
    tokenized = _tokenize(splits, tokenizer, params["max_length"])
    classifier = _classifier(model, label_names)
    _send_integration_logs_to(log_dir)

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".checkpoints.", dir=model_dir.parent) as work:
        args = training_arguments(params, work, report_to)
        trainer = _trainer(classifier, tokenizer, tokenized, args, params)
        start = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - start
        outcome = _evaluate(trainer, tokenized["test"])
        _save_atomically(trainer, model_dir)
    return {**outcome, "train_seconds": train_seconds, "n_train": len(tokenized["train"])}


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


def _send_integration_logs_to(log_dir: Path) -> None:
    """Integrations read their locations from the environment; keep them beside the results."""
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_DIR", str(log_dir))
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(log_dir))


def training_arguments(params: dict[str, Any], output_dir: str, report_to: list[str]) -> Any:
    """The Trainer's settings from the config's `sentiment.finetune` section: evaluation and a
    checkpoint every epoch, the best one by `metric_for_best_model` reloaded at the end."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=output_dir,
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
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=params["metric_for_best_model"],
        logging_strategy="steps",
        logging_steps=params["logging_steps"],
        report_to=report_to,
        seed=params["seed"],
        data_seed=params["seed"],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _trainer(
    classifier: Any, tokenizer: Any, tokenized: Any, args: Any, params: dict[str, Any]
) -> Any:
    """A Trainer on the train split, evaluating on validation, with early stopping and progress
    logging."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

    return Trainer(
        model=classifier,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[
            EarlyStoppingCallback(
                params["early_stopping_patience"], params["early_stopping_threshold"]
            ),
            _progress_callback(),
        ],
    )


def _evaluate(trainer: Any, test_set: Any) -> dict[str, Any]:
    """After training: validation metrics of the best checkpoint, test metrics of the best model,
    the log history and the run's facts."""
    from transformers import EarlyStoppingCallback

    state = trainer.state
    best_checkpoint = (
        Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None
    )
    # the best model was evaluated on validation during training: reuse that, evaluate test once
    validation = _best_evaluation(state.log_history, state.best_global_step)
    # training is over, and early stopping would look for eval_* keys in the test metrics
    trainer.remove_callback(EarlyStoppingCallback)
    test = trainer.evaluate(test_set, metric_key_prefix="test")
    return {
        "validation": _strip(validation, "eval"),
        "test": _strip(test, "test"),
        "log_history": state.log_history,
        "epochs_run": float(state.epoch or 0.0),
        "steps_run": int(state.global_step),
        "best_checkpoint": best_checkpoint,
        "best_metric": None if state.best_metric is None else float(state.best_metric),
    }
