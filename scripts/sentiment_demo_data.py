"""Write the demo's generated movie-review set (train / validation / test JSON lines)."""

import argparse
import logging
from pathlib import Path
from typing import Any

from probelab.sentiment.demo import write_demo_reviews

log = logging.getLogger("sentiment_demo_data")


def make_demo_reviews(out_dir: Path, demo: dict[str, Any]) -> dict[str, int]:
    """Generate the review set configured in `sentiment.demo` into `out_dir`."""
    sizes = write_demo_reviews(
        out_dir,
        demo["n_reviews"],
        demo["validation_fraction"],
        demo["test_fraction"],
        demo["label_noise"],
        demo["seed"],
    )
    log.info(
        "demo reviews in %s: %s", out_dir, ", ".join(f"{split} {n}" for split, n in sizes.items())
    )
    return sizes


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for train/validation/test.jsonl"
    )
    args = parser.parse_args(argv)
    setup_logging()
    make_demo_reviews(args.out, load_config(args.config)["sentiment"]["demo"])


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    make_demo_reviews(Path(snakemake.output[0]).parent, snakemake.params.demo)
elif __name__ == "__main__":
    main()
