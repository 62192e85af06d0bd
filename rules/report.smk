# Report stage: run folders -> tidy tables (aggregate) and patient-bootstrap intervals (bootstrap)
# -> figures and summary.md, all under results/{cohort}/report/. Figure rules read only the
# aggregated tables, and every rule gets only its own config settings as params, so that changing
# a figure setting reruns the figure rules and nothing else. How to read it: docs/report.md.
REPORT_LOGS = f"{LOGS}/report"
REPORT_BENCHMARKS = f"{BENCHMARKS}/report"


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
        metrics=run_outputs("metrics.json"),
        history=run_outputs("history.csv"),
    output:
        metrics=report(
            report_table("metrics"),
            caption="../report/metrics.rst",
            category="Tables",
            labels={"table": "metrics of every run"},
        ),
        by_setting=report(
            report_table("by_setting"),
            caption="../report/summary_by_setting.rst",
            category="Tables",
            labels={"table": "mean and std over seeds"},
        ),
        history=report_table("history"),
        pathologies=report_table("pathologies"),
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
        cohort=PATHS.cohort,
    script:
        "../scripts/aggregate.py"


rule bootstrap:
    input:
        predictions=run_outputs("predictions_test.parquet"),
        metrics=run_outputs("metrics.json"),
        # the training mix of every size, which the learning curves mark where it differs
        mixes=[str(mix_path(path)) for path in subset_paths()],
        split=PATHS.split,
    output:
        ci=report(
            report_table("ci"),
            caption="../report/bootstrap_ci.rst",
            category="Tables",
            labels={"table": "confidence intervals"},
        ),
        comparisons=report(
            report_table("comparisons"),
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
        metrics=sentiment_metrics(),
        # each cell's test predictions, for the intervals and paired comparisons
        predictions=sentiment_cell_files("predictions.csv"),
    output:
        by_setting=report(
            report_table("sentiment"),
            caption="../report/sentiment.rst",
            category="Tables",
            labels={"table": "sentiment learning curves"},
        ),
        runs=report_table("sentiment_runs"),
        comparisons=report(
            report_table("sentiment_comparisons"),
            caption="../report/sentiment_comparisons.rst",
            category="Tables",
            labels={"table": "sentiment paired comparisons"},
        ),
    log:
        f"{REPORT_LOGS}/aggregate_sentiment.log",
    benchmark:
        f"{REPORT_BENCHMARKS}/aggregate_sentiment.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        resampling=config["report"]["bootstrap"],
        reference=reference_setting(SENTIMENT) if SENTIMENT["enabled"] else None,
    script:
        "../scripts/aggregate_sentiment.py"


# One rule per figure (figure_learning_curves, ...), so `snakemake figure_<name>` redraws it alone.
for _figure in figure_names(config):

    rule:
        name:
            f"figure_{_figure}"
        input:
            **{table: report_table(table) for table in FIGURES[_figure].tables},
        output:
            [
                report(
                    path,
                    caption=f"../report/{_figure}.rst",
                    category="Figures",
                    subcategory=FIGURES[_figure].title,
                    labels={
                        "figure": FIGURES[_figure].title,
                        "size": figure_size_label(_figure),
                        "format": Path(path).suffix.lstrip("."),
                    },
                )
                for path in figure_files(_figure)
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
        **summary_inputs(),
        pathologies=report_table("pathologies"),
        # the training subsets' composition table reads them with the index
        subsets=subset_paths(),
    output:
        report(
            PATHS.summary,
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
        report_figures(),


rule report:
    input:
        rules.aggregate.output,
        rules.bootstrap.output,
        rules.summary.output,
        report_figures(),
