"""Balanced subsets: exact size, determinism, balance towards rare pathologies, size errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probelab.cohort import CohortError
from probelab.subsets import balanced_subset, read_subset, write_subsets

PATHOLOGIES = ["Common", "Medium", "Rare"]


def imbalanced_train(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.random(n) < p for p in (0.30, 0.08, 0.01)], axis=1).astype(np.int8)
    frame = pd.DataFrame(labels, columns=PATHOLOGIES)
    frame.insert(0, "image_id", [f"i{i:05d}" for i in range(n)])
    return frame


@pytest.mark.parametrize("n", [1, 10, 100, 600])
def test_exact_size_unique_and_from_train(n):
    train = imbalanced_train()
    ids = balanced_subset(train, PATHOLOGIES, n, seed=0)
    assert len(ids) == n == len(set(ids)) and set(ids) <= set(train["image_id"])
    assert ids == sorted(ids)


def test_deterministic_by_seed():
    train = imbalanced_train()
    assert balanced_subset(train, PATHOLOGIES, 100, 1) == balanced_subset(
        train, PATHOLOGIES, 100, 1
    )
    assert balanced_subset(train, PATHOLOGIES, 100, 1) != balanced_subset(
        train, PATHOLOGIES, 100, 2
    )


def test_balances_rare_pathologies_and_no_finding_share():
    train = imbalanced_train()
    ids = balanced_subset(train, PATHOLOGIES, 150, seed=0, no_finding_share=0.2)
    picked = train.set_index("image_id").loc[ids, PATHOLOGIES]
    rare_total = int(train["Rare"].sum())
    assert picked["Rare"].sum() == min(rare_total, 40)  # every rare positive, up to its share
    assert picked["Medium"].sum() >= 40  # a random 150 would hold about 12
    assert (picked.sum(axis=1) == 0).sum() == pytest.approx(30, abs=1)


def test_all_is_the_whole_training_split():
    train = imbalanced_train(50)
    assert balanced_subset(train, PATHOLOGIES, "all", 0) == sorted(train["image_id"])


def test_size_larger_than_training_split():
    with pytest.raises(
        CohortError,
        match=r"subset size 51 \(config key 'subsets.sizes'\) does not fit the training split "
        r"\(50 images\)",
    ):
        balanced_subset(imbalanced_train(50), PATHOLOGIES, 51, 0)


def test_written_subset_reads_back_and_a_size_may_come_as_text(tmp_path: Path) -> None:
    train = imbalanced_train(200)
    index = pd.concat(
        [train, imbalanced_train(50, seed=1).assign(image_id=lambda t: "v" + t["image_id"])]
    )
    index.to_parquet(tmp_path / "index.parquet")
    split = ["train"] * 200 + ["val"] * 50
    pd.DataFrame({"image_id": index["image_id"], "split": split}).to_parquet(
        tmp_path / "split.parquet"
    )
    out = tmp_path / "subsets" / "n20" / "seed3.txt"
    ids = write_subsets(
        tmp_path / "index.parquet", tmp_path / "split.parquet", PATHOLOGIES, "20", 3, out, 0.2
    )
    assert ids == balanced_subset(train, PATHOLOGIES, 20, 3, 0.2)
    assert read_subset(out, set(train["image_id"])) == ids
    with pytest.raises(ValueError, match=r"image 'i\d+' is not in the train split"):
        read_subset(out, set(ids[1:]))
