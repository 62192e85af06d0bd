"""Config validation: defaults filled in, one sentence naming the bad key, shipped configs valid."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO

from probelab.config import ConfigError, config_hash, load_config, validate_config


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid_and_gets_defaults():
    config = validate_config(default_config())
    assert config["split"]["fractions"] == {"train": 0.7, "val": 0.1, "test": 0.2}
    assert config["data"]["extensions"] == [".png", ".jpg", ".jpeg"]
    assert config["subsets"]["no_finding_share"] == 0.2


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    load_config(path)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["subsets"].__setitem__("sizes", [50, -3]), "subsets.sizes[1]"),
        (lambda c: c["split"].__setitem__("method", "stratified"), "split.method"),
        (lambda c: c["demo"].__setitem__("image_size", "big"), "demo.image_size"),
        (lambda c: c.__setitem__("pathologies", []), "pathologies"),
        (lambda c: c["data"].__setitem__("colour", True), "data"),
    ],
)
def test_invalid_value_names_the_key(mutate, key):
    config = default_config()
    mutate(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert f"'{key}'" in message
    assert message.count("\n") == 0


def test_fractions_must_sum_to_one():
    config = default_config()
    config["split"] = {"method": "random", "fractions": {"train": 0.7, "val": 0.2, "test": 0.2}}
    with pytest.raises(ConfigError, match="split.fractions.*sum to 1"):
        validate_config(config)


def test_config_hash_is_stable_and_sensitive():
    a = validate_config(default_config())
    b = validate_config(default_config())
    assert config_hash(a) == config_hash(b)
    c = copy.deepcopy(a)
    c["split"]["seed"] = 99
    assert config_hash(c) != config_hash(a)
