"""SVM on frozen text features: grid search on train (config's grid and folds), refit, evaluate."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.encoder import MODEL_OPTION
from probelab.sentiment.features import expected_features
from probelab.sentiment.svm import run_svm


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--features": {"help": "features/{model}.h5 (rule sentiment_text_features)"},
            "--out-dir": {"help": "svm/{model}: metrics.json, cv_results.csv, model.joblib"},
        },
        options={
            **MODEL_OPTION,
            "--threads": {"type": int, "default": 1, "help": "parallel fits"},
        },
    )
    s = config["sentiment"]
    run_svm(
        args.features,
        expected_features(s, args.model),
        s["svm"],
        args.out_dir / "metrics.json",
        args.out_dir / "cv_results.csv",
        args.out_dir / "model.joblib",
        args.threads,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    out = snakemake.output
    run_svm(
        Path(snakemake.input.features),
        snakemake.params.expected,
        snakemake.params.svm,
        Path(out.metrics),
        Path(out.cv_results),
        Path(out.model),
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
