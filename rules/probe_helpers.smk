# Helpers of the probe stage (config lookups, run folders, the parse-time check), kept apart from
# the rules so that `snakemake --lint` stays clean; the report stage calls run_dirs().
import re

from probelab.models import MODELS, needs_prompts

RUN_FILES = [
    "metrics.json",
    "predictions_val.parquet",
    "predictions_test.parquet",
    "history.csv",
    "model.pt",
]


def probe_models() -> list[str]:
    """The configured and enabled probe models, in the report's order."""
    configured = config.get("models", {})
    return [name for name in MODELS if name in configured and configured[name]["enabled"]]


def check_probe_encoders() -> None:
    """Refuse, before any job runs, a prompt model on an encoder without a text tower."""
    for model in probe_models():
        for encoder in encoder_names():
            if needs_prompts(model) and not encoder_has_text(encoder):
                raise ValueError(
                    f"encoder '{encoder}' has no text tower, so it cannot feed model '{model}', "
                    f"which needs prompt embeddings; disable models.{model} or remove that encoder."
                )


check_probe_encoders()


def run_dir(encoder: str, model: str, n: str, seed: int | str) -> str:
    return f"{RESULTS}/runs/{encoder}/{model}/n{n}/seed{seed}"


def run_dirs() -> list[str]:
    """Every configured run folder (encoder x model x subset size x seed)."""
    return [
        run_dir(encoder, model, n, seed)
        for encoder in encoder_names()
        for model in probe_models()
        for n in subset_sizes()
        for seed in subset_seeds()
    ]


# What one train_probe job trains (training.job_scope): every seed of one encoder x model x size,
# every size and seed of one encoder x model, or every model, size and seed of one encoder.
SCOPE = config["training"]["job_scope"]
JOB = {"size": "{encoder}/{model}/n{n}", "model": "{encoder}/{model}", "encoder": "{encoder}"}[
    SCOPE
]


def job_models(wildcards) -> list[str]:
    return probe_models() if SCOPE == "encoder" else [wildcards.model]


def job_sizes(wildcards) -> list[str]:
    return [wildcards.n] if SCOPE == "size" else subset_sizes()


def run_files(name: str) -> list[str]:
    """One file of every run folder of a job, with the job's wildcards left in."""
    pattern = f"{run_dir('{encoder}', '{model}', '{n}', '{seed}')}/{name}"
    spread = {"seed": subset_seeds()}
    if SCOPE != "size":
        spread["n"] = subset_sizes()
    if SCOPE == "encoder":
        spread["model"] = probe_models()
    return expand(pattern, **spread, allow_missing=True)


def subset_file(n: str, seed: int | str) -> str:
    return f"{RESULTS}/subsets/n{n}/seed{seed}.txt"


def job_subsets(wildcards) -> list[str]:
    return sorted({subset_file(n, seed) for n in job_sizes(wildcards) for seed in subset_seeds()})


def job_runs(wildcards) -> list[dict]:
    """Model, size, seed, subset file and run folder of every run of a job, in training order."""
    return [
        {
            "model": model,
            "n": n,
            "seed": seed,
            "subset": subset_file(n, seed),
            "out_dir": run_dir(wildcards.encoder, model, n, seed),
        }
        for model in job_models(wildcards)
        for n in job_sizes(wildcards)
        for seed in subset_seeds()
    ]


def probe_prompt_cache(wildcards) -> list[str]:
    needed = any(needs_prompts(model) for model in job_models(wildcards))
    return [prompt_cache(wildcards.encoder)] if needed else []


def job_model_settings(wildcards) -> dict:
    """The config sections of the job's models."""
    return {model: config["models"][model] for model in job_models(wildcards)}
