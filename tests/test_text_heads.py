"""Heads that use the prompt text per pathology, and the prompt-ablation input: text_init_linear
starts as zero-shot and tends to a linear probe; the ablation keeps the input's scale and drops its
content; text_pair_scorer shares one MLP across pathologies; on the demo, text_init_linear beats
zero-shot at the largest size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, random_demo_encoder
from sklearn.metrics import roc_auc_score

from probelab.heads import TextPairScorer, build_head
from probelab.linear import fit_linear_probe, zero_shot_map
from probelab.models import ABLATIONS, needs_prompts
from probelab.text_heads import ablation_vector, anchored_linear_head, fusion_input

P, D = 3, 16


def macro_auroc(truth: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean([roc_auc_score(truth[:, k], scores[:, k]) for k in range(truth.shape[1])]))


def cohort(text: str, seed: int = 0, n: int = 2600) -> dict[str, np.ndarray]:
    """Features with a large shared component (as CLIP features have) and labels that are a noisy
    linear function of the rest; prompt embeddings that point along the label directions
    (text = "true") or anywhere (text = "random")."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(P, D))
    noise = rng.normal(size=(n, D))
    x = 5 * rng.normal(size=D) + noise
    y = (noise @ directions.T + 2 * rng.normal(size=(n, P)) > 1).astype(float)
    prompts = directions if text == "true" else rng.normal(size=(P, D))
    return {"x": x, "y": y, "text": prompts}


def fit(data: dict[str, np.ndarray], n: int, **changes):
    arguments = dict(
        text_embeddings=data["text"],
        logit_scale=14.3,
        logit_bias=math.nan,
        strengths=[0.01, 0.1, 1.0, 10.0, 100.0, 1000.0],
        max_iter=300,
    )
    x, y = data["x"], data["y"]
    return anchored_linear_head(
        x[:n], y[:n], x[2000:2300], y[2000:2300], **{**arguments, **changes}
    )


def test_zero_training_steps_give_exactly_the_zero_shot_classifier() -> None:
    data = cohort("random")
    head, grid = fit(data, 500, max_iter=0)
    zero_shot = zero_shot_map(data["text"], 14.3, math.nan, D)
    assert np.array_equal(head.logits(data["x"]), zero_shot.logits(data["x"]))
    assert grid == [] and head.chosen["anchor_strength"] == "inf"


def test_an_infinite_anchor_keeps_the_zero_shot_ranking() -> None:
    """lambda -> inf: the weights stay the zero-shot rows (Platt-scaled), so every pathology's
    AUROC is exactly zero-shot's."""
    data = cohort("random")
    head, _ = fit(data, 500, strengths=[1e12])
    test = slice(2300, 2600)
    zero_shot = zero_shot_map(data["text"], 14.3, math.nan, D)
    truth = data["y"][test]
    for k in range(P):
        assert roc_auc_score(truth[:, k], head.logits(data["x"][test])[:, k]) == pytest.approx(
            roc_auc_score(truth[:, k], zero_shot.logits(data["x"][test])[:, k]), abs=1e-9
        )


def test_with_useless_text_it_learns_like_a_linear_probe_as_n_grows() -> None:
    data = cohort("random")
    test = slice(2300, 2600)
    truth, x_test = data["y"][test], data["x"][test]
    zero_shot = macro_auroc(truth, zero_shot_map(data["text"], 14.3, math.nan, D).logits(x_test))
    head, grid = fit(data, 2000)
    probe, _ = fit_linear_probe(
        data["x"][:2000],
        data["y"][:2000],
        data["x"][2000:2300],
        data["y"][2000:2300],
        c_grid=[0.01, 0.1, 1.0],
        standardize=True,
        balanced=False,
        max_iter=500,
    )
    learned = macro_auroc(truth, head.logits(x_test))
    assert zero_shot < 0.6 < 0.9 < learned
    assert learned > macro_auroc(truth, probe.logits(x_test)) - 0.03
    assert head.chosen["anchor_strength"] != "inf"
    assert [row["anchor_strength"] for row in grid] == ["inf", 1000.0, 100.0, 10.0, 1.0, 0.1, 0.01]


