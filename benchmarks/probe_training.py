"""Probe training at NIH scale: every head against its roofline, the linear probe against
scikit-learn, all measured in this one process.

On synthetic NIH-shaped features (probelab.demo.features: 14 labels at ~4 % prevalence, a linear
signal under noise) and the hyperparameters of configs/nih.yaml:

  heads   each neural head trains `--epochs` epochs with probelab.training.train_head; its time
          per epoch is divided by the head's roofline: the matrix multiplications of one epoch
          (forward, input gradient and weight gradient of every Linear layer at the row count it
          sees in training, found with forward hooks, plus the validation forward pass), timed
          here with torch.mm on tensors of the same shapes. Target (issue 16): <= 3x at
          n >= 20,000. Beside it, the epoch's AdamW updates alone (memory traffic that no matmul
          counts: the fusion heads' prompt projections hold 5-8 M parameters).
  linear  probelab.linear.fit_linear_probe (one D x P layer, L-BFGS along the C path) against
          fit_linear_probe_sklearn (one scikit-learn LogisticRegression per pathology and C), at
          the sizes of `--sklearn-at`: seconds, chosen C, test macro AUROC. Target: >= 10x faster
          at n = 20,000, the same C, |delta AUROC| <= 0.005. text_init_linear (the same solver
          over its anchor-strength grid) is timed too, for the scale plan.

Prints `uptime` before and after (the machine is shared: ratios measured side by side are the
figures to quote), one JSON line per measurement, and a table.

    .venv/bin/python benchmarks/probe_training.py [--sizes 5000 20000 75000] [--dims 512 768]
"""

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sklearn.metrics import roc_auc_score

from probelab.config import validate_config
from probelab.demo.features import probe_problem
from probelab.heads import build_head
from probelab.linear import fit_linear_probe, fit_linear_probe_sklearn
from probelab.text_heads import anchored_linear_head
from probelab.training import TrainSettings, train_head

REPO = Path(__file__).resolve().parents[1]
HEADS = ("baseline_mlp", "two_branch_concat", "weighted_sum", "text_pair_scorer")
N_VAL, N_TEST = 5000, 5000


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def linear_shapes(head: torch.nn.Module, batch: torch.Tensor) -> list[tuple[int, int, int]]:
    """(rows, in, out) of every Linear layer in one training forward pass of `batch`."""
    shapes: list[tuple[int, int, int]] = []

    def record(module: torch.nn.Linear, inputs: tuple[torch.Tensor, ...], _output) -> None:
        shapes.append((inputs[0].reshape(-1, module.in_features).shape[0], *module.weight.T.shape))

    hooks = [
        module.register_forward_hook(record)
        for module in head.modules()
        if isinstance(module, torch.nn.Linear)
    ]
    head.train()
    with torch.no_grad():
        head(batch)
    for hook in hooks:
        hook.remove()
    return shapes


def matmul_seconds(rows: int, d_in: int, d_out: int, backward: bool, repeats: int = 5) -> float:
    """Median seconds of the matmuls of one Linear layer: forward, and with `backward` the input
    and weight gradients too."""
    x, w, g = torch.randn(rows, d_in), torch.randn(d_in, d_out), torch.randn(rows, d_out)
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        torch.mm(x, w)
        if backward:
            torch.mm(g, w.T)
            torch.mm(x.T, g)
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))


def roofline_epoch(head: torch.nn.Module, dim: int, n: int, params: dict[str, Any]) -> float:
    """Seconds of the matrix multiplications of one training epoch and its validation pass."""
    batch = params["batch_size"]
    train = linear_shapes(head, torch.randn(batch, dim))
    step = sum(matmul_seconds(*shape, backward=True) for shape in train)
    val_batch = 4096  # training.eval_batch_size's default
    val = linear_shapes(head, torch.randn(val_batch, dim))
    val_pass = sum(matmul_seconds(*shape, backward=False) for shape in val) * N_VAL / val_batch
    return step * (n / batch) + val_pass


def warm_up(config: dict, heads: list[str]) -> None:
    """Train each head once on a few images, untimed: torch's lazy initialisation and the first
    calls of each kernel would otherwise be charged to the first head timed."""
    x, y = probe_problem(600, 64, seed=0)
    data = {"train": (x[:400], y[:400]), "val": (x[400:], y[400:])}
    for name in heads:
        time_head(name, config, data, 400, 64, 1)


def optimizer_epoch(head: torch.nn.Module, n: int, params: dict[str, Any]) -> float:
    """Seconds of one epoch's AdamW updates (fused, as training uses) of the head's parameters
    with random gradients: memory traffic, outside the roofline's matmuls."""
    for parameter in head.parameters():
        parameter.grad = torch.randn_like(parameter)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
    optimizer.step()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * n / params["batch_size"]


