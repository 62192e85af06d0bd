"""Config lookups for rules/sentiment.smk (kept here, not in the rule file, so rules stay thin and
the lookups are testable): input files, targets, and what the SVM requires of its features."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from probelab.sentiment import SPLITS
from probelab.sentiment.data import input_files
from probelab.sentiment.encoder import configured_model, weights_id


def results_root(sentiment: dict[str, Any]) -> str:
    return f"results/sentiment/{sentiment['dataset']}"


def demo_folder(sentiment: dict[str, Any]) -> str:
    return f"{results_root(sentiment)}/data"


def demo_files(sentiment: dict[str, Any]) -> list[str]:
    return [f"{demo_folder(sentiment)}/{split}.jsonl" for split in SPLITS]


def data_inputs(sentiment: dict[str, Any]) -> list[str]:
    """The split files the rules read (none for a hub data set or a disabled track)."""
    if not sentiment["enabled"]:
        return []
    return input_files(sentiment["data"], demo_folder(sentiment))


def data_folder(input_paths: list[str]) -> str | None:
    """The folder of the split files a job got as input (None for a hub data set)."""
    return str(Path(input_paths[0]).parent) if input_paths else None


def expected_features(sentiment: dict[str, Any], name: str) -> dict[str, Any]:
    """The provenance the SVM step requires of the features cache of encoder `name`."""
    model = configured_model(sentiment["encoders"], name)
    return {
        "dataset": sentiment["dataset"],
        "model": name,
        "model_id": model,
        "weights": weights_id(model),
        "pooling": sentiment["features"]["pooling"],
        "max_length": sentiment["features"]["max_length"],
    }


def targets(sentiment: dict[str, Any]) -> list[str]:
    """Every final output of the track; empty when sentiment.enabled is false."""
    if not sentiment["enabled"]:
        return []
    root = results_root(sentiment)
    outputs = [f"{root}/explore/explore.json", f"{root}/explore/lengths.png"]
    for name in encoder_names(sentiment):
        outputs += [
            f"{root}/inspect/{name}.json",
            f"{root}/svm/{name}/metrics.json",
            f"{root}/finetune/{name}/metrics.json",
        ]
    return outputs


def encoder_names(sentiment: dict[str, Any]) -> list[str]:
    """The {model} wildcard values: one per configured encoder."""
    return [encoder["name"] for encoder in sentiment["encoders"]]


def parse_command_line(
    description: str | None,
    argv: list[str] | None,
    outputs: list[str],
    *,
    demo_folder: bool = True,
    model: bool = True,
    threads: bool = False,
) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The step scripts' shared command line: --config, the optional common options and the
    script's output paths; returns the arguments and the validated config's `sentiment` section."""
    from probelab.config import load_config
    from probelab.logs import setup_logging

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="config.yaml")
    if demo_folder:
        parser.add_argument(
            "--demo-folder",
            type=Path,
            default=None,
            help="where the demo reviews are (only for data.source demo)",
        )
    if model:
        parser.add_argument("--model", required=True, help="encoder name from sentiment.encoders")
    if threads:
        parser.add_argument("--threads", type=int, default=1)
    for option in outputs:
        parser.add_argument(option, type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    return args, load_config(args.config)["sentiment"]
