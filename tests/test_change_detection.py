"""Outputs follow their inputs: a changed label table, image set or setting rebuilds what depends
on it (also without Snakemake's .snakemake/ records, as in a copied tree or a new clone), and
an unchanged one rebuilds nothing, whatever order the config's keys are written in."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PATHOLOGIES, REPO, run_snakemake, tiny_cohort
from PIL import Image

pytestmark = pytest.mark.workflow


def _config(tmp_path: Path, **overrides) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        cohort="tiny",
        pathologies=PATHOLOGIES,
        external={},  # the demo's external cohort labels pathologies these tests leave out
        data={"format": "nih", "root": str(tmp_path / "data")},
        demo={"enabled": False},
        split={"method": "official", "val_fraction": 0.2, "seed": 1},
        subsets={"sizes": [8, "all"], "seeds": [0]},
    )
    config.update(overrides)
    return config


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _planned(tmp_path: Path, configfile: Path, target: str = "cohort") -> str:
    result = run_snakemake(tmp_path, target, "--dry-run", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture
def built(tmp_path: Path) -> Path:
    tiny_cohort(tmp_path / "data", n_patients=24, per_patient=3, missing=5)
    configfile = _write(tmp_path, _config(tmp_path))
    result = run_snakemake(tmp_path, "cohort", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in _planned(tmp_path, configfile)
    return configfile


@pytest.mark.parametrize("records", ["kept", "deleted"])
def test_label_table_edited_in_place_rebuilds_the_index(tmp_path, built, records):
    table = tmp_path / "data" / "Data_Entry_2017_v2020.csv"
    text = table.read_text()
    first_nodule = next(line for line in text.splitlines() if ",Nodule," in line)
    table.write_text(text.replace(first_nodule, first_nodule.replace(",Nodule,", ",Effusion,")))
    if records == "deleted":
        shutil.rmtree(tmp_path / ".snakemake")
    assert "index_images" in _planned(tmp_path, built)
    assert run_snakemake(tmp_path, "cohort", configfile=built).returncode == 0
    index = pd.read_parquet(tmp_path / "results" / "tiny" / "index.parquet")
    image_id = first_nodule.split(",")[0]
    row = index.loc[index["image_id"] == image_id].iloc[0]
    assert row["Effusion"] == 1 and row["Nodule"] == 0


def test_image_added_in_a_subfolder_rebuilds_the_index(tmp_path, built):
    index_file = tmp_path / "results" / "tiny" / "index.parquet"
    before = set(pd.read_parquet(index_file)["image_id"])
    table = pd.read_csv(tmp_path / "data" / "Data_Entry_2017_v2020.csv")
    listed_not_on_disk = sorted(set(table["Image Index"]) - before)[0]
    folder = tmp_path / "data" / "images_001" / "late" / "batch"
    folder.mkdir(parents=True)
    image = np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)
    Image.fromarray(image).save(folder / listed_not_on_disk)
    shutil.rmtree(tmp_path / ".snakemake")
    assert "index_images" in _planned(tmp_path, built)
    assert run_snakemake(tmp_path, "cohort", configfile=built).returncode == 0
    assert set(pd.read_parquet(index_file)["image_id"]) == before | {listed_not_on_disk}


def test_reordered_config_keys_rebuild_nothing(tmp_path, built):
    config = yaml.safe_load(built.read_text())

    def reverse(value):
        if isinstance(value, dict):
            return {key: reverse(value[key]) for key in reversed(list(value))}
        return value

    assert "Nothing to be done" in _planned(tmp_path, _write(tmp_path, reverse(config)))


def test_missing_data_root_names_the_config_key(tmp_path):
    configfile = _write(
        tmp_path, _config(tmp_path, data={"format": "nih", "root": str(tmp_path / "nowhere")})
    )
    result = run_snakemake(tmp_path, "cohort", configfile=configfile)
    assert result.returncode != 0
    assert f"config key 'data.root' is '{tmp_path / 'nowhere'}', which is not a folder" in (
        result.stderr
    )
    assert "MissingInputException" not in result.stderr
