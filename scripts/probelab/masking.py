"""Masked labels: the one place that says what a label the index does not observe means.

A pathology column of the cohort index holds 0 / 1, or NaN where the label was not observed
(an uncertain or unmentioned CheXpert / MIMIC-CXR label that the label policy ignores). NaN means
*unknown*: never a negative, never a positive. Every consumer masks it out: of the loss of every
model (the mean is over observed entries), of every count of positives and negatives, and of every
metric and threshold.

Consumers get two things from a label array:

- `observed(labels)`: the boolean mask, True where a label is observed.
- `fill_masked(labels)`: the labels with every masked entry replaced by `PLACEHOLDER`, for code
  (a torch loss, a vectorised sum) that needs finite numbers in every cell and multiplies the
  placeholder away with the mask. Nothing may depend on its value: the tests set it to 1 and
  check that every model, prediction and metric stays the same.

The neural heads' masked loss (`masked_bce`, `split_mask`) lives in probelab.training, with torch;
this module stays free of it, for the report and cohort steps. `check_labels` refuses
anything but 0, 1 and NaN; `refuse_masked` is for code that has no way to mask (the demo
pretraining writes captions from the labels).
"""

from __future__ import annotations

import numpy as np

# The value a masked entry holds in `fill_masked`'s output. Any finite value must give the same
# results (the tests flip it to 1.0); 0 reads least surprisingly in a debugger.
PLACEHOLDER = 0.0


def observed(labels: np.ndarray) -> np.ndarray:
    """True where the label is observed (not NaN); same shape as `labels`."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.floating):
        return np.ones(labels.shape, dtype=bool)  # an integer or boolean array has no NaN
    return ~np.isnan(labels)


def is_masked(labels: np.ndarray) -> bool:
    """Whether any label of `labels` is masked (NaN)."""
    return not bool(observed(labels).all())


def fill_masked(labels: np.ndarray, value: float | None = None) -> np.ndarray:
    """A float64 copy of `labels` with the masked entries set to `value` (default PLACEHOLDER)."""
    filled = np.array(labels, dtype=np.float64)
    filled[~observed(filled)] = PLACEHOLDER if value is None else value
    return filled


def positives(labels: np.ndarray) -> np.ndarray:
    """True where the label is an observed positive (NaN > 0.5 is False)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(labels, dtype=np.float64) > 0.5


def negatives(labels: np.ndarray) -> np.ndarray:
    """True where the label is an observed negative."""
    return observed(labels) & ~positives(labels)


def check_labels(labels: np.ndarray, what: str) -> None:
    """Refuse a label that is neither 0, 1 nor NaN (a -1 'uncertain' code that the index writer
    should have mapped by policy, an infinity): every consumer would read it as 0 or 1."""
    values = np.asarray(labels, dtype=np.float64)
    bad = observed(values) & (values != 0.0) & (values != 1.0)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what}: label {float(values[row, column])} (row {row}, column {column}; "
            f"{int(bad.sum())} such labels) is not 0, 1 or NaN (not observed); rebuild the cohort "
            "index with a label policy for it."
        )


def refuse_masked(labels: np.ndarray, what: str) -> None:
    """Refuse labels that hold masked entries, for `what` that cannot mask them."""
    if is_masked(labels):
        raise ValueError(
            f"{what} needs every label observed, but {int((~observed(labels)).sum())} label(s) "
            "are not (NaN in the cohort index); use a cohort whose labels are all 0 or 1."
        )
