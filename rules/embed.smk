# Embed stage: (demo encoder weights) -> image cache and prompt cache per encoder.
# File formats: docs/architecture.md; config keys: schemas/embed.schema.yaml.


if built_encoder_names():

    rule make_demo_encoder:
        input:
            architecture=lambda wildcards: config["encoders"][wildcards.encoder]["build_from"],
        output:
            directory(PATHS.built_encoder("{encoder}")),
        log:
            f"{LOGS}/make_demo_encoder/{{encoder}}.log",
        benchmark:
            f"{BENCHMARKS}/make_demo_encoder/{{encoder}}.tsv"
        wildcard_constraints:
            encoder=one_of(built_encoder_names()),
        conda:
            "../envs/embed.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            seed=lambda wildcards: config["encoders"][wildcards.encoder]["seed"],
        script:
            "../scripts/make_demo_encoder.py"


rule embed_images:
    input:
        index=rules.index_images.output.index,
        model=encoder_files,
    output:
        PATHS.image_cache("{encoder}"),
    log:
        f"{LOGS}/embed_images/{{encoder}}.log",
    benchmark:
        f"{BENCHMARKS}/embed_images/{{encoder}}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: config["embedding"]["threads"]
    resources:
        mem_mb=config["embedding"]["mem_mb"],
        runtime=config["embedding"]["runtime"],
        gpu=encoder_gpus,
    params:
        settings=encoder_settings,
        embedding=config["embedding"],
    script:
        "../scripts/embed_images.py"


rule embed_prompts:
    input:
        model=encoder_files,
    output:
        PATHS.prompt_cache("{encoder}"),
    log:
        f"{LOGS}/embed_prompts/{{encoder}}.log",
    benchmark:
        f"{BENCHMARKS}/embed_prompts/{{encoder}}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: config["embedding"]["threads"]
    resources:
        mem_mb=config["embedding"]["mem_mb"],
        runtime=config["embedding"]["runtime"],
    params:
        settings=encoder_settings,
        pathologies=config["pathologies"],
        prompts=config["prompts"],
    script:
        "../scripts/embed_prompts.py"


rule embeddings:
    input:
        [PATHS.image_cache(name) for name in encoder_names()],
        [PATHS.prompt_cache(name) for name in text_encoder_names()],
