"""The demo cohort on disk, in the exact NIH ChestX-ray14 download layout.

The label table with NIH's header and value formats, `images_00k/images/*.png` folders, the official
patient-disjoint lists, rows whose images were never downloaded, and the odd RGBA or 16-bit PNG.
The cohort appears under its final name only when complete.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from probelab.demo.labels import (
    LABEL_SEPARATOR,
    draw_label_table,
    guarantee_positives,
    label_strings,
    official_lists,
)
from probelab.demo.radiograph import draw_radiograph, to_png_image

log = logging.getLogger(__name__)

# NIH's names of the official list files (the config's data section may rename them).
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"
# The config's `demo` keys that shape the cohort (`enabled` only switches the rule on).
DEMO_KEYS = (
    "n_images",
    "listed_not_downloaded",
    "image_size",
    "images_per_folder",
    "rgba_fraction",
    "sixteen_bit_fraction",
    "seed",
)


class DemoCohortError(ValueError):
    """Bad demo-cohort arguments; the message names the argument and what was expected."""


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
            f"demo cohort: n_images ({n_images}) and images_per_folder ({images_per_folder}) "
            f"must be at least 1 and image_size ({image_size}) at least 32."
        )
    if listed_not_downloaded < 0:
        raise DemoCohortError(
            f"demo cohort: listed_not_downloaded must be >= 0, got {listed_not_downloaded}."
        )
    fractions = (rgba_fraction, sixteen_bit_fraction)
    if min(fractions) < 0 or sum(fractions) > 1:
        raise DemoCohortError(
            f"demo cohort: rgba_fraction ({rgba_fraction}) and sixteen_bit_fraction "
            f"({sixteen_bit_fraction}) must be >= 0 and sum to at most 1."
        )


def _prepare_root(root: Path) -> Path:
    """Refuse to overwrite a cohort; return the temp sibling folder to write into."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DemoCohortError(
            f"demo cohort: {root} already exists and is not an empty folder; "
            "remove it to regenerate."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(f".{root.name}.partial")
    if partial.exists():  # left over from an interrupted run of this generator
        shutil.rmtree(partial)
    partial.mkdir()
    return partial


def _image_modes(
    rng: np.random.Generator, n_images: int, rgba_fraction: float, sixteen_bit_fraction: float
) -> np.ndarray:
    """The PNG mode of each written image: 'L', with the given shares of 'RGBA' and 'I;16'."""
    n_rgba = int(round(rgba_fraction * n_images))
    n_sixteen = int(round(sixteen_bit_fraction * n_images))
    order = rng.permutation(n_images)
    modes = np.full(n_images, "L", dtype=object)
    modes[order[:n_rgba]] = "RGBA"
    modes[order[n_rgba : n_rgba + n_sixteen]] = "I;16"
    return modes


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
    guarantee_positives(table_rng, findings, written, pathologies)
    table.insert(1, "Finding Labels", label_strings(findings, no_finding_label))
    train_val, test = official_lists(table, list_rng)

    modes = _image_modes(file_rng, n_images, rgba_fraction, sixteen_bit_fraction)

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


def demo_cohort(
    root: Path,
    pathologies: list[str],
    demo: dict[str, Any],
    *,
    label_table: str,
    no_finding_label: str,
    lists: dict[str, str] | None = None,
) -> dict:
    """Generate the cohort described by the config's `demo` section into `root`; return its counts.

    `lists` optionally renames the official list files: {"train_val_list": ..., "test_list": ...}.
    """
    missing = [key for key in DEMO_KEYS if key not in demo]
    if missing:
        raise DemoCohortError(
            f"config section 'demo' has no key {missing[0]!r}; "
            f"expected keys {', '.join(DEMO_KEYS)}."
        )
    return write_demo_cohort(
        root,
        list(pathologies),
        **{key: demo[key] for key in DEMO_KEYS},
        label_table=label_table,
        no_finding_label=no_finding_label,
        **(lists or {}),
    )
