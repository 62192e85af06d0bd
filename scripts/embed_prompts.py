"""Embed the prompt templates x pathologies with an encoder's text tower, into
results/{cohort}/prompts/{encoder}.h5: per-template embeddings, the per-pathology average
(normalise, average, renormalise), the flattened mega-vector, and the model's logit scale and bias.
"""

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from probelab.cache import write_prompt_cache
from probelab.prompts import average_templates, mega_vector, render_prompts

log = logging.getLogger("embed_prompts")


class NoTextTowerError(ValueError):
    """Prompt embeddings were asked of an encoder without a text tower."""


def embed_prompts(
    out_path: Path,
    encoder_name: str,
    settings: dict[str, Any],
    pathologies: list[str],
    prompts: dict[str, Any],
    threads: int | None = None,
) -> None:
    """Embed every template for every pathology with encoder `encoder_name` and write the cache."""
    if not settings["text"]:
        raise NoTextTowerError(
            f"encoder '{encoder_name}' has no text tower (encoders.{encoder_name}.text is false), so it cannot "
            "embed prompts; drop it from the prompt-fusion and zero-shot models or use an encoder with one."
        )
    import torch

    from probelab.encoders import build_encoder

    if threads:
        torch.set_num_threads(threads)
    templates = list(prompts["templates"])
    texts = render_prompts(pathologies, templates, prompts.get("names"))
    encoder = build_encoder(encoder_name, settings)
    flat = encoder.encode_texts([text for row in texts for text in row])
    per_template = flat.reshape(len(pathologies), len(templates), -1)
    per_pathology = average_templates(per_template)
    attrs = {
        **encoder.provenance(),
        "dtype": "float32",
        "precision": encoder.precision,
        "logit_scale": encoder.logit_scale,
        "logit_bias": encoder.logit_bias,
    }
    write_prompt_cache(
        out_path,
        pathologies,
        templates,
        texts,
        per_template,
        per_pathology,
        mega_vector(per_pathology),
        attrs,
    )
    log.info(
        "wrote %s: %d pathologies x %d templates, dim %d, logit scale %.3g, bias %s",
        out_path,
        len(pathologies),
        len(templates),
        per_template.shape[-1],
        encoder.logit_scale,
        "none" if np.isnan(encoder.logit_bias) else f"{encoder.logit_bias:.3g}",
    )


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.encoders import configured_encoder
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument(
        "--encoder", required=True, help="encoder name in the config's encoders section"
    )
    parser.add_argument("--out", type=Path, required=True, help="prompt cache to write (.h5)")
    parser.add_argument(
        "--model", help="model path to use instead of the config's (for build_from encoders)"
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    settings = configured_encoder(config, args.encoder, args.model)
    embed_prompts(
        args.out, args.encoder, settings, config["pathologies"], config["prompts"], args.threads
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    embed_prompts(
        Path(snakemake.output[0]),
        snakemake.wildcards.encoder,
        dict(snakemake.params.settings),
        list(snakemake.params.pathologies),
        dict(snakemake.params.prompts),
        snakemake.threads,
    )
elif __name__ == "__main__":
    main()
