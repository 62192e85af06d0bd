"""Loading the review splits (hub id, local folder or the generated demo) and checking them.

Every split comes back as a `datasets.Dataset` with exactly two columns, `text` (str) and
`label` (int 0/1), whatever the source's column names were.
"""

from __future__ import annotations

import hashlib
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
    """
    import datasets

    text_column, label_column = data["text_column"], data["label_column"]
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
        raw = {split: loaded[data["splits"][split]] for split in SPLITS}
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
        builder = LOCAL_FORMATS[next(iter(files.values())).suffix]
        raw = {}
        for split, path in files.items():
            # the builders raise many error types: catch them all, name the file in one sentence
            try:
                raw[split] = datasets.load_dataset(builder, data_files=str(path), split="train")
            except Exception as error:
                raise SentimentDataError(
                    f"could not read sentiment split file {path}: {error}"
                ) from error
        origin = {split: f"file {path}" for split, path in files.items()}
    return datasets.DatasetDict(
        {
            split: check_split(raw[split], text_column, label_column, origin[split])
            for split in SPLITS
        }
    )


def check_split(
    split: datasets.Dataset, text_column: str, label_column: str, origin: str
) -> datasets.Dataset:
    """Keep `text` and `label` only, renamed; refuse missing columns, empty texts and labels
    outside {0, 1}."""
    for column, key in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in split.column_names:
            raise SentimentDataError(
                f"{origin} has no column '{column}' (config key sentiment.data.{key}); "
                f"found: {', '.join(split.column_names)}."
            )
    if len(split) == 0:
        raise SentimentDataError(f"{origin} has no rows; every split needs at least one review.")
    texts, labels = list(split[text_column]), list(split[label_column])
    for row, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise SentimentDataError(
                f"{origin} row {row + 1} has an empty or missing text in column '{text_column}'."
            )
    for row, label in enumerate(labels):
        if isinstance(label, bool) or label not in LABELS:
            raise SentimentDataError(
                f"{origin} row {row + 1} has label {label!r} in column '{label_column}'; "
                "expected 0 (negative) or 1 (positive)."
            )
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.Value("int64")}
    )
    return datasets.Dataset.from_dict(
        {"text": list(texts), "label": [int(label) for label in labels]}, features=features
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
