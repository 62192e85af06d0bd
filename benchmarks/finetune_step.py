"""Profile of one fine-tuning step on the real reviews: where the time of `sentiment_finetune` goes.

With the bundled MiniLM and a two-class head (probelab.sentiment.finetune's `_classifier`), on
batches drawn from the real Rotten Tomatoes training split, times per step (forward, backward,
AdamW update; median of `--steps` after a warm-up):
  - padding: batches padded to the longest review in the batch (the collator's dynamic padding),
    the same after grouping reviews of similar length (the config's `group_by_length`), and every
    review padded to `max_length` (what a fixed-shape tokenizer call gives);
  - threads: 1 and 2 torch threads;
and one evaluation pass over the validation split (the Trainer evaluates once per epoch) and one
checkpoint save (once per epoch too). From these it projects the time of the configured run (all
training reviews, `epochs` of the real-data config) and prints it beside the parts.

Run from the repository root (the real data in ../shared/data/rotten_tomatoes):
  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune_step.py [--steps 20]
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROTTEN_TOMATOES = REPO.parent / "shared" / "data" / "rotten_tomatoes"
CONFIG = REPO / "configs" / "rotten_tomatoes_local.yaml"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def read_split(split: str) -> tuple[list[str], list[int]]:
    # a JSON parser per line: some texts hold U+0085, which str.splitlines() would cut
    with open(ROTTEN_TOMATOES / f"{split}.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [row["text"] for row in rows], [int(row["label"]) for row in rows]


def batches(lengths: np.ndarray, size: int, count: int, grouped: bool, seed: int) -> list:
    """`count` batches of review indices: random, or (grouped) each drawn from a random pool of
    50 batches sorted by length, as length grouping does."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        if grouped:
            pool = rng.choice(len(lengths), size=50 * size, replace=False)
            pool = pool[np.argsort(lengths[pool], kind="stable")]
            start = rng.integers(0, 50) * size
            out.append(pool[start : start + size])
        else:
            out.append(rng.choice(len(lengths), size=size, replace=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    args = parser.parse_args()
    if not (ROTTEN_TOMATOES / "train.jsonl").is_file():
        sys.exit(f"no train.jsonl in {ROTTEN_TOMATOES}: this benchmark needs the real data set.")

    import torch
    from transformers import DataCollatorWithPadding

    from probelab.config import load_config
    from probelab.sentiment.encoder import load_tokenizer
    from probelab.sentiment.finetune import _classifier

    settings = load_config(CONFIG)["sentiment"]
    params = settings["finetune"]
    model_id = settings["encoders"][0]["model"]
    print(f"# before: {uptime()}", flush=True)
    tokenizer = load_tokenizer(model_id)
    texts, labels = read_split("train")
    encoded = tokenizer(texts, truncation=True, max_length=params["max_length"])
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    dynamic = DataCollatorWithPadding(tokenizer)
    fixed = DataCollatorWithPadding(
        tokenizer, padding="max_length", max_length=params["max_length"]
    )

    def batch(rows, collator):
        features = [
            {"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i]}
            | {"labels": labels[i]}
            for i in rows
        ]
        return collator(features)

    figures: dict[str, float] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = _classifier(model_id, ["negative", "positive"])
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=params["grid"]["learning_rate"][0])
        for name, grouped, collator in (
            ("dynamic padding", False, dynamic),
            ("length-grouped, dynamic padding", True, dynamic),
            (f"padded to {params['max_length']}", False, fixed),
        ):
            chosen = batches(lengths, params["batch_size"], args.steps + 1, grouped, seed=threads)
            times, tokens = [], []
            for rows in chosen:
                inputs = batch(rows, collator)
                started = time.perf_counter()
                loss = model(**inputs).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - started)
                tokens.append(inputs["input_ids"].shape[1])
            key = f"{threads} thread(s), {name}"
            figures[key] = float(np.median(times[1:]))
            print(
                f"{key}: {1000 * figures[key]:.0f} ms / step "
                f"(mean padded length {np.mean(tokens[1:]):.1f} tokens)",
                flush=True,
            )

    # evaluation and checkpoint, at 2 threads (the config's)
    val_texts, val_labels = read_split("validation")
    val = tokenizer(val_texts, truncation=True, max_length=params["max_length"])
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(val_texts), params["eval_batch_size"]):
            rows = range(start, min(start + params["eval_batch_size"], len(val_texts)))
            features = [
                {"input_ids": val["input_ids"][i], "attention_mask": val["attention_mask"][i]}
                | {"labels": val_labels[i]}
                for i in rows
            ]
            model(**dynamic(features))
    figures["evaluation"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model.save_pretrained(tmp)
        figures["checkpoint"] = time.perf_counter() - started
    print(
        f"evaluation of {len(val_texts)} validation reviews: {figures['evaluation']:.1f} s; "
        f"checkpoint save: {figures['checkpoint']:.1f} s",
        flush=True,
    )

    epochs = max(params["grid"]["epochs"])
    steps = epochs * math.ceil(len(texts) / params["batch_size"])
    step = figures["2 thread(s), length-grouped, dynamic padding"]
    total = steps * step + epochs * (figures["evaluation"] + figures["checkpoint"])
    print(
        f"\nprojected run at 2 threads, {len(texts)} reviews, {epochs} epochs: {steps} steps x "
        f"{1000 * step:.0f} ms + {epochs} x (evaluation + checkpoint) = {total / 60:.1f} min "
        f"(training {100 * steps * step / total:.0f} %)"
    )
    print(f"# after: {uptime()}")


if __name__ == "__main__":
    main()
