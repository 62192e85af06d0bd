"""Measure what docs/scaling.md rests on: image-tower FLOPs and CPU seconds per image.

Builds open_clip architectures with random weights (nothing is downloaded), counts the FLOPs of
one image-tower forward pass with torch's FlopCounterMode, and times batched forward passes on
this machine's CPU. Prints one JSON line per architecture.

    .venv/bin/python tools/scaling/measure_embedding.py --models ViT-B-16 ViT-B-16-SigLIP-512
"""

import argparse
import json
import os
import statistics
import time

import open_clip
import torch
from torch.utils.flop_counter import FlopCounterMode


def measure(model_name: str, batch_size: int, repeats: int, threads: int) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = open_clip.create_model(model_name, pretrained=None).eval()
    visual = model.visual
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    pixels = torch.randn(batch_size, 3, size, size)
    # FlopCounterMode's module tracking needs autograd on (it fails under no_grad/inference_mode).
    with FlopCounterMode(display=False) as counter:
        visual(pixels[:1])
    with torch.inference_mode():
        visual(pixels)  # warm-up: first call allocates and picks kernels
        timings, cpu_times = [], []
        for _ in range(repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            visual(pixels)
            timings.append((time.perf_counter() - started) / batch_size)
            # CPU time over all threads: less sensitive than wall time to other jobs on the machine.
            cpu_times.append((time.process_time() - cpu_started) / batch_size)
    return {
        "model": model_name,
        "image_size": size,
        "image_tower_params_m": round(sum(p.numel() for p in visual.parameters()) / 1e6, 1),
        "gflops_per_image": round(counter.get_total_flops() / 1e9, 1),
        "wall_seconds_per_image_median": round(statistics.median(timings), 3),
        "wall_seconds_per_image_all": [round(t, 3) for t in timings],
        "cpu_seconds_per_image_median": round(statistics.median(cpu_times), 3),
        "batch_size": batch_size,
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["ViT-B-16", "ViT-B-16-SigLIP-512"])
    parser.add_argument("--batch-size", type=int, default=4, help="images per timed forward pass")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes per model (median reported)"
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads"
    )
    args = parser.parse_args(argv)
    for name in args.models:
        print(json.dumps(measure(name, args.batch_size, args.repeats, args.threads)), flush=True)


if __name__ == "__main__":
    main()
