"""From label-table entries to the index's label columns: label map, uncertain and blank labels,
no-finding images and images whose only findings are not configured.

Every table format is first read into raw values per label name: 1 (positive), 0 (negative),
-1 (uncertain) or NaN (blank: not mentioned). A "|"-separated or list-valued label cell gives 1
for each label it names and 0 for every other; a table with one column per label (CheXpert,
MIMIC-CXR) gives what its cells say. The rules then
- rename labels (data.label_map; several sources may merge into one pathology: positive if any is
  positive, else uncertain if any is, else negative if any is, else blank),
- resolve uncertain and blank values of the configured pathologies by policy (data.uncertain,
  data.blank); `ignore` leaves NaN, which every consumer masks out of losses and metrics,
- mark no-finding images: the image carries the no-finding label (its column is 1), or, in a
  column table without that column, no label column is positive or uncertain,
- find images with no configured finding that are not no-finding images (only findings outside
  config key 'pathologies'): kept as negatives of every pathology or excluded (data.other_findings),
  counted either way.
"""

from __future__ import annotations

import ast
import difflib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
# The spellings a label column's cell may take (CheXpert writes 1.0 / 0.0 / -1.0 / blank).
CELL_VALUES = {
    "1": POSITIVE,
    "1.0": POSITIVE,
    "0": NEGATIVE,
    "0.0": NEGATIVE,
    "-1": UNCERTAIN,
    "-1.0": UNCERTAIN,
    "": np.nan,
}
UNCERTAIN_POLICIES = {"positive": POSITIVE, "negative": NEGATIVE, "ignore": np.nan}
BLANK_POLICIES = {"negative": NEGATIVE, "ignore": np.nan}
# How close (difflib ratio) an unconfigured label must be to a configured one to be taken for a
# misspelling of it ("Efusion" vs "Effusion" is 0.93; "Mass" vs "Hernia" is 0.2).
MISSPELLING_CUTOFF = 0.85


class LabelError(ValueError):
    """A label entry the rules cannot read; the message names the file, row and label."""


@dataclass(frozen=True)
class LabelRules:
    """How raw label values become label columns (config keys under data)."""

    pathologies: tuple[str, ...]
    no_finding: str = "No Finding"
    label_map: Mapping[str, str] = field(default_factory=dict)
    uncertain: str | None = None  # positive | negative | ignore; None refuses uncertain values
    blank: str | None = None  # negative | ignore; None refuses blank values
    other_findings: str = "negative"  # negative | exclude

    @classmethod
    def of(cls, data: Mapping, pathologies: Sequence[str], no_finding: str) -> LabelRules:
        return cls(
            pathologies=tuple(pathologies),
            no_finding=no_finding,
            label_map=dict(data.get("label_map") or {}),
            uncertain=data.get("uncertain"),
            blank=data.get("blank"),
            other_findings=data.get("other_findings", "negative"),
        )

    def target(self, label: str) -> str:
        return self.label_map.get(label, label)


@dataclass
class Labels:
    """The label columns of every row of a table, and what the rules did to get them."""

    values: pd.DataFrame  # one float32 column per pathology: 1, 0 or NaN (ignored)
    no_finding: pd.Series  # bool: labelled as having no finding
    other_findings: pd.Series  # bool: a finding outside the configured pathologies, and no other
    unconfigured: dict[str, int]  # label -> rows positive for it (labels not configured)
    mapped: dict[str, int]  # source label -> rows it was renamed in (data.label_map)
    # policy -> pathology -> labels it resolved (counted again on the index's rows by `changes`)
    uncertain: pd.DataFrame = field(default_factory=pd.DataFrame)
    blank: pd.DataFrame = field(default_factory=pd.DataFrame)
    no_finding_with_findings: pd.Series = field(default_factory=lambda: pd.Series(dtype=bool))

    def changes(self, rows: pd.Index) -> dict[str, dict[str, int]]:
        """How many labels of these rows each policy resolved, per pathology."""
        return {
            kind: {p: int(frame.loc[rows, p].sum()) for p in frame.columns}
            for kind, frame in (("uncertain", self.uncertain), ("blank", self.blank))
        }


def token_sets(cells: pd.Series, mode: str, separator: str, path: Path) -> pd.Series:
    """The set of labels each cell names: "|"-separated text (mode pipe) or a Python/JSON list
    literal such as PadChest's "['normal', 'pleural effusion']" (mode list)."""
    if mode == "pipe":
        tokens = cells.fillna("").astype(str).str.split(separator, regex=False)
        return tokens.map(lambda row: {t.strip() for t in row if t.strip()})

    def parse(row: Any, cell: str) -> set[str]:
        text = str(cell).strip()
        if not text:
            return set()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise LabelError(
                f"label table {path} row {int(row) + 2}: expected a list of label names such as "
                f"['a', 'b'] (data.csv.label_mode: list), got {text[:80]!r}."
            )
        return {v.strip() for v in value if v.strip()}

    return pd.Series([parse(i, c) for i, c in cells.items()], index=cells.index, dtype=object)


