"""embed_images end to end: bad files, resume after SIGKILL, and the Snakemake rules on a tiny
demo."""

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, checkout_workdir, run_snakemake
from PIL import Image

import probelab.cache
import probelab.embedding
import probelab.encoders
from probelab.cache import (
    CacheMismatchError,
    CacheWriteError,
    NonFiniteFeaturesError,
    plain_value,
    read_image_cache,
    read_prompt_cache,
)
from probelab.cohort import index_hash
from probelab.config import load_config, validate_config
from probelab.embedding import embed_images
from probelab.fingerprint import cache_fingerprints
from probelab.images import ImageLoadError, chunk_batches
from probelab.layout import image_cache_of, prompt_cache_of

DEMO_JSON = REPO / "configs" / "encoders" / "probelab-demo-vit-tiny.json"
EMBEDDING = {
    "chunk_size": 8,
    "prefetch_factor": 2,
    "threads": 1,
    "mem_mb": 1000,
    "runtime": 10,
    "progress_interval_s": 0,
}


def settings(**entry):
    config = {
        "cohort": "t",
        "pathologies": ["Mass"],
        "data": {"root": "."},
        "encoders": {"e": entry},
    }
    defaults = {
        "backend": "open_clip",
        "model": str(DEMO_JSON),
        "device": "cpu",
        "batch_size": 4,
        "num_workers": 0,
    }
    config["encoders"]["e"] = {**defaults, **entry}
    return validate_config(config)["encoders"]["e"]


def write_index(folder: Path, n: int, bad: dict[int, bytes] | None = None) -> Path:
    """n images (mixed modes), some replaced by bad bytes; the index parquet lists them all."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"{i:05d}.png"
        if bad and i in bad:
            path.write_bytes(bad[i])
        elif i % 5 == 1:
            Image.fromarray(rng.integers(0, 255, (48, 48, 4), dtype=np.uint8), mode="RGBA").save(
                path
            )
        elif i % 5 == 2:
            Image.fromarray(rng.integers(0, 4000, (48, 48), dtype=np.uint16)).save(path)
        else:
            Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(path)
        rows.append({"image_id": path.name, "path": str(path), "patient_id": str(i)})
    pd.DataFrame(rows).to_parquet(folder / "index.parquet")
    return folder / "index.parquet"


def test_bad_images_are_recorded_and_skipped_with_a_warning(tmp_path, caplog):
    index = write_index(
        tmp_path / "imgs", 12, bad={3: b"not an image", 9: b"\x89PNG\r\n\x1a\n truncated"}
    )
    caplog.set_level(logging.WARNING)
    summary = embed_images(index, tmp_path / "e.h5", "e", settings(num_workers=1), EMBEDDING)
    assert summary.n_failed == 2
    cache = read_image_cache(
        tmp_path / "e.h5", encoder="e", index_hash=index_hash(pd.read_parquet(index)), dim=64
    )
    assert cache.failed_ids == ["00003.png", "00009.png"]
    assert len(cache.image_ids) == 10 and cache.features.shape == (10, 64)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "00003.png could not be decoded" in warned and "00009.png" in warned


def test_bad_image_stops_the_run_when_configured(tmp_path):
    index = write_index(tmp_path / "imgs", 12, bad={5: b"garbage"})
    with pytest.raises(
        ImageLoadError, match=r"00005\.png could not be decoded .*on_bad_image is fail"
    ):
        embed_images(index, tmp_path / "e.h5", "e", settings(on_bad_image="fail"), EMBEDDING)
    assert not (tmp_path / "e.h5").exists()


def test_empty_or_malformed_index_is_refused(tmp_path):
    pd.DataFrame({"image_id": [], "path": []}).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match=r"empty\.parquet lists no images"):
        embed_images(tmp_path / "empty.parquet", tmp_path / "e.h5", "e", settings(), EMBEDDING)
    pd.DataFrame({"image_id": ["a.png"]}).to_parquet(tmp_path / "nopath.parquet")
    with pytest.raises(ValueError, match=r"nopath\.parquet lacks the column 'path'"):
        embed_images(tmp_path / "nopath.parquet", tmp_path / "e.h5", "e", settings(), EMBEDDING)


@pytest.mark.workflow
def test_resume_after_sigkill_gives_identical_features(tmp_path, caplog):
    index = write_index(tmp_path / "imgs", 30)
    entry = settings(num_workers=1)
    embed_images(index, tmp_path / "reference.h5", "e", entry, EMBEDDING)

    # A real SIGKILL right after the second chunk is saved (no cleanup code can run).
    killer = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        import probelab.cache as cache
        from probelab.embedding import embed_images
        original, saved = cache.ResumableImageCache.write_chunk, []
        def write_then_die(self, start, features, failed, **kwargs):
            original(self, start, features, failed, **kwargs)
            saved.append(start)
            if len(saved) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        cache.ResumableImageCache.write_chunk = write_then_die
        out = Path({str(tmp_path / "e.h5")!r})
        embed_images(Path({str(index)!r}), out, "e", {entry!r}, {EMBEDDING!r})
        """
    )
    killed = subprocess.run(
        [sys.executable, "-c", killer], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "e.h5").exists()
    assert len(list((tmp_path / ".e.h5.partial").glob("chunk_*.npz"))) == 2

    caplog.set_level(logging.INFO)
    summary = embed_images(index, tmp_path / "e.h5", "e", entry, EMBEDDING)
    assert summary.n_encoded == 30 - 16
    assert "resuming" in caplog.text
    resumed, reference = (
        read_image_cache(tmp_path / "e.h5"),
        read_image_cache(tmp_path / "reference.h5"),
    )
    assert np.array_equal(resumed.features, reference.features)
    assert resumed.image_ids.tolist() == reference.image_ids.tolist()
    assert not (tmp_path / ".e.h5.partial").exists()


