"""Training subsets: exact size, determinism, balance towards rare pathologies (balanced) or the
natural mix (stratified) at every size, the mix file beside each subset, size errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probelab.cohort import CohortError
from probelab.subsets import (
    balanced_subset,
    choose_subset,
    mix_path,
    read_mix,
    read_subset,
    stratified_subset,
    subset_mix,
    write_subsets,
)

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


@pytest.mark.parametrize("n", [1, 7, 100, 600])
def test_stratified_subset_keeps_the_natural_mix_at_every_size(n):
    train = imbalanced_train()
    ids = stratified_subset(train, PATHOLOGIES, n, seed=0)
    assert len(ids) == n == len(set(ids)) and set(ids) <= set(train["image_id"])
    assert ids == sorted(ids)
    labels = train[PATHOLOGIES].to_numpy(dtype=bool)
    patterns, counts = np.unique(labels, axis=0, return_counts=True)
    picked = train.set_index("image_id").loc[ids, PATHOLOGIES].to_numpy(dtype=bool)
    for pattern, count in zip(patterns, counts, strict=True):
        # every label pattern within one image of its share of the training split
        got = (picked == pattern).all(axis=1).sum()
        assert abs(got - n * count / len(train)) < 1, (pattern, got)
    natural = subset_mix(train, PATHOLOGIES, "all", 0, "stratified")
    mix = subset_mix(train.set_index("image_id").loc[ids], PATHOLOGIES, n, 0, "stratified")
    if n >= 100:
        assert mix["no_finding_share"] == pytest.approx(natural["no_finding_share"], abs=0.01)
        assert mix["mean_prevalence"] == pytest.approx(natural["mean_prevalence"], rel=0.1)
    assert stratified_subset(train, PATHOLOGIES, n, 0) == ids
    assert n < 7 or stratified_subset(train, PATHOLOGIES, n, 1) != ids


def test_the_policy_is_applied_at_every_size_and_all_keeps_the_natural_mix():
    """balanced: 20 % no-finding at every size but `all`, whose mix is the natural one (the
    learning curve marks it); stratified: the natural mix at every size, so all points agree."""
    train = imbalanced_train()
    natural = subset_mix(train, PATHOLOGIES, "all", 0, "balanced")
    assert natural["mix"] == "natural" and natural["no_finding_share"] > 0.6
    shares = {}
    for policy in ("balanced", "stratified"):
        for n in (50, 150, 600, "all"):
            ids = choose_subset(train, PATHOLOGIES, n, 0, policy, 0.2)
            picked = train.set_index("image_id").loc[ids]
            shares[policy, n] = subset_mix(picked, PATHOLOGIES, n, 0, policy)
    for n in (50, 150, 600):
        assert shares["balanced", n]["mix"] == "balanced"
        assert shares["balanced", n]["no_finding_share"] == pytest.approx(0.2, abs=0.01)
        assert shares["balanced", n]["mean_prevalence"] > 2 * natural["mean_prevalence"]
        assert shares["stratified", n]["mix"] == "natural"
        assert shares["stratified", n]["no_finding_share"] == pytest.approx(
            natural["no_finding_share"], abs=0.01
        )
    for policy in ("balanced", "stratified"):
        assert shares[policy, "all"]["no_finding_share"] == natural["no_finding_share"]
    with pytest.raises(ValueError, match="config key 'subsets.policy' is 'random'"):
        choose_subset(train, PATHOLOGIES, 10, 0, "random")


def test_the_subset_rule_writes_the_mix_beside_the_subset(tmp_path: Path) -> None:
    train = imbalanced_train(300)
    train.to_parquet(tmp_path / "index.parquet")
    pd.DataFrame({"image_id": train["image_id"], "split": "train"}).to_parquet(
        tmp_path / "split.parquet"
    )
    out = tmp_path / "subsets" / "n40" / "seed2.txt"
    ids = write_subsets(
        tmp_path / "index.parquet",
        tmp_path / "split.parquet",
        PATHOLOGIES,
        "40",
        2,
        out,
        0.2,
        "stratified",
    )
    assert ids == stratified_subset(train, PATHOLOGIES, 40, 2)
    mix = read_mix(out)
    assert mix_path(out) == tmp_path / "subsets" / "n40" / "seed2.json"
    picked = train.set_index("image_id").loc[ids, PATHOLOGIES]
    assert mix["policy"] == "stratified" and mix["mix"] == "natural" and mix["n_images"] == 40
    assert mix["no_finding"] == int((picked.sum(axis=1) == 0).sum())
    assert mix["prevalence"] == pytest.approx(picked.mean().to_dict())
    assert mix["mean_prevalence"] == pytest.approx(picked.to_numpy().mean())
    assert read_mix(tmp_path / "subsets" / "n40" / "seed9.txt") is None