def test_with_informative_text_few_labels_keep_it_near_zero_shot() -> None:
    """n = 20: the linear probe is poor, the anchored head stays about as good as zero-shot."""
    data = cohort("true")
    test = slice(2300, 2600)
    truth, x_test = data["y"][test], data["x"][test]
    zero_shot = macro_auroc(truth, zero_shot_map(data["text"], 14.3, math.nan, D).logits(x_test))
    head, _ = fit(data, 20)
    probe, _ = fit_linear_probe(
        data["x"][:20],
        data["y"][:20],
        data["x"][2000:2300],
        data["y"][2000:2300],
        c_grid=[0.01, 0.1, 1.0],
        standardize=True,
        balanced=False,
        max_iter=500,
    )
    learned = macro_auroc(truth, head.logits(x_test))
    assert learned > zero_shot - 0.03
    assert learned > macro_auroc(truth, probe.logits(x_test)) + 0.1


def test_a_pathology_with_one_class_in_training_keeps_its_zero_shot_row() -> None:
    data = cohort("random")
    data["y"][:200, 1] = 0.0
    head, _ = fit(data, 200)
    zero_shot = zero_shot_map(data["text"], 14.3, math.nan, D)
    logits, reference = head.logits(data["x"]), zero_shot.logits(data["x"])
    assert np.all(np.isfinite(logits))
    # the same scores up to a shift: same ranking, bias from the smoothed prior
    shift = logits[:, 1] - reference[:, 1]
    assert np.ptp(shift) < 1e-9
    assert logits[:200, 1].mean() == pytest.approx(math.log(0.5 / 200.5))


def test_text_init_linear_needs_a_positive_logit_scale() -> None:
    with pytest.raises(ValueError, match="positive logit scale"):
        fit(cohort("random"), 100, logit_scale=math.nan)


# --- prompt ablation


def test_ablation_vector_keeps_every_block_norm_and_drops_the_content() -> None:
    rng = np.random.default_rng(3)
    blocks = rng.normal(size=(P, D))
    blocks[1] *= 3.0
    replaced = ablation_vector(blocks.ravel(), P, "random", seed=0).reshape(P, D)
    np.testing.assert_allclose(
        np.linalg.norm(replaced, axis=1), np.linalg.norm(blocks, axis=1), rtol=1e-6
    )
    cosines = np.sum(replaced * blocks, axis=1) / (
        np.linalg.norm(replaced, axis=1) * np.linalg.norm(blocks, axis=1)
    )
    assert np.all(np.abs(cosines) < 0.9)
    assert np.array_equal(replaced.ravel(), ablation_vector(blocks.ravel(), P, "random", seed=0))
    assert not np.array_equal(replaced.ravel(), ablation_vector(blocks.ravel(), P, "random", 1))
    assert not ablation_vector(blocks.ravel(), P, "zeros", seed=0).any()
    with pytest.raises(ValueError, match="unknown prompt replacement 'noise'"):
        ablation_vector(blocks.ravel(), P, "noise", seed=0)


def test_only_the_ablation_controls_get_a_replaced_mega_vector() -> None:
    class Prompts:
        per_pathology = np.eye(P, D)
        mega_vector = np.eye(P, D).ravel()

    for fusion in ("two_branch_concat", "weighted_sum", "text_pair_scorer"):
        assert fusion_input(fusion, {}, Prompts, seed=0) is Prompts.mega_vector
    for control in ABLATIONS:
        replaced = fusion_input(control, {"replacement": "random"}, Prompts, seed=0)
        assert replaced.shape == Prompts.mega_vector.shape
        assert not np.allclose(replaced, Prompts.mega_vector)
        assert needs_prompts(control)


