"""Prompt templates for the pathologies, and the averaging of their text embeddings.

Each pathology gets one prompt per template ("a chest x-ray showing {pathology}", ...). Its
per-pathology embedding is the direction of the mean of the unit-length template embeddings
(normalise, average, renormalise), the usual CLIP prompt ensemble: normalising first keeps one
template with a large norm from dominating; renormalising makes cosine scores comparable across
pathologies. The mega-vector is the per-pathology matrix flattened row by row (P*D), the fixed
prompt input of the fusion heads.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

PLACEHOLDER = "{pathology}"


def readable_name(pathology: str, names: Mapping[str, str] | None = None) -> str:
    """The words a prompt uses for a label: an explicit override, else `Pleural_Thickening` ->
    "pleural thickening"."""
    if names and pathology in names:
        return names[pathology]
    return " ".join(pathology.replace("_", " ").split()).lower()


def render_prompts(
    pathologies: list[str], templates: list[str], names: Mapping[str, str] | None = None
) -> list[list[str]]:
    """P x T prompt strings. Plain substitution, so braces elsewhere in a template stay literal."""
    for template in templates:
        if PLACEHOLDER not in template:
            raise ValueError(f"prompt template {template!r} does not contain {PLACEHOLDER}.")
    return [
        [t.replace(PLACEHOLDER, readable_name(p, names)) for t in templates] for p in pathologies
    ]


def l2_normalize(vectors: np.ndarray, axis: int = -1) -> np.ndarray:
    """Unit length along `axis`; an all-zero vector stays zero instead of becoming NaN."""
    norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def average_templates(per_template: np.ndarray) -> np.ndarray:
    """(P, T, D) template embeddings -> (P, D): normalise each, average over T, renormalise."""
    if per_template.ndim != 3:
        raise ValueError(
            f"expected per-template embeddings of shape (P, T, D), got {per_template.shape}."
        )
    return l2_normalize(l2_normalize(per_template.astype(np.float64)).mean(axis=1)).astype(
        np.float32
    )


def mega_vector(per_pathology: np.ndarray) -> np.ndarray:
    """(P, D) -> (P*D,), pathology by pathology in the configured order."""
    return np.ascontiguousarray(per_pathology, dtype=np.float32).reshape(-1)
