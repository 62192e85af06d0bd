"""Step scripts are thin adapters over package functions, and only the package is imported.

Each scripts/<step>.py defines nothing but `main()` (its shell entry, built by
probelab.cli.command_line) and the Snakemake adapter; tests, benchmarks and tools import the
package, never a script, so that logic has one home.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPTS = sorted((REPO / "scripts").glob("*.py"))
STEP_NAMES = {path.stem for path in SCRIPTS}
CALLERS = sorted(
    path for folder in ("tests", "benchmarks", "tools") for path in (REPO / folder).rglob("*.py")
)


def test_there_are_step_scripts():
    assert {"train_probe", "embed_images", "summary", "sentiment_svm"} <= STEP_NAMES


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_script_is_a_thin_adapter(script):
    tree = ast.parse(script.read_text())
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    ]
    assert defined == ["main"], f"{script.name} defines {defined}; logic belongs in probelab"
    imported = {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "probelab" in imported
    assert "from probelab.cli import command_line, snakemake_job" in script.read_text()


@pytest.mark.parametrize("caller", CALLERS, ids=lambda path: str(path.relative_to(REPO)))
def test_tests_benchmarks_and_tools_import_only_the_package(caller):
    tree = ast.parse(caller.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    assert not modules & STEP_NAMES, f"{caller.name} imports step script(s) {modules & STEP_NAMES}"


@pytest.mark.workflow
def test_every_script_answers_help():
    # One interpreter for all scripts: importing the package once keeps this fast.
    code = (
        "import runpy, sys\n"
        "for path in sys.argv[1:]:\n"
        "    sys.argv = [path, '--help']\n"
        "    try:\n"
        "        runpy.run_path(path, run_name='__main__')\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (path, exit.code)\n"
        "    else:\n"
        "        raise AssertionError(f'{path} --help did not exit')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("usage:") == len(SCRIPTS)
