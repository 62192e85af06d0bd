"""Demo pretraining: captions, which pairs count as matches, the two losses, the built folder, and
the config and fingerprint rules around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DEMO_OPEN_CLIP_JSON, REPO

from probelab.config import ConfigError, validate_config
from probelab.demo.encoder import BuildRecipe, TrainingImages, make_demo_encoder
from probelab.demo.pretrain import caption, clip_loss, siglip_loss, truth_matrix
from probelab.encoders import build_encoder
from probelab.fingerprint import encoder_fingerprint

NAMES = ["cardiomegaly", "effusion", "mass"]


def test_a_caption_names_only_findings_the_image_has() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        labels = rng.integers(0, 2, size=3)
        text, mentioned = caption(labels, NAMES, rng, mention=0.5)
        assert set(np.flatnonzero(mentioned)) <= set(np.flatnonzero(labels))
        assert bool(mentioned.any()) == bool(labels.any())
        for j, name in enumerate(NAMES):
            assert (name in text) == bool(mentioned[j])


def test_a_caption_is_true_of_every_image_that_has_what_it_names() -> None:
    labels = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]])
    mentioned = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]])
    true = truth_matrix(labels, mentioned)
    # captions: "cardiomegaly", "cardiomegaly", a normal phrase, "mass"
    assert true.tolist() == [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
    ]


@pytest.mark.parametrize("loss", [clip_loss, siglip_loss])
def test_both_losses_prefer_logits_that_agree_with_the_truth(loss) -> None:
    true = torch.tensor([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]])
    agreeing = 10 * (2 * true - 1)
    assert loss(agreeing, true) < loss(torch.zeros(3, 3), true) < loss(-agreeing, true)


def tiny_training_set(folder: Path, n: int = 24) -> TrainingImages:
    """n training images (and a few test ones), half with a bright square marking 'Mass'."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n + 4):
        pixels = rng.integers(0, 60, size=(64, 64), dtype=np.uint8)
        mass = i % 2
        if mass:
            pixels[20:40, 20:40] = 255
        path = folder / f"{i:03d}.png"
        Image.fromarray(pixels).save(path)
        rows.append({"image_id": path.name, "path": str(path), "Mass": mass, "Effusion": 0})
    index = pd.DataFrame(rows)
    index.to_parquet(folder / "index.parquet")
    split = index[["image_id"]].assign(split=["train"] * n + ["test"] * 4)
    split.to_parquet(folder / "split.parquet")
    return TrainingImages(folder / "index.parquet", folder / "split.parquet", ["Mass", "Effusion"])


def test_an_open_clip_encoder_is_pretrained_with_the_siglip_loss(tmp_path: Path) -> None:
    training = tiny_training_set(tmp_path)
    pretrain = {
        "loss": "siglip",
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 0.1,
        "mention_probability": 0.7,
        "max_shift": 2,
    }
    recipe = BuildRecipe("oc", "open_clip", DEMO_OPEN_CLIP_JSON, 0, pretrain)
    make_demo_encoder(recipe, tmp_path / "oc", training)
    record = json.loads((tmp_path / "oc" / "pretraining.json").read_text())
    assert record["n_images"] == 24 and record["steps"] == 2 * 3
    assert record["settings"] == pretrain and record["logit_bias"] is not None
    settings = validate_config(
        {
            "cohort": "t",
            "pathologies": ["Mass"],
            "data": {"root": "."},
            "encoders": {
                "oc": {
                    "backend": "open_clip",
                    "build_from": str(DEMO_OPEN_CLIP_JSON),
                    "pretrain": pretrain,
                    "device": "cpu",
                }
            },
        }
    )["encoders"]["oc"]
    encoder = build_encoder("oc", {**settings, "model": str(tmp_path / "oc")})
    # zero-shot scoring reads the bias pretraining learned; provenance names the very weights
    assert encoder.logit_bias == pytest.approx(record["logit_bias"])
    assert encoder.provenance()["weights"].startswith("pretrained (siglip loss, 24 training images")
    random = BuildRecipe("oc", "open_clip", DEMO_OPEN_CLIP_JSON, 0, None)
    make_demo_encoder(random, tmp_path / "random")
    pixels = torch.zeros((1, *encoder.input_shape))
    untrained = build_encoder(
        "r", {**settings, "pretrain": None, "model": str(tmp_path / "random")}
    )
    assert not np.allclose(encoder.encode_images(pixels), untrained.encode_images(pixels))


def demo_config() -> dict:
    import yaml

    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"build_from": None, "model": "ViT-B-16"},
            r"'encoders.demo_openclip.pretrain' is set, but encoder demo_openclip has no build",
        ),
        ({"text": False}, r"pretraining pairs images with captions, so it needs the text tower"),
    ],
)
def test_pretraining_is_refused_where_it_cannot_run(change: dict, message: str) -> None:
    config = demo_config()
    config["encoders"]["demo_openclip"].update(change)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_the_siglip_loss_is_refused_for_a_transformers_clip() -> None:
    config = demo_config()
    config["encoders"]["demo_hfclip"]["pretrain"]["loss"] = "siglip"
    with pytest.raises(ConfigError, match=r"pretrain.loss' is siglip, but encoder demo_hfclip"):
        validate_config(config)


def test_a_pretraining_setting_changes_the_cache_fingerprint() -> None:
    settings = validate_config(demo_config())["encoders"]["demo_hfclip"]
    longer = {**settings, "pretrain": {**settings["pretrain"], "epochs": 41}}
    assert encoder_fingerprint("e", settings) != encoder_fingerprint("e", longer)
    unpretrained = {**settings, "pretrain": None}
    assert encoder_fingerprint("e", settings) != encoder_fingerprint("e", unpretrained)
