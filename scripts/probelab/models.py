"""The probe model names and which of them need prompt embeddings.

Kept free of heavy imports: the workflow reads it while the DAG is built.
"""

from __future__ import annotations

# In the order the report lists them.
MODELS = ("baseline_mlp", "two_branch_concat", "weighted_sum", "linear_probe", "zero_shot")
NEURAL_HEADS = ("baseline_mlp", "two_branch_concat", "weighted_sum")
FUSION_HEADS = ("two_branch_concat", "weighted_sum")
# Models that read the prompt cache, so they need an encoder with a text tower.
PROMPT_MODELS = ("two_branch_concat", "weighted_sum", "zero_shot")


def needs_prompts(model: str) -> bool:
    return model in PROMPT_MODELS
