"""Write a small Transformers CLIP with seeded random weights, for the offline demo.

The encoder named by --encoder must have `build_from` in the config's encoders section: the JSON
file (configs/encoders/demo-hf-clip.json) describing its architecture and tokenizer; its `seed`
draws the weights. The folder (model, image processor, tokenizer) loads with the Transformers Auto
classes' `from_pretrained(folder)`. Nothing is downloaded.
"""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.demo.encoder import build_recipe, make_demo_encoder


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={"--out": {"help": "model folder to write"}},
        options={
            "--encoder": {"required": True, "help": "a build_from encoder of the config's encoders"}
        },
    )
    architecture, seed = build_recipe(config, args.encoder)
    make_demo_encoder(architecture, args.out, seed)


if "snakemake" in globals():
    snakemake_job(snakemake)
    make_demo_encoder(
        Path(snakemake.input.architecture), Path(snakemake.output[0]), snakemake.params.seed
    )
elif __name__ == "__main__":
    main()
