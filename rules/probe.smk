# Probe stage: probe models trained on the cached features, one run folder per
# encoder x model x subset size x seed. File formats: docs/architecture.md; config keys:
# schemas/probe.schema.yaml (sections `models` and `training`).


# One job trains several runs: torch is imported and the caches are read once per job.
rule train_probe:
    input:
        images=lambda wildcards: image_cache(wildcards.encoder),
        prompts=job_prompt_cache,
        index=rules.index_images.output.index,
        split=rules.split.output[0],
        subsets=job_subsets,
    output:
        metrics=job_run_files("metrics.json"),
        predictions_val=job_run_files("predictions_val.parquet"),
        predictions_test=job_run_files("predictions_test.parquet"),
        history=job_run_files("history.csv"),
        model=job_run_files("model.pt"),
    log:
        f"{LOGS}/train_probe/{JOB}.log",
    benchmark:
        f"{BENCHMARKS}/train_probe/{JOB}.tsv"
    wildcard_constraints:
        model=one_of(probe_models()),
        encoder=one_of(job_encoders(text=True)),
    conda:
        "../envs/probe.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=config["training"]["mem_mb"],
        runtime=job_runtime,
    params:
        fingerprints=lambda wildcards: cache_fingerprints(config, wildcards.encoder),
        runs=job_runs,
        cohort=PATHS.cohort,
        pathologies=config["pathologies"],
        models=job_model_settings,
        training=config["training"],
    script:
        "../scripts/train_probe.py"


# With job_scope encoder, an encoder without a text tower trains every model but those that read
# prompt embeddings, so its one job lists other outputs.
use rule train_probe as train_probe_image_only with:
    output:
        metrics=job_run_files("metrics.json", text=False),
        predictions_val=job_run_files("predictions_val.parquet", text=False),
        predictions_test=job_run_files("predictions_test.parquet", text=False),
        history=job_run_files("history.csv", text=False),
        model=job_run_files("model.pt", text=False),
    wildcard_constraints:
        model=one_of(image_only_models()),
        encoder=one_of(job_encoders(text=False)),


rule probes:
    input:
        [run_outputs(name) for name in RUN_FILES],
