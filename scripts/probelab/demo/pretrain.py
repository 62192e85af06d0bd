"""Contrastive pretraining of a tiny demo encoder on the cohort's training split.

Each training image is paired with a caption written from its labels, as a radiologist's report
line would be: a finding list in varied templates ("frontal chest radiograph showing cardiomegaly
and effusion"), or a normal phrase ("no acute findings"). A report names some findings and omits
others, so a caption mentions each of the image's findings with probability
`mention_probability` (at least one).

Labels decide which pairs in a batch match: caption u is *true of* image i when every finding u
mentions is in i's labels (a normal phrase: when i has none). With ~58 % normal images, a batch
holds many true pairs besides the diagonal, and counting them as negatives would teach the model
that two normal films differ. Both losses therefore use this truth matrix:

- `clip`: the softmax cross-entropy of CLIP in both directions, against targets spread evenly
  over the true pairs of each row (image -> captions) and column (caption -> images).
- `siglip`: SigLIP's pairwise sigmoid loss with the truth matrix as labels. A third of the pairs
  are true here (SigLIP's paper has one per row among thousands), so the bias starts at 0 instead
  of -10, and each row's and each column's positives and negatives get equal weight; unweighted,
  the block of normal-normal pairs drowns the rare findings (measured: zero-shot AUROC 0.58
  against 0.67 balanced, on the demo cohort).

Only the training split is read; validation and test images never touch the encoder.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from probelab.masking import refuse_masked
from probelab.prompts import readable_name

log = logging.getLogger(__name__)

FINDING_TEMPLATES = (
    "frontal chest radiograph showing {}",
    "chest x-ray with {}",
    "findings consistent with {}",
    "signs of {}",
    "evidence of {}",
    "{} is seen",
    "a radiograph with {}",
    "impression: {}",
)
NORMAL_PHRASES = (
    "no acute findings",
    "normal chest radiograph",
    "no finding",
    "the lungs are clear",
    "no evidence of disease",
    "unremarkable chest x-ray",
)


@dataclass(frozen=True)
class PretrainSettings:
    """The config's `encoders.<name>.pretrain` entry (schemas/embed.schema.yaml)."""

    loss: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    mention_probability: float
    max_shift: int

    @classmethod
    def of(cls, entry: dict[str, Any]) -> PretrainSettings:
        return cls(**{key: entry[key] for key in cls.__dataclass_fields__})


def caption(
    labels: np.ndarray, names: Sequence[str], rng: np.random.Generator, mention: float
) -> tuple[str, np.ndarray]:
    """A caption for one image's 0/1 `labels` and the findings it mentions (0/1, same shape)."""
    mentioned = np.zeros_like(labels)
    present = np.flatnonzero(labels)
    if not len(present):
        return str(rng.choice(NORMAL_PHRASES)), mentioned
    kept = present[rng.random(len(present)) < mention]
    if not len(kept):
        kept = present[[rng.integers(len(present))]]
    kept = rng.permutation(kept)
    mentioned[kept] = 1
    words = [names[j] for j in kept]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return str(rng.choice(FINDING_TEMPLATES)).format(listed), mentioned


def truth_matrix(labels: Any, mentioned: Any) -> Any:
    """(B, B) float tensor: [i, u] = 1 when caption u is true of image i (module docstring)."""
    labels, mentioned = labels.float(), mentioned.float()
    claims_absent = mentioned @ (1 - labels).T  # [u, i]: findings u names that i lacks
    true = (claims_absent == 0).T.float()
    normal_caption = mentioned.sum(1) == 0
    normal_image = (labels.sum(1) == 0).float()
    return true.where(~normal_caption[None, :], normal_image[:, None].expand_as(true))


def clip_loss(logits: Any, true: Any) -> Any:
    """CLIP's symmetric softmax cross-entropy against targets spread over the true pairs."""
    import torch.nn.functional as F

    to_captions = F.cross_entropy(logits, true / true.sum(1, keepdim=True))
    to_images = F.cross_entropy(logits.T, (true / true.sum(0, keepdim=True)).T)
    return (to_captions + to_images) / 2


def siglip_loss(logits: Any, true: Any) -> Any:
    """SigLIP's pairwise sigmoid loss, each row's and column's positives and negatives weighted
    equally (module docstring)."""
    import torch
    import torch.nn.functional as F

    def balanced(positives: Any, total: int) -> Any:
        return torch.where(
            true > 0, 0.5 / positives.clamp(min=1), 0.5 / (total - positives).clamp(min=1)
        )

    n_images, n_captions = true.shape
    weights = (
        balanced(true.sum(1, keepdim=True), n_captions)
        + balanced(true.sum(0, keepdim=True), n_images)
    ) / 2
    pairs = F.binary_cross_entropy_with_logits(logits, true, reduction="none")
    return (pairs * weights).sum() / n_images


