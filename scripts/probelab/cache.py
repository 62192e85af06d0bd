"""HDF5 feature caches: atomic writers, a resumable chunked image-cache writer, checking readers.

A cache is a Snakemake output with one writer. It appears under its final name only when complete
(`atomic_h5`: written to a temporary sibling, then renamed) and carries attributes that say what
produced it; readers verify those attributes against what the caller expects (`check_attrs`) and
refuse a stale or foreign cache with one sentence naming the file and the attribute. Image features
must be finite: NaN or infinity is refused when a chunk is written and when a cache is read, naming
the images.

The image cache is built chunk by chunk. Each finished chunk is saved under its final name in a
hidden `.<name>.partial/` folder beside the cache (again temp name + rename, so a chunk file is
either complete or absent, whatever kills the process); a rerun with the same provenance resumes
after the last complete chunk; the HDF5 file is assembled from the chunks at the end, streaming,
so memory stays flat in the number of images. When assembling fails (a full disk) the chunks stay,
and the rerun only assembles the file.

File formats: docs/architecture.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probelab import __version__
from probelab.fingerprint import canonical, describe_mismatch, digest
from probelab.io import atomic_path

log = logging.getLogger(__name__)

IMAGE_DATASETS = ("image_id", "features", "failed")
PROMPT_DATASETS = (
    "pathologies",
    "templates",
    "prompts",
    "per_template",
    "per_pathology",
    "mega_vector",
)
# Rows per HDF5 storage chunk of `features`: small enough that reading a subset touches little
# more than the subset, large enough that a full read is a few hundred I/O calls.
FEATURE_CHUNK_ROWS = 256


class CacheError(ValueError):
    """A cache file that cannot be used; the message names the file and why."""


class CacheMismatchError(CacheError):
    """A cache whose provenance attributes differ from what the caller expects."""


class NonFiniteFeaturesError(CacheError):
    """Image features holding NaN or infinity; the message names the images and the cause."""


class CacheWriteError(OSError):
    """A cache file that could not be written (e.g. a full disk); the message says what is kept."""


def plain_value(value: Any) -> Any:
    """HDF5 hands back numpy scalars and arrays; compare and print them as Python values."""
    if isinstance(value, np.ndarray):
        return [plain_value(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "item"):
        return value.item()
    return value


def _same(found: Any, expected: Any) -> bool:
    if isinstance(found, float) and isinstance(expected, float):
        return (math.isnan(found) and math.isnan(expected)) or math.isclose(
            found, expected, rel_tol=1e-9
        )
    return found == expected


def check_attrs(path: str | Path, attrs: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Verify provenance: every key of `expected` whose value is not None must match `attrs`.

    Generic over any cache (image, prompt, text features): `attrs` is what the file says
    (e.g. `dict(h5file.attrs)`), `expected` what the caller needs. Raises CacheMismatchError with
    one sentence naming the file, the attribute, the expected and the found value.
    """
    for key, want in expected.items():
        if want is None:
            continue
        if key not in attrs:
            raise CacheMismatchError(
                f"cache {path} has no attribute '{key}' (expected {plain_value(want)!r}), "
                "so it is not a cache "
                "of this kind or was written by another version; delete it to rebuild it."
            )
        found, want = plain_value(attrs[key]), plain_value(want)
        if not _same(found, want):
            raise CacheMismatchError(
                f"cache {path} does not match: attribute '{key}' is {found!r}, expected {want!r}; "
                "delete it to rebuild it or point the config at the right file."
            )


def check_fingerprint(path: str | Path, attrs: Mapping[str, Any], expected: Any) -> None:
    """Refuse a cache built under another fingerprint (probelab.fingerprint), naming the first
    field that differs, its value in the cache and the value asked for."""
    if expected is None:
        return
    if "fingerprint" not in attrs:
        raise CacheMismatchError(
            f"cache {path} records no fingerprint, so what it was computed from is unknown "
            "(built by an older probelab); delete it to rebuild it."
        )
    found = json.loads(plain_value(attrs["fingerprint"]))
    mismatch = describe_mismatch(found, expected, "in the cache", "is asked for")
    if mismatch:
        raise CacheMismatchError(
            f"cache {path} was computed under other settings: {mismatch}; rerun snakemake, "
            "which builds the cache these settings call for."
        )


