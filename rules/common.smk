# Helpers of every stage: paths come from probelab.layout, config lookups from here. Included
# first, so that no rule file depends on another's include order. Nothing here reads a
# workflow output (checks that need one, such as subset sizes against the split, run inside the
# job) except job_runtime, a resource Snakemake evaluates once the job's input exists.
import re
from pathlib import Path

from probelab.cohort import data_manifest
from probelab.config import enabled_models, encoder_models
from probelab.fingerprint import (
    PRETRAIN_CODE_VERSION,
    cache_fingerprints,
    encoder_fingerprint,
    prompt_fingerprint,
    write_if_changed,
)
from probelab.layout import (
    FIGURES,
    RUN_FILES,
    CohortLayout,
    SentimentLayout,
    image_cache_of,
    prompt_cache_of,
)
from probelab.models import needs_prompts
from probelab.report.settings import (
    figure_names,
    figure_settings,
    summary_config,
    summary_figures,
)
from probelab.sentiment import SPLITS
from probelab.subsets import job_minutes, mix_path
from probelab.sentiment.data import input_files
from probelab.sentiment.encoder import configured_model
from probelab.sentiment.features import expected_features

PATHS = CohortLayout.of(config)
LOGS = PATHS.logs
BENCHMARKS = PATHS.benchmarks
SENTIMENT = config["sentiment"]
SENT = SentimentLayout.of(SENTIMENT)


wildcard_constraints:
    cohort=r"[A-Za-z0-9_.-]+",
    n=r"\d+|all",
    seed=r"\d+",
    encoder=r"[A-Za-z0-9_.-]+",
    model=r"[A-Za-z0-9_]+",
    fingerprint=r"[0-9a-f]{12}",


def one_of(names: list[str]) -> str:
    """A wildcard constraint that admits exactly these names (a never-matching one if empty)."""
    return "|".join(re.escape(name) for name in names) or "no-such-name"


# --- cohort ---


def data_root() -> str:
    return config["data"]["root"]


def index_inputs() -> dict[str, str]:
    """What the index is built from. A generated demo cohort is one directory output. A real
    data folder is represented by its manifest (label table, lists, image names, sizes and
    mtimes), rewritten here only when it changed: editing the label table in place or adding an
    image anywhere under data.image_dirs then reruns the index, and nothing else does."""
    if config["demo"]["enabled"]:
        return {"data": data_root()}
    if workflow.is_main_process:
        write_if_changed(PATHS.data_manifest, data_manifest(config["data"]))
    return {"manifest": PATHS.data_manifest}


def subset_sizes() -> list[str]:
    return [str(n) for n in config["subsets"]["sizes"]]


def subset_seeds() -> list[int]:
    return list(config["subsets"]["seeds"])


def subset_paths() -> list[str]:
    return [PATHS.subset(n, seed) for n in subset_sizes() for seed in subset_seeds()]


def official_lists() -> list[str]:
    """The official split lists, as inputs so that editing them reruns the split.

    A generated demo cohort is one directory output, so its lists come with the directory.
    """
    if config["split"]["method"] != "official":
        return []
    if config["demo"]["enabled"]:
        return [data_root()]
    root = Path(data_root())
    return [str(root / config["data"]["train_val_list"]), str(root / config["data"]["test_list"])]


# --- embed ---


def encoder_names() -> list[str]:
    """Every configured encoder, in config order."""
    return list(config["encoders"])


def text_encoder_names() -> list[str]:
    """Encoders with a usable text tower (prompt fusion and zero-shot need one)."""
    return [name for name in encoder_names() if config["encoders"][name]["text"]]


def built_encoder_names() -> list[str]:
    """Encoders whose model rule make_demo_encoder builds from a JSON file (build_from)."""
    return [name for name in encoder_names() if config["encoders"][name]["build_from"]]


def built_encoder_recipe(wildcards) -> dict:
    """What rule make_demo_encoder builds an encoder from; a change reruns it. The pretraining
    code version is in it: pretraining code lives in the package, which Snakemake's code trigger
    does not see."""
    settings = config["encoders"][wildcards.encoder]
    recipe = {key: settings[key] for key in ("backend", "build_from", "seed", "pretrain")}
    if settings["pretrain"]:
        recipe["code"] = PRETRAIN_CODE_VERSION
    return recipe


