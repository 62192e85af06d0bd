"""Inspect one encoder on a few reviews: what the tokenizer returns and what the model returns."""
# No `from __future__` import: Snakemake prepends its preamble to step scripts.

from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.sentiment.data import DEMO_FOLDER_OPTION
from probelab.sentiment.encoder import MODEL_OPTION, configured_model
from probelab.sentiment.inspect import inspect_encoder


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={"--out": {"help": "inspect/{model}.json"}},
        options={**DEMO_FOLDER_OPTION, **MODEL_OPTION},
    )
    s = config["sentiment"]
    inspect_encoder(
        s["data"],
        args.demo_folder,
        args.model,
        configured_model(s["encoders"], args.model),
        s["inspect"]["n_samples"],
        s["features"]["max_length"],
        args.out,
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    p = snakemake.params
    inspect_encoder(
        p.data,
        p.demo_folder,
        snakemake.wildcards.model,
        p.model,
        p.n_samples,
        p.max_length,
        Path(snakemake.output[0]),
    )
elif __name__ == "__main__":
    main()
