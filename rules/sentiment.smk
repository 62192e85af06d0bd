# Sentiment track: review splits -> explore / inspect -> frozen features (one cache per encoder and
# pooling) -> SVM grid search and logistic regression over the matrix (training size x seed), and
# Trainer fine-tuning per cell with a grid chosen on validation. Outputs under
# results/sentiment/{dataset}/ (docs/architecture.md).
SENT_LOGS = SENT.logs
SENT_BENCHMARKS = SENT.benchmarks


if SENTIMENT["data"]["source"] == "demo":

    rule sentiment_demo_data:
        output:
            sentiment_demo_files(),
        log:
            f"{SENT_LOGS}/demo_data.log",
        benchmark:
            f"{SENT_BENCHMARKS}/demo_data.tsv"
        conda:
            "../envs/sentiment.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            demo=SENTIMENT["demo"],
        script:
            "../scripts/sentiment_demo_data.py"


rule sentiment_explore:
    input:
        sentiment_data_inputs(),
    output:
        json=SENT.explore_json,
        figure=SENT.explore_figure,
    log:
        f"{SENT_LOGS}/explore.log",
    benchmark:
        f"{SENT_BENCHMARKS}/explore.tsv"
    conda:
        "../envs/sentiment.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=SENTIMENT["data"],
        demo_folder=sentiment_data_folder,
        encoders=SENTIMENT["encoders"],
        max_length=SENTIMENT["features"]["max_length"],
        bins=SENTIMENT["explore"]["bins"],
    script:
        "../scripts/sentiment_explore.py"


rule sentiment_inspect:
    input:
        sentiment_data_inputs(),
    output:
        SENT.inspect("{model}"),
    log:
        f"{SENT_LOGS}/inspect/{{model}}.log",
    benchmark:
        f"{SENT_BENCHMARKS}/inspect/{{model}}.tsv"
    conda:
        "../envs/sentiment.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        data=SENTIMENT["data"],
        demo_folder=sentiment_data_folder,
        model=sentiment_model,
        n_samples=SENTIMENT["inspect"]["n_samples"],
        max_length=SENTIMENT["features"]["max_length"],
    script:
        "../scripts/sentiment_inspect.py"


# One job per encoder: one forward pass over every split, pooled every configured way, one cache
# per pooling (the frozen methods read a cell's rows from it by index).
rule sentiment_text_features:
    input:
        sentiment_data_inputs(),
    output:
        **{pooling: SENT.features("{model}", pooling) for pooling in sentiment_poolings()},
    log:
        f"{SENT_LOGS}/text_features/{{model}}.log",
    benchmark:
        f"{SENT_BENCHMARKS}/text_features/{{model}}.tsv"
    conda:
        "../envs/sentiment.yaml"
    threads: SENTIMENT["features"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        data=SENTIMENT["data"],
        demo_folder=sentiment_data_folder,
        dataset=SENTIMENT["dataset"],
        model=sentiment_model,
        poolings=sentiment_poolings(),
        features=SENTIMENT["features"],
    script:
        "../scripts/sentiment_text_features.py"


# One job per encoder and pooling covers every cell (size x seed): the fits are cheap next to a
# process start, and the cache is read once.
rule sentiment_svm:
    input:
        features=SENT.features("{model}", "{pooling}"),
    output:
        **sentiment_frozen_outputs("svm"),
    log:
        f"{SENT_LOGS}/svm/{{model}}/{{pooling}}.log",
    benchmark:
        f"{SENT_BENCHMARKS}/svm/{{model}}/{{pooling}}.tsv"
    wildcard_constraints:
        pooling=one_of(POOLINGS),
    conda:
        "../envs/sentiment.yaml"
    threads: SENTIMENT["svm"]["n_jobs"]
    resources:
        # the precomputed search holds train x train kernels of every fold (3 GB for 8,530 reviews)
        mem_mb=8000,
        runtime=120,
    params:
        settings=SENTIMENT["svm"],
        expected=sentiment_expected_features,
        cells=matrix_cells(SENTIMENT),
        out_folder=sentiment_method_folder("svm"),
    script:
        "../scripts/sentiment_svm.py"


rule sentiment_logreg:
    input:
        features=SENT.features("{model}", "{pooling}"),
    output:
        **sentiment_frozen_outputs("logreg"),
    log:
        f"{SENT_LOGS}/logreg/{{model}}/{{pooling}}.log",
    benchmark:
        f"{SENT_BENCHMARKS}/logreg/{{model}}/{{pooling}}.tsv"
    wildcard_constraints:
        pooling=one_of(POOLINGS),
    conda:
        "../envs/sentiment.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=SENTIMENT["logreg"],
        expected=sentiment_expected_features,
        cells=matrix_cells(SENTIMENT),
        out_folder=sentiment_method_folder("logreg"),
    script:
        "../scripts/sentiment_logreg.py"


# One job per cell (encoder, size, seed): each trains the whole grid and evaluates test once.
rule sentiment_finetune:
    input:
        sentiment_data_inputs(),
    output:
        **sentiment_finetune_outputs(),
    log:
        f"{SENT_LOGS}/finetune/{{model}}/n{{n}}/seed{{seed}}.log",
    benchmark:
        f"{SENT_BENCHMARKS}/finetune/{{model}}/n{{n}}/seed{{seed}}.tsv"
    conda:
        "../envs/sentiment.yaml"
    threads: SENTIMENT["finetune"]["threads"]
    resources:
        mem_mb=6000,
        runtime=240,
    params:
        data=SENTIMENT["data"],
        demo_folder=sentiment_data_folder,
        dataset=SENTIMENT["dataset"],
        model=sentiment_model,
        finetune=SENTIMENT["finetune"],
    script:
        "../scripts/sentiment_finetune.py"


rule sentiment:
    input:
        sentiment_targets(),
