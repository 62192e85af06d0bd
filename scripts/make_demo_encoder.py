"""Build a tiny demo CLIP from its architecture file; pretrain it on the training split.

The encoder named by --encoder must have `build_from` in the config's encoders section: the JSON
file (configs/encoders/*.json) describing its architecture; its `seed` draws the weights. With a
`pretrain` entry the model is then trained contrastively on the images of --split's training
split (labels from --index). The folder loads with the Transformers Auto classes or as an
open_clip `local-dir:`, by backend. Nothing is downloaded.
"""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.demo.encoder import BuildRecipe, TrainingImages, make_demo_encoder
from probelab.encoders import configured_encoder


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--out": {"help": "model folder to write"},
            "--index": {"required": False, "help": "index.parquet (pretrained encoders)"},
            "--split": {"required": False, "help": "split.parquet (pretrained encoders)"},
        },
        options={
            "--encoder": {"required": True, "help": "a build_from encoder of the config"},
            "--threads": {"type": int, "default": 1, "help": "torch threads for pretraining"},
        },
    )
    recipe = BuildRecipe.of(args.encoder, configured_encoder(config, args.encoder))
    training = (
        TrainingImages(Path(args.index), Path(args.split), config["pathologies"])
        if args.index and args.split
        else None
    )
    make_demo_encoder(recipe, Path(args.out), training, args.threads)


if "snakemake" in globals():
    snakemake_job(snakemake)
    make_demo_encoder(
        BuildRecipe.of(snakemake.wildcards.encoder, snakemake.params.recipe),
        Path(snakemake.output[0]),
        TrainingImages(
            Path(snakemake.input.index), Path(snakemake.input.split), snakemake.params.pathologies
        )
        if snakemake.params.recipe.get("pretrain")
        else None,
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
