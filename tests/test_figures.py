"""Figures are drawn from small aggregated tables: files in every format, non-empty, with titles,
axis labels, legends, log x-axis with "all" at its real size, and the same colour per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_fixtures import PATHOLOGIES, write_cohort, write_runs, write_sentiment

from probelab.config import validate_config
from probelab.report import figures, steps
from probelab.report.aggregate import (
    ReportInputError,
    evaluated_sets,
    history_table,
    metrics_table,
    read_runs,
    read_table,
    sentiment_table,
    summarise_by_setting,
    write_table,
)
from probelab.report.bootstrap import BOOTSTRAP_METRICS
from probelab.report.intervals import BootstrapSettings, bootstrap_tables
from probelab.report.settings import figure_settings
from probelab.report.style import model_colors


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    """The aggregated tables of a small matrix, written and read back as the figure rules do."""
    root = tmp_path_factory.mktemp("report")
    results = root / "results" / "demo"
    cohort = write_cohort(results)
    runs = read_runs(write_runs(results, cohort, sizes=("10", "30", "all"), seeds=(0, 1)))
    settings = BootstrapSettings(
        50, 0, 0.95, BOOTSTRAP_METRICS, "baseline_mlp", ("two_branch_concat",)
    )
    ci, _ = bootstrap_tables(runs, results / "split.parquet", PATHOLOGIES, settings)
    paths = {name: root / f"{name}.csv" for name in ("by_setting", "ci", "history", "sentiment")}
    write_table(
        paths["by_setting"],
        summarise_by_setting(metrics_table(runs, "demo"), evaluated_sets(runs)),
    )
    write_table(paths["ci"], ci)
    write_table(paths["history"], history_table(runs))
    write_table(paths["sentiment"], sentiment_table(write_sentiment(root / "sentiment")))
    return paths


@pytest.fixture
def settings() -> dict:
    config = validate_config({"cohort": "demo", "pathologies": PATHOLOGIES, "data": {"root": "x"}})
    return figure_settings(config["report"])


def _outputs(tmp_path: Path, name: str) -> list[Path]:
    return [tmp_path / f"{name}.svg", tmp_path / f"{name}.png"]


def _check_files(paths: list[Path], title_words: str) -> None:
    svg, png = paths
    assert svg.stat().st_size > 5_000 and png.stat().st_size > 5_000
    assert title_words in svg.read_text()  # text is kept as text in the SVG
    with Image.open(png) as image:
        assert image.width > 300 and image.height > 200
        assert np.asarray(image.convert("L")).std() > 5  # not a blank canvas
    assert not list(svg.parent.glob(".*"))  # no temporary files left behind


def _legend_labels(figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_learning_curves(tables, settings, tmp_path):
    paths = _outputs(tmp_path, "learning_curves")
    figure = figures.learning_curves(
        read_table(tables["by_setting"]), read_table(tables["ci"]), paths, settings, "tuned"
    )
    _check_files(paths, "Learning curves on the test split")
    axes = figure.axes
    assert len(axes) == 2 * len(settings["learning_curve_metrics"])  # encoders x metrics
    for ax in axes:
        assert ax.get_xscale() == "log"
        assert ax.get_title() and ax.get_ylabel()
        # the size "all" sits at its real number of training images (72 in the fixture cohort)
        assert list(ax.get_xticks()) == [10, 30, 72]
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == ["10", "30", "all (72)"]
    assert axes[-1].get_xlabel() == "training images (log scale)"
    assert "fraction" in axes[0].get_ylabel()
    labels = _legend_labels(figure)
    assert {"baseline_mlp", "two_branch_concat", "linear_probe", "all-negative baseline"} <= set(
        labels
    )
    # confidence bands: one filled area per model and panel
    assert all(len(ax.collections) >= 3 for ax in axes)


def _with_mix(ci, policy: str, shares: dict[str, float], prevalences: dict[str, float]):
    return ci.assign(
        subset_policy=policy,
        train_all_negative_share=ci["n"].map(shares),
        train_mean_prevalence=ci["n"].map(prevalences),
    )


def _band_tops(ax) -> list[float]:
    """The upper edge of every band of a panel (fill_between polygons), as drawn."""
    tops = []
    for collection in ax.collections:
        for path in collection.get_paths():
            tops.append(float(path.vertices[:, 1].max()))
    return tops


def test_learning_curve_bands_resample_seeds_and_patients(tables, settings, tmp_path):
    ci = read_table(tables["ci"])
    figure = figures.learning_curves(
        read_table(tables["by_setting"]), ci, _outputs(tmp_path, "lc"), settings, "tuned"
    )
    assert "band = 95% interval over seeds and test patients" in figure._suptitle.get_text()
    ax = figure.axes[0]  # enc_a, macro AUROC
    rows = ci[(ci["encoder"] == "enc_a") & (ci["metric"] == "auroc") & (ci["policy"] == "tuned")]
    expected = sorted(rows.groupby("model")["ci_high_seeds"].max().round(9))
    assert sorted(np.round(_band_tops(ax), 9)) == expected
    # an old table without the seeds columns: the patient interval, and the title says so
    old = ci.drop(columns=["ci_low_seeds", "ci_high_seeds"])
    figure = figures.learning_curves(
        read_table(tables["by_setting"]), old, _outputs(tmp_path, "old"), settings, "tuned"
    )
    assert "patient-bootstrap interval" in figure._suptitle.get_text()


def test_a_size_with_another_training_mix_is_marked(tables, settings, tmp_path):
    """Balanced sampling: 10 and 30 hold 20 % no-finding images, `all` the natural 61 %: that
    point gets a hollow marker and a dashed segment, and the title gives both mixes."""
    shares = {"10": 0.2, "30": 0.2, "all": 0.61}
    prevalences = {"10": 0.099, "30": 0.1, "all": 0.040}
    ci = _with_mix(read_table(tables["ci"]), "balanced", shares, prevalences)
    paths = _outputs(tmp_path, "learning_curves")
    figure = figures.learning_curves(read_table(tables["by_setting"]), ci, paths, settings, "tuned")
    title = figure._suptitle.get_text()
    assert "Hollow marker, dashed line: training mix differs from the balanced mix" in title
    assert (
        "(balanced sampling; all-negative share, mean prevalence: all (72): 0.61, 0.040 vs "
        in title
    )
    assert "vs 0.20, 0.100)" in title
    assert "different training mix" in _legend_labels(figure)
    ax = figure.axes[0]
    hollow = [
        line
        for line in ax.lines
        if line.get_marker() == "o" and line.get_markerfacecolor() in ("white", (1, 1, 1, 1))
    ]
    assert hollow and all(list(line.get_xdata()) == [72] for line in hollow)
    dashed = [
        line for line in ax.lines if line.get_linestyle() == "--" and len(line.get_xdata()) == 2
    ]
    assert dashed and all(list(line.get_xdata()) == [30, 72] for line in dashed)
    solid = [
        line for line in ax.lines if line.get_linestyle() == "-" and len(line.get_xdata()) == 2
    ]
    assert solid and all(list(line.get_xdata()) == [10, 30] for line in solid)
    assert "training mix differs" in paths[0].read_text()


def test_no_point_is_marked_when_every_size_shares_the_mix(tables, settings, tmp_path):
    natural = {"10": 0.6, "30": 0.62, "all": 0.61}
    prevalences = {"10": 0.041, "30": 0.039, "all": 0.040}
    ci = _with_mix(read_table(tables["ci"]), "stratified", natural, prevalences)
    figure = figures.learning_curves(
        read_table(tables["by_setting"]), ci, _outputs(tmp_path, "lc"), settings, "tuned"
    )
    assert "training mix differs" not in figure._suptitle.get_text()
    assert all(
        line.get_linestyle() != "--" or len(line.get_xdata()) != 2 for line in figure.axes[0].lines
    )
    # stratified sampling, but one size's mix is off after all: it is marked
    assert figures.mix_outliers(_with_mix(ci, "stratified", {**natural, "10": 0.3}, prevalences))[
        0
    ] == {"10"}
    # balanced sampling whose `all` happens to hold the same mix: nothing to mark
    assert figures.mix_outliers(_with_mix(ci, "balanced", natural, prevalences)) == (set(), "")
    # no mix files: nothing known, nothing marked
    assert figures.mix_outliers(read_table(tables["ci"])) == (set(), "")


def test_auroc_heatmap(tables, settings, tmp_path):
    paths = _outputs(tmp_path, "auroc_heatmap")
    figure = figures.auroc_heatmap(
        read_table(tables["by_setting"]), paths, settings, "tuned", PATHOLOGIES
    )
    _check_files(paths, "Per-pathology test AUROC at all (72) training images")
    heatmaps = [ax for ax in figure.axes if ax.get_title() in ("enc_a", "enc_b")]
    assert len(heatmaps) == 2
    assert [t.get_text() for t in heatmaps[0].get_yticklabels()] == PATHOLOGIES
    assert [t.get_text() for t in heatmaps[0].get_xticklabels()] == [
        "linear_probe",
        "baseline_mlp",
        "two_branch_concat",
    ]


def test_heatmap_at_a_size_that_was_not_run_is_refused(tables, settings, tmp_path):
    settings = {**settings, "heatmap_size": 5000}
    with pytest.raises(
        ReportInputError,
        match=r"'report.figures.heatmap_size' is 5000, but only sizes 10, 30, all were run",
    ):
        figures.auroc_heatmap(
            read_table(tables["by_setting"]),
            _outputs(tmp_path, "x"),
            settings,
            "tuned",
            PATHOLOGIES,
        )


def test_precision_recall(tables, settings, tmp_path):
    paths = _outputs(tmp_path, "precision_recall")
    figure = figures.precision_recall(
        read_table(tables["by_setting"]), read_table(tables["ci"]), paths, settings, "t0.5"
    )
    _check_files(paths, "Test macro precision vs recall")
    assert figure.axes[0].get_xlabel().startswith("macro recall")
    assert set(_legend_labels(figure)) == {"baseline_mlp", "two_branch_concat", "linear_probe"}


def test_training_curves(tables, settings, tmp_path):
    paths = _outputs(tmp_path, "training_curves")
    figure = figures.training_curves(read_table(tables["history"]), paths, settings)
    _check_files(paths, "Training curves of representative runs")
    titles = sorted(ax.get_title() for ax in figure.axes if ax.get_title())
    assert titles == [
        "enc_a / baseline_mlp",
        "enc_a / two_branch_concat",
        "enc_b / baseline_mlp",
        "enc_b / two_branch_concat",
    ]
    assert figure.axes[0].get_ylabel() == "BCE loss per label (mean)"


def test_sentiment_comparison(tables, settings, tmp_path):
    paths = _outputs(tmp_path, "sentiment_comparison")
    figure = figures.sentiment_comparison(read_table(tables["sentiment"]), paths, settings)
    _check_files(paths, "SVM on frozen encoder features vs fine-tuning")
    assert set(_legend_labels(figure)) == {"SVM on frozen features", "fine-tuned encoder"}


def test_each_model_keeps_its_colour_whichever_models_a_figure_shows(settings):
    everything = model_colors(["zero_shot", "baseline_mlp", "weighted_sum", "my_model"], settings)
    fewer = model_colors(["weighted_sum"], settings)
    assert everything["weighted_sum"] == fewer["weighted_sum"]
    shown = ["zero_shot", "baseline_mlp", "weighted_sum", "my_model"]
    assert len({tuple(np.round(everything[m], 6)) for m in shown}) == 4
    assert (
        model_colors(["baseline_mlp"], {**settings, "model_colors": {"baseline_mlp": "#000000"}})[
            "baseline_mlp"
        ]
        == "#000000"
    )


def test_figure_step_reads_only_the_tables_it_names(tables, settings, tmp_path):
    outputs = _outputs(tmp_path, "auroc_heatmap")
    # only the table the figure names is given: a figure reading any other would fail here
    steps.draw_figure(
        "auroc_heatmap",
        {"by_setting": tables["by_setting"]},
        outputs,
        settings,
        "tuned",
        PATHOLOGIES,
    )
    _check_files(outputs, "AUROC")
    # the same figure drawn by the plotting function directly: the step adds nothing else
    direct = _outputs(tmp_path / "direct", "auroc_heatmap")
    figures.auroc_heatmap(read_table(tables["by_setting"]), direct, settings, "tuned", PATHOLOGIES)
    assert outputs[0].read_bytes() == direct[0].read_bytes()
    with pytest.raises(ValueError, match="unknown figure 'pie'"):
        steps.draw_figure("pie", {}, outputs, settings, "tuned", PATHOLOGIES)


def test_unchanged_svg_is_byte_identical(tables, settings, tmp_path):
    first, second = tmp_path / "a.svg", tmp_path / "b.svg"
    figures.training_curves(read_table(tables["history"]), [first], settings)
    figures.training_curves(read_table(tables["history"]), [second], settings)
    assert first.read_bytes() == second.read_bytes()
