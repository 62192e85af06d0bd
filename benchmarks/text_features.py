"""Text feature extraction: batches sorted by token length vs the same batches in file order.

Encodes the same reviews twice per repeat with the bundled MiniLM (rule sentiment_text_features'
code path, `probelab.sentiment.features.extract_features`), once with texts sorted by token
length before batching and once in file order, and prints both rates and the ratio. Repeats are
interleaved and the best time of each kind is kept, because the CPU is shared. Target: sorted
>= 1.5 x file order on the real Rotten Tomatoes data (../shared/data/rotten_tomatoes).

Run from the repository root:
  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/text_features.py [--split train] [--sample N]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROTTEN_TOMATOES = REPO.parent / "shared" / "data" / "rotten_tomatoes"


def read_texts(folder: Path, split: str, sample: int | None, seed: int) -> list[str]:
    """The split's texts in file order, or a seeded random sample of them (kept in file order)."""
    # a JSON parser per line: some texts hold U+0085, which str.splitlines() would cut
    with open(folder / f"{split}.jsonl", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    if not sample or sample >= len(texts):
        return texts
    keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=sample, replace=False))
    return [texts[i] for i in keep]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=ROTTEN_TOMATOES, help="folder with <split>.jsonl"
    )
    parser.add_argument("--split", default="train")
    parser.add_argument(
        "--sample", type=int, default=None, help="a random sample of N texts (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--model", default="bundled:all-minilm-l6-v2")
    parser.add_argument("--pooling", default="cls", choices=["cls", "mean"])
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not (args.data / f"{args.split}.jsonl").is_file():
        sys.exit(f"no {args.split}.jsonl in {args.data}: this benchmark needs the real data set.")

    import torch

    from probelab.sentiment.encoder import load_encoder, load_tokenizer
    from probelab.sentiment.features import batch_order, extract_features

    torch.set_num_threads(args.threads)
    texts = read_texts(args.data, args.split, args.sample, args.seed)
    tokenizer, encoder = load_tokenizer(args.model), load_encoder(args.model)
    extract_features(
        texts[:64], tokenizer, encoder, args.pooling, args.max_length, args.batch_size, True
    )  # warm-up

    best = {True: float("inf"), False: float("inf")}
    features = {}
    for repeat in range(args.repeats):
        for sort in (True, False):
            start = time.perf_counter()
            features[sort], lengths = extract_features(
                texts, tokenizer, encoder, args.pooling, args.max_length, args.batch_size, sort
            )
            seconds = time.perf_counter() - start
            best[sort] = min(best[sort], seconds)
            print(
                f"repeat {repeat + 1}: {'sorted' if sort else 'file order'}: {seconds:.1f} s",
                flush=True,
            )
    largest_difference = float(np.abs(features[True] - features[False]).max())
    # the work the encoder does: every batch is padded to its longest text
    padded = {
        sort: sum(
            int(lengths[b].max()) * len(b) for b in batch_order(lengths, args.batch_size, sort)
        )
        for sort in best
    }

    sampled = ", random sample" if args.sample else ""
    print(
        f"texts: {len(texts)} ({args.data.name}/{args.split}{sampled}), batch {args.batch_size}, "
        f"max_length {args.max_length}, {args.threads} threads, best of {args.repeats}"
    )
    print(
        f"tokens incl. padding: sorted {padded[True]}, file order {padded[False]} "
        f"(real tokens {int(lengths.sum())})"
    )
    print(f"sorted by length: {len(texts) / best[True]:.1f} texts/s ({best[True]:.1f} s)")
    print(f"file order:       {len(texts) / best[False]:.1f} texts/s ({best[False]:.1f} s)")
    print(f"ratio sorted / file order: {best[False] / best[True]:.2f}x (target >= 1.5x)")
    print(f"largest feature difference between the two orders: {largest_difference:.2e}")


if __name__ == "__main__":
    main()
