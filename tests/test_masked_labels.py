"""Labels the cohort index does not observe (NaN): masked out of every loss, count, choice and
metric (probelab.masking). Each test compares against the same computation on the observed
entries only, or flips what a masked entry holds and checks that nothing moves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from test_probe_workflow import HEAD, PARAMS, SEEDS, TRAINING, write_cohort

from probelab import masking, probe_job, training
from probelab.demo.pretrain import pretrain
from probelab.linear import fit_linear_probe, mean_bce
from probelab.metrics import (
    baseline_rows,
    decision_rows,
    f1_optimal_threshold,
    label_counts,
    label_exclusions,
    ranking_rows,
    tune_thresholds,
)
from probelab.probe import fit_and_freeze, read_labels
from probelab.report.aggregate import read_runs
from probelab.report.bootstrap import BOOTSTRAP_METRICS, covering_strata, weighted_metrics
from probelab.report.intervals import BootstrapSettings, bootstrap_tables
from probelab.subsets import balanced_subset, stratified_subset, subset_mix
from probelab.text_heads import anchored_linear_head
from probelab.training import TrainSettings, positive_weights, train_head

torch.set_num_threads(1)

NEURAL = ["baseline_mlp", "two_branch_concat", "weighted_sum", "text_pair_scorer"]
SMALL_HEAD = {**HEAD, "hidden": [8], "branch_width": 8, "epochs": 4, "pos_weight": True}


def blank(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A float copy of `labels` with about `share` of the entries set to NaN (not observed)."""
    out = np.array(labels, dtype=np.float64)
    out[np.random.default_rng(seed).random(out.shape) < share] = np.nan
    return out


def problem(n: int = 96, dim: int = 8, p: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(p, dim))
    data: dict[str, np.ndarray] = {"directions": directions}
    for split, size in (("train", n), ("val", n // 2)):
        x = rng.normal(size=(size, dim))
        data[f"x_{split}"] = x.astype(np.float32)
        data[f"y_{split}"] = (x @ directions.T + 0.5 * rng.normal(size=(size, p)) > 0.6).astype(
            np.float32
        )
    return data


# --- the masked loss of the neural heads --------------------------------------------------------


@pytest.mark.parametrize("pos_weight", [None, torch.tensor([0.5, 2.0, 3.0])])
def test_masked_bce_is_torchs_bce_bit_for_bit_on_fully_observed_labels(pos_weight) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 3, generator=generator)
    targets = (torch.rand(40, 3, generator=generator) < 0.3).float()
    filled, mask = training.split_mask(targets)
    assert mask is None and filled is targets
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)(logits, targets)
    assert torch.equal(training.masked_bce(logits, filled, mask, pos_weight), expected)


def test_masked_bce_is_the_mean_over_observed_entries_and_ignores_masked_values() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(30, 3, generator=generator, requires_grad=True)
    targets = (torch.rand(30, 3, generator=generator) < 0.4).float()
    mask = torch.rand(30, 3, generator=generator) > 0.3
    weight = torch.tensor([1.0, 2.0, 0.5])
    per_entry = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=weight, reduction="none"
    )
    expected = per_entry[mask].mean()
    losses, grads = [], []
    for value in (0.0, 1.0):  # what a masked entry holds must not matter
        flipped = torch.where(mask, targets, torch.full_like(targets, value))
        loss = training.masked_bce(logits, flipped, mask, weight)
        (grad,) = torch.autograd.grad(loss, logits)
        losses.append(loss)
        grads.append(grad)
    torch.testing.assert_close(losses[0], expected)
    assert torch.equal(losses[0], losses[1]) and torch.equal(grads[0], grads[1])
    assert (grads[0][~mask] == 0).all()
    # no observed entry: no loss and no gradient, not 0 / 0
    nothing = training.masked_bce(logits, targets, torch.zeros_like(mask))
    assert nothing.item() == 0.0


def test_positive_weights_count_observed_labels_only() -> None:
    labels = torch.tensor([[1, 0], [1, 0], [0, 1], [float("nan"), 0], [float("nan"), float("nan")]])
    filled, mask = training.split_mask(labels)
    # column 0: 2 positives, 1 observed negative; column 1: 1 positive, 3 observed negatives
    torch.testing.assert_close(positive_weights(filled, mask), torch.tensor([0.5, 3.0]))
    full = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert torch.equal(positive_weights(full, None), positive_weights(full))


