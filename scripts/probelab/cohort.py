"""Cohort index: the label table joined with the images actually on disk.

Two label-table formats are read:
- `nih`: NIH ChestX-ray14's Data_Entry_2017.csv (CRLF, trailing comma, ages like "058Y") or
  Data_Entry_2017_v2020.csv; labels are "|"-separated in "Finding Labels", "No Finding" = none.
- `csv`: any cohort (CheXpert, MIMIC-CXR, PadChest, a hospital export) with an image path or file
  name column and labels "|"-separated in one column, as a list literal in one column, or one
  1 / 0 / -1 / blank column per label (column names from the config's data.csv section).

Rows are filtered on any column first (data.keep_rows, data.drop_rows), then their labels are
read by probelab.labels (label map, uncertain and blank policies, no-finding images). Every row,
label and file left out is counted in index_counts.json.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.fingerprint import content_digest, digest
from probelab.io import write_json, write_parquet
from probelab.labels import (
    LabelError,
    LabelRules,
    Labels,
    from_columns,
    from_token_sets,
    token_sets,
)

log = logging.getLogger(__name__)

NIH_ID, NIH_LABELS, NIH_PATIENT = "Image Index", "Finding Labels", "Patient ID"
NIH_FOLLOW_UP, NIH_VIEW, NIH_AGE, NIH_SEX = (
    "Follow-up #",
    "View Position",
    "Patient Age",
    "Patient Gender",
)
INDEX_COLUMNS = ["image_id", "path", "patient_id", "view", "follow_up", "age", "sex"]
# 1 = the image is labelled as having no finding at all (probelab.labels); subsets reserve their
# no-finding places for these, not for images whose only findings are not configured.
NO_FINDING_COLUMN = "no_finding"
# Every finding label of NIH ChestX-ray14; anything else in a NIH table is a typo or not NIH.
NIH_FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)


class CohortError(ValueError):
    """Bad cohort input; the message names the file, row or key and what was expected."""


@dataclass(frozen=True)
class CsvColumns:
    """Column mapping of the generic `csv` format (config key data.csv)."""

    path_column: str = "path"
    # root: the column holds paths relative to data.root; image_dirs: file names, found at any
    # depth under data.image_dirs (as NIH's are)
    resolve: str = "root"
    id_column: str | None = None
    patient_column: str = "patient_id"
    # a regular expression whose first group is the patient id within patient_column's value
    # (CheXpert: "(patient\d+)" on the Path column)
    patient_pattern: str | None = None
    view_column: str | None = None
    label_mode: str = "pipe"  # pipe | list | columns
    label_column: str = "labels"
    label_separator: str = "|"
    # every label column of a `columns` table; None: the configured ones (and no-finding) only
    label_columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RowFilter:
    """Rows kept or dropped by the value of any label-table column (data.keep_rows,
    data.drop_rows): e.g. keep {"Modality": ["X-ray"]}, drop {"Projection": ["L"]}."""

    keep: Mapping[str, list[str]] = field(default_factory=dict)
    drop: Mapping[str, list[str]] = field(default_factory=dict)

    def apply(self, table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
        """The rows that pass, and how many rows each rule removed (in order, keep first)."""
        removed: dict[str, int] = {}
        for action, rules in (("keep", self.keep), ("drop", self.drop)):
            for column, values in rules.items():
                key = f"data.{action}_rows.{column}"
                if column not in table.columns:
                    raise CohortError(
                        f"config key {key!r} names column {column!r}, which label table {path} "
                        f"does not have (found: {', '.join(map(repr, table.columns))})."
                    )
                cells = table[column].astype(str).str.strip()
                absent = [v for v in values if v not in set(cells)]
                if absent:
                    raise CohortError(
                        f"value {absent[0]!r} of config key {key!r} does not occur in column "
                        f"{column!r} of {path} (values there: {_some(cells)})."
                    )
                hit = cells.isin(values)
                passing = hit if action == "keep" else ~hit
                removed[f"{action} {column}"] = int((~passing).sum())
                table = table[passing]
        if table.empty:
            raise CohortError(
                f"no row of label table {path} passes data.keep_rows / data.drop_rows."
            )
        return table, removed


def _some(cells: pd.Series, limit: int = 12) -> str:
    values = sorted(cells.unique())
    shown = ", ".join(map(repr, values[:limit]))
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _require_columns(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CohortError(
            f"label table {path} has no column {missing[0]!r}; expected columns include "
            f"{', '.join(repr(c) for c in columns)} (found: {', '.join(map(repr, table.columns))})."
        )


def _check_unique_ids(ids: pd.Series, path: Path) -> None:
    duplicated = ids[ids.duplicated(keep=False)]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        rows = [int(i) + 2 for i in duplicated.index[duplicated == first]]  # +2: header, 1-based
        raise CohortError(
            f"label table {path} lists image id {first!r} more than once (rows {rows}); "
            "each image must appear once."
        )


def parse_age(value: Any) -> float:
    """NIH ages: plain years ("58") in v2020, "058Y" / "006M" / "010D" in the 2017 release."""
    text = str(value).strip().upper()
    if not text or text == "NAN":
        return float("nan")
    unit = text[-1] if text[-1] in "YMD" else "Y"
    number = float(text.rstrip("YMD"))
    return number / {"Y": 1, "M": 12, "D": 365.25}[unit]


def read_table(path: Path) -> pd.DataFrame:
    """A label table as text cells, its index the 0-based data row (row r is line r + 2)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    return table.loc[:, [c for c in table.columns if c and not c.startswith("Unnamed")]]


