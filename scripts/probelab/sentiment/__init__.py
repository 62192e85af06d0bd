"""Sentiment track: review data, frozen text features ([CLS], mean), SVM and logistic regression
on them, and Trainer fine-tuning, over a matrix of training sizes x seeds (matrix.py).

Modules import their heavy dependencies (torch, transformers, datasets) lazily, so that the SVM
step never pays for Transformers and the data checks stay cheap.
"""

SPLITS = ("train", "validation", "test")


class SentimentDataError(ValueError):
    """Bad sentiment input; the message names the file, split, row or key and what was expected."""
