"""One style for the whole project, checked by the tools `make lint` runs: ruff (lint and format,
line length 100) on the Python side, snakefmt and `snakemake --lint` on the rules."""

from __future__ import annotations

import subprocess

import pytest
from conftest import REPO, SNAKEMAKE, checkout_workdir, run_snakemake


def _tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SNAKEMAKE.with_name(name)), *args], cwd=REPO, capture_output=True, text=True
    )


def test_ruff_lint_is_clean():
    result = _tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout[-3000:]


def test_python_is_ruff_formatted():
    result = _tool("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-3000:]


def test_rule_files_are_snakefmt_formatted():
    result = _tool("snakefmt", "--check", "Snakefile", "rules/")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.workflow
def test_snakemake_lint_is_clean(tmp_path):
    result = run_snakemake(checkout_workdir(tmp_path), "--lint")
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Congratulations" in output, output[-4000:]
