"""Synthetic chest-radiograph cohort in the exact NIH ChestX-ray14 download layout.

The offline demo needs a cohort that exercises every code path a real NIH download does: the
label table with NIH's header and value formats, patients with several follow-ups, PA and AP views,
"No Finding" as the majority, co-occurring findings, `images_00k/images/*.png` folders, the official
patient-disjoint lists, rows whose images were never downloaded, and the odd RGBA or 16-bit PNG.
Each finding leaves a visual signature on a procedurally drawn radiograph (enlarged heart, fluid
level, nodules, ...) so that a feature extractor has a real but not trivial signal to learn.

All drawing is vectorised numpy over the whole image; per-image randomness comes from a generator
seeded by (seed, patient, follow-up), so an image does not depend on the order it is drawn in.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

log = logging.getLogger(__name__)

NIH_COLUMNS = [
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    # NIH's header really spells these as "OriginalImage[Width,Height]" without quoting, so a CSV
    # reader sees four columns; writing these four names reproduces the header byte for byte.
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
]
LABEL_SEPARATOR = "|"
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"

# --- The cohort model. These numbers describe the synthetic world, not user choices. ---
# Relative frequency of each finding among abnormal images: NIH's own label counts.
NIH_FINDING_WEIGHTS = {
    "Infiltration": 19894,
    "Effusion": 13317,
    "Atelectasis": 11559,
    "Nodule": 6331,
    "Mass": 5782,
    "Pneumothorax": 5302,
    "Consolidation": 4667,
    "Pleural_Thickening": 3385,
    "Cardiomegaly": 2776,
    "Emphysema": 2516,
    "Edema": 2303,
    "Fibrosis": 1686,
    "Pneumonia": 1431,
    "Hernia": 227,
}
# P(also finding B | primary finding A): the clinically familiar clusters (heart failure:
# cardiomegaly + effusion + edema; pneumonia with infiltrates; emphysema with pneumothorax, ...).
CO_OCCURRENCE = {
    "Effusion": {"Cardiomegaly": 0.12, "Edema": 0.08, "Atelectasis": 0.2, "Infiltration": 0.15},
    "Cardiomegaly": {"Effusion": 0.35, "Edema": 0.1},
    "Edema": {"Effusion": 0.35, "Infiltration": 0.3, "Cardiomegaly": 0.15},
    "Pneumonia": {"Infiltration": 0.4, "Consolidation": 0.15, "Effusion": 0.1},
    "Consolidation": {"Effusion": 0.2, "Atelectasis": 0.2, "Infiltration": 0.2},
    "Atelectasis": {"Effusion": 0.25, "Infiltration": 0.2},
    "Mass": {"Nodule": 0.2, "Effusion": 0.1},
    "Nodule": {"Mass": 0.1, "Infiltration": 0.1},
    "Emphysema": {"Pneumothorax": 0.15},
    "Pneumothorax": {"Emphysema": 0.1, "Effusion": 0.1},
    "Fibrosis": {"Pleural_Thickening": 0.2, "Infiltration": 0.15},
    "Pleural_Thickening": {"Effusion": 0.15, "Fibrosis": 0.1},
    "Infiltration": {"Effusion": 0.15, "Atelectasis": 0.12, "Nodule": 0.05},
}
EXTRA_FINDING_PROBABILITY = 0.1  # an unrelated second finding
ABNORMAL_PROPENSITY = (1.3, 1.8)  # Beta(a, b) per patient: mean 0.42, so ~58 % "No Finding"
CHRONIC_PROBABILITY = 0.5  # an abnormal follow-up shows the patient's chronic finding
FOLLOW_UP_P = 0.4  # images per patient ~ Geometric(p): mean 2.5, like NIH's long tail ...
MAX_IMAGES_PER_PATIENT = 12  # ... cut so that one patient cannot dominate a small demo
AP_PROBABILITY = {False: 0.25, True: 0.5}  # by abnormal: bedside (AP) films are of sicker patients
MALE_PROBABILITY = 0.56
AGE_MEAN, AGE_SD = 47.0, 16.0
BIRTHDAY_BETWEEN_FOLLOW_UPS = 0.3  # follow-ups span months to a few years
TEST_SHARE = 0.228  # NIH: 25,596 of 112,120 images in test_list.txt
# Guaranteed positives per pathology among written images (at most), so rare findings such as
# Hernia exist in small demos; never more than an equal share of the abnormal images.
MIN_POSITIVES = 3
# NIH pixel spacings (mm) and their frequencies, for detectors ~2,500 px wide: the written image
# covers the same field, so its spacing is scaled by 2500 / image_size.
NIH_SPACINGS_MM = (0.143, 0.168, 0.139, 0.171, 0.194311)
NIH_SPACING_WEIGHTS = (0.36, 0.32, 0.18, 0.09, 0.05)
DETECTOR_PIXELS = 2500


class DemoCohortError(ValueError):
    """Bad demo-cohort arguments; the message names the argument and what was expected."""


# ----------------------------------------------------------------------------------------------
# Label table
# ----------------------------------------------------------------------------------------------


def _finding_weights(pathologies: list[str]) -> np.ndarray:
    """NIH frequencies for NIH findings; pathologies unknown to NIH get their median frequency."""
    median = float(np.median(list(NIH_FINDING_WEIGHTS.values())))
    weights = np.array([NIH_FINDING_WEIGHTS.get(p, median) for p in pathologies], dtype=float)
    return weights / weights.sum()


def _draw_findings(
    rng: np.random.Generator, pathologies: list[str], weights: np.ndarray, chronic: int
) -> set[str]:
    primary = (
        chronic
        if rng.random() < CHRONIC_PROBABILITY
        else int(rng.choice(len(pathologies), p=weights))
    )
    findings = {pathologies[primary]}
    for other, probability in CO_OCCURRENCE.get(pathologies[primary], {}).items():
        if other in pathologies and rng.random() < probability:
            findings.add(other)
    if rng.random() < EXTRA_FINDING_PROBABILITY:
        findings.add(pathologies[int(rng.choice(len(pathologies), p=weights))])
    return findings


def _draw_patients(rng: np.random.Generator, n_rows: int) -> list[int]:
    """Images per patient, summing to n_rows."""
    counts: list[int] = []
    remaining = n_rows
    while remaining > 0:
        count = min(int(rng.geometric(FOLLOW_UP_P)), MAX_IMAGES_PER_PATIENT, remaining)
        counts.append(count)
        remaining -= count
    return counts


def draw_label_table(
    rng: np.random.Generator, pathologies: list[str], n_rows: int, image_size: int
) -> tuple[pd.DataFrame, list[set[str]]]:
    """NIH-format label table of n_rows images (sorted by image id) and each row's finding set."""
    weights = _finding_weights(pathologies)
    rows: list[dict] = []
    findings: list[set[str]] = []
    for patient, count in enumerate(_draw_patients(rng, n_rows), start=1):
        propensity = rng.beta(*ABNORMAL_PROPENSITY)
        chronic = int(rng.choice(len(pathologies), p=weights))
        sex = "M" if rng.random() < MALE_PROBABILITY else "F"
        age = int(np.clip(round(rng.normal(AGE_MEAN, AGE_SD)), 1, 95))
        for follow_up in range(count):
            abnormal = bool(rng.random() < propensity)
            image_findings = (
                _draw_findings(rng, pathologies, weights, chronic) if abnormal else set()
            )
            spacing = (
                rng.choice(NIH_SPACINGS_MM, p=NIH_SPACING_WEIGHTS) * DETECTOR_PIXELS / image_size
            )
            rows.append(
                {
                    "Image Index": f"{patient:08d}_{follow_up:03d}.png",
                    "Follow-up #": follow_up,
                    "Patient ID": patient,
                    "Patient Age": min(age, 95),
                    "Patient Gender": sex,
                    "View Position": "AP" if rng.random() < AP_PROBABILITY[abnormal] else "PA",
                    "OriginalImage[Width": image_size,
                    "Height]": image_size,
                    "OriginalImagePixelSpacing[x": round(float(spacing), 6),
                    "y]": round(float(spacing), 6),
                }
            )
            findings.append(image_findings)
            age += int(rng.random() < BIRTHDAY_BETWEEN_FOLLOW_UPS)
    return pd.DataFrame(rows), findings


