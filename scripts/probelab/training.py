"""Seeded training of a probe head on feature tensors, with early stopping on validation loss.

Features and labels stay as whole tensors; a batch is an index slice of them, so there is no
per-sample Python loop and no DataLoader.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from probelab.heads import build_head
from probelab.masking import PLACEHOLDER

log = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the run and the epoch."""


class NonFiniteInputError(ValueError):
    """Training inputs holding NaN or infinity; the message names the run, the split and rows."""


@dataclass(frozen=True)
class TrainSettings:
    """The optimisation hyperparameters of one neural head (see schemas/probe.schema.yaml)."""

    lr: float
    weight_decay: float
    epochs: int
    batch_size: int
    scheduler: str
    patience: int
    noise_std: float
    pos_weight: bool
    plateau_factor: float
    plateau_patience: int
    eval_batch_size: int
    device: str

    @classmethod
    def from_config(cls, params: dict[str, Any], training: dict[str, Any]) -> TrainSettings:
        """From a model's config section and the shared `training` section."""
        shared = ("eval_batch_size", "device")
        values = {name: params[name] for name in cls.__dataclass_fields__ if name not in shared}
        return cls(**values, **{name: training[name] for name in shared})


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def positive_weights(labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-class negatives / positives of the training labels, for BCEWithLogitsLoss's pos_weight;
    with `mask` (split_mask), of the observed labels only.

    A class without positives gets the weight it would have with one positive: its positive term
    is zero anyway, and an infinite weight would turn the loss into NaN.
    """
    if mask is None:
        positives = labels.sum(dim=0)
        negatives = labels.shape[0] - positives
    else:  # a masked entry is neither: its placeholder must not count
        observed = mask.to(labels.dtype)
        positives = (labels * observed).sum(dim=0)
        negatives = observed.sum(dim=0) - positives
    return negatives / positives.clamp(min=1.0)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    # BatchNorm cannot normalise a batch of one in training mode; fold a lone last row into the
    # previous batch instead of dropping it.
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches


def check_finite(run_name: str, inputs: dict[str, tuple[torch.Tensor | None, str]]) -> None:
    """Refuse NaN or infinite inputs before training (the loss would turn NaN at any learning
    rate). `inputs` maps a description to (tensor or None, where it comes from)."""
    for name, (values, source) in inputs.items():
        if values is None or values.numel() == 0:
            continue
        bad = torch.nonzero(~torch.isfinite(values).reshape(len(values), -1).all(dim=1))[:, 0]
        if len(bad):
            rows = ", ".join(str(int(row)) for row in bad[:3]) + (", ..." if len(bad) > 3 else "")
            raise NonFiniteInputError(
                f"run {run_name}: {name} hold NaN or infinite values in {len(bad)} row(s) "
                f"(first row(s) {rows}), so the loss would be NaN at any learning rate; {source}."
            )


@torch.no_grad()
def predict_logits(model: nn.Module, features: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits in evaluation mode, computed in chunks on the model's device to bound memory."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model(part.to(device)) for part in features.split(batch_size)]
    return torch.cat(chunks).cpu() if chunks else torch.empty(0)


def predict_proba(model: nn.Module, features: torch.Tensor, batch_size: int) -> np.ndarray:
    """Sigmoid probabilities as a float64 array (N x P)."""
    return torch.sigmoid(predict_logits(model, features, batch_size).double()).numpy()


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "config key 'training.device' is cuda, but torch sees no CUDA device here; use cpu."
        )
    return torch.device(name)


def _make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings):
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    if settings.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=settings.plateau_factor,
            patience=settings.plateau_patience,
        )
    if settings.scheduler == "none":
        return None
    raise ValueError(f"unknown scheduler '{settings.scheduler}'; expected cosine, plateau or none.")


def train_head(
    model_name: str,
    params: dict[str, Any],
    settings: TrainSettings,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    seed: int,
    run_name: str,
    mega_vector: torch.Tensor | None = None,
) -> TrainResult:
    """Build head `model_name`, train it with early stopping on validation loss, restore the best
    epoch.

    Deterministic for a given seed (and thread count): the seed fixes the initial weights, the
    batch order, the input noise and the dropout masks.

    Labels may hold NaN (not observed, probelab.masking): those entries are masked out of the
    training loss, the validation loss that early stopping watches and the positive weights.
    With every label observed the losses are exactly those of BCEWithLogitsLoss.
    """
    if x_train.shape[0] < 2:
        raise ValueError(
            f"run {run_name}: training needs at least 2 images, got {x_train.shape[0]}."
        )
    if x_val.shape[0] == 0:
        raise ValueError(f"run {run_name}: the validation split is empty; early stopping needs it.")
    features_source = "rebuild the image cache they come from (its reader names the images)"
    labels_source = "check the labels of the cohort index"
    # NaN labels are masked, not invalid: set them aside before the finiteness check.
    y_train, train_mask = split_mask(y_train)
    y_val, val_mask = split_mask(y_val)
    check_finite(
        run_name,
        {
            "the training features": (x_train, features_source),
            "the validation features": (x_val, features_source),
            "the training labels": (y_train, labels_source),
            "the validation labels": (y_val, labels_source),
            "the prompt vectors": (mega_vector, "rebuild the prompt cache"),
        },
    )
    device = resolve_device(settings.device)
    torch.manual_seed(seed)
    # Batch order and input noise come from this CPU generator, so they are the same on any device.
    generator = torch.Generator().manual_seed(seed)
    model = build_head(model_name, x_train.shape[1], y_train.shape[1], params, mega_vector).to(
        device
    )
    x_train, y_train, y_val = x_train.to(device), y_train.to(device), y_val.to(device)
    train_mask = train_mask.to(device) if train_mask is not None else None
    val_mask = val_mask.to(device) if val_mask is not None else None
    weights = positive_weights(y_train, train_mask) if settings.pos_weight else None
    # The fused kernel updates every parameter in one pass; the default (foreach) path made the
    # fusion heads' 6-9 M prompt-projection parameters cost more per step than the rest of
    # training together on CPU (benchmarks/probe_training.py).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, fused=True
    )
    scheduler = _make_scheduler(optimizer, settings)

    result = TrainResult(model=model)
    best_state: dict[str, torch.Tensor] = {}
    stale_epochs = 0
    for epoch in range(1, settings.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        summed, seen = 0.0, 0
        for index in _batches(x_train.shape[0], settings.batch_size, generator):
            index = index.to(device)
            inputs = x_train[index]
            if settings.noise_std > 0:
                inputs = inputs + settings.noise_std * torch.randn(
                    inputs.shape, generator=generator
                ).to(device)
            batch_mask = train_mask[index] if train_mask is not None else None
            loss = masked_bce(model(inputs), y_train[index], batch_mask, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # The epoch's loss is the mean over its labels: batches weigh by their images, or by
            # their observed labels when some are masked (a batch's loss is their mean).
            size = len(index) if batch_mask is None else int(batch_mask.sum())
            summed += loss.item() * size
            seen += size
        train_loss = summed / seen if seen else 0.0
        val_loss = masked_bce(
            predict_logits(model, x_val, settings.eval_batch_size).to(device),
            y_val,
            val_mask,
            weights,
        ).item()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise TrainingDivergedError(
                f"run {run_name}: the loss became NaN or infinite at epoch {epoch} "
                f"(train {train_loss}, "
                f"val {val_loss}) although its inputs are finite; lower models.{model_name}.lr."
            )
        result.history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr}
        )
        log.info(
            "%s epoch %d: train loss %.4f, val loss %.4f, lr %.2e",
            run_name,
            epoch,
            train_loss,
            val_loss,
            lr,
        )

        if val_loss < result.best_val_loss:
            result.best_val_loss, result.best_epoch, stale_epochs = val_loss, epoch, 0
            best_state = {
                name: value.detach().clone() for name, value in model.state_dict().items()
            }
        else:
            stale_epochs += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        if stale_epochs >= settings.patience:
            log.info(
                "%s: early stop after epoch %d (best epoch %d)", run_name, epoch, result.best_epoch
            )
            break

    model.load_state_dict(best_state)
    model.cpu().eval()
    return result


def masked_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over the observed entries.

    `targets` must be finite (masked entries filled, `fill_masked`); `mask` (bool, the shape of
    `targets`) is True where a label is observed, None when every label is. Without a mask this is
    exactly torch's BCEWithLogitsLoss (reduction "mean"), bit for bit. With one, a masked entry's
    loss is multiplied by 0 (so neither its value nor its placeholder reaches the loss or the
    gradients) and the sum is divided by the number of observed entries; a batch without an
    observed entry gives 0 (no gradient), not 0 / 0.
    """
    if mask is None:
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    per_entry = F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=pos_weight, reduction="none"
    )
    weight = mask.to(per_entry.dtype)
    return (per_entry * weight).sum() / weight.sum().clamp(min=1.0)


def split_mask(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(labels with masked entries set to PLACEHOLDER, observed mask or None when every label is
    observed), for `masked_bce`. None keeps the unmasked, bit-identical loss path."""
    mask = ~torch.isnan(labels)
    if bool(mask.all()):
        return labels, None
    return torch.where(mask, labels, torch.full_like(labels, PLACEHOLDER)), mask
