"""summary.md: the headline numbers with CIs, comparisons, figures, data counts, encoders,
provenance and caveats, in Markdown that reads well on GitHub and in the Snakemake report."""

from __future__ import annotations

import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.config import config_hash
from probelab.report.aggregate import overall_test_rows, pick_size, size_order

METRIC_NAMES = {
    "auroc": "macro AUROC",
    "average_precision": "macro AP",
    "precision": "macro precision",
    "recall": "macro recall",
    "f1": "macro F1",
    "exact_match": "exact match",
    "hamming_loss": "Hamming loss",
}
VERSIONED_PACKAGES = (
    "probelab",
    "snakemake",
    "numpy",
    "pandas",
    "scikit-learn",
    "torch",
    "open_clip_torch",
    "transformers",
    "datasets",
    "h5py",
    "matplotlib",
    "seaborn",
)


def _number(value: float, digits: int = 3) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def _with_ci(estimate: float, low: float, high: float) -> str:
    if any(math.isnan(v) for v in (low, high)):
        return _number(estimate)
    return f"{_number(estimate)} [{_number(low)}, {_number(high)}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _size_text(n: str, n_train: int) -> str:
    return f"all ({n_train})" if n == "all" else str(n)


def headline_section(
    ci: pd.DataFrame, by_setting: pd.DataFrame, report: dict[str, Any], model_order: list[str]
) -> str:
    policy = report["policy"]
    size = pick_size(ci, report["headline_size"], "report.headline_size")
    rows_at = ci[(ci["n"] == size) & (ci["policy"] == policy)]
    metrics = [m for m in METRIC_NAMES if m in set(rows_at["metric"])]
    n_train = int(rows_at["n_train"].max()) if not rows_at.empty else 0
    rows = []
    for (encoder, model), group in sorted(
        rows_at.groupby(["encoder", "model"]),
        key=lambda item: (item[0][0], _rank(item[0][1], model_order)),
    ):
        cells = group.set_index("metric")
        rows.append(
            [encoder, model]
            + [
                _with_ci(*cells.loc[m, ["estimate", "ci_low", "ci_high"]])
                if m in cells.index
                else "—"
                for m in metrics
            ]
            + [int(group["n_seeds"].max())]
        )
    baseline = overall_test_rows(by_setting)
    baseline = baseline[baseline["policy"] == "all_negative"]
    if not baseline.empty:
        means = baseline.groupby("metric")["mean"].mean()
        rows.append(
            ["all-negative baseline", "—"]
            + [_number(means.get(m, float("nan"))) for m in metrics]
            + ["—"]
        )
    resamples = int(ci["resamples"].iloc[0]) if not ci.empty else 0
    confidence = float(ci["confidence"].iloc[0]) if not ci.empty else 0.0
    thresholds = (
        "per-pathology thresholds tuned on validation" if policy == "tuned" else "threshold 0.5"
    )
    text = [
        f"## Headline: test metrics at {_size_text(size, n_train)} training images",
        "",
        f"Mean over seeds, with its {confidence:.0%} confidence interval "
        f"from {resamples} bootstrap resamples of "
        f"the test *patients* (seed {report['bootstrap']['seed']}). Thresholded metrics use "
        f"{thresholds}. "
        "Hamming loss: lower is better.",
        "",
        _table(["encoder", "model"] + [METRIC_NAMES[m] for m in metrics] + ["seeds"], rows),
    ]
    return "\n".join(text)


def _rank(model: str, order: list[str]) -> tuple[int, str]:
    return (order.index(model), model) if model in order else (len(order), model)


def sizes_section(ci: pd.DataFrame, model_order: list[str]) -> str:
    rows_auc = (
        ci[(ci["metric"] == "auroc") & (ci["policy"] == ci["policy"].iloc[0])]
        if not ci.empty
        else ci
    )
    if rows_auc.empty:
        return ""
    sizes = size_order(rows_auc["n"].tolist())
    n_train = rows_auc.groupby("n")["n_train"].max()
    rows = []
    for (encoder, model), group in sorted(
        rows_auc.groupby(["encoder", "model"]),
        key=lambda item: (item[0][0], _rank(item[0][1], model_order)),
    ):
        cells = group.set_index("n")
        rows.append(
            [encoder, model]
            + [
                _with_ci(*cells.loc[n, ["estimate", "ci_low", "ci_high"]])
                if n in cells.index
                else "—"
                for n in sizes
            ]
        )
    header = ["encoder", "model"] + [f"n = {_size_text(n, int(n_train[n]))}" for n in sizes]
    return "\n".join(
        [
            "## Macro AUROC at every training-set size",
            "",
            "Test split, mean over seeds [95 % CI].",
            "",
            _table(header, rows),
        ]
    )


