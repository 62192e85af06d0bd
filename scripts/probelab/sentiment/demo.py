"""A generated movie-review set for the offline demo: labelled, with negations and mixed wording.

The reviews are built from templates whose polarity is not a bag-of-words property: negations flip
an adjective ("not convincing"), contrastive reviews carry the verdict in their second clause
("the acting is superb, but the plot is a mess" is negative), and a share of labels is flipped on
purpose, as real review labels are noisy. So a classifier must read word order to do well, and
no classifier reaches 100 %.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from probelab.io import write_text
from probelab.sentiment import SPLITS

log = logging.getLogger(__name__)

ASPECTS = [
    "acting",
    "plot",
    "script",
    "soundtrack",
    "camera work",
    "pacing",
    "dialogue",
    "ending",
    "cast",
    "direction",
    "humour",
    "story",
    "editing",
    "lead performance",
    "final act",
]
POSITIVE = [
    "superb",
    "moving",
    "clever",
    "gripping",
    "charming",
    "convincing",
    "beautiful",
    "sharp",
    "delightful",
    "memorable",
    "inventive",
    "heartfelt",
    "funny",
    "assured",
    "wonderful",
]
NEGATIVE = [
    "dull",
    "clumsy",
    "tedious",
    "flat",
    "forgettable",
    "predictable",
    "lifeless",
    "muddled",
    "awkward",
    "shallow",
    "tiresome",
    "bland",
    "sloppy",
    "unconvincing",
    "a mess",
]
INTENSIFIERS = ["", "", "really ", "quite ", "utterly ", "surprisingly ", "oddly "]
NEGATIONS = ["not", "never", "hardly", "far from"]
VERDICT_POSITIVE = ["worth seeing", "a small triumph", "easy to recommend", "a pleasure to watch"]
VERDICT_NEGATIVE = ["a waste of time", "hard to sit through", "best avoided", "a chore to watch"]
FILLER = [
    "it runs a little under two hours .",
    "it is the director's second feature .",
    "it opens in a small coastal town .",
    "the film is based on a novel .",
    "it was shot in black and white .",
    "",
    "",
]


# How often a clause is phrased through a negated adjective, and how often each review shape is
# drawn: plain, contrastive ("X, but Y"), concessive ("although X, Y"), reinforcing with a
# verdict, and a negated verdict. Most reviews are readable from their words; the rest need order.
NEGATED_SHARE = 0.25
SHAPE_WEIGHTS = (0.3, 0.15, 0.1, 0.3, 0.15)


def _clause(rng: random.Random, positive: bool) -> str:
    """One judgement about an aspect, sometimes phrased through a negated adjective."""
    aspect = rng.choice(ASPECTS)
    if rng.random() < NEGATED_SHARE:
        adjective = rng.choice(NEGATIVE if positive else POSITIVE)
        return f"the {aspect} is {rng.choice(NEGATIONS)} {adjective}"
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    return f"the {aspect} is {rng.choice(INTENSIFIERS)}{adjective}"


def review(rng: random.Random, positive: bool) -> str:
    """A review whose true polarity is `positive`, in one of several shapes."""
    shape = rng.choices(range(len(SHAPE_WEIGHTS)), weights=SHAPE_WEIGHTS)[0]
    if shape == 0:
        body = f"{_clause(rng, positive)} ."
    elif shape == 1:
        body = f"{_clause(rng, not positive)} , but {_clause(rng, positive)} ."
    elif shape == 2:
        body = f"although {_clause(rng, not positive)} , {_clause(rng, positive)} ."
    elif shape == 3:
        verdict = rng.choice(VERDICT_POSITIVE if positive else VERDICT_NEGATIVE)
        body = f"{_clause(rng, positive)} and {_clause(rng, positive)} ; {verdict} ."
    else:
        # "not ... a waste of time" style: a negated verdict of the opposite polarity
        verdict = rng.choice(VERDICT_NEGATIVE if positive else VERDICT_POSITIVE)
        body = f"{_clause(rng, not positive)} , yet the film is {rng.choice(NEGATIONS)} {verdict} ."
    filler = rng.choice(FILLER)
    return f"{filler} {body}".strip() if rng.random() < 0.5 else f"{body} {filler}".strip()


def generate_reviews(n_reviews: int, label_noise: float, seed: int) -> list[dict[str, Any]]:
    """`n_reviews` balanced reviews (label 1 = positive) with a `label_noise` share flipped."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_reviews):
        positive = i % 2 == 0
        label = int(positive) if rng.random() >= label_noise else int(not positive)
        rows.append({"text": review(rng, positive), "label": label})
    rng.shuffle(rows)
    return rows


def write_demo_reviews(
    folder: str | Path,
    n_reviews: int,
    validation_fraction: float,
    test_fraction: float,
    label_noise: float,
    seed: int,
) -> dict[str, int]:
    """Write train / validation / test JSON-lines files into `folder`; returns the split sizes."""
    rows = generate_reviews(n_reviews, label_noise, seed)
    n_validation = max(1, round(n_reviews * validation_fraction))
    n_test = max(1, round(n_reviews * test_fraction))
    bounds = {
        "validation": (0, n_validation),
        "test": (n_validation, n_validation + n_test),
        "train": (n_validation + n_test, n_reviews),
    }
    sizes = {}
    for split in SPLITS:
        start, stop = bounds[split]
        lines = "".join(json.dumps(row) + "\n" for row in rows[start:stop])
        write_text(Path(folder) / f"{split}.jsonl", lines)
        sizes[split] = stop - start
    return sizes


def make_demo_reviews(out_dir: Path, demo: dict[str, Any]) -> dict[str, int]:
    """Generate the review set configured in `sentiment.demo` into `out_dir`."""
    sizes = write_demo_reviews(
        out_dir,
        demo["n_reviews"],
        demo["validation_fraction"],
        demo["test_fraction"],
        demo["label_noise"],
        demo["seed"],
    )
    log.info(
        "demo reviews in %s: %s", out_dir, ", ".join(f"{split} {n}" for split, n in sizes.items())
    )
    return sizes
