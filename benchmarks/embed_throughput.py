"""Embedding throughput: is the cache pipeline as fast as the slower of decoding and the model?

On the same images (the real 1024 px NIH PNGs in ../shared/data/nih_cxr14_sample when present,
otherwise a generated demo cohort), for the demo open_clip encoder and a ViT-B/16 (random weights:
real speed, meaningless features), measures images per second of
  (a) decode + preprocess only (the DataLoader with the configured workers, no model),
  (b) model forward only, on preloaded preprocessed tensors,
  (c) the cache pipeline (embed_images: loader + model + chunked HDF5 writing),
  (d) a naive loop that opens, preprocesses and encodes one image at a time,
  (e) decode only (the same DataLoader and workers, no preprocessing, no model): the ceiling of
      any pipeline that decodes every file on these cores,
and the peak memory of (c) at two cohort sizes (images cycled from the same files), each in a
fresh process, with where the main process's memory goes (resident, proportional and private
memory after each import and after the run). Targets (docs/performance.md): (c) >= 0.85 x
min(a, b), (c) >= 0.85 x (e) and (c) >= 3 x (d) for the demo encoder; peak memory of (c) at 4,000
images within 10 % of that at 500.

Run from the repository root:  .venv/bin/python benchmarks/embed_throughput.py [--json out.json]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.config import load_config

REPO = Path(__file__).resolve().parents[1]

NIH_SAMPLE = REPO.parent / "shared" / "data" / "nih_cxr14_sample"


def image_paths(work: Path) -> tuple[list[str], str]:
    """The benchmark images: the NIH sample, else a demo cohort generated into `work`."""
    files = sorted(str(p) for p in NIH_SAMPLE.glob("images_*/images/*.png"))
    if files:
        return files, f"NIH sample ({len(files)} real 1024 px PNGs)"
    from probelab.demo.cohort import demo_cohort

    config = load_config(REPO / "config.yaml")
    root = work / "demo"
    demo_cohort(
        root,
        config["pathologies"],
        config["demo"],
        label_table=config["data"]["label_table"],
        no_finding_label=config["no_finding_label"],
    )
    files = sorted(str(p) for p in root.rglob("*.png"))
    return files, f"demo cohort ({len(files)} generated {config['demo']['image_size']} px PNGs)"


def write_index(paths: list[str], n: int, out: Path) -> Path:
    """An index of n rows cycling over `paths` (unique image ids, repeated files)."""
    rows = [
        {"image_id": f"{i:06d}_{Path(paths[i % len(paths)]).name}", "path": paths[i % len(paths)]}
        for i in range(n)
    ]
    pd.DataFrame(rows).to_parquet(out)
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def _decoded(image: Any) -> Any:
    """The preprocessing of column (e): none; the decoded image is dropped for a 1-value tensor."""
    import torch

    return torch.zeros(1)


def measure(
    name: str, settings: dict[str, Any], embedding: dict[str, Any], paths: list[str], work: Path
) -> dict[str, Any]:
    import torch

    from probelab.embedding import embed_images, loader_workers
    from probelab.encoders import build_encoder
    from probelab.images import ImageDataset, chunk_batches, load_image, make_loader

    torch.set_num_threads(embedding["threads"])
    encoder = build_encoder(name, settings)
    n = len(paths)
    batches = list(chunk_batches(0, n, embedding["chunk_size"], settings["batch_size"]))

    def loader(preprocess=encoder.preprocess, shape=encoder.input_shape):
        dataset = ImageDataset(paths, preprocess, shape)
        workers = loader_workers(settings["num_workers"], embedding["threads"])
        pinned = encoder.device == "cuda"
        return make_loader(dataset, batches, workers, pinned, embedding["prefetch_factor"])

    began = time.perf_counter()
    for _ in loader(_decoded, (1,)):
        pass
    raw_decode = rate(n, time.perf_counter() - began)
    print(f"{name}: (e) decode only {raw_decode:.1f} img/s", flush=True)

    began = time.perf_counter()
    preloaded = []
    for _, pixels, _ in loader():
        preloaded.append(pixels)
    decode = rate(n, time.perf_counter() - began)
    print(f"{name}: (a) decode + preprocess {decode:.1f} img/s", flush=True)

    encoder.encode_images(preloaded[0])  # warm-up, as the pipeline's first batch is
    began = time.perf_counter()
    for pixels in preloaded:
        encoder.encode_images(pixels)
    forward = rate(n, time.perf_counter() - began)
    print(f"{name}: (b) forward {forward:.1f} img/s", flush=True)

    index = write_index(paths, n, work / f"{name}_index.parquet")
    began = time.perf_counter()
    embed_images(index, work / f"{name}.h5", name, settings, embedding, embedding["threads"])
    pipeline_total = rate(n, time.perf_counter() - began)  # including building the model
    pipeline = embed_images(
        index, work / f"{name}_again.h5", name, settings, embedding
    ).images_per_second
    print(f"{name}: (c) cache pipeline {pipeline:.1f} img/s", flush=True)

    began = time.perf_counter()
    for path in paths:
        encoder.encode_images(encoder.preprocess(load_image(path))[None])
    naive = rate(n, time.perf_counter() - began)
    print(f"{name}: (d) naive loop {naive:.1f} img/s", flush=True)
    return {
        "encoder": name,
        "model": settings["model"],
        "images": n,
        "a_decode_preprocess": decode,
        "b_forward": forward,
        "c_pipeline": pipeline,
        "c_pipeline_with_model_build": pipeline_total,
        "d_naive": naive,
        "c_over_min_ab": pipeline / min(decode, forward),
        "c_over_d": pipeline / naive,
        "e_decode_only": raw_decode,
        "c_over_e": pipeline / raw_decode,
    }


# Run in a fresh process by `peak_memory`: the main process's memory after each import and after
# the pipeline, from /proc/self/smaps_rollup, and its peak (Linux). Resident counts shared
# library pages that every process mapping them shows again; private is what one more such job
# adds to a node.
MEMORY_PROBE = """
import json, resource, sys
from pathlib import Path

