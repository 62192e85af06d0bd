"""Write a small Transformers CLIP with seeded random weights, for the offline demo.

The architecture comes from a JSON file in the repo (configs/encoders/demo-hf-clip.json): the
CLIPConfig keys (`projection_dim`, `vision_config`, `text_config`) plus `tokenizer_merges`, the
number of byte-pair merges the tokenizer keeps. The tokenizer is CLIP's own byte-level BPE, taken
from the vocabulary file that ships with open_clip and cut to its first merges (a smaller vocabulary
keeps the model small; text is still tokenised correctly, into more pieces). Nothing is downloaded.

The folder (model, image processor, tokenizer) loads with `AutoModel/AutoImageProcessor/
AutoTokenizer.from_pretrained(folder)` and appears under its final name only when complete.
"""

import argparse
import gzip
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("make_demo_encoder")

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def clip_bpe_vocabulary(n_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-level BPE vocabulary and merges, cut to the first `n_merges` merges."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : n_merges + 1] if line.strip()]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def make_demo_encoder(architecture: Path, out_dir: Path, seed: int) -> None:
    """Build the CLIP described by `architecture` with weights drawn from `seed`; save to `out_dir`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    spec: dict[str, Any] = json.loads(Path(architecture).read_text())
    if spec.get("model_type", "clip") != "clip":
        raise ValueError(
            f"{architecture}: model_type {spec['model_type']!r} is not supported; only 'clip' can be built offline."
        )
    for key in ("vision_config", "text_config", "tokenizer_merges"):
        if key not in spec:
            raise ValueError(f"{architecture}: the key '{key}' is missing.")
    vocab, merges = clip_bpe_vocabulary(int(spec["tokenizer_merges"]))
    text_config = {
        **spec["text_config"],
        "vocab_size": len(vocab),
        # CLIP pools the text at the end-of-text token, found by its id
        "bos_token_id": vocab[BOS],
        "eos_token_id": vocab[EOS],
        "pad_token_id": vocab[EOS],
    }
    config = CLIPConfig(
        text_config=text_config,
        vision_config=spec["vision_config"],
        projection_dim=spec.get("projection_dim", 512),
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    size = int(spec["vision_config"]["image_size"])
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=text_config["max_position_embeddings"]
    )

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary result
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "wrote %s: CLIP with %d parameters (seed %d), vocabulary of %d tokens",
        out_dir,
        n_params,
        seed,
        len(vocab),
    )


def main(argv: list[str] | None = None) -> None:
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--architecture", type=Path, required=True, help="JSON file (configs/encoders/...)"
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging()
    make_demo_encoder(args.architecture, args.out, args.seed)


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    make_demo_encoder(
        Path(snakemake.input.architecture), Path(snakemake.output[0]), snakemake.params.seed
    )
elif __name__ == "__main__":
    main()
