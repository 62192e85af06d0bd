"""The report stage through the real Snakefile on a tiny demo matrix: tables, figures, summary.md
and the Snakemake HTML report; a figure setting change reruns only figure rules; a figure is
redrawn without touching a model; an external test cohort in CheXpert's format scores every
frozen run without retraining (transfer table and figure)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, random_demo_encoder, run_snakemake

from probelab.external import frozen_scorer
from probelab.probe_job import read_features

pytestmark = pytest.mark.workflow
PATHOLOGIES_14 = yaml.safe_load((REPO / "config.yaml").read_text())["pathologies"]

MODELS = (
    "baseline_mlp",
    "two_branch_concat",
    "two_branch_concat_no_text",
    "linear_probe",
    "zero_shot",
)
FIGURES = ("learning_curves", "auroc_heatmap", "precision_recall", "training_curves", "transfer")
EXTERNAL_LABELLED = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Pneumonia",
    "Pneumothorax",
]


def tiny_external(config: dict, n_images: int = 60) -> dict:
    """The default config's CheXpert-format external cohort, shrunk."""
    external = config["external"]["demo_chexpert"]
    external["demo"].update(n_images=n_images, image_size=64)
    return {"demo_chexpert": external}


def tiny_config(workdir: Path, **report_changes) -> Path:
    """One demo encoder x the reference, a fusion model and its prompt-ablation control, the
    linear probe and zero-shot x two sizes x two seeds, a few epochs, a small external cohort,
    no sentiment track: the smallest matrix with learning curves, seeds, a comparison against
    the reference, a named pair and a transfer table."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    encoder = random_demo_encoder()
    models = config["models"]
    for name in ("baseline_mlp", "two_branch_concat"):
        models[name].update(epochs=4, patience=2)
    config.update(
        cohort="tiny",
        demo={"enabled": True, "n_images": 160, "image_size": 64, "seed": 0},
        data={"format": "nih", "root": "results/tiny/data"},
        subsets={"sizes": [20, "all"], "seeds": [0, 1]},
        encoders={"demo_openclip": encoder},
        models={name: models[name] for name in MODELS},
        external=tiny_external(config),
    )
    config["sentiment"]["enabled"] = False
    # 160 images hold no pathology with the default 10 positive test patients; the report's
    # mechanics are what is tested here, not honest intervals
    config["training"]["min_test_positives"] = 2
    config["report"]["bootstrap"]["resamples"] = 100
    config["report"]["comparisons"].update(
        models=["two_branch_concat"], pairs=[["two_branch_concat", "two_branch_concat_no_text"]]
    )
    for section, values in report_changes.items():
        config["report"][section].update(values)
    path = workdir / f"config_{len(list(workdir.glob('config_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def planned_jobs(result) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of a dry run."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {
        rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_report")
    config = tiny_config(workdir)
    result = run_snakemake(workdir, "report", configfile=config)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return workdir, config


def test_tiny_matrix_produces_tables_figures_and_summary(tiny_run):
    workdir, _ = tiny_run
    report = workdir / "results" / "tiny" / "report"
    metrics = pd.read_csv(report / "metrics.csv", dtype={"n": str})
    runs = metrics.drop_duplicates(["encoder", "model", "n", "seed"])
    assert len(runs) == len(MODELS) * 2 * 2
    n_train_all = int(
        pd.read_parquet(workdir / "results/tiny/split.parquet")["split"].eq("train").sum()
    )
    assert set(runs.loc[runs["n"] == "all", "n_train"]) == {n_train_all}

    ci = pd.read_csv(report / "bootstrap_ci.csv", dtype={"n": str})
    assert set(ci["model"]) == set(MODELS) and (ci["resamples"] == 100).all()
    comparisons = pd.read_csv(report / "comparisons.csv", dtype={"n": str})
    compared = zip(comparisons["model"], comparisons["reference"], comparisons["n"], strict=True)
    assert set(compared) == {
        ("two_branch_concat", reference, n)
        for reference in ("baseline_mlp", "two_branch_concat_no_text")
        for n in ("20", "all")
    }
    for figure in FIGURES:
        for kind in ("svg", "png"):
            assert (report / f"{figure}.{kind}").stat().st_size > 5_000

    summary = (report / "summary.md").read_text()
    for heading in (
        "## Headline",
        "## Paired comparisons against baseline_mlp",
        "## Figures",
        "## Data",
        "## Encoders and weights",
        "## Provenance",
        "## Caveats",
    ):
        assert heading in summary
    assert "](learning_curves.png)" in summary and "Demo data" in summary
    # the prompt-ablation pair, and what a constant prompt input can and cannot do
    assert "## Paired comparisons between named pairs" in summary
    assert "two_branch_concat − two_branch_concat_no_text" in summary
    assert "**Constant prompt inputs.**" in summary
    assert "text-mined" not in summary  # NIH's caveat belongs to NIH's config, not the demo's
    assert "## Labels that cannot be evaluated" in summary
    assert re.search(
        r"\| demo_openclip \| baseline_mlp \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", summary
    )


def test_snakemake_html_report(tiny_run):
    workdir, config = tiny_run
    html = workdir / "report.html"
    result = run_snakemake(workdir, "report", "--report", str(html), configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    text = html.read_text()
    assert html.stat().st_size > 100_000
    for caption in (
        "Test metrics against the number of training images",
        "Paired comparisons on the same test images",
        "The report in one page",
    ):
        assert caption in text


def test_nothing_to_do_when_nothing_changed(tiny_run):
    workdir, config = tiny_run
    assert planned_jobs(run_snakemake(workdir, "--dry-run", configfile=config)) == {}


def test_a_figure_setting_reruns_only_figure_rules(tiny_run):
    workdir, _ = tiny_run
    changed = tiny_config(
        workdir, figures={"palette": "deep", "learning_curve_metrics": ["auroc", "f1"]}
    )
    jobs = planned_jobs(run_snakemake(workdir, "--dry-run", configfile=changed))
    assert jobs and set(jobs) - {"all"} == {f"figure_{name}" for name in FIGURES}


def test_a_bootstrap_setting_reruns_intervals_figures_and_summary_but_no_model(tiny_run):
    workdir, _ = tiny_run
    changed = tiny_config(workdir, bootstrap={"resamples": 60})
    jobs = planned_jobs(run_snakemake(workdir, "--dry-run", configfile=changed))
    assert "bootstrap" in jobs and "summary" in jobs and "figure_learning_curves" in jobs
    assert not {"train_probe", "aggregate", "embed_images", "figure_training_curves"} & set(jobs)


def test_a_figure_is_redrawn_without_touching_a_model(tiny_run):
    workdir, config = tiny_run
    report = workdir / "results" / "tiny" / "report"
    models = sorted((workdir / "results" / "tiny" / "runs").rglob("model.pt"))
    before = {path: path.stat().st_mtime_ns for path in models}
    (report / "auroc_heatmap.svg").unlink()
    result = run_snakemake(workdir, "figure_auroc_heatmap", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (report / "auroc_heatmap.svg").exists()
    assert re.findall(r"^(?:local)?rule (\w+):", result.stdout + result.stderr, flags=re.M) == [
        "figure_auroc_heatmap"
    ]
    assert {path: path.stat().st_mtime_ns for path in models} == before


# --- external test cohort -----------------------------------------------------------------


def test_every_frozen_run_is_scored_on_the_external_cohort(tiny_run):
    workdir, _ = tiny_run
    report = workdir / "results" / "tiny" / "report"
    transfer = pd.read_csv(report / "transfer.csv", dtype={"n": str}, keep_default_na=False)
    assert set(transfer["model"]) == set(MODELS) and set(transfer["n"]) == {"20", "all"}
    not_labelled = sorted(set(PATHOLOGIES_14) - set(EXTERNAL_LABELLED))
    assert set(transfer["missing"]) == {"|".join(not_labelled)}
    for shared in transfer["pathologies"]:
        assert shared and set(shared.split("|")) <= set(EXTERNAL_LABELLED)
    auroc = transfer[transfer["metric"] == "auroc"]
    assert auroc["external_low"].le(auroc["external_value"]).all()
    assert auroc["external_value"].le(auroc["external_high"]).all()
    assert (auroc["difference"] - (auroc["external_value"] - auroc["internal"])).abs().max() < 1e-12
    external = workdir / "results" / "tiny" / "external" / "demo_chexpert"
    counts = json.loads((external / "index_counts.json").read_text())
    assert counts["dropped_by_filter"]["keep Frontal/Lateral"] > 0
    assert sum(counts["label_policies"]["uncertain"]["labels"].values()) > 0
    metrics = json.loads(
        (external / "runs/demo_openclip/linear_probe/nall/seed0/metrics.json").read_text()
    )
    assert metrics["run"]["external"] == "demo_chexpert"
    assert (
        metrics["excluded_pathologies"]["Mass"] == "not labelled in external cohort demo_chexpert"
    )
    internal = json.loads(
        (
            workdir / "results/tiny/runs/demo_openclip/linear_probe/nall/seed0/metrics.json"
        ).read_text()
    )
    assert metrics["logit_thresholds"] == internal["logit_thresholds"]
    summary = (report / "summary.md").read_text()
    assert "## External test sets" in summary and "not a paired test" in summary
    assert (report / "transfer.png").stat().st_size > 5_000


@pytest.mark.parametrize("model", MODELS)
def test_the_frozen_model_reproduces_the_runs_own_test_logits(tiny_run, model):
    """model.pt alone, reloaded by the external evaluation, scores the internal test images
    exactly as the training job did: nothing is refitted."""
    workdir, _ = tiny_run
    run = workdir / "results/tiny/runs/demo_openclip" / model / "n20" / "seed1"
    predictions = pd.read_parquet(run / "predictions_test.parquet")
    cache = next((workdir / "results/tiny/embeddings/demo_openclip").glob("*.h5"))
    table = read_features(cache, workdir / "results/tiny/index.parquet", "demo_openclip")
    logits = frozen_scorer(run / "model.pt", PATHOLOGIES_14)(table.take(predictions["image_id"]))
    expected = predictions[[f"logit_{p}" for p in PATHOLOGIES_14]].to_numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_adding_an_external_cohort_retrains_nothing(tiny_run):
    workdir, _ = tiny_run
    config = yaml.safe_load(Path(tiny_config(workdir)).read_text())
    second = dict(config["external"]["demo_chexpert"])
    second["demo"] = {**second["demo"], "seed": 5}
    second["data"] = {k: v for k, v in second["data"].items() if k != "root"}
    config["external"]["second"] = second
    path = workdir / "config_second.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(run_snakemake(workdir, "--dry-run", configfile=path))
    assert jobs["evaluate_external"] == 1 and jobs["transfer"] == 1
    assert not {"train_probe", "embed_images", "bootstrap", "aggregate"} & set(jobs)