def comparisons_section(comparisons: pd.DataFrame, report: dict[str, Any]) -> str:
    reference = report["comparisons"]["reference"]
    title = f"## Paired comparisons against {reference}"
    if comparisons.empty:
        return (
            f"{title}\n\nNo comparison: {reference} or the compared models "
            f"({', '.join(report['comparisons']['models'])}) were not run."
        )
    rows_at = comparisons[comparisons["policy"] == report["policy"]]
    metrics = [m for m in METRIC_NAMES if m in set(rows_at["metric"])]
    rows = []
    ordered = rows_at.assign(_size=rows_at["n_train"]).sort_values(["encoder", "_size", "model"])
    for (encoder, n, model), group in ordered.groupby(["encoder", "n", "model"], sort=False):
        cells = group.set_index("metric")
        row = [encoder, _size_text(n, int(group["n_train"].iloc[0])), model]
        for metric in metrics:
            if metric not in cells.index:
                row.append("—")
                continue
            cell = cells.loc[metric]
            mark = " ✱" if bool(cell["excludes_zero"]) else ""
            row.append(
                f"{cell['difference']:+.3f} [{cell['ci_low']:+.3f}, {cell['ci_high']:+.3f}]{mark}"
            )
        rows.append(row)
    return "\n".join(
        [
            title,
            "",
            f"Difference model − {reference} on the same test images "
            "(both averaged over seeds), with its "
            "95 % paired patient-bootstrap interval; ✱ = the interval excludes zero. "
            "For Hamming loss a "
            "negative difference is an improvement. Full table: `comparisons.csv`.",
            "",
            _table(["encoder", "size", "model"] + [f"Δ {METRIC_NAMES[m]}" for m in metrics], rows),
        ]
    )


def figures_section(figures: list[str]) -> str:
    """Links to the figures, by file name: they are written next to summary.md."""
    lines = ["## Figures", ""]
    titles = {
        "learning_curves": "Learning curves (test metrics vs training-set size)",
        "auroc_heatmap": "Per-pathology AUROC (pathology × model)",
        "precision_recall": "Macro precision vs recall per model",
        "training_curves": "Training curves of representative runs",
        "sentiment_comparison": "Sentiment track: SVM on features vs fine-tuning",
    }
    for figure in figures:
        title = titles.get(Path(figure).stem, Path(figure).stem)
        lines += [f"### {title}", "", f"![{title}]({figure})", ""]
    return "\n".join(lines).rstrip()


def data_section(
    index_counts: Path, split_path: Path, index_path: Path, pathologies: list[str]
) -> str:
    counts = json.loads(Path(index_counts).read_text())
    split = pd.read_parquet(split_path)
    labels = pd.read_parquet(index_path, columns=["image_id", *pathologies])
    merged = split.merge(labels, on="image_id", how="left")
    order = [s for s in ("train", "val", "test") if s in set(merged["split"])]
    per_split = [
        [
            name,
            int((merged["split"] == name).sum()),
            int(merged.loc[merged["split"] == name, "patient_id"].nunique()),
        ]
        for name in order
    ]
    positives = [
        [p, counts.get("positives", {}).get(p, "—")]
        + [int(merged.loc[merged["split"] == s, p].sum()) for s in order]
        for p in pathologies
    ]
    listed = [
        ["listed in the label table", counts.get("listed", "—")],
        ["present on disk (indexed)", counts.get("present", "—")],
        ["listed but missing on disk", counts.get("missing", "—")],
        ["on disk but not listed", counts.get("unlisted_files", "—")],
        ["no finding (present)", counts.get("no_finding", "—")],
    ]
    return "\n".join(
        [
            "## Data",
            "",
            _table(["images", "count"], listed),
            "",
            _table(["split", "images", "patients"], per_split),
            "",
            "Positive images per pathology:",
            "",
            _table(["pathology", "present"] + order, positives),
        ]
    )


def encoders_section(encoders: dict[str, Any]) -> str:
    if not encoders:
        return "## Encoders and weights\n\nNo encoder is configured."
    keys: list[str] = []
    for settings in encoders.values():
        for key in settings if isinstance(settings, dict) else []:
            if key not in keys:
                keys.append(key)
    rows = [
        [name] + [_cell((settings or {}).get(key, "")) for key in keys]
        for name, settings in encoders.items()
    ]
    return "\n".join(
        [
            "## Encoders and weights",
            "",
            "As configured (`encoders:` in the config).",
            "",
            _table(["encoder"] + keys, rows),
        ]
    )


# summary.md lists at most this many undecodable images per encoder; the cache's `failed`
# dataset holds them all.
MAX_LISTED_FAILURES = 100


def caches_section(caches: dict[str, Path]) -> str:
    """Which image cache each encoder's runs read (its file name is the digest of the settings
    its features were computed with) and the images that could not be decoded."""
    from probelab.cache import cache_overview

    if not caches:
        return ""
    rows, failures = [], []
    for encoder, path in caches.items():
        overview = cache_overview(path)
        rows.append([encoder, f"`{path}`", overview.n_images, len(overview.failed_ids)])
        if overview.failed_ids:
            listed = overview.failed_ids[:MAX_LISTED_FAILURES]
            more = len(overview.failed_ids) - len(listed)
            failures.append(
                f"- `{encoder}`: {', '.join(listed)}"
                + (f" and {more} more (dataset `failed` of the cache)" if more else "")
            )
    text = [
        "## Image caches",
        "",
        "The features every run of an encoder was trained and evaluated on; the file name is the "
        "digest of the settings and weights they were computed with.",
        "",
        _table(["encoder", "cache", "images", "failed to decode"], rows),
    ]
    if failures:
        text += [
            "",
            "Images that could not be decoded were skipped (`on_bad_image: skip`): they are in no "
            "training, validation or test set of that encoder.",
            "",
            *failures,
        ]
    return "\n".join(text)