def test_rerun_after_a_failed_assembly_gives_the_uninterrupted_file(tmp_path, monkeypatch, caplog):
    # 20 rows in chunks of 8: the last chunk is short, so "every chunk done" is row 20, no boundary
    index = write_index(tmp_path / "imgs", 20, bad={6: b"garbage"})
    entry = settings(on_bad_image="skip")
    embed_images(index, tmp_path / "reference.h5", "e", entry, EMBEDDING)

    real_atomic_h5 = probelab.cache.atomic_h5

    @contextmanager
    def disk_full(path):
        with real_atomic_h5(path) as h5:
            yield h5
            raise OSError(28, "No space left on device")  # as HDF5 flushing on close

    monkeypatch.setattr(probelab.cache, "atomic_h5", disk_full)
    with pytest.raises(CacheWriteError, match=r"No space left on device.*the chunks are kept"):
        embed_images(index, tmp_path / "e.h5", "e", entry, EMBEDDING)
    assert not (tmp_path / "e.h5").exists()
    assert len(list((tmp_path / ".e.h5.partial").glob("chunk_*.npz"))) == 3
    assert list(chunk_batches(20, 20, 8, 4)) == []  # nothing left is no error
    monkeypatch.setattr(probelab.cache, "atomic_h5", real_atomic_h5)

    def no_loader(*args, **kwargs):
        raise AssertionError("a complete partial run must not encode again")

    monkeypatch.setattr(probelab.embedding, "make_loader", no_loader)
    caplog.set_level(logging.INFO)
    summary = embed_images(index, tmp_path / "e.h5", "e", entry, EMBEDDING)
    assert summary.n_encoded == 0
    assert "assembling the file without encoding" in caplog.text
    assert not (tmp_path / ".e.h5.partial").exists()
    with h5py.File(tmp_path / "e.h5") as got, h5py.File(tmp_path / "reference.h5") as want:
        for name in ("image_id", "features", "failed"):
            assert np.array_equal(got[name][()], want[name][()]), name
        assert got["failed"][6] and got["features"].dtype == want["features"].dtype
        assert {k: plain_value(v) for k, v in got.attrs.items()} == {
            k: plain_value(v) for k, v in want.attrs.items()
        }


