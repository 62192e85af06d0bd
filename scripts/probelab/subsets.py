"""Balanced training subsets of a given size, and their files (one image id per line).

Algorithm (deterministic for a given seed and size):
1. Reserve `round(n * no_finding_share)` places for images without any pathology; the rest is the
   budget for images with at least one finding.
2. Visit pathologies from the rarest to the most common in the training split. Each gets an equal
   share of the remaining budget (budget / pathologies still to visit). Positives already picked
   for earlier pathologies count towards its share (findings co-occur); the shortfall is filled
   with its not-yet-picked positives in seeded random order. A pathology with fewer positives
   than its share takes them all, and what it leaves over goes to the pathologies after it.
3. Places of the finding budget still free (findings co-occur, so shares overlap) go to random
   images with findings; then the No Finding places go to random images without findings.
4. If either pool ran dry, fill the remaining places with random images of any kind, so the
   subset always has exactly n images.
Rare pathologies are therefore over-represented as far as the data allows, never duplicated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from probelab.cohort import CohortError, label_matrix
from probelab.io import write_text

log = logging.getLogger(__name__)


def balanced_subset(
    train: pd.DataFrame,
    pathologies: list[str],
    n: int | str,
    seed: int,
    no_finding_share: float = 0.2,
) -> list[str]:
    """Return the sorted image ids of a balanced subset of `train` (columns image_id + labels)."""
    ids = train["image_id"].to_numpy()
    check_sizes([n], len(train))
    if n == "all":
        return sorted(ids.tolist())
    n = int(n)
    rng = np.random.default_rng([seed, n])
    labels = train[pathologies].to_numpy(dtype=bool)
    has_finding = labels.any(axis=1)
    chosen = np.zeros(len(train), dtype=bool)

    no_finding_places = int(round(n * no_finding_share))
    budget = n - no_finding_places
    counts = labels.sum(axis=0)
    order = [j for j in np.argsort(counts, kind="stable") if counts[j] > 0]
    for visited, j in enumerate(order):
        remaining = budget - int(chosen.sum())
        if remaining <= 0:
            break
        share = remaining // (len(order) - visited) or 1
        have = int((chosen & labels[:, j]).sum())
        candidates = np.flatnonzero(labels[:, j] & ~chosen)
        take = rng.permutation(candidates)[: max(0, min(share - have, remaining))]
        chosen[take] = True

    _fill(chosen, has_finding & ~chosen, budget - int(chosen.sum()), rng)
    _fill(chosen, ~has_finding & ~chosen, n - int(chosen.sum()), rng)
    _fill(chosen, ~chosen, n - int(chosen.sum()), rng)
    return sorted(ids[chosen].tolist())


def check_sizes(sizes: list[int | str], n_train: int) -> None:
    """Refuse subset sizes that the training split cannot provide."""
    for n in sizes:
        if n != "all" and not 1 <= int(n) <= n_train:
            raise CohortError(
                f"subset size {n} (config key 'subsets.sizes') does not fit the training split "
                f"({n_train} images); use 'all' or a size from 1 to {n_train}."
            )


def _fill(chosen: np.ndarray, pool: np.ndarray, k: int, rng: np.random.Generator) -> None:
    if k > 0:
        chosen[rng.permutation(np.flatnonzero(pool))[:k]] = True


def write_subsets(
    index_path: Path,
    split_path: Path,
    pathologies: list[str],
    n: int | str,
    seed: int,
    out: Path,
    no_finding_share: float,
) -> list[str]:
    """Write the balanced subset of size `n` (a number, also as text, or "all") for `seed`, one
    image id per line."""
    index = pd.read_parquet(index_path)
    split = pd.read_parquet(split_path, columns=["image_id", "split"])
    train_ids = split.loc[split["split"] == "train", "image_id"]
    train = index[index["image_id"].isin(train_ids)]
    train = pd.concat([train[["image_id"]], label_matrix(train, pathologies)], axis=1)
    ids = balanced_subset(train, pathologies, n, seed, no_finding_share)
    write_text(out, "\n".join(ids) + "\n")
    positives = train.set_index("image_id").loc[ids, pathologies].sum()
    log.info(
        "n=%s seed=%d: %d images; positives per pathology: %s",
        n,
        seed,
        len(ids),
        positives.to_dict(),
    )
    return ids


def read_subset(path: Path, train_ids: set[str]) -> list[str]:
    """The training image ids of a subset file, refusing an empty file or an id outside the train
    split."""
    ids = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(
            f"subset file {path} lists no image ids; expected one training image id per line."
        )
    outside = [i for i in ids if i not in train_ids]
    if outside:
        raise ValueError(
            f"subset file {path}: image {outside[0]!r} is not in the train split "
            f"({len(outside)} such ids); rebuild the subsets."
        )
    return ids
