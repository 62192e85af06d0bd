"""Text features: the encoder resolver, length-sorted batching, pooling, and the HDF5 cache."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from probelab.cache import CacheError, CacheMismatchError
from probelab.sentiment import SentimentDataError
from probelab.sentiment.encoder import configured_model, resolve_model, weights_id
from probelab.sentiment.features import (
    TextFeatures,
    batch_order,
    expected_features,
    extract_features,
    read_text_features,
    write_text_features,
)

MINILM = "bundled:all-minilm-l6-v2"
TEXTS = [
    "not bad at all , a quietly moving film .",
    "dull .",
    "the plot is a mess , but the acting is superb and the ending is wonderful .",
    "hardly worth seeing",
    "a small triumph",
]


def test_bundled_minilm_resolves_to_the_packaged_folder():
    folder = Path(resolve_model(MINILM))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert resolve_model("distilbert-base-uncased") == "distilbert-base-uncased"
    assert len(weights_id(MINILM)) == 16
    with pytest.raises(
        SentimentDataError, match="is not a bundled model; known: bundled:all-minilm-l6-v2"
    ):
        resolve_model("bundled:gpt-7")
    encoders = [{"name": "minilm", "model": MINILM}]
    assert configured_model(encoders, "minilm") == MINILM
    with pytest.raises(SentimentDataError, match="no encoder named 'bert'"):
        configured_model(encoders, "bert")


def test_batch_order_sorts_by_length_and_covers_every_row():
    lengths = np.array([5, 2, 9, 2, 7, 1])
    batches = batch_order(lengths, 4, sort_by_length=True)
    assert [b.tolist() for b in batches] == [[5, 1, 3, 0], [4, 2]]
    assert [b.tolist() for b in batch_order(lengths, 4, sort_by_length=False)] == [
        [0, 1, 2, 3],
        [4, 5],
    ]


@pytest.fixture(scope="module")
def minilm():
    from probelab.sentiment.encoder import load_encoder, load_tokenizer

    return load_tokenizer(MINILM), load_encoder(MINILM)


def test_sorted_batches_give_the_same_features_in_file_order(minilm):
    tokenizer, encoder = minilm
    unsorted, lengths = extract_features(
        TEXTS, tokenizer, encoder, "cls", 32, 2, sort_by_length=False
    )
    ordered, lengths_sorted = extract_features(
        TEXTS, tokenizer, encoder, "cls", 32, 2, sort_by_length=True
    )
    assert unsorted.shape == (5, 384) and unsorted.dtype == np.float32
    np.testing.assert_allclose(ordered, unsorted, atol=1e-4)
    np.testing.assert_array_equal(lengths, lengths_sorted)
    assert lengths[1] == 4  # [CLS] dull . [SEP]
    single, _ = extract_features(TEXTS[1:2], tokenizer, encoder, "cls", 32, 1, sort_by_length=True)
    np.testing.assert_allclose(
        single[0], unsorted[1], atol=1e-4
    )  # padding does not change a text's vector
    mean, _ = extract_features(TEXTS, tokenizer, encoder, "mean", 32, 2, sort_by_length=True)
    assert not np.allclose(mean, unsorted)
    truncated, short = extract_features(TEXTS, tokenizer, encoder, "cls", 8, 2, sort_by_length=True)
    assert short.max() == 8


def tiny_cache(attrs: dict | None = None) -> TextFeatures:
    rng = np.random.default_rng(0)
    sizes = {"train": 6, "validation": 3, "test": 2}
    return TextFeatures(
        features={s: rng.normal(size=(n, 4)).astype(np.float32) for s, n in sizes.items()},
        labels={s: np.arange(n) % 2 for s, n in sizes.items()},
        n_tokens={s: np.full(n, 7) for s, n in sizes.items()},
        attrs=attrs
        or {
            "dataset": "d",
            "model": "minilm",
            "model_id": MINILM,
            "weights": "abc",
            "pooling": "cls",
            "max_length": 64,
            "dtype": "float32",
            "data_hash": "h1",
            "embedding_dim": 4,
        },
    )


def test_cache_round_trip(tmp_path: Path):
    cache = tiny_cache()
    write_text_features(tmp_path / "f.h5", cache)
    read = read_text_features(
        tmp_path / "f.h5",
        {"model": "minilm", "pooling": "cls", "max_length": 64, "data_hash": "h1"},
    )
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(read.features[split], cache.features[split])
        np.testing.assert_array_equal(read.labels[split], cache.labels[split])
    assert read.attrs["probelab_version"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_mismatched_cache_is_refused(tmp_path: Path):
    write_text_features(tmp_path / "f.h5", tiny_cache())
    with pytest.raises(CacheMismatchError, match=r"attribute 'pooling' is 'cls', expected 'mean'"):
        read_text_features(tmp_path / "f.h5", {"model": "minilm", "pooling": "mean"})
    with pytest.raises(CacheMismatchError, match="attribute 'weights'"):
        read_text_features(tmp_path / "f.h5", {"weights": "other"})
    with pytest.raises(CacheError, match="does not exist"):
        read_text_features(tmp_path / "absent.h5", {})
    with h5py.File(tmp_path / "foreign.h5", "w") as h5:
        h5.create_dataset("features", data=np.zeros((2, 2)))
    with pytest.raises(CacheError, match="lacks the dataset 'train'"):
        read_text_features(tmp_path / "foreign.h5", {})


def test_failed_write_keeps_the_previous_cache(tmp_path: Path):
    write_text_features(tmp_path / "f.h5", tiny_cache())
    broken = tiny_cache()
    del broken.features["test"]
    with pytest.raises(KeyError):
        write_text_features(tmp_path / "f.h5", broken)
    assert read_text_features(tmp_path / "f.h5", {"data_hash": "h1"}).features["test"].shape == (
        2,
        4,
    )


def test_svm_step_requires_the_provenance_the_config_gives(tmp_path: Path):
    sentiment = {
        "dataset": "d",
        "encoders": [{"name": "minilm", "model": MINILM}],
        "features": {"pooling": ["cls", "mean"], "max_length": 64},
    }
    expected = expected_features(sentiment, "minilm", "cls")
    assert expected == {
        "dataset": "d",
        "model": "minilm",
        "model_id": MINILM,
        "weights": weights_id(MINILM),
        "pooling": "cls",
        "max_length": 64,
    }
    cache = tiny_cache({**expected, "dtype": "float32", "data_hash": "h1", "embedding_dim": 4})
    write_text_features(tmp_path / "f.h5", cache)
    assert read_text_features(tmp_path / "f.h5", expected).attrs["weights"] == expected["weights"]
    with pytest.raises(CacheMismatchError, match="attribute 'pooling' is 'cls', expected 'mean'"):
        read_text_features(tmp_path / "f.h5", expected_features(sentiment, "minilm", "mean"))
