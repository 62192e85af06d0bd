"""Balanced training subsets: results/{cohort}/subsets/n{n}/seed{seed}.txt (algorithm: probelab.subsets)."""

import argparse
import logging
from pathlib import Path

import pandas as pd

from probelab.cohort import label_matrix
from probelab.io import write_text
from probelab.subsets import balanced_subset

log = logging.getLogger("subset")


def write_subsets(
    index_path: Path,
    split_path: Path,
    pathologies: list[str],
    n: int | str,
    seed: int,
    out: Path,
    no_finding_share: float,
) -> list[str]:
    """Write the balanced subset of size `n` for `seed`, one image id per line."""
    index = pd.read_parquet(index_path)
    split = pd.read_parquet(split_path, columns=["image_id", "split"])
    train_ids = split.loc[split["split"] == "train", "image_id"]
    train = index[index["image_id"].isin(train_ids)]
    train = pd.concat([train[["image_id"]], label_matrix(train, pathologies)], axis=1)
    ids = balanced_subset(train, pathologies, n, seed, no_finding_share)
    write_text(out, "\n".join(ids) + "\n")
    positives = train.set_index("image_id").loc[ids, pathologies].sum()
    log.info(
        "n=%s seed=%d: %d images; positives per pathology: %s",
        n,
        seed,
        len(ids),
        positives.to_dict(),
    )
    return ids


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--n", required=True, help="subset size or 'all'")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    n = args.n if args.n == "all" else int(args.n)
    write_subsets(
        args.index,
        args.split,
        config["pathologies"],
        n,
        args.seed,
        args.out,
        config["subsets"]["no_finding_share"],
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    n = snakemake.wildcards.n
    write_subsets(
        Path(snakemake.input.index),
        Path(snakemake.input.split),
        snakemake.params.pathologies,
        n if n == "all" else int(n),
        int(snakemake.wildcards.seed),
        Path(snakemake.output[0]),
        snakemake.params.no_finding_share,
    )
elif __name__ == "__main__":
    main()