def from_token_sets(
    sets: pd.Series, rules: LabelRules, path: Path, vocabulary: tuple[str, ...] | None = None
) -> Labels:
    """Labels of "|"-separated or list cells: a label named in the cell is positive, every other
    one negative (such tables have no uncertain or blank entries)."""
    mapped = Counter(label for row in sets for label in row if label in rules.label_map)
    _check_map_sources(rules, set(mapped), path)
    renamed = sets.map(lambda row: {rules.target(label) for label in row})
    seen = Counter(label for row in renamed for label in row)
    seen.pop(rules.no_finding, None)
    _check_configured_occur(rules, seen, path)
    others = {label: n for label, n in sorted(seen.items()) if label not in rules.pathologies}
    _check_unconfigured(renamed, rules, others, path, vocabulary)
    values = pd.DataFrame(
        {p: renamed.map(lambda s, p=p: p in s).astype("float32") for p in rules.pathologies},
        index=sets.index,
    )
    configured = set(rules.pathologies)
    return _finish(
        values,
        named_no_finding=renamed.map(lambda s: rules.no_finding in s or not s),
        other_positive=renamed.map(lambda s: bool(s - configured - {rules.no_finding})),
        unconfigured=others,
        mapped=dict(sorted(mapped.items())),
        rules=rules,
        path=path,
    )


def from_columns(
    table: pd.DataFrame, rules: LabelRules, label_columns: Sequence[str] | None, path: Path
) -> Labels:
    """Labels of a table with one column per label (1 / 0 / -1 / blank, CheXpert style).

    `label_columns` lists every label column of the table (None: only the configured
    pathologies' columns and the no-finding column): the columns outside the configuration are
    what tells an image with other findings from a no-finding one.
    """
    _check_map_sources(rules, set(table.columns), path)
    sources = {p: [c for c in table.columns if rules.target(c) == p] for p in rules.pathologies}
    for pathology, columns in sources.items():
        if not columns:
            raise LabelError(
                f"label table {path} has no column for pathology {pathology!r} (config key "
                f"'pathologies'); a column named so or mapped to it by data.label_map is expected "
                f"(found: {', '.join(map(repr, table.columns))})."
            )
    mapped_columns = [c for cs in sources.values() for c in cs]
    listed = list(label_columns) if label_columns is not None else mapped_columns
    missing = [c for c in listed if c not in table.columns]
    if missing:
        raise LabelError(
            f"label table {path} has no column {missing[0]!r} (config key "
            "'data.csv.label_columns')."
        )
    no_finding_column = next(
        (c for c in table.columns if rules.target(c) == rules.no_finding), None
    )
    other_columns = [c for c in listed if c not in mapped_columns and c != no_finding_column]
    raw = {c: _cells(table[c], c, path) for c in {*listed, *mapped_columns}}
    if no_finding_column is not None:
        raw[no_finding_column] = _cells(table[no_finding_column], no_finding_column, path)
    values = pd.DataFrame(
        {p: _merge([raw[c] for c in cs]) for p, cs in sources.items()}, index=table.index
    )
    observed_other = (
        pd.concat([raw[c] for c in other_columns], axis=1)
        if other_columns
        else pd.DataFrame(index=table.index)
    )
    if no_finding_column is not None:
        named_no_finding = raw[no_finding_column] == POSITIVE
    else:
        anything = pd.concat([values, observed_other], axis=1)
        named_no_finding = ~anything.isin([POSITIVE, UNCERTAIN]).any(axis=1)
    unconfigured = {
        rules.target(c): int((raw[c] == POSITIVE).sum())
        for c in other_columns
        if (raw[c] == POSITIVE).any()
    }
    mapped = {
        c: int(table[c].astype(str).str.strip().ne("").sum())
        for c in mapped_columns + ([no_finding_column] if no_finding_column else [])
        if c in rules.label_map
    }
    return _finish(
        values,
        named_no_finding=named_no_finding,
        other_positive=observed_other.isin([POSITIVE, UNCERTAIN]).any(axis=1),
        unconfigured=dict(sorted(unconfigured.items())),
        mapped=dict(sorted(mapped.items())),
        rules=rules,
        path=path,
    )


def _cells(column: pd.Series, name: str, path: Path) -> pd.Series:
    text = column.fillna("").astype(str).str.strip()
    bad = ~text.isin(list(CELL_VALUES))
    if bad.any():
        row = bad.idxmax()
        raise LabelError(
            f"label table {path} row {int(row) + 2}, column {name!r}: expected 1, 0, -1 "
            f"(uncertain) or blank (not mentioned), got {text[row]!r}."
        )
    return text.map(CELL_VALUES).astype("float32")


