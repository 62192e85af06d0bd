"""The train_probe step: run folder contents, honest evaluation (test labels read last, and unable
to change any choice), determinism, bad inputs, and the rules through Snakemake."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, run_snakemake
from sklearn.metrics import roc_auc_score

import probelab.probe
from probelab import probe_job
from probelab.cache import CacheMismatchError, ResumableImageCache, write_prompt_cache
from probelab.cohort import index_hash
from probelab.heads import build_head
from probelab.models import needs_prompts

torch.set_num_threads(1)

PATHOLOGIES = ["A", "B", "C"]
DIM = 8
SEEDS = [0, 1]
HEAD = {
    "enabled": True,
    "hidden": [8],
    "branch_width": 8,
    "dropout": 0.1,
    "noise_std": 0.01,
    "lr": 0.01,
    "weight_decay": 0.0,
    "epochs": 20,
    "batch_size": 16,
    "scheduler": "cosine",
    "plateau_factor": 0.5,
    "plateau_patience": 1,
    "patience": 5,
    "pos_weight": True,
}
PARAMS = {
    "baseline_mlp": HEAD,
    "two_branch_concat": HEAD,
    "weighted_sum": HEAD,
    "linear_probe": {
        "enabled": True,
        "C": [0.1, 1.0],
        "standardize": True,
        "pos_weight": False,
        "max_iter": 200,
    },
    "zero_shot": {"enabled": True},
}
# min_test_positives 1: these tests are about the mechanics of the rule on a small cohort
TRAINING = {"device": "cpu", "threads": 1, "eval_batch_size": 32, "min_test_positives": 1}


def write_cohort(root: Path, *, test_label_seed: int | None = None) -> dict[str, Path]:
    """Index, split, subsets, image cache and prompt cache of a small separable cohort.

    With `test_label_seed`, the test images get random labels instead (same ids, same features).
    """
    rng = np.random.default_rng(0)
    n = 90
    ids = [f"img{i:03d}.png" for i in range(n)]
    directions = rng.normal(size=(len(PATHOLOGIES), DIM))
    features = rng.normal(size=(n, DIM)).astype(np.float32)
    labels = (features @ directions.T > 0.7).astype(np.int8)
    split = np.array(["train"] * 50 + ["val"] * 20 + ["test"] * 20)
    if test_label_seed is not None:
        labels[split == "test"] = np.random.default_rng(test_label_seed).integers(
            0, 2, ((split == "test").sum(), 3)
        )
    root.mkdir(parents=True, exist_ok=True)
    index = pd.DataFrame(
        {
            "image_id": ids,
            "path": [f"/data/{i}" for i in ids],
            "patient_id": [str(i) for i in range(n)],
            "view": "PA",
            "follow_up": 0,
            **{p: labels[:, k] for k, p in enumerate(PATHOLOGIES)},
        }
    )
    index.to_parquet(root / "index.parquet")
    pd.DataFrame({"image_id": ids, "patient_id": index["patient_id"], "split": split}).to_parquet(
        root / "split.parquet"
    )
    train_ids = [i for i, s in zip(ids, split, strict=True) if s == "train"]
    subsets = []
    for seed in SEEDS:
        chosen = sorted(np.random.default_rng(seed).choice(train_ids, 30, replace=False))
        subsets.append(root / f"seed{seed}.txt")
        subsets[-1].write_text("\n".join(chosen) + "\n")
    cache = ResumableImageCache(
        root / "enc.h5", {"encoder": "enc", "index_hash": index_hash(index)}, n, n, DIM, "float32"
    )
    cache.resume_row()
    cache.write_chunk(0, features, np.zeros(n, dtype=bool))
    cache.finish(ids)
    per_pathology = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    write_prompt_cache(
        root / "enc_prompts.h5",
        PATHOLOGIES,
        ["{}"],
        [[p] for p in PATHOLOGIES],
        per_pathology[:, None, :],
        per_pathology,
        per_pathology.ravel(),
        {"encoder": "enc", "embedding_dim": DIM, "logit_scale": 5.0, "logit_bias": float("nan")},
    )
    return {
        "root": root,
        "index": root / "index.parquet",
        "split": root / "split.parquet",
        "subsets": subsets,
        "images": root / "enc.h5",
        "prompts": root / "enc_prompts.h5",
    }


@pytest.fixture
def cohort(tmp_path: Path) -> dict[str, Path]:
    return write_cohort(tmp_path / "cohort")


def run(cohort: dict[str, Path], model: str, out: Path, **changes) -> list[dict]:
    arguments = dict(
        image_cache=cohort["images"],
        prompt_cache=cohort["prompts"] if needs_prompts(model) else None,
        index=cohort["index"],
        split=cohort["split"],
        runs=[
            probe_job.RunSpec(model, "30", seed, subset, out / f"seed{seed}")
            for seed, subset in zip(SEEDS, cohort["subsets"], strict=True)
        ],
        cohort="tiny",
        encoder="enc",
        models=PARAMS,
        pathologies=PATHOLOGIES,
        training=TRAINING,
        threads=1,
    )
    return probe_job.train_probe(**{**arguments, **changes})


@pytest.mark.parametrize("model", list(PARAMS))
def test_each_model_writes_a_complete_run_folder(
    model: str, cohort: dict[str, Path], tmp_path: Path
) -> None:
    documents = run(cohort, model, tmp_path / "out")
    for seed, document in zip(SEEDS, documents, strict=True):
        folder = tmp_path / "out" / f"seed{seed}"
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [
                "metrics.json",
                "model.pt",
                "history.csv",
                "predictions_val.parquet",
                "predictions_test.parquet",
            ]
        )
        assert json.loads((folder / "metrics.json").read_text()) == json.loads(json.dumps(document))
        assert {
            "cohort",
            "encoder",
            "model",
            "n",
            "seed",
            "n_train",
            "n_val",
            "n_test",
            "epochs_run",
            "best_epoch",
            "train_seconds",
            "hyperparameters",
        } <= set(document["run"])
        assert (
            document["run"]["seed"] == seed
            and document["run"]["n"] == 30
            and document["run"]["n_train"] == 30
        )
        assert set(document["thresholds"]) == set(document["logit_thresholds"]) == set(PATHOLOGIES)
        for name in PATHOLOGIES:  # the probability threshold is the sigmoid of the logit one
            logit = document["logit_thresholds"][name]
            assert document["thresholds"][name] == pytest.approx(1 / (1 + math.exp(-logit)))
        assert document["evaluated_pathologies"] == PATHOLOGIES
        assert document["excluded_pathologies"] == {}
        assert set(document["positives"]) == {"train", "val", "test"}
        assert document["run"]["min_positives"] == 1
        policies = {(r["split"], r["policy"]) for r in document["metrics"]}
        assert policies == {
            (s, p) for s in ("val", "test") for p in ("t0.5", "tuned", "all_negative", "prevalence")
        }
        test_auroc = next(
            r["value"]
            for r in document["metrics"]
            if (r["split"], r["policy"], r["metric"], r["pathology"])
            == ("test", "tuned", "auroc", "macro")
        )
        assert test_auroc > 0.6  # the all-negative baseline's AUROC is 0.5

        predictions = pd.read_parquet(folder / "predictions_test.parquet")
        assert list(predictions.columns) == ["image_id"] + [
            f"{kind}_{p}" for p in PATHOLOGIES for kind in ("logit", "prob", "true")
        ]
        assert len(predictions) == 20 and predictions["prob_A"].between(0, 1).all()
        assert predictions["logit_A"].dtype == np.float64
        np.testing.assert_allclose(
            predictions["prob_A"], 1 / (1 + np.exp(-predictions["logit_A"])), rtol=1e-12
        )
        tuned = predictions["logit_A"] >= document["logit_thresholds"]["A"]
        truth = predictions["true_A"] == 1
        f1 = 2 * (tuned & truth).sum() / (tuned.sum() + truth.sum())
        assert metric(document, "test", "f1", "A") == pytest.approx(f1)
        history = pd.read_csv(folder / "history.csv")
        assert list(history.columns) == ["epoch", "train_loss", "val_loss", "lr"]
        assert (
            len(history)
            == document["run"]["epochs_run"]
            == (0 if model in ("linear_probe", "zero_shot") else len(history))
        )

        saved = torch.load(folder / "model.pt", weights_only=True)
        assert saved["hparams"]["model"] == model
        if model in ("baseline_mlp", "two_branch_concat", "weighted_sum"):
            head = build_head(
                model,
                saved["hparams"]["image_dim"],
                saved["hparams"]["n_outputs"],
                saved["hparams"],
                saved["state_dict"].get("mega_vector"),
            )
            head.load_state_dict(saved["state_dict"])
        else:
            assert saved["state_dict"]["weight"].shape == (len(PATHOLOGIES), DIM)


def test_same_inputs_and_seed_give_identical_metrics(
    cohort: dict[str, Path], tmp_path: Path
) -> None:
    first = run(cohort, "two_branch_concat", tmp_path / "a")
    second = run(cohort, "two_branch_concat", tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a["metrics"] == b["metrics"] and a["thresholds"] == b["thresholds"]
    assert first[0]["metrics"] != first[1]["metrics"]  # the two seeds are different runs


def test_test_labels_are_read_only_after_every_model_and_threshold_is_frozen(
    cohort: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test_ids = set(pd.read_parquet(cohort["split"]).query("split == 'test'")["image_id"])
    events: list[str] = []
    real_read, real_fit = probelab.probe.read_labels, probe_job.fit_and_freeze

    def spy_read(index_path, image_ids, pathologies):
        events.append("read test labels" if set(image_ids) & test_ids else "read other labels")
        return real_read(index_path, image_ids, pathologies)

    def spy_fit(*args, **kwargs):
        frozen = real_fit(*args, **kwargs)
        events.append("frozen")
        return frozen

    monkeypatch.setattr(probelab.probe, "read_labels", spy_read)
    monkeypatch.setattr(probe_job, "fit_and_freeze", spy_fit)
    run(cohort, "baseline_mlp", tmp_path / "out")
    assert events.count("frozen") == len(SEEDS)
    assert events.count("read test labels") == 1
    assert events.index("read test labels") > max(i for i, e in enumerate(events) if e == "frozen")


def test_the_job_trains_on_the_threads_it_is_given_not_the_configured_ones(
    cohort: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Snakemake may give a job fewer threads than training.threads asks for (--cores).
    threads: list[int] = []
    real_fit = probe_job.fit_and_freeze

    def spy_fit(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(probe_job, "fit_and_freeze", spy_fit)
    try:
        run(cohort, "zero_shot", tmp_path / "out", training={**TRAINING, "threads": 1}, threads=2)
    finally:
        torch.set_num_threads(1)
    assert threads == [2] * len(SEEDS)


def test_one_job_can_train_several_models(cohort: dict[str, Path], tmp_path: Path) -> None:
    runs = [
        probe_job.RunSpec(model, "30", 0, cohort["subsets"][0], tmp_path / model)
        for model in ("zero_shot", "baseline_mlp")
    ]
    documents = probe_job.train_probe(
        image_cache=cohort["images"],
        prompt_cache=cohort["prompts"],
        index=cohort["index"],
        split=cohort["split"],
        runs=runs,
        cohort="tiny",
        encoder="enc",
        models=PARAMS,
        pathologies=PATHOLOGIES,
        training=TRAINING,
        threads=1,
    )
    assert [d["run"]["model"] for d in documents] == ["zero_shot", "baseline_mlp"]
    assert documents[1]["metrics"] == run(cohort, "baseline_mlp", tmp_path / "alone")[0]["metrics"]


def test_test_labels_cannot_be_had_without_frozen_runs(cohort: dict[str, Path]) -> None:
    reader = probelab.probe.LabelReader(cohort["index"], PATHOLOGIES)
    with pytest.raises(RuntimeError, match="only for the final evaluation of frozen runs"):
        reader.test_labels(["img080.png"], [])


def test_changing_test_labels_changes_no_choice(tmp_path: Path) -> None:
    """Everything chosen on validation (model, thresholds, validation metrics) ignores test
    labels."""
    honest = write_cohort(tmp_path / "honest")
    scrambled = write_cohort(tmp_path / "scrambled", test_label_seed=5)
    for model in ("baseline_mlp", "linear_probe"):
        a, b = (
            run(honest, model, tmp_path / "a" / model),
            run(scrambled, model, tmp_path / "b" / model),
        )
        for doc_a, doc_b in zip(a, b, strict=True):
            assert doc_a["thresholds"] == doc_b["thresholds"]
            assert [r for r in doc_a["metrics"] if r["split"] == "val"] == [
                r for r in doc_b["metrics"] if r["split"] == "val"
            ]
            assert [r for r in doc_a["metrics"] if r["split"] == "test"] != [
                r for r in doc_b["metrics"] if r["split"] == "test"
            ]
        state_a = torch.load(tmp_path / "a" / model / "seed0" / "model.pt", weights_only=True)[
            "state_dict"
        ]
        state_b = torch.load(tmp_path / "b" / model / "seed0" / "model.pt", weights_only=True)[
            "state_dict"
        ]
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def metric(document: dict, split: str, name: str, pathology: str, policy: str = "tuned"):
    return next(
        r["value"]
        for r in document["metrics"]
        if (r["split"], r["policy"], r["metric"], r["pathology"])
        == (split, policy, name, pathology)
    )


def set_labels(cohort: dict[str, Path], split: str, pathology: str, value: int) -> None:
    """Set one pathology's label of every image of `split` in the cohort index."""
    index = pd.read_parquet(cohort["index"])
    ids = set(pd.read_parquet(cohort["split"]).query("split == @split")["image_id"])
    index.loc[index["image_id"].isin(ids), pathology] = value
    index.to_parquet(cohort["index"])


