"""The synthetic demo cohort: NIH layout and formats, realism where the pipeline cares, determinism,
visual signatures of the findings, and one-sentence errors for bad arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import NIH_SAMPLE, REPO, run_snakemake
from PIL import Image

from probelab.cohort import build_index
from probelab.config import validate_config
from probelab.demo import cohort as writer
from probelab.demo.cohort import DemoCohortError, demo_cohort, write_demo_cohort
from probelab.demo.labels import draw_label_table, guarantee_positives
from probelab.demo.radiograph import draw_radiograph

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
NIH_14 = yaml.safe_load((REPO / "config.yaml").read_text())["pathologies"]
SMALL = dict(
    n_images=60,
    listed_not_downloaded=0.25,
    image_size=64,
    images_per_folder=25,
    rgba_fraction=0.1,
    sixteen_bit_fraction=0.1,
    seed=3,
)


def files_on_disk(root: Path) -> dict[str, Path]:
    return {p.name: p for p in root.glob("images_*/images/*.png")}


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def read_list(path: Path) -> list[str]:
    return path.read_text().split("\n")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "data"
    return root, write_demo_cohort(root, NIH_14, **SMALL)


@pytest.fixture(scope="module")
def table(cohort) -> pd.DataFrame:
    return pd.read_csv(cohort[0] / "Data_Entry_2017_v2020.csv")


def test_layout_and_exact_header(cohort):
    root, counts = cohort
    folders = ["images_001", "images_002", "images_003"]
    expected = ["Data_Entry_2017_v2020.csv", *folders, "test_list.txt", "train_val_list.txt"]
    assert sorted(p.name for p in root.iterdir()) == expected
    assert [len(list((root / f"images_00{k}" / "images").iterdir())) for k in (1, 2, 3)] == [
        25,
        25,
        10,
    ]
    text = (root / "Data_Entry_2017_v2020.csv").read_text()
    assert text.split("\n", 1)[0] == HEADER and text.endswith("\n") and "\r" not in text
    assert counts["folders"] == 3 and not list(root.parent.glob(".*partial*"))


@pytest.mark.shared_data
@pytest.mark.skipif(not NIH_SAMPLE.is_dir(), reason="needs ../shared/data/nih_cxr14_sample")
def test_table_reads_like_the_real_nih_table(table):
    real_path = NIH_SAMPLE / "Data_Entry_2017_v2020.csv"
    assert (NIH_SAMPLE / "Data_Entry_2017_v2020.csv").read_text().split("\n", 1)[0] == HEADER
    real = pd.read_csv(real_path, nrows=500)
    assert list(table.columns) == list(real.columns)
    assert table.dtypes.astype(str).to_dict() == real.dtypes.astype(str).to_dict()


def test_value_formats(table):
    assert table["Image Index"].str.fullmatch(r"\d{8}_\d{3}\.png").all()
    assert table["Image Index"].is_monotonic_increasing and table["Image Index"].is_unique
    parsed = table["Image Index"].str.extract(r"(\d{8})_(\d{3})").astype(int)
    assert (parsed[0] == table["Patient ID"]).all() and (parsed[1] == table["Follow-up #"]).all()
    # Follow-ups count 0, 1, 2, ... per patient, and some patients have several.
    expected = table.groupby("Patient ID").cumcount()
    assert (table["Follow-up #"] == expected).all() and table["Follow-up #"].max() >= 2
    assert set(table["Patient Gender"]) == {"M", "F"} and table["Patient Age"].between(1, 95).all()
    views = table["View Position"].value_counts()
    assert set(views.index) == {"PA", "AP"} and views["AP"] < views["PA"]
    assert (table["OriginalImage[Width"] == 64).all() and (table["Height]"] == 64).all()
    spacing = table["OriginalImagePixelSpacing[x"]
    assert (spacing == table["y]"]).all() and spacing.between(
        0.1 * 2500 / 64, 0.2 * 2500 / 64
    ).all()
    labels = table["Finding Labels"].str.split("|")
    assert labels.map(lambda ls: ls == sorted(ls) and len(set(ls)) == len(ls)).all()
    assert set(labels.explode()) <= set(NIH_14) | {"No Finding"}
    assert not labels.map(lambda ls: "No Finding" in ls and len(ls) > 1).any()


def test_lists_cover_the_table_and_are_patient_disjoint(cohort, table):
    root, counts = cohort
    train_val, test = read_list(root / "train_val_list.txt"), read_list(root / "test_list.txt")
    assert train_val == sorted(train_val) and test == sorted(test)
    assert not set(train_val) & set(test)
    assert sorted(train_val + test) == sorted(table["Image Index"])
    patient = table.set_index("Image Index")["Patient ID"]
    assert not set(patient[train_val]) & set(patient[test])
    assert 0.12 < len(test) / len(table) < 0.35  # NIH: 0.228
    assert (counts["train_val"], counts["test"]) == (len(train_val), len(test))


def test_more_images_listed_than_on_disk(cohort, table):
    root, counts = cohort
    on_disk = files_on_disk(root)
    assert len(on_disk) == 60 and len(table) == 75 == counts["listed"]
    assert set(on_disk) < set(table["Image Index"])
    for path in on_disk.values():  # each image is in the folder of its position in id order
        assert path.parent.parent.name.startswith("images_") and path.parent.name == "images"


def test_some_files_are_rgba_and_some_sixteen_bit(cohort):
    root, counts = cohort
    images = [Image.open(p) for p in sorted(files_on_disk(root).values())]
    modes = pd.Series([im.mode for im in images]).value_counts().to_dict()
    assert modes == {"L": 48, "RGBA": 6, "I;16": 6} == counts["modes"]
    assert all(im.size == (64, 64) for im in images)
    for im in images:
        a = np.asarray(im)
        if im.mode == "RGBA":  # grey in the colour channels, opaque, as NIH's RGBA files
            assert (
                (a[..., 3] == 255).all()
                and (a[..., 0] == a[..., 1]).all()
                and (a[..., 1] == a[..., 2]).all()
            )
        if im.mode == "I;16":  # spread over the 16-bit range: clipping to 8 bits would whiten it
            assert a.dtype == np.uint16 and a.max() > 40000 and np.median(a) > 255


def test_every_pathology_present_and_no_finding_majority(cohort, table):
    root, counts = cohort
    written = table[table["Image Index"].isin(files_on_disk(root))]
    labels = written["Finding Labels"].str.split("|").explode().value_counts()
    assert all(labels.get(p, 0) >= 1 for p in NIH_14)
    assert counts["positives"] == {p: int(labels.get(p, 0)) for p in NIH_14}
    assert counts["no_finding"] == labels["No Finding"]
    assert 0.5 < labels["No Finding"] / len(written) < 0.7


def test_default_sized_label_model_is_realistic():
    """The label table of a default-sized run (no images drawn): NIH-like shares and clusters."""
    rng = np.random.default_rng(0)
    table, findings = draw_label_table(rng, NIH_14, 1500, 256)
    written = np.arange(1200)
    guarantee_positives(rng, findings, written, NIH_14)
    no_finding = np.mean([not f for f in findings])
    assert 0.52 < no_finding < 0.64
    count = {p: sum(p in f for f in findings[:1200]) for p in NIH_14}
    assert count["Infiltration"] == max(count.values()) and 3 <= count["Hernia"] <= 10
    effusion = [f for f in findings if "Effusion" in f]
    with_heart_or_edema = np.mean([bool(f & {"Cardiomegaly", "Edema"}) for f in effusion])
    others = [f for f in findings if f and "Effusion" not in f]
    assert with_heart_or_edema > 2 * np.mean([bool(f & {"Cardiomegaly", "Edema"}) for f in others])
    assert (table["View Position"] == "AP").mean() < 0.45


def test_indexes_like_a_real_nih_download(cohort):
    root, _ = cohort
    index, counts = build_index(root, NIH_14)
    assert (counts.listed, counts.present, counts.missing, counts.unlisted_files) == (75, 60, 15, 0)


def test_same_seed_same_cohort_other_seed_differs(cohort, tmp_path):
    root, _ = cohort
    again = tmp_path / "again"
    write_demo_cohort(again, NIH_14, **SMALL)
    for name in ("Data_Entry_2017_v2020.csv", "train_val_list.txt", "test_list.txt"):
        assert (again / name).read_bytes() == (root / name).read_bytes()
    first, second = files_on_disk(root), files_on_disk(again)
    assert sorted(first) == sorted(second)
    for name in first:
        assert np.array_equal(pixels(first[name]), pixels(second[name])), name

    other = tmp_path / "other"
    write_demo_cohort(other, NIH_14, **{**SMALL, "seed": 4})
    assert (other / "Data_Entry_2017_v2020.csv").read_bytes() != (
        root / "Data_Entry_2017_v2020.csv"
    ).read_bytes()
    shared = sorted(set(first) & set(files_on_disk(other)))
    assert shared and not np.array_equal(
        pixels(first[shared[0]]), pixels(files_on_disk(other)[shared[0]])
    )


def draws(
    findings: set[str], n: int, pathologies: list[str] = NIH_14, size: int = 64
) -> np.ndarray:
    return np.stack(
        [
            draw_radiograph(np.random.default_rng([7, i]), size, findings, pathologies, "PA")
            for i in range(n)
        ]
    )


Box = tuple[tuple[float, float], tuple[float, float]]


def region(images: np.ndarray, *boxes: Box) -> np.ndarray:
    """Mean value per image over boxes ((x0, x1), (y0, y1)) in [-1, 1] image coordinates
    (x right, y down)."""
    size = images.shape[-1]
    at = lambda lo, hi: slice(int((lo + 1) / 2 * size), int((hi + 1) / 2 * size))  # noqa: E731
    return sum(images[:, at(*y), at(*x)].mean(axis=(1, 2)) for x, y in boxes)


def separated(positive: np.ndarray, negative: np.ndarray) -> float:
    """Difference of means in units of its standard error."""
    error = np.sqrt(positive.var(ddof=1) / len(positive) + negative.var(ddof=1) / len(negative))
    return float((positive.mean() - negative.mean()) / error)


@pytest.fixture(scope="module")
def normal() -> np.ndarray:
    return draws(set(), 24)


def test_cardiomegaly_brightens_the_heart_borders(normal):
    # Just outside a normal heart's edges (it sits right of centre), an enlarged heart replaces
    # dark lung.
    borders = ((0.35, 0.5), (0.15, 0.4)), ((-0.35, -0.2), (0.15, 0.4))
    assert separated(region(draws({"Cardiomegaly"}, 24), *borders), region(normal, *borders)) > 4


def test_effusion_fills_the_costophrenic_angles(normal):
    # Lower outer lung zones against the mid zones above them: cancels each film's exposure.
    lower = ((0.4, 0.65), (0.3, 0.5)), ((-0.65, -0.4), (0.3, 0.5))
    middle = ((0.4, 0.65), (-0.3, 0.0)), ((-0.65, -0.4), (-0.3, 0.0))
    effusion = draws({"Effusion"}, 24)
    assert (
        separated(
            region(effusion, *lower) - region(effusion, *middle),
            region(normal, *lower) - region(normal, *middle),
        )
        > 3.5
    )


def test_emphysema_darkens_the_lungs(normal):
    lungs = ((0.25, 0.55), (-0.4, 0.1)), ((-0.55, -0.25), (-0.4, 0.1))
    assert separated(region(normal, *lungs), region(draws({"Emphysema"}, 24), *lungs)) > 3


def test_unknown_pathologies_get_distinct_signatures():
    # Same seeds, one unknown finding each: the random anatomy is identical, so what differs is
    # the two signatures, each a local patch in its own place.
    pathologies = ["Alpha", "Beta"]
    difference = draws({"Alpha"}, 16, pathologies).mean(axis=0) - draws(
        {"Beta"}, 16, pathologies
    ).mean(axis=0)
    assert np.abs(difference).max() > 0.05
    assert 0.005 < (np.abs(difference) > 0.04).mean() < 0.25


def test_non_nih_pathologies_make_a_cohort(tmp_path):
    counts = write_demo_cohort(
        tmp_path / "data",
        ["Fracture", "Lung Lesion"],
        **{**SMALL, "n_images": 30},
        no_finding_label="Normal",
    )
    table = pd.read_csv(tmp_path / "data" / "Data_Entry_2017_v2020.csv")
    assert set(table["Finding Labels"].str.split("|").explode()) == {
        "Fracture",
        "Lung Lesion",
        "Normal",
    }
    assert min(counts["positives"].values()) >= 1


@pytest.mark.parametrize(
    ("pathologies", "overrides", "message"),
    [
        ([], {}, "list of pathologies is empty"),
        (["Mass", "Mass"], {}, "name a pathology twice"),
        (["Mass", "A|B"], {}, "pathology 'A|B' cannot be written"),
        (["Mass", "No Finding"], {}, "no_finding_label 'No Finding' is also listed"),
        (["Mass"], {"rgba_fraction": 0.6, "sixteen_bit_fraction": 0.6}, "sum to at most 1"),
        (["Mass"], {"image_size": 16}, "image_size (16) at least 32"),
        (["Mass"], {"listed_not_downloaded": -1}, "listed_not_downloaded must be >= 0"),
    ],
)
def test_bad_arguments_get_one_sentence(tmp_path, pathologies, overrides, message):
    with pytest.raises(DemoCohortError) as error:
        write_demo_cohort(tmp_path / "data", pathologies, **{**SMALL, **overrides})
    assert message in str(error.value) and str(error.value).count(". ") == 0
    assert not (tmp_path / "data").exists()


def test_refuses_to_overwrite_but_fills_an_empty_folder(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    write_demo_cohort(root, ["Mass"], **{**SMALL, "n_images": 20})
    before = (root / "Data_Entry_2017_v2020.csv").read_bytes()
    with pytest.raises(DemoCohortError, match="already exists and is not an empty folder"):
        write_demo_cohort(root, ["Mass"], **{**SMALL, "n_images": 20, "seed": 9})
    assert (root / "Data_Entry_2017_v2020.csv").read_bytes() == before


def test_a_failure_leaves_no_half_written_cohort(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("disk full")
        return np.zeros((64, 64), dtype=np.float32)

    monkeypatch.setattr(writer, "draw_radiograph", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_demo_cohort(tmp_path / "data", ["Mass"], **SMALL)
    assert list(tmp_path.iterdir()) == []


def demo_config(tmp_path: Path) -> dict:
    """A validated config whose demo section gives only some keys (the schema fills in the rest)."""
    return validate_config(
        {
            "cohort": "t",
            "pathologies": ["Mass", "Effusion"],
            "data": {"root": str(tmp_path / "data")},
            "demo": {
                "enabled": True,
                "n_images": 20,
                "image_size": 32,
                "images_per_folder": 8,
                "seed": 1,
            },
        }
    )


def test_step_function_reads_the_config_demo_section(tmp_path):
    config = demo_config(tmp_path)
    counts = demo_cohort(
        Path(config["data"]["root"]),
        config["pathologies"],
        config["demo"],
        label_table="labels/table.csv",
        no_finding_label="No Finding",
        lists={"train_val_list": "tv.txt", "test_list": "te.txt"},
    )
    root = tmp_path / "data"
    assert (
        (root / "labels" / "table.csv").is_file()
        and (root / "tv.txt").is_file()
        and (root / "te.txt").is_file()
    )
    assert (
        counts["written"] == 20 and counts["listed"] == 25 and counts["folders"] == 3
    )  # defaults filled in
    with pytest.raises(DemoCohortError, match="config section 'demo' has no key 'seed'"):
        demo_cohort(
            tmp_path / "x",
            ["Mass"],
            {k: v for k, v in config["demo"].items() if k != "seed"},
            label_table="t.csv",
            no_finding_label="No Finding",
        )


@pytest.mark.workflow
def test_step_script_runs_from_the_shell(tmp_path):
    config = demo_config(tmp_path)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({**config, "demo": {**config["demo"], "n_images": 21}}))
    script = REPO / "scripts" / "demo_cohort.py"
    root = tmp_path / "from_shell"
    result = subprocess.run(
        [sys.executable, str(script), "--config", str(config_file), "--root", str(root)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(files_on_disk(root)) == 21


@pytest.mark.workflow
def test_rule_demo_cohort_runs_through_snakemake(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        cohort="demo_test",
        data={"root": "results/demo_test/data"},
        demo={"enabled": True, "n_images": 24, "image_size": 32, "seed": 2},
    )
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "results/demo_test/data", configfile=config_file)
    assert result.returncode == 0, result.stderr[-3000:]
    root = tmp_path / "results" / "demo_test" / "data"
    assert len(files_on_disk(root)) == 24 and (root / "Data_Entry_2017_v2020.csv").is_file()
    assert (
        "wrote 24 images"
        in (tmp_path / "results" / "demo_test" / "logs" / "demo_cohort.log").read_text()
    )
