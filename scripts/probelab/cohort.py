"""Cohort index: the label table joined with the images actually on disk.

Two label-table formats are read:
- `nih`: NIH ChestX-ray14's Data_Entry_2017.csv (CRLF, trailing comma, ages like "058Y") or
  Data_Entry_2017_v2020.csv; labels are "|"-separated in "Finding Labels", "No Finding" = none.
- `csv`: any cohort with an image path column and labels either "|"-separated in one column or one
  0/1 column per label (column names from the config's data.csv section).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.fingerprint import content_digest, digest
from probelab.io import write_json, write_parquet

log = logging.getLogger(__name__)

NIH_ID, NIH_LABELS, NIH_PATIENT = "Image Index", "Finding Labels", "Patient ID"
NIH_FOLLOW_UP, NIH_VIEW, NIH_AGE, NIH_SEX = (
    "Follow-up #",
    "View Position",
    "Patient Age",
    "Patient Gender",
)
INDEX_COLUMNS = ["image_id", "path", "patient_id", "view", "follow_up", "age", "sex"]
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
# How close (difflib ratio) an unconfigured label must be to a configured one to be taken for a
# misspelling of it ("Efusion" vs "Effusion" is 0.93; "Mass" vs "Hernia" is 0.2).
MISSPELLING_CUTOFF = 0.85


class CohortError(ValueError):
    """Bad cohort input; the message names the file, row or key and what was expected."""


@dataclass(frozen=True)
class CsvColumns:
    """Column mapping of the generic `csv` format (config key data.csv)."""

    path_column: str = "path"
    id_column: str | None = None
    patient_column: str = "patient_id"
    view_column: str | None = None
    label_mode: str = "pipe"
    label_column: str = "labels"
    label_separator: str = "|"


@dataclass
class IndexCounts:
    listed: int
    present: int
    missing: int
    unlisted_files: int
    positives: dict[str, int]
    no_finding: int
    views: dict[str, int] = field(default_factory=dict)
    dropped_by_view: int = 0
    # labels of the table that are not configured pathologies: label -> rows (all listed rows)
    unconfigured_labels: dict[str, int] = field(default_factory=dict)
    # probelab.cohort.data_manifest digest of the data the index was built from
    data_fingerprint: str = ""


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


def _split_labels(
    labels: pd.Series,
    separator: str,
    pathologies: list[str],
    no_finding: str,
    path: Path,
    vocabulary: tuple[str, ...] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Multi-hot columns of the configured pathologies, and the count of every other label.

    A label that is not configured is refused when it cannot be a real label: outside the
    `vocabulary` of the format (NIH's 14 findings), or so close to a configured name that it is
    most likely a misspelling of it; otherwise it is counted, so that nothing is dropped without
    a word.
    """
    tokens = labels.fillna("").astype(str).str.split(separator, regex=False)
    sets = tokens.map(lambda row: {t.strip() for t in row if t.strip()})
    seen = Counter(label for row in sets for label in row)
    seen.pop(no_finding, None)
    unknown = [p for p in pathologies if p not in seen]
    if unknown and len(unknown) == len(pathologies):
        raise CohortError(
            f"none of the configured pathologies occur in label table {path}; "
            f"labels found there: {', '.join(sorted(seen)) or 'none'}."
        )
    if unknown:
        raise CohortError(
            f"pathology {unknown[0]!r} in config key 'pathologies' does not occur in label table "
            f"{path}; labels found there: {', '.join(sorted(seen))}."
        )
    others = {label: n for label, n in sorted(seen.items()) if label not in pathologies}
    for label, n in others.items():
        close = difflib.get_close_matches(
            label, [*pathologies, no_finding], n=1, cutoff=MISSPELLING_CUTOFF
        )
        foreign = vocabulary is not None and label not in vocabulary
        if close or foreign:
            row = int(sets.map(lambda s, label=label: label in s).to_numpy().argmax())
            hint = f"did you mean {close[0]!r}?" if close else "it is not a NIH finding label."
            raise CohortError(
                f"label table {path} row {row + 2}: label {label!r} ({n} row(s)) is not a "
                f"configured pathology or {no_finding!r}; {hint} Fix the table or the config "
                "key 'pathologies'."
            )
    if others:
        log.warning(
            "label table %s: labels not in config key 'pathologies' are ignored: %s",
            path,
            ", ".join(f"{label} ({n} rows)" for label, n in others.items()),
        )
    columns = {p: sets.map(lambda s, p=p: p in s).astype("int8") for p in pathologies}
    return pd.DataFrame(columns), others


