"""The demo radiograph's anatomy: a chest drawn procedurally, before any finding is added.

Coordinates: x, y in [-1, 1], x to the image right (the patient's left in a PA film), y downwards.
Values are densities in [0, 1]: bright = attenuating, as on a film. All drawing is vectorised numpy
over the whole image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

LUNG_CX, LUNG_CY, LUNG_RX, LUNG_RY = 0.37, -0.04, 0.3, 0.62
DOME_Y, DOME_DROP = 0.42, 0.14  # hemidiaphragm top, and how much lower its edges lie
HEART_CX, HEART_CY, HEART_RX, HEART_RY = 0.08, 0.26, 0.28, 0.24
SIDES = (-1, 1)


@functools.lru_cache(maxsize=16)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) coordinates of the pixel centres of a size x size image."""
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


def soft(value: np.ndarray, width: float) -> np.ndarray:
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
        return soft(radius - distance, max(self.px, 0.25 * radius))

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


def lung_ellipse(
    x: np.ndarray, y: np.ndarray, side: int, rx: float, ry: float, cx: float
) -> np.ndarray:
    """The lung on `side` as a tapered ellipse: the equation's value, < 1 inside the lung."""
    lateral = (side * x - cx) / rx
    height = (y - LUNG_CY) / ry
    taper = 1 - 0.3 * np.clip(-height, 0, 1)  # narrower apex
    return (lateral / taper) ** 2 + height**2


def draw_anatomy(rng: np.random.Generator, size: int, anatomy: Anatomy, view: str) -> Canvas:
    """The chest of `anatomy` (body, lungs, heart, bones) as a PA or AP film, without vessels."""
    gx, gy = grid(size)
    ap = view == "AP"
    # Patient position and magnification jitter; AP bedside films are less well aligned.
    angle = rng.uniform(-0.05, 0.05) * (1.6 if ap else 1.0)
    scale = rng.uniform(0.9, 1.08)
    dx, dy = rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06)
    cos, sin = math.cos(angle), math.sin(angle)
    x = (cos * (gx - dx) + sin * (gy - dy)) / scale
    y = (-sin * (gx - dx) + cos * (gy - dy)) / scale
    px = 2.0 / size / scale

    body = soft(1 - (np.abs(x) / 0.86) ** 4 - (np.abs(y - 0.25) / 1.0) ** 4, 0.08)
    neck = soft(0.2 - np.abs(x), px) * soft(-0.55 - y, 0.05)
    tissue = np.maximum(body, neck)
    density = 0.06 + 0.52 * tissue

    lung, lung_shape, lateral, dome = {}, {}, {}, {}
    inspiration = -0.05 if ap else 0.0  # supine films are taken in shallower inspiration
    for side in SIDES:
        lung_shape[side] = lung_ellipse(x, y, side, LUNG_RX, LUNG_RY, LUNG_CX)
        lateral[side] = (side * x - LUNG_CX) / LUNG_RX
        dome[side] = (
            DOME_Y + anatomy.dome_shift[side] + inspiration + anatomy.dome_drop * lateral[side] ** 2
        )
        lung[side] = soft(1 - lung_shape[side], 0.08) * soft(dome[side] - y, max(px, 0.02))

    heart_scale = anatomy.heart_scale * (1.08 if ap else 1.0)  # AP magnifies the heart
    heart_rx = HEART_RX * heart_scale * rng.uniform(0.93, 1.07)
    heart_ry = HEART_RY * (1 + 0.3 * (heart_scale - 1))
    heart = soft(1 - ((x - HEART_CX) / heart_rx) ** 2 - ((y - HEART_CY) / heart_ry) ** 2, 0.1)
    mediastinum = soft(0.1 - np.abs(x - 0.02), 0.04) * soft(0.3 - y, 0.05) * soft(y + 0.75, 0.05)
    aortic_knob = soft(1 - ((x - 0.12) ** 2 + (y + 0.3) ** 2) / 0.07**2, 0.2)
    central = np.maximum.reduce([heart, mediastinum, aortic_knob])

    for side in SIDES:
        lung[side] = lung[side] * (1 - central)
        density -= anatomy.air * rng.uniform(0.9, 1.1) * lung[side]
    # The heart shows only as the lung it displaces, merging with the abdomen below, as on a film.
    density += 0.06 * tissue * soft(y - DOME_Y, 0.1)

    spine = soft(0.07 - np.abs(x), px) * tissue
    density += spine * (1 - 0.6 * central) * (0.06 + 0.02 * np.cos(2 * np.pi * 9 * y))  # vertebrae
    _draw_ribs(density, x, y, tissue, rng, px)
    clavicle_rise = 0.06 if ap else 0.0  # lordotic AP projection lifts the clavicles
    for side in SIDES:
        t = np.clip((side * x - 0.08) / 0.55, 0, 1)
        centre = -0.62 - clavicle_rise - 0.1 * t
        band = (
            soft(0.025 - np.abs(y - centre), px)
            * soft(0.6 - side * x, px)
            * soft(side * x - 0.08, px)
        )
        density += 0.1 * band
        if ap:  # scapulae project over the upper outer lungs on AP films
            scapula = soft(1 - ((side * x - 0.68) / 0.14) ** 2 - ((y + 0.25) / 0.35) ** 2, 0.2)
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
        soft(0.82 - np.abs(x), 0.04)
        * soft(np.abs(x) - 0.06, px)
        * soft(DOME_Y + 0.3 - y, 0.1)
        * tissue
    )
    spacing = rng.uniform(0.12, 0.14)
    for k in range(10):
        start = -0.72 + k * spacing
        centre = start + 0.05 * reach + 0.5 * reach**2  # the arc out and down from the spine
        density += 0.05 * soft(0.022 - np.abs(y - centre), px) * inside


def draw_markings(canvas: Canvas, anatomy: Anatomy) -> None:
    """Vessels: fine texture, densest near the hila, where lung markings are visible."""
    rng, size = canvas.rng, canvas.size
    texture = 0.6 * smooth_noise(rng, size, 6) + smooth_noise(rng, size, 20)
    for side in SIDES:
        hilum = np.hypot(canvas.x - side * 0.2, canvas.y + 0.05)
        gain = 0.045 * anatomy.markings * np.clip(1.2 - hilum, 0.2, 1.0)
        canvas.density += gain * (texture + 0.8) * canvas.lung[side] * canvas.markings_gain
