"""The demo answers its questions, and a wrong pipeline cannot pass for a right one.

The default config's cohort and its pretrained Transformers demo encoder (rule make_demo_encoder,
CLIP loss), through the real Snakefile: the linear probe at every size, and zero-shot. Floors sit
below what `make run` reaches (README, "The demo") by a margin for a change of library version or
thread count; growth with training size is asserted on the mean over seeds.

Negative controls run the workflow's own training function (probelab.probe_job.train_probe) on
the same cache and cohort with one fault injected: training labels permuted across the training
images, or the cache's image ids permuted (features joined to the wrong images). Both must fall
to chance, which is what tells the floors apart from a pipeline that joins, orders or splits
wrongly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake

from probelab.config import load_config
from probelab.fingerprint import digest
from probelab.layout import CohortLayout, image_cache_of
from probelab.probe_job import RunSpec, train_probe

pytestmark = pytest.mark.workflow

# demo_hfclip (CLIP loss): pretraining demo_openclip too (SigLIP loss, 64 s more of one core)
# would put the suite over its time; make run reaches 0.768 zero-shot and 0.812 linear probe on it,
# and test_demo_pretrain builds a SigLIP-pretrained open_clip model.
ENCODERS = ("demo_hfclip",)
MODELS = ("linear_probe", "zero_shot")
# Macro test AUROC floors, over the 4 findings with at least 10 positive test patients (the
# evaluation rule since issue 23). `make run` on 2026-12-08 reached: linear probe at all 806
# training images 0.727 (demo_openclip) and 0.758 (demo_hfclip); zero-shot 0.698 and 0.739.
LINEAR_PROBE_FLOOR = 0.74
ZERO_SHOT_FLOOR = {"demo_hfclip": 0.72}
# Growth from 50 to all training images; the smaller step (200 -> all) may not shrink by more
# than the slack (seed noise at 2 seeds).
MIN_GAIN, SLACK = 0.03, 0.02
# A permuted control lands within this distance of 0.5 (the test split has 279 images), as the
# mean over CONTROL_DRAWS permutations: one permutation's macro AUROC over 4 findings spread from
# 0.36 to 0.60 (the strongly regularised probe fits a near-random direction).
CHANCE = 0.07
CONTROL_DRAWS = 4


def macro_auroc(metrics: dict) -> float:
    (value,) = [
        row["value"]
        for row in metrics["metrics"]
        if row["split"] == "test"
        and row["policy"] == "tuned"
        and row["metric"] == "auroc"
        and row["pathology"] == "macro"
    ]
    return float(value)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("demo_science")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["encoders"] = {
        name: {
            **config["encoders"][name],
            "build_from": str(REPO / config["encoders"][name]["build_from"]),
            "num_workers": 0,
        }
        for name in ENCODERS
    }
    config["models"] = {name: config["models"][name] for name in MODELS}
    config["report"]["comparisons"] = {"reference": "linear_probe", "models": [], "pairs": []}
    config["sentiment"]["enabled"] = False
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "probes", configfile=path, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return workdir, load_config(path)


LAYOUT = CohortLayout("demo")


def run_auroc(workdir: Path, encoder: str, model: str, n: str, seed: int) -> float:
    folder = workdir / LAYOUT.run_dir(encoder, model, n, seed)
    return macro_auroc(json.loads((folder / "metrics.json").read_text()))


def mean_over_seeds(workdir: Path, config: dict, encoder: str, model: str, n: str) -> float:
    seeds = config["subsets"]["seeds"]
    return float(np.mean([run_auroc(workdir, encoder, model, n, seed) for seed in seeds]))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_the_demo_encoders_learned_the_findings(demo, encoder: str) -> None:
    workdir, config = demo
    assert mean_over_seeds(workdir, config, encoder, "linear_probe", "all") >= LINEAR_PROBE_FLOOR
    assert mean_over_seeds(workdir, config, encoder, "zero_shot", "all") >= ZERO_SHOT_FLOOR[encoder]
    # pretrained on exactly the training split: no validation or test image was seen
    record = json.loads((workdir / LAYOUT.built_encoder(encoder) / "pretraining.json").read_text())
    split = pd.read_parquet(workdir / LAYOUT.split)
    index = pd.read_parquet(workdir / LAYOUT.index, columns=["image_id"])
    train = index.merge(split[split["split"] == "train"], on="image_id")["image_id"].tolist()
    assert record["n_images"] == len(train)
    assert record["training_image_ids_digest"] == digest(train)
    assert record["loss_per_epoch"][-1] < record["loss_per_epoch"][0]


@pytest.mark.parametrize("encoder", ENCODERS)
def test_the_linear_probe_improves_with_training_size(demo, encoder: str) -> None:
    workdir, config = demo
    sizes = [str(n) for n in config["subsets"]["sizes"]]
    curve = [mean_over_seeds(workdir, config, encoder, "linear_probe", n) for n in sizes]
    assert curve[-1] - curve[0] >= MIN_GAIN, curve
    steps = zip(curve, curve[1:], strict=False)
    assert all(later >= earlier - SLACK for earlier, later in steps), curve


def train_control(demo, tmp_path: Path, *, index: Path, cache: Path) -> float:
    """Macro test AUROC of the linear probe on every training image (seed 0), trained by the
    workflow's own function on the given index and image cache."""
    workdir, config = demo
    spec = RunSpec("linear_probe", "all", 0, workdir / LAYOUT.subset("all", 0), tmp_path / "run")
    (document,) = train_probe(
        image_cache=cache,
        prompt_cache=None,
        index=index,
        split=workdir / LAYOUT.split,
        runs=[spec],
        cohort="demo",
        encoder="demo_hfclip",
        models=config["models"],
        pathologies=config["pathologies"],
        training=config["training"],
        threads=1,
    )
    return macro_auroc(document)


