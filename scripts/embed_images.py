"""Encode every image of the cohort index once, into the image cache
results/{cohort}/embeddings/{encoder}/{fingerprint}.h5.

Decoding runs in DataLoader workers while the main process runs the model; features are saved
chunk by chunk, so a killed run resumes after the last complete chunk (probelab.embedding).
"""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.embedding import embed_images


def main(argv: list[str] | None = None) -> None:
    from probelab.encoders import configured_encoder

    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--index": {"help": "results/{cohort}/index.parquet"},
            "--out": {"help": "image cache to write (.h5)"},
        },
        options={
            "--encoder": {"required": True, "help": "encoder name in the config's encoders"},
            "--model": {"help": "model path to use instead of the config's (build_from encoders)"},
            "--threads": {"type": int, "help": "torch CPU threads (default: torch's)"},
        },
    )
    settings = configured_encoder(config, args.encoder, args.model)
    embed_images(args.index, args.out, args.encoder, settings, config["embedding"], args.threads)


if "snakemake" in globals():
    snakemake_job(snakemake)
    embed_images(
        Path(snakemake.input.index),
        Path(snakemake.output[0]),
        snakemake.wildcards.encoder,
        dict(snakemake.params.settings),
        dict(snakemake.params.embedding),
        snakemake.threads,
        expected_fingerprint=snakemake.params.fingerprint,
    )
elif __name__ == "__main__":
    main()
