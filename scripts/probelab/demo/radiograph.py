"""One demo radiograph: anatomy, finding signatures, vessels, side marker and film exposure.

Per-image randomness comes from the generator the caller passes (seeded per patient and follow-up),
so an image does not depend on the order it is drawn in.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from probelab.demo.anatomy import draw_anatomy, draw_markings, grid, soft
from probelab.demo.findings import SHAPE_ONLY, anatomy_for, signature_for

SEVERITY_RANGE = (0.6, 1.1)  # scales each finding's signature: mild to florid
SIDE_MARKER_PROBABILITY = 0.7


def draw_radiograph(
    rng: np.random.Generator, size: int, findings: set[str], pathologies: list[str], view: str
) -> np.ndarray:
    """One synthetic radiograph as a float array in [0, 1] (size x size)."""
    ordered = [p for p in pathologies if p in findings]  # fixed order: reproducible draws
    severity = {p: rng.uniform(*SEVERITY_RANGE) for p in ordered}
    anatomy = anatomy_for(rng, findings, severity)
    canvas = draw_anatomy(rng, size, anatomy, view)
    for pathology in ordered:
        if pathology not in SHAPE_ONLY:
            signature_for(pathology, pathologies)(canvas, severity[pathology])
    draw_markings(canvas, anatomy)
    if rng.random() < SIDE_MARKER_PROBABILITY:  # a lead "L"/"R" marker burnt into a top corner
        cx, cy = (
            float(rng.choice([-0.85, 0.85])) + rng.uniform(-0.05, 0.05),
            rng.uniform(-0.92, -0.75),
        )
        gx, gy = grid(size)
        canvas.density += 0.8 * soft(
            0.035 - np.maximum(np.abs(gx - cx), np.abs(gy - cy)), 2.0 / size
        )
    # Exposure and processing differ between films: window, gamma and quantum noise.
    low, high = rng.uniform(-0.05, 0.05), rng.uniform(0.85, 1.05)
    image = np.clip((canvas.density - low) / (high - low), 0, 1) ** rng.uniform(0.8, 1.25)
    return np.clip(image + 0.015 * rng.standard_normal(image.shape, dtype=np.float32), 0, 1)


def to_png_image(image: np.ndarray, mode: str) -> Image.Image:
    """8-bit 'L', 'RGBA' (grey in RGB, opaque alpha, as in NIH's few RGBA files), or 16-bit
    'I;16' spread over the full 0..65535 range, which a loader must rescale rather than clip."""
    if mode == "I;16":
        return Image.fromarray(np.round(image * 65535).astype(np.uint16))
    grey = np.round(image * 255).astype(np.uint8)
    if mode == "RGBA":
        return Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
    return Image.fromarray(grey)
