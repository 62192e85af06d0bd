# Sentiment track: review splits -> explore / inspect -> [CLS] features -> SVM grid search, and
# Trainer fine-tuning. Outputs under results/sentiment/{dataset}/ (docs/architecture.md).
from functools import partial

import probelab.sentiment.workflow as sentiment_lookup
from probelab.sentiment.encoder import configured_model

SENTIMENT = config["sentiment"]
SENT = sentiment_lookup.results_root(SENTIMENT)
# rules/report.smk collects {SENT}/{svm,finetune}/{model}/metrics.json for these names
sentiment_encoder_names = partial(sentiment_lookup.encoder_names, SENTIMENT)
SENT_LOGS = f"{SENT}/logs"
SENT_BENCHMARKS = f"{SENT}/benchmarks"


if SENTIMENT["data"]["source"] == "demo":

    rule sentiment_demo_data:
        output:
            sentiment_lookup.demo_files(SENTIMENT),
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
        sentiment_lookup.data_inputs(SENTIMENT),
    output:
        json=f"{SENT}/explore/explore.json",
        figure=f"{SENT}/explore/lengths.png",
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
        demo_folder=lambda wildcards, input: sentiment_lookup.data_folder(input),
        encoders=SENTIMENT["encoders"],
        max_length=SENTIMENT["features"]["max_length"],
        bins=SENTIMENT["explore"]["bins"],
    script:
        "../scripts/sentiment_explore.py"


rule sentiment_inspect:
    input:
        sentiment_lookup.data_inputs(SENTIMENT),
    output:
        f"{SENT}/inspect/{{model}}.json",
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
        demo_folder=lambda wildcards, input: sentiment_lookup.data_folder(input),
        model=lambda wildcards: configured_model(SENTIMENT["encoders"], wildcards.model),
        n_samples=SENTIMENT["inspect"]["n_samples"],
        max_length=SENTIMENT["features"]["max_length"],
    script:
        "../scripts/sentiment_inspect.py"


rule sentiment_text_features:
    input:
        sentiment_lookup.data_inputs(SENTIMENT),
    output:
        f"{SENT}/features/{{model}}.h5",
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
        demo_folder=lambda wildcards, input: sentiment_lookup.data_folder(input),
        dataset=SENTIMENT["dataset"],
        model=lambda wildcards: configured_model(SENTIMENT["encoders"], wildcards.model),
        features=SENTIMENT["features"],
    script:
        "../scripts/sentiment_text_features.py"


rule sentiment_svm:
    input:
        features=rules.sentiment_text_features.output[0],
    output:
        metrics=f"{SENT}/svm/{{model}}/metrics.json",
        cv_results=f"{SENT}/svm/{{model}}/cv_results.csv",
        model=f"{SENT}/svm/{{model}}/model.joblib",
    log:
        f"{SENT_LOGS}/svm/{{model}}.log",
    benchmark:
        f"{SENT_BENCHMARKS}/svm/{{model}}.tsv"
    conda:
        "../envs/sentiment.yaml"
    threads: SENTIMENT["svm"]["n_jobs"]
    resources:
        # the precomputed search holds train x train kernels of every fold (3 GB for 8,530 reviews)
        mem_mb=8000,
        runtime=120,
    params:
        svm=SENTIMENT["svm"],
        expected=lambda wildcards: sentiment_lookup.expected_features(SENTIMENT, wildcards.model),
    script:
        "../scripts/sentiment_svm.py"


rule sentiment_finetune:
    input:
        sentiment_lookup.data_inputs(SENTIMENT),
    output:
        metrics=f"{SENT}/finetune/{{model}}/metrics.json",
        history=f"{SENT}/finetune/{{model}}/log_history.json",
        model=directory(f"{SENT}/finetune/{{model}}/model"),
    log:
        f"{SENT_LOGS}/finetune/{{model}}.log",
    benchmark:
        f"{SENT_BENCHMARKS}/finetune/{{model}}.tsv"
    conda:
        "../envs/sentiment.yaml"
    threads: SENTIMENT["finetune"]["threads"]
    resources:
        mem_mb=6000,
        runtime=240,
    params:
        data=SENTIMENT["data"],
        demo_folder=lambda wildcards, input: sentiment_lookup.data_folder(input),
        dataset=SENTIMENT["dataset"],
        model=lambda wildcards: configured_model(SENTIMENT["encoders"], wildcards.model),
        finetune=SENTIMENT["finetune"],
    script:
        "../scripts/sentiment_finetune.py"


rule sentiment:
    input:
        sentiment_lookup.targets(SENTIMENT),