def fingerprint_attrs(fingerprint: Any) -> dict[str, str]:
    """The attributes a cache records its fingerprint in: the canonical JSON and its digest."""
    return {
        "fingerprint": json.dumps(canonical(fingerprint), sort_keys=True),
        "fingerprint_digest": digest(fingerprint),
    }


@contextmanager
def atomic_h5(path: str | Path) -> Iterator[Any]:
    """Open a new HDF5 file for writing that appears at `path` only if the block succeeds.

    Usage: `with atomic_h5(out) as h5: h5.create_dataset(...); h5.attrs[...] = ...`.
    The file is written to a temporary sibling and renamed after it is closed, so a reader (or
    Snakemake) never sees a half-written cache, and a failure leaves any earlier file untouched.
    """
    import h5py

    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as h5:
            yield h5


def open_h5(path: str | Path, required: tuple[str, ...], kind: str) -> Any:
    """Open a cache read-only, refusing a missing, unreadable or foreign file with one sentence."""
    import h5py

    if not Path(path).is_file():
        raise CacheError(f"{kind} cache {path} does not exist; build it with the workflow first.")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise CacheError(
            f"{kind} cache {path} is truncated or not an HDF5 file ({error}); delete it "
            f"(`rm {path}`) and rerun snakemake so that the workflow rebuilds it."
        ) from error
    missing = [name for name in required if name not in h5]
    if missing:
        h5.close()
        raise CacheError(
            f"{kind} cache {path} lacks the dataset '{missing[0]}', "
            f"so it is not a probelab {kind} cache."
        )
    return h5


def _strings(dataset: Any) -> np.ndarray:
    return np.asarray(dataset.asstr()[()], dtype=str)


