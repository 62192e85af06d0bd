"""Sentiment track: review data, [CLS] text features, SVM grid search and Trainer fine-tuning.

Modules import their heavy dependencies (torch, transformers, datasets) lazily, so that the SVM
step never pays for Transformers and the data checks stay cheap.
"""

SPLITS = ("train", "validation", "test")


class SentimentDataError(ValueError):
    """Bad sentiment input; the message names the file, split, row or key and what was expected."""
