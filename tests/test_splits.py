"""Patient-disjoint splits (property test over many seeds) and the official NIH lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import NIH_SAMPLE, PATHOLOGIES
from hypothesis import given, settings
from hypothesis import strategies as st

from probelab.cohort import CohortError, build_index
from probelab.splits import make_split, official_split, random_split, read_split

FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def synthetic_index(n_patients: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per_patient = rng.geometric(0.4, size=n_patients)  # many single-visit, a few long follow-ups
    patients = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    return pd.DataFrame(
        {"image_id": [f"img{i}" for i in range(len(patients))], "patient_id": patients}
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_patients=st.integers(60, 400))
def test_random_split_is_patient_disjoint_and_complete(seed, n_patients):
    index = synthetic_index(n_patients, seed)
    split = random_split(index, FRACTIONS, seed)
    assert split["image_id"].tolist() == index["image_id"].tolist()
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    assert set(split["split"]) == {"train", "val", "test"}


def test_random_split_fractions_and_determinism():
    index = synthetic_index(2000, 0)
    a, b = random_split(index, FRACTIONS, 3), random_split(index, FRACTIONS, 3)
    pd.testing.assert_frame_equal(a, b)
    shares = a["split"].value_counts(normalize=True)
    for name, fraction in FRACTIONS.items():
        assert shares[name] == pytest.approx(fraction, abs=0.02)
    assert not random_split(index, FRACTIONS, 4).equals(a)


def test_official_split_uses_lists_and_carves_val_by_patient(nih_cohort):
    index, _ = build_index(nih_cohort, PATHOLOGIES)
    split = official_split(
        index, nih_cohort / "train_val_list.txt", nih_cohort / "test_list.txt", 0.25, 0
    )
    test_ids = set((nih_cohort / "test_list.txt").read_text().split())
    assert set(split.loc[split["split"] == "test", "image_id"]) == test_ids & set(index["image_id"])
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    assert {"train", "val"} <= set(split["split"])


def test_make_split_writes_the_file_read_split_reads(nih_cohort, tmp_path):
    index, _ = build_index(nih_cohort, PATHOLOGIES)
    index.to_parquet(tmp_path / "index.parquet")
    split = {"method": "official", "val_fraction": 0.2, "seed": 1}
    data = {
        "root": str(nih_cohort),
        "train_val_list": "train_val_list.txt",
        "test_list": "test_list.txt",
    }
    written = make_split(tmp_path / "index.parquet", tmp_path / "split.parquet", split, data)
    expected = official_split(
        index, nih_cohort / "train_val_list.txt", nih_cohort / "test_list.txt", 0.2, 1
    )
    pd.testing.assert_frame_equal(written, expected)
    assert read_split(tmp_path / "split.parquet") == {
        name: expected.loc[expected["split"] == name, "image_id"].tolist()
        for name in ("train", "val", "test")
    }


def test_official_split_refuses_unlisted_image(nih_cohort):
    index, _ = build_index(nih_cohort, PATHOLOGIES)
    lines = (nih_cohort / "test_list.txt").read_text().split()
    (nih_cohort / "test_list.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(CohortError, match=f"image '{lines[0]}' .* is in neither"):
        official_split(
            index, nih_cohort / "train_val_list.txt", nih_cohort / "test_list.txt", 0.2, 0
        )


def test_official_split_refuses_patient_in_both_lists(nih_cohort):
    index, _ = build_index(nih_cohort, PATHOLOGIES)
    train_val = (nih_cohort / "train_val_list.txt").read_text().split()
    test = (nih_cohort / "test_list.txt").read_text().split()
    (nih_cohort / "train_val_list.txt").write_text("\n".join(train_val[1:]) + "\n")
    (nih_cohort / "test_list.txt").write_text("\n".join(test + train_val[:1]) + "\n")
    with pytest.raises(CohortError, match="has images in both"):
        official_split(
            index, nih_cohort / "train_val_list.txt", nih_cohort / "test_list.txt", 0.2, 0
        )


def test_empty_split_is_reported():
    index = synthetic_index(2, 0)
    with pytest.raises(CohortError, match="split is empty"):
        random_split(index, FRACTIONS, 0)


@pytest.mark.shared_data
@pytest.mark.skipif(not NIH_SAMPLE.is_dir(), reason="../shared/data/nih_cxr14_sample is absent")
def test_real_nih_sample_official_split():
    index, _ = build_index(NIH_SAMPLE, ["Cardiomegaly", "Effusion"])
    split = official_split(
        index, NIH_SAMPLE / "train_val_list.txt", NIH_SAMPLE / "test_list.txt", 0.125, 0
    )
    official_test = set((NIH_SAMPLE / "test_list.txt").read_text().split())
    assert len(split) == 207
    assert set(split.loc[split["split"] == "test", "image_id"]) == official_test & set(
        index["image_id"]
    )
    assert split.groupby("patient_id")["split"].nunique().max() == 1
