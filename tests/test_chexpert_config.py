"""configs/chexpert.yaml as shipped (only the two data roots changed) indexes a CheXpert-format
cohort and an NIH-format external test set through the real Snakefile, and plans the external
evaluation of every run without a second training matrix."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake

from probelab.demo.chexpert import write_chexpert_style_cohort
from probelab.demo.cohort import write_demo_cohort

pytestmark = pytest.mark.workflow
NIH_14 = yaml.safe_load((REPO / "config.yaml").read_text())["pathologies"]


@pytest.fixture(scope="module")
def chexpert_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chexpert_config")
    config = yaml.safe_load((REPO / "configs" / "chexpert.yaml").read_text())
    write_chexpert_style_cohort(tmp / "chexpert", NIH_14, n_images=120, image_size=32, seed=3)
    write_demo_cohort(
        tmp / "nih",
        NIH_14,
        n_images=60,
        listed_not_downloaded=0.1,
        image_size=32,
        images_per_folder=30,
        rgba_fraction=0.0,
        sixteen_bit_fraction=0.0,
        seed=4,
    )
    config["data"]["root"] = str(tmp / "chexpert")
    config["external"]["nih"]["data"]["root"] = str(tmp / "nih")
    path = tmp / "chexpert.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = ["results/chexpert/split.parquet", "results/chexpert/external/nih/split.parquet"]
    result = run_snakemake(tmp, *targets, configfile=path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return tmp, path


def test_the_chexpert_cohort_is_read_as_configured(chexpert_run):
    tmp, _ = chexpert_run
    table = pd.read_csv(
        tmp / "chexpert" / "CheXpert-v1.0-small" / "train.csv", dtype=str, keep_default_na=False
    )
    index = pd.read_parquet(tmp / "results/chexpert/index.parquet")
    counts = json.loads((tmp / "results/chexpert/index_counts.json").read_text())
    frontal = table[table["Frontal/Lateral"] == "Frontal"]
    assert len(index) == len(frontal) and counts["dropped_by_filter"] == {
        "keep Frontal/Lateral": len(table) - len(frontal)
    }
    assert index["patient_id"].str.fullmatch(r"patient\d{5}").all()
    uncertain = frontal.set_index("Path")["Pleural Effusion"] == "-1.0"
    assert (
        index.set_index("image_id").loc[uncertain.index[uncertain], "Pleural Effusion"].isna().all()
    )
    assert counts["label_policies"]["uncertain"]["labels"]["Pleural Effusion"] == int(
        uncertain.sum()
    )
    assert counts["other_findings"]["images"] > 0  # e.g. Lung Opacity only
    split = pd.read_parquet(tmp / "results/chexpert/split.parquet")
    assert split.groupby("patient_id")["split"].nunique().max() == 1


def test_nih_is_read_as_an_external_test_set_with_chexpert_names(chexpert_run):
    tmp, _ = chexpert_run
    index = pd.read_parquet(tmp / "results/chexpert/external/nih/index.parquet")
    counts = json.loads((tmp / "results/chexpert/external/nih/index_counts.json").read_text())
    assert "Pleural Effusion" in index.columns and "Effusion" not in index.columns
    assert counts["label_map"]["Effusion"] == counts["positives"]["Pleural Effusion"] > 0
    split = pd.read_parquet(tmp / "results/chexpert/external/nih/split.parquet")
    assert set(split["split"]) == {"test"} and len(split) == len(index) == 60


def test_the_full_dag_scores_every_run_on_the_external_set(chexpert_run):
    tmp, path = chexpert_run
    result = run_snakemake(tmp, "--dry-run", configfile=path, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    text = result.stdout + result.stderr
    jobs = dict(
        (rule, int(n))
        for rule, n in (
            line.split()
            for line in text.split("Job stats:", 1)[1].split("total", 1)[0].splitlines()[3:]
            if line.strip()
        )
    )
    assert jobs["embed_external"] == jobs["embed_images"] == 4
    assert jobs["evaluate_external"] == 4 and jobs["transfer"] == 1


def test_a_missing_external_data_folder_is_refused_before_any_job(chexpert_run, tmp_path):
    _, path = chexpert_run
    config = yaml.safe_load(path.read_text())
    config["external"]["nih"]["data"]["root"] = str(tmp_path / "nowhere")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--dry-run", configfile=broken)
    assert result.returncode != 0
    assert "config key 'external.nih.data.root' is" in result.stdout + result.stderr
    assert "which is not a folder" in result.stdout + result.stderr
