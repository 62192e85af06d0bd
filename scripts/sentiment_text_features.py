"""Frozen features of every review split from one encoder, one forward pass pooled every configured
way ([CLS], mean) -> one HDF5 cache per pooling."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.data import DEMO_FOLDER_OPTION
from probelab.sentiment.encoder import MODEL_OPTION, configured_model
from probelab.sentiment.features import text_features
from probelab.sentiment.matrix import poolings


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={"--out-folder": {"help": "features/{model}: one {pooling}.h5 per pooling"}},
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
        {pooling: args.out_folder / f"{pooling}.h5" for pooling in poolings(s)},
        s["features"],
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
        {pooling: Path(snakemake.output[pooling]) for pooling in p.poolings},
        p.features,
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