def test_non_finite_encoder_output_is_refused_naming_the_images(tmp_path, monkeypatch):
    index = write_index(tmp_path / "imgs", 12, bad={9: b"garbage"})
    real_build = probelab.encoders.build_encoder

    def overflowing(name, entry):
        encoder = real_build(name, entry)
        encode = encoder.encode_images

        def encode_images(pixels):
            features = encode(pixels)
            features[:] = np.inf  # every image of the batch, failed ones included
            return features

        encoder.encode_images = encode_images
        return encoder

    monkeypatch.setattr(probelab.encoders, "build_encoder", overflowing)
    with pytest.raises(NonFiniteFeaturesError) as caught:
        embed_images(index, tmp_path / "e.h5", "e", settings(), EMBEDDING)
    message = str(caught.value)
    assert message.startswith(
        "encoder 'e' output NaN or infinite features for 8 decoded image(s) of rows 0-7 "
        "(first '00000.png', '00001.png', '00002.png', ...); this comes from the encoder's output"
    )
    assert not (tmp_path / "e.h5").exists()
    assert not list((tmp_path / ".e.h5.partial").glob("chunk_*.npz"))


TINY_CONFIG = """
cohort: tiny
pathologies: [Atelectasis, Effusion, Pleural_Thickening]
data: {{root: results/tiny/data}}
demo: {{enabled: true, n_images: 40, image_size: 64, images_per_folder: 20}}
split: {{method: random}}
subsets: {{sizes: [all], seeds: [0]}}
encoders:
  demo_openclip:
    backend: open_clip
    model: {demo_json}
    batch_size: 8
    num_workers: 1
  demo_hfclip:
    backend: transformers
    build_from: {demo_hf_json}
    num_workers: 0
  image_only:
    backend: open_clip
    model: {demo_json}
    text: false
    num_workers: 0
embedding: {{chunk_size: 16, threads: 1}}
prompts:
  templates: ["signs of {{pathology}}", "a chest x-ray showing {{pathology}}"]
"""


@pytest.mark.workflow
def test_embedding_rules_run_through_snakemake(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        TINY_CONFIG.format(
            demo_json=DEMO_JSON, demo_hf_json=REPO / "configs" / "encoders" / "demo-hf-clip.json"
        )
    )
    run = run_snakemake(tmp_path, "embeddings", configfile=config)
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "results" / "tiny"
    settings = load_config(config)
    index = pd.read_parquet(results / "index.parquet")
    for name in ("demo_openclip", "demo_hfclip", "image_only"):
        cache = read_image_cache(
            tmp_path / image_cache_of(settings, name),
            encoder=name,
            index_hash=index_hash(index),
            dim=64,
            fingerprint=cache_fingerprints(settings, name)["images"],
        )
        assert len(cache.image_ids) + len(cache.failed_ids) == len(index)
        assert cache.attrs["backend"] == ("transformers" if name == "demo_hfclip" else "open_clip")
    for name in ("demo_openclip", "demo_hfclip"):
        prompts = read_prompt_cache(
            tmp_path / prompt_cache_of(settings, name),
            encoder=name,
            pathologies=["Atelectasis", "Effusion", "Pleural_Thickening"],
            dim=64,
            fingerprint=cache_fingerprints(settings, name)["prompts"],
        )
        assert prompts.per_template.shape == (3, 2, 64) and prompts.mega_vector.shape == (3 * 64,)
        assert prompts.prompts[2, 1] == "a chest x-ray showing pleural thickening"
    assert not (results / "prompts" / "image_only").exists()
    logs = results / "logs" / "embed_images" / "demo_openclip"
    assert next(logs.glob("*.log")).read_text().count("img/s") >= 1
    assert not list(results.glob("embeddings/**/.*"))  # no partial or temporary files left

    again = run_snakemake(tmp_path, "embeddings", "--dry-run", configfile=config)
    assert "Nothing to be done" in again.stdout + again.stderr

    image_only_prompts = prompt_cache_of(settings, "image_only")
    refused = run_snakemake(tmp_path, image_only_prompts, configfile=config)
    assert refused.returncode != 0
    log = next((results / "logs" / "embed_prompts" / "image_only").glob("*.log")).read_text()
    assert "encoder 'image_only' has no text tower" in log