def _non_finite_rows(features: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """Rows of images that decoded (failed rows hold zeros and are never used) with a NaN or an
    infinite feature."""
    return np.flatnonzero(~np.isfinite(features).all(axis=1) & ~failed)


def _first_ids(ids: Any, rows: np.ndarray, limit: int = 3) -> str:
    first = ", ".join(repr(str(ids[row])) for row in rows[:limit])
    return first + (", ..." if len(rows) > limit else "")


# --------------------------------------------------------------------------------------------
# image cache


@dataclass
class ImageCache:
    """Image embeddings of the images that decoded; `failed_ids` lists those that did not."""

    image_ids: np.ndarray
    features: np.ndarray
    failed_ids: list[str]
    attrs: dict[str, Any]


def read_image_cache(
    path: str | Path,
    *,
    encoder: str | None = None,
    index_hash: str | None = None,
    dim: int | None = None,
    fingerprint: Any = None,
) -> ImageCache:
    """Read an image cache after checking it was built by `encoder`, from the index with
    `index_hash`, with embedding dimension `dim`, under `fingerprint` (the whole of what decides
    its features; each check skipped when None)."""
    with open_h5(path, IMAGE_DATASETS, "image") as h5:
        attrs = {key: plain_value(value) for key, value in h5.attrs.items()}
        check_attrs(
            path, attrs, {"encoder": encoder, "index_hash": index_hash, "embedding_dim": dim}
        )
        check_fingerprint(path, attrs, fingerprint)
        ids = _strings(h5["image_id"])
        failed = np.asarray(h5["failed"][()], dtype=bool)
        features = np.asarray(h5["features"][()], dtype=np.float32)
    if features.shape != (len(ids), attrs.get("embedding_dim", features.shape[1])):
        raise CacheError(
            f"image cache {path} is inconsistent: features have shape {features.shape} "
            f"for {len(ids)} image ids."
        )
    bad = _non_finite_rows(features, failed)
    if len(bad):
        raise NonFiniteFeaturesError(
            f"image cache {path} holds NaN or infinite features for {len(bad)} image(s) "
            f"(first {_first_ids(ids, bad)}), so it is corrupt or its encoder overflowed; "
            f"delete it (`rm {path}`) and rerun snakemake to rebuild it."
        )
    return ImageCache(
        image_ids=ids[~failed],
        features=features[~failed],
        failed_ids=ids[failed].tolist(),
        attrs=attrs,
    )


class ResumableImageCache:
    """Writes an image cache in chunks that survive a kill, then assembles the HDF5 file.

    `attrs` is the provenance of the run; a partial run is resumed only when its provenance and
    layout (rows, chunk size, dimension, dtype) are identical, otherwise it is discarded.
    """

    def __init__(
        self,
        path: str | Path,
        attrs: Mapping[str, Any],
        n_rows: int,
        chunk_size: int,
        dim: int,
        dtype: str,
    ):
        self.path = Path(path)
        self.partial = self.path.parent / f".{self.path.name}.partial"
        self.n_rows, self.chunk_size, self.dim, self.dtype = n_rows, chunk_size, dim, dtype
        self.attrs = {
            key: plain_value(value)
            for key, value in {**attrs, "probelab_version": __version__}.items()
        }
        self.layout = {
            "n_rows": n_rows,
            "chunk_size": chunk_size,
            "embedding_dim": dim,
            "dtype": dtype,
        }

    def _chunk_file(self, start: int) -> Path:
        return self.partial / f"chunk_{start:010d}.npz"

    def _meta(self) -> dict[str, Any]:
        return {"attrs": self.attrs, "layout": self.layout}

    def resume_row(self) -> int:
        """Prepare the partial folder; return the first row still to encode (0 for a fresh run)."""
        meta_file = self.partial / "meta.json"
        if self.partial.is_dir():
            try:
                previous = json.loads(meta_file.read_text())
            except (OSError, ValueError):
                previous = None
            if previous == json.loads(json.dumps(self._meta())):
                row = 0
                while row < self.n_rows and self._chunk_file(row).is_file():
                    row += self.chunk_size
                row = min(row, self.n_rows)
                if row:
                    log.info(
                        "resuming %s after %d of %d images (complete chunks found)",
                        self.path,
                        row,
                        self.n_rows,
                    )
                return row
            log.warning(
                "discarding partial run in %s: it was started with other settings or another index",
                self.partial,
            )
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        with atomic_path(meta_file) as tmp:
            tmp.write_text(json.dumps(self._meta(), indent=1))
        return 0

    def write_chunk(
        self,
        start: int,
        features: np.ndarray,
        failed: np.ndarray,
        image_ids: Any = None,
    ) -> None:
        """Save rows start..start+len(features) as one chunk file, atomically.

        Refuses NaN or infinite features of rows that decoded (`failed` rows are zeros), naming
        the images by `image_ids` (those of these rows; row numbers when None).
        """
        expected_rows = min(self.chunk_size, self.n_rows - start)
        if (
            start % self.chunk_size
            or features.shape != (expected_rows, self.dim)
            or failed.shape != (expected_rows,)
        ):
            raise ValueError(
                f"chunk at row {start} has features {features.shape} and failed {failed.shape}, "
                f"expected ({expected_rows}, {self.dim}) at a multiple of {self.chunk_size}."
            )
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
            stored = features.astype(self.dtype)
        self._refuse_non_finite(start, features, stored, failed, image_ids)
        fd, tmp = tempfile.mkstemp(prefix=".chunk.", suffix=".tmp", dir=self.partial)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, features=stored, failed=failed.astype(bool))
            os.replace(tmp, self._chunk_file(start))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _refuse_non_finite(
        self,
        start: int,
        features: np.ndarray,
        stored: np.ndarray,
        failed: np.ndarray,
        image_ids: Any,
    ) -> None:
        failed = failed.astype(bool)
        names = (
            image_ids if image_ids is not None else [f"row {start + i}" for i in range(len(failed))]
        )
        encoder = self.attrs.get("encoder", "?")
        bad = _non_finite_rows(features, failed)
        if len(bad):
            precision = self.attrs.get("precision", "fp32")
            cause = (
                f"precision {precision} overflows easily: set encoders.{encoder}.precision to fp32"
                if precision != "fp32"
                else "in fp32 this points to broken weights or preprocessing"
            )
            raise NonFiniteFeaturesError(
                f"encoder '{encoder}' output NaN or infinite features for {len(bad)} decoded "
                f"image(s) of rows {start}-{start + len(failed) - 1} (first "
                f"{_first_ids(names, bad)}); this comes from the encoder's output, not the image "
                f"files ({cause}), and nothing was written for these rows."
            )
        bad = _non_finite_rows(stored, failed)
        if len(bad):
            raise NonFiniteFeaturesError(
                f"features of {len(bad)} image(s) of rows {start}-{start + len(failed) - 1} "
                f"(first {_first_ids(names, bad)}) exceed the range of the cache dtype "
                f"{self.dtype}; set encoders.{encoder}.dtype to float32 (or normalize: true), "
                "and nothing was written for these rows."
            )

    def finish(self, image_ids: list[str]) -> None:
        """Assemble the chunks into the HDF5 cache (atomically) and remove the partial folder.

        When writing fails (a full disk), the chunks stay: a rerun assembles the file from them
        without encoding again.
        """
        if len(image_ids) != self.n_rows:
            raise ValueError(f"{len(image_ids)} image ids for a cache of {self.n_rows} rows.")
        try:
            self._assemble(image_ids)
        except OSError as error:
            raise CacheWriteError(
                f"could not write image cache {self.path} from the chunks in {self.partial} "
                f"({error}); the chunks are kept, so rerunning once the cause is fixed (e.g. disk "
                "space freed) assembles the file without encoding the images again."
            ) from error
        shutil.rmtree(self.partial)

    def _assemble(self, image_ids: list[str]) -> None:
        import h5py

        with atomic_h5(self.path) as h5:
            h5.create_dataset(
                "image_id",
                data=np.asarray(image_ids, dtype=object),
                dtype=h5py.string_dtype("utf-8"),
            )
            features = h5.create_dataset(
                "features",
                shape=(self.n_rows, self.dim),
                dtype=self.dtype,
                chunks=(max(1, min(FEATURE_CHUNK_ROWS, self.n_rows)), self.dim),
            )
            failed = h5.create_dataset("failed", shape=(self.n_rows,), dtype=bool)
            for start in range(0, self.n_rows, self.chunk_size):
                chunk_file = self._chunk_file(start)
                if not chunk_file.is_file():
                    raise CacheError(
                        f"chunk file {chunk_file} is missing; "
                        f"the run did not encode rows from {start}."
                    )
                with np.load(chunk_file) as chunk:
                    stop = start + len(chunk["features"])
                    features[start:stop] = chunk["features"]
                    failed[start:stop] = chunk["failed"]
            for key, value in {
                **self.attrs,
                "embedding_dim": self.dim,
                "dtype": self.dtype,
            }.items():
                h5.attrs[key] = value


