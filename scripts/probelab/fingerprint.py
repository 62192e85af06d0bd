"""Fingerprints: what determines an output's contents, in canonical form, and a short digest.

A cache records the fingerprint it was built under (settings in canonical form, the content
digests of the weights and architecture files, the code version of the step); its file name
carries the digest, so a changed setting writes a new cache beside the old one, and readers
compare the whole fingerprint and name the first field that differs. The data manifest (label
table, official lists, the set of image files) is a fingerprint too: rewritten only when the data
changed, it is the input that makes the index notice an edited table or an added image.

Kept free of heavy imports: the workflow computes fingerprints while the DAG is built.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

# Bump when a change to image loading, preprocessing or pooling changes the features an encoder
# gives for the same settings: caches built by older code then no longer match.
EMBEDDING_CODE_VERSION = 1
# Bump when a change to tokenisation or text pooling changes the prompt embeddings an encoder
# gives for the same settings: prompt caches built by older code then no longer match. 2: SigLIP
# prompts are padded to the full context with no attention mask, as the model was trained (caches
# from before this field existed were encoded with the mask).
TEXT_CODE_VERSION = 2
# Bump when a change to demo pretraining (probelab.demo.pretrain) changes the weights it gives for
# the same settings and training images: pretrained demo encoders' caches then no longer match.
PRETRAIN_CODE_VERSION = 1
# Encoder settings that decide the features; the others (batch_size, num_workers, device,
# on_bad_image, ...) change how the run goes, not what it computes.
ENCODER_CONTENT_KEYS = (
    "backend",
    "model",
    "build_from",
    "pretrain",
    "pretrained",
    "precision",
    "normalize",
    "dtype",
    "seed",
    "trust_remote_code",
)
DIGEST_CHARS = 12
_READ_BYTES = 1 << 20


def canonical(value: Any) -> Any:
    """A copy with every mapping's keys sorted (recursively), tuples as lists: the same settings
    written in another order compare, print and hash the same."""
    if isinstance(value, dict):
        return {str(key): canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def digest(value: Any) -> str:
    """A short stable digest of a JSON-able value in canonical form."""
    blob = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:DIGEST_CHARS]


_content_memo: dict[tuple[str, int, int], str] = {}


def content_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, in sorted
    order). A file's digest is memoised per process by (path, size, mtime); a folder is listed
    every time, since a file added deep inside it does not change its own mtime."""
    path = Path(path)
    sha = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            sha.update(str(file.relative_to(path)).encode() + b"\0")
            sha.update(content_digest(file).encode())
        return sha.hexdigest()[:16]
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _content_memo:
        with open(path, "rb") as handle:
            while block := handle.read(_READ_BYTES):
                sha.update(block)
        _content_memo[key] = sha.hexdigest()[:16]
    return _content_memo[key]


def local_file_digests(values: dict[str, Any]) -> dict[str, str]:
    """Content digests of the values that name an existing local file or folder (weights,
    architecture files); hub ids and tags are not files and pin nothing here."""
    return {
        key: content_digest(value)
        for key, value in values.items()
        if isinstance(value, str) and value and Path(value).exists()
    }


def encoder_fingerprint(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What decides an encoder's features: its content settings, the digests of its local files
    and the embedding code version. For a build_from encoder, `settings["model"]` is the folder
    the workflow builds; its recipe (the architecture file, the seed and the pretraining settings)
    stands for it. Its training images are not in the recipe: when they change, rule
    make_demo_encoder and the caches rerun in place, and each cache records the built folder's
    content digest (probelab.encoders.built_weights), so that no partial run is resumed across."""
    content = {key: settings.get(key) for key in ENCODER_CONTENT_KEYS}
    code: dict[str, int] | int = EMBEDDING_CODE_VERSION
    if content["build_from"]:
        content["model"] = None
        if content["pretrain"]:
            code = {"embedding": EMBEDDING_CODE_VERSION, "pretraining": PRETRAIN_CODE_VERSION}
    files = {key: content[key] for key in ("model", "pretrained", "build_from")}
    return canonical(
        {
            "encoder": name,
            "settings": content,
            "files": local_file_digests(files),
            "code": code,
        }
    )


def prompt_fingerprint(
    name: str, settings: dict[str, Any], pathologies: list[str], prompts: dict[str, Any]
) -> dict[str, Any]:
    """What decides a prompt cache: the encoder's fingerprint plus the pathologies (in order),
    the prompt settings (templates, names) and the text code version."""
    return canonical(
        {
            **encoder_fingerprint(name, settings),
            "pathologies": list(pathologies),
            "prompts": prompts,
            "text_code": TEXT_CODE_VERSION,
        }
    )


def cache_fingerprints(config: dict[str, Any], encoder: str) -> dict[str, Any]:
    """The fingerprints of an encoder's image and prompt caches under a validated config (the
    prompt one only for an encoder with a text tower)."""
    settings = config["encoders"][encoder]
    prompts = (
        prompt_fingerprint(encoder, settings, config["pathologies"], config["prompts"])
        if settings.get("text", True)
        else None
    )
    return {"images": encoder_fingerprint(encoder, settings), "prompts": prompts}


def first_difference(found: Any, expected: Any, where: str = "") -> str | None:
    """The dotted name of the first field where two fingerprints differ (None if equal)."""
    if isinstance(found, dict) and isinstance(expected, dict):
        for key in sorted(set(found) | set(expected)):
            if key not in found or key not in expected:
                return f"{where}{key}"
            inner = first_difference(found[key], expected[key], f"{where}{key}.")
            if inner:
                return inner
        return None
    return None if found == expected else where.rstrip(".") or "(value)"


def describe_mismatch(found: Any, expected: Any, found_as: str, expected_as: str) -> str | None:
    """How two fingerprints differ, as a phrase naming the first differing field and both values
    ("'settings.normalize' is True in the cache but False is asked for"); None when equal."""
    found, expected = canonical(found), canonical(expected)
    field = first_difference(found, expected)
    if field is None:
        return None
    return (
        f"'{field}' is {lookup(found, field)!r} {found_as} but {lookup(expected, field)!r} "
        f"{expected_as}"
    )


def lookup(fingerprint: Any, dotted: str) -> Any:
    """The value of a dotted field of a fingerprint (None where absent)."""
    for part in dotted.split("."):
        if not isinstance(fingerprint, dict) or part not in fingerprint:
            return None
        fingerprint = fingerprint[part]
    return fingerprint


def write_if_changed(path: str | Path, content: dict[str, Any]) -> bool:
    """Write `content` (canonical JSON) to `path` unless the file already holds exactly that, so
    that its modification time changes only when the content does. Returns whether it wrote."""
    path = Path(path)
    text = json.dumps(canonical(content), indent=1, sort_keys=True) + "\n"
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True
