"""A dry run of the real NIH config shows the full matrix of jobs.

configs/nih.yaml is used as shipped except for data.root, which points at a small synthetic
cohort in NIH's download layout (probelab.demo.cohort.write_demo_cohort). Nothing runs: the test
reads Snakemake's job list and checks it against the numbers docs/scaling.md plans with.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import yaml
from conftest import REPO, run_snakemake

from probelab.config import load_config
from probelab.demo.cohort import write_demo_cohort

pytestmark = pytest.mark.workflow

JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$")
OUTPUT_LINE = re.compile(r"^\s+output: (.+)$")
RUN_METRICS = re.compile(
    r"results/nih/runs/(?P<encoder>[^/]+)/(?P<model>[^/]+)/n(?P<n>[^/]+)/seed(?P<seed>\d+)/metrics\.json"
)


def jobs_in_dry_run(text: str) -> tuple[Counter, dict[str, list[str]]]:
    """Jobs per rule and every job's outputs (by rule), from `snakemake --dry-run` output."""
    per_rule: Counter = Counter()
    outputs: dict[str, list[str]] = {}
    rule = None
    for line in text.splitlines():
        header = JOB_HEADER.match(line.strip())
        if header:
            rule = header[1]
            per_rule[rule] += 1
            continue
        output = OUTPUT_LINE.match(line)
        if output and rule:
            outputs.setdefault(rule, []).extend(output[1].split(", "))
    return per_rule, outputs


@pytest.fixture(scope="module")
def nih_dry_run(tmp_path_factory) -> tuple[dict, Counter, dict[str, list[str]]]:
    tmp = tmp_path_factory.mktemp("nih_dry_run")
    config = yaml.safe_load((REPO / "configs" / "nih.yaml").read_text())
    root = tmp / "nih"
    write_demo_cohort(
        root,
        config["pathologies"],
        n_images=60,
        listed_not_downloaded=0.05,
        image_size=32,
        images_per_folder=20,
        rgba_fraction=0.0,
        sixteen_bit_fraction=0.0,
        seed=0,
        label_table=config["data"]["label_table"],
    )
    config["data"]["root"] = str(root)
    config_file = tmp / "nih.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp, "--dry-run", configfile=config_file, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    per_rule, outputs = jobs_in_dry_run(result.stdout + result.stderr)
    return load_config(config_file), per_rule, outputs


def test_nih_dry_run_plans_the_full_matrix(nih_dry_run):
    config, per_rule, outputs = nih_dry_run
    encoders = list(config["encoders"])
    models = [name for name, settings in config["models"].items() if settings.get("enabled", True)]
    sizes = [str(n) for n in config["subsets"]["sizes"]]
    seeds = [str(s) for s in config["subsets"]["seeds"]]
    assert (len(encoders), len(models), len(sizes), len(seeds)) == (4, 9, 7, 5)
    with_text = [e for e in encoders if config["encoders"][e].get("text", True)]
    assert sorted(set(encoders) - set(with_text)) == ["rad_dino"]  # image-only: 2 models, not 9

    # Cohort and embedding stages: once per cohort, per (size, seed), per encoder.
    assert per_rule["index_images"] == 1 and per_rule["split"] == 1
    assert per_rule["subset"] == len(sizes) * len(seeds)
    assert per_rule["embed_images"] == len(encoders)
    assert per_rule["embed_prompts"] == len(with_text)
    assert "demo_cohort" not in per_rule and not any(
        rule.startswith("sentiment") for rule in per_rule
    )

    # Every (encoder, model, size, seed) run is planned exactly once; one train_probe job trains
    # all seeds of an (encoder, model, size), so torch starts once per five runs.
    runs = Counter(
        (m["encoder"], m["model"], m["n"], m["seed"])
        for m in map(RUN_METRICS.search, outputs["train_probe"])
        if m
    )
    image_models = ["baseline_mlp", "linear_probe"]
    expected = {
        (e, m, n, s)
        for e in encoders
        for m in (models if e in with_text else image_models)
        for n in sizes
        for s in seeds
    }
    assert set(runs) == expected and set(runs.values()) == {1}
    assert len(expected) == 945 + 2 * 7 * 5
    trained = per_rule["train_probe"] + per_rule.get("train_probe_image_only", 0)
    assert trained == (len(with_text) * len(models) + len(image_models)) * len(sizes)

    # The report is built once from all runs.
    assert per_rule["aggregate"] == 1 and per_rule["summary"] == 1