# --------------------------------------------------------------------------------------------
# prompt cache


@dataclass
class PromptCache:
    """Per-pathology prompt embeddings and what zero-shot scoring needs.

    `logit_scale` is the multiplier (already exponentiated) and `logit_bias` the offset of the
    model's image-text logits: logit = logit_scale * cosine + logit_bias (bias NaN when the model
    has none, e.g. CLIP; SigLIP has one).
    """

    pathologies: list[str]
    templates: list[str]
    prompts: np.ndarray
    per_template: np.ndarray
    per_pathology: np.ndarray
    mega_vector: np.ndarray
    logit_scale: float
    logit_bias: float
    attrs: dict[str, Any]


def write_prompt_cache(
    path: str | Path,
    pathologies: list[str],
    templates: list[str],
    prompts: list[list[str]],
    per_template: np.ndarray,
    per_pathology: np.ndarray,
    mega_vector: np.ndarray,
    attrs: Mapping[str, Any],
) -> None:
    """Write a prompt cache atomically (datasets as in docs/architecture.md)."""
    import h5py

    text = h5py.string_dtype("utf-8")
    with atomic_h5(path) as h5:
        h5.create_dataset("pathologies", data=np.asarray(pathologies, dtype=object), dtype=text)
        h5.create_dataset("templates", data=np.asarray(templates, dtype=object), dtype=text)
        h5.create_dataset("prompts", data=np.asarray(prompts, dtype=object), dtype=text)
        h5.create_dataset("per_template", data=np.asarray(per_template, dtype=np.float32))
        h5.create_dataset("per_pathology", data=np.asarray(per_pathology, dtype=np.float32))
        h5.create_dataset("mega_vector", data=np.asarray(mega_vector, dtype=np.float32))
        for key, value in {**attrs, "probelab_version": __version__}.items():
            h5.attrs[key] = plain_value(value)


