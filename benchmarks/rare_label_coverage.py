"""Coverage of the report's patient-bootstrap interval for one pathology with k positive patients.

A Monte-Carlo study of the interval that `bootstrap_ci.csv` reports (issue 23, part 4): how often
the 95 % interval of a pathology's AUROC and average precision (AP) holds the true value when the
test split has only k positive patients, k in 1, 2, 3, 5, 8, 10, 15, 20, 30, 50.

Each simulated test split has k positive and `--negatives` (500) negative patients, each patient
with 1 to 3 images (uniform), every image of a positive patient positive. Scores are binormal
with a patient effect: score = shift x label + sqrt(rho) x patient effect + sqrt(1 - rho) x image
noise (rho = 0.5, all terms standard normal), so an image's score is N(shift, 1) if positive and
N(0, 1) if negative, and images of one patient are correlated, which is what the patient-level
bootstrap exists for. True values:

- AUROC: a positive and a negative image always come from different patients, so their score
  difference is N(shift, 2) and the true AUROC is Phi(shift / sqrt(2)); shift is chosen from it.
- AP: the population AP at the split's prevalence k / (k + negatives) (patients, and in
  expectation images, since both classes have the same images per patient): the integral of
  precision over recall, precision(t) = pi S1(t) / (pi S1(t) + (1 - pi) S0(t)) with S1, S0 the
  positive and negative survival functions, by numerical quadrature
  (`population_average_precision`; the pytest checks it against a large sample). AP depends on
  the prevalence, so its true value changes with k.

Each split gets the project's interval exactly as `probelab.report.intervals` computes it for a
run: `PatientResampler.covering` over the patients and the label column, the resample weights
of `resampler.blocks`, `weighted_metrics` for the estimate and every resample, and
`bootstrap_interval` with the configured method (default `logit`) on the metric range
(`METRIC_BOUNDS`). Fewer resamples than the config's 1,000 by default (400) to keep the run
short: the logit interval needs only the resamples' standard deviation, which 400 resamples
estimate to about 3.5 % (1 / sqrt(2 x 400)).

Both true AUROCs share each simulated split (patients, image counts, noise; only the shift
differs) and its resampler, which halves the work and makes the two rows a paired comparison.

Seeds: split r of k positives draws from numpy's default_rng([--seed, k, r]); its resampler's
seed is 1,000,000 x --seed + r (r with the default --seed 0). The report uses one seed for every
run; distinct seeds keep the repetitions independent, the bootstrap's own Monte-Carlo error
included, also across runs with different --seed whose tables are pooled.

    .venv/bin/python benchmarks/rare_label_coverage.py [--repeats 300] [--resamples 400]
        [--positives 1 2 3 ...] [--seed 0] [--interval logit] [--quick]

Prints `uptime` at start and end, progress per k, and a markdown table (columns: `COLUMNS`).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import integrate
from scipy.stats import norm

from probelab.report.bootstrap import (
    INTERVAL_METHODS,
    PatientResampler,
    acceleration,
    bootstrap_interval,
    weighted_metrics,
)
from probelab.report.intervals import METRIC_BOUNDS

POSITIVE_PATIENTS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50)
TRUE_AUROCS = (0.75, 0.90)
METRICS = ("auroc", "average_precision")
COLUMNS = [
    "metric",
    "true_auroc",  # the binormal model's AUROC (the AP rows' model too)
    "k",  # positive test patients
    "repeats",
    "true_value",
    "mean_estimate",
    "coverage",  # share of intervals holding true_value
    "coverage_se",  # binomial Monte-Carlo standard error of coverage
    "mean_width",
    "zero_width",  # share of intervals with high - low < 1e-9
    "at_bound",  # share of estimates at 0 or 1, where the logit interval is a clipped normal one
    "positive_draws",  # median number of distinct positive-side draws among the resamples
]
ZERO_WIDTH = 1e-9
# resampler seeds of one --seed: 1,000,000 * seed + repetition, distinct across --seed values
RESAMPLER_SEEDS_PER_RUN = 1_000_000


@dataclass(frozen=True)
class Design:
    """One simulated test split's shape and the report settings its interval uses."""

    negatives: int = 500
    max_images: int = 3  # images per patient: uniform on 1..max_images
    rho: float = 0.5  # correlation of two images of one patient
    resamples: int = 400
    confidence: float = 0.95
    interval: str = "logit"


