"""The software environments: one source of truth for versions, and every rule's environment
holding what its script imports.

- ``requirements.txt`` / ``requirements-dev.txt`` (pip), ``environment.yaml`` (conda, for users)
  and the rules' ``workflow/envs/*.yaml`` (``--sdm conda``) pin the same exact versions;
- every rule that runs something has a ``conda:`` environment;
- every third-party module a rule's script imports, directly or through the ``drg_workflow``
  package (transitively, imports inside functions included), is a package of that environment.

Conda channels cannot be reached from the build machines, so the environments are not created
here (docs/cluster.md); these checks are what stands in for that.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SNAKEFILE
from workflow_rules import rule_file, workflow_rules

ENVS = sorted((ROOT / "workflow" / "envs").glob("*.yaml"))
ENVIRONMENT_YAML = ROOT / "environment.yaml"
REQUIREMENTS = [ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]
SCRIPTS = ROOT / "scripts"
PACKAGE = "drg_workflow"
#: Packages every environment has without a pin of ours.
UNPINNED = {"python", "pip"}
#: Import names that differ from their package's name; any other is looked up with
#: importlib.metadata.packages_distributions() (e.g. mpl_toolkits -> matplotlib).
IMPORT_TO_PACKAGE = {"sklearn": "scikit-learn", "yaml": "pyyaml"}


def normalise(name: str) -> str:
    """A package name as pip compares them: lower case, runs of -_. as one -, no extras."""
    return re.sub(r"[-_.]+", "-", name.split("[")[0].strip().lower())


def parse_pin(spec: str) -> tuple[str, str | None]:
    """'pandas==3.1.1' / 'pandas=3.1.1' / 'moto[server]==5.2.5' / 'pip' -> (name, version)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*(?:(==|=|>=|<=|~=|>|<)\s*(\S+))?\s*", spec)
    assert match, f"cannot read the dependency {spec!r}"
    name, operator, version = match.groups()
    if operator not in (None, "==", "="):
        version = f"{operator}{version}"
    return normalise(name), version


def requirement_pins() -> dict[str, tuple[str | None, str]]:
    """name -> (version, where) of every line of requirements*.txt."""
    pins: dict[str, tuple[str | None, str]] = {}
    for path in REQUIREMENTS:
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if not line or line.startswith("-"):
                continue
            name, version = parse_pin(line)
            assert name not in pins, f"{name} is listed twice ({pins[name][1]}, {path.name})"
            pins[name] = (version, path.name)
    return pins


def env_pins(path: Path) -> dict[str, str | None]:
    """name -> version of every conda and pip dependency of a conda environment file."""
    document = yaml.safe_load(path.read_text())
    pins: dict[str, str | None] = {}
    for dependency in document["dependencies"]:
        specs = dependency["pip"] if isinstance(dependency, dict) else [dependency]
        for spec in specs:
            name, version = parse_pin(spec)
            assert name not in pins, f"{path.name}: {name} is listed twice"
            pins[name] = version
    return pins


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ------------------------------------------------------------------------------ pins


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_rule_environments_are_small_pinned_and_conda_forge_only(path):
    document = yaml.safe_load(path.read_text())
    assert document["channels"] == ["conda-forge", "nodefaults"], relative(path)
    pins = env_pins(path)
    assert pins.get("python") == "3.11", f"{relative(path)}: python=3.11"
    # Exact versions in the file itself (Snakemake hashes this file, not files it includes).
    assert not any(isinstance(d, dict) for d in document["dependencies"]), "no pip section"
    loose = {name: v for name, v in pins.items() if name not in UNPINNED and not v}
    assert loose == {}, f"{relative(path)}: unpinned {sorted(loose)}"
    exact = re.compile(r"\d+(\.\d+)+")
    inexact = {n: v for n, v in pins.items() if n not in UNPINNED and not exact.fullmatch(v)}
    assert inexact == {}, f"{relative(path)}: not an exact version: {inexact}"


