"""summary.md: the headline numbers with CIs, comparisons, figures, data counts with the positives
per split, the labels that cannot be evaluated, encoders, provenance and the cohort's caveats, in
Markdown that reads well on GitHub and in the Snakemake report."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.config import config_hash
from probelab.report.aggregate import overall_test_rows, pick_size, set_members, size_order

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


@dataclass(frozen=True)
class EvaluationRule:
    """The run's rule (training.min_positives, training.min_test_positives: positive patients)
    and the report's set: the pathologies every run evaluates (bootstrap_ci.csv pathology_set)."""

    min_positives: int
    min_test_positives: int
    report_set: list[str]
    n_pathologies: int

    @classmethod
    def of(
        cls, config: dict[str, Any], ci: pd.DataFrame, scope: pd.DataFrame | None
    ) -> EvaluationRule:
        """From the interval table's pathology_set; for tables written before it, from
        pathologies.csv (or every configured pathology without it)."""
        training = config["training"]
        if "pathology_set" in ci.columns and not ci.empty:
            report_set = set_members(ci["pathology_set"].iloc[0])
        elif scope is not None and not scope.empty:
            everywhere = scope.groupby("pathology", sort=False)["evaluated"].all()
            report_set = [p for p in config["pathologies"] if everywhere.get(p, False)]
        else:
            report_set = list(config["pathologies"])
        return cls(
            int(training["min_positives"]),
            int(training["min_test_positives"]),
            report_set,
            len(config["pathologies"]),
        )

    def limit(self, split: str) -> int:
        return self.min_test_positives if split == "test" else self.min_positives

    def text(self) -> str:
        """The rule, the set every macro of this report averages, and where the others are."""
        rule = (
            "A run evaluates a pathology when its training subset and validation hold at least "
            f"{self.min_positives} positive patient(s) of it (`training.min_positives`), test at "
            f"least {self.min_test_positives} (`training.min_test_positives`; fewer give "
            "intervals that are too narrow, `docs/rare_labels.md`), and each one negative "
            "patient. "
        )
        if not self.report_set:
            return rule + (
                "**No pathology is evaluated by every run, so every macro value of this report "
                'is empty (—)**: "Labels that cannot be evaluated" lists which runs leave out '
                "which pathology; lower the minimum (with intervals that are too narrow) or leave "
                "the size that loses them out of `subsets.sizes`."
            )
        return rule + (
            "Every macro metric of this report (AUROC, AP, precision, recall, F1; every table, "
            "curve and comparison) averages the same pathologies, those every run evaluates: "
            f"**{len(self.report_set)} of {self.n_pathologies}: {', '.join(self.report_set)}**; "
            "exact match and Hamming loss pool the same. The others are shown per pathology where "
            'a run evaluates them and listed under "Labels that cannot be evaluated".'
        )


def headline_section(
    ci: pd.DataFrame,
    by_setting: pd.DataFrame,
    report: dict[str, Any],
    model_order: list[str],
    rule: EvaluationRule,
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
        "Hamming loss: lower is better. " + rule.text(),
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
            "Test split, mean over seeds [95 % CI], over the pathologies every run evaluates "
            "(the rule above; the positives table under Data shows how many training positive "
            "patients each size has).",
            "",
            _table(header, rows),
        ]
    )


def _difference_cells(cells: pd.DataFrame, metrics: list[str]) -> list[str]:
    """One comparisons.csv setting (indexed by metric) as table cells: the paired difference
    and its interval per metric, ✱ where the interval excludes zero, — where not computed."""
    row = []
    for metric in metrics:
        if metric not in cells.index:
            row.append("—")
            continue
        cell = cells.loc[metric]
        mark = " ✱" if bool(cell["excludes_zero"]) else ""
        row.append(
            f"{cell['difference']:+.3f} [{cell['ci_low']:+.3f}, {cell['ci_high']:+.3f}]{mark}"
        )
    return row


def comparisons_section(comparisons: pd.DataFrame, report: dict[str, Any]) -> str:
    reference = report["comparisons"]["reference"]
    title = f"## Paired comparisons against {reference}"
    if "reference" in comparisons:  # rows of report.comparisons.pairs: pairs_section
        comparisons = comparisons[comparisons["reference"] == reference]
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
        row += _difference_cells(cells, metrics)
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


