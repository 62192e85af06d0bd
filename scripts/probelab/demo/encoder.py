"""Build a tiny demo CLIP from an architecture file, and pretrain it on the cohort's training split.

Two backends, so that both of the workflow's loaders are exercised:

- `transformers`: the JSON holds CLIPConfig keys (`projection_dim`, `vision_config`,
  `text_config`) plus `tokenizer_merges`, the number of byte-pair merges the tokenizer keeps. The
  tokenizer is CLIP's own byte-level BPE, taken from the vocabulary file that ships with open_clip
  and cut to its first merges (a smaller vocabulary keeps the model small; text is still tokenised
  correctly, into more pieces). The folder loads with the Transformers Auto classes.
- `open_clip`: the JSON is an open_clip model config (`embed_dim`, `vision_cfg`, `text_cfg`). The
  folder (open_clip_config.json and the weights) loads as `local-dir:`. With the siglip loss the
  model gets SigLIP's learnable logit bias, which zero-shot scoring then uses.

Weights are drawn from the encoder's seed. With a `pretrain` entry, the model is then trained
contrastively (probelab.demo.pretrain) on the training split's images, preprocessed by the very
loader the embedding step uses; pretraining.json in the folder records how. Nothing is downloaded,
and the folder appears under its final name only when complete.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.demo.pretrain import PretrainSettings, pretrain
from probelab.encoders import PRETRAINING_FILE, build_encoder
from probelab.fingerprint import PRETRAIN_CODE_VERSION, digest
from probelab.masking import refuse_masked

log = logging.getLogger(__name__)

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
OPEN_CLIP_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
TRANSFORMERS_KEYS = ("vision_config", "text_config", "tokenizer_merges")
# SigLIP's starting temperature (its paper's t' = log 10); the bias starts at 0 (pretrain.py).
SIGLIP_INIT_SCALE = 10.0


@dataclass(frozen=True)
class BuildRecipe:
    """What rule make_demo_encoder builds an encoder from (config key `encoders.<name>`)."""

    name: str
    backend: str
    architecture: Path
    seed: int
    pretrain: dict[str, Any] | None

    @classmethod
    def of(cls, name: str, settings: dict[str, Any]) -> BuildRecipe:
        """The recipe in encoder `name`'s validated config entry `settings`."""
        if not settings.get("build_from"):
            raise ValueError(
                f"encoder '{name}' has no build_from in the config's encoders section; "
                "only such encoders are built from a JSON file."
            )
        return cls(
            name=name,
            backend=settings["backend"],
            architecture=Path(settings["build_from"]),
            seed=int(settings["seed"]),
            pretrain=settings.get("pretrain"),
        )


@dataclass(frozen=True)
class TrainingImages:
    """The cohort files pretraining reads its training split from."""

    index: Path
    split: Path
    pathologies: list[str]


