"""Sentiment data: the demo generator, local folders (formats, renamed columns) and bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA

from probelab.sentiment import SentimentDataError
from probelab.sentiment.data import data_hash, input_files, load_splits
from probelab.sentiment.demo import generate_reviews, write_demo_reviews

ROTTEN_TOMATOES = SHARED_DATA / "rotten_tomatoes"


def local_data(
    path: Path, text_column: str = "text", label_column: str = "label", **splits: str
) -> dict:
    return {
        "source": "local",
        "path": str(path),
        "text_column": text_column,
        "label_column": label_column,
        "splits": {"train": "train", "validation": "validation", "test": "test", **splits},
        "label_names": ["negative", "positive"],
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def review_rows(n: int, text: str = "text", label: str = "label") -> list[dict]:
    return [
        {text: f"a review number {i} , {'good' if i % 2 else 'bad'}", label: i % 2, "extra": i}
        for i in range(n)
    ]


def test_demo_reviews_are_deterministic_balanced_and_not_bag_of_words():
    rows = generate_reviews(400, label_noise=0.0, seed=3)
    assert rows == generate_reviews(400, label_noise=0.0, seed=3)
    assert rows != generate_reviews(400, label_noise=0.0, seed=4)
    assert sum(r["label"] for r in rows) == 200
    texts = " ".join(r["text"] for r in rows)
    assert " but " in texts and " not " in texts and "although" in texts
    noisy = generate_reviews(400, label_noise=0.25, seed=3)
    flipped = sum(a["label"] != b["label"] for a, b in zip(rows, noisy, strict=True))
    assert 50 <= flipped <= 150


def test_demo_reviews_written_as_splits(tmp_path: Path):
    sizes = write_demo_reviews(tmp_path, 100, 0.2, 0.1, 0.05, seed=0)
    assert sizes == {"train": 70, "validation": 20, "test": 10}
    demo = {
        "source": "demo",
        "path": None,
        "text_column": "ignored",
        "label_column": "ignored",
        "splits": {"train": "x", "validation": "y", "test": "z"},
        "label_names": ["negative", "positive"],
    }
    splits = load_splits(demo, tmp_path)
    assert {split: len(splits[split]) for split in splits} == sizes
    assert input_files(demo, tmp_path) == [
        str(tmp_path / f"{s}.jsonl") for s in ("train", "validation", "test")
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_local_folder_with_renamed_columns_and_split_names(tmp_path: Path, suffix: str):
    names = {"train": "tr", "validation": "dev", "test": "held_out"}
    for split, stem in names.items():
        frame = pd.DataFrame(
            review_rows(6 if split == "train" else 4, text="sentence", label="polarity")
        )
        path = tmp_path / f"{stem}{suffix}"
        if suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        elif suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    data = local_data(tmp_path, "sentence", "polarity", **names)
    splits = load_splits(data, tmp_path / "unused")
    assert splits["train"].column_names == ["text", "label"]
    assert len(splits["train"]) == 6 and len(splits["test"]) == 4
    assert list(splits["validation"]["label"]) == [0, 1, 0, 1]
    assert list(splits["train"]["text"])[1] == "a review number 1 , good"
    assert input_files(data, tmp_path / "unused") == [
        str(tmp_path / f"{names[s]}{suffix}") for s in names
    ]


def three_splits(folder: Path, train: list[dict]) -> None:
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "validation.jsonl", review_rows(4))
    write_jsonl(folder / "test.jsonl", review_rows(4))


def test_label_outside_0_1_names_file_and_row(tmp_path: Path):
    rows = [
        {"text": "fine", "label": 1},
        {"text": "awful", "label": 0},
        {"text": "meh", "label": 2},
    ]
    three_splits(tmp_path, rows)
    with pytest.raises(
        SentimentDataError, match=r"train\.jsonl row 3 has label 2 in column 'label'; expected 0"
    ):
        load_splits(local_data(tmp_path), tmp_path)


def test_missing_split_names_the_split_and_expected_files(tmp_path: Path):
    write_jsonl(tmp_path / "train.jsonl", review_rows(4))
    write_jsonl(tmp_path / "test.jsonl", review_rows(4))
    with pytest.raises(
        SentimentDataError, match=r"no file for split 'validation'; expected validation\.jsonl"
    ):
        load_splits(local_data(tmp_path), tmp_path)


def test_empty_text_names_file_and_row(tmp_path: Path):
    three_splits(tmp_path, [{"text": "fine", "label": 1}, {"text": "   ", "label": 0}])
    with pytest.raises(
        SentimentDataError,
        match=r"train\.jsonl row 2 has an empty or missing text in column 'text'",
    ):
        load_splits(local_data(tmp_path), tmp_path)


def test_missing_column_names_the_config_key(tmp_path: Path):
    three_splits(tmp_path, review_rows(4))
    with pytest.raises(
        SentimentDataError,
        match=r"has no column 'sentence' \(config key sentiment\.data\.text_column\)",
    ):
        load_splits(local_data(tmp_path, text_column="sentence"), tmp_path)


def test_mixed_formats_and_missing_folder_are_refused(tmp_path: Path):
    write_jsonl(tmp_path / "train.jsonl", review_rows(4))
    write_jsonl(tmp_path / "validation.jsonl", review_rows(4))
    pd.DataFrame(review_rows(4)).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(SentimentDataError, match="mixes file formats"):
        load_splits(local_data(tmp_path), tmp_path)
    with pytest.raises(SentimentDataError, match="does not exist"):
        load_splits(local_data(tmp_path / "absent"), tmp_path)


def test_data_hash_follows_texts_and_labels(tmp_path: Path):
    three_splits(tmp_path, review_rows(6))
    first = data_hash(load_splits(local_data(tmp_path), tmp_path))
    assert first == data_hash(load_splits(local_data(tmp_path), tmp_path))
    rows = review_rows(6)
    rows[0]["label"] = 1
    three_splits(tmp_path, rows)
    assert data_hash(load_splits(local_data(tmp_path), tmp_path)) != first


@pytest.mark.shared_data
@pytest.mark.skipif(not ROTTEN_TOMATOES.is_dir(), reason="../shared/data/rotten_tomatoes is absent")
def test_real_rotten_tomatoes_folder_loads_with_exact_splits():
    splits = load_splits(local_data(ROTTEN_TOMATOES), ROTTEN_TOMATOES)
    assert {s: len(splits[s]) for s in splits} == {"train": 8530, "validation": 1066, "test": 1066}
    assert sum(splits["train"]["label"]) == 4265
    # texts with U+0085 survive intact (a line-splitting reader would cut them)
    assert any("\x85" in text for text in splits["train"]["text"])
