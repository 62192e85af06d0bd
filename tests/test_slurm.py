"""Cluster execution: the SLURM profile, what rules declare for a scheduler, and a real SLURM run.

The SLURM run (marked `slurm`) needs a controller that answers `sinfo` (tools/slurm/up.sh starts
one on localhost; .ci/run does so around `make test`) and snakemake-executor-plugin-slurm; it is
skipped otherwise, saying why. It uses profiles/slurm as shipped except for TEST_OVERRIDES, each
explained there: jobs go through sbatch, outputs match a local run, a failing job fails the run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import PATHOLOGIES, REPO, SNAKEMAKE, tiny_cohort

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
# Seconds one snakemake run may take before `timeout` kills it: a wrong status command makes the
# plugin wait forever instead of failing, and CI must not hang on that.
RUN_LIMIT = 150
TEST_OVERRIDES = {
    # No conda on a test machine: jobs use the Python that runs the tests.
    "software-deployment-method": None,
    # The test cluster (tools/slurm/up.sh) has no accounting database, so `sacct` knows no jobs.
    "slurm-status-command": "squeue",
    # The plugin's first status check comes after 40 s by default, then every +10 s.
    "slurm-init-seconds-before-status-checks": 5,
    "latency-wait": 5,
    # The failing job must fail once, not twice: the test stays short.
    "retries": 0,
}
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")


def slurm_skip_reason() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')"
    if shutil.which("sinfo") is None:
        return (
            "no SLURM client here (sinfo not found); tools/slurm/up.sh starts a local SLURM as root"
        )
    try:
        answer = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 10 s"
    if answer.returncode != 0:
        return f"no SLURM controller answers sinfo: {answer.stderr.strip()[:200]}"
    if not {"idle", "mixed", "allocated"} & set(answer.stdout.split()):
        return f"SLURM answers but no node is up (states: {answer.stdout.split()})"
    return None


SKIP_REASON = slurm_skip_reason()
needs_slurm = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


# ------------------------------------------------------------------------- static checks

RULE_LINE = re.compile(r"^(?P<indent>\s*)rule(?: (?P<name>\w+))?:\s*$")
DIRECTIVE = re.compile(r"^\s*(?P<key>\w+):")
# What a scheduler needs from every rule that runs a script (docs/cluster.md).
REQUIRED = ("threads", "resources", "log", "benchmark", "conda")
REQUIRED_RESOURCES = ("mem_mb", "runtime")


def rule_blocks() -> dict[str, str]:
    """Rule name -> the text of its block, for every rule in rules/*.smk.

    A rule generated in a loop (`rule:` with a `name:` directive) is named by that directive's text.
    """
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for start, line in enumerate(lines):
            match = RULE_LINE.match(line)
            if not match:
                continue
            indent, body = len(match["indent"]), []
            for text in lines[start + 1 :]:
                if text.strip() and len(text) - len(text.lstrip()) <= indent:
                    break
                body.append(text)
            block = "\n".join(body)
            name = match["name"] or re.search(r"^\s*name:\s*(.+?),?$", block, re.M)[1]
            blocks[name] = block
    return blocks


def test_every_rule_that_runs_a_script_declares_what_a_scheduler_needs():
    missing = {}
    for name, block in rule_blocks().items():
        directives = set(DIRECTIVE.findall(block))
        if "script" not in directives:
            continue  # a target rule: no job is submitted for it
        lacking = [key for key in REQUIRED if key not in directives]
        resources = re.search(r"^(\s*)resources:\n((?:\1\s+.*\n?)*)", block, re.M)
        lacking += [
            key for key in REQUIRED_RESOURCES if not resources or f"{key}=" not in resources[2]
        ]
        if lacking:
            missing[name] = lacking
    assert not missing, f"rules lacking what a cluster run needs: {missing}"


def test_slurm_profile_names_real_options_and_rules():
    from snakemake.cli import get_argument_parser

    options = {
        option for action in get_argument_parser()._actions for option in action.option_strings
    }
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert not {f"--{key}" for key in profile} - options, (
        "profiles/slurm names options snakemake does not know"
    )
    rules = set(rule_blocks())
    grouped = {entry.split("=")[0] for entry in profile["groups"]}
    assert set(profile["set-resources"]) | grouped <= rules
    group_names = {entry.split("=")[1] for entry in profile["groups"]}
    assert {entry.split("=")[0] for entry in profile["group-components"]} == group_names
    # Site settings stay commented out: a placeholder partition or account would break sbatch.
    assert not {"slurm_partition", "slurm_account"} & set(profile["default-resources"])
    for rule in ("embed_images", "sentiment_finetune"):
        assert profile["set-resources"][rule]["gpu"] == 1


# ------------------------------------------------------------------------- a real SLURM run


def slurm_test_profile(tmp_path: Path) -> Path:
    """profiles/slurm/config.yaml with TEST_OVERRIDES applied, written to tmp_path/profile."""
    profile = yaml.safe_load(PROFILE.read_text())
    for key, value in TEST_OVERRIDES.items():
        if value is None:
            profile.pop(key, None)
        else:
            profile[key] = value
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def cohort_config(path: Path, data_root: Path) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        cohort="tiny",
        pathologies=PATHOLOGIES,
        data={"format": "nih", "root": str(data_root)},
        demo={"enabled": False},
        split={"method": "official", "val_fraction": 0.2, "seed": 1},
        subsets={"sizes": [8, "all"], "seeds": [0, 1]},
    )
    path.write_text(yaml.safe_dump(config))
    return path


def start_snakemake(workdir: Path, config: Path, *options: str) -> subprocess.Popen:
    """Start `snakemake cohort` in workdir under `timeout`; output goes to workdir/snakemake.out."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        "timeout",
        "-k",
        "10",
        str(RUN_LIMIT),
        str(SNAKEMAKE),
        "cohort",
        *options,
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(config),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    output = (workdir / "snakemake.out").open("w")
    return subprocess.Popen(
        command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT, text=True, env=env
    )


def finish(process: subprocess.Popen, workdir: Path) -> tuple[int, str]:
    code = process.wait(timeout=RUN_LIMIT + 30)
    return code, (workdir / "snakemake.out").read_text()


def slurm_jobs(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (comment, state) as squeue shows them (finished jobs stay for MinJobAge)."""
    listing = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%k|%T"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    rows = [line.split("|") for line in listing.stdout.split()]
    return {job_id: (comment, state) for job_id, comment, state in rows}


@pytest.mark.slurm
@pytest.mark.workflow
@needs_slurm
def test_cohort_stage_through_slurm_matches_local_run_and_a_failing_job_fails(tmp_path):
    data = tmp_path / "data"
    tiny_cohort(data, n_patients=24, per_patient=3, missing=5)
    config = cohort_config(tmp_path / "config.yaml", data)
    # A label table without the 'Patient ID' column: index_images, the first job, must fail.
    broken = tmp_path / "broken"
    tiny_cohort(broken, n_patients=6, per_patient=2, missing=0)
    table = broken / "Data_Entry_2017_v2020.csv"
    lines = table.read_text().splitlines()
    drop = lines[0].split(",").index("Patient ID")
    table.write_text(
        "\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in lines)
        + "\n"
    )
    broken_config = cohort_config(tmp_path / "broken.yaml", broken)

    profile = slurm_test_profile(tmp_path)
    # Both SLURM runs at once (they share nothing), the local reference run meanwhile.
    on_slurm = start_snakemake(tmp_path / "slurm", config, "--profile", str(profile))
    failing = start_snakemake(tmp_path / "failing", broken_config, "--profile", str(profile))
    local_code, local_log = finish(
        start_snakemake(tmp_path / "local", config, "--cores", "2"), tmp_path / "local"
    )
    slurm_code, slurm_log = finish(on_slurm, tmp_path / "slurm")
    failing_code, failing_log = finish(failing, tmp_path / "failing")

    assert local_code == 0, local_log[-3000:]
    assert slurm_code == 0, slurm_log[-3000:]

    # Every job of the run went through sbatch, the four subsets grouped into one submission.
    job_ids = SUBMITTED.findall(slurm_log)
    assert len(job_ids) == 3, slurm_log[-3000:]
    jobs = slurm_jobs(job_ids)
    assert sorted(comment for comment, _ in jobs.values()) == [
        "rule_index_images",
        "rule_split",
        "rule_subsets_subset",
    ]
    assert {state for _, state in jobs.values()} == {"COMPLETED"}
    assert "localrule index_images" not in slurm_log and "localrule cohort" in slurm_log

    # Deterministic outputs are byte-identical to the local run's.
    local_results, slurm_results = (
        tmp_path / "local" / "results" / "tiny",
        tmp_path / "slurm" / "results" / "tiny",
    )
    outputs = ["index.parquet", "index_counts.json", "split.parquet"]
    outputs += [f"subsets/n{n}/seed{seed}.txt" for n in (8, "all") for seed in (0, 1)]
    for name in outputs:
        assert (slurm_results / name).read_bytes() == (local_results / name).read_bytes(), name

    # The failing job: Snakemake reports SLURM's verdict and exits non-zero; the rule's log has
    # the reason and SLURM's own log of the failed job is kept under logs/slurm/.
    assert failing_code not in (0, 124, 137), failing_log[-3000:]
    assert "SLURM status is: 'FAILED'" in failing_log, failing_log[-3000:]
    rule_log = (tmp_path / "failing" / "results" / "tiny" / "logs" / "index_images.log").read_text()
    assert "has no column 'Patient ID'" in rule_log
    (failed_id,) = SUBMITTED.findall(failing_log)
    assert (
        tmp_path / "failing" / "logs" / "slurm" / "rule_index_images" / f"{failed_id}.log"
    ).is_file()
    assert not (tmp_path / "failing" / "results" / "tiny" / "index.parquet").exists()
