"""Loading the review splits (hub id, local folder or the generated demo) and checking them.

Every split comes back as a `datasets.Dataset` with exactly two columns, `text` (str) and
`label` (int 0/1), whatever the source's column names were.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probelab.sentiment import SPLITS, SentimentDataError

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

# File suffix -> `datasets` builder name, in the order a folder is searched.
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
LABELS = (0, 1)
DEFAULT_LABEL_NAMES = ("negative", "positive")  # the config's default label_names
# The step scripts' command-line option for the folder that `load_splits` calls `demo_folder`
# (an `options` entry of probelab.cli.command_line).
DEMO_FOLDER_OPTION = {
    "--demo-folder": {
        "type": Path,
        "default": None,
        "help": "where the demo reviews are (only for data.source demo)",
    }
}


def find_split_files(folder: str | Path, split_names: dict[str, str]) -> dict[str, Path]:
    """Map each split to its file `<folder>/<name>.<jsonl|json|csv|parquet>` (one format per
    folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SentimentDataError(
            f"sentiment data folder {folder} does not exist; expected a folder of split files."
        )
    files: dict[str, Path] = {}
    for split in SPLITS:
        name = split_names[split]
        found = [
            folder / f"{name}{suffix}"
            for suffix in LOCAL_FORMATS
            if (folder / f"{name}{suffix}").is_file()
        ]
        if not found:
            raise SentimentDataError(
                f"sentiment data folder {folder} has no file for split '{split}'; expected "
                f"{name}.jsonl, {name}.json, {name}.csv or {name}.parquet."
            )
        files[split] = found[0]
    builders = {LOCAL_FORMATS[path.suffix] for path in files.values()}
    if len(builders) > 1:
        names = ", ".join(sorted(path.name for path in files.values()))
        raise SentimentDataError(
            f"sentiment data folder {folder} mixes file formats ({names}); "
            "all splits must share one format."
        )
    return files


def input_files(data: dict[str, Any], demo_folder: str | Path) -> list[str]:
    """The files a rule depends on: the demo's, the local split files, or none for a hub id."""
    if data["source"] == "hub":
        return []
    if data["source"] == "demo":
        return [str(Path(demo_folder) / f"{split}.jsonl") for split in SPLITS]
    if not data.get("path"):
        raise SentimentDataError(
            "config key 'sentiment.data.path' must name a folder when sentiment.data.source is "
            "'local'."
        )
    return [str(path) for path in find_split_files(data["path"], data["splits"]).values()]


def load_splits(data: dict[str, Any], demo_folder: str | Path | None) -> datasets.DatasetDict:
    """Load train / validation / test from the configured source and check them.

    `data` is the config's `sentiment.data` section; `demo_folder` is where the demo review set
    was written (used only when data.source is `demo`).

    Local JSON files (`.jsonl`, `.json`) are read here, line by line, rather than by `datasets`,
    so that bad bytes, a malformed line or an empty file are refused with the file and line named
    (`read_json_rows`); CSV files are checked for UTF-8 and emptiness first (`check_text_file`).

    Classes: the training split must hold both labels, or the SVM cannot be fitted and
    fine-tuning learns a constant; it is refused. A validation or test split with one label is
    accepted with a warning: the metrics reported (accuracy, and precision / recall / F1 of label 1
    with 0 where undefined; no AUROC) are all still computed, and such splits are legitimate (a
    demo test split of one review, a deliberately one-sided evaluation set), but F1 there is
    degenerate, so choosing the fine-tuned epoch by it is not meaningful.
    """
    import datasets

    text_column, label_column = data["text_column"], data["label_column"]
    label_names = list(data.get("label_names") or DEFAULT_LABEL_NAMES)
    lines: dict[str, list[int] | None] = {split: None for split in SPLITS}
    if data["source"] == "hub":
        if not data.get("path"):
            raise SentimentDataError(
                "config key 'sentiment.data.path' must name a hub data set id when "
                "sentiment.data.source is 'hub'."
            )
        loaded = datasets.load_dataset(data["path"])
        origin = {
            split: f"hub data set {data['path']} split '{data['splits'][split]}'"
            for split in SPLITS
        }
        missing = [split for split in SPLITS if data["splits"][split] not in loaded]
        if missing:
            raise SentimentDataError(
                f"hub data set {data['path']} has no split '{data['splits'][missing[0]]}' "
                f"(for {missing[0]}); it has: {', '.join(loaded)}."
            )
        raw: dict[str, Any] = {split: loaded[data["splits"][split]] for split in SPLITS}
    else:
        if data["source"] == "demo":
            if demo_folder is None:
                raise SentimentDataError(
                    "sentiment.data.source is 'demo' but no demo review folder was given."
                )
            folder, names = Path(demo_folder), {split: split for split in SPLITS}
            text_column, label_column = "text", "label"
        else:
            if not data.get("path"):
                raise SentimentDataError(
                    "config key 'sentiment.data.path' must name a folder when "
                    "sentiment.data.source is 'local'."
                )
            folder, names = Path(data["path"]), data["splits"]
        files = find_split_files(folder, names)
        raw = {}
        for split, path in files.items():
            if LOCAL_FORMATS[path.suffix] == "json":
                raw[split], lines[split] = read_json_rows(path, text_column, label_column)
            else:
                raw[split] = load_with_datasets(path)
        origin = {split: f"file {path}" for split, path in files.items()}
    splits = datasets.DatasetDict(
        {
            split: check_split(
                raw[split], text_column, label_column, origin[split], label_names, lines[split]
            )
            for split in SPLITS
        }
    )
    check_classes(splits, origin, label_names)
    return splits


def check_text_file(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of every non-blank line of `path`, decoded as UTF-8.

    Lines are split on b"\n" only: review texts may hold U+0085 or U+2028, which
    `str.splitlines()` would treat as line ends. A UTF-8 byte order mark is dropped.
    """
    found = []
    with path.open("rb") as handle:
        # iterating a binary file splits on b"\n" alone
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                # `datasets` would raise a bare UnicodeDecodeError with a position in its chunk
                raise SentimentDataError(
                    f"file {path} line {number}: not valid UTF-8 (byte "
                    f"0x{raw[error.start]:02x} at position {error.start + 1} of the line); "
                    "save the file as UTF-8."
                ) from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            if text.strip():
                found.append((number, text))
    return found


def read_json_rows(
    path: Path, text_column: str, label_column: str
) -> tuple[dict[str, list[Any]], list[int] | None]:
    """The columns of a JSON-lines file (one object per line, blank lines skipped) and each row's
    line number; a `.json` file may instead hold one JSON array of objects (rows then have no
    line numbers), as the `datasets` json builder accepts."""
    expected = f'expected one {{"{text_column}": ..., "{label_column}": ...}} per line'
    lines = check_text_file(path)
    if not lines:
        raise SentimentDataError(
            f"file {path} holds no reviews; expected one JSON object per line."
        )
    if path.suffix == ".json" and lines[0][1].lstrip().startswith("["):
        return _read_json_array(path, text_column, label_column), None
    rows, numbers = [], []
    for number, text in lines:
        try:
            # without its line end, so that an error at the end of the line has its column there
            row = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            raise SentimentDataError(
                f"file {path} line {number}: not a JSON object ({error.msg} at column "
                f"{error.colno}); {expected}."
            ) from None
        if not isinstance(row, dict):
            raise SentimentDataError(
                f"file {path} line {number}: not a JSON object (found {_json_kind(row)}); "
                f"{expected}."
            )
        rows.append(row)
        numbers.append(number)
    return _columns(rows), numbers


def _read_json_array(path: Path, text_column: str, label_column: str) -> dict[str, list[Any]]:
    expected = f'expected an array of {{"{text_column}": ..., "{label_column}": ...}} objects'
    # decoding again is safe: check_text_file has just accepted every line as UTF-8
    text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise SentimentDataError(
            f"file {path} line {error.lineno}: not valid JSON ({error.msg} at column "
            f"{error.colno}); {expected}."
        ) from None
    if not isinstance(rows, list) or not rows:
        raise SentimentDataError(f"file {path} holds no reviews; {expected}.")
    for row_number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise SentimentDataError(
                f"file {path} item {row_number}: not a JSON object (found {_json_kind(row)}); "
                f"{expected}."
            )
    return _columns(rows)


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows -> columns, in order of first appearance; a key a row lacks is None there (and then
    refused by `check_split` if it is the text or label column)."""
    names = list(dict.fromkeys(key for row in rows for key in row))
    return {name: [row.get(name) for row in rows] for name in names}


def load_with_datasets(path: Path) -> datasets.Dataset:
    """A CSV or Parquet split file through the `datasets` builders, errors named by file."""
    import datasets

    builder = LOCAL_FORMATS[path.suffix]
    options: dict[str, Any] = {}
    if builder == "csv":
        if not check_text_file(path):
            raise SentimentDataError(
                f"file {path} holds no reviews; expected a header line, then one review per row."
            )
        # only an empty cell is missing: pandas would otherwise read reviews such as "NA" or
        # "null" as missing values
        options = {"keep_default_na": False, "na_values": [""]}
    # the builders raise many error types: catch them all, name the file in one sentence
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as error:
        cause = error.__cause__ or error  # "An error occurred while generating the dataset"
        raise SentimentDataError(f"could not read sentiment split file {path}: {cause}") from error


def check_split(
    split: datasets.Dataset | dict[str, list[Any]],
    text_column: str,
    label_column: str,
    origin: str,
    label_names: list[str] | tuple[str, ...] = DEFAULT_LABEL_NAMES,
    lines: list[int] | None = None,
) -> datasets.Dataset:
    """Keep `text` and `label` only, renamed; refuse missing columns, empty texts and labels
    outside {0, 1}. `split` is a data set or columns by name; `lines` are the rows' line numbers
    in their file (JSON lines), named in messages instead of row numbers."""
    column_names = list(split.column_names) if hasattr(split, "column_names") else list(split)
    for column, key in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in column_names:
            found = ", ".join(column_names) or "no columns"
            raise SentimentDataError(
                f"{origin} has no column '{column}' (config key sentiment.data.{key}); "
                f"found: {found}."
            )
    texts, labels = list(split[text_column]), list(split[label_column])
    if len(texts) == 0:
        raise SentimentDataError(f"{origin} has no rows; every split needs at least one review.")

    def where(row: int) -> str:
        return f"{origin} line {lines[row]}" if lines is not None else f"{origin} row {row + 1}"

    for row, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise SentimentDataError(
                f"{where(row)} has an empty or missing text in column '{text_column}'."
            )
    expected = f"expected 0 ({label_names[0]}) or 1 ({label_names[1]})"
    for row, label in enumerate(labels):
        # a missing key or JSON null is None; pandas gives NaN for an empty CSV cell
        if label is None or (isinstance(label, float) and label != label):
            raise SentimentDataError(
                f"{where(row)} has no label in column '{label_column}'; {expected}."
            )
        if isinstance(label, bool) or label not in LABELS:
            raise SentimentDataError(
                f"{where(row)} has label {label!r} in column '{label_column}'; {expected}."
            )
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.Value("int64")}
    )
    return datasets.Dataset.from_dict(
        {"text": list(texts), "label": [int(label) for label in labels]}, features=features
    )


