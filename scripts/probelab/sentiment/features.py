"""[CLS] or mean-pooled text features of every split, and their HDF5 cache (one per encoder and
pooling).

Batches are formed from texts sorted by token length, so each batch pads to a length close to
its own texts' and the encoder does little work on padding; features are put back in file order.

Cache layout (`results/sentiment/{dataset}/features/{model}/{pooling}.h5`): one group per split
with
datasets `features` (N x D), `label` (N), `n_tokens` (N); attributes say what produced it
(`required_attrs`, plus dtype, data_hash, embedding_dim and probelab_version) and
`read_text_features` refuses a cache whose attributes differ from what the caller expects.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probelab import __version__
from probelab.cache import CacheError, atomic_h5, check_attrs, open_h5, plain_value
from probelab.sentiment import SPLITS
from probelab.sentiment.data import data_hash, load_splits
from probelab.sentiment.encoder import (
    configured_model,
    load_encoder,
    load_tokenizer,
    weights_id,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# How a cache's features were made: the configured encoder (`model_id`), a fingerprint of its
# weight files, the pooling and the truncation. With the data set and the encoder's name they are
# what a cache must match to be used (`required_attrs`); the SVM metrics report them
# (`encoding_attrs`).
ENCODING_ATTRS = ("model_id", "weights", "pooling", "max_length")


def required_attrs(
    dataset: str, name: str, model: str, pooling: str, features: dict[str, Any]
) -> dict[str, Any]:
    """The attributes a `pooling` features cache of encoder `name` (config value `model`) must
    carry under the config's `sentiment.features` section `features`: the writer records them,
    and the frozen-feature methods refuse a cache whose values differ."""
    encoding = (model, weights_id(model), pooling, features["max_length"])
    return {"dataset": dataset, "model": name, **dict(zip(ENCODING_ATTRS, encoding, strict=True))}


def expected_features(sentiment: dict[str, Any], name: str, pooling: str) -> dict[str, Any]:
    """The provenance the frozen-feature methods require of the `pooling` features cache of
    encoder `name`, from the config's `sentiment` section."""
    model = configured_model(sentiment["encoders"], name)
    return required_attrs(sentiment["dataset"], name, model, pooling, sentiment["features"])


def encoding_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """How a cache's features were made, and their size: what the SVM metrics report."""
    return {key: attrs[key] for key in (*ENCODING_ATTRS, "embedding_dim")}


def batch_order(lengths: np.ndarray, batch_size: int, sort_by_length: bool) -> list[np.ndarray]:
    """Row indices per batch: by increasing length (stable, so ties keep file order) or in file
    order."""
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pool(hidden: Any, attention_mask: Any, pooling: str) -> Any:
    """The [CLS] vector (first token), or the mean of the non-padding tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
) -> dict[str, list]:
    """Token ids without padding (truncated to max_length); padding happens per batch."""
    return tokenizer(texts, truncation=True, max_length=max_length)


def extract_features(
    texts: list[str],
    tokenizer: PreTrainedTokenizerBase,
    encoder: PreTrainedModel,
    pooling: str,
    max_length: int,
    batch_size: int,
    sort_by_length: bool,
    label: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N x D, float32, in the order of `texts`) and each text's token count."""
    pooled, lengths = extract_pooled(
        texts, tokenizer, encoder, [pooling], max_length, batch_size, sort_by_length, label
    )
    return pooled[pooling], lengths


