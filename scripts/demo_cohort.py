"""Write a synthetic chest-radiograph cohort in the NIH ChestX-ray14 download layout into data.root.

Used by the offline demo (config demo.enabled): label table, images_00k/images/*.png, and the
official train_val_list.txt / test_list.txt, with some listed images never written to disk.
"""

# No `from __future__` import here: Snakemake prepends its preamble to step scripts, and such an
# import must be a file's first statement.
import argparse
import logging
from pathlib import Path
from typing import Any

from probelab.demo_cohort import DemoCohortError, write_demo_cohort

log = logging.getLogger("demo_cohort")

# The keys of the config's `demo` section that shape the cohort (`enabled` only switches the rule on).
DEMO_KEYS = (
    "n_images",
    "listed_not_downloaded",
    "image_size",
    "images_per_folder",
    "rgba_fraction",
    "sixteen_bit_fraction",
    "seed",
)


def demo_cohort(
    root: Path,
    pathologies: list[str],
    demo: dict[str, Any],
    *,
    label_table: str,
    no_finding_label: str,
    lists: dict[str, str] | None = None,
) -> dict:
    """Generate the cohort described by the config's `demo` section into `root`; return its counts.

    `lists` optionally renames the official list files: {"train_val_list": ..., "test_list": ...}.
    """
    missing = [key for key in DEMO_KEYS if key not in demo]
    if missing:
        raise DemoCohortError(
            f"config section 'demo' has no key {missing[0]!r}; expected keys {', '.join(DEMO_KEYS)}."
        )
    return write_demo_cohort(
        root,
        list(pathologies),
        **{key: demo[key] for key in DEMO_KEYS},
        label_table=label_table,
        no_finding_label=no_finding_label,
        **(lists or {}),
    )


def main(argv: list[str] | None = None) -> None:
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config", default="config.yaml", help="probelab config (its demo and data sections)"
    )
    parser.add_argument("--root", type=Path, help="output folder (default: the config's data.root)")
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    data = config["data"]
    demo_cohort(
        args.root or Path(data["root"]),
        config["pathologies"],
        config["demo"],
        label_table=data["label_table"],
        no_finding_label=config["no_finding_label"],
        lists={"train_val_list": data["train_val_list"], "test_list": data["test_list"]},
    )


if "snakemake" in globals():
    from probelab.logs import setup_logging

    setup_logging(snakemake.log[0])
    params = snakemake.params
    demo_cohort(
        Path(snakemake.output[0]),
        params.pathologies,
        params.demo,
        label_table=params.label_table,
        no_finding_label=params.no_finding,
        lists={"train_val_list": params.train_val_list, "test_list": params.test_list},
    )
elif __name__ == "__main__":
    main()