def time_head(name: str, config: dict, data: dict, n: int, dim: int, epochs: int) -> dict:
    params = dict(config["models"][name], epochs=epochs, patience=epochs + 1)
    settings = TrainSettings.from_config(params, config["training"])
    mega_vector = torch.from_numpy(np.random.default_rng(1).standard_normal(14 * dim)).float()
    x_train, y_train = (torch.from_numpy(a[:n]) for a in data["train"])
    x_val, y_val = (torch.from_numpy(a) for a in data["val"])
    started = time.perf_counter()
    result = train_head(
        name,
        params,
        settings,
        x_train,
        y_train,
        x_val,
        y_val,
        seed=0,
        run_name=f"{name} n={n}",
        mega_vector=mega_vector,
    )
    per_epoch = (time.perf_counter() - started) / result.epochs_run
    head = build_head(name, dim, 14, params, mega_vector)
    roofline = roofline_epoch(head, dim, n, params)
    return {
        "model": name,
        "dim": dim,
        "n": n,
        "s_per_epoch": round(per_epoch, 3),
        "roofline_s_per_epoch": round(roofline, 3),
        "x_roofline": round(per_epoch / roofline, 2),
        "optimizer_s_per_epoch": round(optimizer_epoch(head, n, params), 3),
    }


def time_linear(fit, config: dict, data: dict, n: int) -> tuple[float, Any]:
    linear = config["models"]["linear_probe"]
    started = time.perf_counter()
    probe, _ = fit(
        data["train"][0][:n],
        data["train"][1][:n],
        *data["val"],
        c_grid=linear["C"],
        standardize=linear["standardize"],
        balanced=linear["pos_weight"],
        max_iter=linear["max_iter"],
    )
    return time.perf_counter() - started, probe


def time_text_init_linear(config: dict, data: dict, n: int, dim: int) -> tuple[float, Any]:
    """text_init_linear with random prompt embeddings: a timing of its solver, not a result."""
    params = config["models"]["text_init_linear"]
    text = np.random.default_rng(2).standard_normal((14, dim))
    started = time.perf_counter()
    head, _ = anchored_linear_head(
        data["train"][0][:n],
        data["train"][1][:n],
        *data["val"],
        text_embeddings=text,
        logit_scale=100.0,
        logit_bias=-10.0,
        strengths=params["anchor_strengths"],
        max_iter=params["max_iter"],
    )
    return time.perf_counter() - started, head


def macro_auroc(probe, x: np.ndarray, y: np.ndarray) -> float:
    logits = probe.logits(x)
    return float(np.mean([roc_auc_score(y[:, k], logits[:, k]) for k in range(y.shape[1])]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "nih.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 75000])
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 768])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per head")
    parser.add_argument("--sklearn-at", type=int, nargs="*", default=[20000])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (training.threads)")
    args = parser.parse_args()

    config = validate_config(yaml.safe_load(args.config.read_text()))
    torch.set_num_threads(args.threads)
    print(f"# before: {uptime()}", flush=True)
    rows = []
    warm_up(config, args.heads)
    for dim in args.dims:
        x, y = probe_problem(max(args.sizes) + N_VAL + N_TEST, dim, seed=dim)
        data = {
            "val": (x[:N_VAL], y[:N_VAL]),
            "test": (x[N_VAL : N_VAL + N_TEST], y[N_VAL : N_VAL + N_TEST]),
            "train": (x[N_VAL + N_TEST :], y[N_VAL + N_TEST :]),
        }
        for n in args.sizes:
            for name in args.heads:
                rows.append(time_head(name, config, data, n, dim, args.epochs))
                print(json.dumps(rows[-1]), flush=True)
            seconds, probe = time_linear(fit_linear_probe, config, data, n)
            row = {
                "model": "linear_probe",
                "dim": dim,
                "n": n,
                "s_per_fit": round(seconds, 2),
                "C": probe.chosen["C"],
                "test_auroc": round(macro_auroc(probe, *data["test"]), 4),
            }
            if n in args.sklearn_at:
                reference_seconds, reference = time_linear(
                    fit_linear_probe_sklearn, config, data, n
                )
                row |= {
                    "sklearn_s_per_fit": round(reference_seconds, 2),
                    "sklearn_C": reference.chosen["C"],
                    "sklearn_test_auroc": round(macro_auroc(reference, *data["test"]), 4),
                    "speedup": round(reference_seconds / seconds, 1),
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
            seconds, head = time_text_init_linear(config, data, n, dim)
            rows.append(
                {
                    "model": "text_init_linear",
                    "dim": dim,
                    "n": n,
                    "s_per_fit": round(seconds, 2),
                    "test_auroc": round(macro_auroc(head, *data["test"]), 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(f"# after: {uptime()}\n")
    print(
        "| model | D | n | s / epoch (heads) or s / fit | roofline s / epoch | x roofline "
        "| AdamW updates s / epoch |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if row["model"] in ("linear_probe", "text_init_linear"):
            extra = ""
            if "speedup" in row:
                extra = (
                    f" (scikit-learn {row['sklearn_s_per_fit']} s, {row['speedup']}x; "
                    f"C {row['C']} vs {row['sklearn_C']}; AUROC {row['test_auroc']} vs "
                    f"{row['sklearn_test_auroc']})"
                )
            print(
                f"| {row['model']} | {row['dim']} | {row['n']} | {row['s_per_fit']}{extra} | | | |"
            )
        else:
            print(
                f"| {row['model']} | {row['dim']} | {row['n']} | {row['s_per_epoch']} | "
                f"{row['roofline_s_per_epoch']} | {row['x_roofline']} | "
                f"{row['optimizer_s_per_epoch']} |"
            )


if __name__ == "__main__":
    main()
