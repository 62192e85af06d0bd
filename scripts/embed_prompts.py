"""Embed the prompt templates x pathologies with an encoder's text tower, into
results/{cohort}/prompts/{encoder}/{fingerprint}.h5: per-template embeddings, the per-pathology
average (normalise, average, renormalise), the flattened mega-vector, and the model's logit scale
and bias (probelab.embedding).
"""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.embedding import embed_prompts


def main(argv: list[str] | None = None) -> None:
    from probelab.encoders import configured_encoder

    args, config = command_line(
        __doc__,
        argv,
        paths={"--out": {"help": "prompt cache to write (.h5)"}},
        options={
            "--encoder": {"required": True, "help": "encoder name in the config's encoders"},
            "--model": {"help": "model path to use instead of the config's (build_from encoders)"},
            "--threads": {"type": int, "help": "torch CPU threads (default: torch's)"},
        },
    )
    settings = configured_encoder(config, args.encoder, args.model)
    embed_prompts(
        args.out, args.encoder, settings, config["pathologies"], config["prompts"], args.threads
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    embed_prompts(
        Path(snakemake.output[0]),
        snakemake.wildcards.encoder,
        dict(snakemake.params.settings),
        list(snakemake.params.pathologies),
        dict(snakemake.params.prompts),
        snakemake.threads,
        expected_fingerprint=snakemake.params.fingerprint,
    )
elif __name__ == "__main__":
    main()
