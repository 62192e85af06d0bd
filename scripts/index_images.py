"""Index the label table against the images actually on disk.

Writes results/{cohort}/index.parquet (one row per present image) and index_counts.json.
"""

import argparse
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from probelab.cohort import CsvColumns, IndexCounts, build_index
from probelab.io import write_json, write_parquet

log = logging.getLogger("index_images")


def index_images(
    data: dict[str, Any], pathologies: list[str], no_finding: str, out_index: Path, out_counts: Path
) -> IndexCounts:
    """Build the index from the config's `data` section and write it with its counts."""
    index, counts = build_index(
        Path(data["root"]),
        pathologies,
        fmt=data["format"],
        label_table=data["label_table"],
        image_dirs=data["image_dirs"],
        extensions=data["extensions"],
        views=data["views"],
        csv_columns=CsvColumns(**data["csv"]),
        no_finding=no_finding,
    )
    write_parquet(out_index, index)
    write_json(out_counts, asdict(counts))
    log.info(
        "%d of %d listed images present; %d files on disk not listed",
        counts.present,
        counts.listed,
        counts.unlisted_files,
    )
    return counts


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--out-index", type=Path, required=True)
    parser.add_argument("--out-counts", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    index_images(
        config["data"],
        config["pathologies"],
        config["no_finding_label"],
        args.out_index,
        args.out_counts,
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    index_images(
        snakemake.params.data,
        snakemake.params.pathologies,
        snakemake.params.no_finding,
        Path(snakemake.output.index),
        Path(snakemake.output.counts),
    )
elif __name__ == "__main__":
    main()
