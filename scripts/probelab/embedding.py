"""The embed stage: an encoder's image cache and prompt cache (docs/architecture.md).

`embed_images` encodes every image of the cohort index once. Images are decoded and preprocessed
by DataLoader worker processes while the main process runs the model, so the run goes at the
speed of the slower of the two. Features are saved chunk by chunk: a killed run resumes after the
last complete chunk with identical results, and the HDF5 cache appears under its final name only
when complete (probelab.cache.ResumableImageCache).

`embed_prompts` embeds the prompt templates x pathologies with the encoder's text tower:
per-template embeddings, the per-pathology average (normalise, average, renormalise), the
flattened mega-vector, and the model's logit scale and bias.

torch is imported only when a step runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probelab.cache import (
    CacheMismatchError,
    ResumableImageCache,
    fingerprint_attrs,
    write_prompt_cache,
)
from probelab.cohort import index_hash
from probelab.fingerprint import describe_mismatch, encoder_fingerprint, prompt_fingerprint
from probelab.images import ImageDataset, ImageLoadError, chunk_batches, make_loader
from probelab.prompts import average_templates, mega_vector, render_prompts

log = logging.getLogger(__name__)


class NoTextTowerError(ValueError):
    """Prompt embeddings were asked of an encoder without a text tower."""


@dataclass
class EmbedSummary:
    n_images: int
    n_encoded: int
    n_failed: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.n_encoded / self.seconds if self.seconds > 0 else float("nan")


class _LogLines:
    """File-like sink that turns tqdm's carriage-return updates into log lines."""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            log.info(line)

    def flush(self) -> None:
        pass


def read_index(index_path: Path) -> pd.DataFrame:
    """The cohort index, refusing one without image_id and path columns or without rows."""
    index = pd.read_parquet(index_path)
    missing = [column for column in ("image_id", "path") if column not in index.columns]
    if missing:
        raise ValueError(
            f"index {index_path} lacks the column '{missing[0]}' (expected image_id and path)."
        )
    if index.empty:
        raise ValueError(f"index {index_path} lists no images, so there is nothing to embed.")
    return index


def loader_workers(configured: int | str, threads: int | None) -> int:
    """Decoding workers: the configured number, or with `auto` one per thread of the job."""
    return max(1, threads or 1) if configured == "auto" else int(configured)


def _check_expected(fingerprint: dict[str, Any], expected: Any, out_path: Path) -> None:
    """Refuse to write a cache whose settings or files differ from those the workflow planned
    for it (named in its file name), naming the first field that differs."""
    if expected is None:
        return
    mismatch = describe_mismatch(
        fingerprint, expected, "now", "when the workflow planned this cache"
    )
    if mismatch:
        raise CacheMismatchError(
            f"cannot write {out_path}: {mismatch} (a file changed while snakemake ran?); "
            "rerun snakemake."
        )


