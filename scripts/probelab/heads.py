"""Probe heads trained on frozen image features: torch modules, built by name from the config.

Every head maps a batch of image features (B x D) to one logit per pathology (B x P). The fusion
heads also hold the prompt "mega-vector" (the per-pathology prompt embeddings, flattened to P*D)
as a fixed buffer: it is the same for every image, so it is not an input of `forward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from probelab.models import FUSION_HEADS, NEURAL_HEADS


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Dropout per hidden width, then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_dim
    for next_width in hidden:
        layers += [
            nn.Linear(width, next_width),
            nn.BatchNorm1d(next_width),
            nn.ReLU(),
            nn.Dropout(dropout),
        ]
        width = next_width
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class BaselineMLP(nn.Module):
    """Image features -> MLP of decreasing widths -> one logit per pathology."""

    def __init__(
        self, image_dim: int, n_outputs: int, hidden: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        self.net = mlp(image_dim, hidden, n_outputs, dropout)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class TwoBranchConcat(nn.Module):
    """Image branch and prompt branch, concatenated, then a classifier MLP.

    The prompt branch sees the same mega-vector for every image. BatchNorm over a batch of
    identical rows would normalise it to exactly zero, so that branch uses LayerNorm, which
    normalises each row over its own features and keeps the information.
    """

    def __init__(
        self,
        image_dim: int,
        n_outputs: int,
        mega_vector: torch.Tensor,
        branch_width: int,
        hidden: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.register_buffer("mega_vector", mega_vector.detach().clone().float().reshape(1, -1))
        self.image_branch = nn.Sequential(
            nn.Linear(image_dim, branch_width),
            nn.ReLU(),
            nn.BatchNorm1d(branch_width),
            nn.Dropout(dropout),
        )
        self.prompt_projection = nn.Sequential(
            nn.Linear(self.mega_vector.shape[1], branch_width),
            nn.ReLU(),
            nn.LayerNorm(branch_width),
        )
        self.prompt_dropout = nn.Dropout(dropout)
        self.classifier = mlp(2 * branch_width, hidden, n_outputs, dropout)

    def prompt_branch(self, batch_size: int) -> torch.Tensor:
        """The prompt branch output for a batch (B x branch_width).

        The projection of the one mega-vector is computed once and broadcast; dropout is applied
        after broadcasting so that every row still gets its own mask.
        """
        projected = self.prompt_projection(self.mega_vector)
        return self.prompt_dropout(projected.expand(batch_size, -1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([self.image_branch(image), self.prompt_branch(image.shape[0])], dim=1)
        return self.classifier(joint)


class WeightedSum(nn.Module):
    """w_img * image + w_prompt * ReLU(Linear(mega-vector)), both weight vectors learned, then an
    MLP.

    Because the projected prompt is the same for every image, its weighted contribution acts as a
    learned input offset; the comparison against `baseline_mlp` measures whether that helps.
    """

    def __init__(
        self,
        image_dim: int,
        n_outputs: int,
        mega_vector: torch.Tensor,
        hidden: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.register_buffer("mega_vector", mega_vector.detach().clone().float().reshape(1, -1))
        self.prompt_projection = nn.Sequential(
            nn.Linear(self.mega_vector.shape[1], image_dim), nn.ReLU()
        )
        # Start as an unweighted sum; training moves each feature's weights from there.
        self.w_image = nn.Parameter(torch.ones(image_dim))
        self.w_prompt = nn.Parameter(torch.ones(image_dim))
        self.net = mlp(image_dim, hidden, n_outputs, dropout)

    def projected_prompt(self) -> torch.Tensor:
        """The projected prompt (1 x image_dim)."""
        return self.prompt_projection(self.mega_vector)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        combined = self.w_image * image + self.w_prompt * self.projected_prompt()
        return self.net(combined)


def build_head(
    model: str,
    image_dim: int,
    n_outputs: int,
    params: dict[str, Any],
    mega_vector: torch.Tensor | None = None,
) -> nn.Module:
    """Build the head `model` with its configured hyperparameters `params`."""
    if model == "baseline_mlp":
        return BaselineMLP(image_dim, n_outputs, params["hidden"], params["dropout"])
    if model in FUSION_HEADS and mega_vector is None:
        raise ValueError(f"model '{model}' needs the prompt mega-vector, but none was given.")
    if model == "two_branch_concat":
        return TwoBranchConcat(
            image_dim,
            n_outputs,
            mega_vector,
            params["branch_width"],
            params["hidden"],
            params["dropout"],
        )
    if model == "weighted_sum":
        return WeightedSum(image_dim, n_outputs, mega_vector, params["hidden"], params["dropout"])
    raise ValueError(f"unknown neural head '{model}'; expected one of {', '.join(NEURAL_HEADS)}.")
