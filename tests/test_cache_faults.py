"""Caches under faults: a resumed run never mixes two models, a failed rebuild keeps the finished
cache, settings that do not change features rebuild nothing, and images that could not be
decoded are reported at the end of a run and in summary.md."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, run_snakemake
from test_embed_workflow import EMBEDDING, TINY_CONFIG, settings, write_index

import probelab.cache
from probelab.cache import cache_overview, failed_images_notice, read_image_cache
from probelab.config import load_config
from probelab.embedding import embed_images
from probelab.layout import image_cache_of
from probelab.report.summary import caches_section


def test_resumed_run_with_a_changed_architecture_starts_over(tmp_path, monkeypatch, caplog):
    """The issue's case: killed after two chunks, the architecture file edited (layers 2 -> 3),
    rerun into the same file: the old model's chunks are discarded, not continued."""
    architecture = tmp_path / "vit.json"
    spec = json.loads((REPO / "configs" / "encoders" / "probelab-demo-vit-tiny.json").read_text())
    architecture.write_text(json.dumps(spec))
    index = write_index(tmp_path / "imgs", 30)
    out = tmp_path / "e.h5"

    original, saved = probelab.cache.ResumableImageCache.write_chunk, []

    def write_then_fail(self, start, features, failed, **kwargs):
        original(self, start, features, failed, **kwargs)
        saved.append(start)
        if len(saved) == 2:
            raise KeyboardInterrupt  # killed

    monkeypatch.setattr(probelab.cache.ResumableImageCache, "write_chunk", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        embed_images(index, out, "e", settings(model=str(architecture)), EMBEDDING)
    monkeypatch.setattr(probelab.cache.ResumableImageCache, "write_chunk", original)
    assert len(list((tmp_path / ".e.h5.partial").glob("chunk_*.npz"))) == 2

    spec["vision_cfg"]["layers"] = 3
    architecture.write_text(json.dumps(spec, indent=2))
    caplog.set_level(logging.INFO)
    summary = embed_images(index, out, "e", settings(model=str(architecture)), EMBEDDING)
    assert summary.n_encoded == 30 and "discarding partial run" in caplog.text
    fresh = tmp_path / "fresh.h5"
    embed_images(index, fresh, "e", settings(model=str(architecture)), EMBEDDING)
    assert np.array_equal(read_image_cache(out).features, read_image_cache(fresh).features)


def test_undecodable_images_are_listed_for_the_console_and_the_summary(tmp_path):
    index = write_index(tmp_path / "imgs", 12, bad={3: b"not an image", 9: b"garbage"})
    embed_images(index, tmp_path / "e.h5", "e", settings(num_workers=0), EMBEDDING)
    embed_images(index, tmp_path / "clean.h5", "e", settings(), {**EMBEDDING, "chunk_size": 4})
    assert cache_overview(tmp_path / "e.h5").failed_ids == ["00003.png", "00009.png"]
    notice = failed_images_notice(
        {"e": tmp_path / "e.h5", "absent": tmp_path / "none.h5", "ok": tmp_path / "e.h5"}
    )
    assert notice.splitlines()[0] == (
        "encoder e: 2 image(s) could not be decoded and were skipped (on_bad_image: skip): "
        "00003.png, 00009.png; summary.md lists them."
    )
    section = caches_section({"e": tmp_path / "e.h5"})
    assert "| e | `" in section and "| 12 | 2 |" in section
    assert "- `e`: 00003.png, 00009.png" in section


TINY = yaml.safe_load(
    TINY_CONFIG.format(
        demo_json=REPO / "configs" / "encoders" / "probelab-demo-vit-tiny.json",
        demo_hf_json="unused",
    )
)


def _tiny_config(tmp_path: Path, **encoder) -> Path:
    config = json.loads(json.dumps(TINY))
    config["encoders"] = {"demo_openclip": {**config["encoders"]["demo_openclip"], **encoder}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.workflow
def test_a_failed_rebuild_keeps_the_finished_cache(tmp_path):
    configfile = _tiny_config(tmp_path)
    assert run_snakemake(tmp_path, "embeddings", configfile=configfile).returncode == 0
    cache = tmp_path / image_cache_of(load_config(configfile), "demo_openclip")
    before = cache.read_bytes()

    # Settings that change how the run goes, not the features, rebuild nothing ...
    strict = _tiny_config(tmp_path, on_bad_image="fail", batch_size=4, num_workers=0)
    assert image_cache_of(load_config(strict), "demo_openclip") == str(cache.relative_to(tmp_path))
    planned = run_snakemake(tmp_path, "embeddings", "--dry-run", configfile=strict)
    assert "Nothing to be done" in planned.stdout + planned.stderr

    # ... and a forced rebuild that fails (an image went bad, on_bad_image: fail) puts the
    # finished cache back instead of leaving nothing.
    image = next((tmp_path / "results" / "tiny" / "data").rglob("*.png"))
    image.write_bytes(b"no longer a PNG")
    failed = run_snakemake(tmp_path, "embeddings", "--forcerun", "embed_images", configfile=strict)
    assert failed.returncode != 0
    assert "on_bad_image is fail" in failed.stdout + failed.stderr
    assert cache.read_bytes() == before
    assert not list(cache.parent.glob(".*.h5"))  # no temporary file left beside it


@pytest.mark.workflow
def test_a_truncated_cache_is_refused_with_what_to_do(tmp_path):
    configfile = _tiny_config(tmp_path)
    assert run_snakemake(tmp_path, "embeddings", configfile=configfile).returncode == 0
    cache = tmp_path / image_cache_of(load_config(configfile), "demo_openclip")
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])
    with pytest.raises(probelab.cache.CacheError, match=rf"delete it \(`rm {cache}`\)"):
        read_image_cache(cache)
    cache.unlink()
    shutil.rmtree(tmp_path / ".snakemake")
    assert run_snakemake(tmp_path, "embeddings", configfile=configfile).returncode == 0
    (tmp_path / "whole.h5").write_bytes(data)
    rebuilt, whole = read_image_cache(cache), read_image_cache(tmp_path / "whole.h5")
    assert np.array_equal(rebuilt.features, whole.features)