def stage(name, stages=[]):
    fields = dict.fromkeys(("Rss", "Pss", "Private_Clean", "Private_Dirty"), 0)
    for line in open("/proc/self/smaps_rollup"):
        key, _, rest = line.partition(":")
        if key in fields:
            fields[key] = int(rest.split()[0]) / 1024
    stages.append({{"stage": name, "rss": fields["Rss"], "pss": fields["Pss"],
                    "private": fields["Private_Clean"] + fields["Private_Dirty"]}})
    return stages

from probelab.embedding import embed_images
stage("python + probelab.embedding")
import torch
stage("+ torch")
import open_clip
stage("+ open_clip (timm, torchvision)")
summary = embed_images(Path({index!r}), Path({out!r}), "demo_openclip", {settings!r},
                       {embedding!r}, {threads!r})
stages = stage("after the pipeline")
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a process started from a large
# parent (this benchmark, with ViT-B/16 loaded) would report the parent's size as its own peak.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"main": peak / 1024,
                  "worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "rate": summary.images_per_second, "stages": stages}}))
"""


def peak_memory(
    settings: dict[str, Any], embedding: dict[str, Any], paths: list[str], n: int, work: Path
) -> dict[str, Any]:
    """Peak RSS (MiB) of the pipeline on n images, in a fresh process: main and largest worker,
    and the main process's memory by stage."""
    index = write_index(paths, n, work / f"memory_{n}.parquet")
    code = MEMORY_PROBE.format(
        index=str(index),
        out=str(work / f"memory_{n}.h5"),
        settings=settings,
        embedding=embedding,
        threads=embedding["threads"],
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"(c) at {n} images: peak RSS main {figures['main']:.0f} MiB, "
        f"worker {figures['worker']:.0f} MiB",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=REPO / "config.yaml", help="config with the demo encoder"
    )
    parser.add_argument("--memory-sizes", type=int, nargs=2, default=[500, 4000])
    parser.add_argument("--skip-vit", action="store_true", help="only the demo encoder")
    parser.add_argument(
        "--vit-images", type=int, default=None, help="measure ViT-B/16 on the first N images only"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    print(f"# before: {uptime()}", flush=True)
    config = load_config(args.config)
    embedding = config["embedding"]
    # The demo architecture loaded from its file with random weights: speed does not depend on
    # the weights, and the benchmark then needs no pretrained build.
    demo = dict(
        config["encoders"]["demo_openclip"],
        model=str(REPO / config["encoders"]["demo_openclip"]["build_from"]),
        build_from=None,
        pretrain=None,
    )
    vit = dict(demo, model="ViT-B-16", batch_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths, source = image_paths(work)
        print(
            f"images: {source}; workers {demo['num_workers']}, "
            f"torch threads {embedding['threads']}",
            flush=True,
        )
        results = [measure("demo_openclip", demo, embedding, paths, work)]
        if not args.skip_vit:
            results.append(measure("vit_b16", vit, embedding, paths[: args.vit_images], work))
        small, large = args.memory_sizes
        memory = {n: peak_memory(demo, embedding, paths, n, work) for n in (small, large)}

    print(
        f"\n{'encoder':<15}{'(a) decode':>12}{'(b) forward':>13}{'(c) cache':>11}"
        f"{'(d) naive':>11}{'(e) decode':>12}{'c/min(a,b)':>12}{'c/d':>7}{'c/e':>7}"
    )
    for r in results:
        print(
            f"{r['encoder']:<15}{r['a_decode_preprocess']:>12.1f}{r['b_forward']:>13.1f}"
            f"{r['c_pipeline']:>11.1f}{r['d_naive']:>11.1f}{r['e_decode_only']:>12.1f}"
            f"{r['c_over_min_ab']:>12.2f}{r['c_over_d']:>7.2f}{r['c_over_e']:>7.2f}"
        )
    print(
        "(images per second; (c) excludes building the model, "
        "which is timed separately in the JSON)"
    )
    for n, m in memory.items():
        print(
            f"peak RSS of (c) at {n:>5} images: main {m['main']:.0f} MiB, "
            f"largest worker {m['worker']:.0f} MiB ({m['rate']:.1f} img/s)"
        )
    print("main process by stage (MiB): resident / proportional / private")
    for entry in memory[large]["stages"]:
        print(
            f"  {entry['stage']:<32}{entry['rss']:>7.0f}{entry['pss']:>7.0f}"
            f"{entry['private']:>7.0f}"
        )
    ratio = (memory[large]["main"] + memory[large]["worker"]) / (
        memory[small]["main"] + memory[small]["worker"]
    )
    print(f"peak memory ratio {large}/{small} images: {ratio:.3f}")
    print(f"# after: {uptime()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"source": source, "results": results, "memory": memory, "memory_ratio": ratio},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