def pairs_section(comparisons: pd.DataFrame, report: dict[str, Any]) -> str:
    """The report.comparisons.pairs rows of comparisons.csv (model − its own reference), e.g. each
    fusion model against its prompt-ablation control."""
    pairs = [tuple(pair) for pair in report["comparisons"].get("pairs", [])]
    if not pairs or "reference" not in comparisons:
        return ""
    wanted = comparisons[["model", "reference"]].apply(tuple, axis=1).isin(pairs)
    rows_at = comparisons[wanted & (comparisons["policy"] == report["policy"])]
    title = "## Paired comparisons between named pairs"
    if rows_at.empty:
        return f"{title}\n\nNo pair of `report.comparisons.pairs` was run."
    metrics = [m for m in METRIC_NAMES if m in set(rows_at["metric"])]
    rows = []
    ordered = rows_at.assign(
        _pair=rows_at[["model", "reference"]].apply(tuple, axis=1).map(pairs.index)
    ).sort_values(["encoder", "_pair", "n_train"])
    for (encoder, _, n), group in ordered.groupby(["encoder", "_pair", "n"], sort=False):
        cells = group.set_index("metric")
        first = group.iloc[0]
        row = [
            encoder,
            _size_text(n, int(first["n_train"])),
            f"{first['model']} − {first['reference']}",
        ]
        row += _difference_cells(cells, metrics)
        rows.append(row)
    return "\n".join(
        [
            title,
            "",
            "Each pair of `report.comparisons.pairs`, computed like the table above: difference "
            "model − reference on the same test images, 95 % paired patient-bootstrap interval, "
            "✱ = the interval excludes zero. A fusion model against its prompt-ablation control "
            "(`*_no_text`: the same head, settings and seeds, the prompt mega-vector replaced by "
            "random vectors of equal norm) measures what the prompt text adds to it; "
            "text_init_linear against zero_shot and linear_probe shows what training adds to the "
            "text, and what the text adds to a linear probe.",
            "",
            _table(["encoder", "size", "pair"] + [f"Δ {METRIC_NAMES[m]}" for m in metrics], rows),
        ]
    )


def transfer_section(transfer: pd.DataFrame, externals: list[str] | None = None) -> str:
    """'External test sets': macro AUROC on the internal test split and on each external cohort
    at each setting's largest training-set size, and what the comparison can show. An external
    cohort (of `externals`, the configured names, or of the table) on which no pathology is
    compared gets one sentence saying why instead of a table."""
    from probelab.report.transfer import compared, headline_rows, not_compared

    lines = ["## External test sets", ""]
    shown = False  # whether any cohort has a table, which the closing caveat is about
    for name in dict.fromkeys([*(externals or []), *transfer["external"]]):
        cohort = transfer[transfer["external"] == name]
        if not compared(cohort).any():
            lines += [not_compared(name, cohort), ""]
            continue
        shown = True
        table = headline_rows(cohort)
        first = cohort.iloc[0]
        missing = ", ".join(set_members(first["missing"]))
        lines += [
            f"**{name}**: {int(first['n_external_images'])} images of "
            f"{int(first['n_external_patients'])} patients, scored by every frozen run "
            "(its model and validation-tuned thresholds unchanged). "
            + (f"Not labelled there, so left out of both columns: {missing}. " if missing else "")
            + "Macro AUROC at each setting's largest training-set size, mean of the seeds "
            f"with {float(first['confidence']):.0%} patient-bootstrap intervals, both columns "
            "over the pathologies the run evaluates on both sides (`transfer.csv` has every "
            "size, AP and tuned-threshold F1):",
            "",
            _table(
                ["encoder", "model", "n", "internal test", f"{name}", "external − internal"],
                [
                    [
                        row["encoder"],
                        row["model"],
                        _size_text(str(row["n"]), int(row["n_train"])),
                        _with_ci(row["internal"], row["internal_low"], row["internal_high"]),
                        _with_ci(row["external_value"], row["external_low"], row["external_high"]),
                        "—" if math.isnan(row["difference"]) else f"{row['difference']:+.3f}",
                    ]
                    for _, row in table.iterrows()
                ],
            ),
            "",
        ]
        idle = table[~compared(table)]
        if not idle.empty:
            settings = ", ".join(f"{row['encoder']} {row['model']}" for _, row in idle.iterrows())
            reasons = ", ".join(
                sorted({entry for cell in idle.get("excluded", []) for entry in set_members(cell)})
            )
            lines += [
                f"Rows of —: no pathology is evaluated on both sides ({settings}"
                + (f"; not compared: {reasons}" if reasons else "")
                + ").",
                "",
            ]
    if shown:
        lines.append(
            "The internal and external intervals come from different patients, so they are not "
            "a paired test: a difference far outside both intervals is a shift; overlap is not "
            "evidence of no shift. A shift mixes image domain, label definition (an external "
            "labeller, uncertain labels by the config's policy) and case mix; this table cannot "
            "tell them apart."
        )
    return "\n".join(lines).rstrip()


