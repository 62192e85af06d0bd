"""Cluster execution: the SLURM profile, what rules declare for a scheduler, and real SLURM runs.

The SLURM runs (marked `slurm`) need a controller that answers `sinfo` (tools/slurm/up.sh starts
one on localhost; .ci/run does so around `make test`) and snakemake-executor-plugin-slurm; they are
skipped otherwise, saying why. They use profiles/slurm as shipped except for TEST_OVERRIDES, each
explained there. The cohort test: jobs go through sbatch, outputs match a local run, a failing job
fails the run. The demo test: the whole default DAG (embedding, grouped probe jobs, report) through
SLURM equals a local run, and a probe job cancelled with `scancel` while it runs leaves no output
behind that a rerun would take for finished; the rerun redoes it and ends with identical results.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from conftest import PATHOLOGIES, REPO, SNAKEMAKE, tiny_cohort

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
# Seconds one snakemake run may take before `timeout` kills it: a wrong status command makes the
# plugin wait forever instead of failing, and CI must not hang on that.
RUN_LIMIT = 150
# The same for one run of the whole demo DAG: 3 min on 2 shared cores (load 3-6), 5.5 min at
# load 8-11.
DEMO_RUN_LIMIT = 600
TEST_OVERRIDES = {
    # No conda on a test machine: jobs use the Python that runs the tests.
    "software-deployment-method": None,
    # The test cluster (tools/slurm/up.sh) has no accounting database, so `sacct` knows no jobs.
    "slurm-status-command": "squeue",
    # The plugin's first status check comes after 40 s by default; after every check that finds
    # no job finished it waits 10 s longer (2, 14, 36 s after a submission with this setting).
    "slurm-init-seconds-before-status-checks": 2,
    "latency-wait": 5,
    # The failing job must fail once, not twice: the test stays short.
    "retries": 0,
}
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")
# The test cluster has no GPUs and the demo embeds on CPU: drop the profile's `gpu: 1`, the way
# docs/cluster.md tells users with a CPU config to (this replaces the profile's set-resources).
CPU_ONLY = (
    "--set-resources",
    "embed_images:gpu=0",
    "embed_external:gpu=0",
    "sentiment_finetune:gpu=0",
)
# Output fields that measure time, not results: left out when two runs are compared.
TIMING = re.compile(r"seconds|elapsed|duration|timestamp", re.IGNORECASE)


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
    for rule in ("embed_images", "embed_external", "sentiment_finetune"):
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
        external={},  # the demo's external cohort labels pathologies these tests leave out
        data={"format": "nih", "root": str(data_root)},
        demo={"enabled": False},
        split={"method": "official", "val_fraction": 0.2, "seed": 1},
        subsets={"sizes": [8, "all"], "seeds": [0, 1]},
    )
    path.write_text(yaml.safe_dump(config))
    return path


def start_snakemake(
    workdir: Path,
    config: Path,
    *options: str,
    targets: tuple[str, ...] = ("cohort",),
    log: str = "snakemake.out",
    limit: int = RUN_LIMIT,
) -> subprocess.Popen:
    """Start snakemake `targets` (none: the default target) in workdir under `timeout`; output goes
    to workdir/`log`."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        "timeout",
        "-k",
        "10",
        str(limit),
        str(SNAKEMAKE),
        *targets,
        *options,
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(config),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    output = (workdir / log).open("w")
    return subprocess.Popen(
        command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT, text=True, env=env
    )


def finish(
    process: subprocess.Popen,
    workdir: Path,
    log: str = "snakemake.out",
    limit: int = RUN_LIMIT,
) -> tuple[int, str]:
    code = process.wait(timeout=limit + 30)
    return code, (workdir / log).read_text()


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


# ------------------------------------------------------------------------- the whole demo DAG


