"""Logistic regression on frozen text features over the matrix: per cell (size, seed), C chosen
on validation, test evaluated once for it."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.encoder import MODEL_OPTION
from probelab.sentiment.features import expected_features
from probelab.sentiment.frozen import run_frozen
from probelab.sentiment.matrix import cells


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--features": {"help": "features/{model}/{pooling}.h5 (rule sentiment_text_features)"},
            "--out-folder": {
                "help": "logreg/{model}/{pooling}: one n{n}/seed{seed}/ folder per cell "
                "(metrics.json, predictions.csv, model.joblib)"
            },
        },
        options={
            **MODEL_OPTION,
            "--pooling": {"choices": ["cls", "mean"], "required": True, "help": "pooling"},
            "--threads": {"type": int, "default": 1, "help": "unused (one fit at a time)"},
        },
    )
    s = config["sentiment"]
    run_frozen(
        "logreg",
        args.features,
        expected_features(s, args.model, args.pooling),
        s["logreg"],
        cells(s),
        args.out_folder,
        args.threads,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    p = snakemake.params
    run_frozen(
        "logreg",
        Path(snakemake.input.features),
        p.expected,
        p.settings,
        p.cells,
        Path(p.out_folder),
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
