# Helpers of the embed stage (config lookups, cache paths), kept apart from the rules so that
# `snakemake --lint` stays clean; the probe and report stages call encoder_names(),
# encoder_has_text(), image_cache() and prompt_cache().
def encoder_names() -> list[str]:
    """Every configured encoder, in config order."""
    return list(config["encoders"])


def encoder_has_text(name: str) -> bool:
    """Whether the encoder has a usable text tower (prompt fusion and zero-shot need one)."""
    return bool(config["encoders"][name]["text"])


def image_cache(encoder: str) -> str:
    return f"{RESULTS}/embeddings/{encoder}.h5"


def prompt_cache(encoder: str) -> str:
    return f"{RESULTS}/prompts/{encoder}.h5"


def built_encoder_names() -> list[str]:
    """Encoders whose model rule make_demo_encoder builds from a JSON file (build_from)."""
    return [name for name in encoder_names() if config["encoders"][name]["build_from"]]


def built_encoder_dir(encoder: str) -> str:
    return f"{RESULTS}/encoders/{encoder}"


def encoder_settings(wildcards) -> dict:
    """The encoder's config entry, with the model folder filled in for build_from encoders."""
    settings = dict(config["encoders"][wildcards.encoder])
    if settings["build_from"]:
        settings["model"] = built_encoder_dir(wildcards.encoder)
    return settings


def encoder_files(wildcards) -> list[str]:
    """Local model files and folders, as inputs, so that changing them reruns the embedding."""
    settings = config["encoders"][wildcards.encoder]
    if settings["build_from"]:
        return [built_encoder_dir(wildcards.encoder)]
    candidates = [settings["model"], settings["pretrained"] or ""]
    return [path for path in candidates if path and Path(path).exists()]


def encoder_gpus(wildcards) -> int:
    """GPUs an embedding job asks the scheduler for: one when the encoder's device is cuda.

    With device auto the job uses a GPU if the node has one; the SLURM profile's set-resources
    asks for it there (docs/cluster.md).
    """
    return int(config["encoders"][wildcards.encoder]["device"] == "cuda")