@pytest.mark.parametrize("control", list(ABLATIONS))
def test_an_ablation_control_builds_its_fusion_models_head_with_the_same_initial_weights(
    control: str,
) -> None:
    params = {"hidden": [8], "dropout": 0.1, "branch_width": 8}
    mega = torch.randn(P * D, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    fusion = build_head(ABLATIONS[control], D, P, params, mega)
    torch.manual_seed(5)
    replaced = torch.from_numpy(ablation_vector(mega.numpy(), P, "random", seed=5))
    ablated = build_head(control, D, P, params, replaced)
    assert type(ablated) is type(fusion)
    fusion_state, ablated_state = fusion.state_dict(), ablated.state_dict()
    for name, value in fusion_state.items():
        if name == "mega_vector":
            assert not torch.equal(value, ablated_state[name])
        else:
            assert torch.equal(value, ablated_state[name]), name


# --- text_pair_scorer


def test_pair_scorer_shares_one_mlp_across_pathologies() -> None:
    mega = torch.randn(P * D, generator=torch.Generator().manual_seed(1))
    head = build_head("text_pair_scorer", D, P, {"hidden": [8], "dropout": 0.0}, mega)
    assert isinstance(head, TextPairScorer)
    head.train()
    logits = head(torch.randn(5, D))
    assert logits.shape == (5, P) and torch.isfinite(logits).all()
    # parameters: one MLP over 3 * D inputs plus one bias per pathology, whatever P is
    more = build_head("text_pair_scorer", D, 2 * P, {"hidden": [8], "dropout": 0.0}, mega.repeat(2))
    n_params = sum(p.numel() for p in head.parameters())
    assert sum(p.numel() for p in more.parameters()) - n_params == P
    assert "mega_vector" in head.state_dict() and "mega_vector" not in dict(head.named_parameters())


def test_pair_scorer_scores_depend_on_the_prompt_of_each_pathology() -> None:
    mega = torch.randn(P * D, generator=torch.Generator().manual_seed(1))
    head = build_head("text_pair_scorer", D, P, {"hidden": [8], "dropout": 0.0}, mega).eval()
    images = torch.randn(6, D)
    swapped = mega.reshape(P, D)[[1, 0, 2]].reshape(-1)
    other = build_head("text_pair_scorer", D, P, {"hidden": [8], "dropout": 0.0}, swapped).eval()
    other.load_state_dict({**head.state_dict(), "mega_vector": swapped.reshape(1, -1)})
    with torch.no_grad():
        a, b = head(images), other(images)
    # swapping the prompts of pathologies 0 and 1 swaps their scores (up to their own biases)
    torch.testing.assert_close(a[:, 0] - head.bias[0], b[:, 1] - head.bias[1])
    torch.testing.assert_close(a[:, 2], b[:, 2])


def test_pair_scorer_refuses_a_mega_vector_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="one 16-dimensional prompt embedding per pathology"):
        build_head("text_pair_scorer", D, P, {"hidden": [8], "dropout": 0.0}, torch.ones(10))


# --- config


def demo_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_an_ablation_control_takes_its_fusion_models_settings() -> None:
    from probelab.config import validate_config

    config = demo_config()
    config["models"]["weighted_sum_no_text"] = {}
    validated = validate_config(config)["models"]
    control, fusion = validated["weighted_sum_no_text"], validated["weighted_sum"]
    assert control["replacement"] == "random"
    assert {k: v for k, v in control.items() if k != "replacement"} == fusion


def test_an_ablation_control_that_trains_differently_is_refused() -> None:
    from probelab.config import ConfigError, validate_config

    config = demo_config()
    config["models"]["two_branch_concat_no_text"] = {"lr": 0.1}
    with pytest.raises(ConfigError, match=r"'models.two_branch_concat_no_text.lr' is 0.1, but"):
        validate_config(config)


def test_an_encoder_without_text_tower_skips_the_prompt_models() -> None:
    from probelab.config import encoder_models, skipped_models, validate_config

    config = demo_config()
    config["encoders"]["demo_openclip"] = random_demo_encoder(text=False)
    validated = validate_config(config)
    assert encoder_models(validated, "demo_openclip") == ["baseline_mlp", "linear_probe"]
    assert len(encoder_models(validated, "demo_hfclip")) == 9
    assert skipped_models(validated) == {
        "demo_openclip": [
            "two_branch_concat",
            "two_branch_concat_no_text",
            "weighted_sum",
            "weighted_sum_no_text",
            "zero_shot",
            "text_init_linear",
            "text_pair_scorer",
        ]
    }


def test_the_summary_states_what_a_constant_prompt_input_can_do_and_what_was_skipped() -> None:
    from probelab.config import validate_config
    from probelab.report.summary import caveats_section

    config = demo_config()
    config["encoders"]["demo_openclip"] = random_demo_encoder(text=False)
    text = caveats_section(validate_config(config))
    assert "- **Constant prompt inputs.** two_branch_concat and weighted_sum feed" in text
    assert (
        "- **No text tower.** Encoder demo_openclip has no text tower, so it skipped the models "
        "that read prompt embeddings: two_branch_concat, two_branch_concat_no_text, "
        "weighted_sum, weighted_sum_no_text, zero_shot, text_init_linear, text_pair_scorer."
    ) in text
    config = demo_config()
    config["models"] = {"baseline_mlp": config["models"]["baseline_mlp"]}
    text = caveats_section(validate_config(config))
    assert "Constant prompt inputs" not in text and "No text tower" not in text