def built_encoder_inputs(wildcards) -> dict[str, str]:
    """The architecture file, and for a pretrained encoder the index and split whose training
    images it learns from."""
    settings = config["encoders"][wildcards.encoder]
    inputs = {"architecture": settings["build_from"]}
    if settings["pretrain"]:
        inputs.update(index=PATHS.index, split=PATHS.split)
    return inputs


def encoder_settings(wildcards) -> dict:
    """The encoder's config entry, with the model folder filled in for build_from encoders."""
    settings = dict(config["encoders"][wildcards.encoder])
    if settings["build_from"]:
        settings["model"] = PATHS.built_encoder(wildcards.encoder)
    return settings


def encoder_files(wildcards) -> list[str]:
    """Local model files and folders, as inputs, so that changing them reruns the embedding."""
    settings = config["encoders"][wildcards.encoder]
    if settings["build_from"]:
        return [PATHS.built_encoder(wildcards.encoder)]
    candidates = [settings["model"], settings["pretrained"] or ""]
    return [path for path in candidates if path and Path(path).exists()]


def image_fingerprint(encoder: str) -> dict:
    """What decides the encoder's image features (probelab.fingerprint.encoder_fingerprint)."""
    return encoder_fingerprint(encoder, config["encoders"][encoder])


def prompt_fingerprint_of(encoder: str) -> dict:
    """What decides the encoder's prompt embeddings."""
    return prompt_fingerprint(
        encoder, config["encoders"][encoder], config["pathologies"], config["prompts"]
    )


def image_cache(encoder: str) -> str:
    return image_cache_of(config, encoder)


def prompt_cache(encoder: str) -> str:
    return prompt_cache_of(config, encoder)


def encoder_gpus(wildcards) -> int:
    """GPUs an embedding job asks the scheduler for: one when the encoder's device is cuda.

    With device auto the job uses a GPU if the node has one; the SLURM profile's set-resources
    asks for it there (docs/cluster.md).
    """
    return int(config["encoders"][wildcards.encoder]["device"] == "cuda")


# --- probe ---


def probe_models() -> list[str]:
    """The configured and enabled probe models, in the report's order."""
    return enabled_models(config)


def run_outputs(name: str) -> list[str]:
    """One file of every run folder (encoder x model x subset size x seed); an encoder without a
    text tower skips the models that read prompt embeddings."""
    return [
        PATHS.run_file(encoder, model, n, seed, name)
        for encoder in encoder_names()
        for model in encoder_models(config, encoder)
        for n in subset_sizes()
        for seed in subset_seeds()
    ]


# What one train_probe job trains (training.job_scope): every seed of one encoder x model x size,
# every size and seed of one encoder x model, or every model, size and seed of one encoder.
SCOPE = config["training"]["job_scope"]
JOB = {"size": "{encoder}/{model}/n{n}", "model": "{encoder}/{model}", "encoder": "{encoder}"}[
    SCOPE
]


def job_models(wildcards) -> list[str]:
    if SCOPE == "encoder":
        return encoder_models(config, wildcards.encoder)
    return [wildcards.model]


def image_only_models() -> list[str]:
    """The enabled models an encoder without a text tower runs."""
    return [model for model in probe_models() if not needs_prompts(model)]


def job_encoders(text: bool) -> list[str]:
    """The encoders whose jobs rule train_probe (text=True) or train_probe_image_only (False)
    trains. Only job_scope encoder needs two rules (one job's outputs list every model of the
    encoder); otherwise train_probe trains every encoder's jobs."""
    if SCOPE != "encoder":
        return encoder_names() if text else []
    with_text = text_encoder_names()
    return [name for name in encoder_names() if (name in with_text) == text]


def job_sizes(wildcards) -> list[str]:
    return [wildcards.n] if SCOPE == "size" else subset_sizes()


def job_run_files(name: str, text: bool = True) -> list[str]:
    """One file of every run folder of a job, with the job's wildcards left in (text=False: the
    job of an encoder without a text tower, in job_scope encoder)."""
    pattern = PATHS.run_file("{encoder}", "{model}", "{n}", "{seed}", name)
    spread = {"seed": subset_seeds()}
    if SCOPE != "size":
        spread["n"] = subset_sizes()
    if SCOPE == "encoder":
        spread["model"] = probe_models() if text else image_only_models()
    return expand(pattern, **spread, allow_missing=True)


def job_subsets(wildcards) -> list[str]:
    return sorted({PATHS.subset(n, seed) for n in job_sizes(wildcards) for seed in subset_seeds()})