def test_the_control_reproduces_the_workflow_run(demo, tmp_path: Path) -> None:
    workdir, config = demo
    index = workdir / LAYOUT.index
    cache = workdir / image_cache_of(config, "demo_hfclip")
    reproduced = train_control(demo, tmp_path, index=index, cache=cache)
    assert reproduced == pytest.approx(run_auroc(workdir, "demo_hfclip", "linear_probe", "all", 0))


def test_labels_permuted_across_training_images_fall_to_chance(demo, tmp_path: Path) -> None:
    workdir, config = demo
    index = pd.read_parquet(workdir / LAYOUT.index)
    split = pd.read_parquet(workdir / LAYOUT.split).set_index("image_id")["split"]
    train = np.flatnonzero(index["image_id"].map(split).eq("train").to_numpy())
    pathologies = config["pathologies"]
    cache = workdir / image_cache_of(config, "demo_hfclip")
    values = []
    for draw in range(CONTROL_DRAWS):
        permuted = index.copy()
        shuffled = np.random.default_rng(draw).permutation(train)
        permuted.loc[index.index[train], pathologies] = index[pathologies].to_numpy()[shuffled]
        tampered = tmp_path / f"index{draw}.parquet"
        permuted.to_parquet(tampered)
        values.append(train_control(demo, tmp_path / f"draw{draw}", index=tampered, cache=cache))
    assert abs(np.mean(values) - 0.5) < CHANCE, values


def test_features_joined_to_the_wrong_images_fall_to_chance(demo, tmp_path: Path) -> None:
    workdir, config = demo
    cache = tmp_path / "cache.h5"
    shutil.copy(workdir / image_cache_of(config, "demo_hfclip"), cache)
    with h5py.File(cache, "r+") as handle:
        ids = handle["image_id"][...]
        handle["image_id"][...] = ids[np.random.default_rng(0).permutation(len(ids))]
    index = workdir / LAYOUT.index
    assert abs(train_control(demo, tmp_path, index=index, cache=cache) - 0.5) < CHANCE