def figures_section(figures: list[str]) -> str:
    """Links to the figures, by file name: they are written next to summary.md."""
    lines = ["## Figures", ""]
    titles = {
        "learning_curves": "Learning curves (test metrics vs training-set size)",
        "auroc_heatmap": "Per-pathology AUROC (pathology × model)",
        "precision_recall": "Macro precision vs recall per model",
        "training_curves": "Training curves of representative runs",
        "sentiment_comparison": "Sentiment track: accuracy and F1 vs training size, per method",
        "transfer": "External test sets: internal vs external test, same frozen runs",
    }
    for figure in figures:
        title = titles.get(Path(figure).stem, Path(figure).stem)
        lines += [f"### {title}", "", f"![{title}]({figure})", ""]
    return "\n".join(lines).rstrip()


def data_section(
    index_counts: Path,
    split_path: Path,
    index_path: Path,
    pathologies: list[str],
    rule: EvaluationRule,
    scope: pd.DataFrame | None = None,
) -> str:
    counts = json.loads(Path(index_counts).read_text())
    split = pd.read_parquet(split_path)
    labels = pd.read_parquet(index_path, columns=["image_id", *pathologies])
    # the split's patient ids decide who is one patient, as the split itself does
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
        + [
            _flag(
                merged.loc[(merged["split"] == s) & (merged[p] == 1), "patient_id"].nunique(),
                rule.limit(s),
            )
            for s in order
        ]
        for p in pathologies
    ]
    header = ["pathology", "present"] + [f"{s} split" for s in order]
    if scope is not None and not scope.empty:
        sizes = size_order(scope["n"].astype(str).tolist())
        counted = (
            "train_positive_patients"
            if "train_positive_patients" in scope and scope["train_positive_patients"].notna().any()
            else "train_positives"  # runs written before the rule counted patients
        )
        fewest = scope.groupby(["n", "pathology"])[counted].min()
        n_train = scope.groupby("n")["n_train"].max()
        runs = scope.groupby("pathology")["evaluated"].agg(["sum", "count"])
        for row, name in zip(positives, pathologies, strict=True):
            row += [
                _flag(fewest.get((n, name)), rule.min_positives)
                if pd.notna(fewest.get((n, name)))
                else "—"
                for n in sizes
            ]
            row.append(
                f"{int(runs.loc[name, 'sum'])} of {int(runs.loc[name, 'count'])}"
                if name in runs.index
                else "—"
            )
        header += [f"n = {_size_text(n, int(n_train[n]))}: fewest" for n in sizes]
        header.append("runs evaluating it")
    return "\n".join(
        [
            "## Data",
            "",
            "From the label table to the index: each − row removes images from the row above it "
            "(an index written before a count existed shows —).",
            "",
            _table(["images", "count"], _index_rows(counts)),
            "",
            *_label_rules_lines(counts, pathologies),
            _table(["split", "images", "patients"], per_split),
            "",
            "Positives per pathology: images present in the index; positive *patients* per "
            "split, and for each training-set size the fewest positive training patients of any "
            "run (subsets differ by seed). ✗ marks a count below the rule's minimum "
            f"(`training.min_positives` = {rule.min_positives} for training and validation, "
            f"`training.min_test_positives` = {rule.min_test_positives} for test): a run with it "
            "cannot evaluate that pathology.",
            "",
            _table(header, positives),
        ]
    )


