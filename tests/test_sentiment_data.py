"""Sentiment data: the demo generator, local folders (formats, renamed columns) and bad input."""

import json
from pathlib import Path
from typing import Any

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
        SentimentDataError,
        match=r"train\.jsonl line 3 has label 2 in column 'label'; expected 0 \(negative\) or 1 "
        r"\(positive\)\.$",
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
        match=r"train\.jsonl line 2 has an empty or missing text in column 'text'\.$",
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


def bad_train_file(folder: Path, content: bytes, name: str = "train.jsonl") -> Path:
    """Good validation and test files, and a train file of exactly these bytes."""
    three_splits(folder, review_rows(4))
    (folder / "train.jsonl").unlink()
    path = folder / name
    path.write_bytes(content)
    return path


def refusal(folder: Path, **config: Any) -> str:
    with pytest.raises(SentimentDataError) as caught:
        load_splits({**local_data(folder), **config}, folder)
    return str(caught.value)


def test_invalid_utf8_names_file_line_byte_and_position(tmp_path: Path):
    # line 3 was saved as latin-1: "é" is the single byte 0xe9
    content = (
        b'{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n'
        b'{"text": "caf\xe9 food", "label": 1}\n'
    )
    path = bad_train_file(tmp_path, content)
    assert refusal(tmp_path) == (
        f"file {path} line 3: not valid UTF-8 (byte 0xe9 at position 14 of the line); "
        "save the file as UTF-8."
    )


def test_malformed_json_line_names_file_line_and_json_error(tmp_path: Path):
    content = b'{"text": "good", "label": 1}\n\n{"text": "bad", "label": 0\n'
    path = bad_train_file(tmp_path, content)
    # the blank line 2 is skipped but counted: the broken object is on line 3
    assert refusal(tmp_path) == (
        f"file {path} line 3: not a JSON object (Expecting ',' delimiter at column 27); "
        'expected one {"text": ..., "label": ...} per line.'
    )


def test_json_line_that_is_not_an_object_names_what_it_is(tmp_path: Path):
    folder = tmp_path / "data"
    path = bad_train_file(folder, b'{"text": "good", "label": 1}\n["bad", 0]\n')
    message = refusal(folder, text_column="review", label_column="stars")
    assert message == (
        f"file {path} line 2: not a JSON object (found an array); "
        'expected one {"review": ..., "stars": ...} per line.'
    )


@pytest.mark.parametrize("content", [b"", b"\n  \n\r\n"], ids=["empty", "blank-lines"])
def test_empty_file_holds_no_reviews(tmp_path: Path, content: bytes):
    path = bad_train_file(tmp_path, content)
    assert refusal(tmp_path) == (
        f"file {path} holds no reviews; expected one JSON object per line."
    )


def test_line_without_label_names_file_line_and_column(tmp_path: Path):
    path = bad_train_file(tmp_path, b'{"text": "good", "label": 1}\n{"text": "bad"}\n')
    assert refusal(tmp_path) == (
        f"file {path} line 2 has no label in column 'label'; expected 0 (negative) or 1 (positive)."
    )


def test_line_without_text_names_file_line_and_column(tmp_path: Path):
    path = bad_train_file(tmp_path, b'{"text": "good", "label": 1}\n{"label": 0}\n')
    assert refusal(tmp_path) == (
        f"file {path} line 2 has an empty or missing text in column 'text'."
    )


def test_label_outside_the_set_names_the_configured_label_names(tmp_path: Path):
    path = bad_train_file(
        tmp_path, b'{"text": "good", "label": 1}\n{"text": "bad", "label": "0"}\n'
    )
    assert refusal(tmp_path, label_names=["bad", "good"]) == (
        f"file {path} line 2 has label '0' in column 'label'; expected 0 (bad) or 1 (good)."
    )


def test_texts_with_u0085_u2028_and_a_bom_are_read_intact(tmp_path: Path):
    texts = ["first\x85half , good", "a\u2028b , bad", "plain , good", "x\r\ny , bad"]
    lines = [
        json.dumps({"text": t, "label": 1 - i % 2}, ensure_ascii=False) for i, t in enumerate(texts)
    ]
    bad_train_file(tmp_path, ("\ufeff" + "\n".join(lines) + "\n").encode())
    splits = load_splits(local_data(tmp_path), tmp_path)
    assert list(splits["train"]["text"]) == texts
    assert list(splits["train"]["label"]) == [1, 0, 1, 0]


def test_json_array_file_still_loads_and_its_errors_name_the_line(tmp_path: Path):
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.json").write_text(json.dumps(review_rows(4), indent=1))
    assert len(load_splits(local_data(tmp_path), tmp_path)["train"]) == 4
    path = tmp_path / "train.json"
    path.write_text('[\n {"text": "good", "label": 1},\n {"text": "bad" "label": 0}\n]\n')
    assert refusal(tmp_path) == (
        f"file {path} line 3: not valid JSON (Expecting ',' delimiter at column 17); "
        'expected an array of {"text": ..., "label": ...} objects.'
    )


