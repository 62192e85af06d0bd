"""Prompt rendering and the normalise -> average -> renormalise maths."""

import numpy as np
import pytest

from probelab.prompts import (
    average_templates,
    l2_normalize,
    mega_vector,
    readable_name,
    render_prompts,
)


def test_readable_names():
    assert readable_name("Pleural_Thickening") == "pleural thickening"
    assert readable_name("Effusion") == "effusion"
    assert readable_name("Effusion", {"Effusion": "pleural effusion"}) == "pleural effusion"


def test_render_prompts_is_pathology_by_template_with_literal_braces():
    prompts = render_prompts(
        ["Mass", "Pleural_Thickening"], ["{pathology}", "x-ray {a} of {pathology}"]
    )
    assert prompts == [
        ["mass", "x-ray {a} of mass"],
        ["pleural thickening", "x-ray {a} of pleural thickening"],
    ]


def test_template_without_placeholder_is_refused():
    with pytest.raises(ValueError, match=r"'a chest x-ray' does not contain \{pathology\}"):
        render_prompts(["Mass"], ["a chest x-ray"])


def test_average_normalises_before_averaging_and_after():
    per_template = np.array([[[3.0, 0.0], [0.0, 4.0]]])  # one pathology, two templates
    averaged = average_templates(per_template)
    # unit vectors (1,0) and (0,1) average to (.5,.5); renormalised: (1/sqrt2, 1/sqrt2).
    # Averaging the raw vectors would give the direction (0.6, 0.8) instead.
    np.testing.assert_allclose(averaged, [[2**-0.5, 2**-0.5]], rtol=1e-6)
    assert averaged.dtype == np.float32


def test_average_of_random_templates_is_unit_and_order_free():
    per_template = np.random.default_rng(0).normal(size=(5, 7, 16))
    averaged = average_templates(per_template)
    np.testing.assert_allclose(np.linalg.norm(averaged, axis=1), 1.0, rtol=1e-6)
    shuffled = per_template[:, ::-1]
    np.testing.assert_allclose(average_templates(shuffled), averaged, rtol=1e-6)
    expected = l2_normalize(l2_normalize(per_template).sum(axis=1))
    np.testing.assert_allclose(averaged, expected, rtol=1e-5)


def test_average_refuses_wrong_rank():
    with pytest.raises(ValueError, match=r"\(P, T, D\)"):
        average_templates(np.zeros((3, 4)))


def test_zero_vector_stays_zero():
    assert np.array_equal(l2_normalize(np.zeros((2, 3))), np.zeros((2, 3)))


def test_mega_vector_is_pathologies_in_order():
    per_pathology = np.arange(12, dtype=np.float32).reshape(3, 4)
    flat = mega_vector(per_pathology)
    assert flat.shape == (12,)
    assert np.array_equal(flat[4:8], per_pathology[1])
