# Report stage: run folders -> tidy tables (aggregate) and patient-bootstrap intervals (bootstrap)
# -> figures and summary.md, all under results/{cohort}/report/. Figure rules read only the
# aggregated tables, and every rule gets only its own config settings as params, so that changing
# a figure setting reruns the figure rules and nothing else. How to read it: docs/report.md.
from probelab.report.settings import (
    check_report_config,
    figure_files,
    figure_settings,
    report_dir,
    report_figures,
    summary_config,
    summary_figures,
    summary_inputs,
)

check_report_config(config)

REPORT = report_dir(config)
REPORT_LOGS = f"{LOGS}/report"
REPORT_BENCHMARKS = f"{BENCHMARKS}/report"
REPORT_TABLES = {
    "by_setting": f"{REPORT}/summary_by_setting.csv",
    "ci": f"{REPORT}/bootstrap_ci.csv",
    "history": f"{REPORT}/history.csv",
    "sentiment": f"{REPORT}/sentiment.csv",
}
_FIGURE_SETTINGS = config["report"]["figures"]
# figure -> (the aggregated tables it reads, its title and its size label in the Snakemake report)
FIGURES = {
    "learning_curves": (["by_setting", "ci"], "learning curves", "every size"),
    "auroc_heatmap": (["by_setting"], "AUROC heatmap", str(_FIGURE_SETTINGS["heatmap_size"])),
    "precision_recall": (
        ["by_setting", "ci"],
        "precision vs recall",
        str(_FIGURE_SETTINGS["heatmap_size"]),
    ),
    "training_curves": (
        ["history"],
        "training curves",
        str(_FIGURE_SETTINGS["training_curves"]["size"]),
    ),
    "sentiment_comparison": (["sentiment"], "sentiment: SVM vs fine-tuning", "whole data set"),
}


report: "../report/workflow.rst"


localrules:
    aggregate,
    bootstrap,
    aggregate_sentiment,
    summary,
    figures,
    report,


rule aggregate:
    input:
        metrics=[f"{run}/metrics.json" for run in run_dirs()],
        history=[f"{run}/history.csv" for run in run_dirs()],
    output:
        metrics=report(
            f"{REPORT}/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
            labels={"table": "metrics of every run"},
        ),
        by_setting=report(
            REPORT_TABLES["by_setting"],
            caption="../report/summary_by_setting.rst",
            category="Tables",
            labels={"table": "mean and std over seeds"},
        ),
        history=REPORT_TABLES["history"],
    log:
        f"{REPORT_LOGS}/aggregate.log",
    benchmark:
        f"{REPORT_BENCHMARKS}/aggregate.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cohort=COHORT,
    script:
        "../scripts/aggregate.py"


rule bootstrap:
    input:
        predictions=[f"{run}/predictions_test.parquet" for run in run_dirs()],
        metrics=[f"{run}/metrics.json" for run in run_dirs()],
        split=f"{RESULTS}/split.parquet",
    output:
        ci=report(
            REPORT_TABLES["ci"],
            caption="../report/bootstrap_ci.rst",
            category="Tables",
            labels={"table": "confidence intervals"},
        ),
        comparisons=report(
            f"{REPORT}/comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
            labels={"table": "paired comparisons"},
        ),
    log:
        f"{REPORT_LOGS}/bootstrap.log",
    benchmark:
        f"{REPORT_BENCHMARKS}/bootstrap.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        pathologies=config["pathologies"],
        resampling=config["report"]["bootstrap"],
        comparisons=config["report"]["comparisons"],
    script:
        "../scripts/bootstrap.py"


rule aggregate_sentiment:
    input:
        # sentiment.smk is included after this file: its helpers are looked up at DAG time
        lambda wildcards: expand(
            f"{SENT}/{{method}}/{{model}}/metrics.json",
            method=["svm", "finetune"],
            model=sentiment_encoder_names(),
        ),
    output:
        report(
            REPORT_TABLES["sentiment"],
            caption="../report/sentiment.rst",
            category="Tables",
            labels={"table": "sentiment track metrics"},
        ),
    log:
        f"{REPORT_LOGS}/aggregate_sentiment.log",
    benchmark:
        f"{REPORT_BENCHMARKS}/aggregate_sentiment.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/aggregate_sentiment.py"


# One rule per figure (figure_learning_curves, ...), so `snakemake figure_<name>` redraws it alone.
for _figure, (_tables, _title, _size) in FIGURES.items():

    rule:
        name:
            f"figure_{_figure}"
        input:
            **{table: REPORT_TABLES[table] for table in _tables},
        output:
            [
                report(
                    path,
                    caption=f"../report/{_figure}.rst",
                    category="Figures",
                    subcategory=_title,
                    labels={
                        "figure": _title,
                        "size": _size,
                        "format": Path(path).suffix.lstrip("."),
                    },
                )
                for path in figure_files(config, _figure)
            ],
        log:
            f"{REPORT_LOGS}/figure_{_figure}.log",
        benchmark:
            f"{REPORT_BENCHMARKS}/figure_{_figure}.tsv"
        localrule: True
        conda:
            "../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            figure=_figure,
            settings=figure_settings(config["report"]),
            policy=config["report"]["policy"],
            pathologies=config["pathologies"],
        script:
            "../scripts/figures.py"


rule summary:
    input:
        **summary_inputs(config),
    output:
        report(
            f"{REPORT}/summary.md",
            caption="../report/summary.rst",
            category="Summary",
            labels={"document": "summary.md"},
        ),
    log:
        f"{REPORT_LOGS}/summary.log",
    benchmark:
        f"{REPORT_BENCHMARKS}/summary.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        config=summary_config(config),
        figures=summary_figures(config),
    script:
        "../scripts/summary.py"


rule figures:
    input:
        report_figures(config),


rule report:
    input:
        rules.aggregate.output,
        rules.bootstrap.output,
        rules.summary.output,
        report_figures(config),
