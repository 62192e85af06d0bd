"""Probe heads: output shapes, the fixed prompt buffer, and the BatchNorm pitfall of the fusion
heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from probelab.heads import BaselineMLP, TwoBranchConcat, WeightedSum, build_head

IMAGE_DIM, N_PATHOLOGIES, BATCH = 12, 3, 7
PARAMS = {"hidden": [10, 6], "dropout": 0.1, "branch_width": 8}


@pytest.fixture
def mega_vector() -> torch.Tensor:
    return torch.randn(N_PATHOLOGIES * IMAGE_DIM, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["baseline_mlp", "two_branch_concat", "weighted_sum"])
@pytest.mark.parametrize("train_mode", [True, False])
def test_forward_gives_one_logit_per_pathology(
    name: str, train_mode: bool, mega_vector: torch.Tensor
) -> None:
    head = build_head(name, IMAGE_DIM, N_PATHOLOGIES, PARAMS, mega_vector)
    head.train(train_mode)
    logits = head(torch.randn(BATCH, IMAGE_DIM))
    assert logits.shape == (BATCH, N_PATHOLOGIES)
    assert torch.isfinite(logits).all()


def test_baseline_mlp_layers_follow_the_configured_widths() -> None:
    head = BaselineMLP(IMAGE_DIM, N_PATHOLOGIES, hidden=[10, 6], dropout=0.3)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 10), (10, 6), (6, 3)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in head.modules()) == 2
    assert [m.p for m in head.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]


@pytest.mark.parametrize("name", ["two_branch_concat", "weighted_sum"])
def test_mega_vector_is_a_fixed_buffer_saved_with_the_model(
    name: str, mega_vector: torch.Tensor
) -> None:
    head = build_head(name, IMAGE_DIM, N_PATHOLOGIES, PARAMS, mega_vector)
    assert "mega_vector" in head.state_dict()
    assert "mega_vector" not in dict(head.named_parameters())
    torch.testing.assert_close(head.state_dict()["mega_vector"].flatten(), mega_vector)


def test_prompt_branch_is_not_zeroed_by_batch_statistics(mega_vector: torch.Tensor) -> None:
    """The mega-vector is identical for every image; BatchNorm would map it to exactly 0."""
    head = TwoBranchConcat(
        IMAGE_DIM, N_PATHOLOGIES, mega_vector, branch_width=8, hidden=[6], dropout=0.0
    )
    head.train()
    prompt_out = head.prompt_branch(BATCH)
    assert prompt_out.shape == (BATCH, 8)
    assert prompt_out.abs().max() > 0.1
    # The pitfall this guards against: the same rows through BatchNorm in training mode are all 0.
    pre_norm = head.prompt_projection[:2](head.mega_vector).expand(BATCH, -1)
    assert nn.BatchNorm1d(8).train()(pre_norm).abs().max() < 1e-4


def test_prompt_branch_receives_gradient_in_training(mega_vector: torch.Tensor) -> None:
    head = TwoBranchConcat(
        IMAGE_DIM, N_PATHOLOGIES, mega_vector, branch_width=8, hidden=[6], dropout=0.0
    )
    head.train()
    head(torch.randn(BATCH, IMAGE_DIM)).sum().backward()
    assert head.prompt_projection[0].weight.grad.abs().sum() > 0


def test_prompt_branch_dropout_masks_differ_between_rows(mega_vector: torch.Tensor) -> None:
    head = TwoBranchConcat(
        IMAGE_DIM, N_PATHOLOGIES, mega_vector, branch_width=32, hidden=[], dropout=0.5
    )
    head.train()
    torch.manual_seed(0)
    out = head.prompt_branch(4)
    assert not torch.equal(out[0], out[1])
    head.eval()
    out = head.prompt_branch(4)
    assert torch.equal(out[0], out[1])


def test_weighted_sum_learns_both_weight_vectors(mega_vector: torch.Tensor) -> None:
    head = WeightedSum(IMAGE_DIM, N_PATHOLOGIES, mega_vector, hidden=[6], dropout=0.0)
    assert head.projected_prompt().shape == (1, IMAGE_DIM)
    assert head.projected_prompt().abs().sum() > 0
    head.train()
    head(torch.randn(BATCH, IMAGE_DIM)).sum().backward()
    assert head.w_image.grad.abs().sum() > 0
    assert head.w_prompt.grad.abs().sum() > 0
    assert head.prompt_projection[0].weight.grad.abs().sum() > 0


def test_fusion_head_without_mega_vector_is_refused() -> None:
    with pytest.raises(ValueError, match="two_branch_concat.*mega-vector"):
        build_head("two_branch_concat", IMAGE_DIM, N_PATHOLOGIES, PARAMS, None)


def test_unknown_head_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown neural head 'resnet'"):
        build_head("resnet", IMAGE_DIM, N_PATHOLOGIES, PARAMS)


@pytest.mark.parametrize("name", ["two_branch_concat", "weighted_sum"])
def test_the_fusion_heads_prompt_input_cannot_change_their_predictions_in_training(
    name: str, mega_vector: torch.Tensor
) -> None:
    """The mega-vector is the same for every image: the prompt path adds a constant, and the
    BatchNorm after it subtracts the batch mean, so any other vector gives the same logits (no
    dropout, so that no per-row mask differs)."""
    params = {**PARAMS, "dropout": 0.0}
    torch.manual_seed(0)
    real = build_head(name, IMAGE_DIM, N_PATHOLOGIES, params, mega_vector).train()
    other = build_head(name, IMAGE_DIM, N_PATHOLOGIES, params, torch.zeros_like(mega_vector))
    other.load_state_dict({**real.state_dict(), "mega_vector": torch.zeros(1, mega_vector.numel())})
    images = torch.randn(BATCH, IMAGE_DIM)
    torch.testing.assert_close(real(images), other.train()(images), atol=1e-5, rtol=1e-5)