def _index_rows(counts: dict[str, Any]) -> list[list[Any]]:
    """index_counts.json as a chain: listed, − each row filter, − missing on disk, = present,
    − each view data.views drops, − images excluded for unconfigured findings, = indexed (the
    rows of index.parquet); then what the index holds beside that chain."""
    rows: list[list[Any]] = [["listed in the label table", counts.get("listed", "—")]]
    rows += [
        [f"− rows removed by `data.{rule.split()[0]}_rows` on column `{rule.split(' ', 1)[1]}`", n]
        for rule, n in counts.get("dropped_by_filter", {}).items()
    ]
    rows += [
        ["− listed but missing on disk", counts.get("missing", "—")],
        ["= present on disk", counts.get("present", "—")],
    ]
    if "dropped_views" in counts:
        rows += [
            [f"− removed by `data.views`: view {view or '(none)'}", n]
            for view, n in counts["dropped_views"].items()
        ]
    elif counts.get("dropped_by_view"):  # an index written before the per-view counts
        rows.append(["− removed by `data.views` (all views)", counts["dropped_by_view"]])
    other = counts.get("other_findings") or {}
    if other.get("policy") == "exclude":
        rows.append(
            [
                "− only findings outside `pathologies` (`data.other_findings`: exclude)",
                other["images"],
            ]
        )
    rows += [
        ["= indexed (rows of the index)", counts.get("indexed", "—")],
        ["on disk but not listed", counts.get("unlisted_files", "—")],
        ["no finding (indexed)", counts.get("no_finding", "—")],
    ]
    return rows + _other_findings_rows(counts)


def _other_findings_rows(counts: dict[str, Any]) -> list[list[Any]]:
    """Indexed images whose only findings are not configured (kept as negatives), and no-finding
    images with a finding. Excluded ones are a step of `_index_rows`."""
    other = counts.get("other_findings") or {}
    rows = []
    if other.get("policy") == "negative":
        rows.append(
            [
                "only findings outside `pathologies` (kept as negatives, never drawn as "
                "no-finding images)",
                other["images"],
            ]
        )
    if counts.get("no_finding_with_findings"):
        rows.append(
            [
                "labelled no-finding but positive for a pathology (not counted as no-finding)",
                counts["no_finding_with_findings"],
            ]
        )
    return rows


def _label_rules_lines(counts: dict[str, Any], pathologies: list[str]) -> list[str]:
    """What the label map and the uncertain / blank policies changed (data.label_map,
    data.uncertain, data.blank), when they changed anything."""
    lines = []
    mapped = counts.get("label_map") or {}
    if mapped:
        renamed = ", ".join(f"{label} ({n} rows)" for label, n in mapped.items())
        lines += [f"Labels renamed by `data.label_map`: {renamed}.", ""]
    policies = counts.get("label_policies") or {}
    changed = {
        kind: policy
        for kind, policy in policies.items()
        if policy.get("policy") and any(policy["labels"].values())
    }
    if changed:
        meaning = {"positive": "positive", "negative": "negative", "ignore": "ignored (masked)"}
        header = ["pathology"] + [
            f"{kind} labels → {meaning[policy['policy']]}" for kind, policy in changed.items()
        ]
        rows = [
            [p] + [policy["labels"].get(p, 0) for policy in changed.values()] for p in pathologies
        ]
        lines += [
            "Labels each policy changed, on the indexed images (`data.uncertain`, `data.blank`; "
            "an ignored label is masked out of every loss and metric):",
            "",
            _table(header, rows),
            "",
        ]
    return lines