def binormal_shift(auroc: float) -> float:
    """The positives' mean shift that gives `auroc` when both classes are N(., 1)."""
    return math.sqrt(2.0) * float(norm.ppf(auroc))


def population_average_precision(shift: float, prevalence: float) -> float:
    """AP of an infinite sample: positives N(shift, 1), negatives N(0, 1), share `prevalence` of
    positives. AP = integral over thresholds t of precision(t) x density of the positives at t
    (recall falls by that much as t rises); survival functions on the log scale so that
    precision stays exact in the far right tail, where both are tiny."""

    def integrand(t: float) -> float:
        log_positive = math.log(prevalence) + float(norm.logsf(t - shift))
        log_negative = math.log1p(-prevalence) + float(norm.logsf(t))
        precision = 1.0 / (1.0 + math.exp(log_negative - log_positive))
        return precision * float(norm.pdf(t - shift))

    value, _ = integrate.quad(integrand, shift - 12.0, shift + 12.0, limit=200)
    return value


def draw_split(
    rng: np.random.Generator, k: int, shifts: np.ndarray, design: Design
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patient id per image, label per image (bool), scores (images x shifts)); the columns of
    scores share everything but the shift."""
    n_patients = k + design.negatives
    images = rng.integers(1, design.max_images + 1, n_patients)
    patient = np.repeat(np.arange(n_patients), images)
    labels = patient < k
    effect = rng.standard_normal(n_patients)[patient]
    noise = rng.standard_normal(patient.size)
    base = math.sqrt(design.rho) * effect + math.sqrt(1.0 - design.rho) * noise
    scores = base[:, None] + labels[:, None] * shifts[None, :]
    return np.char.mod("p%05d", patient), labels, scores


def split_intervals(
    patients: np.ndarray, labels: np.ndarray, scores: np.ndarray, design: Design, seed: int
) -> tuple[list[dict[str, tuple[float, float, float]]], int]:
    """Per score column, metric -> (estimate, low, high) as the report computes them, and the
    number of distinct draws of the positive patients among the resamples."""
    truth = labels[:, None].astype(float)
    resampler = PatientResampler.covering(patients, truth, design.resamples, seed)
    positions = np.arange(labels.size)
    positive_patients = np.unique(resampler.patient_index[labels])
    positive_draws = len(np.unique(resampler.patient_counts[:, positive_patients], axis=0))
    # one weight block is shared by every score column
    blocks = list(resampler.blocks(positions))
    jackknife = list(resampler.jackknife_blocks(positions)) if design.interval == "bca" else []
    out = []
    for column in range(scores.shape[1]):

        def values(weights: np.ndarray, column: int = column) -> dict[str, np.ndarray]:
            # decisions are never read: only threshold-free metrics are asked for
            return weighted_metrics(scores[:, [column]], truth, truth, weights, METRICS, [0], [])

        point = values(np.ones((1, labels.size)))
        boot = [values(w) for w in blocks]
        jack = [values(w) for w in jackknife]
        column_out = {}
        for metric in METRICS:
            accel = (
                acceleration(np.concatenate([j[metric] for j in jack]), resampler.jackknife_strata)
                if jack
                else 0.0
            )
            estimate = float(point[metric][0])
            interval = bootstrap_interval(
                np.concatenate([b[metric] for b in boot]),
                estimate,
                design.confidence,
                accel,
                design.interval,
                METRIC_BOUNDS,
            )
            column_out[metric] = (estimate, interval.low, interval.high)
        out.append(column_out)
    return out, positive_draws


def simulate(
    positive_patients: tuple[int, ...] = POSITIVE_PATIENTS,
    true_aurocs: tuple[float, ...] = TRUE_AUROCS,
    repeats: int = 300,
    design: Design = Design(),
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The coverage table (`COLUMNS`), one row per metric, true AUROC and k."""
    shifts = np.array([binormal_shift(a) for a in true_aurocs])
    rows = []
    started = time.perf_counter()
    for k in positive_patients:
        prevalence = k / (k + design.negatives)
        true_values = {(a, "auroc"): a for a in true_aurocs} | {
            (a, "average_precision"): population_average_precision(s, prevalence)
            for a, s in zip(true_aurocs, shifts, strict=True)
        }
        results: dict[tuple[float, str], list[tuple[float, float, float]]] = {
            key: [] for key in true_values
        }
        draws = []
        for r in range(repeats):
            patients, labels, scores = draw_split(
                np.random.default_rng([seed, k, r]), k, shifts, design
            )
            per_column, positive_draws = split_intervals(
                patients, labels, scores, design, RESAMPLER_SEEDS_PER_RUN * seed + r
            )
            draws.append(positive_draws)
            for a, column in zip(true_aurocs, per_column, strict=True):
                for metric in METRICS:
                    results[(a, metric)].append(column[metric])
        for metric in METRICS:
            for a in true_aurocs:
                estimate, low, high = np.array(results[(a, metric)]).T
                true_value = true_values[(a, metric)]
                covered = (low <= true_value) & (true_value <= high)  # NaN: not covered
                coverage = float(covered.mean())
                rows.append(
                    {
                        "metric": metric,
                        "true_auroc": a,
                        "k": k,
                        "repeats": repeats,
                        "true_value": true_value,
                        "mean_estimate": float(np.nanmean(estimate)),
                        "coverage": coverage,
                        "coverage_se": math.sqrt(coverage * (1.0 - coverage) / repeats),
                        "mean_width": float(np.nanmean(high - low)),
                        "zero_width": float(np.mean(high - low < ZERO_WIDTH)),
                        "at_bound": float(np.mean((estimate <= 0.0) | (estimate >= 1.0))),
                        "positive_draws": float(np.median(draws)),
                    }
                )
        if progress is not None:
            progress(f"k = {k:>2}: {repeats} splits, {time.perf_counter() - started:.0f} s")
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" if c == "metric" else "---:" for c in COLUMNS) + "|"
    lines = [header, rule]
    for row in table.itertuples(index=False):
        cells = []
        for column, value in zip(COLUMNS, row, strict=True):
            if column in ("metric", "k", "repeats"):
                cells.append(str(value))
            elif column == "true_auroc":
                cells.append(f"{value:.2f}")
            elif column == "positive_draws":
                cells.append(f"{value:.0f}")
            else:
                cells.append(f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=300, help="simulated test splits per k")
    parser.add_argument("--resamples", type=int, default=400, help="bootstrap resamples")
    parser.add_argument("--negatives", type=int, default=500, help="negative test patients")
    parser.add_argument(
        "--positives",
        type=int,
        nargs="+",
        default=list(POSITIVE_PATIENTS),
        help="numbers of positive test patients to simulate",
    )
    parser.add_argument("--interval", choices=INTERVAL_METHODS, default="logit")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated splits")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 20 repeats, 100 resamples, k 1 3 20"
    )
    args = parser.parse_args()
    design = Design(negatives=args.negatives, resamples=args.resamples, interval=args.interval)
    positive_patients, repeats = tuple(args.positives), args.repeats
    if args.quick:
        design = Design(negatives=args.negatives, resamples=100, interval=args.interval)
        positive_patients, repeats = (1, 3, 20), 20
    print(f"start: {_uptime()}", flush=True)
    print(
        f"{design}; k {positive_patients}; true AUROC {TRUE_AUROCS}; {repeats} repeats; "
        f"seed {args.seed}",
        flush=True,
    )
    started = time.perf_counter()
    table = simulate(
        positive_patients,
        TRUE_AUROCS,
        repeats,
        design,
        args.seed,
        lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"\nwall time {time.perf_counter() - started:.0f} s\n")
    print(markdown_table(table))
    print(f"\nend: {_uptime()}")


if __name__ == "__main__":
    main()
