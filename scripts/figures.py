"""Draw one report figure from the aggregated tables (never from run folders), in every
configured format: learning_curves, auroc_heatmap, precision_recall, training_curves,
sentiment_comparison."""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.layout import FIGURES, CohortLayout
from probelab.report.settings import figure_settings
from probelab.report.steps import draw_figure


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(__doc__, argv, positional={"figure": {"choices": sorted(FIGURES)}})
    paths = CohortLayout.of(config)
    settings = figure_settings(config["report"])
    draw_figure(
        args.figure,
        {key: Path(paths.report_table(key)) for key in FIGURES[args.figure].tables},
        [Path(path) for path in paths.figure_files(args.figure, settings["formats"])],
        settings,
        config["report"]["policy"],
        config["pathologies"],
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    draw_figure(
        snakemake.params.figure,
        {key: Path(path) for key, path in snakemake.input.items()},
        [Path(path) for path in snakemake.output],
        snakemake.params.settings,
        snakemake.params.policy,
        snakemake.params.pathologies,
    )
elif __name__ == "__main__":
    main()