def demo_config(path: Path) -> Path:
    """config.yaml shrunk to a few minutes of SLURM: every stage but the sentiment track and the
    external test cohort (tests/test_report_workflow.py runs it locally), both demo
    encoders (pretrained for 3 epochs), three probe models (one of them needs the prompt
    caches), two sizes and two seeds.

    job_scope encoder makes one train_probe job per encoder; the profile's `probe_runs` group puts
    both into one SLURM job.
    """
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for settings in config["encoders"].values():
        # Relative model files are the repository's; the runs' working folders are elsewhere.
        for key in ("model", "build_from"):
            if settings.get(key) and (REPO / settings[key]).exists():
                settings[key] = str(REPO / settings[key])
        settings["num_workers"] = 0
        if settings.get("pretrain"):  # the DAG's shape (pretraining reads the split), briefly
            settings["pretrain"]["epochs"] = 3
    config["demo"].update(n_images=240, image_size=64)
    config["subsets"] = {"sizes": [20, "all"], "seeds": [0, 1]}
    kept = ("baseline_mlp", "linear_probe", "zero_shot")
    models = {name: config["models"][name] for name in kept}
    models["baseline_mlp"]["epochs"] = 10
    models["linear_probe"]["C"] = [0.1, 1.0]
    config["models"] = models
    config["embedding"] = {**config["embedding"], "threads": 1, "mem_mb": 2000, "runtime": 10}
    config["training"].update(job_scope="encoder", threads=1, mem_mb=1000, runtime=10)
    report = config["report"]
    report["bootstrap"]["resamples"] = 50
    report["comparisons"]["models"] = ["linear_probe", "zero_shot"]
    report["figures"]["formats"] = ["svg"]
    config["sentiment"]["enabled"] = False
    config["external"] = {}
    path.write_text(yaml.safe_dump(config))
    return path


def without_timing(value: Any) -> Any:
    """A JSON document without the fields that measure time (train_seconds, ...)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not TIMING.search(k)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def csv_rows(path: Path) -> list[list[str]]:
    """A table's rows as text, header included, without the columns that measure time."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(rows[0]) if not TIMING.search(name)] if rows else []
    return [[row[i] for i in keep] for row in rows]


def h5_contents(path: Path, workdir: Path) -> dict[str, Any]:
    """Every dataset of an HDF5 cache (as an array) and every attribute (as text)."""
    contents: dict[str, Any] = {}
    with h5py.File(path, "r") as handle:

        def visit(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):
                contents[name] = item[()]
            for key, value in item.attrs.items():
                if not TIMING.search(key):
                    contents[f"{name}@{key}"] = repr(value).replace(str(workdir), "<workdir>")

        visit("", handle)
        handle.visititems(visit)
    return contents