def read_prompt_cache(
    path: str | Path,
    *,
    encoder: str | None = None,
    pathologies: list[str] | None = None,
    dim: int | None = None,
    fingerprint: Any = None,
) -> PromptCache:
    """Read a prompt cache after checking its encoder, its pathologies (same names, same order),
    its embedding dimension and its fingerprint (each check skipped when None)."""
    with open_h5(path, PROMPT_DATASETS, "prompt") as h5:
        attrs = {key: plain_value(value) for key, value in h5.attrs.items()}
        found_pathologies = _strings(h5["pathologies"]).tolist()
        check_attrs(
            path,
            {**attrs, "pathologies": found_pathologies},
            {
                "encoder": encoder,
                "pathologies": list(pathologies) if pathologies is not None else None,
                "embedding_dim": dim,
            },
        )
        check_fingerprint(path, attrs, fingerprint)
        cache = PromptCache(
            pathologies=found_pathologies,
            templates=_strings(h5["templates"]).tolist(),
            prompts=_strings(h5["prompts"]),
            per_template=np.asarray(h5["per_template"][()], dtype=np.float32),
            per_pathology=np.asarray(h5["per_pathology"][()], dtype=np.float32),
            mega_vector=np.asarray(h5["mega_vector"][()], dtype=np.float32),
            logit_scale=float(attrs.get("logit_scale", float("nan"))),
            logit_bias=float(attrs.get("logit_bias", float("nan"))),
            attrs=attrs,
        )
    return cache


# --------------------------------------------------------------------------------------------
# what the report says about the caches


@dataclass
class CacheOverview:
    """How many images an image cache holds and which of them could not be decoded."""

    n_images: int
    failed_ids: list[str]


def cache_overview(path: str | Path) -> CacheOverview:
    """Read only the image ids and failure flags of an image cache (not the features)."""
    with open_h5(path, IMAGE_DATASETS, "image") as h5:
        ids = _strings(h5["image_id"])
        failed = np.asarray(h5["failed"][()], dtype=bool)
    return CacheOverview(n_images=len(ids), failed_ids=ids[failed].tolist())


def failed_images_notice(caches: Mapping[str, str | Path]) -> str | None:
    """One line per encoder whose existing image cache skipped undecodable images, for the end
    of a run (None when no cache skipped any)."""
    lines = []
    for encoder, path in caches.items():
        if not Path(path).is_file():
            continue
        failed = cache_overview(path).failed_ids
        if failed:
            shown = ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")
            lines.append(
                f"encoder {encoder}: {len(failed)} image(s) could not be decoded and were "
                f"skipped (on_bad_image: skip): {shown}; summary.md lists them."
            )
    return "\n".join(lines) or None
