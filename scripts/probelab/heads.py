"""Probe heads trained on frozen image features: torch modules, built by name from the config.

Every head maps a batch of image features (B x D) to one logit per pathology (B x P). The heads
that use prompts hold the prompt "mega-vector" (the per-pathology prompt embeddings, flattened to
P*D) as a fixed buffer, not as an input of `forward`.

What a constant input can do: the seed's fusion heads (`two_branch_concat`, `weighted_sum`) feed
the mega-vector through a branch whose output is the same for every image, so the prompt path can
add at most a learned constant, a function of the head's weights and not of the image; whatever
the normalisation, no per-image or per-pathology information reaches the logits through it. A
BatchNorm after the branches then subtracts the batch mean and removes even that constant in
training (in weighted_sum the prompt path gets gradients of about 1e-8; in two_branch_concat
only the per-row dropout masks of the prompt branch get past it: noise, not information; at
evaluation the constant is folded into BatchNorm's running mean). Their prompt-ablation
controls (`*_no_text`, the same head with the mega-vector replaced; probelab.text_heads) measure
this on the data. Text can carry information per pathology only where each pathology's embedding
meets the image per class: `text_pair_scorer` here, `text_init_linear` in probelab.text_heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from probelab.models import NEURAL_HEADS, head_architecture, needs_prompts


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
    """Image branch and prompt branch, concatenated, then a classifier MLP (the seed's design).

    The prompt branch sees the same mega-vector for every image, so its output is one constant
    vector (per-row dropout masks aside): it adds no information about the image, and with a
    hidden layer the classifier's first Linear -> BatchNorm subtracts the batch mean, cancelling
    its contribution except for dropout noise (with `hidden: []` it is a learned bias). The
    branch uses LayerNorm rather than BatchNorm only so that it is not zeroed outright (BatchNorm
    over identical rows gives exactly 0); that keeps the constant, not any information.
    `two_branch_concat_no_text` is the control.
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
    MLP (the seed's design).

    The projected prompt is the same for every image, so its weighted contribution is a learned
    input offset, and the first Linear -> BatchNorm of the MLP (with at least one hidden layer)
    subtracts the batch mean, which cancels that offset too (up to the running statistics used
    at evaluation): the prompt path carries no information into the predictions.
    `weighted_sum_no_text` (the mega-vector replaced) is the control that measures it.
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


class TextPairScorer(nn.Module):
    """One MLP shared by every pathology scores (image, prompt of p) pairs: logit_p(x) =
    MLP([x, t_p, x * t_p]) + c_p, with x the L2-normalised image features, t_p the unit prompt
    embedding of pathology p and c_p a per-pathology bias (prevalences differ by two orders of
    magnitude). The product x * t_p holds the cosine the zero-shot classifier uses, so the head
    can learn how image and text should be compared, from every pathology's labels at once.
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
        if self.mega_vector.shape[1] != n_outputs * image_dim:
            raise ValueError(
                f"text_pair_scorer needs one {image_dim}-dimensional prompt embedding per "
                f"pathology ({n_outputs}), got a mega-vector of {self.mega_vector.shape[1]} values."
            )
        self.n_outputs = n_outputs
        self.net = mlp(3 * image_dim, hidden, 1, dropout)
        self.bias = nn.Parameter(torch.zeros(n_outputs))

    def text(self) -> torch.Tensor:
        """Unit prompt embeddings, P x D."""
        return nn.functional.normalize(self.mega_vector.reshape(self.n_outputs, -1), dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = nn.functional.normalize(image, dim=1)[:, None, :]  # B x 1 x D
        t = self.text()[None, :, :]  # 1 x P x D
        batch, dim = image.shape[0], image.shape[1]
        x, t = x.expand(batch, self.n_outputs, dim), t.expand(batch, self.n_outputs, dim)
        pairs = torch.cat([x, t, x * t], dim=2).reshape(batch * self.n_outputs, 3 * dim)
        return self.net(pairs).reshape(batch, self.n_outputs) + self.bias


def build_head(
    model: str,
    image_dim: int,
    n_outputs: int,
    params: dict[str, Any],
    mega_vector: torch.Tensor | None = None,
) -> nn.Module:
    """Build the head `model` with its configured hyperparameters `params`. An ablation control
    builds its fusion model's head; it is given the replaced mega-vector
    (probelab.text_heads.fusion_input)."""
    if model == "baseline_mlp":
        return BaselineMLP(image_dim, n_outputs, params["hidden"], params["dropout"])
    if needs_prompts(model) and mega_vector is None:
        raise ValueError(f"model '{model}' needs the prompt mega-vector, but none was given.")
    if model == "text_pair_scorer":
        return TextPairScorer(
            image_dim, n_outputs, mega_vector, params["hidden"], params["dropout"]
        )
    architecture = head_architecture(model) if model in NEURAL_HEADS else model
    if architecture == "two_branch_concat":
        return TwoBranchConcat(
            image_dim,
            n_outputs,
            mega_vector,
            params["branch_width"],
            params["hidden"],
            params["dropout"],
        )
    if architecture == "weighted_sum":
        return WeightedSum(image_dim, n_outputs, mega_vector, params["hidden"], params["dropout"])
    raise ValueError(f"unknown neural head '{model}'; expected one of {', '.join(NEURAL_HEADS)}.")
