"""Config loading: JSON-schema validation with defaults filled in, and one-sentence errors."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
MAIN_SCHEMA = "config.schema.yaml"
# Config mappings whose key order means something (the order encoders appear in the report).
ORDERED_MAPPINGS = ("encoders",)


class ConfigError(ValueError):
    """An invalid configuration; the message names the key and what was expected."""


def _load_registry(schema_dir: Path) -> Registry:
    resources = []
    for path in sorted(schema_dir.glob("*.schema.yaml")):
        contents = yaml.safe_load(path.read_text())
        resources.append(
            (path.name, Resource.from_contents(contents, default_specification=_spec()))
        )
    return Registry().with_resources(resources)


def _spec():
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def _with_defaults(validator_class: type) -> type:
    """Extend a validator so that validating also fills in each missing property's default."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "$ref" in subschema and "default" not in subschema:
                    subschema = validator._resolver.lookup(subschema["$ref"]).contents
                if name not in instance and "default" in subschema:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_FillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    key = ""
    for part in error.absolute_path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator in ("anyOf", "oneOf") and "description" in error.schema:
        expected = error.schema["description"]
    elif error.validator == "additionalProperties":
        return f"config key '{_key_path(error)}' has {error.message.lower().rstrip('.')}"
    else:
        expected = error.message
    described = error.schema.get("description") if isinstance(error.schema, dict) else None
    hint = f" ({described})" if described and described != expected else ""
    return f"config key '{_key_path(error)}' is invalid: {expected}{hint}."


def validate_config(config: dict[str, Any], schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """Validate `config` in place against the schema, fill in defaults, and return it.

    Raises ConfigError with one sentence naming the first offending key.
    """
    _inherit_ablation_settings(config)
    _generated_external_roots(config)
    registry = _load_registry(schema_dir)
    schema = registry.contents(MAIN_SCHEMA)
    validator = _FillingValidator(schema, registry=registry)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_describe(error))
    check_config(config)
    _sort_keys_in_place(config)
    return config


def _sort_keys_in_place(mapping: dict[str, Any], path: str = "") -> None:
    """Sort every mapping's keys, in place, so that the same settings written in another order
    give identical rule params (Snakemake compares params by their repr, which follows key
    order). The encoders keep the config's order: it is the report's order."""
    items = list(mapping.items()) if path in ORDERED_MAPPINGS else sorted(mapping.items())
    mapping.clear()
    for key, value in items:
        if isinstance(value, dict):
            _sort_keys_in_place(value, f"{path}.{key}" if path else key)
        mapping[key] = value


def check_config(config: dict[str, Any]) -> None:
    """Rules across keys that a JSON schema cannot express, checked once after the schema and
    before any job runs. Raises ConfigError with one sentence naming the key."""
    _check_split(config)
    _check_data(config)
    _check_external(config)
    _check_demo(config)
    _check_pretrain(config)
    _check_image_only_backends(config)
    _check_prompt_models(config)
    _check_report(config)


def _check_image_only_backends(config: dict[str, Any]) -> None:
    """torchxrayvision's classifiers have no text tower, and the workflow does not build them."""
    for name, settings in (config.get("encoders") or {}).items():
        if settings["backend"] != "torchxrayvision":
            continue
        if settings.get("text", True):
            raise ConfigError(
                f"config key 'encoders.{name}.text' must be false: torchxrayvision models have no "
                "text tower (the models that read prompts are then skipped for this encoder)."
            )
        if settings.get("build_from"):
            raise ConfigError(
                f"config key 'encoders.{name}.build_from' is for demo CLIPs; a torchxrayvision "
                "encoder names its weights in model."
            )


def _check_pretrain(config: dict[str, Any]) -> None:
    """Only an encoder the workflow builds can be pretrained, on its text, with a loss its
    architecture has the parameters for."""
    for name, settings in (config.get("encoders") or {}).items():
        pretrain = settings.get("pretrain")
        if not pretrain:
            continue
        key = f"encoders.{name}.pretrain"
        if not settings.get("build_from"):
            raise ConfigError(
                f"config key '{key}' is set, but encoder {name} has no build_from: only an "
                "encoder the workflow builds from an architecture file can be pretrained."
            )
        if not settings.get("text", True):
            raise ConfigError(
                f"config key '{key}' is set, but encoders.{name}.text is false: pretraining "
                "pairs images with captions, so it needs the text tower."
            )
        if pretrain["loss"] == "siglip" and settings["backend"] != "open_clip":
            raise ConfigError(
                f"config key '{key}.loss' is siglip, but encoder {name} is a Transformers CLIP, "
                "which has no logit bias; use loss clip, or backend open_clip."
            )


