"""HDF5 caches: atomic writes, round trips, refusal of stale caches, resume after a kill."""

from contextlib import contextmanager

import h5py
import numpy as np
import pytest

import probelab.cache
from probelab.cache import (
    CacheError,
    CacheMismatchError,
    CacheWriteError,
    NonFiniteFeaturesError,
    ResumableImageCache,
    atomic_h5,
    check_attrs,
    read_image_cache,
    read_prompt_cache,
    write_prompt_cache,
)

ATTRS = {
    "encoder": "enc",
    "backend": "open_clip",
    "model_id": "arch.json",
    "weights": "random init (seed 0)",
    "image_size": "64x64",
    "preprocessing": "Compose(...)",
    "normalize": True,
    "index_hash": "0123456789abcdef",
}


def _features(n, dim, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _write_cache(path, n=10, dim=4, chunk=4, dtype="float32", failed_rows=(3,)):
    features = _features(n, dim)
    failed = np.zeros(n, dtype=bool)
    failed[list(failed_rows)] = True
    cache = ResumableImageCache(path, ATTRS, n, chunk, dim, dtype)
    assert cache.resume_row() == 0
    for start in range(0, n, chunk):
        cache.write_chunk(start, features[start : start + chunk], failed[start : start + chunk])
    ids = [f"img{i:03d}.png" for i in range(n)]
    cache.finish(ids)
    return ids, features, failed


def test_atomic_h5_appears_only_on_success(tmp_path):
    target = tmp_path / "c.h5"
    with atomic_h5(target) as h5:
        h5["x"] = np.arange(3)
    assert h5py.File(target, "r")["x"].shape == (3,)
    with pytest.raises(RuntimeError):
        with atomic_h5(target) as h5:
            h5["y"] = np.arange(5)
            raise RuntimeError("killed mid-write")
    with h5py.File(target, "r") as h5:  # the finished file is untouched
        assert list(h5) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5"]


def test_check_attrs_names_file_attribute_and_values():
    check_attrs(
        "f.h5", {"encoder": "a", "dim": np.int64(4)}, {"encoder": "a", "dim": 4, "other": None}
    )
    with pytest.raises(
        CacheMismatchError,
        match=r"cache f\.h5 does not match: attribute 'encoder' is 'a', expected 'b'",
    ):
        check_attrs("f.h5", {"encoder": "a"}, {"encoder": "b"})
    with pytest.raises(CacheMismatchError, match=r"cache f\.h5 has no attribute 'index_hash'"):
        check_attrs("f.h5", {"encoder": "a"}, {"index_hash": "abc"})


def test_image_cache_round_trip(tmp_path):
    ids, features, failed = _write_cache(tmp_path / "enc.h5")
    cache = read_image_cache(
        tmp_path / "enc.h5", encoder="enc", index_hash="0123456789abcdef", dim=4
    )
    assert cache.image_ids.tolist() == [i for i, bad in zip(ids, failed, strict=True) if not bad]
    assert np.array_equal(cache.features, features[~failed])
    assert cache.features.dtype == np.float32
    assert cache.failed_ids == ["img003.png"]
    assert cache.attrs["embedding_dim"] == 4 and cache.attrs["probelab_version"]
    assert not (tmp_path / ".enc.h5.partial").exists()
    with h5py.File(tmp_path / "enc.h5", "r") as h5:
        assert h5["features"].chunks is not None  # chunked storage
        assert h5["failed"][3]


def test_float16_storage_reads_back_as_float32(tmp_path):
    _, features, failed = _write_cache(tmp_path / "half.h5", dtype="float16")
    with h5py.File(tmp_path / "half.h5", "r") as h5:
        assert h5["features"].dtype == np.float16
    cache = read_image_cache(tmp_path / "half.h5")
    assert cache.features.dtype == np.float32
    np.testing.assert_allclose(cache.features, features[~failed], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "attribute"),
    [
        ({"encoder": "other"}, "encoder"),
        ({"index_hash": "ffffffffffffffff"}, "index_hash"),
        ({"dim": 8}, "embedding_dim"),
    ],
)
def test_mismatched_image_cache_is_refused(tmp_path, kwargs, attribute):
    _write_cache(tmp_path / "enc.h5")
    with pytest.raises(
        CacheMismatchError, match=rf"enc\.h5 does not match: attribute '{attribute}'"
    ):
        read_image_cache(tmp_path / "enc.h5", **kwargs)


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(CacheError, match=r"text\.h5 is truncated or not an HDF5 file"):
        read_image_cache(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["features"] = np.zeros((2, 2))
    with pytest.raises(CacheError, match=r"other\.h5 lacks the dataset 'image_id'"):
        read_image_cache(tmp_path / "other.h5")
    with pytest.raises(CacheError, match=r"absent\.h5 does not exist"):
        read_image_cache(tmp_path / "absent.h5")


def test_truncated_cache_says_to_delete_it(tmp_path):
    _write_cache(tmp_path / "enc.h5")
    data = (tmp_path / "enc.h5").read_bytes()
    (tmp_path / "enc.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError) as caught:
        read_image_cache(tmp_path / "enc.h5")
    message = str(caught.value)
    assert message.startswith(f"image cache {tmp_path / 'enc.h5'} is truncated or not an HDF5 file")
    assert f"delete it (`rm {tmp_path / 'enc.h5'}`) and rerun snakemake" in message
    assert message.count(". ") == 0 and message.endswith("rebuilds it.")  # one sentence


@pytest.mark.parametrize("bad_value", [np.inf, -np.inf, np.nan])
def test_cache_with_non_finite_features_is_refused_naming_the_images(tmp_path, bad_value):
    ids, _, _ = _write_cache(tmp_path / "enc.h5", failed_rows=(3,))
    with h5py.File(tmp_path / "enc.h5", "r+") as h5:
        h5["features"][3, 0] = bad_value  # a failed row: never used, so not refused
    assert len(read_image_cache(tmp_path / "enc.h5").image_ids) == 9
    with h5py.File(tmp_path / "enc.h5", "r+") as h5:
        h5["features"][5, 1] = bad_value
        h5["features"][8, 3] = bad_value
    with pytest.raises(
        NonFiniteFeaturesError,
        match=rf"image cache {tmp_path / 'enc.h5'} holds NaN or infinite features for 2 image\(s\) "
        r"\(first 'img005\.png', 'img008\.png'\).*delete it \(`rm .*enc\.h5`\) and rerun",
    ):
        read_image_cache(tmp_path / "enc.h5")


def test_non_finite_encoder_output_is_refused_when_written(tmp_path):
    cache = ResumableImageCache(
        tmp_path / "enc.h5", {**ATTRS, "precision": "fp16"}, 8, 4, 4, "float32"
    )
    cache.resume_row()
    features, failed = _features(4, 4), np.array([False, True, False, False])
    features[1] = np.nan  # a failed row (zeros in practice): not the encoder's fault
    cache.write_chunk(0, features.copy(), failed)
    features = _features(4, 4)
    features[[1, 3], 0] = [np.nan, np.inf]
    with pytest.raises(NonFiniteFeaturesError) as caught:
        cache.write_chunk(4, features, np.zeros(4, dtype=bool), image_ids=["a", "b", "c", "d"])
    message = str(caught.value)
    assert message.startswith(
        "encoder 'enc' output NaN or infinite features for 2 decoded image(s) of rows 4-7 "
        "(first 'b', 'd'); this comes from the encoder's output"
    )
    assert "set encoders.enc.precision to fp32" in message
    assert not cache._chunk_file(4).exists()
    assert cache.resume_row() == 4  # the good chunk stays


def test_features_that_overflow_the_storage_dtype_are_refused(tmp_path):
    cache = ResumableImageCache(tmp_path / "enc.h5", ATTRS, 4, 4, 4, "float16")
    cache.resume_row()
    features = _features(4, 4)
    features[2, 0] = 1e6
    with pytest.raises(
        NonFiniteFeaturesError,
        match=r"features of 1 image\(s\) of rows 0-3 \(first 'row 2'\) exceed the range of the "
        r"cache dtype float16; set encoders\.enc\.dtype to float32",
    ):
        cache.write_chunk(0, features, np.zeros(4, dtype=bool))
    assert not cache._chunk_file(0).exists()


def test_failed_assembly_keeps_the_chunks_and_a_rerun_finishes(tmp_path, monkeypatch):
    n, dim, chunk = 10, 4, 4
    ids, _, _ = _write_cache(tmp_path / "reference.h5", n, dim, chunk)
    features, failed = _features(n, dim), np.zeros(n, dtype=bool)
    failed[3] = True
    real_atomic_h5 = probelab.cache.atomic_h5

    @contextmanager
    def disk_full(path):
        with real_atomic_h5(path) as h5:
            yield h5
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(probelab.cache, "atomic_h5", disk_full)
    first = ResumableImageCache(tmp_path / "enc.h5", ATTRS, n, chunk, dim, "float32")
    first.resume_row()
    for start in range(0, n, chunk):
        first.write_chunk(start, features[start : start + chunk], failed[start : start + chunk])
    with pytest.raises(
        CacheWriteError,
        match=r"could not write image cache .*enc\.h5 .*No space left on device.*the chunks are "
        r"kept",
    ):
        first.finish(ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".enc.h5.partial", "reference.h5"]
    monkeypatch.undo()

    second = ResumableImageCache(tmp_path / "enc.h5", ATTRS, n, chunk, dim, "float32")
    assert second.resume_row() == n  # every chunk is there: nothing left to encode
    second.finish(ids)
    with h5py.File(tmp_path / "enc.h5", "r") as got, h5py.File(tmp_path / "reference.h5") as want:
        for name in ("image_id", "features", "failed"):
            assert np.array_equal(got[name][()], want[name][()])
    assert not second.partial.exists()


def test_resume_after_a_simulated_kill_gives_identical_features(tmp_path):
    n, dim, chunk = 10, 4, 4
    features = _features(n, dim)
    failed = np.zeros(n, dtype=bool)
    ids = [f"img{i:03d}.png" for i in range(n)]
    _write_cache(tmp_path / "reference.h5", n, dim, chunk, failed_rows=())

    first = ResumableImageCache(tmp_path / "enc.h5", ATTRS, n, chunk, dim, "float32")
    first.resume_row()
    first.write_chunk(0, features[:4], failed[:4])
    first.write_chunk(4, features[4:8], failed[4:8])
    # killed while saving the third chunk: its temporary file is left behind, half written
    (first.partial / ".chunk.abc.tmp").write_bytes(b"PK\x03\x04 half")
    del first

    second = ResumableImageCache(tmp_path / "enc.h5", ATTRS, n, chunk, dim, "float32")
    assert second.resume_row() == 8
    assert not (tmp_path / "enc.h5").exists()  # nothing under the final name before it is complete
    second.write_chunk(8, features[8:], failed[8:])
    second.finish(ids)
    resumed = read_image_cache(tmp_path / "enc.h5")
    reference = read_image_cache(tmp_path / "reference.h5")
    assert np.array_equal(resumed.features, reference.features)
    assert resumed.image_ids.tolist() == reference.image_ids.tolist()


def test_partial_run_with_other_provenance_is_discarded(tmp_path):
    first = ResumableImageCache(tmp_path / "enc.h5", ATTRS, 8, 4, 4, "float32")
    first.resume_row()
    first.write_chunk(0, _features(4, 4), np.zeros(4, dtype=bool))
    other = ResumableImageCache(
        tmp_path / "enc.h5", {**ATTRS, "index_hash": "fedcba9876543210"}, 8, 4, 4, "float32"
    )
    assert other.resume_row() == 0
    assert not any(other.partial.glob("chunk_*"))


def test_chunk_of_wrong_shape_is_refused(tmp_path):
    cache = ResumableImageCache(tmp_path / "enc.h5", ATTRS, 8, 4, 4, "float32")
    cache.resume_row()
    with pytest.raises(ValueError, match="chunk at row 0"):
        cache.write_chunk(0, _features(3, 4), np.zeros(3, dtype=bool))


def test_finish_refuses_missing_chunks(tmp_path):
    cache = ResumableImageCache(tmp_path / "enc.h5", ATTRS, 8, 4, 4, "float32")
    cache.resume_row()
    cache.write_chunk(0, _features(4, 4), np.zeros(4, dtype=bool))
    with pytest.raises(CacheError, match="rows from 4"):
        cache.finish([f"{i}" for i in range(8)])
    assert not (tmp_path / "enc.h5").exists()


def _write_prompts(path, pathologies=("Effusion", "Pleural_Thickening"), bias=float("nan")):
    per_template = _features(len(pathologies) * 3, 4).reshape(len(pathologies), 3, 4)
    per_pathology = per_template.mean(axis=1)
    write_prompt_cache(
        path,
        list(pathologies),
        ["a {pathology}", "b {pathology}", "c {pathology}"],
        [[f"{t} {p}" for t in "abc"] for p in pathologies],
        per_template,
        per_pathology,
        per_pathology.reshape(-1),
        {**ATTRS, "embedding_dim": 4, "logit_scale": 100.0, "logit_bias": bias},
    )
    return per_template, per_pathology


def test_prompt_cache_round_trip(tmp_path):
    per_template, per_pathology = _write_prompts(tmp_path / "p.h5", bias=-10.0)
    cache = read_prompt_cache(
        tmp_path / "p.h5", encoder="enc", pathologies=["Effusion", "Pleural_Thickening"], dim=4
    )
    assert cache.pathologies == ["Effusion", "Pleural_Thickening"]
    assert cache.templates == ["a {pathology}", "b {pathology}", "c {pathology}"]
    assert cache.prompts.shape == (2, 3)
    assert np.array_equal(cache.per_template, per_template)
    assert np.array_equal(cache.mega_vector, per_pathology.reshape(-1))
    assert (cache.logit_scale, cache.logit_bias) == (100.0, -10.0)


def test_prompt_cache_without_bias_reads_nan(tmp_path):
    _write_prompts(tmp_path / "p.h5")
    assert np.isnan(read_prompt_cache(tmp_path / "p.h5").logit_bias)


def test_prompt_cache_with_other_pathologies_is_refused(tmp_path):
    _write_prompts(tmp_path / "p.h5")
    with pytest.raises(CacheMismatchError, match=r"p\.h5 does not match: attribute 'pathologies'"):
        read_prompt_cache(tmp_path / "p.h5", pathologies=["Pleural_Thickening", "Effusion"])
    with pytest.raises(CacheMismatchError, match="attribute 'encoder'"):
        read_prompt_cache(tmp_path / "p.h5", encoder="another")