def read_nih_table(
    table: pd.DataFrame, rules: LabelRules, path: Path
) -> tuple[pd.DataFrame, Labels]:
    """The index columns of a NIH label table (paths not yet resolved) and its labels."""
    _require_columns(table, [NIH_ID, NIH_LABELS, NIH_PATIENT], path)
    _check_unique_ids(table[NIH_ID], path)
    out = pd.DataFrame(
        {
            "image_id": table[NIH_ID].str.strip(),
            "patient_id": table[NIH_PATIENT].str.strip(),
            "view": table[NIH_VIEW].str.strip() if NIH_VIEW in table else "",
            "follow_up": pd.to_numeric(table.get(NIH_FOLLOW_UP, 0), errors="coerce")
            .fillna(0)
            .astype("int32"),
            "age": table[NIH_AGE].map(parse_age) if NIH_AGE in table else float("nan"),
            "sex": table[NIH_SEX].str.strip() if NIH_SEX in table else "",
        }
    )
    sets = token_sets(table[NIH_LABELS], "pipe", "|", path)
    return out, from_token_sets(sets, rules, path, vocabulary=NIH_FINDINGS)


def _patients(table: pd.DataFrame, columns: CsvColumns, path: Path) -> pd.Series:
    values = table[columns.patient_column].str.strip()
    if not columns.patient_pattern:
        return values
    found = values.str.extract(columns.patient_pattern, expand=False)
    if isinstance(found, pd.DataFrame):
        found = found.iloc[:, 0]
    unmatched = found.isna()
    if unmatched.any():
        row = unmatched.idxmax()
        raise CohortError(
            f"label table {path} row {int(row) + 2}: column {columns.patient_column!r} value "
            f"{values[row]!r} does not match config key 'data.csv.patient_pattern' "
            f"{columns.patient_pattern!r}."
        )
    return found


def read_csv_table(
    table: pd.DataFrame, rules: LabelRules, columns: CsvColumns, path: Path
) -> tuple[pd.DataFrame, Labels]:
    """The index columns of a generic cohort table (the listed path or file name in
    `listed_path`, not yet resolved) and its labels."""
    needed = [columns.path_column, columns.patient_column]
    needed += [columns.id_column] if columns.id_column else []
    needed += [columns.view_column] if columns.view_column else []
    needed += [columns.label_column] if columns.label_mode != "columns" else []
    _require_columns(table, needed, path)
    paths = table[columns.path_column].str.strip()
    ids = (
        table[columns.id_column].str.strip()
        if columns.id_column
        else paths.map(lambda p: Path(p).name)
    )
    _check_unique_ids(ids, path)
    out = pd.DataFrame(
        {
            "image_id": ids,
            "listed_path": paths,
            "patient_id": _patients(table, columns, path),
            "view": table[columns.view_column].str.strip() if columns.view_column else "",
            "follow_up": 0,
            "age": float("nan"),
            "sex": "",
        }
    )
    if columns.label_mode == "columns":
        labels = from_columns(table, rules, columns.label_columns, path)
    else:
        sets = token_sets(
            table[columns.label_column], columns.label_mode, columns.label_separator, path
        )
        labels = from_token_sets(sets, rules, path)
    return out, labels


