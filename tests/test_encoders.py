"""Encoders of both backends: configured dimension, seeding, normalisation, refusals."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

from probelab.config import ConfigError, validate_config
from probelab.demo.encoder import BuildRecipe, make_demo_encoder
from probelab.encoders import EncoderError, build_encoder, effective_precision, pick_device

DEMO_JSON = REPO / "configs" / "encoders" / "probelab-demo-vit-tiny.json"
DEMO_HF_JSON = REPO / "configs" / "encoders" / "demo-hf-clip.json"


def hf_recipe(seed: int) -> BuildRecipe:
    return BuildRecipe("hf", "transformers", DEMO_HF_JSON, seed, pretrain=None)


def settings(**entry):
    """An encoder entry with the schema's defaults filled in, as the workflow sees it."""
    config = {
        "cohort": "t",
        "pathologies": ["Mass"],
        "data": {"root": "."},
        "encoders": {"e": {"device": "cpu", **entry}},
    }
    return validate_config(config)["encoders"]["e"]


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "clip"
    make_demo_encoder(hf_recipe(0), folder)
    return folder


def _pixels(encoder, n=3):
    return torch.from_numpy(
        np.random.default_rng(1).normal(size=(n, *encoder.input_shape)).astype(np.float32)
    )


def test_open_clip_from_repo_json_gives_the_configured_dimension(tmp_path):
    architecture = json.loads(DEMO_JSON.read_text())
    architecture["embed_dim"] = 48
    (tmp_path / "probelab-test-dim48.json").write_text(json.dumps(architecture))
    encoder = build_encoder(
        "oc", settings(backend="open_clip", model=str(tmp_path / "probelab-test-dim48.json"))
    )
    assert encoder.embed_dim == 48 and encoder.input_shape == (3, 64, 64)
    assert encoder.encode_images(_pixels(encoder)).shape == (3, 48)
    assert encoder.encode_texts(["signs of mass", "evidence of effusion"]).shape == (2, 48)
    assert encoder.provenance()["weights"] == "random init (seed 0)"


def test_transformers_clip_gives_the_configured_dimension(hf_clip):
    encoder = build_encoder("hf", settings(backend="transformers", model=str(hf_clip)))
    assert encoder.embed_dim == json.loads(DEMO_HF_JSON.read_text())["projection_dim"]
    features = encoder.encode_images(_pixels(encoder))
    assert features.shape == (3, encoder.embed_dim) and features.dtype == np.float32
    assert encoder.encode_texts(["a chest x-ray showing pleural thickening"]).shape == (
        1,
        encoder.embed_dim,
    )
    assert encoder.logit_scale > 0 and np.isnan(encoder.logit_bias)


def test_open_clip_random_weights_follow_the_seed():
    a = build_encoder("a", settings(backend="open_clip", model=str(DEMO_JSON), seed=3))
    b = build_encoder("b", settings(backend="open_clip", model=str(DEMO_JSON), seed=3))
    c = build_encoder("c", settings(backend="open_clip", model=str(DEMO_JSON), seed=4))
    pixels = _pixels(a)
    assert np.array_equal(a.encode_images(pixels), b.encode_images(pixels))
    assert not np.allclose(a.encode_images(pixels), c.encode_images(pixels))


def test_demo_transformers_model_follows_the_seed(hf_clip, tmp_path):
    make_demo_encoder(hf_recipe(0), tmp_path / "again")
    make_demo_encoder(hf_recipe(1), tmp_path / "other")
    first = build_encoder("x", settings(backend="transformers", model=str(hf_clip)))
    again = build_encoder("y", settings(backend="transformers", model=str(tmp_path / "again")))
    other = build_encoder("z", settings(backend="transformers", model=str(tmp_path / "other")))
    pixels = _pixels(first)
    assert np.array_equal(first.encode_images(pixels), again.encode_images(pixels))
    assert not np.allclose(first.encode_images(pixels), other.encode_images(pixels))


def test_normalisation_is_configurable():
    normalised = build_encoder("n", settings(backend="open_clip", model=str(DEMO_JSON)))
    raw = build_encoder("r", settings(backend="open_clip", model=str(DEMO_JSON), normalize=False))
    pixels = _pixels(raw)
    np.testing.assert_allclose(
        np.linalg.norm(normalised.encode_images(pixels), axis=1), 1.0, rtol=1e-5
    )
    assert not np.allclose(np.linalg.norm(raw.encode_images(pixels), axis=1), 1.0)


def test_encoder_without_text_tower_refuses_text():
    encoder = build_encoder(
        "imgonly", settings(backend="open_clip", model=str(DEMO_JSON), text=False)
    )
    assert encoder.encode_images(_pixels(encoder)).shape[1] == encoder.embed_dim
    with pytest.raises(
        EncoderError,
        match=r"encoder 'imgonly' has no text tower \(config encoders\.imgonly\.text is false\)",
    ):
        encoder.encode_texts(["signs of mass"])


def test_embed_prompts_refuses_an_encoder_without_text_tower(tmp_path):
    from probelab.embedding import NoTextTowerError, embed_prompts

    entry = settings(backend="open_clip", model=str(DEMO_JSON), text=False)
    with pytest.raises(NoTextTowerError, match="encoder 'imgonly' has no text tower"):
        embed_prompts(
            tmp_path / "p.h5",
            "imgonly",
            entry,
            ["Mass"],
            {"templates": ["{pathology}"], "names": {}},
        )
    assert not (tmp_path / "p.h5").exists()


def test_missing_architecture_file_is_named(tmp_path):
    with pytest.raises(EncoderError, match=r"architecture file .*nothere\.json does not exist"):
        build_encoder("m", settings(backend="open_clip", model=str(tmp_path / "nothere.json")))