def check_paths(config: dict[str, Any]) -> None:
    """The checks that look at the file system, before any job runs: a real cohort's data
    folder exists, and a real external cohort's (a demo cohort's is written by the workflow)."""
    roots = {} if config.get("demo", {}).get("enabled") else {"data.root": config["data"]["root"]}
    for name, external in (config.get("external") or {}).items():
        if not external["demo"]["enabled"]:
            roots[f"external.{name}.data.root"] = external["data"]["root"]
    for key, root in roots.items():
        if not Path(root).is_dir():
            raise ConfigError(
                f"config key {key!r} is {str(root)!r}, which is not a folder (relative paths are "
                f"read from the working directory {Path.cwd()}); point it at the data set."
            )


def enabled_models(config: dict[str, Any]) -> list[str]:
    """The configured and enabled probe models, in the report's order."""
    from probelab.models import MODELS

    configured = config.get("models") or {}
    return [name for name in MODELS if configured.get(name, {}).get("enabled", False)]


def encoder_models(config: dict[str, Any], encoder: str) -> list[str]:
    """The enabled models that run on `encoder`: all of them, except that an encoder without a
    text tower (`text: false`) skips the models that read prompt embeddings."""
    from probelab.models import needs_prompts

    has_text = (config.get("encoders") or {}).get(encoder, {}).get("text", True)
    return [model for model in enabled_models(config) if has_text or not needs_prompts(model)]


def skipped_models(config: dict[str, Any]) -> dict[str, list[str]]:
    """Encoder -> the enabled models it skips for lack of a text tower (only encoders that skip
    any)."""
    skipped = {}
    for encoder in config.get("encoders") or {}:
        kept = encoder_models(config, encoder)
        missing = [model for model in enabled_models(config) if model not in kept]
        if missing:
            skipped[encoder] = missing
    return skipped


def generated_external_root(cohort: str, name: str) -> str:
    """Where rule demo_external_cohort writes a generated external cohort (probelab.layout)."""
    from probelab.layout import CohortLayout

    return CohortLayout(cohort, name).external_data


def _generated_external_roots(config: dict[str, Any]) -> None:
    """Before validation: a generated external cohort's data.root, when not given, is the folder
    rule demo_external_cohort writes (it follows the cohort name)."""
    for name, external in (config.get("external") or {}).items():
        if isinstance(external, dict) and (external.get("demo") or {}).get("enabled"):
            data = external.setdefault("data", {})
            if isinstance(data, dict) and isinstance(config.get("cohort"), str):
                data.setdefault("root", generated_external_root(config["cohort"], name))


def _inherit_ablation_settings(config: dict[str, Any]) -> None:
    """Before validation: a prompt-ablation control (probelab.models.ABLATIONS) takes every
    setting it does not give from its fusion model's section, so that it trains exactly like it
    (`_check_prompt_models` refuses a setting given with another value)."""
    from probelab.models import ABLATIONS

    models = config.get("models")
    if not isinstance(models, dict):
        return
    for control, fusion in ABLATIONS.items():
        section, source = models.get(control), models.get(fusion)
        if isinstance(section, dict) and isinstance(source, dict):
            for key, value in source.items():
                if key != "enabled":
                    section.setdefault(key, copy.deepcopy(value))


def _check_split(config: dict[str, Any]) -> None:
    fractions = config.get("split", {}).get("fractions", {})
    if fractions and config["split"]["method"] == "random":
        total = sum(fractions.values())
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(
                "config key 'split.fractions' is invalid: train + val + test must sum to 1, "
                f"got {total:g}."
            )


