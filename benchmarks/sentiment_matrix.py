"""Print the sentiment matrix's results as the Markdown that docs/sentiment.md quotes.

After `snakemake sentiment aggregate_sentiment figure_sentiment_comparison --configfile <config>`
(default: the real-data config), prints
  - the learning curve: test accuracy and F1 per method x pooling x size, mean over seeds with
    the interval over seeds x test-set bootstrap resamples (report/sentiment.csv);
  - the paired differences to the reference at every size (report/sentiment_comparisons.csv);
  - fine-tuning's learning rate chosen on validation per cell (the cells' metrics.json);
  - every job's wall and CPU seconds from its Snakemake benchmark file, and their sums.
It reads files only; nothing is trained.

  .venv/bin/python benchmarks/sentiment_matrix.py [--config configs/rotten_tomatoes_local.yaml]
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from probelab.config import load_config
from probelab.layout import CohortLayout, SentimentLayout
from probelab.report.aggregate import size_order
from probelab.sentiment.matrix import cells

REPO = Path(__file__).resolve().parents[1]
NAMES = {"svm": "SVM", "logreg": "logistic regression", "finetune": "fine-tuned encoder"}


def interval_table(table: pd.DataFrame, metric: str) -> str:
    rows = table[(table["split"] == "test") & (table["metric"] == metric)]
    sizes = size_order(list(rows["n"]))
    lines = [
        "| method | pooling | " + " | ".join(sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for (method, pooling), group in rows.groupby(["method", "pooling"], sort=False):
        cells_text = []
        for n in sizes:
            line = group[group["n"] == n]
            if line.empty:
                cells_text.append("—")
                continue
            line = line.iloc[0]
            cells_text.append(f"{line['value']:.3f} [{line['lower']:.3f}, {line['upper']:.3f}]")
        lines.append(
            f"| {NAMES.get(method, method)} | {pooling} | " + " | ".join(cells_text) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", type=Path, default=REPO / "configs" / "rotten_tomatoes_local.yaml"
    )
    args = parser.parse_args()
    config = load_config(args.config)
    sentiment = config["sentiment"]
    cohort, layout = CohortLayout.of(config), SentimentLayout.of(sentiment)
    table = pd.read_csv(REPO / cohort.report_table("sentiment"), dtype={"n": str})
    for metric in ("accuracy", "f1"):
        print(f"\n### Test {metric}: mean over seeds [interval over seeds x test resamples]\n")
        print(interval_table(table, metric))

    comparisons = pd.read_csv(REPO / cohort.report_table("sentiment_comparisons"), dtype={"n": str})
    print("\n### Paired differences to the reference (test accuracy)\n")
    print(
        "| method | pooling | size | difference [interval] | share better |\n|---|---|---|---|---|"
    )
    for _, row in comparisons[comparisons["metric"] == "accuracy"].iterrows():
        print(
            f"| {NAMES.get(row['method'], row['method'])} | {row['pooling']} | {row['n']} | "
            f"{row['difference']:+.3f} [{row['lower']:+.3f}, {row['upper']:+.3f}] | "
            f"{row['share_better']:.2f} |"
        )

    print("\n### Fine-tuning: setting chosen on validation per cell\n")
    for name in [encoder["name"] for encoder in sentiment["encoders"]]:
        for n, seed in cells(sentiment):
            path = REPO / layout.metrics("finetune", name, None, n, seed)
            if path.is_file():
                metrics = json.loads(path.read_text())
                scores = [round(point["validation"]["accuracy"], 4) for point in metrics["grid"]]
                print(
                    f"- {name} n={n} seed {seed}: {metrics['best_params']} "
                    f"(validation accuracy per grid point {scores}, {metrics['epochs_run']:.2f} "
                    f"epochs, {metrics['train_seconds']:.0f} s training)"
                )

    print("\n### Job times (Snakemake benchmark files: wall s, CPU s)\n")
    total_wall = total_cpu = 0.0
    for path in sorted((REPO / layout.benchmarks).rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        wall, cpu = float(frame["s"].iloc[-1]), float(frame["cpu_time"].iloc[-1])
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"- {path.relative_to(REPO / layout.benchmarks)}: {wall:.0f} s wall, {cpu:.0f} s CPU")
    print(f"- **sum**: {total_wall:.0f} s wall, {total_cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