def test_unknown_open_clip_weights_are_named():
    with pytest.raises(EncoderError, match="open_clip could not build"):
        build_encoder(
            "w",
            settings(backend="open_clip", model=str(DEMO_JSON), pretrained="/no/such/weights.pt"),
        )


def test_transformers_backend_refuses_pretrained(hf_clip):
    with pytest.raises(EncoderError, match="pretrained is for open_clip only"):
        build_encoder("p", settings(backend="transformers", model=str(hf_clip), pretrained="x"))


def test_schema_requires_model_or_build_from():
    with pytest.raises(ConfigError, match="encoders.e"):
        settings(backend="open_clip")
    with pytest.raises(ConfigError, match="encoders.e"):
        settings(backend="transformers", model="m", build_from="a.json")
    with pytest.raises(ConfigError, match="encoders.e.batch_size"):
        settings(backend="open_clip", model="m", batch_size=0)
    entry = settings(backend="transformers", build_from="configs/encoders/demo-hf-clip.json")
    assert entry["trust_remote_code"] is False and entry["on_bad_image"] == "skip"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_choice_on_a_cpu_machine():
    assert pick_device("auto") in ("cpu", "mps")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(EncoderError, match="device 'cuda' was requested but is not available"):
        pick_device("cuda")


def test_fp16_falls_back_to_fp32_on_cpu():
    assert effective_precision("fp16", "cpu") == "fp32"
    assert effective_precision("bf16", "cpu") == "bf16"
    assert effective_precision("fp16", "cuda") == "fp16"


def test_bf16_autocast_runs_on_cpu():
    encoder = build_encoder(
        "b", settings(backend="open_clip", model=str(DEMO_JSON), precision="bf16")
    )
    features = encoder.encode_images(_pixels(encoder))
    assert features.dtype == np.float32 and np.isfinite(features).all()


@pytest.mark.workflow
def test_heavy_libraries_are_not_imported_by_the_package_modules():
    import subprocess

    code = (
        "import probelab.encoders, probelab.cache, probelab.images, probelab.prompts, sys; "
        "print([m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO / "scripts",
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_configured_encoder_names_an_unknown_encoder_and_takes_a_model_override():
    from probelab.encoders import configured_encoder

    config = {"encoders": {"a": {"backend": "open_clip", "model": "ViT-B-16"}}}
    assert configured_encoder(config, "a", "built/a")["model"] == "built/a"
    assert config["encoders"]["a"]["model"] == "ViT-B-16"
    with pytest.raises(
        ValueError, match=r"encoder 'b' is not in the config's encoders section \(a\)"
    ):
        configured_encoder(config, "b")


@pytest.fixture(scope="module")
def siglip_replica(tmp_path_factory):
    from probelab.replicas import write_transformers_siglip

    return write_transformers_siglip(tmp_path_factory.mktemp("siglip") / "siglip")


@pytest.mark.parametrize("family", ["siglip", "siglip2"])
def test_siglip_prompts_are_the_published_unmasked_full_context_call(siglip_replica, family):
    """SigLIP and SigLIP 2 were trained (big_vision) on ids padded to the full context with no
    attention mask; the reference is the model called so, on a prompt shorter than the
    context."""
    from transformers import Siglip2Config, Siglip2Model, SiglipModel, SiglipTokenizer

    from probelab.encoders import TransformersEncoder
    from probelab.replicas import TINY

    tokenizer = SiglipTokenizer.from_pretrained(siglip_replica)
    if family == "siglip":
        model = SiglipModel.from_pretrained(siglip_replica)
    else:
        torch.manual_seed(0)
        text = {"vocab_size": tokenizer.vocab_size, "max_position_embeddings": 16, **TINY}
        vision = {"num_patches": 16, "patch_size": 8, **TINY}
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision))
    model.eval()
    encoder = TransformersEncoder(
        name=family,
        backend="transformers",
        model_id=family,
        weights="replica",
        model=model,
        preprocess=None,
        device="cpu",
        precision="fp32",
        normalize=True,
        has_text=True,
        _tokenizer=tokenizer,
    )
    tokens = tokenizer(
        ["signs of mass"],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    )
    assert tokens["attention_mask"][0, -1] == 0  # the prompt does not fill the context
    with torch.inference_mode():
        output = model.get_text_features(input_ids=tokens["input_ids"])
    reference = torch.nn.functional.normalize(getattr(output, "pooler_output", output), dim=-1)
    features = encoder.encode_texts(["signs of mass"])
    assert float(features[0] @ reference[0].numpy()) > 0.9999


def test_prompt_caches_from_before_the_text_code_version_are_not_reused(tmp_path):
    """A prompt cache written before SigLIP lost its mask records no text code version: its
    name differs from the one planned now (so it is rebuilt beside it) and a reader refuses it."""
    import h5py

    from probelab.cache import CacheMismatchError, fingerprint_attrs, read_prompt_cache
    from probelab.embedding import embed_prompts
    from probelab.fingerprint import digest, prompt_fingerprint

    entry = settings(backend="open_clip", model=str(DEMO_JSON))
    prompts = {"templates": ["signs of {pathology}"], "names": {}}
    now = prompt_fingerprint("e", entry, ["Mass"], prompts)
    before = {key: value for key, value in now.items() if key != "text_code"}
    assert digest(before) != digest(now)
    path = tmp_path / "p.h5"
    embed_prompts(path, "e", entry, ["Mass"], prompts)
    with h5py.File(path, "r+") as cache:
        cache.attrs.update(fingerprint_attrs(before))
    with pytest.raises(CacheMismatchError, match="'text_code'"):
        read_prompt_cache(path, fingerprint=now)
