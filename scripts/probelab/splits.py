"""Patient-disjoint train / val / test splits, and the split file (split.parquet)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.cohort import CohortError
from probelab.io import write_parquet

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _assign_by_patient(
    images: pd.DataFrame, fractions: dict[str, float], rng: np.random.Generator
) -> pd.Series:
    """Shuffle patients, then cut the cumulative image count at the requested fractions.

    Cutting on images rather than patients keeps each split's share of images close to its
    fraction even when patients have very different numbers of follow-up images.
    """
    per_patient = images.groupby("patient_id", sort=True).size()
    order = rng.permutation(len(per_patient))
    patients = per_patient.index.to_numpy()[order]
    cumulative = np.cumsum(per_patient.to_numpy()[order]) / len(images)
    names = list(fractions)
    bounds = np.cumsum([fractions[n] for n in names])
    bounds[-1] = 1.0
    # A patient belongs to the first split whose boundary its first image falls before.
    starts = cumulative - per_patient.to_numpy()[order] / len(images)
    which = np.searchsorted(bounds, starts, side="right").clip(max=len(names) - 1)
    assignment = pd.Series(np.asarray(names)[which], index=patients)
    return images["patient_id"].map(assignment)


def random_split(index: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Patient-disjoint split of the index by image fractions (train, val, test)."""
    rng = np.random.default_rng(seed)
    split = _assign_by_patient(index, {s: fractions[s] for s in SPLITS}, rng)
    return _finish(index, split)


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise CohortError(
            f"official split list {path} does not exist "
            "(config keys 'data.train_val_list' / 'data.test_list')."
        )
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def official_split(
    index: pd.DataFrame, train_val_list: Path, test_list: Path, val_fraction: float, seed: int
) -> pd.DataFrame:
    """NIH's official lists; validation carved from train_val by patient."""
    train_val, test = _read_list(train_val_list), _read_list(test_list)
    in_test = index["image_id"].isin(test)
    in_train_val = index["image_id"].isin(train_val)
    unlisted = index.loc[~in_test & ~in_train_val, "image_id"]
    if not unlisted.empty:
        raise CohortError(
            f"image {unlisted.iloc[0]!r} (and {len(unlisted) - 1} more) is in neither "
            f"{train_val_list} nor {test_list}; the official lists must cover every indexed image."
        )
    leaked = set(index.loc[in_test, "patient_id"]) & set(index.loc[in_train_val, "patient_id"])
    if leaked:
        raise CohortError(
            f"patient {sorted(leaked)[0]!r} has images in both {train_val_list} and {test_list}; "
            "the official lists must be patient-disjoint."
        )
    split = pd.Series("test", index=index.index, dtype=object)
    rng = np.random.default_rng(seed)
    pool = index.loc[in_train_val]
    split.loc[pool.index] = _assign_by_patient(
        pool, {"train": 1 - val_fraction, "val": val_fraction}, rng
    )
    return _finish(index, split)


def _finish(index: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    out = pd.DataFrame(
        {"image_id": index["image_id"], "patient_id": index["patient_id"], "split": split}
    )
    empty = [s for s in SPLITS if not (out["split"] == s).any()]
    if empty:
        raise CohortError(
            f"the {empty[0]} split is empty ({len(index)} images of "
            f"{index['patient_id'].nunique()} patients); use more images or change config key "
            "'split'."
        )
    return out.reset_index(drop=True)


def make_split(
    index_path: Path, out: Path, split: dict[str, Any], data: dict[str, Any]
) -> pd.DataFrame:
    """Split by the config's `split` section (random fractions or the official lists) and write
    the split file."""
    index = pd.read_parquet(index_path, columns=["image_id", "patient_id"])
    if split["method"] == "official":
        root = Path(data["root"])
        result = official_split(
            index,
            root / data["train_val_list"],
            root / data["test_list"],
            split["val_fraction"],
            split["seed"],
        )
    else:
        result = random_split(index, split["fractions"], split["seed"])
    write_parquet(out, result)
    for name, group in result.groupby("split"):
        log.info("%s: %d images, %d patients", name, len(group), group["patient_id"].nunique())
    return result


def read_split(path: Path) -> dict[str, list[str]]:
    """The image ids of each split ("train", "val", "test") of a split file."""
    table = pd.read_parquet(path, columns=["image_id", "split"])
    return {
        name: table.loc[table["split"] == name, "image_id"].astype(str).tolist() for name in SPLITS
    }