@pytest.mark.parametrize("model", ["baseline_mlp", "linear_probe", "zero_shot"])
def test_a_pathology_without_validation_positives_is_excluded_with_its_reason(
    model: str, cohort: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    set_labels(cohort, "val", "C", 0)
    with caplog.at_level("WARNING", logger="probelab"):
        documents = run(cohort, model, tmp_path / "out")
    reason = "0 positive patients in validation (needs 1); not trained"
    assert f"{model}/n30/seed0: pathology C is left out of training and evaluation: {reason}" in (
        caplog.text
    )
    for seed, document in zip(SEEDS, documents, strict=True):
        assert document["evaluated_pathologies"] == ["A", "B"]
        assert document["excluded_pathologies"] == {"C": reason}
        assert document["positives"]["val"]["C"] == document["positive_patients"]["val"]["C"] == 0
        assert document["thresholds"]["C"] is None and document["logit_thresholds"]["C"] is None
        for split in ("val", "test"):
            predictions = pd.read_parquet(
                tmp_path / "out" / f"seed{seed}" / f"predictions_{split}.parquet"
            )
            assert predictions["logit_C"].isna().all() and predictions["prob_C"].isna().all()
            assert predictions[["logit_A", "logit_B"]].notna().all().all()
            for name in ("auroc", "average_precision", "precision", "recall", "f1"):
                assert metric(document, split, name, "C") is None
                per_pathology = [metric(document, split, name, p) for p in ("A", "B")]
                assert metric(document, split, name, "macro") == pytest.approx(
                    np.mean(per_pathology)
                ), (split, name)
            for policy in ("all_negative", "prevalence"):
                assert metric(document, split, "f1", "C", policy) is None
        if model != "zero_shot":
            saved = torch.load(tmp_path / "out" / f"seed{seed}" / "model.pt", weights_only=True)
            assert saved["hparams"]["trained_pathologies"] == ["A", "B"]
            weights = saved["state_dict"].get("weight", saved["state_dict"].get("net.3.weight"))
            assert weights is None or weights.shape[0] == 2


def test_a_pathology_without_test_positives_is_trained_but_not_evaluated(
    cohort: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    set_labels(cohort, "test", "B", 0)
    with caplog.at_level("WARNING", logger="probelab"):
        document = run(cohort, "linear_probe", tmp_path / "out")[0]
    reason = "0 positive patients in test (needs 1); trained, not evaluated"
    assert document["excluded_pathologies"] == {"B": reason}
    assert f"pathology B is left out of evaluation: {reason}" in caplog.text
    # trained: it has logits and a threshold; not evaluated: no metric, on either split
    assert document["logit_thresholds"]["B"] is not None
    assert (
        pd.read_parquet(tmp_path / "out" / "seed0" / "predictions_test.parquet")["logit_B"]
        .notna()
        .all()
    )
    for split in ("val", "test"):
        assert metric(document, split, "auroc", "B") is None
        assert metric(document, split, "f1", "macro") == pytest.approx(
            np.mean([metric(document, split, "f1", p) for p in ("A", "C")])
        )


def test_min_positives_comes_from_the_training_config(
    cohort: dict[str, Path], tmp_path: Path
) -> None:
    documents = run(cohort, "linear_probe", tmp_path / "one")
    counts = documents[0]["positive_patients"]
    fewest = {p: min(counts[split][p] for split in ("train", "val")) for p in PATHOLOGIES}
    threshold = min(fewest.values()) + 1  # leaves out the rarest pathology
    strict = run(
        cohort,
        "linear_probe",
        tmp_path / "strict",
        training={**TRAINING, "min_positives": threshold},
    )[0]
    left_out = sorted(p for p in PATHOLOGIES if fewest[p] < threshold)
    assert 0 < len(left_out) < len(PATHOLOGIES)
    assert sorted(strict["excluded_pathologies"]) == left_out
    assert strict["run"]["min_positives"] == threshold
    assert all(f"(needs {threshold})" in r for r in strict["excluded_pathologies"].values())
    assert strict["evaluated_pathologies"] == [p for p in PATHOLOGIES if p not in left_out]
    with pytest.raises(ValueError, match=r"no pathology has at least 1000 positive training"):
        run(cohort, "linear_probe", tmp_path / "none", training={**TRAINING, "min_positives": 1000})


def test_zero_shot_metrics_use_the_unsaturated_logits(
    cohort: dict[str, Path], tmp_path: Path
) -> None:
    """CLIP's logit scale 100 saturates the probabilities; metrics and thresholds use the logits,
    so test AUROC is the AUROC of the raw cosines."""
    from probelab.cache import read_image_cache, read_prompt_cache

    prompts = read_prompt_cache(cohort["prompts"], encoder="enc", pathologies=PATHOLOGIES, dim=DIM)
    write_prompt_cache(
        cohort["prompts"],
        PATHOLOGIES,
        ["{}"],
        [[p] for p in PATHOLOGIES],
        prompts.per_pathology[:, None, :],
        prompts.per_pathology,
        prompts.per_pathology.ravel(),
        {"encoder": "enc", "embedding_dim": DIM, "logit_scale": 100.0, "logit_bias": float("nan")},
    )
    document = run(cohort, "zero_shot", tmp_path / "out")[0]
    predictions = pd.read_parquet(tmp_path / "out" / "seed0" / "predictions_test.parquet")
    assert (predictions[[f"prob_{p}" for p in PATHOLOGIES]] == 1.0).to_numpy().mean() > 0.1
    index = pd.read_parquet(cohort["index"])
    cache = read_image_cache(cohort["images"], encoder="enc", index_hash=index_hash(index))
    rows = pd.Index(cache.image_ids).get_indexer(predictions["image_id"])
    images = cache.features[rows].astype(np.float64)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    text = prompts.per_pathology / np.linalg.norm(prompts.per_pathology, axis=1, keepdims=True)
    cosine = images @ text.T
    for k, name in enumerate(PATHOLOGIES):
        np.testing.assert_allclose(predictions[f"logit_{name}"], 100 * cosine[:, k], rtol=1e-6)
        assert metric(document, "test", "auroc", name) == pytest.approx(
            roc_auc_score(predictions[f"true_{name}"], cosine[:, k]), abs=1e-12
        )


def test_empty_subset_is_refused_naming_the_file(cohort: dict[str, Path], tmp_path: Path) -> None:
    cohort["subsets"][1].write_text("\n")
    with pytest.raises(ValueError, match=rf"subset file {cohort['subsets'][1]} lists no image ids"):
        run(cohort, "baseline_mlp", tmp_path / "out")
    assert not (tmp_path / "out" / "seed0" / "metrics.json").exists()


def test_subset_outside_the_train_split_is_refused(cohort: dict[str, Path], tmp_path: Path) -> None:
    cohort["subsets"][0].write_text("img000.png\nimg089.png\n")
    with pytest.raises(ValueError, match=r"image 'img089.png' is not in the train split"):
        run(cohort, "linear_probe", tmp_path / "out")


def test_prompt_cache_of_another_dimension_is_refused(
    cohort: dict[str, Path], tmp_path: Path
) -> None:
    other = np.ones((3, 4), dtype=np.float32)
    write_prompt_cache(
        cohort["prompts"],
        PATHOLOGIES,
        ["{}"],
        [[p] for p in PATHOLOGIES],
        other[:, None, :],
        other,
        other.ravel(),
        {"encoder": "enc", "embedding_dim": 4, "logit_scale": 5.0, "logit_bias": 0.0},
    )
    with pytest.raises(CacheMismatchError, match=r"attribute 'embedding_dim' is 4, expected 8"):
        run(cohort, "weighted_sum", tmp_path / "out")


def test_cache_of_another_index_is_refused(cohort: dict[str, Path], tmp_path: Path) -> None:
    index = pd.read_parquet(cohort["index"])
    index.loc[0, "path"] = "/elsewhere/img000.png"
    index.to_parquet(cohort["index"])
    with pytest.raises(CacheMismatchError, match="attribute 'index_hash'"):
        run(cohort, "baseline_mlp", tmp_path / "out")


def test_prompt_model_without_prompt_cache_is_refused(
    cohort: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(
        ValueError, match="model 'zero_shot' needs the prompt cache of encoder 'enc'"
    ):
        run(cohort, "zero_shot", tmp_path / "out", prompt_cache=None)


# --------------------------------------------------------------------------------------------
# through Snakemake

DEMO_JSON = REPO / "configs" / "encoders" / "probelab-demo-vit-tiny.json"
TINY = {
    "cohort": "tiny",
    "pathologies": ["Atelectasis", "Effusion", "Cardiomegaly"],
    "data": {"root": "results/tiny/data"},
    "demo": {"enabled": True, "n_images": 60, "image_size": 64, "images_per_folder": 30},
    "split": {"method": "random"},
    "subsets": {"sizes": [12, "all"], "seeds": [0, 1]},
    "encoders": {
        "demo_openclip": {
            "backend": "open_clip",
            "model": str(DEMO_JSON),
            "batch_size": 16,
            "num_workers": 0,
        }
    },
    "embedding": {"chunk_size": 32},
    "prompts": {"templates": ["signs of {pathology}"]},
}
TINY_HEAD = {key: value for key, value in HEAD.items() if key not in ("enabled", "branch_width")}
TINY["models"] = {
    "baseline_mlp": TINY_HEAD,
    "two_branch_concat": {**TINY_HEAD, "branch_width": 8},
    "weighted_sum": TINY_HEAD,
    "linear_probe": {"C": [0.1, 1.0], "max_iter": 200},
    "zero_shot": {},
}


@pytest.mark.workflow
def test_probe_rules_run_every_model_size_and_seed(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "training": {"job_scope": "encoder"}}))
    done = run_snakemake(tmp_path, "probes", configfile=config)
    assert done.returncode == 0, done.stderr[-4000:]
    runs = tmp_path / "results" / "tiny" / "runs" / "demo_openclip"
    folders = sorted(str(p.relative_to(runs)) for p in runs.glob("*/n*/seed*"))
    assert folders == sorted(
        f"{m}/n{n}/seed{s}" for m in PARAMS for n in (12, "all") for s in (0, 1)
    )
    for folder in runs.glob("*/n*/seed*"):
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["run"]["encoder"] == "demo_openclip"
        assert all(r["value"] is None or math.isfinite(r["value"]) for r in metrics["metrics"])
    # One job for the encoder: every model, size and seed in one process.
    assert (done.stdout + done.stderr).count("rule train_probe:") == 1
    again = run_snakemake(tmp_path, "probes", "--dry-run", configfile=config)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("job_scope", "jobs"), [("size", len(PARAMS) * 2), ("model", len(PARAMS)), ("encoder", 1)]
)
def test_job_scope_sets_how_many_runs_one_job_trains(
    job_scope: str, jobs: int, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "training": {"job_scope": job_scope}}))
    planned = run_snakemake(tmp_path, "probes", "--dry-run", configfile=config)
    assert planned.returncode == 0, planned.stderr[-3000:]
    counts = dict(
        line.split()[:2] for line in planned.stdout.splitlines() if line.startswith("train_probe ")
    )
    assert counts == {"train_probe": str(jobs)}


