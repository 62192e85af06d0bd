"""Aggregation of hand-made run folders into metrics.csv, summary_by_setting.csv and history.csv;
the report section of the config; bad run folders get one clear sentence."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from report_fixtures import EPOCH_MODELS, PATHOLOGIES, write_cohort, write_runs, write_sentiment

from probelab.config import ConfigError, check_config, config_hash, validate_config
from probelab.report import steps
from probelab.report.aggregate import (
    RunFolderError,
    evaluated_sets,
    history_table,
    metrics_table,
    read_run,
    read_runs,
    read_table,
    sentiment_table,
    size_order,
    summarise_by_setting,
    write_table,
)
from probelab.report.settings import (
    figure_names,
    summary_config,
    summary_figures,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results") / "demo"
    cohort = write_cohort(results)
    folders = write_runs(results, cohort, encoders=("enc_a",), sizes=("10", "all"), seeds=(0, 1, 2))
    return folders


def test_metrics_table_has_one_row_per_run_split_policy_metric_pathology(runs):
    table = metrics_table(read_runs(runs), "demo")
    expected_rows = sum(len(json.loads((f / "metrics.json").read_text())["metrics"]) for f in runs)
    assert len(table) == expected_rows
    assert list(table.columns) == [
        "cohort",
        "encoder",
        "model",
        "n",
        "n_train",
        "seed",
        "split",
        "policy",
        "metric",
        "pathology",
        "value",
    ]
    assert not table.duplicated(
        ["encoder", "model", "n", "seed", "split", "policy", "metric", "pathology"]
    ).any()
    assert set(table["n"]) == {"10", "all"}
    # "all" carries its real number of training images (the train split of the fixture cohort)
    assert set(table.loc[table["n"] == "all", "n_train"]) == {72}
    assert set(table.loc[table["n"] == "10", "n_train"]) == {10}


def test_summary_by_setting_is_mean_std_and_count_over_seeds(runs):
    folders = read_runs(runs)
    table = metrics_table(folders, "demo")
    summary = summarise_by_setting(table, evaluated_sets(folders))
    key = dict(
        encoder="enc_a",
        model="baseline_mlp",
        n="all",
        split="test",
        policy="tuned",
        metric="f1",
        pathology="macro",
    )
    values = table.loc[np.logical_and.reduce([table[k] == v for k, v in key.items()]), "value"]
    row = summary.loc[np.logical_and.reduce([summary[k] == v for k, v in key.items()])].iloc[0]
    assert len(values) == 3
    assert row["mean"] == pytest.approx(values.mean())
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert row["n_seeds"] == 3 and row["n_runs"] == 3 and row["n_train"] == 72


def test_undefined_values_stay_undefined_and_are_not_counted(tmp_path, runs):
    folder = tmp_path / "run"
    folder.mkdir()
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    for row in metrics["metrics"]:
        if row["metric"] == "auroc" and row["pathology"] == "Hernia":
            row["value"] = None
    (folder / "metrics.json").write_text(json.dumps(metrics))
    run = read_run(folder)
    table = metrics_table([run], "demo")
    hernia = table[(table["metric"] == "auroc") & (table["pathology"] == "Hernia")]
    assert hernia["value"].isna().all()
    summary = summarise_by_setting(table, evaluated_sets([run]))
    assert (
        summary.loc[(summary["metric"] == "auroc") & (summary["pathology"] == "Hernia"), "n_seeds"]
        == 0
    ).all()


def test_history_table_holds_the_runs_with_epochs(runs):
    history = history_table(read_runs(runs))
    assert set(history["model"]) == EPOCH_MODELS & {
        "baseline_mlp",
        "two_branch_concat",
        "linear_probe",
    }
    assert list(history.columns) == [
        "encoder",
        "model",
        "n",
        "n_train",
        "seed",
        "epoch",
        "train_loss",
        "val_loss",
        "lr",
    ]
    assert (
        len(history) == 2 * 2 * 3 * 8
    )  # two epoch models x two sizes x three seeds x eight epochs


def test_aggregate_step_writes_the_three_tables(runs, tmp_path):
    out = tmp_path / "report"
    returned = steps.aggregate(
        runs, "demo", out / "metrics.csv", out / "summary_by_setting.csv", out / "history.csv"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv",
        "metrics.csv",
        "summary_by_setting.csv",
    ]
    metrics = read_table(out / "metrics.csv")
    assert set(metrics["n"]) == {"10", "all"}  # sizes read back as strings, not numbers
    # what is written is what the table functions compute, row for row
    folders = read_runs(runs)
    expected = {
        "metrics.csv": metrics_table(folders, "demo"),
        "summary_by_setting.csv": summarise_by_setting(
            metrics_table(folders, "demo"), evaluated_sets(folders)
        ),
        "history.csv": history_table(folders),
    }
    for (name, table), written in zip(expected.items(), returned, strict=True):
        pd.testing.assert_frame_equal(written, table)
        assert len(read_table(out / name)) == len(table) > 0
    by_setting = read_table(out / "summary_by_setting.csv")
    # one row per setting: 2 sizes x every (model, split, policy, metric, pathology) of the runs
    keys = ["encoder", "model", "n", "split", "policy", "metric", "pathology"]
    assert not by_setting.duplicated(keys).any()
    assert (by_setting["n_seeds"] <= 3).all() and (by_setting["n_runs"] == 3).all()


def test_sentiment_table(tmp_path):
    table = sentiment_table(write_sentiment(tmp_path))
    assert set(table["method"]) == {"svm", "finetune"}
    assert set(table["split"]) == {"validation", "test"}
    assert len(table) == 2 * 2 * 4


def test_size_order_puts_all_last():
    assert size_order(["all", "200", "50", "200"]) == ["50", "200", "all"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", r"metrics.json is not valid JSON"),
        (
            '{"run": {"encoder": "e", "model": "m", "n": 5, "seed": 0}, "metrics": []}',
            r"the 'run' block lacks n_train",
        ),
        ('{"metrics": []}', r"must be an object with keys 'run' and 'metrics'"),
        (
            '{"run": {"encoder": "e", "model": "m", "n": 5, "seed": 0, "n_train": 5}, '
            '"metrics": [{"split": "test", "policy": "t0.5", "metric": "f1", '
            '"pathology": "macro", "value": "high"}]}',
            r"metrics row 0 has value 'high'; expected a number or null",
        ),
        (
            '{"run": {"encoder": "e", "model": "m", "n": 5, "seed": 0, "n_train": 5}, '
            '"metrics": [{"split": "test", "metric": "f1", "value": 0.5}]}',
            r"metrics row 0 must have keys split, policy, metric, pathology, value",
        ),
    ],
)
def test_bad_metrics_json_is_named(tmp_path, content, message):
    (tmp_path / "metrics.json").write_text(content)
    with pytest.raises(RunFolderError, match=message) as error:
        read_run(tmp_path)
    assert str(tmp_path / "metrics.json") in str(error.value)


def test_missing_metrics_json_and_history_are_named(tmp_path, runs):
    with pytest.raises(RunFolderError, match="metrics.json is missing"):
        read_run(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_text((runs[0] / "metrics.json").read_text())
    with pytest.raises(RunFolderError, match="history.csv is missing"):
        history_table([read_run(folder)])
    (folder / "history.csv").write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(
        RunFolderError, match=r"history.csv lacks the column\(s\) lr, train_loss, val_loss"
    ):
        history_table([read_run(folder)])


def test_the_same_run_twice_is_refused(tmp_path, runs):
    copy_folder = tmp_path / "copy"
    copy_folder.mkdir()
    (copy_folder / "metrics.json").write_text((runs[0] / "metrics.json").read_text())
    with pytest.raises(RunFolderError, match="describes the same run"):
        read_runs([runs[0], copy_folder])


def test_a_failed_write_leaves_no_table_behind(runs, tmp_path, monkeypatch):
    out = tmp_path / "report"
    monkeypatch.setattr(
        pd.DataFrame, "to_csv", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))
    )
    with pytest.raises(OSError):
        steps.aggregate(
            runs, "demo", out / "metrics.csv", out / "summary_by_setting.csv", out / "history.csv"
        )
    assert list(out.iterdir()) == []


def _config(**report) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["report"] = copy.deepcopy(report)
    return config


def test_report_config_defaults_are_filled_in():
    config = validate_config(_config())
    report = config["report"]
    assert report["bootstrap"]["resamples"] == 1000 and report["bootstrap"]["seed"] == 0
    assert report["figures"]["formats"] == ["svg", "png"]
    assert report["comparisons"]["reference"] == "baseline_mlp"
    check_config(config)


@pytest.mark.parametrize(
    "report, message",
    [
        (
            {"bootstrap": {"resamples": 5}},
            r"report.bootstrap.resamples' is invalid: 5 is less than the minimum of 50",
        ),
        ({"figures": {"formats": ["gif"]}}, r"report.figures.formats\[0\]' is invalid"),
        ({"figures": {"heatmap_size": "biggest"}}, r"report.figures.heatmap_size' is invalid"),
        ({"policy": "best"}, r"report.policy' is invalid"),
        ({"colour": "red"}, r"report' has additional properties"),
    ],
)
def test_bad_report_config_is_one_sentence(report, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_config(**report))


def test_plotted_metrics_must_be_bootstrapped():
    with pytest.raises(
        ConfigError,
        match=r"report.figures.learning_curve_metrics' is invalid: f1, exact_match, hamming_loss "
        "must also be listed",
    ):
        validate_config(_config(bootstrap={"metrics": ["auroc"]}))


def test_comparison_reference_must_be_a_model_that_is_run():
    with pytest.raises(
        ConfigError,
        match=r"report.comparisons.reference' is invalid: model 'weighted_sum' is not run "
        r"\(enabled models: baseline_mlp, two_branch_concat, [a-z_, ]*zero_shot[a-z_, ]*\)",
    ):
        config = _config(comparisons={"reference": "weighted_sum"})
        config["models"]["weighted_sum"]["enabled"] = False
        validate_config(config)


def test_summary_config_leaves_out_only_the_figure_settings():
    config = validate_config(_config())
    reduced = summary_config(config)
    assert "figures" not in reduced["report"] and "figures" in config["report"]
    assert {k: v for k, v in reduced.items() if k != "report"} == {
        k: v for k, v in config.items() if k != "report"
    }
    assert summary_figures(config)[0] == "learning_curves.png"
    sentiment_on = {**config, "sentiment": {"enabled": True}}
    assert figure_names(sentiment_on)[-1] == "sentiment_comparison"


def test_summary_md_from_hand_made_runs(runs, tmp_path):
    from probelab.report.aggregate import write_table
    from probelab.report.intervals import BootstrapSettings, bootstrap_tables

    results = runs[0].parents[4]
    folders = read_runs(runs)
    settings = BootstrapSettings(
        50,
        0,
        0.95,
        ("auroc", "f1", "exact_match", "hamming_loss"),
        "baseline_mlp",
        ("two_branch_concat",),
    )
    ci, comparisons = bootstrap_tables(folders, results / "split.parquet", PATHOLOGIES, settings)
    tables = {name: tmp_path / f"{name}.csv" for name in ("by_setting", "ci", "comparisons")}
    write_table(
        tables["by_setting"],
        summarise_by_setting(metrics_table(folders, "demo"), evaluated_sets(folders)),
    )
    write_table(tables["ci"], ci)
    write_table(tables["comparisons"], comparisons)
    config = validate_config(_config())
    config["pathologies"] = PATHOLOGIES
    config["encoders"] = {
        "enc_a": {
            "backend": "transformers",
            "model": "StanfordAIMI/XraySigLIP__vit-b-16-siglip-512__webli",
        }
    }
    cohort = {
        "index_counts": results / "index_counts.json",
        "split": results / "split.parquet",
        "index": results / "index.parquet",
    }
    text = steps.write_summary(
        summary_config(config), tables, cohort, ["learning_curves.png"], tmp_path / "summary.md"
    )
    assert (tmp_path / "summary.md").read_text() == text
    assert "## Headline: test metrics at all (72) training images" in text
    assert re.search(
        r"\| enc_a \| two_branch_concat \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", text
    )
    assert "| all-negative baseline |" in text
    assert "| enc_a | all (72) | two_branch_concat | " in text  # a paired comparison row
    assert "![Learning curves (test metrics vs training-set size)](learning_curves.png)" in text
    assert (
        "| = present on disk | 180 |" in text
        and "| − listed but missing on disk | 7 |" in text
        # the fixture's index_counts.json predates the indexed count
        and "| = indexed (rows of the index) | — |" in text
    )
    assert "| test | 72 | 24 |" in text  # images and patients of the test split
    assert "Possible overlap with NIH in pretraining.** enc_a" in text
    # the cohort's caveats come from its config (the demo's says it is synthetic), no others
    assert "**Demo data.** The cohort is synthetic" in text and "text-mined" not in text
    assert f"Config hash `{config_hash(summary_config(config))}`" in text
    assert re.search(r"\| pandas \| \d+\.\d+", text)

    config["report"]["headline_size"] = 999
    with pytest.raises(
        ValueError, match=r"'report.headline_size' is 999, but only sizes 10, all were run"
    ):
        steps.write_summary(summary_config(config), tables, cohort, [], tmp_path / "other.md")
    assert not (tmp_path / "other.md").exists()


HERNIA_REASON = "0 positives in validation (min_positives 1); not trained"
EFFUSION_REASON = "0 positives in test (min_positives 1); trained, not evaluated"


def _with_scope(runs: list[Path], root: Path) -> list[Path]:
    """Copies of the run folders whose metrics.json record the evaluation scope: at n = 10 Hernia
    has no validation positive (excluded, its rows null); at n = all every pathology counts."""
    folders = []
    for folder in runs:
        copy_folder = root / folder.relative_to(folder.parents[4])
        copy_folder.mkdir(parents=True)
        (copy_folder / "history.csv").write_text((folder / "history.csv").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        small = str(metrics["run"]["n"]) == "10"
        metrics["evaluated_pathologies"] = PATHOLOGIES[:2] if small else PATHOLOGIES
        metrics["excluded_pathologies"] = {"Hernia": HERNIA_REASON} if small else {}
        if (metrics["run"]["model"], metrics["run"]["n"], metrics["run"]["seed"]) == (
            "linear_probe",
            "all",
            0,
        ):  # one run whose test split would lack Effusion positives
            metrics["evaluated_pathologies"] = ["Atelectasis", "Hernia"]
            metrics["excluded_pathologies"] = {"Effusion": EFFUSION_REASON}
        metrics["positives"] = {
            split: {
                p: (0 if small and p == "Hernia" and split != "test" else 4) for p in PATHOLOGIES
            }
            for split in ("train", "val", "test")
        }
        if small:
            metrics["thresholds"]["Hernia"] = None
            for row in metrics["metrics"]:
                if row["pathology"] == "Hernia":
                    row["value"] = None
        (copy_folder / "metrics.json").write_text(json.dumps(metrics))
        folders.append(copy_folder)
    return folders


def _hand_made_ci(by_setting: pd.DataFrame) -> pd.DataFrame:
    rows = by_setting[
        (by_setting["split"] == "test")
        & (by_setting["pathology"] == "macro")
        & by_setting["policy"].isin(["tuned"])
        & by_setting["metric"].isin(["auroc", "f1"])
    ]
    return rows.assign(
        estimate=rows["mean"],
        ci_low=rows["mean"] - 0.05,
        ci_high=rows["mean"] + 0.05,
        resamples=100,
        confidence=0.95,
    )[
        [
            "encoder",
            "model",
            "n",
            "n_train",
            "policy",
            "metric",
            "estimate",
            "ci_low",
            "ci_high",
            "n_seeds",
            "resamples",
            "confidence",
        ]
    ]


def test_summary_lists_the_labels_that_cannot_be_evaluated(runs, tmp_path):
    folders = _with_scope(runs, tmp_path / "runs")
    out = tmp_path / "report"
    tables = {key: out / f"{key}.csv" for key in ("by_setting", "ci", "comparisons", "pathologies")}
    steps.aggregate(
        folders,
        "demo",
        out / "metrics.csv",
        tables["by_setting"],
        out / "history.csv",
        tables["pathologies"],
    )
    scope = read_table(tables["pathologies"])
    assert len(scope) == len(folders) * len(PATHOLOGIES)
    hernia_small = scope[(scope["pathology"] == "Hernia") & (scope["n"] == "10")]
    assert not hernia_small["evaluated"].any() and set(hernia_small["reason"]) == {HERNIA_REASON}
    assert (hernia_small["val_positives"] == 0).all()
    assert scope.loc[scope["n"] == "all", "evaluated"].sum() == 9 * 3 - 1  # Effusion in one run
    # macro rows stay as the runs wrote them: over the evaluated pathologies only
    by_setting = read_table(tables["by_setting"])
    write_table(tables["ci"], _hand_made_ci(by_setting))
    pd.DataFrame(columns=["encoder", "model", "n", "policy", "metric"]).to_csv(
        tables["comparisons"], index=False
    )
    config = validate_config(_config())
    config["pathologies"] = PATHOLOGIES
    config["report"]["headline_size"] = "10"
    results = runs[0].parents[4]
    cohort = {
        "index_counts": results / "index_counts.json",
        "split": results / "split.parquet",
        "index": results / "index.parquet",
    }
    text = steps.write_summary(summary_config(config), tables, cohort, [], out / "summary.md")

    # one rule, stated where the macro metrics are, and the one set every macro averages: Hernia
    # is left out at n = 10, Effusion by one run at all
    assert (
        "A run evaluates a pathology when its training subset and validation hold at least 1 "
        "positive patient(s) of it (`training.min_positives`), test at least 10"
    ) in text
    assert "averages the same pathologies, those every run evaluates: **1 of 3: Atelectasis**" in (
        text
    )
    assert "| macro AUROC | macro F1 | seeds |" in text
    assert re.search(r"\| enc_a \| baseline_mlp \| [^\n]* \| 3 \|", text)
    # the positives table: patients per split, and the fewest training positives of each size
    assert "| pathology | present | train split | val split | test split | n = 10: fewest |" in text
    assert re.search(r"\| Hernia \| \d+ \| \d+ \| \d+ \| \d+( ✗)? \| 0 ✗ \| 4 \| 9 of 18 \|", text)
    # the section that lists them, with the reason the job log and metrics.json give
    section = text.split("## Labels that cannot be evaluated", 1)[1].split("\n## ", 1)[0]
    assert f"| Hernia | 10 | 0, 1, 2 | all 9 | {HERNIA_REASON} |" in section
    assert f"| Effusion | all (72) | 0 | 1 of 9 (enc_a; linear_probe) | {EFFUSION_REASON} |" in (
        section
    )
    assert "Atelectasis" not in section.split("| pathology |", 1)[1]


def test_a_cohort_caveat_is_printed_only_for_the_cohort_that_has_it(runs, tmp_path):
    from probelab.report.summary import caveats_section

    demo = validate_config(_config())
    nih = yaml.safe_load((REPO / "configs" / "nih.yaml").read_text())
    assert "text-mined" not in caveats_section(demo)
    assert "**Demo data.**" in caveats_section(demo)
    with_nih = {**demo, "cohort_caveats": nih["cohort_caveats"]}
    text = caveats_section(with_nih)
    assert "**Label noise.** NIH ChestX-ray14 labels were text-mined" in text
    assert "Demo data" not in text
    assert "Demo data" not in caveats_section({**demo, "cohort_caveats": []})
