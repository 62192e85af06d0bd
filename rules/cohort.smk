# Cohort stage: (demo cohort) -> index of present images -> patient-disjoint split -> subsets.


if config["demo"]["enabled"]:

    rule demo_cohort:
        output:
            directory(data_root()),
        log:
            f"{LOGS}/demo_cohort.log",
        benchmark:
            f"{BENCHMARKS}/demo_cohort.tsv"
        conda:
            "../envs/cohort.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            demo=config["demo"],
            pathologies=config["pathologies"],
            label_table=config["data"]["label_table"],
            train_val_list=config["data"]["train_val_list"],
            test_list=config["data"]["test_list"],
            no_finding=config["no_finding_label"],
        script:
            "../scripts/demo_cohort.py"


rule index_images:
    input:
        **index_inputs(),
    output:
        index=PATHS.index,
        counts=PATHS.index_counts,
    log:
        f"{LOGS}/index_images.log",
    benchmark:
        f"{BENCHMARKS}/index_images.tsv"
    conda:
        "../envs/cohort.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        data=config["data"],
        pathologies=config["pathologies"],
        no_finding=config["no_finding_label"],
    script:
        "../scripts/index_images.py"


rule split:
    input:
        index=rules.index_images.output.index,
        lists=official_lists(),
    output:
        PATHS.split,
    log:
        f"{LOGS}/split.log",
    benchmark:
        f"{BENCHMARKS}/split.tsv"
    conda:
        "../envs/cohort.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        split=config["split"],
        data=config["data"],
    script:
        "../scripts/split.py"


rule subset:
    input:
        index=rules.index_images.output.index,
        split=rules.split.output[0],
    output:
        ids=PATHS.subset("{n}", "{seed}"),
        # the subset's no-finding share and prevalences, read by the report (learning curves)
        mix=str(mix_path(PATHS.subset("{n}", "{seed}"))),
    log:
        f"{LOGS}/subset/n{{n}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/subset/n{{n}}_seed{{seed}}.tsv"
    conda:
        "../envs/cohort.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        pathologies=config["pathologies"],
        no_finding_share=config["subsets"]["no_finding_share"],
        policy=config["subsets"]["policy"],
    script:
        "../scripts/subset.py"


rule cohort:
    input:
        rules.index_images.output,
        rules.split.output,
        subset_paths(),