def check_classes(
    splits: datasets.DatasetDict, origin: dict[str, str], label_names: list[str]
) -> None:
    """Refuse a training split without both labels; warn about a one-label validation or test
    split (see `load_splits` for why)."""
    for split in SPLITS:
        present = sorted(set(splits[split]["label"]))
        if len(present) == len(LABELS):
            continue
        only = f"label {present[0]} ({label_names[present[0]]})"
        if split == "train":
            raise SentimentDataError(
                f"the training split, {origin[split]}, has only {only}; the SVM and fine-tuning "
                f"need both labels, 0 ({label_names[0]}) and 1 ({label_names[1]})."
            )
        log.warning(
            "the %s split, %s, has only %s: its precision, recall and F1 of label 1 are "
            "degenerate (0 where undefined); accuracy is still meaningful",
            split,
            origin[split],
            only,
        )


def data_hash(splits: datasets.DatasetDict) -> str:
    """Hash of every split's texts and labels, in order: caches record it to refuse other data."""
    digest = hashlib.sha256()
    for split in SPLITS:
        digest.update(f"\x00{split}\x00".encode())
        for text, label in zip(
            list(splits[split]["text"]), list(splits[split]["label"]), strict=True
        ):
            digest.update(f"{label}\t{text}\x1e".encode())
    return digest.hexdigest()[:16]
