"""Fine-tune one encoder on one cell (training size, seed) of the review matrix with the Hugging
Face Trainer: every grid point, the one chosen on validation evaluated on test once."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.data import DEMO_FOLDER_OPTION
from probelab.sentiment.encoder import MODEL_OPTION, configured_model
from probelab.sentiment.finetune import run_finetune


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--out-folder": {
                "help": "finetune/{model}/n{n}/seed{seed}: metrics.json, predictions.csv, "
                "log_history.json, logs/ (and model/ with save_model)"
            }
        },
        options={
            **DEMO_FOLDER_OPTION,
            **MODEL_OPTION,
            "--n": {"default": "all", "help": "training size (an integer or all)"},
            "--seed": {"type": int, "default": 0, "help": "seed of the subset and the run"},
            "--threads": {"type": int, "default": 1, "help": "torch threads"},
        },
    )
    s = config["sentiment"]
    run_finetune(
        s["data"],
        args.demo_folder,
        s["dataset"],
        args.model,
        configured_model(s["encoders"], args.model),
        s["finetune"],
        args.n,
        args.seed,
        args.out_folder,
        args.threads,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    p, w = snakemake.params, snakemake.wildcards
    run_finetune(
        p.data,
        p.demo_folder,
        p.dataset,
        w.model,
        p.model,
        p.finetune,
        w.n,
        int(w.seed),
        Path(snakemake.output.metrics).parent,
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