@pytest.mark.workflow
# job_scope encoder, the one with its own rule (train_probe_image_only); the size scope's plan is
# checked by the NIH dry run, whose rad_dino encoder has no text tower.
@pytest.mark.parametrize("job_scope", ["encoder"])
def test_an_encoder_without_text_tower_skips_the_prompt_models(
    job_scope: str, tmp_path: Path
) -> None:
    tiny = json.loads(json.dumps(TINY))
    encoder = tiny["encoders"]["demo_openclip"]
    tiny["encoders"] = {"with_text": encoder, "image_only": {**encoder, "text": False}}
    tiny["models"] = {
        "baseline_mlp": TINY["models"]["baseline_mlp"],
        "weighted_sum": TINY["models"]["weighted_sum"],
        "text_init_linear": {"anchor_strengths": [1.0], "max_iter": 50},
    }
    tiny["subsets"]["sizes"] = [12]
    tiny["training"] = {"job_scope": job_scope}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny))
    done = run_snakemake(tmp_path, "probes", configfile=config)
    assert done.returncode == 0, done.stderr[-4000:]
    runs = tmp_path / "results" / "tiny" / "runs"
    assert sorted(str(p.relative_to(runs)) for p in runs.glob("*/*/n12/seed0")) == sorted(
        [f"with_text/{m}/n12/seed0" for m in tiny["models"]] + ["image_only/baseline_mlp/n12/seed0"]
    )
    # no prompt cache is built or read for the encoder without a text tower
    assert not (tmp_path / "results" / "tiny" / "prompts" / "image_only").exists()


