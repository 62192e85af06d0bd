# Sentiment track: review splits -> explore / inspect -> [CLS] features -> SVM grid search, and
# Trainer fine-tuning. Outputs under results/sentiment/{dataset}/ (docs/architecture.md).
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


rule sentiment_text_features:
    input:
        sentiment_data_inputs(),
    output:
        SENT.features("{model}"),
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
        features=SENTIMENT["features"],
    script:
        "../scripts/sentiment_text_features.py"


rule sentiment_svm:
    input:
        features=rules.sentiment_text_features.output[0],
    output:
        metrics=SENT.metrics("svm", "{model}"),
        cv_results=SENT.method_file("svm", "{model}", "cv_results.csv"),
        model=SENT.method_file("svm", "{model}", "model.joblib"),
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
        expected=sentiment_expected_features,
    script:
        "../scripts/sentiment_svm.py"


rule sentiment_finetune:
    input:
        sentiment_data_inputs(),
    output:
        metrics=SENT.metrics("finetune", "{model}"),
        history=SENT.method_file("finetune", "{model}", "log_history.json"),
        model=directory(SENT.method_file("finetune", "{model}", "model")),
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
        demo_folder=sentiment_data_folder,
        dataset=SENTIMENT["dataset"],
        model=sentiment_model,
        finetune=SENTIMENT["finetune"],
    script:
        "../scripts/sentiment_finetune.py"


rule sentiment:
    input:
        sentiment_targets(),
