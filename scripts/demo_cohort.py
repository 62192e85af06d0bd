"""Write a synthetic chest-radiograph cohort in the NIH ChestX-ray14 download layout into data.root.

Used by the offline demo (config demo.enabled): label table, images_00k/images/*.png, and the
official train_val_list.txt / test_list.txt, with some listed images never written to disk.
"""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.demo.cohort import demo_cohort


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        options={
            "--root": {"type": Path, "help": "output folder (default: the config's data.root)"}
        },
    )
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
    snakemake_job(snakemake)
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
