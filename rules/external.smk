# External test cohorts (config key external): their own index and image caches, every frozen
# run of the training cohort evaluated on them without retraining, and the transfer table.


if external_names():

    rule demo_external_cohort:
        output:
            directory(EXTERNAL.external_data),
        log:
            f"{LOGS}/demo_external_cohort/{{external}}.log",
        benchmark:
            f"{BENCHMARKS}/demo_external_cohort/{{external}}.tsv"
        wildcard_constraints:
            external=one_of(
                [n for n in external_names() if config["external"][n]["demo"]["enabled"]]
            ),
        conda:
            "../envs/cohort.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            demo=lambda wildcards: external_settings(wildcards)["demo"],
            pathologies=config["pathologies"],
        script:
            "../scripts/demo_external_cohort.py"

    rule index_external:
        input:
            unpack(external_index_inputs),
        output:
            index=EXTERNAL.index,
            counts=EXTERNAL.index_counts,
            split=EXTERNAL.split,
        log:
            f"{LOGS}/index_external/{{external}}.log",
        benchmark:
            f"{BENCHMARKS}/index_external/{{external}}.tsv"
        wildcard_constraints:
            external=one_of(external_names()),
        conda:
            "../envs/cohort.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            data=lambda wildcards: external_settings(wildcards)["data"],
            pathologies=external_pathologies,
            no_finding=config["no_finding_label"],
        script:
            "../scripts/index_external.py"

    rule embed_external:
        input:
            index=EXTERNAL.index,
            model=encoder_files,
        output:
            update(EXTERNAL.image_cache("{encoder}", "{fingerprint}")),
        log:
            f"{LOGS}/embed_external/{{external}}/{{encoder}}/{{fingerprint}}.log",
        benchmark:
            f"{BENCHMARKS}/embed_external/{{external}}/{{encoder}}/{{fingerprint}}.tsv"
        wildcard_constraints:
            external=one_of(external_names()),
        conda:
            "../envs/embed.yaml"
        threads: config["embedding"]["threads"]
        resources:
            mem_mb=config["embedding"]["mem_mb"],
            runtime=config["embedding"]["runtime"],
            gpu=encoder_gpus,
        params:
            fingerprint=lambda wildcards: image_fingerprint(wildcards.encoder),
            settings=lambda wildcards, input: encoder_settings(wildcards),
            embedding=lambda wildcards, input: config["embedding"],
        script:
            "../scripts/embed_images.py"

    rule evaluate_external:
        input:
            cache=lambda wildcards: external_cache(wildcards.external, wildcards.encoder),
            index=EXTERNAL.index,
            models=lambda wildcards: encoder_run_files(wildcards, "model.pt"),
            metrics=lambda wildcards: encoder_run_files(wildcards, "metrics.json"),
        output:
            predictions=external_run_files("{external}", "predictions_test.parquet", "{encoder}"),
            metrics=external_run_files("{external}", "metrics.json", "{encoder}"),
        log:
            f"{LOGS}/evaluate_external/{{external}}/{{encoder}}.log",
        benchmark:
            f"{BENCHMARKS}/evaluate_external/{{external}}/{{encoder}}.tsv"
        wildcard_constraints:
            external=one_of(external_names()),
        conda:
            "../envs/probe.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            fingerprint=lambda wildcards: image_fingerprint(wildcards.encoder),
            pathologies=config["pathologies"],
            labelled=external_pathologies,
            min_positives=config["training"]["min_test_positives"],
        script:
            "../scripts/evaluate_external.py"

    rule transfer:
        input:
            predictions=run_outputs("predictions_test.parquet"),
            metrics=run_outputs("metrics.json"),
            split=PATHS.split,
            external=[
                path
                for name in external_names()
                for path in external_run_files(name, "predictions_test.parquet")
            ],
            external_metrics=[
                path
                for name in external_names()
                for path in external_run_files(name, "metrics.json")
            ],
            external_splits=[external_layout(name).split for name in external_names()],
        output:
            report(
                report_table("transfer"),
                caption="../report/transfer_table.rst",
                category="Tables",
                labels={"table": "internal vs external test"},
            ),
        log:
            f"{REPORT_LOGS}/transfer.log",
        benchmark:
            f"{REPORT_BENCHMARKS}/transfer.tsv"
        conda:
            "../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            names=external_names(),
            pathologies=config["pathologies"],
            resampling=config["report"]["bootstrap"],
        script:
            "../scripts/transfer.py"


rule external:
    input:
        external_targets(),