def subsets_section(config: dict[str, Any], split_path: Path, index_path: Path) -> str:
    """'Training subsets': the composition of each size's subsets over its seeds, read from the
    subset files beside the split (subsets/n{n}/seed{seed}.txt) and the index; "" when no subset
    file of the config's sizes and seeds exists."""
    from probelab.layout import CohortLayout
    from probelab.subsets import mix_kind, subset_mix

    settings = config.get("subsets") or {}
    pathologies = list(config["pathologies"])
    policy = settings.get("policy", "balanced")
    layout = CohortLayout("cohort")
    index = pd.read_parquet(index_path).set_index("image_id")
    rows = []
    for n in [str(size) for size in settings.get("sizes", [])]:
        seeds: dict[int, pd.DataFrame] = {}
        for seed in settings.get("seeds", []):
            relative = Path(layout.subset(n, seed)).relative_to(layout.root)
            path = Path(split_path).parent / relative
            if not path.is_file():
                continue
            ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            unknown = [i for i in ids if i not in index.index]
            if unknown:
                raise ValueError(
                    f"subset file {path} lists image {unknown[0]!r}, which index {index_path} "
                    "does not hold; rebuild the subsets."
                )
            seeds[int(seed)] = index.loc[ids]
        if not seeds:
            continue
        mixes = [subset_mix(picked, pathologies, n, seed, policy) for seed, picked in seeds.items()]
        # positives are observed 1s: a masked (NaN) label is not one
        images = [{p: int((t[p] == 1).sum()) for p in pathologies} for t in seeds.values()]
        patients = [
            {p: t.loc[t[p] == 1, "patient_id"].nunique() for p in pathologies}
            for t in seeds.values()
        ]
        sizes = sorted({len(picked) for picked in seeds.values()})
        rows.append(
            [
                n,
                mix_kind(policy, n),
                len(seeds),
                "–".join(str(v) for v in sorted({sizes[0], sizes[-1]})),
                _number(sum(m["all_negative_share"] for m in mixes) / len(mixes)),
                _number(sum(m["mean_prevalence"] for m in mixes) / len(mixes)),
                _fewest(patients, pathologies),
                _fewest(images, pathologies),
            ]
        )
    if not rows:
        return ""
    return "\n".join(
        [
            "## Training subsets",
            "",
            f"Subsets drawn by the `{policy}` policy (`subsets.policy`; the size `all` is the "
            "whole training split, in its natural mix), from the subset files and the index, "
            "over the seeds: images; the all-negative share, images positive for no configured "
            "pathology (the negatives of every pathology, including images whose only findings "
            "are not configured; a masked label is not a positive); the mean over pathologies "
            "of each one's prevalence among the images that observe its label (both means over "
            "the seeds); and the fewest positive patients and images of any pathology in any "
            "seed's subset.",
            "",
            _table(
                [
                    "n",
                    "mix",
                    "seeds",
                    "images",
                    "all-negative share",
                    "mean prevalence",
                    "fewest positive patients",
                    "fewest positive images",
                ],
                rows,
            ),
        ]
    )


def _fewest(counts: list[dict[str, int]], pathologies: list[str]) -> str:
    """The smallest count of any pathology in any seed, with the pathology it belongs to (the
    first in config order on a tie)."""
    low = {p: min(seed[p] for seed in counts) for p in pathologies}
    name = min(pathologies, key=lambda p: low[p])
    return f"{low[name]} ({name})"


