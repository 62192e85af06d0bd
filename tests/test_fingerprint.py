"""Fingerprints: canonical regardless of key order, sensitive to file contents (not paths or
times), naming the first field that differs; sentinels rewritten only when their content
changes."""

from __future__ import annotations

import os

import pytest
from test_embed_workflow import EMBEDDING, settings, write_index

from probelab.cache import CacheMismatchError
from probelab.embedding import embed_images
from probelab.fingerprint import (
    canonical,
    content_digest,
    describe_mismatch,
    digest,
    encoder_fingerprint,
    first_difference,
    write_if_changed,
)


def test_key_order_does_not_matter_but_values_do():
    a = {"b": 1, "a": {"y": [1, 2], "x": None}}
    b = {"a": {"x": None, "y": [1, 2]}, "b": 1}
    assert canonical(a) == canonical(b) and digest(a) == digest(b)
    assert digest({**a, "b": 2}) != digest(a)
    assert list(canonical(a)) == ["a", "b"]


def test_first_difference_names_the_field():
    found = {"settings": {"normalize": True, "seed": 0}, "files": {"model": "abc"}}
    assert first_difference(found, found) is None
    assert first_difference(found, {**found, "files": {"model": "def"}}) == "files.model"
    assert first_difference(found, {"settings": found["settings"]}) == "files"
    assert describe_mismatch(
        found, {**found, "settings": {"normalize": False, "seed": 0}}, "here", "there"
    ) == ("'settings.normalize' is True here but False there")


def test_content_digest_follows_contents_not_times(tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x00" * 100)
    first = content_digest(weights)
    os.utime(weights, ns=(1, 1))  # touched: new mtime, same bytes
    assert content_digest(weights) == first
    weights.write_bytes(b"\x01" * 100)  # replaced in place, same size
    os.utime(weights, ns=(2, 2))
    assert content_digest(weights) != first
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.json").write_text("{}")
    before = content_digest(folder)
    (folder / "sub" / "b.json").write_text("{}")
    assert content_digest(folder) != before


def test_encoder_fingerprint_ignores_run_settings(tmp_path):
    architecture = tmp_path / "vit.json"
    architecture.write_text("{}")
    base = {"backend": "open_clip", "model": str(architecture), "normalize": True}
    fingerprint = encoder_fingerprint("e", base)
    assert fingerprint == encoder_fingerprint("e", {**base, "batch_size": 7, "device": "cuda"})
    assert fingerprint != encoder_fingerprint("e", {**base, "normalize": False})
    assert fingerprint["files"]["model"] == content_digest(architecture)


def test_sentinel_is_rewritten_only_when_its_content_changes(tmp_path):
    sentinel = tmp_path / "manifest.json"
    assert write_if_changed(sentinel, {"a": 1, "b": 2})
    mtime = sentinel.stat().st_mtime_ns
    assert not write_if_changed(sentinel, {"b": 2, "a": 1})
    assert sentinel.stat().st_mtime_ns == mtime
    assert write_if_changed(sentinel, {"a": 1, "b": 3})


def test_embedding_refuses_a_cache_name_its_settings_do_not_match(tmp_path):
    index = write_index(tmp_path / "imgs", 4)
    entry = settings()
    planned = encoder_fingerprint("e", {**entry, "normalize": not entry["normalize"]})
    with pytest.raises(CacheMismatchError, match=r"'settings.normalize' is .* now but .* when"):
        embed_images(index, tmp_path / "e.h5", "e", entry, EMBEDDING, expected_fingerprint=planned)
    assert not (tmp_path / "e.h5").exists()