def embed_images(
    index_path: Path,
    out_path: Path,
    encoder_name: str,
    settings: dict[str, Any],
    embedding: dict[str, Any],
    threads: int | None = None,
    expected_fingerprint: dict[str, Any] | None = None,
) -> EmbedSummary:
    """Encode the images of `index_path` with encoder `encoder_name` (its validated config entry
    `settings`; shared `embedding` settings) into the image cache `out_path`.

    The cache records the encoder's fingerprint (probelab.fingerprint); `expected_fingerprint`,
    what the workflow named the file after, must equal the one computed here, so that weights
    replaced after the DAG was built are refused rather than cached under the old name.
    """
    import torch
    from tqdm import tqdm

    from probelab.encoders import build_encoder

    fingerprint = encoder_fingerprint(encoder_name, settings)
    _check_expected(fingerprint, expected_fingerprint, out_path)
    if threads:
        torch.set_num_threads(threads)
    index = read_index(index_path)
    image_ids = index["image_id"].astype(str).tolist()
    encoder = build_encoder(encoder_name, settings)
    chunk_size, n_rows = embedding["chunk_size"], len(index)
    attrs = {
        **encoder.provenance(),
        "index_hash": index_hash(index),
        "precision": encoder.precision,
        **fingerprint_attrs(fingerprint),
    }
    cache = ResumableImageCache(
        out_path, attrs, n_rows, chunk_size, encoder.embed_dim, settings["dtype"]
    )
    start = cache.resume_row()

    loader: Any = []
    if start == n_rows:
        # An earlier run encoded every image but failed while assembling the file (a full disk).
        log.info(
            "all %d images of %s are encoded in %s; assembling the file without encoding",
            n_rows,
            out_path,
            cache.partial,
        )
    else:
        dataset = ImageDataset(
            index["path"].astype(str).tolist(), encoder.preprocess, encoder.input_shape
        )
        batches = list(chunk_batches(start, n_rows, chunk_size, settings["batch_size"]))
        loader = make_loader(
            dataset,
            batches,
            num_workers=loader_workers(settings["num_workers"], threads),
            pin_memory=encoder.device == "cuda",
            prefetch_factor=embedding["prefetch_factor"],
        )
    features = np.zeros((chunk_size, encoder.embed_dim), dtype=np.float32)
    failed = np.zeros(chunk_size, dtype=bool)
    n_failed, began = 0, time.perf_counter()
    progress = tqdm(
        total=n_rows,
        initial=start,
        unit="img",
        desc=f"embed {encoder_name}",
        file=_LogLines(),
        mininterval=embedding["progress_interval_s"],
        ascii=True,
    )
    with progress:
        for rows, pixels, errors in loader:
            rows = rows.numpy()
            offset = rows - rows[0] // chunk_size * chunk_size
            bad = np.array([bool(e) for e in errors])
            for error in (e for e in errors if e):
                if settings["on_bad_image"] == "fail":
                    raise ImageLoadError(f"{error[:-1]}; stopping because on_bad_image is fail.")
                log.warning("%s; skipped (on_bad_image: skip).", error[:-1])
            batch_features = encoder.encode_images(pixels)
            batch_features[bad] = 0.0
            features[offset], failed[offset] = batch_features, bad
            n_failed += int(bad.sum())
            progress.update(len(rows))
            last = rows[-1] + 1
            if last % chunk_size == 0 or last == n_rows:
                chunk_start = rows[0] // chunk_size * chunk_size
                size = last - chunk_start
                cache.write_chunk(
                    chunk_start,
                    features[:size].copy(),
                    failed[:size].copy(),
                    image_ids=image_ids[chunk_start:last],
                )
    cache.finish(image_ids)
    seconds = time.perf_counter() - began
    summary = EmbedSummary(
        n_images=n_rows, n_encoded=n_rows - start, n_failed=n_failed, seconds=seconds
    )
    log.info(
        "wrote %s: %d images (%d encoded in this run, %.1f images/s), %d failed",
        out_path,
        n_rows,
        summary.n_encoded,
        summary.images_per_second,
        n_failed,
    )
    return summary


def embed_prompts(
    out_path: Path,
    encoder_name: str,
    settings: dict[str, Any],
    pathologies: list[str],
    prompts: dict[str, Any],
    threads: int | None = None,
    expected_fingerprint: dict[str, Any] | None = None,
) -> None:
    """Embed every template for every pathology with encoder `encoder_name` and write the cache
    (with its fingerprint, checked against `expected_fingerprint` as for embed_images)."""
    if not settings["text"]:
        raise NoTextTowerError(
            f"encoder '{encoder_name}' has no text tower (encoders.{encoder_name}.text is false), "
            "so it cannot embed prompts; drop it from the prompt-fusion and zero-shot models or "
            "use an encoder with one."
        )
    import torch

    from probelab.encoders import build_encoder

    fingerprint = prompt_fingerprint(encoder_name, settings, pathologies, prompts)
    _check_expected(fingerprint, expected_fingerprint, out_path)
    if threads:
        torch.set_num_threads(threads)
    templates = list(prompts["templates"])
    texts = render_prompts(pathologies, templates, prompts.get("names"))
    encoder = build_encoder(encoder_name, settings)
    flat = encoder.encode_texts([text for row in texts for text in row])
    per_template = flat.reshape(len(pathologies), len(templates), -1)
    per_pathology = average_templates(per_template)
    attrs = {
        **encoder.provenance(),
        "dtype": "float32",
        "precision": encoder.precision,
        "logit_scale": encoder.logit_scale,
        "logit_bias": encoder.logit_bias,
        **fingerprint_attrs(fingerprint),
    }
    write_prompt_cache(
        out_path,
        pathologies,
        templates,
        texts,
        per_template,
        per_pathology,
        mega_vector(per_pathology),
        attrs,
    )
    log.info(
        "wrote %s: %d pathologies x %d templates, dim %d, logit scale %.3g, bias %s",
        out_path,
        len(pathologies),
        len(templates),
        per_template.shape[-1],
        encoder.logit_scale,
        "none" if np.isnan(encoder.logit_bias) else f"{encoder.logit_bias:.3g}",
    )
