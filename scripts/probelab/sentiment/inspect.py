"""Inspecting one encoder on a few reviews: what the tokenizer returns and what the model returns.

Writes `inspect/{model}.json` (docs/sentiment.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from probelab.io import write_json
from probelab.sentiment.data import load_splits
from probelab.sentiment.encoder import (
    encoder_summary,
    load_encoder,
    load_tokenizer,
    resolve_model,
    weights_id,
)

log = logging.getLogger(__name__)


def inspect_encoder(
    data: dict[str, Any],
    demo_folder: Path | None,
    name: str,
    model: str,
    n_samples: int,
    max_length: int,
    out: Path,
) -> dict[str, Any]:
    """For the first `n_samples` training reviews: token ids, attention mask, tokens, and the
    model's hidden-state shape and [CLS] vector (size, norm, first values)."""
    import torch

    texts = list(load_splits(data, demo_folder)["train"]["text"])[:n_samples]
    tokenizer, encoder = load_tokenizer(model), load_encoder(model)
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    with torch.inference_mode():
        output = encoder(**batch, output_hidden_states=True)
    hidden = output.last_hidden_state
    samples = []
    for i, text in enumerate(texts):
        ids = batch["input_ids"][i].tolist()
        cls = hidden[i, 0]
        samples.append(
            {
                "text": text,
                "input_ids": ids,
                "attention_mask": batch["attention_mask"][i].tolist(),
                "tokens": tokenizer.convert_ids_to_tokens(ids),
                "n_tokens": int(batch["attention_mask"][i].sum()),
                "cls_size": int(cls.numel()),
                "cls_norm": float(cls.norm()),
                "cls_head": [float(v) for v in cls[:8]],
            }
        )
        log.info(
            "sample %d: %d tokens, [CLS] norm %.3f",
            i,
            samples[-1]["n_tokens"],
            samples[-1]["cls_norm"],
        )
    result = {
        "model": name,
        "model_id": model,
        "resolved": resolve_model(model),
        "weights": weights_id(model),
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "vocab_size": int(tokenizer.vocab_size),
            "cls_token": tokenizer.cls_token,
            "pad_token": tokenizer.pad_token,
            "returns": sorted(batch.keys()),
        },
        "encoder": encoder_summary(encoder),
        "batch": {
            "input_ids_shape": list(batch["input_ids"].shape),
            "last_hidden_state_shape": list(hidden.shape),
            "hidden_states": len(output.hidden_states),
        },  # embeddings + one per layer
        "samples": samples,
    }
    write_json(out, result)
    return result