def _train(model: str, data: dict[str, np.ndarray], y_train: np.ndarray, y_val: np.ndarray):
    settings = TrainSettings.from_config(SMALL_HEAD, {"eval_batch_size": 64, "device": "cpu"})
    mega = torch.tensor(data["directions"].ravel(), dtype=torch.float32)
    return train_head(
        model,
        SMALL_HEAD,
        settings,
        torch.tensor(data["x_train"]),
        torch.tensor(y_train, dtype=torch.float32),
        torch.tensor(data["x_val"]),
        torch.tensor(y_val, dtype=torch.float32),
        seed=5,
        run_name=f"masked/{model}",
        mega_vector=mega,
    )


def test_fully_observed_training_uses_exactly_torchs_bce(monkeypatch) -> None:
    """With every label observed the training loop calls the unmasked loss: replacing it by
    BCEWithLogitsLoss itself changes no loss and no weight."""
    data = problem()
    masked = _train("baseline_mlp", data, data["y_train"], data["y_val"])

    def plain(logits, targets, mask, pos_weight):
        assert mask is None
        return torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)(logits, targets)

    monkeypatch.setattr(training, "masked_bce", plain)
    reference = _train("baseline_mlp", data, data["y_train"], data["y_val"])
    assert masked.history == reference.history
    state, expected = masked.model.state_dict(), reference.model.state_dict()
    assert all(torch.equal(state[name], expected[name]) for name in expected)


@pytest.mark.parametrize("model", NEURAL)
def test_a_masked_labels_value_changes_no_loss_and_no_weight_of_any_head(
    model: str, monkeypatch
) -> None:
    data = problem()
    y_train, y_val = blank(data["y_train"], 0.25, 1), blank(data["y_val"], 0.25, 2)
    runs = []
    for value in (0.0, 1.0):
        monkeypatch.setattr(masking, "PLACEHOLDER", value)
        runs.append(_train(model, data, y_train, y_val))
    assert runs[0].history == runs[1].history
    first, second = runs[0].model.state_dict(), runs[1].model.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)
    # and the mask does something: the same labels read as 0 train another model
    as_zero = _train(model, data, np.nan_to_num(y_train), np.nan_to_num(y_val))
    assert as_zero.history != runs[0].history


# --- linear probe and text_init_linear ----------------------------------------------------------