def _guarantee_positives(
    rng: np.random.Generator, findings: list[set[str]], written: np.ndarray, pathologies: list[str]
) -> None:
    """Add rare findings to abnormal written images until each has its minimum count (in place)."""
    abnormal = [i for i in written if findings[i]]
    wanted = min(MIN_POSITIVES, max(1, len(abnormal) // len(pathologies)))
    for pathology in pathologies:
        have = sum(pathology in findings[i] for i in written)
        candidates = [i for i in abnormal if pathology not in findings[i]]
        for i in rng.permutation(candidates)[: max(0, wanted - have)]:
            findings[i].add(pathology)


def label_strings(findings: list[set[str]], no_finding_label: str) -> list[str]:
    # NIH lists co-occurring findings in alphabetical order.
    return [LABEL_SEPARATOR.join(sorted(f)) if f else no_finding_label for f in findings]


def official_lists(table: pd.DataFrame, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Patient-disjoint (train_val, test) image lists over every listed image, like NIH's."""
    sizes = table.groupby("Patient ID").size()
    patients = rng.permutation(sizes.index.to_numpy())
    cumulative = np.cumsum(sizes.loc[patients].to_numpy())
    # At least one patient on each side whenever there are two.
    n_test_patients = min(
        int(np.searchsorted(cumulative, TEST_SHARE * len(table))) + 1, max(1, len(patients) - 1)
    )
    is_test = table["Patient ID"].isin(patients[:n_test_patients])
    return sorted(table.loc[~is_test, "Image Index"]), sorted(table.loc[is_test, "Image Index"])


# ----------------------------------------------------------------------------------------------
# Radiograph drawing. Coordinates: x, y in [-1, 1], x to the image right (the patient's left in
# a PA film), y downwards. Values are densities in [0, 1]: bright = attenuating, as on a film.
# ----------------------------------------------------------------------------------------------

LUNG_CX, LUNG_CY, LUNG_RX, LUNG_RY = 0.37, -0.04, 0.3, 0.62
DOME_Y, DOME_DROP = 0.42, 0.14  # hemidiaphragm top, and how much lower its edges lie
HEART_CX, HEART_CY, HEART_RX, HEART_RY = 0.08, 0.26, 0.28, 0.24
SIDES = (-1, 1)
SEVERITY_RANGE = (0.6, 1.1)  # scales each finding's signature: mild to florid
SIDE_MARKER_PROBABILITY = 0.7


@functools.lru_cache(maxsize=16)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    # float32 throughout: half the memory traffic of float64, ample precision for 16-bit output.
    centres = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    y, x = np.meshgrid(centres, centres, indexing="ij")
    return x, y


@functools.lru_cache(maxsize=32)
def _upsampler(size: int, cells: int) -> np.ndarray:
    """(size x cells) Gaussian interpolation matrix: coarse random grid -> smooth field."""
    position = (np.arange(size) + 0.5) / size * cells
    kernel = np.exp(-0.5 * ((position[:, None] - (np.arange(cells) + 0.5)[None, :]) / 0.7) ** 2)
    return (kernel / kernel.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field with about `cells` features across the image, unit variance."""
    up = _upsampler(size, cells)
    field_ = up @ rng.standard_normal((cells, cells), dtype=np.float32) @ up.T
    return (field_ - field_.mean()) / (field_.std() + 1e-12)


def _soft(value: np.ndarray, width: float) -> np.ndarray:
    """0 -> 1 ramp of the given width around value = 0 (anti-aliased masks)."""
    return np.clip(value / width + 0.5, 0.0, 1.0)


@dataclass
class Anatomy:
    """Geometry of one patient's chest, changed by the findings that change shape."""

    heart_scale: float = 1.0
    # The right hemidiaphragm (image left on a PA film) usually sits a little higher.
    dome_shift: dict[int, float] = field(default_factory=lambda: {-1: -0.02, 1: 0.0})
    dome_drop: float = DOME_DROP
    air: float = 0.36
    markings: float = 1.0
    atelectasis_side: int = 0


@dataclass
class Canvas:
    """A radiograph being drawn, with the masks that finding signatures need."""

    rng: np.random.Generator
    anatomy: Anatomy
    size: int
    x: np.ndarray
    y: np.ndarray
    density: np.ndarray
    lung: dict[int, np.ndarray]  # side -> soft mask of the aerated (dark) lung
    lung_shape: dict[int, np.ndarray]  # side -> ellipse equation value (< 1 inside)
    lateral: dict[int, np.ndarray]  # side -> lung-local lateral coordinate (+1 = outer edge)
    dome: dict[int, np.ndarray]  # side -> diaphragm height under each column
    markings_gain: np.ndarray  # where lung markings are visible (pneumothorax removes them)

    @property
    def px(self) -> float:
        return 2.0 / self.size

    @property
    def lungs(self) -> np.ndarray:
        return self.lung[-1] + self.lung[1]

    def disc(self, cx: float, cy: float, radius: float) -> np.ndarray:
        distance = np.hypot(self.x - cx, self.y - cy)
        return _soft(radius - distance, max(self.px, 0.25 * radius))

    def point_in_lung(
        self, side: int, low: float = -0.5, high: float = 0.35
    ) -> tuple[float, float]:
        lateral = self.rng.uniform(-0.55, 0.55)
        height = self.rng.uniform(low, high)
        return side * (LUNG_CX + lateral * LUNG_RX), LUNG_CY + height * LUNG_RY

    def side(self) -> int:
        return int(self.rng.choice(SIDES))

    def sides(self, both: float = 0.35) -> tuple[int, ...]:
        return SIDES if self.rng.random() < both else (self.side(),)


def _lung_shape(
    x: np.ndarray, y: np.ndarray, side: int, rx: float, ry: float, cx: float
) -> np.ndarray:
    lateral = (side * x - cx) / rx
    height = (y - LUNG_CY) / ry
    taper = 1 - 0.3 * np.clip(-height, 0, 1)  # narrower apex
    return (lateral / taper) ** 2 + height**2


def _draw_anatomy(rng: np.random.Generator, size: int, anatomy: Anatomy, view: str) -> Canvas:
    gx, gy = _grid(size)
    ap = view == "AP"
    # Patient position and magnification jitter; AP bedside films are less well aligned.
    angle = rng.uniform(-0.05, 0.05) * (1.6 if ap else 1.0)
    scale = rng.uniform(0.9, 1.08)
    dx, dy = rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06)
    cos, sin = math.cos(angle), math.sin(angle)
    x = (cos * (gx - dx) + sin * (gy - dy)) / scale
    y = (-sin * (gx - dx) + cos * (gy - dy)) / scale
    px = 2.0 / size / scale

    body = _soft(1 - (np.abs(x) / 0.86) ** 4 - (np.abs(y - 0.25) / 1.0) ** 4, 0.08)
    neck = _soft(0.2 - np.abs(x), px) * _soft(-0.55 - y, 0.05)
    tissue = np.maximum(body, neck)
    density = 0.06 + 0.52 * tissue

    lung, lung_shape, lateral, dome = {}, {}, {}, {}
    inspiration = -0.05 if ap else 0.0  # supine films are taken in shallower inspiration
    for side in SIDES:
        lung_shape[side] = _lung_shape(x, y, side, LUNG_RX, LUNG_RY, LUNG_CX)
        lateral[side] = (side * x - LUNG_CX) / LUNG_RX
        dome[side] = (
            DOME_Y + anatomy.dome_shift[side] + inspiration + anatomy.dome_drop * lateral[side] ** 2
        )
        lung[side] = _soft(1 - lung_shape[side], 0.08) * _soft(dome[side] - y, max(px, 0.02))

    heart_scale = anatomy.heart_scale * (1.08 if ap else 1.0)  # AP magnifies the heart
    heart_rx = HEART_RX * heart_scale * rng.uniform(0.93, 1.07)
    heart_ry = HEART_RY * (1 + 0.3 * (heart_scale - 1))
    heart = _soft(1 - ((x - HEART_CX) / heart_rx) ** 2 - ((y - HEART_CY) / heart_ry) ** 2, 0.1)
    mediastinum = _soft(0.1 - np.abs(x - 0.02), 0.04) * _soft(0.3 - y, 0.05) * _soft(y + 0.75, 0.05)
    aortic_knob = _soft(1 - ((x - 0.12) ** 2 + (y + 0.3) ** 2) / 0.07**2, 0.2)
    central = np.maximum.reduce([heart, mediastinum, aortic_knob])

    for side in SIDES:
        lung[side] = lung[side] * (1 - central)
        density -= anatomy.air * rng.uniform(0.9, 1.1) * lung[side]
    # The heart shows only as the lung it displaces, merging with the abdomen below, as on a film.
    density += 0.06 * tissue * _soft(y - DOME_Y, 0.1)

    spine = _soft(0.07 - np.abs(x), px) * tissue
    density += spine * (1 - 0.6 * central) * (0.06 + 0.02 * np.cos(2 * np.pi * 9 * y))  # vertebrae
    _draw_ribs(density, x, y, tissue, rng, px)
    clavicle_rise = 0.06 if ap else 0.0  # lordotic AP projection lifts the clavicles
    for side in SIDES:
        t = np.clip((side * x - 0.08) / 0.55, 0, 1)
        centre = -0.62 - clavicle_rise - 0.1 * t
        band = (
            _soft(0.025 - np.abs(y - centre), px)
            * _soft(0.6 - side * x, px)
            * _soft(side * x - 0.08, px)
        )
        density += 0.1 * band
        if ap:  # scapulae project over the upper outer lungs on AP films
            scapula = _soft(1 - ((side * x - 0.68) / 0.14) ** 2 - ((y + 0.25) / 0.35) ** 2, 0.2)
            density += 0.06 * scapula * tissue

    return Canvas(
        rng, anatomy, size, x, y, density, lung, lung_shape, lateral, dome, np.ones_like(x)
    )


def _draw_ribs(
    density: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    tissue: np.ndarray,
    rng: np.random.Generator,
    px: float,
) -> None:
    reach = np.clip(np.abs(x) - 0.06, 0, None)  # distance from the spine
    inside = (
        _soft(0.82 - np.abs(x), 0.04)
        * _soft(np.abs(x) - 0.06, px)
        * _soft(DOME_Y + 0.3 - y, 0.1)
        * tissue
    )
    spacing = rng.uniform(0.12, 0.14)
    for k in range(10):
        start = -0.72 + k * spacing
        centre = start + 0.05 * reach + 0.5 * reach**2  # the arc out and down from the spine
        density += 0.05 * _soft(0.022 - np.abs(y - centre), px) * inside


def _markings(canvas: Canvas, anatomy: Anatomy) -> None:
    """Vessels: fine texture, densest near the hila, where lung markings are visible."""
    rng, size = canvas.rng, canvas.size
    texture = 0.6 * smooth_noise(rng, size, 6) + smooth_noise(rng, size, 20)
    for side in SIDES:
        hilum = np.hypot(canvas.x - side * 0.2, canvas.y + 0.05)
        gain = 0.045 * anatomy.markings * np.clip(1.2 - hilum, 0.2, 1.0)
        canvas.density += gain * (texture + 0.8) * canvas.lung[side] * canvas.markings_gain


# --- Finding signatures: each adds density to the canvas (drawn with its own severity). ---


def _effusion(c: Canvas, severity: float) -> None:
    for side in c.sides():
        depth = c.rng.uniform(0.15, 0.35) * severity
        level = DOME_Y + DOME_DROP - depth
        meniscus = level - 0.15 * np.clip(c.lateral[side], 0, 1)  # climbs the lateral chest wall
        c.density += 0.32 * _soft(c.y - meniscus, 0.04) * c.lung[side]


def _infiltration(c: Canvas, severity: float) -> None:
    patches = np.clip((smooth_noise(c.rng, c.size, 8) - 0.7) / 0.6, 0, 1)
    c.density += 0.15 * severity * patches * c.lungs


def _consolidation(c: Canvas, severity: float) -> None:
    side = c.side()
    cx, cy = c.point_in_lung(side, -0.2, 0.35)
    radius = c.rng.uniform(0.12, 0.2) * (1 + 0.2 * smooth_noise(c.rng, c.size, 10))
    lobe = _soft(radius - np.hypot(c.x - cx, c.y - cy), 0.02)  # dense, sharply bounded
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
    """A plate-like dense band in a lower zone (the raised hemidiaphragm is in _anatomy_for)."""
    side = c.anatomy.atelectasis_side
    cx, cy = c.point_in_lung(side, 0.1, 0.4)
    angle = c.rng.uniform(-0.35, 0.35)
    distance = -(c.x - cx) * math.sin(angle) + (c.y - cy) * math.cos(angle)
    thickness = c.rng.uniform(0.015, 0.03)
    c.density += 0.26 * severity * _soft(thickness - np.abs(distance), c.px) * c.lung[side]


def _pneumothorax(c: Canvas, severity: float) -> None:
    side = c.side()
    collapse = c.rng.uniform(0.15, 0.35) * severity
    # The collapsed lung: smaller, pulled towards the hilum; gas fills the space around it.
    rx, ry = LUNG_RX * (1 - collapse), LUNG_RY * (1 - 0.5 * collapse)
    collapsed = _lung_shape(
        c.x, c.y + 0.08 * collapse, side, rx, ry, LUNG_CX - 0.5 * collapse * LUNG_RX
    )
    gas = _soft(collapsed - 1, 0.05) * c.lung[side]
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
    c.density += 0.28 * severity * _soft(radius - np.hypot(c.x - cx, c.y - cy), 0.02) * c.lungs


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
        rim = _soft(c.lung_shape[side] - (1 - width) ** 2, 0.04)
        lateral_or_apical = np.clip(c.lateral[side] + 0.3, 0, 1) + np.clip(-(c.y + 0.3) / 0.3, 0, 1)
        c.density += 0.2 * rim * np.clip(lateral_or_apical, 0, 1) * c.lung[side]


def _hernia(c: Canvas, severity: float) -> None:
    """Hiatus hernia: a gas bubble with a fluid level behind the heart, just above the diaphragm."""
    cx = c.rng.uniform(-0.05, 0.15)
    radius = c.rng.uniform(0.07, 0.11) * (0.8 + 0.2 * severity)
    cy = DOME_Y - radius * c.rng.uniform(0.3, 0.8)
    bubble = c.disc(cx, cy, radius)
    gas = bubble * _soft(cy + 0.2 * radius - c.y, c.px)
    ring = np.exp(-(((np.hypot(c.x - cx, c.y - cy) - radius) / max(c.px, 0.012)) ** 2))
    c.density += -0.22 * gas + 0.05 * (bubble - gas) + 0.14 * ring


def _generic(index: int) -> Callable[[Canvas, float], None]:
    """A distinct signature for a pathology this generator does not know: a textured patch whose
    place, size, texture orientation and frequency, and polarity are fixed by the pathology index."""
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


# Cardiomegaly and Emphysema change only the anatomy's shape and air content (_anatomy_for).
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


def _anatomy_for(
    rng: np.random.Generator, findings: set[str], severity: dict[str, float]
) -> Anatomy:
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


def draw_radiograph(
    rng: np.random.Generator, size: int, findings: set[str], pathologies: list[str], view: str
) -> np.ndarray:
    """One synthetic radiograph as a float array in [0, 1] (size x size)."""
    ordered = [p for p in pathologies if p in findings]  # fixed order: reproducible draws
    severity = {p: rng.uniform(*SEVERITY_RANGE) for p in ordered}
    anatomy = _anatomy_for(rng, findings, severity)
    canvas = _draw_anatomy(rng, size, anatomy, view)
    for pathology in ordered:
        if pathology not in SHAPE_ONLY:
            signature = SIGNATURES.get(pathology) or _generic(pathologies.index(pathology))
            signature(canvas, severity[pathology])
    _markings(canvas, anatomy)
    if rng.random() < SIDE_MARKER_PROBABILITY:  # a lead "L"/"R" marker burnt into a top corner
        cx, cy = (
            float(rng.choice([-0.85, 0.85])) + rng.uniform(-0.05, 0.05),
            rng.uniform(-0.92, -0.75),
        )
        gx, gy = _grid(size)
        canvas.density += 0.8 * _soft(
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


# ----------------------------------------------------------------------------------------------
# The cohort on disk
# ----------------------------------------------------------------------------------------------


def _check_arguments(
    pathologies: list[str],
    no_finding_label: str,
    n_images: int,
    listed_not_downloaded: float,
    image_size: int,
    images_per_folder: int,
    rgba_fraction: float,
    sixteen_bit_fraction: float,
) -> None:
    if not pathologies:
        raise DemoCohortError("demo cohort: the list of pathologies is empty; name at least one.")
    if len(set(pathologies)) != len(pathologies):
        raise DemoCohortError(
            f"demo cohort: pathologies {pathologies} name a pathology twice; each must be unique."
        )
    bad = [p for p in pathologies if LABEL_SEPARATOR in p or "," in p or not p.strip()]
    if bad:
        raise DemoCohortError(
            f"demo cohort: pathology {bad[0]!r} cannot be written to an NIH label table "
            "(it must not be blank or contain '|' or ',')."
        )
    if no_finding_label in pathologies:
        raise DemoCohortError(
            f"demo cohort: no_finding_label {no_finding_label!r} is also listed as a pathology."
        )
    if n_images < 1 or image_size < 32 or images_per_folder < 1:
        raise DemoCohortError(
            f"demo cohort: n_images ({n_images}) and images_per_folder ({images_per_folder}) must be at "
            f"least 1 and image_size ({image_size}) at least 32."
        )
    if listed_not_downloaded < 0:
        raise DemoCohortError(
            f"demo cohort: listed_not_downloaded must be >= 0, got {listed_not_downloaded}."
        )
    fractions = (rgba_fraction, sixteen_bit_fraction)
    if min(fractions) < 0 or sum(fractions) > 1:
        raise DemoCohortError(
            f"demo cohort: rgba_fraction ({rgba_fraction}) and sixteen_bit_fraction ({sixteen_bit_fraction}) "
            "must be >= 0 and sum to at most 1."
        )


def _prepare_root(root: Path) -> Path:
    """Refuse to overwrite a cohort; return the temp sibling folder to write into."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DemoCohortError(
            f"demo cohort: {root} already exists and is not an empty folder; remove it to regenerate."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(f".{root.name}.partial")
    if partial.exists():  # left over from an interrupted run of this generator
        shutil.rmtree(partial)
    partial.mkdir()
    return partial


def write_demo_cohort(
    root: Path,
    pathologies: list[str],
    *,
    n_images: int,
    listed_not_downloaded: float,
    image_size: int,
    images_per_folder: int,
    rgba_fraction: float,
    sixteen_bit_fraction: float,
    seed: int,
    label_table: str = "Data_Entry_2017_v2020.csv",
    no_finding_label: str = "No Finding",
    train_val_list: str = TRAIN_VAL_LIST,
    test_list: str = TEST_LIST,
) -> dict:
    """Write a synthetic NIH-layout cohort into `root` (which must not exist or be empty).

    n_images PNGs are written; the label table and the official lists name
    round(listed_not_downloaded * n_images) more images that are not on disk. Returns counts.
    """
    _check_arguments(
        pathologies,
        no_finding_label,
        n_images,
        listed_not_downloaded,
        image_size,
        images_per_folder,
        rgba_fraction,
        sixteen_bit_fraction,
    )
    root = Path(root)
    started = time.perf_counter()
    table_rng, list_rng, file_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )

    n_rows = n_images + int(round(listed_not_downloaded * n_images))
    table, findings = draw_label_table(table_rng, pathologies, n_rows, image_size)
    written = np.sort(table_rng.choice(n_rows, size=n_images, replace=False))
    _guarantee_positives(table_rng, findings, written, pathologies)
    table.insert(1, "Finding Labels", label_strings(findings, no_finding_label))
    train_val, test = official_lists(table, list_rng)

    n_rgba = int(round(rgba_fraction * n_images))
    n_sixteen = int(round(sixteen_bit_fraction * n_images))
    order = file_rng.permutation(n_images)
    modes = np.full(n_images, "L", dtype=object)
    modes[order[:n_rgba]] = "RGBA"
    modes[order[n_rgba : n_rgba + n_sixteen]] = "I;16"

    partial = _prepare_root(root)
    try:
        table_path = partial / label_table
        table_path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(table_path, index=False, lineterminator="\n")
        # NIH's list files end without a final newline; readers must cope with both.
        (partial / train_val_list).write_text("\n".join(train_val))
        (partial / test_list).write_text("\n".join(test))
        for position, row_index in enumerate(written):
            row = table.iloc[row_index]
            folder = partial / f"images_{position // images_per_folder + 1:03d}" / "images"
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, int(row["Patient ID"]), int(row["Follow-up #"])])
            image = draw_radiograph(
                rng, image_size, findings[row_index], pathologies, row["View Position"]
            )
            to_png_image(image, modes[position]).save(folder / row["Image Index"])
            if (position + 1) % 200 == 0:
                log.info("drew %d of %d images", position + 1, n_images)
        if root.exists():
            root.rmdir()  # empty (checked above); Snakemake may have created it
        partial.rename(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise

    written_findings = [findings[i] for i in written]
    counts = {
        "listed": n_rows,
        "written": n_images,
        "not_downloaded": n_rows - n_images,
        "patients": int(table["Patient ID"].nunique()),
        "folders": (n_images - 1) // images_per_folder + 1,
        "modes": {mode: int((modes == mode).sum()) for mode in ("L", "RGBA", "I;16")},
        "views": {
            str(k): int(v) for k, v in table.iloc[written]["View Position"].value_counts().items()
        },
        "train_val": len(train_val),
        "test": len(test),
        "no_finding": sum(not f for f in written_findings),
        "positives": {p: sum(p in f for f in written_findings) for p in pathologies},
    }
    log.info(
        "wrote %d images (%d listed, %d patients) into %s in %.1f s",
        n_images,
        n_rows,
        counts["patients"],
        root,
        time.perf_counter() - started,
    )
    log.info("counts: %s", counts)
    return counts
