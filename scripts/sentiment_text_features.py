"""[CLS] (or mean-pooled) features of every review split from one encoder -> HDF5 cache."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.data import DEMO_FOLDER_OPTION
from probelab.sentiment.encoder import MODEL_OPTION, configured_model
from probelab.sentiment.features import text_features


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={"--out": {"help": "features/{model}.h5"}},
        options={
            **DEMO_FOLDER_OPTION,
            **MODEL_OPTION,
            "--threads": {"type": int, "default": 1, "help": "torch threads"},
        },
    )
    s = config["sentiment"]
    text_features(
        s["data"],
        args.demo_folder,
        s["dataset"],
        args.model,
        configured_model(s["encoders"], args.model),
        s["features"],
        args.out,
        args.threads,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    p = snakemake.params
    text_features(
        p.data,
        p.demo_folder,
        p.dataset,
        snakemake.wildcards.model,
        p.model,
        p.features,
        Path(snakemake.output[0]),
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