def job_runs(wildcards) -> list[dict]:
    """Model, size, seed, subset file and run folder of every run of a job, in training order."""
    return [
        {
            "model": model,
            "n": n,
            "seed": seed,
            "subset": PATHS.subset(n, seed),
            "out_dir": PATHS.run_dir(wildcards.encoder, model, n, seed),
        }
        for model in job_models(wildcards)
        for n in job_sizes(wildcards)
        for seed in subset_seeds()
    ]


def job_runtime(wildcards, input) -> int:
    """Minutes of a train_probe job (training.runtime; probelab.subsets.job_minutes). It reads
    the job's subset files: Snakemake evaluates a resource of `input` once the job's input
    exists, so this is the one helper here that reads a workflow output."""
    return job_minutes(
        config["training"]["runtime"], [run["subset"] for run in job_runs(wildcards)]
    )


def job_prompt_cache(wildcards) -> list[str]:
    needed = any(needs_prompts(model) for model in job_models(wildcards))
    return [prompt_cache(wildcards.encoder)] if needed else []


def job_model_settings(wildcards) -> dict:
    """The config sections of the job's models."""
    return {model: config["models"][model] for model in job_models(wildcards)}


# --- external test cohorts ---


def external_names() -> list[str]:
    return list(config["external"])


def external_layout(name: str) -> CohortLayout:
    return PATHS.external(name)


# The external layout with its name left as a wildcard, for rule patterns.
EXTERNAL = PATHS.external("{external}")


def external_settings(wildcards) -> dict:
    return config["external"][wildcards.external]


def external_pathologies(wildcards) -> list[str]:
    """The training cohort's pathologies the external cohort labels."""
    listed = external_settings(wildcards)["pathologies"]
    return list(config["pathologies"]) if listed is None else list(listed)


def external_index_inputs(wildcards) -> dict[str, str]:
    """As index_inputs, for an external cohort: its generated folder or its data manifest."""
    settings = external_settings(wildcards)
    layout = external_layout(wildcards.external)
    if settings["demo"]["enabled"]:
        return {"data": settings["data"]["root"]}
    if workflow.is_main_process:
        write_if_changed(layout.data_manifest, data_manifest(settings["data"]))
    return {"manifest": layout.data_manifest}


def external_cache(name: str, encoder: str) -> str:
    """An encoder's image cache of an external cohort (same fingerprint as the training
    cohort's: the same settings decide the features)."""
    return external_layout(name).image_cache(encoder, Path(image_cache(encoder)).stem)


def external_run_files(name: str, file: str, encoder: str | None = None) -> list[str]:
    """One file of every external run folder (of one encoder, or all)."""
    layout = external_layout(name)
    return [
        layout.run_file(enc, model, n, seed, file)
        for enc in ([encoder] if encoder else encoder_names())
        for model in encoder_models(config, enc)
        for n in subset_sizes()
        for seed in subset_seeds()
    ]


def encoder_run_files(wildcards, file: str) -> list[str]:
    """One file of every (internal) run folder of the wildcards' encoder."""
    return [
        PATHS.run_file(wildcards.encoder, model, n, seed, file)
        for model in encoder_models(config, wildcards.encoder)
        for n in subset_sizes()
        for seed in subset_seeds()
    ]


def external_targets() -> list[str]:
    if not external_names():
        return []
    return [report_table("transfer"), *figure_files("transfer")]


# --- report ---


def report_table(key: str) -> str:
    return PATHS.report_table(key)


def figure_files(name: str) -> list[str]:
    return PATHS.figure_files(name, config["report"]["figures"]["formats"])


def report_figures() -> list[str]:
    return [path for name in figure_names(config) for path in figure_files(name)]


def figure_size_label(name: str) -> str:
    """The training-set size a figure shows, as the Snakemake report labels it."""
    settings = config["report"]["figures"]
    return {
        "learning_curves": "every size",
        "auroc_heatmap": str(settings["heatmap_size"]),
        "precision_recall": str(settings["heatmap_size"]),
        "training_curves": str(settings["training_curves"]["size"]),
        "sentiment_comparison": "every size",
        "transfer": "largest",
    }[name]


def summary_inputs() -> dict[str, str]:
    """What summary.md is written from: the aggregated tables and the cohort's counts. Not the
    figures: summary.md links them by name, so redrawing a figure does not rewrite it."""
    inputs = {key: report_table(key) for key in ("by_setting", "ci", "comparisons")}
    inputs.update(index_counts=PATHS.index_counts, index=PATHS.index, split=PATHS.split)
    inputs.update({f"cache_{name}": image_cache(name) for name in encoder_names()})
    if SENTIMENT["enabled"]:
        inputs["sentiment"] = report_table("sentiment")
    if external_names():
        inputs["transfer"] = report_table("transfer")
    return inputs