def test_the_linear_probe_fits_each_pathology_on_the_images_that_observe_it() -> None:
    data = problem(n=120)
    y_train, y_val = blank(data["y_train"], 0.3, 3), blank(data["y_val"], 0.3, 4)
    settings = dict(c_grid=[0.1, 1.0], standardize=False, balanced=True, max_iter=300)
    probe, grid = fit_linear_probe(data["x_train"], y_train, data["x_val"], y_val, **settings)
    for k in range(y_train.shape[1]):
        rows = ~np.isnan(y_train[:, k])
        only_observed = {**settings, "c_grid": [probe.chosen["C"]]}
        x_k, y_k = data["x_train"][rows], y_train[rows, k : k + 1]
        alone, _ = fit_linear_probe(x_k, y_k, data["x_val"], data["y_val"][:, :1], **only_observed)
        # the same minimiser, reached to the solver's tolerance from different starts (the
        # joint fit is warm-started along the C path)
        np.testing.assert_allclose(probe.weight[k], alone.weight[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(probe.bias[k], alone.bias[0], rtol=1e-4, atol=1e-4)
    # the C choice: validation log loss over the observed cells
    for entry in grid:
        other, _ = fit_linear_probe(
            data["x_train"], y_train, data["x_val"], y_val, **{**settings, "c_grid": [entry["C"]]}
        )
        logits = other.logits(data["x_val"])
        seen = ~np.isnan(y_val)
        cells = np.logaddexp(0.0, logits) - np.nan_to_num(y_val) * logits
        assert entry["val_loss"] == pytest.approx(cells[seen].mean(), rel=1e-6)
    assert mean_bce(y_val, np.zeros_like(y_val)) == pytest.approx(math.log(2))


def test_text_init_linear_fits_on_the_observed_labels_only() -> None:
    """Masked training and validation labels give the head fitted and chosen on the observed
    images alone (up to the optimiser's tolerance: the standardisation and the 1 / N scale of
    the objective differ, not its minimiser)."""
    data = problem(n=160, p=1)
    y_train, y_val = blank(data["y_train"], 0.3, 5), blank(data["y_val"], 0.3, 6)
    rows, val_rows = ~np.isnan(y_train[:, 0]), ~np.isnan(y_val[:, 0])
    arguments = dict(
        text_embeddings=data["directions"],
        logit_scale=10.0,
        logit_bias=math.nan,
        strengths=[1.0, 10.0, 100.0],
        max_iter=200,
    )
    head, grid = anchored_linear_head(data["x_train"], y_train, data["x_val"], y_val, **arguments)
    alone, alone_grid = anchored_linear_head(
        data["x_train"][rows], y_train[rows], data["x_val"][val_rows], y_val[val_rows], **arguments
    )
    assert head.chosen["anchor_strength"] == alone.chosen["anchor_strength"]
    for entry, expected in zip(grid, alone_grid, strict=True):
        assert entry["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-5)
    np.testing.assert_allclose(head.logits(data["x_val"]), alone.logits(data["x_val"]), atol=1e-3)


def test_text_init_linear_placeholder_flip_changes_nothing(monkeypatch) -> None:
    data = problem(n=120, p=2)
    y_train, y_val = blank(data["y_train"], 0.3, 6), blank(data["y_val"], 0.3, 7)
    arguments = dict(logit_scale=10.0, logit_bias=math.nan, strengths=[1.0, 100.0], max_iter=150)
    fits = []
    for value in (0.0, 1.0):
        monkeypatch.setattr(masking, "PLACEHOLDER", value)
        fits.append(
            anchored_linear_head(
                data["x_train"],
                y_train,
                data["x_val"],
                y_val,
                text_embeddings=data["directions"],
                **arguments,
            )
        )
    assert fits[0][1] == fits[1][1]
    assert np.array_equal(fits[0][0].weight, fits[1][0].weight)
    assert np.array_equal(fits[0][0].bias, fits[1][0].bias)


# --- metrics ------------------------------------------------------------------------------------


def test_rank_metrics_and_thresholds_use_the_observed_rows_only() -> None:
    rng = np.random.default_rng(8)
    truth = (rng.random((80, 3)) < 0.35).astype(np.float64)
    scores = rng.normal(size=(80, 3)) + 1.5 * truth
    masked = blank(truth, 0.3, 9)
    ranking = ranking_rows("test", "", masked, scores, ["A", "B", "C"])
    rows = {r["metric"] + "/" + r["pathology"]: r["value"] for r in ranking}
    per_auroc, per_ap = [], []
    for k, name in enumerate("ABC"):
        seen = ~np.isnan(masked[:, k])
        per_auroc.append(roc_auc_score(masked[seen, k], scores[seen, k]))
        per_ap.append(average_precision_score(masked[seen, k], scores[seen, k]))
        assert rows[f"auroc/{name}"] == pytest.approx(per_auroc[-1], abs=1e-15)
        assert rows[f"average_precision/{name}"] == pytest.approx(per_ap[-1], abs=1e-15)
        assert f1_optimal_threshold(masked[:, k], scores[:, k]) == f1_optimal_threshold(
            masked[seen, k], scores[seen, k]
        )
    assert rows["auroc/macro"] == pytest.approx(np.mean(per_auroc))
    seen = ~np.isnan(masked)
    assert rows["auroc/micro"] == pytest.approx(roc_auc_score(masked[seen], scores[seen]))
    # the same entries marked 0 instead would give other numbers: NaN is not a negative
    zero_rows = ranking_rows("test", "", np.nan_to_num(masked), scores, ["A", "B", "C"])
    assert next(r["value"] for r in zero_rows if r["pathology"] == "A") != rows["auroc/A"]
    assert np.isfinite(tune_thresholds(masked, scores)).all()


def test_exact_match_and_hamming_loss_over_observed_labels() -> None:
    nan = np.nan
    truth = np.array([[1, 0, nan], [0, nan, nan], [nan, nan, nan], [1, 1, 0]])
    predicted = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=np.int8)
    rows = {
        (r["metric"], r["pathology"]): r["value"]
        for r in decision_rows("test", "t", truth, predicted, ["A", "B", "C"])
    }
    # image 0: both observed right (its masked C does not count); image 1: wrong; image 2: no
    # observed label, dropped; image 3: B wrong -> 1 of 3 images exactly right
    assert rows[("exact_match", "micro")] == pytest.approx(1 / 3)
    # 6 observed cells, 2 wrong (image 1 A, image 3 B)
    assert rows[("hamming_loss", "micro")] == pytest.approx(2 / 6)
    # A observed in images 0, 1, 3: predicted 1, 1, 1 against 1, 0, 1
    assert rows[("precision", "A")] == pytest.approx(2 / 3)
    assert rows[("recall", "A")] == pytest.approx(1.0)
    # pooled observed cells: true positives 0A and 3A, a false positive 1A, a false negative 3B
    assert rows[("precision", "micro")] == pytest.approx(2 / 3)
    assert rows[("recall", "micro")] == pytest.approx(2 / 3)
    assert rows[("f1", "macro")] == pytest.approx(
        np.mean([rows[("f1", p)] for p in ("A", "B", "C")])
    )


def test_baselines_and_counts_use_observed_labels() -> None:
    nan = np.nan
    truth = np.array([[1, 0], [0, nan], [nan, nan], [0, 1], [nan, 0]])
    positives, negatives = label_counts(truth)
    assert positives.tolist() == [1, 1] and negatives.tolist() == [2, 2]
    rows = baseline_rows("test", truth, np.array([0.3, 0.5]), ["A", "B"], seed=0)
    ap = {
        r["pathology"]: r["value"]
        for r in rows
        if r["policy"] == "all_negative" and r["metric"] == "average_precision"
    }
    assert ap["A"] == pytest.approx(1 / 3) and ap["B"] == pytest.approx(1 / 3)
    assert all(r["value"] is None or math.isfinite(r["value"]) for r in rows)


def test_min_positives_counts_observed_positives() -> None:
    data = problem(n=80)
    y_train = data["y_train"].astype(np.float64)
    # pathology 1 keeps a single observed positive in training; the others are hidden
    positive_rows = np.flatnonzero(y_train[:, 1] == 1)
    assert len(positive_rows) >= 3
    y_train[positive_rows[1:], 1] = np.nan
    counts = {"train": label_counts(y_train), "val": label_counts(data["y_val"])}
    reasons = label_exclusions(counts, ["A", "B", "C"], 2)
    assert reasons["B"].startswith("1 positive patient in the training subset")
    features = {"train": data["x_train"], "val": data["x_val"], "test": data["x_val"]}
    run = fit_and_freeze(
        "linear_probe",
        {"C": [1.0], "standardize": True, "pos_weight": False, "max_iter": 200},
        {**TRAINING, "min_positives": 2},
        features,
        y_train,
        data["y_val"],
        seed=0,
        run_name="masked/linear_probe",
        pathologies=["A", "B", "C"],
    )
    assert "B" in run.not_trained and run.not_trained["B"].startswith(
        "1 positive patient in the training"
    )
    assert run.train_counts[0][1] == 1
    assert run.train_prevalence[1] == pytest.approx(1 / (~np.isnan(y_train[:, 1])).sum())


def test_labels_other_than_0_1_or_nan_are_refused(tmp_path: Path) -> None:
    index = pd.DataFrame({"image_id": ["a", "b"], "A": [1.0, -1.0], "B": [0.0, np.nan]})
    index.to_parquet(tmp_path / "index.parquet")
    labels = read_labels(tmp_path / "index.parquet", ["a"], ["A", "B"])
    assert labels.dtype == np.float32
    with pytest.raises(ValueError, match=r"label -1.0 .* is not 0, 1 or NaN"):
        read_labels(tmp_path / "index.parquet", ["a", "b"], ["A", "B"])
    assert np.isnan(read_labels(tmp_path / "index.parquet", ["b"], ["B"])).all()
    # the demo pretraining writes captions from the labels: it refuses NaN before anything else
    with pytest.raises(ValueError, match=r"demo pretraining .* 1 label\(s\) are not"):
        pretrain(None, None, np.array([[1.0, np.nan]]), ["A", "B"], None, seed=0)


# --- the patient bootstrap ----------------------------------------------------------------------


def test_weighted_metrics_mask_the_unobserved_labels() -> None:
    rng = np.random.default_rng(10)
    truth = (rng.random((90, 3)) < 0.35).astype(np.float64)
    scores = np.round(rng.normal(size=(90, 3)) + truth, 1)
    masked = blank(truth, 0.25, 11)
    predicted = scores >= 0.5
    weights = rng.integers(0, 3, (4, 90)).astype(float)
    values = weighted_metrics(scores, masked, predicted, weights, BOOTSTRAP_METRICS)
    for b in range(len(weights)):
        rows = np.repeat(np.arange(90), weights[b].astype(int))
        t, s, p = masked[rows], scores[rows], predicted[rows]
        expected = {
            (r["metric"], r["pathology"]): r["value"]
            for r in ranking_rows("t", "", t, s, ["A", "B", "C"])
            + decision_rows("t", "", t, p.astype(np.int8), ["A", "B", "C"])
        }
        for metric in BOOTSTRAP_METRICS:
            pooled = "micro" if metric in ("exact_match", "hamming_loss") else "macro"
            assert values[metric][b] == pytest.approx(expected[(metric, pooled)], abs=1e-12)
    # a NaN label is neither a positive nor a negative patient of the strata: the negative
    # stratum holds patient 2 alone (read as a negative, patient 1 would share it)
    strata = covering_strata(np.arange(3), np.array([[1.0], [np.nan], [0.0]]), 3)
    assert len(set(strata.tolist())) == 3


# --- subsets ------------------------------------------------------------------------------------


def _train_table(with_column: bool) -> pd.DataFrame:
    """40 images with a finding, 20 labelled "no finding", 20 negative for every configured
    pathology but with other findings (no_finding 0), 10 with every configured label masked."""
    rng = np.random.default_rng(12)
    a = np.r_[np.ones(20), rng.integers(0, 2, 20), np.zeros(40), np.full(10, np.nan)]
    b = np.r_[rng.integers(0, 2, 20), np.ones(20), np.zeros(40), np.full(10, np.nan)]
    no_finding = np.r_[np.zeros(40), np.ones(20), np.zeros(20), np.zeros(10)].astype(np.int8)
    table = pd.DataFrame({"image_id": [f"i{k:03d}" for k in range(90)], "A": a, "B": b})
    if with_column:
        table["no_finding"] = no_finding
    return table


def test_balanced_no_finding_places_come_from_the_no_finding_column() -> None:
    table = _train_table(with_column=True)
    normal = set(table.loc[table["no_finding"] == 1, "image_id"])
    other_findings = set(table["image_id"].iloc[60:80])
    masked = set(table["image_id"].iloc[80:])
    for seed in range(5):
        chosen = set(balanced_subset(table, ["A", "B"], 30, seed, no_finding_share=0.4))
        # 12 no-finding places, 18 finding places: all from the right pools
        assert len(chosen & normal) == 12
        assert not chosen & other_findings and not chosen & masked
        mix = subset_mix(
            table.set_index("image_id").loc[sorted(chosen)], ["A", "B"], 30, seed, "balanced"
        )
        assert mix["no_finding"] == 12
    # without the column, the fallback: every configured label observed and 0 (masked rows are
    # not normal images either)
    old = _train_table(with_column=False)
    chosen = set(balanced_subset(old, ["A", "B"], 30, 0, no_finding_share=0.4))
    assert len(chosen & (normal | other_findings)) == 12 and not chosen & masked
    mix = subset_mix(old.set_index("image_id"), ["A", "B"], "all", 0, "balanced")
    assert mix["no_finding"] == 40
    observed_a = table["A"].dropna()
    assert mix["prevalence"]["A"] == pytest.approx(observed_a.mean())


def test_stratified_subsets_keep_the_no_finding_share() -> None:
    table = _train_table(with_column=True)
    chosen = stratified_subset(table, ["A", "B"], 45, seed=0)
    mix = subset_mix(table.set_index("image_id").loc[chosen], ["A", "B"], 45, 0, "stratified")
    assert mix["no_finding"] == 10  # 20 of 90 images, half the split


# --- end to end ---------------------------------------------------------------------------------

E2E_MODELS = ["baseline_mlp", "text_pair_scorer", "linear_probe", "text_init_linear", "zero_shot"]
E2E_PARAMS = {
    **PARAMS,
    "baseline_mlp": {**HEAD, "epochs": 8},
    "text_pair_scorer": {**HEAD, "epochs": 4},
    "text_init_linear": {"enabled": True, "anchor_strengths": [1.0, 100.0], "max_iter": 100},
}


def _masked_cohort(root: Path) -> dict[str, Path]:
    cohort = write_cohort(root)
    index = pd.read_parquet(cohort["index"])
    for k, name in enumerate(["A", "B", "C"]):
        values = index[name].to_numpy(dtype=np.float32)
        values[np.random.default_rng(20 + k).random(len(values)) < 0.2] = np.nan
        index[name] = values
    index.to_parquet(cohort["index"])
    return cohort


def _train_job(cohort: dict[str, Path], out: Path) -> list[dict]:
    return probe_job.train_probe(
        image_cache=cohort["images"],
        prompt_cache=cohort["prompts"],
        index=cohort["index"],
        split=cohort["split"],
        runs=[
            probe_job.RunSpec(model, "30", SEEDS[0], cohort["subsets"][0], out / model)
            for model in E2E_MODELS
        ],
        cohort="tiny",
        encoder="enc",
        models=E2E_PARAMS,
        pathologies=["A", "B", "C"],
        training=TRAINING,
        threads=1,
    )


def test_a_probe_job_masks_unobserved_labels_end_to_end(tmp_path: Path, monkeypatch) -> None:
    cohort = _masked_cohort(tmp_path / "cohort")
    index = pd.read_parquet(cohort["index"]).set_index("image_id")
    documents = _train_job(cohort, tmp_path / "zero")
    monkeypatch.setattr(masking, "PLACEHOLDER", 1.0)
    flipped = _train_job(cohort, tmp_path / "one")

    split = pd.read_parquet(cohort["split"]).set_index("image_id")["split"]
    for model, document, other in zip(E2E_MODELS, documents, flipped, strict=True):
        folder = tmp_path / "zero" / model
        assert document["evaluated_pathologies"] == ["A", "B", "C"], model
        for row in document["metrics"]:
            assert row["value"] is not None and math.isfinite(row["value"]), (model, row)
        # positives: the observed positives of each split
        for name in ("val", "test"):
            ids = split.index[split == name]
            for p in ("A", "B", "C"):
                assert document["positives"][name][p] == int((index.loc[ids, p] == 1).sum())
        predictions = pd.read_parquet(folder / "predictions_test.parquet")
        assert np.isfinite(predictions.filter(like="logit_").to_numpy()).all()
        truth = predictions.set_index("image_id")
        for p in ("A", "B", "C"):
            expected = index.loc[truth.index, p].to_numpy()
            np.testing.assert_array_equal(truth[f"true_{p}"].to_numpy(), expected)
            seen = truth[f"true_{p}"].notna()
            auroc = roc_auc_score(truth.loc[seen, f"true_{p}"], truth.loc[seen, f"logit_{p}"])
            value = next(
                r["value"]
                for r in document["metrics"]
                if (r["split"], r["policy"], r["metric"], r["pathology"])
                == ("test", "tuned", "auroc", p)
            )
            assert value == pytest.approx(auroc, abs=1e-12)
        # what a masked entry holds inside the job changes nothing that it writes
        assert document["metrics"] == other["metrics"], model
        assert document["logit_thresholds"] == other["logit_thresholds"]
        for name in ("predictions_val.parquet", "predictions_test.parquet", "history.csv"):
            assert (folder / name).read_bytes() == (tmp_path / "one" / model / name).read_bytes()
        state = torch.load(folder / "model.pt", weights_only=True)["state_dict"]
        state_other = torch.load(tmp_path / "one" / model / "model.pt", weights_only=True)
        assert all(torch.equal(state[k], state_other["state_dict"][k]) for k in state)

    # the patient bootstrap reads the NaN labels back and reproduces metrics.json
    runs = read_runs([tmp_path / "zero" / model for model in E2E_MODELS])
    settings = BootstrapSettings(
        resamples=50,
        seed=1,
        confidence=0.95,
        metrics=BOOTSTRAP_METRICS,
        reference="baseline_mlp",
        compared=("linear_probe",),
    )
    ci, comparisons = bootstrap_tables(runs, cohort["split"], ["A", "B", "C"], settings)
    for model, document in zip(E2E_MODELS, documents, strict=True):
        for metric in BOOTSTRAP_METRICS:
            pooled = "micro" if metric in ("exact_match", "hamming_loss") else "macro"
            value = next(
                r["value"]
                for r in document["metrics"]
                if (r["split"], r["policy"], r["metric"], r["pathology"])
                == ("test", "tuned", metric, pooled)
            )
            row = ci[(ci["model"] == model) & (ci["policy"] == "tuned") & (ci["metric"] == metric)]
            assert row["estimate"].item() == pytest.approx(value, abs=1e-9), (model, metric)
            assert np.isfinite(row[["ci_low", "ci_high"]].to_numpy()).all()
    assert np.isfinite(comparisons[["ci_low", "ci_high"]].to_numpy()).all()
    json.dumps(documents)  # metrics.json stays plain JSON
