"""Tiny random-weight replicas of the encoder families users bring, in their hub file layouts.

Each writer saves a model of a few thousand parameters exactly as its family's hub repository
holds it, so that the loaders meet on this machine what they will meet on real checkpoints:

- `transformers_siglip`: SiglipModel + SiglipImageProcessor + SiglipTokenizer with a SentencePiece
  `spiece.model` (trained here on a few sentences), as google/siglip-* and XraySigLIP ship.
- `transformers_clip`: CLIPModel + CLIPImageProcessor + CLIP's BPE tokenizer (openai/clip-*).
- `open_clip_hub`: an open_clip hub repo (`open_clip_config.json` + `open_clip_model.safetensors`)
  with a timm image tower and a Hugging Face BERT text tower, as BiomedCLIP has, written into a
  Hugging Face cache directory together with the BERT repo its config names, so that
  `hf-hub:<repo>` loads with the hub offline.
- `dinov2`: Dinov2Model + BitImageProcessor, as RAD-DINO ships (image only).
- `torchxrayvision`: a DenseNet-121 saved as torchxrayvision stores downloaded weights
  (`<cache_dir>/<file name of the release URL>`), loadable with `DenseNet(weights=tag,
  cache_dir=...)` (image only).

Used by the tests (tests/test_encoder_families.py) and described, with the real checkpoints each
stands for, in configs/encoders/families.yaml.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path

SENTENCES = [
    "signs of cardiomegaly",
    "evidence of pleural effusion",
    "a chest x-ray showing a mass",
    "a radiograph with pneumothorax",
    "findings consistent with edema and atelectasis",
    "no acute findings in the lungs",
    "nodule in the right upper lobe",
    "consolidation and infiltration of the left lung",
]
XRV_WEIGHTS = "densenet121-res224-all"
# Every replica's transformer: one layer, width 32, two heads.
TINY = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


def write_transformers_siglip(folder: Path, seed: int = 0) -> Path:
    import sentencepiece as spm
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    model_file = io.BytesIO()
    # T5-style special ids, as SigLIP's spiece.model has: pad 0, eos 1, unk 2, no bos
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 4),
        model_writer=model_file,
        vocab_size=60,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    (folder / "spiece.model").write_bytes(model_file.getvalue())
    tokenizer = SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=16)
    config = SiglipConfig(
        text_config={
            "vocab_size": tokenizer.vocab_size,
            **TINY,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "bos_token_id": None,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            **TINY,
        },
    )
    torch.manual_seed(seed)
    SiglipModel(config).save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_transformers_clip(folder: Path, seed: int = 0) -> Path:
    import torch

    from probelab.demo.encoder import write_transformers_clip as write_clip

    spec = {
        "projection_dim": 32,
        "vision_config": {
            "image_size": 32,
            "patch_size": 8,
            **TINY,
        },
        "text_config": {
            **TINY,
            "max_position_embeddings": 16,
        },
        "tokenizer_merges": 500,
    }
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    write_clip(spec, folder)
    return folder


def hub_snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in a Hugging Face cache, registered as its main revision
    (what `hf_hub_download` resolves with the hub offline)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def write_bert(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted({word for sentence in SENTENCES for word in sentence.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=32, **TINY)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return folder


def write_open_clip_hub(
    cache: Path, repo_id: str, text_repo_id: str = "probelab/tiny-bert", seed: int = 0
) -> str:
    """Write an open_clip hub repo (and the BERT repo its text tower names) into the Hugging Face
    cache `cache`; return the model name to configure, `hf-hub:<repo_id>`."""
    import open_clip.model
    import torch
    from safetensors.torch import save_file

    bert = write_bert(hub_snapshot(cache, text_repo_id), seed)
    model_cfg = {
        "embed_dim": 32,
        "vision_cfg": {
            "timm_model_name": "vit_tiny_patch16_224",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 224,  # timm builds the ViT at its own size, as BiomedCLIP's 224 px
        },
        "text_cfg": {
            "hf_model_name": text_repo_id,
            "hf_tokenizer_name": text_repo_id,
            "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "context_length": 16,
        },
    }
    snapshot = hub_snapshot(cache, repo_id)
    (snapshot / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": model_cfg,
                "preprocess_cfg": {
                    "mean": [0.48145466, 0.4578275, 0.40821073],
                    "std": [0.26862954, 0.26130258, 0.27577711],
                },
            },
            indent=1,
        )
    )
    # Built with the text tower read from the BERT snapshot's path: `cache` need not be the
    # process's Hugging Face cache. The weights are the same whichever name the config gives.
    local = copy.deepcopy(model_cfg)
    local["text_cfg"].update(hf_model_name=str(bert), hf_tokenizer_name=str(bert))
    torch.manual_seed(seed)
    model = open_clip.model.CustomTextCLIP(**local)
    save_file(
        {key: value.contiguous() for key, value in model.state_dict().items()},
        snapshot / "open_clip_model.safetensors",
    )
    return f"hf-hub:{repo_id}"


def write_dinov2(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder.mkdir(parents=True, exist_ok=True)
    config = Dinov2Config(image_size=32, patch_size=8, **TINY)
    torch.manual_seed(seed)
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.5307, 0.5307, 0.5307],  # RAD-DINO's own normalisation
        image_std=[0.2583, 0.2583, 0.2583],
    ).save_pretrained(folder)
    return folder


def write_torchxrayvision(folder: Path, seed: int = 0, weights: str = XRV_WEIGHTS) -> Path:
    """A DenseNet-121 with random weights where torchxrayvision keeps the downloaded `weights`."""
    import torch
    import torchxrayvision as xrv

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = xrv.models.DenseNet(num_classes=len(xrv.models.model_urls[weights]["labels"]))
    file_name = Path(xrv.models.model_urls[weights]["weights_url"]).name
    torch.save(model, folder / file_name)
    return folder
