"""Cohorts beyond NIH: row filters, label maps, no-finding images, uncertain and blank labels,
file-name columns and unlisted files, on samples of the real CheXpert and PadChest label tables
that the torchxrayvision package ships (with generated images for the sampled rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torchxrayvision
from PIL import Image

from probelab.cohort import CohortError, CsvColumns, RowFilter, build_index
from probelab.config import ConfigError, validate_config

TABLES = Path(torchxrayvision.__file__).parent / "data"
CHEXPERT = TABLES / "chexpert_train.csv.gz"
PADCHEST = TABLES / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
CHEXPERT_LABELS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]
CHEXPERT_FIVE = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), color=int(hash(path.name) % 200)).save(path)


@pytest.fixture(scope="module")
def chexpert(tmp_path_factory) -> Path:
    """400 rows of the real CheXpert table (first rows: several studies per patient), each
    image written where its Path says."""
    root = tmp_path_factory.mktemp("chexpert")
    table = pd.read_csv(CHEXPERT, dtype=str, keep_default_na=False, nrows=400)
    for path in table["Path"]:
        _image(root / path)
    table.to_csv(root / "train.csv", index=False)
    return root


CHEXPERT_COLUMNS = CsvColumns(
    path_column="Path",
    id_column="Path",
    patient_column="Path",
    patient_pattern=r"(patient\d+)",
    view_column="AP/PA",
    label_mode="columns",
    label_columns=tuple(CHEXPERT_LABELS),
)


def _chexpert(root: Path, **changes):
    settings = {
        "fmt": "csv",
        "label_table": "train.csv",
        "csv_columns": CHEXPERT_COLUMNS,
        "rows": RowFilter(keep={"Frontal/Lateral": ["Frontal"]}),
        "label_rules": {"uncertain": "ignore", "blank": "negative"},
        **changes,
    }
    return build_index(root, CHEXPERT_FIVE, **settings)


def test_chexpert_uncertain_ignored_blank_negative(chexpert):
    table = pd.read_csv(chexpert / "train.csv", dtype=str, keep_default_na=False)
    frontal = table[table["Frontal/Lateral"] == "Frontal"]
    index, counts = _chexpert(chexpert)
    assert counts.listed == 400 and counts.present == len(frontal)
    assert counts.dropped_by_filter == {"keep Frontal/Lateral": 400 - len(frontal)}
    assert index["patient_id"].str.fullmatch(r"patient\d+").all()
    assert index["Edema"].dtype == np.float32
    by_path = index.set_index("image_id")
    for p in CHEXPERT_FIVE:
        cells = frontal.set_index("Path")[p].str.strip()
        assert np.isnan(by_path.loc[cells.index[cells == "-1.0"], p]).all()
        assert (by_path.loc[cells.index[cells == ""], p] == 0).all()
        assert (by_path.loc[cells.index[cells == "1.0"], p] == 1).all()
        policies = counts.label_policies
        assert policies["uncertain"]["labels"][p] == int((cells == "-1.0").sum())
        assert policies["blank"]["labels"][p] == int((cells == "").sum())
        assert counts.positives[p] == int((cells == "1.0").sum())
    assert policies["uncertain"]["policy"] == "ignore" and policies["blank"]["policy"] == "negative"
    assert counts.no_finding == int((frontal["No Finding"] == "1.0").sum())


@pytest.mark.parametrize("policy, value", [("positive", 1), ("negative", 0)])
def test_chexpert_uncertain_as_positive_or_negative(chexpert, policy, value):
    index, counts = _chexpert(chexpert, label_rules={"uncertain": policy, "blank": "ignore"})
    table = pd.read_csv(chexpert / "train.csv", dtype=str, keep_default_na=False)
    cells = table.set_index("Path")["Edema"]
    by_path = index.set_index("image_id")["Edema"]
    assert (by_path[cells[by_path.index] == "-1.0"] == value).all()
    assert by_path[cells[by_path.index] == ""].isna().all()
    assert counts.label_policies["blank"]["labels"]["Edema"] > 0


def test_chexpert_uncertain_labels_need_a_policy(chexpert):
    with pytest.raises(
        CohortError,
        match=r"train.csv row \d+: pathology '\w+' is uncertain \(-1\); set config key "
        r"'data.uncertain' to positive, negative or ignore",
    ):
        _chexpert(chexpert, label_rules={"blank": "negative"})


def test_chexpert_blank_labels_need_a_policy(chexpert):
    with pytest.raises(
        CohortError, match=r"is blank \(not mentioned\); set config key 'data.blank'"
    ):
        _chexpert(chexpert, label_rules={"uncertain": "ignore"})


def test_chexpert_other_findings_are_not_no_finding_images(chexpert):
    """An image whose only findings are outside the five (e.g. Support Devices, Lung Opacity)
    is a negative of the five, never a no-finding image; `exclude` leaves it out."""
    index, counts = _chexpert(chexpert)
    table = pd.read_csv(chexpert / "train.csv", dtype=str, keep_default_na=False).set_index("Path")
    others = [c for c in CHEXPERT_LABELS if c not in CHEXPERT_FIVE and c != "No Finding"]
    rows = table.loc[index["image_id"]]
    other_only = (
        (index[CHEXPERT_FIVE].fillna(0).to_numpy() == 0).all(axis=1)
        & rows[others].isin(["1.0", "-1.0"]).any(axis=1).to_numpy()
        & (rows["No Finding"] != "1.0").to_numpy()
    )
    assert counts.other_findings == {"policy": "negative", "images": int(other_only.sum())} != {}
    assert other_only.sum() > 0 and not index["no_finding"].to_numpy()[other_only].any()
    excluded, excluded_counts = _chexpert(
        chexpert,
        label_rules={"uncertain": "ignore", "blank": "negative", "other_findings": "exclude"},
    )
    assert len(excluded) == len(index) - other_only.sum()
    assert excluded_counts.other_findings["policy"] == "exclude"


def test_chexpert_label_map_merges_columns(chexpert):
    """Lung Opacity and Consolidation merged into one pathology: positive if either is."""
    index, counts = build_index(
        chexpert,
        ["Effusion", "Opacity"],
        fmt="csv",
        label_table="train.csv",
        csv_columns=CHEXPERT_COLUMNS,
        label_rules={
            "uncertain": "ignore",
            "blank": "negative",
            "label_map": {
                "Pleural Effusion": "Effusion",
                "Lung Opacity": "Opacity",
                "Consolidation": "Opacity",
            },
        },
    )
    table = pd.read_csv(chexpert / "train.csv", dtype=str, keep_default_na=False).set_index("Path")
    rows = table.loc[index["image_id"]]
    either = ((rows["Lung Opacity"] == "1.0") | (rows["Consolidation"] == "1.0")).to_numpy()
    assert ((index["Opacity"] == 1).to_numpy() == either).all()
    assert counts.label_map == {
        "Consolidation": int((table["Consolidation"] != "").sum()),
        "Lung Opacity": int((table["Lung Opacity"] != "").sum()),
        "Pleural Effusion": int((table["Pleural Effusion"] != "").sum()),
    }


# --- PadChest: list-valued labels, file names found under image_dirs, row filters ------------

PADCHEST_MAP = {
    "cardiomegaly": "Cardiomegaly",
    "pleural effusion": "Effusion",
    "pneumonia": "Pneumonia",
    "atelectasis": "Atelectasis",
    "laminar atelectasis": "Atelectasis",
    "normal": "No Finding",
}
PADCHEST_COLUMNS = CsvColumns(
    path_column="ImageID",
    resolve="image_dirs",
    patient_column="PatientID",
    view_column="Projection",
    label_mode="list",
    label_column="Labels",
)


@pytest.fixture(scope="module")
def padchest(tmp_path_factory) -> Path:
    """600 rows of the real PadChest table, images in their numbered folders as downloaded; five
    CT rows added (a collection that mixes modalities), and three files no row lists."""
    root = tmp_path_factory.mktemp("padchest")
    columns = ["ImageID", "ImageDir", "PatientID", "Projection", "Modality_DICOM", "Labels"]
    table = pd.read_csv(PADCHEST, dtype=str, keep_default_na=False, usecols=columns, nrows=600)
    ct = table.head(5).assign(
        ImageID=[f"ct_{i}.png" for i in range(5)], Modality_DICOM="CT", Labels="['nodule']"
    )
    # 103 rows of the real table hold 'nan' instead of a list: one here, dropped by a row filter
    unread = table.head(1).assign(ImageID="unread.png", Projection="PA", Labels="nan")
    table = pd.concat([table, ct, unread], ignore_index=True)
    for folder, name in zip(table["ImageDir"], table["ImageID"], strict=True):
        _image(root / "images" / folder / name)
    for i in range(3):
        _image(root / "images" / "99" / f"unlisted_{i}.png")
    table.to_csv(root / "labels.csv", index=False)
    return root


def _padchest(root: Path, **changes):
    settings = {
        "fmt": "csv",
        "label_table": "labels.csv",
        "image_dirs": ["images"],
        "csv_columns": PADCHEST_COLUMNS,
        "rows": RowFilter(
            keep={"Modality_DICOM": ["CR", "DX"]}, drop={"Projection": ["L"], "Labels": ["nan"]}
        ),
        "label_rules": {"label_map": PADCHEST_MAP},
        **changes,
    }
    return build_index(root, ["Atelectasis", "Cardiomegaly", "Effusion", "Pneumonia"], **settings)


def test_padchest_filters_map_and_file_names(padchest):
    table = pd.read_csv(padchest / "labels.csv", dtype=str, keep_default_na=False)
    index, counts = _padchest(padchest)
    lateral = int(((table["Projection"] == "L") & (table["Modality_DICOM"] != "CT")).sum())
    assert counts.dropped_by_filter == {
        "keep Modality_DICOM": 5,
        "drop Projection": lateral,
        "drop Labels": 1,
    }
    assert counts.listed == 606 and counts.present == 600 - lateral
    assert not index["image_id"].str.startswith("ct_").any()
    assert counts.unlisted_files == 3
    assert index["path"].map(lambda p: Path(p).parent.parent.name == "images").all()
    normal = table.set_index("ImageID").loc[index["image_id"], "Labels"] == "['normal']"
    assert (index["no_finding"].to_numpy() == normal.to_numpy()).all()
    assert counts.label_map["laminar atelectasis"] > 0 and counts.label_map["normal"] > 0
    assert counts.unconfigured_labels and "normal" not in counts.unconfigured_labels
    assert counts.other_findings["images"] > 0


def test_padchest_unmapped_names_point_to_the_label_map(padchest):
    with pytest.raises(
        CohortError,
        match=r"pathology 'Atelectasis' .* does not occur .* \(nor do 3 more of them\); the table "
        r"has 'atelectasis': fix the config key or rename that label with 'data.label_map'",
    ):
        _padchest(padchest, label_rules={"label_map": {"normal": "No Finding"}})


def test_padchest_without_the_file_name_search_finds_nothing(padchest):
    with pytest.raises(CohortError, match=r"none of the \d+ image paths listed in .* exist"):
        _padchest(padchest, csv_columns=CsvColumns(**{**vars(PADCHEST_COLUMNS), "resolve": "root"}))


# --- bad input: one sentence naming the key and the value ------------------------------------


def test_filter_on_a_column_the_table_lacks(padchest):
    with pytest.raises(
        CohortError, match=r"config key 'data.keep_rows.Modality' names column 'Modality'"
    ):
        _padchest(padchest, rows=RowFilter(keep={"Modality": ["CR"]}))


def test_filter_value_that_never_occurs(padchest):
    with pytest.raises(
        CohortError,
        match=r"value 'Xray' of config key 'data.keep_rows.Modality_DICOM' does not occur in "
        r"column 'Modality_DICOM' .* \(values there: 'CR', 'CT', 'DX'\)",
    ):
        _padchest(padchest, rows=RowFilter(keep={"Modality_DICOM": ["Xray"]}))


def test_label_map_source_that_never_occurs(padchest):
    with pytest.raises(
        CohortError, match=r"label 'E.Coli' of config key 'data.label_map' does not occur"
    ):
        _padchest(padchest, label_rules={"label_map": {**PADCHEST_MAP, "E.Coli": "Pneumonia"}})


def test_list_cell_that_is_not_a_list(padchest, tmp_path):
    table = pd.read_csv(padchest / "labels.csv", dtype=str, keep_default_na=False)
    table.loc[7, "Labels"] = "normal, nodule"
    (tmp_path / "images").symlink_to(padchest / "images")
    table.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(CohortError, match=r"labels.csv row 9: expected a list of label names"):
        _padchest(tmp_path)


def test_patient_pattern_that_does_not_match(chexpert):
    columns = CsvColumns(**{**vars(CHEXPERT_COLUMNS), "patient_pattern": r"(subject\d+)"})
    with pytest.raises(
        CohortError,
        match=r"train.csv row 2: column 'Path' value '.*patient00001.*' does not match config "
        r"key 'data.csv.patient_pattern'",
    ):
        _chexpert(chexpert, csv_columns=columns)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"format": "nih", "uncertain": "ignore"}, r"'data.uncertain' applies to label tables"),
        ({"format": "csv", "blank": "negative"}, r"'data.blank' applies to label tables"),
        (
            {"format": "csv", "csv": {"patient_pattern": "patient\\d+"}},
            r"'data.csv.patient_pattern' .* needs a group",
        ),
        ({"format": "csv", "csv": {"patient_pattern": "(p"}}, r"is not a regular expression"),
    ],
)
def test_config_refusals(tmp_path, data, message):
    config = {"cohort": "x", "pathologies": ["Edema"], "data": {"root": str(tmp_path), **data}}
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def _with_external(tmp_path, **external):
    return {
        "cohort": "x",
        "pathologies": ["Edema", "Effusion"],
        "data": {"root": str(tmp_path)},
        "external": {"other": external},
    }


def test_external_pathologies_must_be_training_pathologies(tmp_path):
    config = _with_external(
        tmp_path, pathologies=["Edema", "Pleural Effusion"], data={"root": str(tmp_path)}
    )
    with pytest.raises(
        ConfigError,
        match=r"'external.other.pathologies' lists 'Pleural Effusion', which is not in "
        r"'pathologies'",
    ):
        validate_config(config)


def test_a_generated_external_cohort_lives_where_its_rule_writes_it(tmp_path):
    config = _with_external(tmp_path, demo={"enabled": True}, data={"format": "csv"})
    assert validate_config(config)["external"]["other"]["data"]["root"] == (
        "results/x/external/other/data"
    )
    moved = _with_external(tmp_path, demo={"enabled": True}, data={"root": "elsewhere"})
    with pytest.raises(
        ConfigError, match=r"'external.other.data.root' must be 'results/x/external/other/data'"
    ):
        validate_config(moved)


def test_external_label_policies_are_checked_like_the_cohorts(tmp_path):
    config = _with_external(tmp_path, data={"root": str(tmp_path), "uncertain": "ignore"})
    with pytest.raises(ConfigError, match=r"'external.other.data.uncertain' applies to label"):
        validate_config(config)


def _organisms(root: Path) -> None:
    rows = []
    for i, labels in enumerate(["E.Coli", "Klebsiella|Effusion", "No Finding", "Effusion", ""]):
        _image(root / "img" / f"x{i}.png")
        rows.append({"path": f"img/x{i}.png", "patient_id": f"p{i}", "labels": labels})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)


def test_organisms_map_to_one_pathology_or_are_configured_by_name(tmp_path):
    """A hospital export names organisms: map several to Pneumonia, or predict E.Coli itself."""
    _organisms(tmp_path)
    settings = {"fmt": "csv", "label_table": "labels.csv"}
    index, counts = build_index(
        tmp_path,
        ["Pneumonia", "Effusion"],
        label_rules={"label_map": {"E.Coli": "Pneumonia", "Klebsiella": "Pneumonia"}},
        **settings,
    )
    assert index["Pneumonia"].tolist() == [1, 1, 0, 0, 0]
    assert counts.label_map == {"E.Coli": 1, "Klebsiella": 1}
    assert index["no_finding"].tolist() == [0, 0, 1, 0, 1]  # an empty cell names no finding
    config = {"cohort": "x", "pathologies": ["E.Coli"], "data": {"root": str(tmp_path)}}
    assert validate_config(config)["pathologies"] == ["E.Coli"]
    index, counts = build_index(tmp_path, ["E.Coli"], **settings)
    assert index["E.Coli"].tolist() == [1, 0, 0, 0, 0]
    assert counts.other_findings == {"policy": "negative", "images": 2}