def _merge(columns: list[pd.Series]) -> pd.Series:
    """Several source columns mapped to one pathology: positive if any is, else uncertain if
    any is, else negative if any is, else blank."""
    frame = pd.concat(columns, axis=1)
    merged = pd.Series(np.nan, index=frame.index, dtype="float32")
    for value in (NEGATIVE, UNCERTAIN, POSITIVE):  # later wins
        merged[(frame == value).any(axis=1)] = value
    return merged


def _finish(
    values: pd.DataFrame,
    *,
    named_no_finding: pd.Series,
    other_positive: pd.Series,
    unconfigured: dict[str, int],
    mapped: dict[str, int],
    rules: LabelRules,
    path: Path,
) -> Labels:
    uncertain = values == UNCERTAIN
    blank = values.isna()
    for kind, mask, policy in (
        ("uncertain", uncertain, rules.uncertain),
        ("blank", blank, rules.blank),
    ):
        if policy is None and mask.to_numpy().any():
            position, col = np.argwhere(mask.to_numpy())[0]
            row = mask.index[position]
            choices = (
                "positive, negative or ignore" if kind == "uncertain" else "negative or ignore"
            )
            raise LabelError(
                f"label table {path} row {int(row) + 2}: pathology {mask.columns[col]!r} is "
                f"{'uncertain (-1)' if kind == 'uncertain' else 'blank (not mentioned)'}; set "
                f"config key 'data.{kind}' to {choices} to say how such labels count."
            )
    resolved = values.copy()
    if rules.uncertain is not None:
        resolved = resolved.mask(uncertain, UNCERTAIN_POLICIES[rules.uncertain])
    if rules.blank is not None:
        resolved = resolved.mask(blank, BLANK_POLICIES[rules.blank])
    any_finding = (resolved == POSITIVE).any(axis=1)
    no_finding = named_no_finding & ~any_finding
    return Labels(
        values=resolved.astype("float32"),
        no_finding=no_finding,
        other_findings=~any_finding & ~no_finding & other_positive,
        unconfigured=unconfigured,
        mapped=mapped,
        uncertain=uncertain,
        blank=blank,
        no_finding_with_findings=named_no_finding & any_finding,
    )


def _check_map_sources(rules: LabelRules, seen: set[str], path: Path) -> None:
    """A label-map entry whose source never occurs is a typo that would change nothing."""
    absent = [source for source in rules.label_map if source not in seen]
    if absent:
        raise LabelError(
            f"label {absent[0]!r} of config key 'data.label_map' does not occur in label table "
            f"{path}; map only labels the table has."
        )


def _check_configured_occur(rules: LabelRules, seen: Counter, path: Path) -> None:
    unknown = [p for p in rules.pathologies if p not in seen]
    if not unknown:
        return
    first = unknown[0]
    close = difflib.get_close_matches(first, list(seen), n=1, cutoff=MISSPELLING_CUTOFF)
    listing = sorted(seen)
    found = ", ".join(listing[:40]) + (
        f" and {len(listing) - 40} more" if len(listing) > 40 else ""
    )
    where = (
        f"; the table has {close[0]!r}: fix the config key or rename that label with "
        "'data.label_map'"
        if close
        else f"; labels found there: {found or 'none'}"
    )
    others = f" (nor do {len(unknown) - 1} more of them)" if len(unknown) > 1 else ""
    raise LabelError(
        f"pathology {first!r} in config key 'pathologies' does not occur in label table "
        f"{path}{others}{where}."
    )


def _check_unconfigured(
    renamed: pd.Series,
    rules: LabelRules,
    others: dict[str, int],
    path: Path,
    vocabulary: tuple[str, ...] | None,
) -> None:
    """Refuse an unconfigured label that cannot be a real one: so close to a configured name that
    it is most likely a misspelling of it, or outside the format's `vocabulary` (NIH's 14
    findings). Count the others, so that nothing is dropped without a word."""
    for label, n in others.items():
        close = difflib.get_close_matches(
            label, [*rules.pathologies, rules.no_finding], n=1, cutoff=MISSPELLING_CUTOFF
        )
        foreign = vocabulary is not None and label not in vocabulary
        if close or foreign:
            row = renamed.map(lambda s, label=label: label in s).idxmax()
            hint = f"did you mean {close[0]!r}?" if close else "it is not a NIH finding label."
            raise LabelError(
                f"label table {path} row {int(row) + 2}: label {label!r} ({n} row(s)) is not a "
                f"configured pathology or {rules.no_finding!r}; {hint} Fix the table or the "
                "config key 'pathologies', or rename it with 'data.label_map'."
            )
    if others:
        log.warning(
            "label table %s: labels not in config key 'pathologies' are ignored: %s",
            path,
            ", ".join(f"{label} ({n} rows)" for label, n in others.items()),
        )