# --------------------------------------------------------------------------------------------
# the prompt-ablation controls and the text heads

TEXT_PARAMS = {
    "two_branch_concat_no_text": {**HEAD, "replacement": "random"},
    "weighted_sum_no_text": {**HEAD, "replacement": "zeros"},
    "text_init_linear": {"enabled": True, "anchor_strengths": [0.1, 10.0], "max_iter": 100},
    "text_pair_scorer": HEAD,
}


@pytest.mark.parametrize("model", list(TEXT_PARAMS))
def test_each_text_model_writes_a_complete_run_folder(
    model: str, cohort: dict[str, Path], tmp_path: Path
) -> None:
    from probelab.cache import read_prompt_cache

    documents = run(cohort, model, tmp_path / "out", models={**PARAMS, **TEXT_PARAMS})
    for seed, document in zip(SEEDS, documents, strict=True):
        folder = tmp_path / "out" / f"seed{seed}"
        assert {p.name for p in folder.iterdir()} >= {
            "metrics.json",
            "model.pt",
            "history.csv",
            "predictions_val.parquet",
            "predictions_test.parquet",
        }
        assert document["run"]["model"] == model
        assert metric(document, "test", "auroc", "macro") > 0.6  # the cohort is separable
        saved = torch.load(folder / "model.pt", weights_only=True)
        assert saved["hparams"]["model"] == model
        if model == "text_init_linear":
            grid = saved["hparams"]["val_loss_by_anchor_strength"]
            assert [row["anchor_strength"] for row in grid] == ["inf", 10.0, 0.1]
            assert saved["hparams"]["anchor_strength"] in ("inf", 10.0, 0.1)
            assert saved["state_dict"]["weight"].shape == (len(PATHOLOGIES), DIM)
            continue
        head = build_head(
            model,
            saved["hparams"]["image_dim"],
            saved["hparams"]["n_outputs"],
            saved["hparams"],
            saved["state_dict"]["mega_vector"],
        )
        head.load_state_dict(saved["state_dict"])
        given = saved["state_dict"]["mega_vector"].reshape(len(PATHOLOGIES), DIM).double()
        real = torch.from_numpy(
            read_prompt_cache(
                cohort["prompts"], encoder="enc", pathologies=PATHOLOGIES, dim=DIM
            ).per_pathology
        ).double()
        if model == "text_pair_scorer":
            torch.testing.assert_close(given, real)
        elif TEXT_PARAMS[model]["replacement"] == "zeros":
            assert not given.any()
        else:  # random vectors of the real blocks' norms, another per seed
            torch.testing.assert_close(given.norm(dim=1), real.norm(dim=1))
            assert not torch.allclose(given, real)


