"""Measure the per-run training cost docs/scaling.md rests on, with the project's own code.

Times the neural heads (probelab.training.train_head) for a few epochs and the linear probe
(probelab.linear.fit_linear_probe) on random features shaped like NIH's (14 labels, ~4 %
positives), with the hyperparameters of configs/nih.yaml. Prints one JSON line per measurement:
seconds per epoch per 1,000 training images for the heads (cost is linear in the images), seconds
per fit for the linear probe, and the size of the saved state dict.

    .venv/bin/python tools/scaling/measure_training.py --n-train 5000 --dims 512 768
"""

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from probelab.config import validate_config
from probelab.linear import fit_linear_probe
from probelab.training import TrainSettings, train_head

REPO = Path(__file__).resolve().parents[2]

N_LABELS = 14
PREVALENCE = 0.04  # NIH's average finding prevalence, roughly
N_TEMPLATES_DIM = N_LABELS  # the prompt mega-vector holds one D-vector per pathology


def features(rng: np.random.Generator, n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    y = (rng.random((n, N_LABELS)) < PREVALENCE).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def state_dict_mb(model: torch.nn.Module) -> float:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return round(buffer.tell() / 1e6, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "nih.yaml")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-val", type=int, default=2000)
    parser.add_argument(
        "--dims", type=int, nargs="+", default=[512, 768], help="feature dimensions"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per head")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (training.threads)")
    args = parser.parse_args(argv)

    config = validate_config(yaml.safe_load(args.config.read_text()))
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for dim in args.dims:
        x_train, y_train = features(rng, args.n_train, dim)
        x_val, y_val = features(rng, args.n_val, dim)
        mega_vector = torch.randn(N_TEMPLATES_DIM * dim)
        for name in ("baseline_mlp", "two_branch_concat", "weighted_sum"):
            params = dict(config["models"][name], epochs=args.epochs, patience=args.epochs + 1)
            settings = TrainSettings.from_config(params, config["training"])
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
                run_name=name,
                mega_vector=mega_vector,
            )
            seconds = time.perf_counter() - started
            print(
                json.dumps(
                    {
                        "model": name,
                        "dim": dim,
                        "n_train": args.n_train,
                        "epochs": result.epochs_run,
                        "seconds_per_epoch_per_1000": round(
                            seconds / result.epochs_run / args.n_train * 1000, 3
                        ),
                        "model_pt_mb": state_dict_mb(result.model),
                        "threads": args.threads,
                    }
                ),
                flush=True,
            )
        linear = config["models"]["linear_probe"]
        started = time.perf_counter()
        fit_linear_probe(
            x_train.numpy(),
            y_train.numpy(),
            x_val.numpy(),
            y_val.numpy(),
            c_grid=linear["C"],
            standardize=linear["standardize"],
            balanced=linear["pos_weight"],
            max_iter=linear["max_iter"],
            seed=0,
        )
        print(
            json.dumps(
                {
                    "model": "linear_probe",
                    "dim": dim,
                    "n_train": args.n_train,
                    "c_grid": len(linear["C"]),
                    "seconds_per_fit": round(time.perf_counter() - started, 2),
                    "threads": args.threads,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
