# Embed stage: (demo encoders, pretrained on the training split) -> image and prompt caches.
# File formats: docs/architecture.md; config keys: schemas/embed.schema.yaml.


if built_encoder_names():

    rule make_demo_encoder:
        input:
            unpack(built_encoder_inputs),
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
            mem_mb=4000,
            runtime=30,
        params:
            recipe=built_encoder_recipe,
            pathologies=lambda wildcards: (
                config["pathologies"] if config["encoders"][wildcards.encoder]["pretrain"] else []
            ),
        script:
            "../scripts/make_demo_encoder.py"


rule embed_images:
    input:
        index=rules.index_images.output.index,
        model=encoder_files,
    output:
        update(PATHS.image_cache("{encoder}", "{fingerprint}")),
    log:
        f"{LOGS}/embed_images/{{encoder}}/{{fingerprint}}.log",
    benchmark:
        f"{BENCHMARKS}/embed_images/{{encoder}}/{{fingerprint}}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: config["embedding"]["threads"]
    resources:
        mem_mb=config["embedding"]["mem_mb"],
        runtime=config["embedding"]["runtime"],
        gpu=encoder_gpus,
    # Only the fingerprint decides the features (and names the file); batch size, workers,
    # device, on_bad_image and chunking change how the run goes, so they are passed as derived
    # params, which Snakemake does not compare: changing them rebuilds nothing.
    params:
        fingerprint=lambda wildcards: image_fingerprint(wildcards.encoder),
        settings=lambda wildcards, input: encoder_settings(wildcards),
        embedding=lambda wildcards, input: config["embedding"],
    script:
        "../scripts/embed_images.py"


rule embed_prompts:
    input:
        model=encoder_files,
    output:
        update(PATHS.prompt_cache("{encoder}", "{fingerprint}")),
    log:
        f"{LOGS}/embed_prompts/{{encoder}}/{{fingerprint}}.log",
    benchmark:
        f"{BENCHMARKS}/embed_prompts/{{encoder}}/{{fingerprint}}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: config["embedding"]["threads"]
    resources:
        mem_mb=config["embedding"]["mem_mb"],
        runtime=config["embedding"]["runtime"],
    params:
        fingerprint=lambda wildcards: prompt_fingerprint_of(wildcards.encoder),
        settings=lambda wildcards, input: encoder_settings(wildcards),
        pathologies=config["pathologies"],
        prompts=config["prompts"],
    script:
        "../scripts/embed_prompts.py"


rule embeddings:
    input:
        [image_cache(name) for name in encoder_names()],
        [prompt_cache(name) for name in text_encoder_names()],
