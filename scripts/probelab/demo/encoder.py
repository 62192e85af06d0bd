"""Write a small Transformers CLIP with seeded random weights, for the offline demo.

The architecture comes from a JSON file in the repo (configs/encoders/demo-hf-clip.json): the
CLIPConfig keys (`projection_dim`, `vision_config`, `text_config`) plus `tokenizer_merges`, the
number of byte-pair merges the tokenizer keeps. The tokenizer is CLIP's own byte-level BPE, taken
from the vocabulary file that ships with open_clip and cut to its first merges (a smaller vocabulary
keeps the model small; text is still tokenised correctly, into more pieces). Nothing is downloaded.

The folder (model, image processor, tokenizer) loads with `AutoModel/AutoImageProcessor/
AutoTokenizer.from_pretrained(folder)` and appears under its final name only when complete.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from probelab.encoders import configured_encoder

log = logging.getLogger(__name__)

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def clip_bpe_vocabulary(n_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-level BPE vocabulary and merges, cut to the first `n_merges` merges."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : n_merges + 1] if line.strip()]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_recipe(config: dict[str, Any], name: str) -> tuple[Path, int]:
    """The architecture file and weight seed of encoder `name`, one with `build_from`."""
    settings = configured_encoder(config, name)
    if not settings.get("build_from"):
        raise ValueError(
            f"encoder '{name}' has no build_from in the config's encoders section; "
            "only such encoders are built from a JSON file."
        )
    return Path(settings["build_from"]), int(settings["seed"])


def read_architecture(architecture: Path) -> dict[str, Any]:
    """The CLIP description in `architecture`, checked for the keys the build needs."""
    spec: dict[str, Any] = json.loads(Path(architecture).read_text())
    if spec.get("model_type", "clip") != "clip":
        raise ValueError(
            f"{architecture}: model_type {spec['model_type']!r} is not supported; "
            "only 'clip' can be built offline."
        )
    for key in ("vision_config", "text_config", "tokenizer_merges"):
        if key not in spec:
            raise ValueError(f"{architecture}: the key '{key}' is missing.")
    return spec


def make_demo_encoder(architecture: Path, out_dir: Path, seed: int) -> None:
    """Build the CLIP of `architecture` with weights drawn from `seed`; save it to `out_dir`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    spec = read_architecture(architecture)
    vocab, merges = clip_bpe_vocabulary(int(spec["tokenizer_merges"]))
    text_config = {
        **spec["text_config"],
        "vocab_size": len(vocab),
        # CLIP pools the text at the end-of-text token, found by its id
        "bos_token_id": vocab[BOS],
        "eos_token_id": vocab[EOS],
        "pad_token_id": vocab[EOS],
    }
    config = CLIPConfig(
        text_config=text_config,
        vision_config=spec["vision_config"],
        projection_dim=spec.get("projection_dim", 512),
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    size = int(spec["vision_config"]["image_size"])
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=text_config["max_position_embeddings"]
    )
    _save_atomically([model, processor, tokenizer], Path(out_dir))
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "wrote %s: CLIP with %d parameters (seed %d), vocabulary of %d tokens",
        out_dir,
        n_params,
        seed,
        len(vocab),
    )


def _save_atomically(parts: list[Any], out_dir: Path) -> None:
    """Save each part (`save_pretrained`) into a hidden sibling folder, then swap it in."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary result
    try:
        for part in parts:
            part.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