def extract_pooled(
    texts: list[str],
    tokenizer: PreTrainedTokenizerBase,
    encoder: PreTrainedModel,
    poolings: list[str],
    max_length: int,
    batch_size: int,
    sort_by_length: bool,
    label: str = "",
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features of every pooling from one forward pass (pooling -> N x D, float32, in the order
    of `texts`), and each text's token count."""
    import torch

    encoded = tokenize(tokenizer, texts, max_length)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    features = {
        name: np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
        for name in poolings
    }
    batches = batch_order(lengths, batch_size, sort_by_length)
    start = time.perf_counter()
    report_every = max(1, len(batches) // 10)
    with torch.inference_mode():
        for number, rows in enumerate(batches, 1):
            batch = tokenizer.pad(
                {key: [encoded[key][i] for i in rows] for key in encoded.keys()},
                return_tensors="pt",
            )
            hidden = encoder(**batch).last_hidden_state
            for name in poolings:
                pooled = pool(hidden, batch["attention_mask"], name)
                features[name][rows] = pooled.float().numpy()
            if number % report_every == 0 or number == len(batches):
                elapsed = time.perf_counter() - start
                log.info(
                    "%s batch %d/%d: %d texts, %.1f texts/s",
                    label,
                    number,
                    len(batches),
                    sum(len(b) for b in batches[:number]),
                    sum(len(b) for b in batches[:number]) / elapsed,
                )
    return features, lengths


@dataclass
class TextFeatures:
    features: dict[str, np.ndarray]  # split -> N x D float32
    labels: dict[str, np.ndarray]  # split -> N int
    n_tokens: dict[str, np.ndarray]
    attrs: dict[str, Any]


def write_text_features(path: str | Path, cache: TextFeatures) -> None:
    """Write the cache atomically; `cache.attrs` is the provenance (probelab_version added here)."""
    dtype = np.dtype(cache.attrs["dtype"])
    with atomic_h5(path) as h5:
        for split in SPLITS:
            group = h5.create_group(split)
            group.create_dataset("features", data=cache.features[split].astype(dtype))
            group.create_dataset("label", data=cache.labels[split].astype(np.int8))
            group.create_dataset("n_tokens", data=cache.n_tokens[split].astype(np.int32))
        for key, value in {**cache.attrs, "probelab_version": __version__}.items():
            h5.attrs[key] = plain_value(value)


def read_text_features(path: str | Path, expected: dict[str, Any]) -> TextFeatures:
    """Read the cache after checking its attributes against `expected` (None values skipped)."""
    with open_h5(path, SPLITS, "text features") as h5:
        attrs = {key: plain_value(value) for key, value in h5.attrs.items()}
        check_attrs(path, attrs, expected)
        features, labels, n_tokens = {}, {}, {}
        for split in SPLITS:
            group = h5[split]
            features[split] = np.asarray(group["features"][()], dtype=np.float32)
            labels[split] = np.asarray(group["label"][()], dtype=np.int64)
            n_tokens[split] = np.asarray(group["n_tokens"][()], dtype=np.int64)
            if features[split].shape != (
                len(labels[split]),
                attrs.get("embedding_dim", features[split].shape[1]),
            ):
                raise CacheError(
                    f"text features cache {path} is inconsistent: split '{split}' has features "
                    f"of shape {features[split].shape} for {len(labels[split])} labels."
                )
    return TextFeatures(features, labels, n_tokens, attrs)


def text_features(
    data: dict[str, Any],
    demo_folder: Path | None,
    dataset: str,
    name: str,
    model: str,
    outputs: dict[str, Path],
    features: dict[str, Any],
    threads: int,
) -> dict[str, TextFeatures]:
    """Encode every split once with `model` (encoder `name` in the config), pool the same hidden
    states every way `outputs` names (pooling -> cache path) and write one cache per pooling;
    `features` is the config's `sentiment.features` section."""
    import torch

    torch.set_num_threads(max(1, threads))
    splits = load_splits(data, demo_folder)
    tokenizer, encoder = load_tokenizer(model), load_encoder(model)
    common = {
        "dtype": features["dtype"],
        "data_hash": data_hash(splits),
        "embedding_dim": int(encoder.config.hidden_size),
    }
    poolings = list(outputs)
    results = {
        pooling: TextFeatures(
            {}, {}, {}, {**required_attrs(dataset, name, model, pooling, features), **common}
        )
        for pooling in poolings
    }
    for split in SPLITS:
        pooled, n_tokens = extract_pooled(
            list(splits[split]["text"]),
            tokenizer,
            encoder,
            poolings,
            features["max_length"],
            features["batch_size"],
            features["sort_by_length"],
            label=split,
        )
        labels = np.asarray(list(splits[split]["label"]))
        for pooling, result in results.items():
            result.features[split], result.n_tokens[split] = pooled[pooling], n_tokens
            result.labels[split] = labels
    for pooling, result in results.items():
        write_text_features(outputs[pooling], result)
        log.info(
            "wrote %s: %s",
            outputs[pooling],
            ", ".join(f"{s} {len(result.labels[s])}" for s in SPLITS),
        )
    return results
