"""Patient-disjoint train / val / test split of the cohort index -> split.parquet."""

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from probelab.io import write_parquet
from probelab.splits import official_split, random_split

log = logging.getLogger("split")


def make_split(
    index_path: Path, out: Path, split: dict[str, Any], data: dict[str, Any]
) -> pd.DataFrame:
    """Split by the config's `split` section (random fractions or the official lists)."""
    index = pd.read_parquet(index_path, columns=["image_id", "patient_id"])
    if split["method"] == "official":
        root = Path(data["root"])
        result = official_split(
            index,
            root / data["train_val_list"],
            root / data["test_list"],
            split["val_fraction"],
            split["seed"],
        )
    else:
        result = random_split(index, split["fractions"], split["seed"])
    write_parquet(out, result)
    for name, group in result.groupby("split"):
        log.info("%s: %d images, %d patients", name, len(group), group["patient_id"].nunique())
    return result


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    make_split(args.index, args.out, config["split"], config["data"])


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    make_split(
        Path(snakemake.input.index),
        Path(snakemake.output[0]),
        snakemake.params.split,
        snakemake.params.data,
    )
elif __name__ == "__main__":
    main()