@pytest.fixture(scope="module")
def one_encoder_tree(tmp_path_factory) -> Path:
    """A finished embedding of one open_clip encoder, without Snakemake's records (.snakemake/
    deleted: a copied tree, a new clone); each test below changes a copy of it."""
    tree = tmp_path_factory.mktemp("one_encoder")
    architecture = tree / "vit.json"
    architecture.write_text(DEMO_JSON.read_text())
    text = TINY_CONFIG.format(demo_json="vit.json", demo_hf_json="unused")
    config_data = yaml.safe_load(text)
    config_data["encoders"] = {"demo_openclip": config_data["encoders"]["demo_openclip"]}
    (tree / "config.yaml").write_text(yaml.safe_dump(config_data))
    assert run_snakemake(tree, "embeddings", configfile=tree / "config.yaml").returncode == 0
    shutil.rmtree(tree / ".snakemake")
    return tree


@pytest.mark.workflow
@pytest.mark.parametrize("change", [{"seed": 1}, {"normalize": False}, {"layers": 3}])
def test_changed_encoder_settings_or_files_build_a_new_cache(
    one_encoder_tree, tmp_path, monkeypatch, change
):
    """The cache is named by its fingerprint, so other settings ask for another file, also
    without Snakemake's records; the old cache stays, and switching back needs no rebuild."""
    tmp_path = tmp_path / "tree"
    shutil.copytree(one_encoder_tree, tmp_path)  # keeps modification times
    monkeypatch.chdir(tmp_path)  # the architecture file's path is relative to the tree
    architecture, config = tmp_path / "vit.json", tmp_path / "config.yaml"
    config_data = yaml.safe_load(config.read_text())
    old = tmp_path / image_cache_of(load_config(config), "demo_openclip")
    assert old.is_file()
    if "layers" in change:  # the architecture file edited in place: its contents count
        spec = json.loads(architecture.read_text())
        spec["vision_cfg"]["layers"] = change["layers"]
        architecture.write_text(json.dumps(spec))
    else:
        config_data["encoders"]["demo_openclip"].update(change)
        config.write_text(yaml.safe_dump(config_data))
    new = tmp_path / image_cache_of(load_config(config), "demo_openclip")
    assert new != old
    planned = run_snakemake(tmp_path, "embeddings", "--dry-run", configfile=config)
    assert "embed_images" in planned.stdout and str(new.relative_to(tmp_path)) in planned.stdout
    assert run_snakemake(tmp_path, "embeddings", configfile=config).returncode == 0
    field = {"seed": "settings.seed", "normalize": "settings.normalize", "layers": "files.model"}
    with pytest.raises(CacheMismatchError, match=rf"'{field[next(iter(change))]}' is"):
        read_image_cache(new, fingerprint=json.loads(plain_value(read_attrs(old)["fingerprint"])))
    assert old.is_file()  # the cache of the other settings is kept


def read_attrs(path: Path) -> dict:
    with h5py.File(path) as h5:
        return dict(h5.attrs)


@pytest.mark.workflow
def test_embedding_job_asks_for_a_gpu_only_when_its_encoder_runs_on_cuda(tmp_path):
    """A dry run of the demo config in an empty working directory, so that it plans the embedding
    jobs even after `make run` finished them in the checkout."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["encoders"]["demo_openclip"]["device"] = "cuda"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = checkout_workdir(tmp_path / "work")
    result = run_snakemake(workdir, "embeddings", "--dry-run", configfile=path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = result.stdout.split("rule embed_images:")[1:]
    gpus = {job.split("encoder=")[1].split()[0].rstrip(","): "gpu=1" in job for job in jobs}
    assert gpus == {"demo_openclip": True, "demo_hfclip": False}
