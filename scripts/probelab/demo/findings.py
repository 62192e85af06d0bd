"""Visual signatures of the findings on a demo radiograph (enlarged heart, fluid level, nodules...).

Most findings add density to the canvas; Cardiomegaly, Emphysema and the volume loss of Atelectasis
change the anatomy itself, before it is drawn (anatomy_for). A pathology this module does not know
gets a distinct generic signature, so that any configured pathology has a learnable signal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from probelab.demo.anatomy import (
    DOME_DROP,
    DOME_Y,
    LUNG_CX,
    LUNG_CY,
    LUNG_RX,
    LUNG_RY,
    SIDES,
    Anatomy,
    Canvas,
    lung_ellipse,
    smooth_noise,
    soft,
)

# --- Finding signatures: each adds density to the canvas (drawn with its own severity). ---


def _effusion(c: Canvas, severity: float) -> None:
    for side in c.sides():
        depth = c.rng.uniform(0.15, 0.35) * severity
        level = DOME_Y + DOME_DROP - depth
        meniscus = level - 0.15 * np.clip(c.lateral[side], 0, 1)  # climbs the lateral chest wall
        c.density += 0.32 * soft(c.y - meniscus, 0.04) * c.lung[side]


def _infiltration(c: Canvas, severity: float) -> None:
    patches = np.clip((smooth_noise(c.rng, c.size, 8) - 0.7) / 0.6, 0, 1)
    c.density += 0.15 * severity * patches * c.lungs


def _consolidation(c: Canvas, severity: float) -> None:
    side = c.side()
    cx, cy = c.point_in_lung(side, -0.2, 0.35)
    radius = c.rng.uniform(0.12, 0.2) * (1 + 0.2 * smooth_noise(c.rng, c.size, 10))
    lobe = soft(radius - np.hypot(c.x - cx, c.y - cy), 0.02)  # dense, sharply bounded
    c.density += 0.28 * severity * lobe * c.lung[side]


def _pneumonia(c: Canvas, severity: float) -> None:
    side = c.side()
    cx, cy = c.point_in_lung(side, 0.0, 0.4)
    sigma = c.rng.uniform(0.1, 0.16)
    haze = np.exp(-0.5 * ((c.x - cx) ** 2 + (c.y - cy) ** 2) / sigma**2)
    patchy = 0.6 + 0.4 * np.clip(smooth_noise(c.rng, c.size, 14), -1, 1)
    c.density += 0.22 * severity * haze * patchy * c.lung[side]


def _edema(c: Canvas, severity: float) -> None:
    for side in SIDES:  # bilateral perihilar "bat wing"
        wing = np.exp(-(((c.x - side * 0.22) / 0.22) ** 2) - ((c.y - 0.02) / 0.3) ** 2)
        c.density += 0.18 * severity * wing * c.lung[side]


def _atelectasis(c: Canvas, severity: float) -> None:
    """A plate-like dense band in a lower zone (the raised hemidiaphragm is in anatomy_for)."""
    side = c.anatomy.atelectasis_side
    cx, cy = c.point_in_lung(side, 0.1, 0.4)
    angle = c.rng.uniform(-0.35, 0.35)
    distance = -(c.x - cx) * math.sin(angle) + (c.y - cy) * math.cos(angle)
    thickness = c.rng.uniform(0.015, 0.03)
    c.density += 0.26 * severity * soft(thickness - np.abs(distance), c.px) * c.lung[side]


def _pneumothorax(c: Canvas, severity: float) -> None:
    side = c.side()
    collapse = c.rng.uniform(0.15, 0.35) * severity
    # The collapsed lung: smaller, pulled towards the hilum; gas fills the space around it.
    rx, ry = LUNG_RX * (1 - collapse), LUNG_RY * (1 - 0.5 * collapse)
    collapsed = lung_ellipse(
        c.x, c.y + 0.08 * collapse, side, rx, ry, LUNG_CX - 0.5 * collapse * LUNG_RX
    )
    gas = soft(collapsed - 1, 0.05) * c.lung[side]
    c.markings_gain = c.markings_gain * (1 - gas)  # no vessels beyond the lung edge
    c.density -= 0.08 * gas
    c.density += (
        0.1 * np.exp(-(((collapsed - 1) / 0.05) ** 2)) * c.lung[side]
    )  # visceral pleural line


def _nodule(c: Canvas, severity: float) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        side = c.side()
        c.density += (
            0.24
            * severity
            * c.disc(*c.point_in_lung(side), c.rng.uniform(0.022, 0.04))
            * c.lung[side]
        )


def _mass(c: Canvas, severity: float) -> None:
    side = c.side()
    cx, cy = c.point_in_lung(side, -0.4, 0.25)
    radius = c.rng.uniform(0.08, 0.14) * (1 + 0.12 * smooth_noise(c.rng, c.size, 12))  # lobulated
    c.density += 0.28 * severity * soft(radius - np.hypot(c.x - cx, c.y - cy), 0.02) * c.lungs


def _fibrosis(c: Canvas, severity: float) -> None:
    streaks = np.zeros_like(c.x)
    for angle in (c.rng.uniform(0, math.pi), c.rng.uniform(0, math.pi)):
        phase = 3.0 * smooth_noise(c.rng, c.size, 6)
        wave = np.sin(30 * (c.x * math.cos(angle) + c.y * math.sin(angle)) + phase)
        streaks += np.exp(-((wave / 0.18) ** 2))
    upper_outer = np.clip(0.6 - (c.y - LUNG_CY) / LUNG_RY, 0, 1)
    c.density += 0.09 * severity * streaks * upper_outer * c.lungs


def _pleural_thickening(c: Canvas, severity: float) -> None:
    for side in c.sides(both=0.3):
        width = c.rng.uniform(0.1, 0.18) * severity
        rim = soft(c.lung_shape[side] - (1 - width) ** 2, 0.04)
        lateral_or_apical = np.clip(c.lateral[side] + 0.3, 0, 1) + np.clip(-(c.y + 0.3) / 0.3, 0, 1)
        c.density += 0.2 * rim * np.clip(lateral_or_apical, 0, 1) * c.lung[side]


def _hernia(c: Canvas, severity: float) -> None:
    """Hiatus hernia: a gas bubble with a fluid level behind the heart, just above the diaphragm."""
    cx = c.rng.uniform(-0.05, 0.15)
    radius = c.rng.uniform(0.07, 0.11) * (0.8 + 0.2 * severity)
    cy = DOME_Y - radius * c.rng.uniform(0.3, 0.8)
    bubble = c.disc(cx, cy, radius)
    gas = bubble * soft(cy + 0.2 * radius - c.y, c.px)
    ring = np.exp(-(((np.hypot(c.x - cx, c.y - cy) - radius) / max(c.px, 0.012)) ** 2))
    c.density += -0.22 * gas + 0.05 * (bubble - gas) + 0.14 * ring


def _generic(index: int) -> Callable[[Canvas, float], None]:
    """A distinct signature for a pathology this generator does not know: a textured patch whose
    place, size, texture orientation and frequency, and polarity are fixed by the pathology index.
    """
    fixed = np.random.default_rng([index, 0xC0FFEE])
    side = int(fixed.choice(SIDES))
    lateral, height = fixed.uniform(-0.4, 0.4), fixed.uniform(-0.4, 0.3)
    radius = fixed.uniform(0.1, 0.16)
    angle = index * 2.399963  # golden angle: orientations spread out for any number of indices
    frequency = 12 + 5 * (index % 4)
    polarity = 1.0 if index % 2 == 0 else -0.7

    def signature(c: Canvas, severity: float) -> None:
        cx = side * (LUNG_CX + lateral * LUNG_RX) + c.rng.uniform(-0.05, 0.05)
        cy = LUNG_CY + height * LUNG_RY + c.rng.uniform(-0.05, 0.05)
        texture = 0.5 + 0.5 * np.cos(frequency * (c.x * math.cos(angle) + c.y * math.sin(angle)))
        c.density += polarity * 0.3 * severity * texture * c.disc(cx, cy, radius) * c.lungs

    return signature


# Cardiomegaly and Emphysema change only the anatomy's shape and air content (anatomy_for).
SHAPE_ONLY = {"Cardiomegaly", "Emphysema"}
SIGNATURES: dict[str, Callable[[Canvas, float], None]] = {
    "Effusion": _effusion,
    "Infiltration": _infiltration,
    "Consolidation": _consolidation,
    "Pneumonia": _pneumonia,
    "Edema": _edema,
    "Atelectasis": _atelectasis,
    "Pneumothorax": _pneumothorax,
    "Nodule": _nodule,
    "Mass": _mass,
    "Fibrosis": _fibrosis,
    "Pleural_Thickening": _pleural_thickening,
    "Hernia": _hernia,
}


def signature_for(pathology: str, pathologies: list[str]) -> Callable[[Canvas, float], None]:
    """The signature of `pathology`: its own, or a generic one fixed by its index in the list."""
    return SIGNATURES.get(pathology) or _generic(pathologies.index(pathology))


def anatomy_for(
    rng: np.random.Generator, findings: set[str], severity: dict[str, float]
) -> Anatomy:
    """The chest geometry of a patient with `findings`: the shape changes they make."""
    anatomy = Anatomy()
    if "Cardiomegaly" in findings:
        anatomy.heart_scale = 1 + rng.uniform(0.3, 0.5) * severity["Cardiomegaly"]
    if "Emphysema" in findings:  # over-inflated: darker, fewer vessels, low flat diaphragm
        anatomy.air *= 1 + 0.4 * severity["Emphysema"]
        anatomy.markings *= 0.35
        anatomy.dome_shift = {side: shift + 0.07 for side, shift in anatomy.dome_shift.items()}
        anatomy.dome_drop *= 0.5
    if "Atelectasis" in findings:  # volume loss lifts the hemidiaphragm on that side
        anatomy.atelectasis_side = int(rng.choice(SIDES))
        anatomy.dome_shift[anatomy.atelectasis_side] -= 0.06
    return anatomy
