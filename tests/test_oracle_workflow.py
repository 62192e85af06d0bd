"""Every number the real workflow reports, checked against the oracle (tests/oracle.py) over
randomly drawn small configurations.

Hypothesis draws what users reach: 1 to 14 NIH pathologies, masked (uncertain / blank) labels,
view and row filters, min_positives exclusions, one or several seeds and sizes, both sampling
policies, an external cohort sharing one or more pathologies. Each drawn configuration runs the
real Snakefile to summary.md in tmp_path, and every value in metrics.json, metrics.csv,
summary_by_setting.csv, bootstrap_ci.csv and comparisons.csv estimates, transfer.csv and
summary.md is compared with the oracle, which recomputes it one pathology at a time from the
stored predictions, the index, the split and the subset files.

Cheap by construction (random-weight demo encoder, tiny images, 50 bootstrap resamples, three
fast models, summary.md without the figures): one to two minutes per example on two busy cores,
most of it the embedding jobs' imports. `make test` runs the "ci" profile (one example per
test, the same every time); `pytest --hypothesis-profile thorough tests/test_oracle_workflow.py`
draws 25 new ones per test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import oracle
import pytest
import yaml
from conftest import REPO, random_demo_encoder, run_snakemake
from hypothesis import given, note
from hypothesis import strategies as st
from PIL import Image

pytestmark = pytest.mark.workflow

# the 14 NIH findings, as the default config lists them
NIH_FINDINGS = yaml.safe_load((REPO / "config.yaml").read_text())["pathologies"]
COHORT = "oracle"
MODELS = ("linear_probe", "zero_shot", "baseline_mlp")
# Prevalences a pathology is drawn with: common ones are evaluated everywhere, rare ones are
# what min_positives and small subsets exclude.
PREVALENCES = (0.04, 0.1, 0.2, 0.35, 0.5)


# --- drawn configurations ---------------------------------------------------------------------


@dataclass(frozen=True)
class CohortSpec:
    """A synthetic label table and its images: everything is derived from `seed`."""

    pathologies: tuple[str, ...]  # the ones the table labels (a subset of the config's)
    prevalence: tuple[float, ...]  # patient-level prevalence of each
    n_patients: int
    seed: int
    columns: bool  # a 1 / 0 / -1 / blank column table (CheXpert-like) instead of NIH's pipes
    uncertain_share: float = 0.0  # columns only: share of cells written as -1
    blank_share: float = 0.0  # columns only: share of cells left blank
    extra_findings: tuple[str, ...] = ()  # findings of the table that are not configured
    missing: int = 0  # rows of the table without a file


@dataclass(frozen=True)
class Drawn:
    """One drawn configuration (printed with hypothesis.note, so a failure is reproducible)."""

    pathologies: tuple[str, ...]
    cohort: CohortSpec
    views: tuple[str, ...]
    row_filter: str  # "", "keep F", "drop F"
    blank: str  # data.blank of a column table: "ignore" or "negative"
    sizes: tuple[int | str, ...]
    seeds: tuple[int, ...]
    min_positives: int
    min_test_positives: int  # written only where the schema has the key
    policy: str
    report_policy: str
    epochs: int
    external: CohortSpec | None = None


# Strategies list the most telling choice first, so that Hypothesis's first, simplest example
# (the one every `make test` runs) holds the cases: two pathologies in NIH's unmasked
# format, a common one and a rare one that small subsets exclude (one evaluated pathology, and
# sets that differ between sizes), min_positives 2 (patients, not images), both filters and two
# seeds, and an external cohort sharing one pathology. Masks, more pathologies and the other
# choices come with the random examples.


@st.composite
def cohort_specs(draw, pathologies: list[str], columns: bool, n_patients: int) -> CohortSpec:
    # the first pathology is common enough for every run to evaluate it; the others any
    prevalence = [draw(st.sampled_from([0.5, 0.35]))]
    prevalence += [draw(st.sampled_from(PREVALENCES)) for _ in pathologies[1:]]
    unconfigured = [f for f in NIH_FINDINGS if f not in pathologies]
    extra = (
        draw(st.lists(st.sampled_from(unconfigured), min_size=1, max_size=2, unique=True))
        if unconfigured and draw(st.booleans())
        else []
    )
    masked = columns and draw(st.sampled_from([True, False]))
    return CohortSpec(
        pathologies=tuple(pathologies),
        prevalence=tuple(prevalence),
        n_patients=n_patients,
        seed=draw(st.integers(0, 2**16)),
        columns=columns,
        uncertain_share=draw(st.sampled_from([0.1, 0.03])) if masked else 0.0,
        blank_share=draw(st.sampled_from([0.1, 0.0])) if masked else 0.0,
        extra_findings=tuple(extra),
        missing=draw(st.integers(0, 3)),
    )


@st.composite
def drawn_configs(draw) -> Drawn:
    n = draw(st.one_of(st.integers(2, 14), st.just(1)))
    pathologies = draw(st.permutations(NIH_FINDINGS))[:n]
    columns = draw(st.sampled_from([False, True]))
    views = draw(st.sampled_from([("PA",), ()]))
    row_filter = draw(st.sampled_from(["keep F", "drop M", "", ""]))
    # the filters each keep about half of the rows: more patients keep the splits usable
    scale = (2 if views else 1) * (2 if row_filter else 1)
    n_patients = draw(st.integers(50, 70)) * scale
    cohort = draw(cohort_specs(list(pathologies), columns, n_patients))
    # the training split holds about half of the images kept (two per patient on average)
    train = n_patients // scale
    small, middle = draw(st.integers(12, max(12, train // 3))), max(14, train // 2)
    sizes = draw(
        st.sampled_from(
            [(small, "all"), (small,), ("all",), (small, middle, "all"), (small, middle)]
        )
    )
    seeds = draw(st.sampled_from([(0, 1), (0,), (3,), (0, 1, 2)]))
    external = None
    if draw(st.sampled_from([True, False])):
        shared = draw(st.lists(st.sampled_from(pathologies), min_size=1, unique=True))
        external = draw(cohort_specs(shared, True, draw(st.integers(20, 30))))
    return Drawn(
        pathologies=tuple(pathologies),
        cohort=cohort,
        views=views,
        row_filter=row_filter,
        blank=draw(st.sampled_from(["ignore", "negative"])),
        sizes=tuple(sizes),
        seeds=seeds,
        min_positives=draw(st.sampled_from([2, 1, 3])),
        min_test_positives=draw(st.sampled_from([2, 1, 3, 4])),
        policy=draw(st.sampled_from(["stratified", "balanced"])),
        report_policy=draw(st.sampled_from(["tuned", "t0.5"])),
        epochs=draw(st.integers(2, 3)),
        external=external,
    )


# --- writing a drawn cohort -------------------------------------------------------------------


def _labels(spec: CohortSpec, rng: np.random.Generator, n_images: list[int]) -> np.ndarray:
    """Image labels (rows: images, patient by patient) with patients as the unit: a positive
    patient's images are each positive with probability 0.75, so positive images outnumber
    positive patients and counting one for the other shows."""
    rows = []
    for count in n_images:
        sick = rng.random(len(spec.prevalence)) < np.asarray(spec.prevalence)
        for _ in range(count):
            rows.append(sick & (rng.random(len(sick)) < 0.75))
    return np.array(rows, dtype=bool).reshape(-1, len(spec.prevalence))


def write_cohort(spec: CohortSpec, root: Path, prefix: str) -> dict:
    """Write the label table and the PNGs of `spec` under `root`; return the config's data
    section for it."""
    rng = np.random.default_rng(spec.seed)
    root.mkdir(parents=True, exist_ok=True)
    images = root / "images"
    images.mkdir(exist_ok=True)
    n_images = [int(k) for k in rng.integers(1, 4, spec.n_patients)]
    labels = _labels(spec, rng, n_images)
    extra = rng.random((len(labels), len(spec.extra_findings))) < 0.15
    patients = np.repeat(np.arange(1, spec.n_patients + 1), n_images)
    follow_up = np.concatenate([np.arange(k) for k in n_images])
    views = rng.choice(["PA", "AP"], len(labels))
    sexes = np.where(rng.random(spec.n_patients) < 0.5, "M", "F")[patients - 1]
    ids = [f"{prefix}{p:05d}_{f:03d}.png" for p, f in zip(patients, follow_up, strict=True)]
    on_disk = np.ones(len(ids), dtype=bool)
    on_disk[rng.choice(len(ids), min(spec.missing, len(ids) - 1), replace=False)] = False
    for image_id, present in zip(ids, on_disk, strict=True):
        if present:
            pixels = rng.integers(0, 255, (24, 24), dtype=np.uint8)
            Image.fromarray(pixels).save(images / image_id)
    if not spec.columns:
        lines = [
            "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
            "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
        ]
        for i, image_id in enumerate(ids):
            found = [p for p, on in zip(spec.pathologies, labels[i], strict=True) if on]
            found += [f for f, on in zip(spec.extra_findings, extra[i], strict=True) if on]
            lines.append(
                f"{image_id},{'|'.join(found) or 'No Finding'},{follow_up[i]},{patients[i]},"
                f"{40 + patients[i] % 30},{sexes[i]},{views[i]},1024,1024,0.143,0.143"
            )
        (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
        return {"format": "nih", "root": str(root), "image_dirs": ["images"]}
    label_columns = [*spec.pathologies, *spec.extra_findings]
    header = ["Path", "Patient", "Sex", "View", "No Finding", *label_columns]
    lines = [",".join(header)]
    for i, image_id in enumerate(ids):
        cells = []
        for on in [*labels[i], *extra[i]]:
            draw = rng.random()
            if draw < spec.uncertain_share:
                cells.append("-1")
            elif draw < spec.uncertain_share + spec.blank_share:
                cells.append("")
            else:
                cells.append("1" if on else "0")
        nothing = not labels[i].any() and not extra[i].any()
        lines.append(
            ",".join(
                [
                    f"images/{image_id}",
                    f"patient{patients[i]}",
                    str(sexes[i]),
                    str(views[i]),
                    "1" if nothing else "",
                    *cells,
                ]
            )
        )
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return {
        "format": "csv",
        "root": str(root),
        "label_table": "labels.csv",
        "uncertain": "ignore",
        "blank": "negative",
        "csv": {
            "path_column": "Path",
            "patient_column": "Patient",
            "view_column": "View",
            "label_mode": "columns",
            "label_columns": ["No Finding", *label_columns],
        },
    }


def write_config(
    drawn: Drawn,
    workdir: Path,
    models: tuple[str, ...] = MODELS,
    sentiment: dict | None = None,
) -> Path:
    """The workflow config of a drawn configuration (and its cohort files) under `workdir`;
    `sentiment` (a sentiment section) turns the sentiment track on."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    data = write_cohort(drawn.cohort, workdir / "data", "img")
    if drawn.cohort.columns:
        data["blank"] = drawn.blank
    if drawn.views:
        data["views"] = list(drawn.views)
    sex_column = "Sex" if drawn.cohort.columns else "Patient Gender"
    if drawn.row_filter.startswith("keep"):
        data["keep_rows"] = {sex_column: [drawn.row_filter.split()[1]]}
    elif drawn.row_filter.startswith("drop"):
        data["drop_rows"] = {sex_column: [drawn.row_filter.split()[1]]}
    models_config = {name: config["models"][name] for name in models}
    if "baseline_mlp" in models_config:
        models_config["baseline_mlp"].update(epochs=drawn.epochs, patience=2)
    external = {}
    if drawn.external is not None:
        external_data = write_cohort(drawn.external, workdir / "external_data", "ext")
        external_data["blank"] = "ignore"
        external["outside"] = {
            "pathologies": list(drawn.external.pathologies),
            "data": external_data,
        }
    config.update(
        cohort=COHORT,
        pathologies=list(drawn.pathologies),
        data=data,
        demo={"enabled": False},
        external=external,
        split={
            "method": "random",
            "seed": 0,
            "fractions": {"train": 0.5, "val": 0.25, "test": 0.25},
        },
        subsets={"sizes": list(drawn.sizes), "seeds": list(drawn.seeds), "policy": drawn.policy},
        encoders={"demo_openclip": random_demo_encoder()},
        models=models_config,
    )
    config["training"].update(min_positives=drawn.min_positives, job_scope="encoder")
    if oracle.schema_has("probe", "min_test_positives"):
        config["training"]["min_test_positives"] = drawn.min_test_positives
    config["sentiment"] = sentiment or {**config["sentiment"], "enabled": False}
    config["report"].update(policy=drawn.report_policy)
    config["report"]["bootstrap"].update(resamples=50)
    compared = [m for m in ("linear_probe", "zero_shot") if m in models]
    config["report"]["comparisons"].update(
        reference="baseline_mlp",
        models=compared,
        pairs=[["zero_shot", "linear_probe"]] if len(compared) == 2 else [],
    )
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- the tests --------------------------------------------------------------------------------