LOSSES: dict[str, Callable[[Any, Any], Any]] = {"clip": clip_loss, "siglip": siglip_loss}


def random_shift(pixels: Any, max_shift: int, generator: Any) -> Any:
    """Each image translated by up to `max_shift` pixels (edges reflected): the augmentation
    that keeps a tiny ViT from memorising 800 films."""
    import torch
    import torch.nn.functional as F

    if max_shift == 0:
        return pixels
    padded = F.pad(pixels, (max_shift,) * 4, mode="reflect")
    height, width = pixels.shape[-2:]
    offsets = torch.randint(0, 2 * max_shift + 1, (len(pixels), 2), generator=generator)
    crops = [
        image[:, y : y + height, x : x + width]
        for image, (y, x) in zip(padded, offsets.tolist(), strict=True)
    ]
    return torch.stack(crops)


@dataclass(frozen=True)
class PretrainReport:
    """What pretraining did, written next to the weights (pretraining.json). No timings: the
    folder's content digest must depend only on the recipe and the training images."""

    loss: str
    n_images: int
    steps: int
    loss_per_epoch: list[float]
    logit_scale: float
    logit_bias: float | None


def pretrain(
    encoder: Any,
    pixels: Any,
    labels: np.ndarray,
    pathologies: Sequence[str],
    settings: PretrainSettings,
    seed: int,
) -> PretrainReport:
    """Train `encoder` (a probelab.encoders.Encoder; its model is changed in place) on
    preprocessed training images `pixels` (N, C, H, W) with 0/1 `labels` (N, P)."""
    # A caption states which findings an image has and has not; an unobserved label (NaN) has no
    # honest caption, and the demo cohort observes every label.
    refuse_masked(labels, "demo pretraining (its captions are written from the labels)")
    import torch

    model = encoder.model
    scale = model.logit_scale
    bias = getattr(model, "logit_bias", None)
    if settings.loss == "siglip" and bias is None:
        raise ValueError(
            f"encoder '{encoder.name}': the siglip loss needs a model with a logit bias, and "
            f"{type(model).__name__} has none; use loss: clip."
        )
    names = [readable_name(p) for p in pathologies]
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(pixels)
    batch = min(settings.batch_size, n)
    steps_per_epoch = n // batch
    total = settings.epochs * steps_per_epoch
    temperature = [p for p in (scale, bias) if p is not None]
    weights = [p for p in model.parameters() if all(p is not t for t in temperature)]
    optimizer = torch.optim.AdamW(
        [
            {"params": weights, "weight_decay": settings.weight_decay},
            {"params": temperature, "weight_decay": 0.0},
        ],
        lr=settings.lr,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=total, pct_start=0.1
    )
    loss_of = LOSSES[settings.loss]
    all_labels = torch.as_tensor(labels)
    began, per_epoch = time.perf_counter(), []
    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * batch : (step + 1) * batch]
            pairs = [
                caption(labels[row], names, rng, settings.mention_probability)
                for row in rows.tolist()
            ]
            texts, mentioned = [text for text, _ in pairs], [m for _, m in pairs]
            image = torch.nn.functional.normalize(
                encoder.image_forward(random_shift(pixels[rows], settings.max_shift, generator)),
                dim=-1,
            )
            text = torch.nn.functional.normalize(encoder.text_forward(texts), dim=-1)
            logits = scale.exp() * image @ text.T
            if settings.loss == "siglip":
                logits = logits + bias
            true = truth_matrix(all_labels[rows], torch.as_tensor(np.stack(mentioned)))
            loss = loss_of(logits, true)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                scale.clamp_(max=math.log(100))  # CLIP's cap on the logit scale
            running += loss.item()
        per_epoch.append(round(running / steps_per_epoch, 4))
        log.info("epoch %d/%d: loss %.4f", epoch + 1, settings.epochs, per_epoch[-1])
    model.eval()
    log.info("pretrained on %d images in %.1f s", n, time.perf_counter() - began)
    return PretrainReport(
        loss=settings.loss,
        n_images=n,
        steps=total,
        loss_per_epoch=per_epoch,
        logit_scale=scale.exp().item(),
        logit_bias=None if bias is None else bias.item(),
    )