# --- sentiment ---

from probelab.layout import SENTIMENT_CELL_FILES
from probelab.sentiment.matrix import (
    FROZEN_METHODS,
    POOLINGS,
    cells as matrix_cells,
    methods as matrix_methods,
    poolings as matrix_poolings,
    reference_setting,
)

if SENTIMENT["enabled"]:
    # a reference the config does not run is refused here, before any job starts
    reference_setting(SENTIMENT)


def sentiment_encoder_names() -> list[str]:
    """The sentiment {model} wildcard values: one per configured encoder."""
    return [encoder["name"] for encoder in SENTIMENT["encoders"]]


def sentiment_poolings() -> list[str]:
    """The {pooling} wildcard values of the frozen-feature methods (sentiment.features.pooling)."""
    return matrix_poolings(SENTIMENT)


def sentiment_frozen_methods() -> list[str]:
    return [m for m in matrix_methods(SENTIMENT) if m in FROZEN_METHODS]


def sentiment_settings() -> list[tuple[str, str, str | None]]:
    """Every (method, encoder, pooling) the matrix trains; pooling None for fine-tuning."""
    settings = [
        (method, name, pooling)
        for method in sentiment_frozen_methods()
        for name in sentiment_encoder_names()
        for pooling in sentiment_poolings()
    ]
    if "finetune" in matrix_methods(SENTIMENT):
        settings += [("finetune", name, None) for name in sentiment_encoder_names()]
    return settings


def sentiment_cell_files(name: str) -> list[str]:
    """One file of every cell (size x seed) of every setting: the report's inputs."""
    return [
        SENT.cell_file(method, model, pooling, n, seed, name)
        for method, model, pooling in sentiment_settings()
        for n, seed in matrix_cells(SENTIMENT)
    ]


def sentiment_metrics() -> list[str]:
    return sentiment_cell_files("metrics.json")


def sentiment_frozen_outputs(method: str) -> dict[str, list[str]]:
    """A frozen-feature job's outputs: every cell's files, for one {model} and {pooling}."""
    return {
        Path(name).stem: [
            SENT.cell_file(method, "{model}", "{pooling}", n, seed, name)
            for n, seed in matrix_cells(SENTIMENT)
        ]
        for name in SENTIMENT_CELL_FILES[method]
    }


def sentiment_finetune_outputs() -> dict[str, str]:
    """A fine-tuning job's outputs (one cell), and its model folder when save_model is on."""
    outputs = {
        Path(name).stem: SENT.cell_file("finetune", "{model}", None, "{n}", "{seed}", name)
        for name in SENTIMENT_CELL_FILES["finetune"]
    }
    if SENTIMENT["finetune"]["save_model"]:
        outputs["model"] = directory(
            SENT.cell_file("finetune", "{model}", None, "{n}", "{seed}", "model")
        )
    return outputs


def sentiment_demo_files() -> list[str]:
    return [f"{SENT.demo_folder}/{split}.jsonl" for split in SPLITS]


def sentiment_data_inputs() -> list[str]:
    """The split files the sentiment rules read (none for a hub data set or a disabled track)."""
    if not SENTIMENT["enabled"]:
        return []
    return input_files(SENTIMENT["data"], SENT.demo_folder)


def sentiment_targets() -> list[str]:
    """Every final output of the sentiment track; empty when sentiment.enabled is false."""
    if not SENTIMENT["enabled"]:
        return []
    outputs = [SENT.explore_json, SENT.explore_figure]
    outputs += [SENT.inspect(name) for name in sentiment_encoder_names()]
    return outputs + sentiment_metrics()


def sentiment_expected_features(wildcards) -> dict:
    """The provenance the frozen-feature methods require of the features cache."""
    return expected_features(SENTIMENT, wildcards.model, wildcards.pooling)


def sentiment_model(wildcards) -> str:
    return configured_model(SENTIMENT["encoders"], wildcards.model)


def sentiment_method_folder(method: str):
    """A frozen-feature job's folder of cells (params function of {model}, {pooling})."""
    return lambda wildcards: SENT.method_folder(method, wildcards.model, wildcards.pooling)


def sentiment_data_folder(wildcards, input) -> str | None:
    """The folder of the split files a job got as input (None for a hub data set)."""
    return str(Path(input[0]).parent) if input else None