# summary.md needs every table (metrics, intervals, comparisons, transfer), not the figures
SUMMARY = f"results/{COHORT}/report/summary.md"
NOTHING_TO_TRAIN = "so there is nothing to train"


def _log_tail(workdir: Path, result) -> str:
    logs = sorted((workdir / "results" / COHORT / "logs").rglob("*.log"))
    failed = [p for p in logs if "Error" in p.read_text() or "Traceback" in p.read_text()]
    text = "\n".join(f"{p}:\n{p.read_text()[-2000:]}" for p in failed[:2])
    return (result.stdout + result.stderr)[-3000:] + "\n" + text


def _justified_refusal(workdir: Path, config: Path) -> bool:
    """The workflow refuses a run none of whose pathologies has min_positives positive patients
    in its training subset and validation; the oracle agrees when some subset has none."""
    values = yaml.safe_load(config.read_text())
    root = workdir / "results" / COHORT
    cohort = oracle.Cohort(root, values["pathologies"])
    rule = oracle.EvaluationRule.of(values)
    for n in values["subsets"]["sizes"]:
        for seed in values["subsets"]["seeds"]:
            path = root / "subsets" / f"n{n}" / f"seed{seed}.txt"
            if path.exists():
                train = oracle.subset_ids(root, str(n), seed)
                if not oracle.trained_pathologies(cohort, train, rule):
                    return True
    return False