def test_an_ablation_control_differs_from_its_fusion_model_only_by_the_prompt_input(
    cohort: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed: same initial weights, batches, noise and dropout; only the mega-vector differs.
    With the real mega-vector given to the control, it reproduces its fusion model exactly."""
    models = {**PARAMS, **TEXT_PARAMS}
    fusion = run(cohort, "two_branch_concat", tmp_path / "fusion", models=models)
    control = run(cohort, "two_branch_concat_no_text", tmp_path / "control", models=models)
    assert fusion[0]["metrics"] != control[0]["metrics"]
    monkeypatch.setattr(
        probelab.probe, "fusion_input", lambda model, params, prompts, seed: prompts.mega_vector
    )
    same = run(cohort, "two_branch_concat_no_text", tmp_path / "same", models=models)
    for a, b in zip(same, fusion, strict=True):
        assert a["metrics"] == b["metrics"] and a["thresholds"] == b["thresholds"]


@pytest.mark.workflow
def test_the_demo_matrix_runs_the_ablation_controls_and_the_text_heads(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for settings in config["encoders"].values():  # the repository's files, from another folder
        for key in ("model", "build_from"):
            if key in settings:
                settings[key] = str(REPO / settings[key])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    planned = run_snakemake(tmp_path, "report", "--dry-run", configfile=path)
    assert planned.returncode == 0, planned.stderr[-3000:]
    for encoder in config["encoders"]:
        for model in TEXT_PARAMS:
            assert f"runs/{encoder}/{model}/nall/seed1/metrics.json" in planned.stdout, (
                encoder,
                model,
            )
    pairs = config["report"]["comparisons"]["pairs"]
    assert ["two_branch_concat", "two_branch_concat_no_text"] in pairs
    assert ["weighted_sum", "weighted_sum_no_text"] in pairs
    compared = set(config["report"]["comparisons"]["models"])
    assert {"text_init_linear", "text_pair_scorer"} <= compared


def test_the_test_side_of_the_rule_counts_positive_patients(
    cohort: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 23.4: every positive test image of B moved to one patient is one positive patient,
    so min_test_positives 2 leaves B out of evaluation, however many images it has; the counts
    of metrics.json are checked against a hand count of the index."""
    index = pd.read_parquet(cohort["index"])
    test_ids = set(pd.read_parquet(cohort["split"]).query("split == 'test'")["image_id"])
    in_test = index["image_id"].isin(test_ids)
    positive_b = in_test & (index["B"] == 1)
    assert positive_b.sum() >= 2
    index.loc[positive_b, "patient_id"] = "one-patient"
    index.to_parquet(cohort["index"])
    document = run(
        cohort,
        "linear_probe",
        tmp_path / "out",
        training={**TRAINING, "min_test_positives": 2},
    )[0]
    assert document["excluded_pathologies"]["B"] == (
        "1 positive patient in test (needs 2); trained, not evaluated"
    )
    assert document["positives"]["test"]["B"] == int(positive_b.sum())
    for name in ("A", "C"):
        by_hand = index.loc[in_test & (index[name] == 1), "patient_id"].nunique()
        assert document["positive_patients"]["test"][name] == by_hand
    assert document["run"]["min_test_positives"] == 2
    assert "B" not in document["evaluated_pathologies"]