def _cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text.replace("|", "\\|")


def sentiment_section(sentiment: pd.DataFrame) -> str:
    if sentiment.empty:
        return ""
    table = sentiment.pivot_table(
        index=["dataset", "model", "method"], columns=["split", "metric"], values="value"
    )
    header = ["dataset", "model", "method"] + [
        f"{split} {metric}" for split, metric in table.columns
    ]
    rows = [
        list(index) + [_number(v) for v in values]
        for index, values in zip(table.index, table.to_numpy(), strict=True)
    ]
    return "\n".join(
        [
            "## Sentiment track",
            "",
            "SVM on frozen encoder features vs fine-tuning the encoder.",
            "",
            _table(header, rows),
        ]
    )


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def provenance_section(config: dict[str, Any], n_runs: int) -> str:
    rows = [[name, version] for name, version in package_versions().items()]
    return "\n".join(
        [
            "## Provenance",
            "",
            f"Config hash `{config_hash(config)}`: "
            "`probelab.config.config_hash` of the validated config (defaults "
            "filled in) without `report.figures`, which only changes how figures look; "
            f"{n_runs} runs aggregated.",
            "",
            _table(["package", "version"], rows),
        ]
    )


def flagged_encoders(encoders: dict[str, Any], caveats: dict[str, Any]) -> list[str]:
    """Encoders whose name or settings mention a pretraining source that may contain NIH images."""
    flagged = []
    for name, settings in encoders.items():
        text = f"{name} {json.dumps(settings, default=str)}".lower()
        if name in caveats["nih_pretraining_encoders"] or any(
            p.lower() in text for p in caveats["nih_pretraining_patterns"]
        ):
            flagged.append(name)
    return flagged


def caveats_section(config: dict[str, Any]) -> str:
    caveats = config["report"]["caveats"]
    lines = [
        "## Caveats",
        "",
        "- **Label noise.** NIH ChestX-ray14 labels were text-mined from radiology reports, "
        "not read from the "
        "images; independent re-reads disagree with a sizeable share of them, "
        "especially for Infiltration, "
        "Pneumonia and Consolidation. Test metrics measure agreement with these noisy labels, "
        "and small "
        "differences between models are within that noise.",
        "- **Patients, not images.** Confidence intervals resample test patients, "
        "because images of one patient "
        "are correlated; they do not cover the variation between training subsets "
        "beyond the seeds run.",
    ]
    flagged = flagged_encoders(config.get("encoders", {}) or {}, caveats)
    if flagged:
        lines.append(
            "- **Possible overlap with NIH in pretraining.** "
            f"{', '.join(flagged)}: the pretraining data of these "
            "encoders may include NIH ChestX-ray14 images "
            "(or other chest X-ray collections derived from it), "
            "possibly including this test split, which would inflate their scores."
        )
    if config.get("demo", {}).get("enabled"):
        lines.append(
            "- **Demo data.** This run uses the synthetic demo cohort "
            "and encoders with seeded random weights: "
            "the numbers exercise the workflow and are not findings."
        )
    lines += [f"- {note}" for note in caveats["notes"]]
    return "\n".join(lines)


def write_summary_text(
    *,
    config: dict[str, Any],
    by_setting: pd.DataFrame,
    ci: pd.DataFrame,
    comparisons: pd.DataFrame,
    figures: list[str],
    index_counts: Path,
    split_path: Path,
    index_path: Path,
    sentiment: pd.DataFrame | None = None,
    caches: dict[str, Path] | None = None,
) -> str:
    report = config["report"]
    order = report["model_order"]
    n_runs = int(by_setting.groupby(["encoder", "model", "n"])["n_runs"].max().sum())
    parts = [
        f"# probelab report: {config['cohort']}",
        "",
        f"Config hash `{config_hash(config)}` (figure settings excluded). "
        "How to read this report: `docs/report.md` in the repository. "
        "Tables: `metrics.csv` (every run), `summary_by_setting.csv` (over seeds), "
        "`bootstrap_ci.csv`, `comparisons.csv`.",
        headline_section(ci, by_setting, report, order),
        sizes_section(ci, order),
        comparisons_section(comparisons, report),
        figures_section(figures),
        sentiment_section(sentiment) if sentiment is not None else "",
        data_section(index_counts, split_path, index_path, config["pathologies"]),
        encoders_section(config.get("encoders", {}) or {}),
        caches_section(caches or {}),
        provenance_section(config, n_runs),
        caveats_section(config),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"
