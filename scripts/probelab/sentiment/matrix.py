"""The sentiment track's experiment matrix: training sizes x seeds x methods (x pooling).

Every method is trained per cell (size, seed) on the same stratified subset of the training
split, drawn by index (`stratified_subset`): the frozen-feature methods read the subset's rows
from the features caches (the encoder runs once over every split; one cache per pooling),
fine-tuning trains on just those reviews. Subsets are nested: for one seed, each label's rows
are taken in one seeded order, and a size takes the first rows of each label, so the 100
reviews of seed 0 are among its 500. A size's label mix equals the training split's up to
rounding.

Hyperparameters are chosen per cell on train / validation only; the test split is handed out
once, for the chosen setting (`HeldOutTest`), in the style of the CXR track's LabelReader.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probelab.sentiment import SentimentDataError

FROZEN_METHODS = ("svm", "logreg")
METHODS = (*FROZEN_METHODS, "finetune")
POOLINGS = ("cls", "mean")
# The fine-tuned classifier pools with its own head (BERT's pooler over [CLS], DistilBERT's
# pre-classifier over [CLS]); the report shows this value in the pooling column.
HEAD_POOLING = "head"


def poolings(sentiment: dict[str, Any]) -> list[str]:
    """The configured poolings of the frozen features (`sentiment.features.pooling`: one name or a
    list), in config order."""
    value = sentiment["features"]["pooling"]
    names = [value] if isinstance(value, str) else list(value)
    unknown = [name for name in names if name not in POOLINGS]
    if unknown or not names:
        raise SentimentDataError(
            f"config key 'sentiment.features.pooling' names unknown pooling "
            f"'{unknown[0] if unknown else ''}'; expected {' or '.join(POOLINGS)}."
        )
    return names


def sizes(sentiment: dict[str, Any]) -> list[str]:
    """The matrix's training sizes as wildcard values ("100", "all"), in config order."""
    return [str(size) for size in sentiment["matrix"]["sizes"]]


def seeds(sentiment: dict[str, Any]) -> list[int]:
    return [int(seed) for seed in sentiment["matrix"]["seeds"]]


def cells(sentiment: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (size, seed) of the matrix, sizes outermost."""
    return [(size, seed) for size in sizes(sentiment) for seed in seeds(sentiment)]


def methods(sentiment: dict[str, Any]) -> list[str]:
    return [method for method in METHODS if method in sentiment["methods"]]


def reference_setting(sentiment: dict[str, Any]) -> tuple[str, str]:
    """(method, pooling) that the report's paired comparisons are made against; it must be a
    configured frozen method and pooling."""
    reference = sentiment["reference"]
    method, pooling = reference["method"], reference["pooling"]
    if method not in methods(sentiment) or pooling not in poolings(sentiment):
        raise SentimentDataError(
            f"config key 'sentiment.reference' is {method} on {pooling}-pooled features, which "
            f"the config does not run (sentiment.methods: {', '.join(methods(sentiment))}; "
            f"sentiment.features.pooling: {', '.join(poolings(sentiment))})."
        )
    return method, pooling


def stratified_subset(labels: np.ndarray, size: str | int, seed: int, origin: str) -> np.ndarray:
    """Row indices (ascending) of a stratified subset of `size` rows ("all" = every row).

    Each label gets round(size x its share) rows, the rounding remainder going to the labels with
    the largest fractional parts; within a label, rows are taken in one seeded order, so subsets
    of one seed are nested across sizes. A size above the split's length is refused."""
    labels = np.asarray(labels, dtype=np.int64)
    if str(size) == "all":
        return np.arange(len(labels))
    n = int(size)
    if n > len(labels):
        raise SentimentDataError(
            f"config key 'sentiment.matrix.sizes' asks for {n} training reviews, but the "
            f"training split in {origin} has only {len(labels)}."
        )
    values, counts = np.unique(labels, return_counts=True)
    exact = n * counts / len(labels)
    taken = np.floor(exact).astype(int)
    remainder = n - int(taken.sum())
    for position in np.argsort(-(exact - taken), kind="stable")[:remainder]:
        taken[position] += 1
    rng = np.random.default_rng(seed)
    chosen = []
    for value, count in zip(values, taken, strict=True):
        rows = np.flatnonzero(labels == value)
        chosen.append(rows[rng.permutation(len(rows))[:count]])
    return np.sort(np.concatenate(chosen))


def subset_id(rows: np.ndarray) -> str:
    """A short fingerprint of a subset's row indices: equal across methods for one cell."""
    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Choice:
    """A setting chosen on validation: its index in the grid and the validation score of every
    grid point (what `HeldOutTest` asks to see before it hands out the test split)."""

    index: int
    scores: tuple[float, ...]
    metric: str


def choose(scores: list[float], metric: str) -> Choice:
    """The grid point with the best validation `metric` (loss minimised, other metrics
    maximised); ties go to the first in grid order."""
    values = np.asarray(scores, dtype=float)
    if len(values) == 0 or np.isnan(values).all():
        raise RuntimeError(f"no grid point has a validation {metric}; nothing to choose from.")
    values = np.where(np.isnan(values), np.inf if metric == "loss" else -np.inf, values)
    index = int(np.argmin(values) if metric == "loss" else np.argmax(values))
    return Choice(index, tuple(float(s) for s in scores), metric)


@dataclass
class HeldOutTest:
    """The test split of one cell, handed out once and only for a setting chosen on validation:
    code that tunes cannot read test labels by accident."""

    split: Any
    opened: bool = field(default=False, init=False)

    def for_choice(self, choice: Choice) -> Any:
        if not isinstance(choice, Choice):
            raise RuntimeError(
                "the test split is read only to evaluate a setting chosen on validation."
            )
        if self.opened:
            raise RuntimeError("the test split is evaluated once per cell; it was already read.")
        self.opened = True
        return self.split
