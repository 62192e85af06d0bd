"""[CLS] (or mean-pooled) features of every review split from one encoder -> HDF5 cache."""

import logging
from pathlib import Path
from typing import Any

import numpy as np

from probelab.sentiment import SPLITS
from probelab.sentiment.data import data_hash, load_splits
from probelab.sentiment.encoder import configured_model, load_encoder, load_tokenizer, weights_id
from probelab.sentiment.features import TextFeatures, extract_features, write_text_features

log = logging.getLogger("sentiment_text_features")


def provenance(
    dataset: str, name: str, model: str, features: dict[str, Any], hash_of_data: str
) -> dict[str, Any]:
    """The cache attributes a reader checks (embedding_dim is added once the encoder is loaded)."""
    return {
        "dataset": dataset,
        "model": name,
        "model_id": model,
        "weights": weights_id(model),
        "pooling": features["pooling"],
        "max_length": features["max_length"],
        "dtype": features["dtype"],
        "data_hash": hash_of_data,
    }


def text_features(
    data: dict[str, Any],
    demo_folder: Path | None,
    dataset: str,
    name: str,
    model: str,
    features: dict[str, Any],
    out: Path,
    threads: int,
) -> TextFeatures:
    """Encode every split with `model` and write the cache to `out`."""
    import torch

    torch.set_num_threads(max(1, threads))
    splits = load_splits(data, demo_folder)
    tokenizer, encoder = load_tokenizer(model), load_encoder(model)
    attrs = {
        **provenance(dataset, name, model, features, data_hash(splits)),
        "embedding_dim": int(encoder.config.hidden_size),
    }
    result = TextFeatures({}, {}, {}, attrs)
    for split in SPLITS:
        result.features[split], result.n_tokens[split] = extract_features(
            list(splits[split]["text"]),
            tokenizer,
            encoder,
            features["pooling"],
            features["max_length"],
            features["batch_size"],
            features["sort_by_length"],
            label=split,
        )
        result.labels[split] = np.asarray(list(splits[split]["label"]))
    write_text_features(out, result)
    log.info("wrote %s: %s", out, ", ".join(f"{s} {len(result.labels[s])}" for s in SPLITS))
    return result


def main(argv: list[str] | None = None) -> None:
    from probelab.sentiment.workflow import parse_command_line

    args, s = parse_command_line(__doc__, argv, ["--out"], threads=True)
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
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
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
