"""Probe matrix: does running the probe stage through Snakemake cost more than twice its compute?

On the demo matrix of the config (every encoder x enabled model x subset size x seed), measures
  (a) stage wall: `snakemake probes` with the cohort, caches and subsets already built, i.e. every
      train_probe job (process start, imports, training, evaluation, writing) plus scheduling
      (jobs grouped as the config's training.job_scope says);
  (b) pure compute: the same runs inside one warmed-up process (imports and torch's lazy
      initialisation paid before timing), calling probelab.probe_job.train_probe job by job,
      reading the same caches and writing the same files;
and prints both and their ratio. Target (docs/performance.md, "Probe matrix"): (a) <= 2 x (b)
on 2 cores.

The upstream stages are built once (untimed) in a work folder outside the repository, which
gets a `configs` link so that the config's relative encoder paths resolve.

Run from the repository root:
    .venv/bin/python benchmarks/probe_matrix.py [--cores 2] [--json out.json]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from probelab.config import load_config
from probelab.models import MODELS, needs_prompts

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(workdir: Path, configfile: Path, cores: int, *targets: str) -> tuple[float, float]:
    """Run the workflow on `targets` in `workdir`; return wall and CPU seconds (Snakemake and all
    its jobs), raising if it fails."""
    command = [
        str(SNAKEMAKE),
        *targets,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        "--configfile",
        str(configfile),
        "--quiet",
        "progress",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"snakemake {' '.join(targets)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def jobs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The train_probe jobs of the config, grouped as the rule groups them (training.job_scope):
    each job is an encoder and its list of (model, size) pairs."""
    models = [m for m in MODELS if m in config["models"] and config["models"][m]["enabled"]]
    sizes = [str(n) for n in config["subsets"]["sizes"]]
    scope = config["training"]["job_scope"]
    if scope == "size":
        groups = [[(m, n)] for m in models for n in sizes]
    elif scope == "model":
        groups = [[(m, n) for n in sizes] for m in models]
    else:
        groups = [[(m, n) for m in models for n in sizes]]
    return [
        {"encoder": encoder, "pairs": group} for encoder in config["encoders"] for group in groups
    ]


def pure_compute(workdir: Path, config: dict[str, Any], out_root: Path) -> tuple[float, float]:
    """All train_probe jobs in this process, after a warm-up job per model; wall and CPU seconds
    of the timed pass."""
    import torch

    from probelab.probe_job import RunSpec, train_probe

    torch.set_num_threads(config["training"]["threads"])
    results = workdir / "results" / config["cohort"]

    def call(job: dict[str, Any], tag: str) -> None:
        encoder = job["encoder"]
        runs = [
            RunSpec(
                model,
                n,
                seed,
                results / "subsets" / f"n{n}" / f"seed{seed}.txt",
                out_root / tag / encoder / model / f"n{n}" / f"seed{seed}",
            )
            for model, n in job["pairs"]
            for seed in config["subsets"]["seeds"]
        ]
        train_probe(
            image_cache=results / "embeddings" / f"{encoder}.h5",
            prompt_cache=results / "prompts" / f"{encoder}.h5"
            if any(needs_prompts(m) for m, _ in job["pairs"])
            else None,
            index=results / "index.parquet",
            split=results / "split.parquet",
            runs=runs,
            cohort=config["cohort"],
            encoder=encoder,
            models=config["models"],
            pathologies=config["pathologies"],
            training=config["training"],
            threads=config["training"]["threads"],
        )

    planned = jobs(config)
    # Warm-up, untimed: every model once on the smallest subset pays the imports and torch's lazy
    # initialisation, which a long-lived process pays only once.
    models = list(dict.fromkeys(model for job in planned for model, _ in job["pairs"]))
    smallest = str(config["subsets"]["sizes"][0])
    call({"encoder": planned[0]["encoder"], "pairs": [(m, smallest) for m in models]}, "warmup")
    started, cpu_started = time.perf_counter(), time.process_time()
    for job in planned:
        call(job, "timed")
    return time.perf_counter() - started, time.process_time() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configfile", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="kept between calls to reuse the caches; default: a temporary folder",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    configfile = args.configfile.resolve()
    config = load_config(configfile)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="probe-matrix-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "configs").exists():
        (workdir / "configs").symlink_to(REPO / "configs")

    print(f"building cohort, caches and subsets in {workdir} (untimed) ...", flush=True)
    snakemake(workdir, configfile, args.cores, "cohort", "embeddings")
    shutil.rmtree(workdir / "results" / config["cohort"] / "runs", ignore_errors=True)
    planned = jobs(config)
    n_runs = len(config["subsets"]["seeds"]) * sum(len(job["pairs"]) for job in planned)
    print(
        f"stage: snakemake probes, {len(planned)} train_probe jobs, {n_runs} runs, "
        f"--cores {args.cores} ...",
        flush=True,
    )
    load_before = os.getloadavg()[0]
    stage, stage_cpu = snakemake(workdir, configfile, args.cores, "probes")
    print("pure compute: the same jobs in one warmed-up process ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="probe-compute-") as out_root:
        compute, compute_cpu = pure_compute(workdir, config, Path(out_root))
    load_after = os.getloadavg()[0]

    figures = {
        "jobs": len(planned),
        "runs": n_runs,
        "cores": args.cores,
        "stage_wall_s": round(stage, 2),
        "pure_compute_s": round(compute, 2),
        "ratio": round(stage / compute, 2),
        "target_ratio": 2.0,
        "stage_cpu_s": round(stage_cpu, 2),
        "pure_compute_cpu_s": round(compute_cpu, 2),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
    }
    # The CPU seconds do not depend on what else the machine runs; on a shared machine they tell
    # process overhead apart from waiting for a core.
    print(
        f"stage wall through Snakemake: {stage:.1f} s   "
        f"(CPU {stage_cpu:.1f} s: Snakemake and its jobs)"
    )
    print(f"pure compute in one process:  {compute:.1f} s   (CPU {compute_cpu:.1f} s)")
    print(
        f"ratio: {stage / compute:.2f} (target <= 2.0 on 2 cores); "
        f"1-min load average {load_before:.1f} -> {load_after:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