def run_and_check(drawn: Drawn, workdir: Path) -> dict[str, list[oracle.Mismatch]] | None:
    """Run the workflow of `drawn` to summary.md and check everything; None when the workflow
    refused the configuration for a reason the oracle confirms."""
    config = write_config(drawn, workdir)
    result = run_snakemake(workdir, SUMMARY, configfile=config, timeout=1800)
    if result.returncode != 0:
        tail = _log_tail(workdir, result)
        if NOTHING_TO_TRAIN in tail:
            assert _justified_refusal(workdir, config), (
                "the workflow found nothing to train where the oracle finds a trainable "
                "pathology\n" + tail
            )
            return None
        raise AssertionError(f"the workflow failed:\n{tail}")
    return oracle.check_workflow(oracle.Workflow.read(workdir, config))


@given(drawn=drawn_configs())
def test_every_reported_number_equals_the_oracle(drawn: Drawn, tmp_path_factory) -> None:
    note(f"drawn configuration: {asdict(drawn)}")
    workdir = tmp_path_factory.mktemp("oracle")
    note(f"workdir: {workdir}")
    results = run_and_check(drawn, workdir)
    if results is None:
        note("refused: a subset without a trainable pathology (confirmed by the oracle)")
        return
    report = oracle.describe(results)
    note(report)
    assert not any(results.values()), report
