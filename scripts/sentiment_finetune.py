"""Fine-tune one encoder on the review splits with the Hugging Face Trainer; save the best model,
the log history and validation / test metrics."""

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
        paths={"--out-dir": {"help": "finetune/{model}: metrics.json, log_history.json, model/"}},
        options={
            **DEMO_FOLDER_OPTION,
            **MODEL_OPTION,
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
        args.out_dir / "metrics.json",
        args.out_dir / "log_history.json",
        args.out_dir / "model",
        args.threads,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
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
