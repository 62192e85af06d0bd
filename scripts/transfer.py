"""The transfer table (transfer.csv): every setting's macro metrics on the internal test split and
on each external test cohort, with the same patient bootstrap, over the pathologies both sides
evaluate (probelab.report.transfer)."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.layout import CohortLayout
from probelab.report.steps import transfer


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        positional={"runs": {"type": Path, "nargs": "+", "help": "internal run folders"}},
    )
    paths = CohortLayout.of(config)
    external = {}
    for name in config["external"]:
        layout = paths.external(name)
        folders = [layout.root / run.relative_to(paths.root) for run in args.runs]
        external[name] = (folders, Path(layout.split))
    transfer(
        args.runs,
        Path(paths.split),
        external,
        config["pathologies"],
        config["report"]["bootstrap"],
        Path(paths.report_table("transfer")),
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    names = snakemake.params.names
    folders = [Path(path).parent for path in snakemake.input.external]
    per_name = len(folders) // len(names)
    transfer(
        [Path(path).parent for path in snakemake.input.predictions],
        Path(snakemake.input.split),
        {
            name: (folders[k * per_name : (k + 1) * per_name], Path(split))
            for k, (name, split) in enumerate(
                zip(names, snakemake.input.external_splits, strict=True)
            )
        },
        snakemake.params.pathologies,
        snakemake.params.resampling,
        Path(snakemake.output[0]),
    )
elif __name__ == "__main__":
    main()