def _flag(count: Any, min_positives: int) -> str:
    """A positives count, marked ✗ when it is below min_positives."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return "—"
    return f"{int(count)} ✗" if int(count) < min_positives else str(int(count))


def unevaluable_section(scope: pd.DataFrame | None, rule: EvaluationRule) -> str:
    """'Labels that cannot be evaluated': every pathology some run left out, with the runs and the
    reason (the same text as the job log and metrics.json's excluded_pathologies)."""
    title = "## Labels that cannot be evaluated"
    if scope is None or scope.empty:
        return ""
    excluded = scope[~scope["evaluated"].astype(bool)]
    if excluded.empty:
        return (
            f"{title}\n\nNone: every run evaluates every pathology (at least "
            f"{rule.min_positives} positive patient(s) in its training subset and validation, "
            f"{rule.min_test_positives} in test, and one negative patient in each)."
        )
    runs_per_setting = scope.drop_duplicates(["encoder", "model", "n", "seed"])
    n_runs = runs_per_setting.groupby("n").size()
    excluded = excluded.assign(reason=excluded["reason"].fillna("").astype(str))
    sizes = size_order(scope["n"].astype(str).tolist())
    n_train = scope.groupby("n")["n_train"].max()
    rows = []
    for (pathology, reason), by_reason in excluded.groupby(["pathology", "reason"], sort=False):
        # sizes where every run leaves it out share one row; the others get a row each
        everywhere, partial = [], []
        for n, group in by_reason.groupby("n"):
            (everywhere if len(group) == n_runs.get(n, -1) else partial).append((n, group))
        if everywhere:
            group = pd.concat([g for _, g in everywhere])
            shown = sorted((n for n, _ in everywhere), key=sizes.index)
            rows.append(
                [
                    pathology,
                    ", ".join(_size_text(n, int(n_train[n])) for n in shown),
                    ", ".join(str(seed) for seed in sorted(set(group["seed"]))),
                    f"all {len(group)}",
                    reason or "—",
                    sizes.index(shown[0]),
                ]
            )
        for n, group in partial:
            encoders = ", ".join(sorted(set(group["encoder"])))
            models = ", ".join(sorted(set(group["model"])))
            rows.append(
                [
                    pathology,
                    _size_text(n, int(n_train[n])),
                    ", ".join(str(seed) for seed in sorted(set(group["seed"]))),
                    f"{len(group)} of {n_runs[n]} ({encoders}; {models})",
                    reason or "—",
                    sizes.index(n),
                ]
            )
    order = {name: i for i, name in enumerate(dict.fromkeys(scope["pathology"]))}
    rows.sort(key=lambda r: (order.get(r[0], 0), r[5], r[2]))
    rows = [row[:5] for row in rows]
    return "\n".join(
        [
            title,
            "",
            "Pathologies some runs leave out, by the rule stated with the headline table: their "
            "per-pathology values are empty in those runs, and because the report's macro "
            "metrics average only the pathologies every run evaluates, none of them counts in "
            "any macro number of this report (per-pathology rows and the heatmap still show "
            'them where a run evaluates them). "not trained": too few positive patients in the '
            'training subset or in validation, so the model has no output for it; "trained, not '
            'evaluated": too few in test. Each is also a warning in the train_probe job log and '
            "an entry of `excluded_pathologies` in the run's metrics.json.",
            "",
            _table(["pathology", "size", "seeds", "runs", "reason"], rows),
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
    """The sentiment track's headline table at the largest training size: every method x pooling
    with test accuracy and F1 (mean over seeds, interval over seeds x test resamples), the paired
    difference to the reference setting, and validation accuracy."""
    if sentiment.empty:
        return ""
    table = sentiment.copy()
    for column, default in (("pooling", "cls"), ("n", "all"), ("n_seeds", 1)):
        if column not in table.columns:
            table[column] = default
    table["n"] = table["n"].astype(str)
    labels = {
        "svm": "SVM on frozen features",
        "logreg": "logistic regression on frozen features",
        "finetune": "fine-tuned encoder",
    }
    poolings = {"cls": "[CLS]", "mean": "mean", "head": "classifier head"}
    reference = ""
    blocks = []
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=True):
        largest = size_order(list(group["n"]))[-1]
        at = group[group["n"] == largest]
        n_train = at["n_train"].max() if "n_train" in at.columns else None
        size = f"all ({int(n_train)})" if largest == "all" and pd.notna(n_train) else largest

        def value(rows: pd.DataFrame, split: str, metric: str, interval: bool = True) -> str:
            line = rows[(rows["split"] == split) & (rows["metric"] == metric)]
            if line.empty:
                return "—"
            line = line.iloc[0]
            text = _number(line["value"])
            if interval and "lower" in line and pd.notna(line.get("lower")):
                text += f" [{_number(line['lower'])}, {_number(line['upper'])}]"
            return text

        def difference(rows: pd.DataFrame, metric: str) -> str:
            line = rows[(rows["split"] == "test") & (rows["metric"] == metric)]
            if line.empty or "difference" not in line or pd.isna(line.iloc[0]["difference"]):
                return "reference" if not line.empty and "difference" in line else "—"
            line = line.iloc[0]
            return (
                f"{float(line['difference']):+.3f} "
                f"[{float(line['difference_lower']):+.3f}, {float(line['difference_upper']):+.3f}]"
            )

        rows = []
        order = {m: i for i, m in enumerate(labels)}
        settings = sorted(
            at.groupby(["method", "pooling"]).groups, key=lambda k: (order.get(k[0], 9), k[1])
        )
        for method, pooling in settings:
            cell = at[(at["method"] == method) & (at["pooling"] == pooling)]
            rows.append(
                [
                    labels.get(method, method),
                    poolings.get(pooling, pooling),
                    value(cell, "test", "accuracy"),
                    value(cell, "test", "f1"),
                    difference(cell, "accuracy"),
                    value(cell, "validation", "accuracy", interval=False),
                    str(int(cell["n_seeds"].max())),
                ]
            )
        if "reference" in at.columns and at["reference"].notna().any():
            method, _, pooling = str(at["reference"].dropna().iloc[0]).partition(" / ")
            reference = f"{labels.get(method, method)} ({poolings.get(pooling, pooling)} pooling)"
        header = [
            "method",
            "pooling",
            "test accuracy",
            "test F1",
            "Δ accuracy vs reference",
            "validation accuracy",
            "seeds",
        ]
        blocks += [
            f"### {dataset} / {model}, {size} training reviews",
            "",
            _table(header, rows),
            "",
        ]
    intro = (
        "Frozen encoder features (SVM, logistic regression) vs fine-tuning the encoder, at the "
        "largest training size; every size is in `sentiment.csv` and the learning-curve figure. "
        "Test values are means over seeds with the interval over seeds and test-set bootstrap "
        "resamples; Δ is the paired difference on the same test reviews and training subsets"
        + (f" against {reference}" if reference else "")
        + ". Hyperparameters were chosen on train / validation only; test was evaluated once per "
        "cell."
    )
    return "\n".join(["## Sentiment track", "", intro, "", *blocks]).rstrip()


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
    """The cohort's own caveats (config key cohort_caveats: label provenance, synthetic data, ...),
    the report's method caveat, flagged encoders and the report.caveats.notes."""
    caveats = config["report"]["caveats"]
    lines = ["## Caveats", ""]
    lines += [f"- {caveat}" for caveat in config.get("cohort_caveats") or []]
    lines += [
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
    lines += _text_caveats(config)
    lines += [f"- {note}" for note in caveats["notes"]]
    return "\n".join(lines)


def _text_caveats(config: dict[str, Any]) -> list[str]:
    """What a constant prompt input can do (when a fusion model ran), and the models encoders
    without a text tower skipped."""
    from probelab.config import enabled_models, skipped_models
    from probelab.models import FUSION_HEADS

    lines = []
    fusion = [model for model in FUSION_HEADS if model in enabled_models(config)]
    if fusion:
        lines.append(
            f"- **Constant prompt inputs.** {' and '.join(fusion)} feed the prompt mega-vector, "
            "which is the same for every image, through a branch of their own: whatever its "
            "normalisation, that branch adds at most a learned constant, which says nothing about "
            "the image, and the BatchNorm after it subtracts the batch mean, cancelling even "
            "that. Their differences from the reference come from the architecture (extra "
            "layers, learned feature weights, dropout), not from the text; the prompt-ablation "
            'controls (`*_no_text`, under "Paired comparisons between named pairs") measure '
            "it. Text can only help through heads that use each pathology's embedding per class: "
            "text_init_linear (which starts as the zero-shot classifier) and text_pair_scorer."
        )
    for encoder, models in skipped_models(config).items():
        lines.append(
            f"- **No text tower.** Encoder {encoder} has no text tower, so it skipped the models "
            f"that read prompt embeddings: {', '.join(models)}."
        )
    return lines


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
    scope: pd.DataFrame | None = None,
    transfer: pd.DataFrame | None = None,
) -> str:
    """summary.md's text. scope: pathologies.csv (per run and pathology: positives, evaluated,
    reason), or None for runs that predate it."""
    report = config["report"]
    if scope is not None:
        scope = scope.assign(
            n=scope["n"].astype(str), evaluated=scope["evaluated"].astype(str).eq("True")
        )
    rule = EvaluationRule.of(config, ci, scope)
    order = report["model_order"]
    n_runs = int(by_setting.groupby(["encoder", "model", "n"])["n_runs"].max().sum())
    parts = [
        f"# probelab report: {config['cohort']}",
        "",
        f"Config hash `{config_hash(config)}` (figure settings excluded). "
        "How to read this report: `docs/report.md` in the repository. "
        "Tables: `metrics.csv` (every run), `summary_by_setting.csv` (over seeds), "
        "`bootstrap_ci.csv`, `comparisons.csv`.",
        headline_section(ci, by_setting, report, order, rule),
        sizes_section(ci, order),
        comparisons_section(comparisons, report),
        pairs_section(comparisons, report),
        transfer_section(transfer, list(config.get("external") or {}))
        if transfer is not None
        else "",
        figures_section(figures),
        sentiment_section(sentiment) if sentiment is not None else "",
        data_section(index_counts, split_path, index_path, config["pathologies"], rule, scope),
        subsets_section(config, split_path, index_path),
        unevaluable_section(scope, rule),
        encoders_section(config.get("encoders", {}) or {}),
        caches_section(caches or {}),
        provenance_section(config, n_runs),
        caveats_section(config),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"
