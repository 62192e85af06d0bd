"""summary.md's counts against the index and the label table (issue 23, item 5): the chain from
the label table to the index with the images `data.views` drops, the training subsets' composition
(all-negative share: no configured pathology positive, whatever else an image shows), and the
sentence for an external cohort on which nothing is compared. Every reference is a hand count with
pandas from the label table, the files on disk, the index or the subset files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import NIH_SAMPLE, tiny_cohort
from report_fixtures import PATHOLOGIES as RUN_PATHOLOGIES
from report_fixtures import write_cohort, write_runs

from probelab.cohort import build_index, index_images
from probelab.config import validate_config
from probelab.report import steps
from probelab.report.aggregate import read_table
from probelab.report.summary import (
    EvaluationRule,
    data_section,
    subsets_section,
    transfer_section,
)
from probelab.report.transfer import TRANSFER_COLUMNS, transfer_figure
from probelab.subsets import read_mix, subset_mix, write_subsets

CONFIGURED = ["Cardiomegaly", "Effusion"]  # tiny_cohort's Nodule images are other findings
SIZES, SEEDS = [6, "all"], [0, 1]


def _two_column_rows(text: str) -> dict[str, str]:
    """label -> count of every two-cell row of a Markdown table in `text`."""
    return dict(re.findall(r"^\| ([^|]+) \| ([^|]+) \|$", text, flags=re.MULTILINE))


def _table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every Markdown table row of `text` whose first cell is `first_cell`."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def _on_disk(root: Path) -> set[str]:
    return {path.name for path in root.rglob("*.png")}


@pytest.fixture
def cohort(tmp_path: Path) -> dict:
    """tiny_cohort with a third view (LL) on every 7th row, indexed with data.views = [PA] and
    other_findings = exclude, a patient split and subsets of two sizes x two seeds."""
    root = tmp_path / "nih"
    tiny_cohort(root)
    table_path = root / "Data_Entry_2017_v2020.csv"
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    table.loc[::7, "View Position"] = "LL"
    table.to_csv(table_path, index=False)
    config = validate_config(
        {
            "cohort": "t",
            "pathologies": CONFIGURED,
            "data": {"root": str(root), "views": ["PA"], "other_findings": "exclude"},
            "subsets": {"sizes": SIZES, "seeds": SEEDS, "policy": "balanced"},
        }
    )
    results = tmp_path / "results" / "t"
    index_images(
        config["data"],
        CONFIGURED,
        "No Finding",
        results / "index.parquet",
        results / "index_counts.json",
    )
    index = pd.read_parquet(results / "index.parquet")
    patient = index["patient_id"].astype(int)
    split = index[["image_id", "patient_id"]].assign(
        split=np.select([patient % 4 == 0, patient % 4 == 1], ["test", "val"], "train")
    )
    split.to_parquet(results / "split.parquet", index=False)
    for n in SIZES:
        for seed in SEEDS:
            write_subsets(
                results / "index.parquet",
                results / "split.parquet",
                CONFIGURED,
                n,
                seed,
                results / "subsets" / f"n{n}" / f"seed{seed}.txt",
                no_finding_share=0.2,
            )
    return {"root": root, "table": table, "results": results, "config": config}


def test_data_table_counts_every_drop_down_to_the_rows_of_the_index(cohort):
    results, table = cohort["results"], cohort["table"]
    text = data_section(
        results / "index_counts.json",
        results / "split.parquet",
        results / "index.parquet",
        CONFIGURED,
        EvaluationRule(1, 10, CONFIGURED, len(CONFIGURED)),
    )
    rows = _two_column_rows(text)
    index = pd.read_parquet(results / "index.parquet")

    # hand counts from the label table and the files on disk
    present = table[table["Image Index"].isin(_on_disk(cohort["root"]))]
    other_view = present[present["View Position"] != "PA"]
    viewed = present[present["View Position"] == "PA"]
    configured = viewed["Finding Labels"].str.split("|").map(lambda s: bool(set(s) & {*CONFIGURED}))
    other_only = viewed[~configured & (viewed["Finding Labels"] != "No Finding")]
    assert len(other_view["View Position"].unique()) == 2 and len(other_only) > 0

    assert rows["listed in the label table"] == str(len(table))
    assert rows["− listed but missing on disk"] == str(len(table) - len(present))
    assert rows["= present on disk"] == str(len(present))
    for view, n in other_view["View Position"].value_counts().items():
        assert rows[f"− removed by `data.views`: view {view}"] == str(n)
    assert rows["− only findings outside `pathologies` (`data.other_findings`: exclude)"] == str(
        len(other_only)
    )
    assert rows["= indexed (rows of the index)"] == str(len(index))
    assert len(index) == len(viewed) - len(other_only)
    assert rows["no finding (indexed)"] == str(
        int((viewed["Finding Labels"] == "No Finding").sum())
    )
    counts = json.loads((results / "index_counts.json").read_text())
    assert counts["indexed"] == len(index)
    assert (
        counts["dropped_views"] == other_view["View Position"].value_counts().sort_index().to_dict()
    )
    assert counts["dropped_by_view"] == len(other_view)


def test_an_index_counts_file_without_the_new_keys_still_reads(cohort, tmp_path):
    results = cohort["results"]
    counts = json.loads((results / "index_counts.json").read_text())
    old = {k: v for k, v in counts.items() if k not in ("indexed", "dropped_views")}
    (tmp_path / "old.json").write_text(json.dumps(old))
    rows = _two_column_rows(
        data_section(
            tmp_path / "old.json",
            results / "split.parquet",
            results / "index.parquet",
            CONFIGURED,
            EvaluationRule(1, 10, CONFIGURED, len(CONFIGURED)),
        )
    )
    assert rows["= indexed (rows of the index)"] == "—"
    assert rows["− removed by `data.views` (all views)"] == str(counts["dropped_by_view"])


def test_mix_files_give_the_all_negative_share_beside_the_no_finding_share(cohort):
    results, table = cohort["results"], cohort["table"]
    labels = table.set_index("Image Index")["Finding Labels"].str.split("|")
    for n in SIZES:
        for seed in SEEDS:
            path = results / "subsets" / f"n{n}" / f"seed{seed}.txt"
            ids = path.read_text().split()
            tokens = labels.loc[ids]
            all_negative = tokens.map(lambda s: not set(s) & {*CONFIGURED}).sum()
            no_finding = tokens.map(lambda s: s == ["No Finding"]).sum()
            mix = read_mix(path)
            assert mix["all_negative"] == all_negative
            assert mix["all_negative_share"] == pytest.approx(all_negative / len(ids))
            assert mix["no_finding_share"] == pytest.approx(no_finding / len(ids))


def test_a_masked_label_is_not_a_positive_in_the_all_negative_share():
    labels = pd.DataFrame(
        {
            "A": [np.nan, 1.0, 0.0, np.nan, 0.0],
            "B": [0.0, np.nan, 0.0, np.nan, 1.0],
            "no_finding": [0, 0, 1, 0, 0],
        }
    )
    mix = subset_mix(labels, ["A", "B"], 5, 0, "balanced")
    # rows 0, 2 and 3 show no observed positive (row 3 observes nothing at all)
    assert (mix["all_negative"], mix["no_finding"]) == (3, 1)
    assert mix["all_negative_share"] == pytest.approx(3 / 5)


def test_summary_shows_each_sizes_composition_from_the_subset_files(cohort):
    results, config = cohort["results"], cohort["config"]
    text = subsets_section(config, results / "split.parquet", results / "index.parquet")
    index = pd.read_parquet(results / "index.parquet").set_index("image_id")
    assert text.startswith("## Training subsets")
    for n in SIZES:
        picked = [
            index.loc[(results / "subsets" / f"n{n}" / f"seed{seed}.txt").read_text().split()]
            for seed in SEEDS
        ]
        negative = np.mean([(t[CONFIGURED] != 1).all(axis=1).mean() for t in picked])
        prevalence = np.mean([np.mean([t[p].mean() for p in CONFIGURED]) for t in picked])
        images = {p: min(int((t[p] == 1).sum()) for t in picked) for p in CONFIGURED}
        patients = {
            p: min(t.loc[t[p] == 1, "patient_id"].nunique() for t in picked) for p in CONFIGURED
        }
        fewest_images = min(CONFIGURED, key=images.get)
        fewest_patients = min(CONFIGURED, key=patients.get)
        (row,) = _table_rows(text, str(n))
        assert row == [
            str(n),
            "natural" if n == "all" else "balanced",
            str(len(SEEDS)),
            str(len(picked[0])),
            f"{negative:.3f}",
            f"{prevalence:.3f}",
            f"{patients[fewest_patients]} ({fewest_patients})",
            f"{images[fewest_images]} ({fewest_images})",
        ]


def test_no_subset_file_no_composition_table(cohort, tmp_path):
    config = {**cohort["config"], "subsets": {**cohort["config"]["subsets"], "seeds": [7]}}
    results = cohort["results"]
    assert subsets_section(config, results / "split.parquet", results / "index.parquet") == ""


@pytest.mark.skipif(not NIH_SAMPLE.is_dir(), reason="../shared/data/nih_cxr14_sample is absent")
def test_real_nih_sample_all_negative_share_counts_images_with_only_other_findings():
    pathologies = ["Effusion", "Infiltration", "Atelectasis"]
    index, _ = build_index(NIH_SAMPLE, pathologies)
    mix = subset_mix(index, pathologies, "all", 0, "stratified")
    table = pd.read_csv(NIH_SAMPLE / "Data_Entry_2017_v2020.csv", dtype=str)
    present = table[table["Image Index"].isin(_on_disk(NIH_SAMPLE))]
    tokens = present["Finding Labels"].str.split("|")
    all_negative = tokens.map(lambda s: not set(s) & set(pathologies)).mean()
    no_finding = (present["Finding Labels"] == "No Finding").mean()
    assert mix["all_negative_share"] == pytest.approx(all_negative)
    assert mix["no_finding_share"] == pytest.approx(no_finding)
    assert mix["all_negative_share"] > mix["no_finding_share"]


# ------------------------------------------------- nothing compared on an external cohort

HERNIA_REASON = "0 positive and 72 negative patients in external cohort ext (needs 3 positive)"


@pytest.fixture(scope="module")
def nothing_shared(tmp_path_factory) -> pd.DataFrame:
    """transfer.csv, through the real bootstrap, of an external cohort ext that labels only Hernia
    and has too few Hernia positives to evaluate it: read back as the summary reads it."""
    root = tmp_path_factory.mktemp("transfer")
    inside = write_cohort(root / "in")
    internal = write_runs(root / "in", inside, encoders=("enc_a",), sizes=("10",), seeds=(0,))
    outside = write_cohort(root / "out", seed=3)
    external = write_runs(root / "out", outside, encoders=("enc_a",), sizes=("10",), seeds=(0,))
    for folder in external:
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["evaluated_pathologies"] = []
        metrics["excluded_pathologies"] = {
            "Atelectasis": "not labelled in external cohort ext",
            "Effusion": "not labelled in external cohort ext",
            "Hernia": HERNIA_REASON,
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
    steps.transfer(
        internal,
        root / "in" / "split.parquet",
        {"ext": (external, root / "out" / "split.parquet")},
        RUN_PATHOLOGIES,
        {"resamples": 20, "seed": 0, "confidence": 0.95, "metrics": ["auroc", "f1"]},
        root / "transfer.csv",
    )
    return read_table(root / "transfer.csv")


def test_summary_says_why_nothing_is_compared_on_an_external_cohort(nothing_shared):
    assert nothing_shared["external_value"].isna().all()
    text = transfer_section(nothing_shared, ["ext"])
    assert (
        "Nothing is compared on external cohort ext (72 images of 24 patients): the only "
        f"configured pathology it labels is not compared: Hernia ({HERNIA_REASON}); it does not "
        "label Atelectasis, Effusion."
    ) in text
    assert "nan" not in text and "| encoder |" not in text


def test_summary_names_a_configured_external_cohort_without_rows():
    empty = pd.DataFrame(columns=TRANSFER_COLUMNS)
    text = transfer_section(empty, ["ext"])
    assert "Nothing is compared on external cohort ext: no run was scored on it" in text


def test_a_setting_without_a_shared_pathology_is_a_row_of_dashes(nothing_shared):
    # one model of the table compares Hernia (made up), the others compare nothing
    table = nothing_shared.astype({"pathologies": object, "excluded": object})
    chosen = table["model"] == "baseline_mlp"
    table.loc[chosen, ["internal", "external_value", "difference"]] = [0.8, 0.7, -0.1]
    table.loc[chosen, ["pathologies", "excluded"]] = ["Hernia", np.nan]
    text = transfer_section(table, ["ext"])
    assert "| enc_a | baseline_mlp | 10 | 0.800 | 0.700 | -0.100 |" in text
    assert "| enc_a | linear_probe | 10 | — | — | — |" in text
    assert f"not compared: Hernia: {HERNIA_REASON}" in text and "nan" not in text


def test_the_transfer_figure_says_why_instead_of_failing(nothing_shared, tmp_path):
    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    settings = validate_config(config)["report"]
    figure_settings = {**settings["figures"], "model_order": settings["model_order"]}
    for name, table in (("none", nothing_shared), ("empty", nothing_shared.iloc[:0])):
        figure = transfer_figure(table, [tmp_path / f"{name}.png"], figure_settings)
        assert (tmp_path / f"{name}.png").stat().st_size > 1_000
        # the sentences are wrapped onto lines
        words = " ".join(" ".join(t.get_text().split()) for ax in figure.axes for t in ax.texts)
        assert ("Hernia" in words) if name == "none" else ("nothing to compare" in words)