def read_nih_table(
    path: Path, pathologies: list[str], no_finding: str = "No Finding"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read a NIH label table (2017 or v2020) into index columns, paths not yet resolved; also
    the count of each NIH label that is not configured."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    table = table.loc[:, [c for c in table.columns if c and not c.startswith("Unnamed")]]
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
    labels, others = _split_labels(
        table[NIH_LABELS], "|", pathologies, no_finding, path, vocabulary=NIH_FINDINGS
    )
    return pd.concat([out, labels], axis=1), others


def read_csv_table(
    path: Path, pathologies: list[str], columns: CsvColumns, no_finding: str = "No Finding"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read a generic cohort CSV: one row per image, a path column, labels as configured; also
    the count of each label that is not configured."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    needed = [columns.path_column, columns.patient_column]
    needed += [columns.id_column] if columns.id_column else []
    needed += [columns.view_column] if columns.view_column else []
    needed += [columns.label_column] if columns.label_mode == "pipe" else list(pathologies)
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
            "patient_id": table[columns.patient_column].str.strip(),
            "view": table[columns.view_column].str.strip() if columns.view_column else "",
            "follow_up": 0,
            "age": float("nan"),
            "sex": "",
        }
    )
    others: dict[str, int] = {}
    if columns.label_mode == "pipe":
        labels, others = _split_labels(
            table[columns.label_column], columns.label_separator, pathologies, no_finding, path
        )
    else:
        labels = pd.DataFrame(index=table.index)
        for p in pathologies:
            values = table[p].str.strip()
            bad = ~values.isin(["0", "1"])
            if bad.any():
                row = int(bad.idxmax())
                raise CohortError(
                    f"label table {path} row {row + 2}, column {p!r}: "
                    f"expected 0 or 1, got {values[row]!r}."
                )
            labels[p] = values.astype("int8")
    return pd.concat([out, labels], axis=1), others


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
    for row, listed_path in enumerate(listed):
        inside = os.path.normpath(os.path.join(base, listed_path)).startswith(base + os.sep)
        if os.path.isabs(listed_path) or not inside:
            raise CohortError(
                f"label table {table} row {row + 2}: image path {listed_path!r} is outside the "
                f"data root {root}; paths must be relative to data.root and stay inside it."
            )
        if Path(listed_path).suffix.lower() not in suffixes:
            raise CohortError(
                f"label table {table} row {row + 2}: image path {listed_path!r} does not end in "
                "one of the image extensions of config key 'data.extensions' "
                f"({', '.join(sorted(suffixes))})."
            )
        resolved.append(os.path.normpath(root / listed_path))
    return pd.Series(resolved, index=listed.index)


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
) -> tuple[pd.DataFrame, IndexCounts]:
    """Join the label table with the images present on disk.

    Returns the index (columns: image_id, path, patient_id, view, follow_up, age, sex, one int8
    column per pathology) and the counts of listed, present and missing images.
    """
    root = Path(root)
    table_path = root / label_table
    if not table_path.is_file():
        raise CohortError(
            f"label table {table_path} (config key 'data.label_table') does not exist."
        )
    extensions = extensions or [".png", ".jpg", ".jpeg"]
    if fmt == "nih":
        table, others = read_nih_table(table_path, pathologies, no_finding)
        on_disk = find_images(root, image_dirs or ["."], extensions)
        table["path"] = table["image_id"].map(on_disk)
        unlisted = len(set(on_disk) - set(table["image_id"]))
    elif fmt == "csv":
        table, others = read_csv_table(
            table_path, pathologies, csv_columns or CsvColumns(), no_finding
        )
        resolved = _confined_paths(table.pop("listed_path"), root, extensions, table_path)
        table["path"] = resolved.where(resolved.map(os.path.isfile))
        unlisted = 0
        if table["path"].isna().all():
            raise CohortError(
                f"none of the {len(table)} image paths listed in {table_path} exist on disk "
                f"(paths are read relative to {root})."
            )
    else:
        raise CohortError(f"config key 'data.format' must be 'nih' or 'csv', got {fmt!r}.")

    present = table.dropna(subset=["path"])
    if present.empty:
        raise CohortError(
            f"none of the {len(table)} images listed in {table_path} were found under "
            f"{', '.join(image_dirs or ['.'])} in {root}."
        )
    kept = present
    if views:
        kept = present[present["view"].isin(views)]
        if kept.empty:
            raise CohortError(
                f"no present image has a view in config key 'data.views' {views}; "
                f"views present: {sorted(present['view'].unique())}."
            )
    index = kept[INDEX_COLUMNS + list(pathologies)]
    index = index.sort_values("image_id", kind="stable").reset_index(drop=True)
    counts = IndexCounts(
        listed=len(table),
        present=len(present),
        missing=len(table) - len(present),
        unlisted_files=unlisted,
        positives={p: int(index[p].sum()) for p in pathologies},
        no_finding=int((index[list(pathologies)].sum(axis=1) == 0).sum()),
        views={str(k): int(v) for k, v in index["view"].value_counts().sort_index().items()},
        dropped_by_view=len(present) - len(kept),
        unconfigured_labels=others,
    )
    log.info("index: %d listed, %d present, %d kept", counts.listed, counts.present, len(index))
    return index, counts


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
        csv_columns=CsvColumns(**data["csv"]),
        no_finding=no_finding,
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