def clip_bpe_vocabulary(n_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-level BPE vocabulary and merges, cut to the first `n_merges` merges."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : n_merges + 1] if line.strip()]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def read_architecture(architecture: Path, backend: str) -> dict[str, Any]:
    """The model description in `architecture`, checked for the keys `backend` needs."""
    spec: dict[str, Any] = json.loads(Path(architecture).read_text())
    if backend == "transformers" and spec.get("model_type", "clip") != "clip":
        raise ValueError(
            f"{architecture}: model_type {spec['model_type']!r} is not supported; "
            "only 'clip' can be built offline."
        )
    for key in TRANSFORMERS_KEYS if backend == "transformers" else OPEN_CLIP_KEYS:
        if key not in spec:
            raise ValueError(f"{architecture}: the key '{key}' is missing (backend {backend}).")
    return spec


def write_transformers_clip(spec: dict[str, Any], folder: Path) -> None:
    """A Transformers CLIP described by `spec` (random weights from torch's current seed) and its
    processor and tokenizer, saved into `folder`."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

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
    size = int(spec["vision_config"]["image_size"])
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=text_config["max_position_embeddings"]
    )
    for part in (CLIPModel(config).eval(), processor, tokenizer):
        part.save_pretrained(folder)


def _write_open_clip(spec: dict[str, Any], folder: Path, siglip: bool) -> None:
    from open_clip.model import CLIP

    model_cfg = dict(spec)
    if siglip:
        model_cfg.update(init_logit_bias=0.0, init_logit_scale=math.log(SIGLIP_INIT_SCALE))
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}, indent=1)
    )
    _save_open_clip(CLIP(**model_cfg), folder)


def _save_open_clip(model: Any, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file(
        {key: value.contiguous() for key, value in model.state_dict().items()},
        folder / "open_clip_model.safetensors",
    )


def _training_pixels(encoder: Any, training: TrainingImages) -> tuple[Any, np.ndarray, list[str]]:
    """The training split's images, preprocessed by the encoder's own loader, and their labels."""
    import torch

    from probelab.images import ImageDataset

    split = pd.read_parquet(training.split, columns=["image_id", "split"])
    index = pd.read_parquet(training.index, columns=["image_id", "path", *training.pathologies])
    train = index.merge(split[split["split"] == "train"], on="image_id", validate="one_to_one")
    paths = train["path"].astype(str).tolist()
    dataset = ImageDataset(paths, encoder.preprocess, encoder.input_shape)
    rows, pixels = [], []
    for row in range(len(dataset)):
        _, tensor, error = dataset[row]
        if error:
            log.warning("%s; left out of pretraining.", error)
            continue
        rows.append(row)
        pixels.append(tensor)
    if not rows:
        raise ValueError(f"pretraining: no training image of {training.index} could be read.")
    labels = train[training.pathologies].to_numpy(dtype=np.float64, na_value=np.nan)[rows]
    # refused here, before the int8 cast would fail on NaN with a message that names nothing
    refuse_masked(labels, f"demo pretraining on {training.index} (captions come from the labels)")
    labels = labels.astype(np.int8)
    return torch.stack(pixels), labels, train["image_id"].astype(str).iloc[rows].tolist()


def _pretrain_in_place(
    recipe: BuildRecipe, folder: Path, training: TrainingImages, threads: int
) -> dict[str, Any]:
    """Pretrain the model saved in `folder` and save it back; return what pretraining.json says."""
    import torch

    torch.set_num_threads(threads)
    settings = PretrainSettings.of(recipe.pretrain or {})
    encoder = build_encoder(
        recipe.name,
        {
            "backend": recipe.backend,
            "model": str(folder),
            "pretrained": None,
            "seed": recipe.seed,
            "text": True,
            "device": "cpu",
            "precision": "fp32",
            "normalize": True,
            "trust_remote_code": False,
        },
    )
    pixels, labels, image_ids = _training_pixels(encoder, training)
    report = pretrain(encoder, pixels, labels, training.pathologies, settings, recipe.seed)
    if recipe.backend == "transformers":
        encoder.model.save_pretrained(folder)
    else:
        _save_open_clip(encoder.model, folder)
    log.info(
        "pretrained %s on %d training images: loss %.3f -> %.3f, logit scale %.2f",
        recipe.name,
        report.n_images,
        report.loss_per_epoch[0],
        report.loss_per_epoch[-1],
        report.logit_scale,
    )
    return {
        **asdict(report),
        "settings": asdict(settings),
        "seed": recipe.seed,
        "code_version": PRETRAIN_CODE_VERSION,
        "training_image_ids_digest": digest(image_ids),
        "pathologies": training.pathologies,
    }


def make_demo_encoder(
    recipe: BuildRecipe,
    out_dir: Path,
    training: TrainingImages | None = None,
    threads: int = 1,
) -> None:
    """Build the encoder of `recipe` into `out_dir`; pretrain it when the recipe says so (then
    `training` names the cohort files)."""
    import torch

    spec = read_architecture(recipe.architecture, recipe.backend)
    if recipe.pretrain and training is None:
        raise ValueError(
            f"encoder '{recipe.name}' has a pretrain entry, but no training images were given."
        )
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary result
    try:
        torch.manual_seed(recipe.seed)
        if recipe.backend == "transformers":
            write_transformers_clip(spec, tmp)
        else:
            siglip = bool(recipe.pretrain) and recipe.pretrain["loss"] == "siglip"
            _write_open_clip(spec, tmp, siglip)
        if recipe.pretrain and training is not None:
            record = _pretrain_in_place(recipe, tmp, training, threads)
            (tmp / PRETRAINING_FILE).write_text(json.dumps(record, indent=1))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("wrote %s (%s, seed %d)", out_dir, recipe.backend, recipe.seed)