def csv_splits(folder: Path, train: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("validation", "test"):
        pd.DataFrame(review_rows(4)).to_csv(folder / f"{split}.csv", index=False)
    (folder / "train.csv").write_bytes(train)
    return folder / "train.csv"


def test_csv_invalid_utf8_and_empty_file_are_named(tmp_path: Path):
    path = csv_splits(tmp_path, b'text,label\n"good",1\n"na\xefve",0\n')
    assert refusal(tmp_path) == (
        f"file {path} line 3: not valid UTF-8 (byte 0xef at position 4 of the line); "
        "save the file as UTF-8."
    )
    path.write_bytes(b"\n")
    assert refusal(tmp_path) == (
        f"file {path} holds no reviews; expected a header line, then one review per row."
    )


def test_csv_reviews_reading_na_or_null_stay_texts(tmp_path: Path):
    csv_splits(tmp_path, b'text,label\nNA,1\nnull,0\n"fine, really",1\n')
    splits = load_splits(local_data(tmp_path), tmp_path)
    assert list(splits["train"]["text"]) == ["NA", "null", "fine, really"]
    path = csv_splits(tmp_path, b"text,label\ngood,1\nbad,\n")
    assert refusal(tmp_path) == (
        f"file {path} row 2 has no label in column 'label'; expected 0 (negative) or 1 (positive)."
    )


def test_unreadable_parquet_names_the_cause_not_the_generic_datasets_error(tmp_path: Path):
    for split in ("train", "validation", "test"):
        pd.DataFrame(review_rows(4)).to_parquet(tmp_path / f"{split}.parquet", index=False)
    (tmp_path / "train.parquet").write_bytes(b"not parquet at all")
    message = refusal(tmp_path)
    assert message.startswith(f"could not read sentiment split file {tmp_path / 'train.parquet'}: ")
    assert "An error occurred while generating the dataset" not in message


def one_class_training_split(folder: Path) -> Path:
    three_splits(folder, [{"text": f"great film {i}", "label": 1} for i in range(6)])
    return folder / "train.jsonl"


def test_one_class_training_split_is_refused(tmp_path: Path):
    path = one_class_training_split(tmp_path)
    assert refusal(tmp_path, label_names=["neg", "pos"]) == (
        f"the training split, file {path}, has only label 1 (pos); the SVM and fine-tuning need "
        "both labels, 0 (neg) and 1 (pos)."
    )


@pytest.mark.parametrize("step", ["features", "finetune"])
def test_one_class_training_split_stops_features_and_finetune_before_any_model(
    tmp_path: Path, step: str
):
    # the SVM's features and fine-tuning both load the splits first: neither gets to a model
    from probelab.sentiment.features import text_features
    from probelab.sentiment.finetune import run_finetune

    path = one_class_training_split(tmp_path / "data")
    data = local_data(tmp_path / "data")
    with pytest.raises(SentimentDataError, match=rf"^the training split, file {path}, has only"):
        if step == "features":
            text_features(data, None, "d", "m", "no-such-model", {"cls": tmp_path / "f.h5"}, {}, 1)
        else:
            run_finetune(data, None, "d", "m", "no-such-model", {}, "all", 0, tmp_path / "out", 1)


def test_one_class_validation_split_loads_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    write_jsonl(tmp_path / "train.jsonl", review_rows(6))
    write_jsonl(tmp_path / "validation.jsonl", [{"text": "dull", "label": 0}] * 3)
    write_jsonl(tmp_path / "test.jsonl", review_rows(4))
    with caplog.at_level("WARNING", logger="probelab.sentiment.data"):
        splits = load_splits(local_data(tmp_path), tmp_path)
    assert list(splits["validation"]["label"]) == [0, 0, 0]
    assert (
        f"the validation split, file {tmp_path / 'validation.jsonl'}, has only label 0 "
        "(negative)" in caplog.text
    )


@pytest.mark.shared_data
@pytest.mark.skipif(not ROTTEN_TOMATOES.is_dir(), reason="../shared/data/rotten_tomatoes is absent")
def test_real_rotten_tomatoes_folder_loads_with_exact_splits():
    splits = load_splits(local_data(ROTTEN_TOMATOES), ROTTEN_TOMATOES)
    assert {s: len(splits[s]) for s in splits} == {"train": 8530, "validation": 1066, "test": 1066}
    assert sum(splits["train"]["label"]) == 4265
    # texts with U+0085 survive intact (a line-splitting reader would cut them)
    assert any("\x85" in text for text in splits["train"]["text"])
