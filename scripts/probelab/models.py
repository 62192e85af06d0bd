"""The probe model names and which of them need prompt embeddings.

Kept free of heavy imports: the workflow reads it while the DAG is built.
"""

from __future__ import annotations

# In the order the report lists them.
MODELS = (
    "baseline_mlp",
    "two_branch_concat",
    "two_branch_concat_no_text",
    "weighted_sum",
    "weighted_sum_no_text",
    "linear_probe",
    "zero_shot",
    "text_init_linear",
    "text_pair_scorer",
)
NEURAL_HEADS = (
    "baseline_mlp",
    "two_branch_concat",
    "two_branch_concat_no_text",
    "weighted_sum",
    "weighted_sum_no_text",
    "text_pair_scorer",
)
# The seed's fusion heads: the prompt mega-vector enters as one fixed input, the same for every
# image (so it can add at most a learned constant; docs/report.md, "Prompt ablation").
FUSION_HEADS = ("two_branch_concat", "weighted_sum")
# Prompt-ablation controls: the same head and settings as the fusion model they are named after,
# with the mega-vector replaced (models.<name>.replacement); control -> fusion model.
ABLATIONS = {
    "two_branch_concat_no_text": "two_branch_concat",
    "weighted_sum_no_text": "weighted_sum",
}
# Heads that use each pathology's prompt embedding as per-pathology structure.
TEXT_HEADS = ("text_init_linear", "text_pair_scorer")
# Models that read the prompt cache, so they need an encoder with a text tower; encoders
# without one skip them.
PROMPT_MODELS = (*FUSION_HEADS, *ABLATIONS, "zero_shot", *TEXT_HEADS)


def needs_prompts(model: str) -> bool:
    return model in PROMPT_MODELS


def head_architecture(model: str) -> str:
    """The head a model builds: an ablation control builds its fusion model's head."""
    return ABLATIONS.get(model, model)
