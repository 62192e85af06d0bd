"""The docs follow the code: every rule and every output file of the default DAG is described in
docs/architecture.md, and docs/rulegraph.md is what `snakemake --rulegraph` draws today."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, checkout_workdir, run_snakemake

pytestmark = pytest.mark.workflow

ARCHITECTURE = REPO / "docs" / "architecture.md"
RULEGRAPH = REPO / "docs" / "rulegraph.md"


def _snakemake(workdir: Path, *args: str) -> str:
    """Snakemake on the default config in an empty working directory: the DAG of a fresh
    checkout, whatever `make run` left in this one."""
    result = run_snakemake(checkout_workdir(workdir), *args, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _generic(path: str, config: dict) -> str:
    """A concrete output path of the demo DAG as the docs write it: wildcards for the values."""
    names = {
        **{name: "{encoder}" for name in config["encoders"]},
        **{name: "{model}" for name in config["models"]},
        **{e["name"]: "{model}" for e in config["sentiment"]["encoders"]},
    }
    parts = []
    for part in Path(path).parts:
        stem, dot, suffix = part.partition(".")
        stem = names.get(stem, stem)
        stem = re.sub(r"^n(\d+|all)$", "n{n}", stem)
        stem = re.sub(r"^seed\d+$", "seed{seed}", stem)
        stem = re.sub(r"^[0-9a-f]{12}$", "{fingerprint}", stem)
        parts.append(stem + dot + suffix)
    return "/".join(parts)


def test_every_rule_and_output_file_is_in_the_architecture_page(tmp_path):
    text = ARCHITECTURE.read_text()
    rules = _snakemake(tmp_path / "rules", "--list-rules").split()
    assert "train_probe" in rules and "summary" in rules
    missing_rules = [rule for rule in rules if f"`{rule}`" not in text]
    assert not missing_rules, f"rules not described in docs/architecture.md: {missing_rules}"

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    rows = _snakemake(tmp_path / "summary", "--detailed-summary").splitlines()[1:]
    outputs = {_generic(row.split("\t")[0], config) for row in rows if "\t" in row}
    assert len(outputs) > 20
    # a file is described when its name (with wildcards) appears on the page
    missing = sorted(path for path in outputs if Path(path).name not in text)
    assert not missing, f"output files not described in docs/architecture.md: {missing}"


def test_rulegraph_page_is_current(tmp_path):
    drawn = _snakemake(tmp_path, "--rulegraph", "mermaid-js").strip().splitlines()
    page = RULEGRAPH.read_text().split("```mermaid\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(drawn) > 40
    # snakemake lists the edges in no fixed order: compare the graph, not the listing
    assert sorted(drawn) == sorted(page), "docs/rulegraph.md is stale: run `make docs`"
