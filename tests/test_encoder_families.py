"""Every supported encoder family, on a tiny replica in its hub file layout, through the real
embed rules: the cached features equal the family's own call, made the way the family was
trained and published (SigLIP prompts: ids padded to the context, no attention mask), on the
same preprocessed pixels and prompts.

The entries come from configs/encoders/families.yaml with `model` pointed at a replica
(probelab.replicas); the open_clip hub replica lives in a temporary Hugging Face cache and loads
by its `hf-hub:` name with the hub offline.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, run_snakemake

from probelab import replicas
from probelab.config import load_config
from probelab.encoders import EncoderError, build_encoder, missing_package
from probelab.images import load_image
from probelab.layout import image_cache_of, prompt_cache_of

pytestmark = pytest.mark.workflow

HUB_REPO = "probelab/tiny-biomedclip"
FAMILIES = yaml.safe_load((REPO / "configs/encoders/families.yaml").read_text())["encoders"]


def normalised(features: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(features.float(), dim=-1).numpy()


def pooled(output: Any) -> torch.Tensor:
    """get_*_features gives a model output in Transformers 5 and the tensor in 4."""
    return getattr(output, "pooler_output", output)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> tuple[Path, Path, dict]:
    workdir = tmp_path_factory.mktemp("families")
    models = workdir / "replicas"
    hub_cache = workdir / "hub"
    replica_of = {
        "siglip": str(replicas.write_transformers_siglip(models / "siglip")),
        "clip": str(replicas.write_transformers_clip(models / "clip")),
        "biomedclip": replicas.write_open_clip_hub(hub_cache, HUB_REPO),
        "rad_dino": str(replicas.write_dinov2(models / "rad_dino")),
        "xrv_densenet": FAMILIES["xrv_densenet"]["model"],
    }
    encoders = {
        name: {**entry, "model": replica_of[name], "device": "cpu", "num_workers": 0}
        for name, entry in FAMILIES.items()
    }
    encoders["siglip"]["precision"] = "fp32"  # bf16 autocast on CPU would round the features
    encoders["xrv_densenet"]["pretrained"] = str(replicas.write_torchxrayvision(models / "xrv"))
    config = {
        "cohort": "families",
        "pathologies": ["Cardiomegaly", "Effusion", "Mass"],
        "data": {"root": "results/families/data"},
        "demo": {"enabled": True, "n_images": 20, "image_size": 64, "images_per_folder": 20},
        "split": {"method": "random"},
        "subsets": {"sizes": ["all"], "seeds": [0]},
        "encoders": encoders,
        "embedding": {"chunk_size": 8, "threads": 1},
        "prompts": {"templates": ["signs of {pathology}", "a chest x-ray showing {pathology}"]},
        "sentiment": {"enabled": False},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    os.environ["HF_HUB_CACHE"] = str(hub_cache)  # read by the Snakemake subprocess
    try:
        result = run_snakemake(workdir, "embeddings", configfile=path)
    finally:
        del os.environ["HF_HUB_CACHE"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return workdir, hub_cache, load_config(path)


def cached(workdir: Path, config: dict, name: str) -> tuple[list[str], np.ndarray]:
    with h5py.File(workdir / image_cache_of(config, name)) as cache:
        return [i.decode() for i in cache["image_id"][...]], cache["features"][...]


def pixels(workdir: Path, encoder, image_ids: list[str]) -> torch.Tensor:
    folder = workdir / "results/families/data"
    paths = {p.name: p for p in folder.rglob("*.png")}
    return torch.stack([encoder.preprocess(load_image(paths[i])) for i in image_ids])


@pytest.mark.parametrize("name", ["siglip", "clip", "rad_dino", "xrv_densenet"])
def test_cached_image_features_equal_the_familys_own_call(embedded, name: str) -> None:
    workdir, _, config = embedded
    encoder = build_encoder(name, config["encoders"][name])
    image_ids, features = cached(workdir, config, name)
    batch = pixels(workdir, encoder, image_ids)
    model = encoder.model
    with torch.inference_mode():
        if name in ("siglip", "clip"):
            reference = pooled(model.get_image_features(pixel_values=batch))
        elif name == "rad_dino":
            reference = model(pixel_values=batch).pooler_output
        else:
            reference = model.features2(batch)
    np.testing.assert_allclose(features, normalised(reference), atol=1e-5)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_cached_siglip_prompts_equal_the_published_call(embedded) -> None:
    """SigLIP as big_vision trained it and as published: SentencePiece ids padded to the full
    context, no attention mask, the last position pooled. Transformers 5's tokenizer also returns
    a mask; the model called with it gives another embedding for a prompt shorter than the
    context (the replica's context is 16 tokens: one template fills it, the other does not)."""
    from transformers import SiglipModel, SiglipTokenizer

    from probelab.cache import read_prompt_cache

    workdir, _, config = embedded
    folder = config["encoders"]["siglip"]["model"]
    cache = read_prompt_cache(workdir / prompt_cache_of(config, "siglip"))
    model = SiglipModel.from_pretrained(folder).eval()
    tokenizer = SiglipTokenizer.from_pretrained(folder)
    texts = [str(t) for t in np.asarray(cache.prompts).ravel()]
    tokens = tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    short = (tokens["attention_mask"][:, -1] == 0).numpy()
    assert short.any(), "every prompt fills the context: a mask would change nothing"
    with torch.inference_mode():
        reference = normalised(pooled(model.get_text_features(input_ids=tokens["input_ids"])))
        masked = normalised(pooled(model.get_text_features(**tokens)))
    cached_prompts = cache.per_template.reshape(len(texts), -1)
    assert cosines(cached_prompts, reference).min() > 0.9999
    np.testing.assert_allclose(cached_prompts, reference, atol=1e-5)
    # the masked call is another embedding for every short prompt, so the comparison above
    # tells the two calls apart
    assert cosines(masked, reference)[short].max() < 0.9999
    # zero-shot scoring reads SigLIP's own scale and bias
    assert cache.logit_scale == pytest.approx(float(model.logit_scale.exp()))
    assert cache.logit_bias == pytest.approx(float(model.logit_bias))


def test_cached_clip_prompts_equal_the_published_call(embedded) -> None:
    """Transformers CLIP as its documentation calls it: padded to the longest prompt, with the
    attention mask (the EOS token is pooled)."""
    from transformers import CLIPModel, CLIPTokenizer

    from probelab.cache import read_prompt_cache

    workdir, _, config = embedded
    folder = config["encoders"]["clip"]["model"]
    cache = read_prompt_cache(workdir / prompt_cache_of(config, "clip"))
    model = CLIPModel.from_pretrained(folder).eval()
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    texts = [str(t) for t in np.asarray(cache.prompts).ravel()]
    tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        reference = normalised(pooled(model.get_text_features(**tokens)))
    cached_prompts = cache.per_template.reshape(len(texts), -1)
    assert cosines(cached_prompts, reference).min() > 0.9999
    np.testing.assert_allclose(cached_prompts, reference, atol=1e-5)


def test_the_open_clip_hub_replica_loads_by_its_hub_name_offline(embedded) -> None:
    """open_clip's own encode_image/encode_text, run in a fresh process whose Hugging Face cache
    is the temporary one (huggingface_hub reads it at import)."""
    workdir, hub_cache, config = embedded
    image_ids, features = cached(workdir, config, "biomedclip")
    encoder_cache = workdir / prompt_cache_of(config, "biomedclip")
    script = f"""
import sys, h5py, numpy as np, torch, open_clip
sys.path.insert(0, {str(REPO / "scripts")!r})
from probelab.images import load_image
from pathlib import Path
from typing import Any
model, _, preprocess = open_clip.create_model_and_transforms("hf-hub:{HUB_REPO}")
model.eval()
tokenizer = open_clip.get_tokenizer("hf-hub:{HUB_REPO}")
paths = {{p.name: p for p in Path({str(workdir / "results/families/data")!r}).rglob("*.png")}}
ids = {image_ids!r}
with torch.inference_mode():
    images = model.encode_image(torch.stack([preprocess(load_image(paths[i])) for i in ids]))
    with h5py.File({str(encoder_cache)!r}) as cache:
        texts = [t.decode() for t in cache["prompts"][...].ravel()]
    texts_out = model.encode_text(tokenizer(texts))
np.save(sys.argv[1], torch.nn.functional.normalize(images, dim=-1).numpy())
np.save(sys.argv[2], torch.nn.functional.normalize(texts_out, dim=-1).numpy())
"""
    out_images, out_texts = workdir / "oc_images.npy", workdir / "oc_texts.npy"
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(out_images), str(out_texts)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(features, np.load(out_images), atol=1e-5)
    with h5py.File(encoder_cache) as cache:
        per_template = cache["per_template"][...]
    np.testing.assert_allclose(
        per_template.reshape(-1, per_template.shape[-1]), np.load(out_texts), atol=1e-5
    )


def test_an_image_only_model_with_text_true_is_refused_in_one_sentence(embedded) -> None:
    _, _, config = embedded
    settings = {**config["encoders"]["rad_dino"], "text": True}
    with pytest.raises(EncoderError, match=r"Dinov2Model, an image-only model; set encoders.x"):
        build_encoder("x", settings)


def test_a_missing_tokenizer_package_is_named_and_image_embedding_still_works(
    embedded, monkeypatch
) -> None:
    workdir, _, config = embedded
    encoder = build_encoder("siglip", config["encoders"]["siglip"])

    def no_sentencepiece() -> None:
        raise ImportError(
            "SiglipTokenizer requires the SentencePiece library but it was not found in your "
            "environment."
        )

    monkeypatch.setattr(encoder, "_tokenizer", None)
    monkeypatch.setattr(encoder, "_load_tokenizer", no_sentencepiece)
    assert encoder.encode_images(torch.zeros((1, *encoder.input_shape))).shape[0] == 1
    with pytest.raises(EncoderError, match=r"needs the Python package 'sentencepiece'"):
        encoder.encode_texts(["signs of mass"])


def test_missing_package_names_the_package() -> None:
    assert missing_package(ImportError("requires the protobuf library")) == "protobuf"
    assert missing_package(ModuleNotFoundError("x", name="skimage.io")) == "skimage"


def test_an_architecture_file_named_siglip_tokenizes_offline(tmp_path: Path) -> None:
    """open_clip.get_tokenizer would send a name containing "siglip" to the hub."""
    architecture = tmp_path / "my-siglip-tiny.json"
    architecture.write_text((REPO / "configs/encoders/probelab-demo-vit-tiny.json").read_text())
    settings = {
        "backend": "open_clip",
        "model": str(architecture),
        "pretrained": None,
        "seed": 0,
        "text": True,
        "device": "cpu",
        "precision": "fp32",
        "normalize": True,
        "trust_remote_code": False,
    }
    assert build_encoder("s", settings).encode_texts(["signs of mass"]).shape == (1, 64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, r"'encoders.xrv_densenet.text' must be false: torchxrayvision models have no text"),
        ({"text": False, "build_from": "x.json", "model": None}, r"build_from' is for demo"),
    ],
)
def test_a_torchxrayvision_entry_is_checked_with_the_config(change: dict, message: str) -> None:
    from probelab.config import ConfigError, validate_config

    entry = {**FAMILIES["xrv_densenet"], "text": True, **change}
    entry = {key: value for key, value in entry.items() if value is not None}
    config = {"cohort": "t", "pathologies": ["Mass"], "data": {"root": "."}}
    with pytest.raises(ConfigError, match=message):
        validate_config({**config, "encoders": {"xrv_densenet": entry}})


def test_every_family_example_is_a_valid_config_entry() -> None:
    from probelab.config import validate_config

    config = {"cohort": "t", "pathologies": ["Mass"], "data": {"root": "."}}
    validated = validate_config({**config, "encoders": copy.deepcopy(FAMILIES)})
    assert set(validated["encoders"]) == set(FAMILIES)


def test_auto_workers_follow_the_jobs_threads() -> None:
    from probelab.embedding import loader_workers

    assert loader_workers("auto", 6) == 6 and loader_workers("auto", None) == 1
    assert loader_workers(3, 6) == 3 and loader_workers(0, 6) == 0