def image_files(root: Path, image_dirs: list[str], extensions: list[str]) -> Iterator[str]:
    """Every file with an image extension under root/image_dirs, at any depth."""
    suffixes = {e.lower() for e in extensions}
    for folder in image_dirs:
        base = root / folder
        if not base.is_dir():
            raise CohortError(f"image folder {base} (config key 'data.image_dirs') does not exist.")
        for dirpath, _, files in os.walk(base, followlinks=True):
            for name in sorted(files):
                if Path(name).suffix.lower() in suffixes:
                    yield os.path.join(dirpath, name)


def find_images(root: Path, image_dirs: list[str], extensions: list[str]) -> dict[str, str]:
    """Map file name -> path for every image under root/image_dirs at any depth."""
    found: dict[str, str] = {}
    for path in image_files(root, image_dirs, extensions):
        name = os.path.basename(path)
        if name in found and os.path.realpath(found[name]) != os.path.realpath(path):
            raise CohortError(
                f"image id {name!r} is on disk twice: {found[name]} and {path}; "
                "image file names must be unique under data.image_dirs."
            )
        found[name] = path
    if not found:
        raise CohortError(
            f"no image files ({', '.join(sorted(extensions))}) found under "
            f"{', '.join(str(root / d) for d in image_dirs)}."
        )
    return found


