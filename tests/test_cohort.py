"""Label-table parsing (NIH 2017 and v2020, generic CSV), presence filtering, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import NIH_SAMPLE, PATHOLOGIES, tiny_cohort, write_nih_table
from PIL import Image

from probelab.cohort import (
    CohortError,
    CsvColumns,
    build_index,
    index_hash,
    index_images,
    parse_age,
)
from probelab.config import validate_config

NIH14 = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
]


def test_v2020_table_keeps_only_present_images(nih_cohort):
    index, counts = build_index(nih_cohort, PATHOLOGIES)
    assert counts.listed == 36 and counts.present == 32 and counts.missing == 4
    assert len(index) == 32 and index["image_id"].is_unique
    assert all(Path(p).is_file() for p in index["path"])
    row = index.set_index("image_id").loc["00000001_001.png"]  # labels "Effusion|Cardiomegaly"
    assert (row["Cardiomegaly"], row["Effusion"], row["Nodule"]) == (1, 1, 0)
    assert row["view"] == "AP" and row["follow_up"] == 1 and row["patient_id"] == "1"
    assert counts.positives["Cardiomegaly"] == int(index["Cardiomegaly"].sum())
    assert counts.no_finding == int((index[PATHOLOGIES].sum(axis=1) == 0).sum())


def test_index_images_writes_the_index_and_its_counts(nih_cohort, tmp_path):
    config = validate_config(
        {"cohort": "t", "pathologies": PATHOLOGIES, "data": {"root": str(nih_cohort)}}
    )
    out = tmp_path / "out"
    counts = index_images(
        config["data"], PATHOLOGIES, "No Finding", out / "index.parquet", out / "counts.json"
    )
    expected, _ = build_index(nih_cohort, PATHOLOGIES)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "index.parquet"), expected)
    written = json.loads((out / "counts.json").read_text())
    assert written["present"] == counts.present == 32 and written["listed"] == 36


def test_2017_format_crlf_trailing_comma_and_age_suffix(tmp_path):
    rows = tiny_cohort(tmp_path / "c")
    write_nih_table(tmp_path / "c" / "Data_Entry_2017.csv", rows, v2017=True)
    raw = (tmp_path / "c" / "Data_Entry_2017.csv").read_bytes()
    assert b"\r\n" in raw and raw.splitlines()[0].endswith(b",")
    old, _ = build_index(tmp_path / "c", PATHOLOGIES, label_table="Data_Entry_2017.csv")
    new, _ = build_index(tmp_path / "c", PATHOLOGIES)
    pd.testing.assert_frame_equal(old, new)
    assert old["age"].between(40, 70).all()


@pytest.mark.parametrize(
    "text, years", [("058Y", 58.0), ("58", 58.0), ("006M", 0.5), ("", float("nan"))]
)
def test_parse_age(text, years):
    assert parse_age(text) == pytest.approx(years, nan_ok=True)


def test_view_filter(nih_cohort):
    index, counts = build_index(nih_cohort, PATHOLOGIES, views=["PA"])
    assert set(index["view"]) == {"PA"} and counts.dropped_by_view > 0


def test_images_found_at_any_depth_and_unlisted_counted(nih_cohort):
    deep = nih_cohort / "images_009" / "a" / "b"
    deep.mkdir(parents=True)
    shutil.move(next((nih_cohort / "images_001" / "images").glob("*.png")), deep)
    Image.new("L", (8, 8)).save(nih_cohort / "images_001" / "images" / "99999999_000.png")
    index, counts = build_index(nih_cohort, PATHOLOGIES)
    assert counts.present == 32 and counts.unlisted_files == 1
    assert any("/a/b/" in p for p in index["path"])


def test_index_hash_depends_on_images_only(nih_cohort):
    index, _ = build_index(nih_cohort, PATHOLOGIES)
    relabelled = index.copy()
    relabelled["Nodule"] = 1 - relabelled["Nodule"]
    assert index_hash(index) == index_hash(relabelled.sample(frac=1, random_state=0))
    assert index_hash(index) != index_hash(index.iloc[1:])


def _csv_cohort(root: Path, mode: str) -> CsvColumns:
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(6):
        Image.new("L", (8, 8)).save(root / "img" / f"x{i}.png")
        labels = ["Cardiomegaly", "Effusion|Nodule", "No Finding"][i % 3]
        rows.append({"file": f"img/x{i}.png", "subject": f"p{i // 2}", "findings": labels})
    rows.append({"file": "img/absent.png", "subject": "p9", "findings": "Nodule"})
    table = pd.DataFrame(rows)
    if mode == "columns":
        for p in PATHOLOGIES:
            table[p] = table["findings"].str.contains(p).astype(int)
        table = table.drop(columns="findings")
    table.to_csv(root / "labels.csv", index=False)
    return CsvColumns(
        path_column="file", patient_column="subject", label_mode=mode, label_column="findings"
    )


@pytest.mark.parametrize("mode", ["pipe", "columns"])
def test_generic_csv_both_label_modes(tmp_path, mode):
    columns = _csv_cohort(tmp_path, mode)
    index, counts = build_index(
        tmp_path, PATHOLOGIES, fmt="csv", label_table="labels.csv", csv_columns=columns
    )
    assert counts.listed == 7 and counts.present == 6
    assert index.set_index("image_id").loc[
        "x1.png", ["Cardiomegaly", "Effusion", "Nodule"]
    ].tolist() == [0, 1, 1]
    assert index["patient_id"].tolist()[:2] == ["p0", "p0"]


def test_csv_column_mode_rejects_non_binary(tmp_path):
    columns = _csv_cohort(tmp_path, "columns")
    table = pd.read_csv(tmp_path / "labels.csv")
    table.loc[2, "Nodule"] = 2
    table.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(
        CohortError,
        match=r"labels.csv row 4, column 'Nodule': expected 1, 0, -1 \(uncertain\) or blank",
    ):
        build_index(tmp_path, PATHOLOGIES, fmt="csv", label_table="labels.csv", csv_columns=columns)


# --- bad input: one clear sentence naming the file / key ---------------------------------------


def test_missing_column(nih_cohort):
    table = pd.read_csv(nih_cohort / "Data_Entry_2017_v2020.csv", dtype=str)
    table.drop(columns="Patient ID").to_csv(nih_cohort / "Data_Entry_2017_v2020.csv", index=False)
    with pytest.raises(CohortError, match=r"Data_Entry_2017_v2020.csv has no column 'Patient ID'"):
        build_index(nih_cohort, PATHOLOGIES)


def test_unknown_pathology(nih_cohort):
    with pytest.raises(
        CohortError, match=r"pathology 'Cardiomegally' in config key 'pathologies' does not occur"
    ):
        build_index(nih_cohort, ["Cardiomegally", "Effusion"])


def test_no_images_found(tmp_path):
    tiny_cohort(tmp_path / "c")
    for png in (tmp_path / "c").rglob("*.png"):
        png.unlink()
    with pytest.raises(CohortError, match=r"no image files \(.jpeg, .jpg, .png\) found under"):
        build_index(tmp_path / "c", PATHOLOGIES)


def test_duplicate_image_ids(nih_cohort):
    path = nih_cohort / "Data_Entry_2017_v2020.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[3]]) + "\n")
    with pytest.raises(
        CohortError, match=r"lists image id '00000001_002.png' more than once \(rows \[4, 38\]\)"
    ):
        build_index(nih_cohort, PATHOLOGIES)


def test_same_file_name_in_two_folders(nih_cohort):
    first = next((nih_cohort / "images_001" / "images").glob("*.png"))
    other = nih_cohort / "images_002" / "images"
    other.mkdir(parents=True, exist_ok=True)
    shutil.copy(first, other / first.name)
    with pytest.raises(CohortError, match=f"image id '{first.name}' is on disk twice"):
        build_index(nih_cohort, PATHOLOGIES)


def test_missing_label_table(tmp_path):
    with pytest.raises(
        CohortError,
        match=r"label table .*nope.csv \(config key 'data.label_table'\) does not exist",
    ):
        build_index(tmp_path, PATHOLOGIES, label_table="nope.csv")


# --- the real NIH sample -----------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.skipif(not NIH_SAMPLE.is_dir(), reason="../shared/data/nih_cxr14_sample is absent")
def test_real_nih_sample_index():
    index, counts = build_index(NIH_SAMPLE, NIH14)
    assert (counts.listed, counts.present, counts.missing) == (112_120, 207, 112_120 - 207)
    modes = {Image.open(p).mode for p in index["path"]}
    assert "RGBA" in modes and "L" in modes
    assert sum(counts.positives.values()) > 0
    assert np.isin(index[NIH14].to_numpy(), [0, 1]).all()


# ---------------------------------------------------------------- labels nothing is lost from


def _relabel(table_path: Path, image_ids: list[str], labels: str) -> None:
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    table.loc[table["Image Index"].isin(image_ids), "Finding Labels"] = labels
    table.to_csv(table_path, index=False)


def test_misspelt_label_is_refused_with_its_row(nih_cohort):
    table_path = nih_cohort / "Data_Entry_2017_v2020.csv"
    table = pd.read_csv(table_path, dtype=str)
    effusion = table.loc[table["Finding Labels"] == "Effusion", "Image Index"].tolist()[:3]
    _relabel(table_path, effusion, "Efusion")
    row = int(table.index[table["Image Index"] == effusion[0]][0]) + 2
    with pytest.raises(
        CohortError,
        match=rf"row {row}: label 'Efusion' \(3 row\(s\)\) is not a configured pathology or "
        r"'No Finding'; did you mean 'Effusion'\?",
    ):
        build_index(nih_cohort, PATHOLOGIES)


def test_label_outside_nih_vocabulary_is_refused(nih_cohort):
    table_path = nih_cohort / "Data_Entry_2017_v2020.csv"
    first = pd.read_csv(table_path, dtype=str)["Image Index"].tolist()[:1]
    _relabel(table_path, first, "Cardiomegaly|COVID-19")
    with pytest.raises(CohortError, match=r"label 'COVID-19' .* it is not a NIH finding label"):
        build_index(nih_cohort, PATHOLOGIES)


def test_unconfigured_nih_labels_are_counted_not_dropped_silently(nih_cohort, caplog):
    index, counts = build_index(nih_cohort, ["Cardiomegaly", "Effusion"])
    table = pd.read_csv(nih_cohort / "Data_Entry_2017_v2020.csv", dtype=str)
    nodules = int(table["Finding Labels"].str.split("|").map(lambda s: "Nodule" in s).sum())
    assert counts.unconfigured_labels == {"Nodule": nodules} and nodules > 0
    assert "labels not in config key 'pathologies' are ignored: Nodule" in caplog.text


def test_csv_labels_outside_the_config_are_counted(tmp_path):
    columns = _csv_cohort(tmp_path, "pipe")
    table = pd.read_csv(tmp_path / "labels.csv")
    table.loc[0, "findings"] = "Cardiomegaly|Tuberculosis"
    table.to_csv(tmp_path / "labels.csv", index=False)
    _, counts = build_index(
        tmp_path, PATHOLOGIES, fmt="csv", label_table="labels.csv", csv_columns=columns
    )
    assert counts.unconfigured_labels == {"Tuberculosis": 1}


# ----------------------------------------------------------- paths confined to the data root


@pytest.mark.parametrize(
    "listed, problem",
    [
        ("../../../../etc/passwd", "is outside the data root"),
        ("/etc/shadow", "is outside the data root"),
        ("img/../../outside.png", "is outside the data root"),
        ("img/notes.txt", "does not end in one of the image extensions"),
    ],
)
def test_csv_paths_must_stay_inside_the_data_root(tmp_path, listed, problem):
    root = tmp_path / "cohort"
    root.mkdir()
    columns = _csv_cohort(root, "pipe")
    table = pd.read_csv(root / "labels.csv")
    table.loc[3, "file"] = listed
    table.to_csv(root / "labels.csv", index=False)
    (root / "img" / "notes.txt").write_text("not an image")
    with pytest.raises(CohortError, match=rf"labels.csv row 5: image path '{listed}' {problem}"):
        build_index(root, PATHOLOGIES, fmt="csv", label_table="labels.csv", csv_columns=columns)