def test_pins_agree_across_requirements_and_environments():
    requirements = requirement_pins()
    environment = env_pins(ENVIRONMENT_YAML)
    disagreements = []
    # environment.yaml carries every requirement with the same version ...
    for name, (version, where) in requirements.items():
        if environment.get(name, "missing") != version:
            disagreements.append(
                f"{name}: {where} {version}, environment.yaml {environment.get(name, 'missing')}"
            )
    # ... and the rules' environments pin nothing that requirements*.txt pins differently (or
    # not at all: one source of truth).
    for path in [ENVIRONMENT_YAML, *ENVS]:
        for name, version in env_pins(path).items():
            if name in UNPINNED:
                continue
            wanted = requirements.get(name, ("missing from requirements*.txt", ""))[0]
            if version != wanted:
                disagreements.append(f"{name}: {relative(path)} {version}, requirements {wanted}")
    python = {relative(p): env_pins(p).get("python") for p in [ENVIRONMENT_YAML, *ENVS]}
    if len(set(python.values())) != 1:
        disagreements.append(f"python: {python}")
    assert disagreements == []


# ------------------------------------------------------------------- rules and imports


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> list[dict]:
    """Every rule of the workflow parsed by Snakemake with the repository's configuration."""
    workdir = tmp_path_factory.mktemp("rules")
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text((ROOT / "config" / "config.yaml").read_text())
    return workflow_rules(SNAKEFILE, workdir)


def test_every_rule_that_runs_something_has_a_conda_environment_and_a_script(rules):
    assert len(rules) > 20
    missing = [rule["name"] for rule in rules if rule["runs"] and not rule["conda"]]
    assert missing == []
    # Its script, beside it: run as script: does under a software deployment method.
    scriptless = [rule["name"] for rule in rules if rule["runs"] and not rule["script"]]
    assert scriptless == []
    for rule in rules:
        if rule["script"]:
            assert rule_file(rule, "script").is_file(), rule
    for rule in rules:
        if rule["conda"]:
            env = Path(rule["snakefile"]).parent / rule["conda"]
            assert env.resolve() in [e.resolve() for e in ENVS], (rule["name"], rule["conda"])


def _module_file(module: str) -> Path | None:
    """The file of a module of the drg_workflow package (a package's __init__.py)."""
    path = SCRIPTS.joinpath(*module.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    return None


def third_party_imports(script: Path) -> dict[str, str]:
    """Top-level third-party module -> the file importing it first, for ``script`` and every
    module of the drg_workflow package it imports, transitively (any import statement counts,
    inside functions too: the environment must hold whatever the code may import)."""
    found: dict[str, str] = {}
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        in_package = path.is_relative_to(SCRIPTS / PACKAGE)
        package = ".".join(path.relative_to(SCRIPTS).parent.parts) if in_package else ""
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == PACKAGE:
                    # The module and every package on its way (their __init__ runs too).
                    parts = module.split(".")
                    for i in range(1, len(parts) + 1):
                        file = _module_file(".".join(parts[:i]))
                        if file is not None:
                            todo.append(file)
                elif top and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, relative(path))
    return found


@functools.cache
def packages_of(module: str) -> frozenset[str]:
    """The (normalised) names of the packages that provide an import name (``mlflow`` comes
    from mlflow or mlflow-skinny: either listed will do)."""
    if module in IMPORT_TO_PACKAGE:
        return frozenset([IMPORT_TO_PACKAGE[module]])
    distributions = _installed_distributions().get(module) or [module]
    return frozenset(map(normalise, distributions))


@functools.cache
def _installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def test_import_scan_follows_the_package():
    """The scanner itself: relative imports, imports in functions, package __init__ files."""
    assert {"pandas", "pyarrow"} <= set(third_party_imports(SCRIPTS / "ingest_raw.py"))
    assert packages_of("sklearn") == {"scikit-learn"} and packages_of("yaml") == {"pyyaml"}
    assert "mlflow" in packages_of("mlflow")


def test_every_rule_script_imports_only_what_its_environment_lists(rules):
    problems = []
    checked = 0
    for rule in rules:
        if not rule["script"]:
            continue
        folder = Path(rule["snakefile"]).parent
        script = (folder / rule["script"]).resolve()
        if not rule["conda"]:
            problems.append(f"rule {rule['name']}: no conda environment")
            continue
        env = (folder / rule["conda"]).resolve()
        listed = set(env_pins(env))
        for module, where in sorted(third_party_imports(script).items()):
            if not packages_of(module) & listed:
                problems.append(
                    f"rule {rule['name']}: {where} imports {module} "
                    f"(package {' or '.join(sorted(packages_of(module)))}), not in {relative(env)}"
                )
        checked += 1
    assert checked > 20
    assert problems == []
