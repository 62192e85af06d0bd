"""Training subsets of a given size, their files (one image id per line), and their label mix.

Two sampling policies (config key subsets.policy), each applied at every size:

- `balanced` (`balanced_subset`): rare pathologies over-represented and a fixed share of images
  labelled as having no finding. The size `all` is the whole training split and so keeps the
  natural mix: on a learning curve its point differs in class balance as well as in size (the
  figure marks it).
- `stratified` (`stratified_subset`): the natural mix at every size, drawn within strata of
  label patterns, so that every point of a learning curve shares the mix of `all`.

Each subset file gets a mix file beside it (`mix_path`: same name, .json) with its all-negative
share (images positive for no configured pathology, whatever else they show), its no-finding share
(images labelled as having no finding, what the balanced policy reserves places for) and
prevalences, which the report reads to say which points of a curve differ in mix.

Balanced algorithm (deterministic for a given seed and size):
1. Reserve `round(n * no_finding_share)` places for images labelled as having no finding (see
   below); the rest is the budget for images with at least one finding.
2. Visit pathologies from the rarest to the most common in the training split. Each gets an equal
   share of the remaining budget (budget / pathologies still to visit). Positives already picked
   for earlier pathologies count towards its share (findings co-occur); the shortfall is filled
   with its not-yet-picked positives in seeded random order. A pathology with fewer positives
   than its share takes them all, and what it leaves over goes to the pathologies after it.
3. Places of the finding budget still free (findings co-occur, so shares overlap) go to random
   images with findings; then the no-finding places go to random images labelled no finding.
4. If either pool ran dry, fill the remaining places with random images of any kind, so the
   subset always has exactly n images.
Rare pathologies are therefore over-represented as far as the data allows, never duplicated.

Labels the index does not observe (NaN, probelab.masking) count as neither positive nor negative:
every count above is of observed positives. The no-finding places go to images labelled as having
no finding: the index's `no_finding` column (1) when it has one, since an image negative for every
configured pathology may well show other findings; an older index without the column falls back to
images whose configured labels are all observed and 0.

Stratified algorithm: images are grouped by their label pattern (the set of pathologies they
show; no finding is one pattern); each pattern gets round(n x its share of the training split)
places, the rounding remainders going to the patterns with the largest fractional parts (ties in
seeded random order), and its places are filled with its images in seeded random order. Every
pattern is represented to within one image of its share, so the no-finding share and each
pathology's prevalence equal the training split's up to rounding. A pattern is the set of observed
positives (a NaN label is not shown), and, where the index has a `no_finding` column, that flag.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from probelab.cohort import CohortError, label_matrix
from probelab.io import write_json, write_text
from probelab.masking import negatives as negative_labels
from probelab.masking import positives as positive_labels

log = logging.getLogger(__name__)

POLICIES = ("balanced", "stratified")
# The index column that says an image is labelled as having no finding at all (int8 0/1).
NO_FINDING = "no_finding"


def positive_matrix(table: pd.DataFrame, pathologies: list[str]) -> np.ndarray:
    """Observed positives (N x P, bool) of the label columns; NaN (not observed) is not one."""
    return positive_labels(table[pathologies].to_numpy(dtype=np.float64, na_value=np.nan))


def no_finding_rows(table: pd.DataFrame, pathologies: list[str]) -> np.ndarray:
    """The images labelled as having no finding (bool, N): `no_finding` == 1 where the table has
    that column; otherwise (an index written before it) those whose configured labels are all
    observed and 0."""
    if NO_FINDING in table.columns:
        return table[NO_FINDING].to_numpy(dtype=np.float64, na_value=np.nan) == 1
    values = table[pathologies].to_numpy(dtype=np.float64, na_value=np.nan)
    return negative_labels(values).all(axis=1)


def balanced_subset(
    train: pd.DataFrame,
    pathologies: list[str],
    n: int | str,
    seed: int,
    no_finding_share: float = 0.2,
) -> list[str]:
    """Return the sorted image ids of a balanced subset of `train` (columns image_id + labels,
    and `no_finding` where the index has it)."""
    ids = train["image_id"].to_numpy()
    check_sizes([n], len(train))
    if n == "all":
        return sorted(ids.tolist())
    n = int(n)
    rng = np.random.default_rng([seed, n])
    labels = positive_matrix(train, pathologies)
    has_finding = labels.any(axis=1)
    no_finding = no_finding_rows(train, pathologies)
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
    _fill(chosen, no_finding & ~chosen, n - int(chosen.sum()), rng)
    _fill(chosen, ~chosen, n - int(chosen.sum()), rng)
    return sorted(ids[chosen].tolist())


def stratified_subset(
    train: pd.DataFrame, pathologies: list[str], n: int | str, seed: int
) -> list[str]:
    """Return the sorted image ids of a natural-mix subset of `train` (columns image_id + labels,
    and `no_finding` where the index has it): proportional allocation over label patterns,
    largest remainders first."""
    ids = train["image_id"].to_numpy()
    check_sizes([n], len(train))
    if n == "all":
        return sorted(ids.tolist())
    n = int(n)
    rng = np.random.default_rng([seed, n, 1])
    labels = positive_matrix(train, pathologies)
    if NO_FINDING in train.columns:
        labels = np.column_stack([labels, no_finding_rows(train, pathologies)])
    _, pattern = np.unique(labels, axis=0, return_inverse=True)
    pattern = pattern.reshape(-1)
    counts = np.bincount(pattern)
    quota = n * counts / len(train)
    places = np.floor(quota).astype(int)
    remainder = quota - places
    # largest remainders first, ties in seeded random order
    tie_break = rng.permutation(len(counts))
    order = np.lexsort((tie_break, -remainder))
    places[order[: n - int(places.sum())]] += 1
    chosen = np.zeros(len(train), dtype=bool)
    for k in np.flatnonzero(places):
        members = np.flatnonzero(pattern == k)
        chosen[rng.permutation(members)[: places[k]]] = True
    return sorted(ids[chosen].tolist())


def choose_subset(
    train: pd.DataFrame,
    pathologies: list[str],
    n: int | str,
    seed: int,
    policy: str = "balanced",
    no_finding_share: float = 0.2,
) -> list[str]:
    """The subset of size `n` for `seed` under the sampling policy (see the module docstring)."""
    if policy == "balanced":
        return balanced_subset(train, pathologies, n, seed, no_finding_share)
    if policy == "stratified":
        return stratified_subset(train, pathologies, n, seed)
    raise ValueError(
        f"config key 'subsets.policy' is {policy!r}; expected one of {', '.join(POLICIES)}."
    )


def mix_kind(policy: str, n: int | str) -> str:
    """The mix a subset is drawn with: "natural" (stratified, and the whole split `all`) or
    "balanced"."""
    return "natural" if policy == "stratified" or str(n) == "all" else "balanced"


def subset_mix(
    labels: pd.DataFrame, pathologies: list[str], n: int | str, seed: int, policy: str
) -> dict[str, object]:
    """The label mix of a subset (its rows of the label matrix, with `no_finding` where the index
    has it): images; the all-negative images (no observed positive of any configured pathology:
    the negatives of every head, including images whose findings are all unconfigured) and their
    share; the images labelled as having no finding (`no_finding_rows`, the places the balanced
    policy reserves) and their share; each pathology's prevalence among the images that observe
    its label (0 where none does) and the mean prevalence."""
    values = labels[pathologies].to_numpy(dtype=np.float64, na_value=np.nan)
    size = len(values)
    counts = (~np.isnan(values)).sum(axis=0)
    positive = positive_labels(values)
    prevalence = positive.sum(axis=0) / np.maximum(counts, 1)
    all_negative = int((~positive.any(axis=1)).sum())
    no_finding = int(no_finding_rows(labels, pathologies).sum())
    return {
        "n": str(n),
        "seed": int(seed),
        "policy": policy,
        "mix": mix_kind(policy, n),
        "n_images": size,
        "all_negative": all_negative,
        "all_negative_share": all_negative / size if size else 0.0,
        "no_finding": no_finding,
        "no_finding_share": no_finding / size if size else 0.0,
        "mean_prevalence": float(prevalence.mean()) if len(pathologies) else 0.0,
        "prevalence": {p: float(v) for p, v in zip(pathologies, prevalence, strict=True)},
    }


def mix_path(subset_path: str | Path) -> Path:
    """The mix file of a subset file: the same name with .json."""
    return Path(subset_path).with_suffix(".json")


def read_mix(subset_path: str | Path) -> dict[str, object] | None:
    """The mix file beside a subset file, or None where there is none (subsets written before
    mix files existed)."""
    path = mix_path(subset_path)
    if not path.exists():
        return None
    return json.loads(path.read_text())


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
    policy: str = "balanced",
    mix_out: Path | None = None,
) -> list[str]:
    """Write the subset of size `n` (a number, also as text, or "all") for `seed` under the
    sampling policy, one image id per line, and its mix file (default: beside it, .json)."""
    index = pd.read_parquet(index_path)
    split = pd.read_parquet(split_path, columns=["image_id", "split"])
    train_ids = split.loc[split["split"] == "train", "image_id"]
    train = index[index["image_id"].isin(train_ids)]
    extra = [NO_FINDING] if NO_FINDING in train.columns and NO_FINDING not in pathologies else []
    train = pd.concat([train[["image_id"]], label_matrix(train, pathologies), train[extra]], axis=1)
    ids = choose_subset(train, pathologies, n, seed, policy, no_finding_share)
    picked = train.set_index("image_id").loc[ids, [*pathologies, *extra]]
    mix = subset_mix(picked, pathologies, n, seed, policy)
    write_json(mix_out or mix_path(out), mix)
    write_text(out, "\n".join(ids) + "\n")
    log.info(
        "n=%s seed=%d policy=%s: %d images, all-negative share %.3f, no-finding share %.3f, "
        "mean prevalence %.3f; positives per pathology: %s",
        n,
        seed,
        policy,
        len(ids),
        mix["all_negative_share"],
        mix["no_finding_share"],
        mix["mean_prevalence"],
        dict(zip(pathologies, positive_matrix(picked, pathologies).sum(0).tolist(), strict=True)),
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


def job_minutes(runtime: int | dict[str, float], subset_files: list[str | Path]) -> int:
    """The wall-clock limit in minutes of a training job whose runs train on `subset_files` (one
    per run): `training.runtime` as a number, or {base, per_1000_images} = base plus the per-1,000
    figure times the training images of all the job's runs (a subset file lists one image per
    line, so n = all counts the real train split)."""
    if isinstance(runtime, int):
        return runtime
    # several runs of a job (its models) may train on one subset: read each file once
    runs = Counter(str(path) for path in subset_files)
    images = sum(
        count * sum(1 for line in Path(path).read_text().splitlines() if line.strip())
        for path, count in runs.items()
    )
    return math.ceil(runtime["base"] + runtime["per_1000_images"] * images / 1000)
