"""Fine-tune one encoder on the review splits with the Hugging Face Trainer; save the best model,
the log history and validation / test metrics."""

import logging
import time
from pathlib import Path
from typing import Any

from probelab.io import write_json
from probelab.sentiment.data import load_splits
from probelab.sentiment.finetune import finetune
from probelab.sentiment.metrics import metric_rows

log = logging.getLogger("sentiment_finetune")


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


def main(argv: list[str] | None = None) -> None:
    from probelab.sentiment.encoder import configured_model
    from probelab.sentiment.workflow import parse_command_line

    args, s = parse_command_line(__doc__, argv, ["--out-dir"], threads=True)
    run_finetune(
        s["data"],
        args.demo_folder,
        s["dataset"],
        args.model,
        configured_model(s["encoders"], args.model),
        s["finetune"],
        args.out_dir / "metrics.json",
        args.out_dir / "log_history.json",
        args.out_dir / "model",
        args.threads,
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    p, out = snakemake.params, snakemake.output
    run_finetune(
        p.data,
        p.demo_folder,
        p.dataset,
        snakemake.wildcards.model,
        p.model,
        p.finetune,
        Path(out.metrics),
        Path(out.history),
        Path(out.model),
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
