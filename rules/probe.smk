# Probe stage: probe models trained on the cached features, one run folder per
# encoder x model x subset size x seed. File formats: docs/architecture.md; config keys:
# schemas/probe.schema.yaml (sections `models` and `training`).


include: "probe_helpers.smk"


# One job trains several runs: torch is imported and the caches are read once per job.
rule train_probe:
    input:
        images=lambda wildcards: image_cache(wildcards.encoder),
        prompts=probe_prompt_cache,
        index=rules.index_images.output.index,
        split=rules.split.output[0],
        subsets=job_subsets,
    output:
        metrics=run_files("metrics.json"),
        predictions_val=run_files("predictions_val.parquet"),
        predictions_test=run_files("predictions_test.parquet"),
        history=run_files("history.csv"),
        model=run_files("model.pt"),
    log:
        f"{LOGS}/train_probe/{JOB}.log",
    benchmark:
        f"{BENCHMARKS}/train_probe/{JOB}.tsv"
    wildcard_constraints:
        model="|".join(probe_models()) or "no-probe-model",
        encoder="|".join(re.escape(name) for name in encoder_names()) or "no-encoder",
    conda:
        "../envs/probe.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=config["training"]["mem_mb"],
        runtime=config["training"]["runtime"],
    params:
        runs=job_runs,
        cohort=COHORT,
        pathologies=config["pathologies"],
        models=job_model_settings,
        training=config["training"],
    script:
        "../scripts/train_probe.py"


rule probes:
    input:
        [f"{folder}/{name}" for folder in run_dirs() for name in RUN_FILES],