def _check_external(config: dict[str, Any]) -> None:
    pathologies = config.get("pathologies", [])
    for name, external in config.get("external", {}).items():
        unknown = [p for p in external.get("pathologies") or [] if p not in pathologies]
        if unknown:
            raise ConfigError(
                f"config key 'external.{name}.pathologies' lists {unknown[0]!r}, which is not in "
                "'pathologies': an external cohort is scored on the training cohort's labels."
            )
        _check_data({**config, "data": external.get("data", {})}, f"external.{name}.data")
        generated = generated_external_root(config["cohort"], name)
        root = external.get("data", {}).get("root")
        if external.get("demo", {}).get("enabled") and root != generated:
            raise ConfigError(
                f"config key 'external.{name}.data.root' must be {generated!r} when "
                f"external.{name}.demo.enabled is true (rule demo_external_cohort writes there)."
            )


def _check_data(config: dict[str, Any], key: str = "data") -> None:
    data = config.get("data", {})
    columns = data.get("format") == "csv" and data.get("csv", {}).get("label_mode") == "columns"
    for policy in ("uncertain", "blank"):
        if data.get(policy) is not None and not columns:
            raise ConfigError(
                f"config key '{key}.{policy}' applies to label tables with one column per label "
                "(data.format: csv with data.csv.label_mode: columns); remove it or use that mode."
            )
    pattern = data.get("csv", {}).get("patient_pattern")
    if pattern is not None:
        try:
            groups = re.compile(pattern).groups
        except re.error as error:
            raise ConfigError(
                f"config key '{key}.csv.patient_pattern' {pattern!r} is not a regular expression "
                f"({error})."
            ) from None
        if groups < 1:
            raise ConfigError(
                f"config key '{key}.csv.patient_pattern' {pattern!r} needs a group, such as "
                "'(patient\\d+)', around the patient id."
            )
    no_finding = config.get("no_finding_label")
    if no_finding in config.get("pathologies", []):
        raise ConfigError(
            f"config key 'no_finding_label' {no_finding!r} is also listed in 'pathologies'."
        )


def _check_demo(config: dict[str, Any]) -> None:
    demo = config.get("demo", {})
    if demo.get("rgba_fraction", 0) + demo.get("sixteen_bit_fraction", 0) > 1:
        raise ConfigError(
            "config keys 'demo.rgba_fraction' + 'demo.sixteen_bit_fraction' must not exceed 1."
        )


def _check_prompt_models(config: dict[str, Any]) -> None:
    """A prompt-ablation control must train exactly like its fusion model: same settings, only
    the mega-vector replaced. (Encoders without a text tower skip every model that reads prompt
    embeddings: `encoder_models`.)"""
    from probelab.models import ABLATIONS

    models = config.get("models") or {}
    for control, fusion in ABLATIONS.items():
        if control not in models or fusion not in models:
            continue
        for key, value in models[control].items():
            if key in ("enabled", "replacement") or models[fusion].get(key) == value:
                continue
            raise ConfigError(
                f"config key 'models.{control}.{key}' is {value!r}, but the prompt-ablation "
                f"control must train exactly like models.{fusion} ({key} "
                f"{models[fusion].get(key)!r}); leave the key out, it is copied from there."
            )


def _check_report(config: dict[str, Any]) -> None:
    report = config.get("report")
    if not report:
        return
    plotted = report["figures"]["learning_curve_metrics"]
    missing = [metric for metric in plotted if metric not in report["bootstrap"]["metrics"]]
    if missing:
        raise ConfigError(
            "config key 'report.figures.learning_curve_metrics' is invalid: "
            f"{', '.join(missing)} must also be listed in report.bootstrap.metrics, which gives "
            "the learning curves their confidence bands."
        )
    models = enabled_models(config)
    reference = report["comparisons"]["reference"]
    if models and reference not in models:
        raise ConfigError(
            f"config key 'report.comparisons.reference' is invalid: model '{reference}' is not "
            f"run (enabled models: {', '.join(models)}); name one of them."
        )


def load_config(path: str | Path, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """Read a YAML config file and validate it (defaults filled in)."""
    with open(path) as handle:
        config = yaml.safe_load(handle) or {}
    if not isinstance(config, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys, got {type(config).__name__}."
        )
    return validate_config(config, schema_dir)


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a (validated) config, for provenance."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
