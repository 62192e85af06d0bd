"""Image loading that survives real archives, and the batches the embedding pipeline iterates.

Real chest X-ray archives mix 8-bit gray, RGBA (hundreds in NIH ChestX-ray14), 16-bit gray
(`I;16`), palette and JPEG files, plus the occasional truncated or mislabelled file. `load_image`
turns each into an 8-bit `L` (gray) or `RGB` image; the encoder's own preprocessing then resizes,
crops, replicates gray to three channels and normalises. Keeping gray images single-channel until
after the resize makes the resize of a 1024 px radiograph three times cheaper.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

# Modes whose samples are wider than 8 bits: rescaled by each image's own min..max range.
WIDE_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# Modes with an alpha channel, and what they become once the alpha is applied.
ALPHA_MODES = {"LA": "L", "La": "L", "RGBA": "RGB", "RGBa": "RGB", "PA": "RGB"}
# What PIL raises for missing, foreign, truncated or corrupt files
# (plugins leak zlib/struct errors).
DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    ValueError,
    SyntaxError,
    zlib.error,
    struct.error,
    Image.DecompressionBombError,
)


class ImageLoadError(ValueError):
    """A file that cannot be decoded as an image; the message names it."""


def _rescale_to_8bit(image: Image.Image) -> Image.Image:
    """Map the image's real value range (not the type's range) onto 0..255.

    16-bit radiographs often use only 10-12 bits; clipping or dividing by 256 would leave them
    nearly black, and 32-bit or float images have no fixed range at all.
    """
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        scaled = np.zeros(values.shape, dtype=np.uint8)
    else:
        scaled = np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _apply_alpha(image: Image.Image) -> Image.Image:
    """Composite onto black: the background of a radiograph is black, so transparent = black."""
    target = ALPHA_MODES[image.mode]
    if image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("La", "RGBa"):  # premultiplied already
        return image.convert(target)
    alpha = image.getchannel("A")
    colour = image.convert(target)
    if alpha.getextrema() == (255, 255):  # fully opaque, the usual case in NIH's RGBA files
        return colour
    black = Image.new(target, image.size, 0)
    return Image.composite(colour, black, alpha)


def to_gray_or_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded PIL image to 8-bit `L` or `RGB`."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in WIDE_MODES:
        return _rescale_to_8bit(image)
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        has_alpha = "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        return _apply_alpha(image) if has_alpha else image
    if mode in ALPHA_MODES:
        return _apply_alpha(image)
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def load_image(path: str | Path) -> Image.Image:
    """Open and fully decode one image as 8-bit `L` or `RGB`.

    Raises ImageLoadError naming the file when it is missing, is not an image, or is truncated.
    """
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later in a transform
            return to_gray_or_rgb(image)
    except DECODE_ERRORS as error:
        reason = str(error) or type(error).__name__
        raise ImageLoadError(f"image {path} could not be decoded ({reason}).") from error


class ImageDataset:
    """Map-style dataset of (row, pixel tensor, error message) for a DataLoader.

    A file that cannot be decoded yields a zero tensor of the right shape and its error message,
    so that one bad file neither kills a worker nor shifts the rows of a batch; the consumer
    decides whether to skip it or stop.
    """

    def __init__(
        self, paths: Sequence[str], preprocess: Callable[[Image.Image], Any], shape: tuple[int, ...]
    ):
        self.paths = list(paths)
        self.preprocess = preprocess
        self.shape = shape

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, row: int) -> tuple[int, Any, str]:
        import torch

        try:
            pixels = self.preprocess(load_image(self.paths[row]))
        except ImageLoadError as error:
            return row, torch.zeros(self.shape), str(error)
        return row, pixels, ""


def chunk_batches(start: int, stop: int, chunk_size: int, batch_size: int) -> Iterator[list[int]]:
    """Row batches for rows start..stop that never straddle a chunk boundary.

    Batches are laid out from the chunk's first row, so a run resumed at a chunk boundary sees
    exactly the batches an uninterrupted run sees, and gives bit-identical features. A run whose
    every row is encoded (start == stop, a last chunk shorter than chunk_size) has no batches.
    """
    if start % chunk_size and start != stop:
        raise ValueError(
            f"resume row {start} is not at a chunk boundary (chunk size {chunk_size})."
        )
    for chunk_start in range(start, stop, chunk_size):
        chunk_stop = min(chunk_start + chunk_size, stop)
        for batch_start in range(chunk_start, chunk_stop, batch_size):
            yield list(range(batch_start, min(batch_start + batch_size, chunk_stop)))


def _quiet_worker(_: int) -> None:
    # Each worker decodes on its own core; torch ops inside preprocessing must not spawn threads.
    import torch

    torch.set_num_threads(1)


def make_loader(
    dataset: ImageDataset,
    batches: list[list[int]],
    num_workers: int,
    pin_memory: bool,
    prefetch_factor: int,
) -> Any:
    """A DataLoader over fixed batches, with worker processes and (on GPU) pinned memory."""
    from torch.utils.data import DataLoader

    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"prefetch_factor": prefetch_factor, "worker_init_fn": _quiet_worker}
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=pin_memory,
        **extra,
    )
