"""Real snakemake runs of the cohort stage, config errors before any job, and a clean lint."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import PATHOLOGIES, REPO, random_demo_encoder, run_snakemake, tiny_cohort

pytestmark = pytest.mark.workflow


def cohort_config(tmp_path: Path, **overrides) -> Path:
    root = tmp_path / "data"
    tiny_cohort(root, n_patients=24, per_patient=3, missing=5)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        cohort="tiny",
        pathologies=PATHOLOGIES,
        external={},  # the demo's external cohort labels pathologies these tests leave out
        data={"format": "nih", "root": str(root)},
        demo={"enabled": False},
        split={"method": "official", "val_fraction": 0.2, "seed": 1},
        subsets={"sizes": [8, "all"], "seeds": [0, 1]},
    )
    config.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cohort_stage_runs_through_snakemake(tmp_path):
    configfile = cohort_config(tmp_path)
    result = run_snakemake(tmp_path, "cohort", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results" / "tiny"
    index = pd.read_parquet(out / "index.parquet")
    split = pd.read_parquet(out / "split.parquet")
    assert len(index) == 67 and set(split["image_id"]) == set(index["image_id"])
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    train = set(split.loc[split["split"] == "train", "image_id"])
    for seed in (0, 1):
        small = (out / "subsets" / "n8" / f"seed{seed}.txt").read_text().split()
        assert len(small) == 8 and set(small) <= train
        assert set((out / "subsets" / "nall" / f"seed{seed}.txt").read_text().split()) == train
    assert (out / "logs" / "index_images.log").read_text().strip()

    # the same data and config again (rewriting the images would be a data change)
    again = run_snakemake(tmp_path, "cohort", "--dry-run", configfile=configfile)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_invalid_config_stops_before_any_job(tmp_path):
    config = cohort_config(tmp_path, subsets={"sizes": [0], "seeds": [0]})
    result = run_snakemake(tmp_path, "cohort", configfile=config)
    assert result.returncode != 0
    assert "config key 'subsets.sizes[0]' is invalid" in result.stderr
    assert not (tmp_path / "results").exists()


def test_subset_larger_than_training_split_is_refused_before_it_is_written(tmp_path):
    assert run_snakemake(tmp_path, "cohort", configfile=cohort_config(tmp_path)).returncode == 0
    result = run_snakemake(
        tmp_path,
        "cohort",
        configfile=cohort_config(tmp_path, subsets={"sizes": [5000], "seeds": [0]}),
    )
    assert result.returncode != 0
    assert (
        "subset size 5000 (config key 'subsets.sizes') does not fit the training split"
        in result.stderr
    )
    assert not (tmp_path / "results" / "tiny" / "subsets" / "n5000").exists()


def test_subset_job_reports_oversized_request_on_first_run(tmp_path):
    result = run_snakemake(
        tmp_path,
        "cohort",
        configfile=cohort_config(tmp_path, subsets={"sizes": [5000], "seeds": [0]}),
    )
    assert result.returncode != 0
    log = (tmp_path / "results" / "tiny" / "logs" / "subset" / "n5000_seed0.log").read_text()
    assert "does not fit the training split" in log
    assert (tmp_path / "results" / "tiny" / "split.parquet").exists()


def test_a_training_job_gets_a_runtime_that_grows_with_its_training_images(tmp_path):
    """training.runtime {base, per_1000_images}: each train_probe job's limit counts the images of
    its runs' subset files once they exist (n = all: the real train split), and a dry run before
    they exist still plans the jobs."""
    training = yaml.safe_load((REPO / "config.yaml").read_text())["training"]
    runtime = {"base": 3, "per_1000_images": 250}
    configfile = cohort_config(
        tmp_path,
        encoders={"tiny": random_demo_encoder()},
        models={"baseline_mlp": {}, "linear_probe": {}},
        training={**training, "job_scope": "size", "runtime": runtime},
    )
    before = run_snakemake(tmp_path, "probes", "--dry-run", configfile=configfile)
    assert before.returncode == 0, before.stderr[-3000:]
    assert re.search(
        r"wildcards: encoder=tiny, model=\w+, n=all\n\s+resources: [^\n]*runtime=<TBD>",
        before.stdout,
    )
    assert run_snakemake(tmp_path, "cohort", configfile=configfile).returncode == 0
    planned = run_snakemake(tmp_path, "probes", "--dry-run", configfile=configfile)
    assert planned.returncode == 0, planned.stderr[-3000:]
    subsets = tmp_path / "results" / "tiny" / "subsets"
    expected = {}
    for n in ("8", "all"):
        images = sum(len((subsets / f"n{n}" / f"seed{s}.txt").read_text().split()) for s in (0, 1))
        expected[n] = math.ceil(runtime["base"] + runtime["per_1000_images"] * images / 1000)
    jobs = re.findall(
        r"rule train_probe:.*?wildcards: encoder=tiny, model=\w+, n=(\w+).*?runtime=(\d+)",
        planned.stdout,
        flags=re.S,
    )
    assert len(jobs) == 4 and expected["all"] > expected["8"]
    assert all(int(minutes) == expected[n] for n, minutes in jobs), jobs