def same_array(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def compared_outputs(workdir: Path) -> dict[str, Path]:
    """Relative path -> file, for every output the runs are compared on: the report tables, every
    run's metrics.json, the image and prompt caches. Found by globbing, whatever the cache files
    are named."""
    results = workdir / "results"
    found = [
        *results.glob("*/report/*.csv"),
        *results.glob("*/runs/**/metrics.json"),
        *results.glob("*/embeddings/**/*.h5"),
        *results.glob("*/prompts/**/*.h5"),
    ]
    return {str(path.relative_to(workdir)): path for path in sorted(found)}


def output_differences(reference: Path, other: Path) -> list[str]:
    """What differs between two working folders' compared outputs (empty: identical results)."""
    expected, got = compared_outputs(reference), compared_outputs(other)
    problems = [f"only in {reference.name}: {name}" for name in sorted(set(expected) - set(got))]
    problems += [f"only in {other.name}: {name}" for name in sorted(set(got) - set(expected))]
    for name in sorted(set(expected) & set(got)):
        a, b = expected[name], got[name]
        if name.endswith(".csv"):
            same = csv_rows(a) == csv_rows(b)
        elif name.endswith(".json"):
            same = json.dumps(without_timing(json.loads(a.read_text())), sort_keys=True) == (
                json.dumps(without_timing(json.loads(b.read_text())), sort_keys=True)
            )
        else:
            left, right = h5_contents(a, reference), h5_contents(b, other)
            same = left.keys() == right.keys() and all(
                same_array(left[key], right[key]) for key in left
            )
        if not same:
            problems.append(f"differs: {name}")
    return problems


def submitted_rules(log: str) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (rule or group the job ran, its state), for every job a run submitted."""
    job_ids = SUBMITTED.findall(log)
    if not job_ids:
        return {}
    return {
        job_id: (comment.removeprefix("rule_").split("_wildcards_")[0], state)
        for job_id, (comment, state) in slurm_jobs(job_ids).items()
    }


def cancel_a_running_probe_job(
    process: subprocess.Popen, workdir: Path, log: str, since: float, limit: int = 180
) -> tuple[str, list[Path]]:
    """Wait until the run's train_probe job is RUNNING and has written files into run folders,
    then `scancel` it. Returns its SLURM job id and the files it had written by then."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, (workdir / log).read_text()[-3000:]
        running = [
            job_id
            for job_id, (rule, state) in submitted_rules((workdir / log).read_text()).items()
            if "train_probe" in rule and state == "RUNNING"
        ]
        written = []
        for path in (workdir / "results").glob("*/runs/**/[!.]*"):  # not temporary files
            try:
                if path.is_file() and path.stat().st_mtime >= since:
                    written.append(path)
            except FileNotFoundError:  # a temporary file renamed meanwhile
                pass
        if running and written:
            subprocess.run(["scancel", running[0]], check=True, timeout=30)
            return running[0], written
        time.sleep(0.5)
    raise AssertionError(
        f"no train_probe job ran and wrote files within {limit} s:\n"
        + (workdir / log).read_text()[-3000:]
    )


@pytest.mark.slurm
@pytest.mark.workflow
@needs_slurm
def test_whole_demo_through_slurm_matches_local_run_and_a_cancelled_job_reruns(tmp_path):
    """Three working folders: `local` (the reference, no executor), `slurm` (the whole DAG through
    SLURM) and `cancelled`, a copy of `local` taken when it has finished, in which one probe job
    is redone through SLURM, cancelled while it runs, and the run resumed: that part overlaps the
    end of the `slurm` run, which is mostly waiting on the scheduler."""
    config = demo_config(tmp_path / "demo.yaml")
    profile = slurm_test_profile(tmp_path)
    on_slurm = ("--profile", str(profile), *CPU_ONLY)
    local_dir, slurm_dir, fault_dir = (tmp_path / name for name in ("local", "slurm", "cancelled"))
    processes = []

    def start(workdir: Path, *options: str, log: str = "snakemake.out") -> subprocess.Popen:
        process = start_snakemake(
            workdir, config, *options, targets=(), log=log, limit=DEMO_RUN_LIMIT
        )
        processes.append(process)
        return process

    try:
        # 1. The whole DAG through SLURM, the local reference run meanwhile.
        slurm_run = start(slurm_dir, *on_slurm)
        local_code, local_log = finish(
            start(local_dir, "--cores", "2"), local_dir, limit=DEMO_RUN_LIMIT
        )
        assert local_code == 0, local_log[-3000:]
        assert not SUBMITTED.search(local_log)
        outputs = compared_outputs(local_dir)
        assert sum(name.endswith("metrics.json") for name in outputs) == 2 * 3 * 2 * 2
        assert sum(name.endswith(".h5") for name in outputs) >= 4
        assert sum(name.endswith(".csv") for name in outputs) >= 5

        # 2. A probe job killed while it runs. --forcerun redoes one encoder's probe job (the one
        # that wrote the first run folder) and the report; once that job has written run files,
        # scancel it. The run must fail, and what the job had written must be gone.
        shutil.copytree(local_dir, fault_dir, ignore=shutil.ignore_patterns("snakemake.out"))
        forced = sorted(fault_dir.glob("results/*/runs/**/metrics.json"))[0]
        since = time.time() - 1
        faulty = start(
            fault_dir,
            *on_slurm,
            "--forcerun",
            str(forced.relative_to(fault_dir)),
            log="cancelled.out",
        )
        cancelled, partial = cancel_a_running_probe_job(faulty, fault_dir, "cancelled.out", since)
        faulty_code, faulty_log = finish(faulty, fault_dir, "cancelled.out", DEMO_RUN_LIMIT)
        assert faulty_code not in (0, 124, 137), faulty_log[-3000:]
        # A group job's failure is reported as "Error in group", with SLURM's log of the job.
        assert "Error in group probe_runs" in faulty_log, faulty_log[-3000:]
        assert re.search(rf"JOB {cancelled} ON \S+ CANCELLED", faulty_log), faulty_log[-3000:]
        assert slurm_jobs([cancelled])[cancelled][1] == "CANCELLED"
        # Nothing the killed job had written (model.pt, history.csv, ...) passes for finished: the
        # encoder's run folders (all outputs of its job, job_scope encoder) hold no output file.
        # A write the kill interrupted may leave its temporary file (".<name>.<random>"), which
        # no rule names as an output.
        assert [path for path in partial if path.exists()] == [], faulty_log[-3000:]
        encoder_runs = forced.parents[3]  # runs/<encoder>/<model>/n<n>/seed<seed>/metrics.json
        assert encoder_runs.parent.name == "runs", forced
        left = [p for p in encoder_runs.rglob("*") if p.is_file() and not p.name.startswith(".")]
        assert left == [], faulty_log[-3000:]

        # 3. The plain SLURM command resumes: it resubmits the cancelled probe job, nothing else,
        # and ends with the local run's results.
        rerun_code, rerun_log = finish(
            start(fault_dir, *on_slurm, log="rerun.out"), fault_dir, "rerun.out", DEMO_RUN_LIMIT
        )
        assert rerun_code == 0, rerun_log[-3000:]
        rerun_jobs = submitted_rules(rerun_log)
        assert sorted(rule for rule, _ in rerun_jobs.values()) == ["probe_runs_train_probe"]
        assert {state for _, state in rerun_jobs.values()} == {"COMPLETED"}
        assert output_differences(local_dir, fault_dir) == []

        # Back to 1: the whole DAG through SLURM equals the local run.
        slurm_code, slurm_log = finish(slurm_run, slurm_dir, limit=DEMO_RUN_LIMIT)
        assert slurm_code == 0, slurm_log[-3000:]
        # Every stage's jobs went through sbatch and completed, both train_probe jobs (one per
        # encoder) in one group submission. Report rules are localrules: they ran on the host.
        jobs = submitted_rules(slurm_log)
        rules = sorted(rule for rule, _ in jobs.values())
        assert {state for _, state in jobs.values()} == {"COMPLETED"}, jobs
        for rule in ("demo_cohort", "index_images", "split", "subsets_subset"):
            assert rules.count(rule) == 1, rules
        for rule in ("embed_images", "embed_prompts"):
            assert rules.count(rule) == 2, rules
        assert rules.count("probe_runs_train_probe") == 1 and "train_probe" not in rules, rules
        assert len(re.findall(r"Finished jobid: \d+ \(Rule: train_probe\)", slurm_log)) == 2
        for rule in ("embed_images", "embed_prompts", "train_probe", "demo_cohort"):
            assert f"localrule {rule}:" not in slurm_log, rule
        assert "localrule aggregate:" in slurm_log and "localrule summary:" in slurm_log
        assert output_differences(local_dir, slurm_dir) == []
    finally:
        for process in processes:  # a failed assertion must not leave a run submitting jobs
            if process.poll() is None:
                process.terminate()  # `timeout` passes it on; Snakemake then scancels its jobs
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
