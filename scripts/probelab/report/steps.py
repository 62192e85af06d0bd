"""The report stage's steps, one function per rule: aggregate the run folders into tables,
bootstrap the test predictions, collect the sentiment metrics, draw one figure, write
summary.md. scripts/aggregate.py, bootstrap.py, aggregate_sentiment.py, figures.py and summary.py
are their command-line and Snakemake adapters. No torch and no scikit-learn here: the report
environment has neither."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.io import write_text
from probelab.layout import FIGURES
from probelab.report.aggregate import (
    evaluated_sets,
    history_table,
    metrics_table,
    pathology_table,
    read_runs,
    read_table,
    summarise_by_setting,
    write_table,
)
from probelab.report.transfer import (
    TRANSFER_METRICS,
    shared_pathologies,
    transfer_figure,
    transfer_table,
)

log = logging.getLogger("probelab.report")


def aggregate(
    run_dirs: list[Path],
    cohort: str,
    metrics_out: Path,
    by_setting_out: Path,
    history_out: Path,
    pathologies_out: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read every run folder and write metrics.csv (every metric row of every run),
    summary_by_setting.csv (mean, std and count over seeds), history.csv and, when asked,
    pathologies.csv (per run and pathology: positives per split, evaluated or why not); return
    the first three."""
    runs = read_runs(run_dirs)
    metrics = metrics_table(runs, cohort)
    by_setting = summarise_by_setting(metrics, evaluated_sets(runs))
    history = history_table(runs)
    write_table(metrics_out, metrics)
    write_table(by_setting_out, by_setting)
    write_table(history_out, history)
    if pathologies_out is not None:
        write_table(pathologies_out, pathology_table(runs, cohort))
    log.info(
        "%d runs -> %d metric rows, %d settings rows, %d history rows",
        len(runs),
        len(metrics),
        len(by_setting),
        len(history),
    )
    return metrics, by_setting, history


def bootstrap(
    run_dirs: list[Path],
    split_path: Path,
    pathologies: list[str],
    resampling: dict[str, Any],
    comparisons: dict[str, Any],
    ci_out: Path,
    comparisons_out: Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap every run's test predictions over test patients: bootstrap_ci.csv (an interval
    per setting) and comparisons.csv (paired differences between models on the same images).
    resampling = config report.bootstrap, comparisons = config report.comparisons."""
    from probelab.report.intervals import bootstrap_tables

    settings = bootstrap_settings(resampling, comparisons)
    ci, paired = bootstrap_tables(read_runs(run_dirs), split_path, pathologies, settings)
    write_table(ci_out, ci)
    write_table(comparisons_out, paired)
    log.info(
        "%d interval rows, %d comparison rows (%d resamples)",
        len(ci),
        len(paired),
        settings.resamples,
    )
    return ci, paired


def bootstrap_settings(resampling: dict[str, Any], comparisons: dict[str, Any]):
    """config report.bootstrap and report.comparisons as BootstrapSettings."""
    from probelab.report.intervals import BootstrapSettings

    return BootstrapSettings(
        resamples=resampling["resamples"],
        seed=resampling["seed"],
        confidence=resampling["confidence"],
        metrics=tuple(resampling["metrics"]),
        reference=comparisons["reference"],
        compared=tuple(comparisons["models"]),
        interval=resampling.get("interval", "logit"),
        pairs=tuple(tuple(pair) for pair in comparisons.get("pairs", [])),
    )


def transfer(
    run_dirs: list[Path],
    split_path: Path,
    external: dict[str, tuple[list[Path], Path]],
    pathologies: list[str],
    resampling: dict[str, Any],
    out: Path,
) -> pd.DataFrame:
    """transfer.csv: every setting's macro metrics on the internal test split and on each
    external cohort (name -> (its evaluated run folders, its split)), with the same patient
    bootstrap, both over one set per cohort: the pathologies every run evaluates on both
    sides."""
    from dataclasses import replace

    from probelab.report.intervals import bootstrap_tables

    settings = replace(
        bootstrap_settings(resampling, {"reference": "", "models": []}),
        metrics=tuple(m for m in resampling["metrics"] if m in TRANSFER_METRICS),
    )
    internal = read_runs(run_dirs)
    tables = []
    for name, (folders, external_split) in external.items():
        outside = read_runs(folders)
        shared = shared_pathologies(internal, outside)
        # one set for the whole table: what every run evaluates on both sides
        both = set.intersection(*shared.values()) if shared else set()
        inside_ci, _ = bootstrap_tables(internal, split_path, pathologies, settings, both)
        outside_ci, _ = bootstrap_tables(outside, external_split, pathologies, settings, both)
        common = {key: both for key in shared}
        tables.append(transfer_table(name, inside_ci, outside_ci, common, outside))
    table = pd.concat(tables, ignore_index=True)
    write_table(out, table)
    log.info("%d transfer rows for %d external cohort(s)", len(table), len(external))
    return table


def draw_figure(
    name: str,
    tables: dict[str, Path],
    outputs: list[Path],
    settings: dict[str, Any],
    policy: str,
    pathologies: list[str],
) -> None:
    """Draw figure `name` into `outputs` (one path per format) from the aggregated tables it
    reads (probelab.layout.FIGURES), never from run folders."""
    from probelab.report import figures

    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of {', '.join(FIGURES)}.")
    data = {key: read_table(tables[key]) for key in FIGURES[name].tables}
    if name == "learning_curves":
        figures.learning_curves(data["by_setting"], data["ci"], outputs, settings, policy)
    elif name == "auroc_heatmap":
        figures.auroc_heatmap(data["by_setting"], outputs, settings, policy, pathologies)
    elif name == "precision_recall":
        figures.precision_recall(data["by_setting"], data["ci"], outputs, settings, policy)
    elif name == "training_curves":
        figures.training_curves(data["history"], outputs, settings)
    elif name == "transfer":
        transfer_figure(data["transfer"], outputs, settings)
    else:
        figures.sentiment_comparison(data["sentiment"], outputs, settings)
    log.info("wrote %s", ", ".join(map(str, outputs)))


def write_summary(
    config: dict[str, Any],
    tables: dict[str, Path],
    cohort_files: dict[str, Path],
    figures: list[str],
    out: Path,
    caches: dict[str, Path] | None = None,
) -> str:
    """Write summary.md: headline table with intervals, comparisons, figures, data counts,
    encoders, provenance and caveats.

    tables: by_setting, ci, comparisons and optionally pathologies and sentiment (CSV paths);
    cohort_files:
    index_counts, split, index; figures: file names of the figures (next to summary.md) to link;
    config: the validated config without report.figures (probelab.report.settings.summary_config);
    caches: each encoder's image cache (its failed images are listed).
    """
    from probelab.report.summary import write_summary_text

    sentiment = read_table(tables["sentiment"]) if tables.get("sentiment") else None
    scope = read_table(tables["pathologies"]) if tables.get("pathologies") else None
    transfer = read_table(tables["transfer"]) if tables.get("transfer") else None
    text = write_summary_text(
        config=config,
        by_setting=read_table(tables["by_setting"]),
        ci=read_table(tables["ci"]),
        comparisons=read_table(tables["comparisons"]),
        figures=figures,
        index_counts=cohort_files["index_counts"],
        split_path=cohort_files["split"],
        index_path=cohort_files["index"],
        sentiment=sentiment,
        caches=caches,
        scope=scope,
        transfer=transfer,
    )
    write_text(out, text)
    log.info("wrote %s (%d lines)", out, text.count("\n"))
    return text
