"""Shared test fixtures: repository paths, a tiny NIH-layout cohort, and a snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
NIH_SAMPLE = SHARED_DATA / "nih_cxr14_sample"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

NIH_HEADER_2020 = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
PATHOLOGIES = ["Cardiomegaly", "Effusion", "Nodule"]
DEMO_OPEN_CLIP_JSON = REPO / "configs" / "encoders" / "probelab-demo-vit-tiny.json"


def random_demo_encoder(**changes) -> dict:
    """The demo open_clip architecture with seeded random weights, loaded straight from its file
    (nothing built or pretrained): for tests of plumbing rather than of what features learn."""
    return {
        "backend": "open_clip",
        "model": str(DEMO_OPEN_CLIP_JSON),
        "seed": 0,
        "num_workers": 0,
        **changes,
    }


def write_nih_table(
    path: Path, rows: list[tuple[str, str, int, int, str]], *, v2017: bool = False
) -> None:
    """rows: (image id, finding labels, follow-up, patient id, view)."""
    lines = [NIH_HEADER_2020 + ("," if v2017 else "")]
    for image_id, labels, follow_up, patient, view in rows:
        age = f"{40 + patient % 30:03d}Y" if v2017 else str(40 + patient % 30)
        lines.append(
            f"{image_id},{labels},{follow_up},{patient},{age},M,{view},1024,1024,0.143,0.143"
            + ("," if v2017 else "")
        )
    newline = "\r\n" if v2017 else "\n"
    path.write_bytes((newline.join(lines) + newline).encode())


def tiny_cohort(
    root: Path, n_patients: int = 12, per_patient: int = 3, missing: int = 4
) -> list[tuple]:
    """A small NIH-layout cohort: label table + PNGs in images_00k/images, a few rows not on
    disk."""
    rng = np.random.default_rng(0)
    labels_cycle = [
        "No Finding",
        "Cardiomegaly",
        "Effusion|Cardiomegaly",
        "Nodule",
        "No Finding",
        "Effusion",
    ]
    rows = []
    for p in range(1, n_patients + 1):
        for f in range(per_patient):
            rows.append(
                (
                    f"{p:08d}_{f:03d}.png",
                    labels_cycle[(p + f) % len(labels_cycle)],
                    f,
                    p,
                    "PA" if f % 2 == 0 else "AP",
                )
            )
    root.mkdir(parents=True, exist_ok=True)
    write_nih_table(root / "Data_Entry_2017_v2020.csv", rows)
    on_disk = rows[: len(rows) - missing]
    for i, row in enumerate(on_disk):
        folder = root / f"images_{1 + i // 20:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(folder / row[0])
    patients = sorted({r[3] for r in rows})
    test_patients = set(patients[: max(1, len(patients) // 4)])
    (root / "test_list.txt").write_text("".join(f"{r[0]}\n" for r in rows if r[3] in test_patients))
    (root / "train_val_list.txt").write_text(
        "".join(f"{r[0]}\n" for r in rows if r[3] not in test_patients)
    )
    return rows


def run_snakemake(
    workdir: Path, *args: str, configfile: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run the real workflow's Snakefile in `workdir`; output captured, never raising."""
    # Targets and flags first: --configfile takes several values and would swallow them.
    command = [
        str(SNAKEMAKE),
        *args,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
    ]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def checkout_workdir(path: Path) -> Path:
    """A working directory for Snakemake runs on the checkout's own config.yaml: its relative
    paths (configs/encoders/...) resolve as in the checkout, while results/ and .snakemake/ are
    written here."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "configs").symlink_to(REPO / "configs")
    return path


# What `make run` writes into the checkout: a test that runs Snakemake there sees its finished
# outputs (and plans nothing), and one that writes there changes the user's results.
CHECKOUT_OUTPUTS = (REPO / "results", REPO / ".snakemake")


def checkout_outputs_state() -> dict[str, int]:
    """Every path under the checkout's results/ and .snakemake/ (the folders included, so their
    creation counts) with its modification time."""
    state = {}
    for root in CHECKOUT_OUTPUTS:
        if root.exists():
            for path in (root, *root.rglob("*")):
                state[str(path.relative_to(REPO))] = path.lstat().st_mtime_ns
    return state


@pytest.fixture(scope="session", autouse=True)
def checkout_outputs_untouched() -> Iterator[None]:
    """Fails the session (each xdist worker checks its own) when anything under the checkout's
    results/ or .snakemake/ appeared, changed or went away while tests ran: tests work in
    temporary folders (run_snakemake's workdir, checkout_workdir), so that `make run` then
    `make test` stays green."""
    before = checkout_outputs_state()
    yield
    after = checkout_outputs_state()
    touched = sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )
    if touched:
        shown = ", ".join(touched[:10]) + (
            f" and {len(touched) - 10} more" if len(touched) > 10 else ""
        )
        pytest.fail(
            f"tests created, changed or removed {len(touched)} path(s) under the checkout's "
            f"results/ or .snakemake/ ({shown}); a test must run Snakemake in a temporary "
            "folder (unless something outside the tests wrote there meanwhile).",
            pytrace=False,
        )


@pytest.fixture
def nih_cohort(tmp_path: Path) -> Path:
    root = tmp_path / "nih"
    tiny_cohort(root)
    return root


# --- Hypothesis profiles (tests/test_oracle_*.py) ---------------------------------------------
# max_examples counts the examples of the slow property tests, each of which runs the real
# workflow (about a minute and more); fast tests scale their own count from it. "ci" is what
# `make test` runs: a few examples, the same ones every time (derandomize), so that a red suite
# is reproducible. `pytest --hypothesis-profile thorough tests/test_oracle_workflow.py` draws
# many more, new ones each time (a failure prints its drawn configuration and a reproduce blob).
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile(
    "ci",
    max_examples=1,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
hypothesis_settings.register_profile(
    "thorough",
    max_examples=25,
    deadline=None,
    print_blob=True,
    database=None,  # no .hypothesis/ in the checkout: a failure prints its blob instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# loaded here, before the hypothesis plugin reads --hypothesis-profile, which overrides it
hypothesis_settings.load_profile("ci")