def data_manifest(data: dict[str, Any]) -> dict[str, Any]:
    """What the index is built from, cheaply: the content digests of the label table and the
    official lists, and a digest of every image file's name, size and modification time.

    The workflow rewrites results/{cohort}/data_manifest.json only when this changes, so an
    edited label table or an added, removed or replaced image reruns the index (and what
    depends on it) while an unchanged data folder stays a no-op.
    """
    root = Path(data["root"])
    files = {
        key: content_digest(root / data[key])
        for key in ("label_table", "train_val_list", "test_list")
        if (root / data[key]).is_file()
    }
    listing = hashlib.sha256()
    count = 0
    for path in image_files(root, data["image_dirs"], data["extensions"]):
        stat = os.stat(path)
        relative = os.path.relpath(path, root)
        listing.update(f"{relative}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        count += 1
    settings = {key: data[key] for key in sorted(data) if key != "root"}
    return {
        "root": str(root),
        "settings": settings,
        "files": files,
        "images": {"count": count, "listing": listing.hexdigest()[:16]},
    }


def _confined_paths(listed: pd.Series, root: Path, extensions: list[str], table: Path) -> pd.Series:
    """Listed image paths resolved against the data root, refusing any that is absolute, leaves
    the root or lacks an image extension (one sentence naming the row)."""
    base = os.path.abspath(root)
    suffixes = {e.lower() for e in extensions}
    resolved = []
    for position, listed_path in listed.items():
        row = int(position) + 2
        inside = os.path.normpath(os.path.join(base, listed_path)).startswith(base + os.sep)
        if os.path.isabs(listed_path) or not inside:
            raise CohortError(
                f"label table {table} row {row}: image path {listed_path!r} is outside the "
                f"data root {root}; paths must be relative to data.root and stay inside it."
            )
        if Path(listed_path).suffix.lower() not in suffixes:
            raise CohortError(
                f"label table {table} row {row}: image path {listed_path!r} does not end in "
                "one of the image extensions of config key 'data.extensions' "
                f"({', '.join(sorted(suffixes))})."
            )
        resolved.append(os.path.normpath(root / listed_path))
    return pd.Series(resolved, index=listed.index)


@dataclass
class IndexCounts:
    """index_counts.json: what the index holds and every row, label and file it left out."""

    listed: int  # rows of the label table
    present: int  # rows passing the row filters whose image is on disk
    missing: int  # rows passing the row filters whose image is not on disk
    # rows of index.parquet: present minus the images data.views and other_findings=exclude drop
    indexed: int
    unlisted_files: int  # image files under data.image_dirs that no row names
    positives: dict[str, int]
    no_finding: int  # images labelled as having no finding
    views: dict[str, int] = field(default_factory=dict)  # indexed images per view
    dropped_by_view: int = 0  # present images whose view is not in data.views
    dropped_views: dict[str, int] = field(default_factory=dict)  # the same per view
    # "keep Modality" / "drop Projection" -> rows that rule removed (data.keep_rows, drop_rows)
    dropped_by_filter: dict[str, int] = field(default_factory=dict)
    # labels of the table that are not configured pathologies: label -> rows (all listed rows)
    unconfigured_labels: dict[str, int] = field(default_factory=dict)
    # images whose only findings are not configured: kept as negatives or excluded
    other_findings: dict[str, Any] = field(default_factory=dict)
    # images marked no-finding that are positive for a configured pathology (they count as not
    # no-finding: e.g. a CheXpert "No Finding" image with an uncertain label taken as positive)
    no_finding_with_findings: int = 0
    label_map: dict[str, int] = field(default_factory=dict)  # source label -> rows renamed
    # uncertain / blank -> {"policy": ..., "labels": {pathology: labels it resolved}}
    label_policies: dict[str, Any] = field(default_factory=dict)
    # probelab.cohort.data_manifest digest of the data the index was built from
    data_fingerprint: str = ""


def _resolve_paths(
    table: pd.DataFrame,
    raw: pd.DataFrame,
    fmt: str,
    columns: CsvColumns,
    root: Path,
    image_dirs: list[str],
    extensions: list[str],
    table_path: Path,
) -> tuple[pd.Series, int]:
    """Each row's image path (NaN when not on disk) and the number of image files under
    image_dirs that no row of the whole table (filtered rows included) names."""
    if fmt == "nih" or columns.resolve == "image_dirs":
        on_disk = find_images(root, image_dirs, extensions)
        if fmt == "nih":
            names, listed = table["image_id"], raw[NIH_ID].str.strip()
        else:
            names = table.pop("listed_path").map(lambda p: Path(p).name)
            listed = raw[columns.path_column].str.strip().map(lambda p: Path(p).name)
        return names.map(on_disk), len(set(on_disk) - set(listed))
    resolved = _confined_paths(table.pop("listed_path"), root, extensions, table_path)
    paths = resolved.where(resolved.map(os.path.isfile))
    if paths.isna().all():
        raise CohortError(
            f"none of the {len(table)} image paths listed in {table_path} exist on disk "
            f"(paths are read relative to {root})."
        )
    listed = {os.path.normpath(root / p) for p in raw[columns.path_column].str.strip() if p}
    on_disk = {os.path.normpath(p) for p in image_files(root, image_dirs, extensions)}
    return paths, len(on_disk - listed)


def build_index(
    root: Path,
    pathologies: list[str],
    *,
    fmt: str = "nih",
    label_table: str = "Data_Entry_2017_v2020.csv",
    image_dirs: list[str] | None = None,
    extensions: list[str] | None = None,
    views: list[str] | None = None,
    csv_columns: CsvColumns | None = None,
    no_finding: str = "No Finding",
    rows: RowFilter | None = None,
    label_rules: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, IndexCounts]:
    """Join the label table with the images present on disk.

    `label_rules` holds the data section's label keys (label_map, uncertain, blank,
    other_findings; probelab.labels.LabelRules). Returns the index (columns: image_id, path,
    patient_id, view, follow_up, age, sex, one column per pathology: int8 0/1, or float32 with
    NaN where a label is ignored, and no_finding) and the counts of what was left out.
    """
    root = Path(root)
    table_path = root / label_table
    if not table_path.is_file():
        raise CohortError(
            f"label table {table_path} (config key 'data.label_table') does not exist."
        )
    extensions = extensions or [".png", ".jpg", ".jpeg"]
    image_dirs = image_dirs or ["."]
    columns = csv_columns or CsvColumns()
    rules = LabelRules.of(label_rules or {}, pathologies, no_finding)
    if fmt not in ("nih", "csv"):
        raise CohortError(f"config key 'data.format' must be 'nih' or 'csv', got {fmt!r}.")
    raw = read_table(table_path)
    filtered, dropped_by_filter = (rows or RowFilter()).apply(raw, table_path)
    try:
        reader = read_nih_table if fmt == "nih" else partial(read_csv_table, columns=columns)
        table, labels = reader(filtered, rules, path=table_path)
    except LabelError as error:
        raise CohortError(str(error)) from None
    table["path"], unlisted = _resolve_paths(
        table, raw, fmt, columns, root, image_dirs, extensions, table_path
    )
    present = table.dropna(subset=["path"])
    if present.empty:
        raise CohortError(
            f"none of the {len(table)} images listed in {table_path} were found under "
            f"{', '.join(image_dirs)} in {root}."
        )
    kept = present
    dropped_views: dict[str, int] = {}
    if views:
        kept = present[present["view"].isin(views)]
        dropped = present.loc[~present["view"].isin(views), "view"].value_counts().sort_index()
        dropped_views = {str(view): int(n) for view, n in dropped.items()}
        if kept.empty:
            raise CohortError(
                f"no present image has a view in config key 'data.views' {views}; "
                f"views present: {sorted(present['view'].unique())}."
            )
    viewed = kept
    others = labels.other_findings.loc[viewed.index]
    if rules.other_findings == "exclude":
        kept = viewed[~others]
    values = labels.values.loc[kept.index]
    if not values.isna().to_numpy().any():
        values = values.astype("int8")
    index = pd.concat(
        [
            kept[INDEX_COLUMNS],
            values,
            labels.no_finding.loc[kept.index].astype("int8").rename(NO_FINDING_COLUMN),
        ],
        axis=1,
    )
    index = index.sort_values("image_id", kind="stable").reset_index(drop=True)
    changed = labels.changes(kept.index)
    counts = IndexCounts(
        listed=len(raw),
        present=len(present),
        missing=len(table) - len(present),
        indexed=len(index),
        unlisted_files=unlisted,
        positives={p: int((index[p] == 1).sum()) for p in pathologies},
        no_finding=int(index[NO_FINDING_COLUMN].sum()),
        views={str(k): int(v) for k, v in index["view"].value_counts().sort_index().items()},
        dropped_by_view=len(present) - len(viewed),
        dropped_views=dropped_views,
        dropped_by_filter=dropped_by_filter,
        unconfigured_labels=labels.unconfigured,
        other_findings={"policy": rules.other_findings, "images": int(others.sum())},
        no_finding_with_findings=int(labels.no_finding_with_findings.loc[kept.index].sum()),
        label_map=labels.mapped,
        label_policies={
            kind: {"policy": getattr(rules, kind), "labels": changed[kind]}
            for kind in ("uncertain", "blank")
        },
    )
    log.info("index: %d listed, %d present, %d kept", counts.listed, counts.present, len(index))
    return index, counts


def csv_columns(section: Mapping[str, Any]) -> CsvColumns:
    """The config's data.csv section as a CsvColumns."""
    settings = dict(section)
    if settings.get("label_columns") is not None:
        settings["label_columns"] = tuple(settings["label_columns"])
    return CsvColumns(**settings)


def index_images(
    data: dict[str, Any], pathologies: list[str], no_finding: str, out_index: Path, out_counts: Path
) -> IndexCounts:
    """Build the index from the config's `data` section and write it with its counts."""
    manifest = data_manifest(data)
    index, counts = build_index(
        Path(data["root"]),
        pathologies,
        fmt=data["format"],
        label_table=data["label_table"],
        image_dirs=data["image_dirs"],
        extensions=data["extensions"],
        views=data["views"],
        csv_columns=csv_columns(data["csv"]),
        no_finding=no_finding,
        rows=RowFilter(keep=data["keep_rows"], drop=data["drop_rows"]),
        label_rules=data,
    )
    counts.data_fingerprint = digest(manifest)
    write_parquet(out_index, index)
    write_json(out_counts, asdict(counts))
    log.info(
        "%d of %d listed images present; %d files on disk not listed",
        counts.present,
        counts.listed,
        counts.unlisted_files,
    )
    return counts


def index_external(
    data: dict[str, Any],
    pathologies: list[str],
    no_finding: str,
    out_index: Path,
    out_counts: Path,
    out_split: Path,
) -> None:
    """Index an external test cohort (config key external.{name}) like the training cohort and
    write its split: every image a test image, with its patient (the bootstrap's patient table;
    probelab.external scores it)."""
    index_images(data, pathologies, no_finding, out_index, out_counts)
    table = pd.read_parquet(out_index, columns=["image_id", "patient_id"])
    write_parquet(out_split, table.assign(split="test"))


def index_hash(index: pd.DataFrame) -> str:
    """Identity of the images an index holds: sha256 of its sorted (image_id, path) pairs."""
    pairs = sorted(zip(index["image_id"].astype(str), index["path"].astype(str), strict=True))
    digest = hashlib.sha256("".join(f"{i}\t{p}\n" for i, p in pairs).encode())
    return digest.hexdigest()[:16]


def label_matrix(index: pd.DataFrame, pathologies: list[str]) -> pd.DataFrame:
    """The 0/1 label columns, refusing a pathology the index was not built with."""
    missing = [p for p in pathologies if p not in index.columns]
    if missing:
        raise CohortError(
            f"pathology {missing[0]!r} is not a column of the cohort index; rebuild the index "
            "after changing config key 'pathologies'."
        )
    return index[pathologies]
