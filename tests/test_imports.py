"""Jobs import only what they use: the bookkeeping rules' modules load no heavy library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
STEP_MODULES = sorted(
    path.stem
    for path in (SCRIPTS / "drg_workflow" / "modelling" / "steps").glob("*.py")
    if path.stem != "__init__"
)


def loaded(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=SCRIPTS, check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        # every stage's module of steps (the bookkeeping rules' scripts import them)
        *(
            (f"drg_workflow.modelling.steps.{stage}", {"sklearn", "mlflow", "optuna", "matplotlib"})
            for stage in STEP_MODULES
        ),
        # every MLflow call lives here; MLflow itself is imported where a call needs it
        ("drg_workflow.modelling.tracking", {"sklearn", "mlflow", "optuna"}),
        ("drg_workflow.versions", {"sklearn", "mlflow", "optuna", "matplotlib"}),
        # what every rule script reads its JSON inputs with
        ("drg_workflow.documents", {"pandas", "pyarrow", "numpy", "sklearn", "mlflow", "optuna"}),
        # the report_* figure jobs
        ("drg_workflow.report.figures", {"sklearn", "mlflow", "optuna"}),
        ("drg_workflow.report.tables", {"sklearn", "mlflow", "optuna"}),
    ],
)
def test_module_imports_no_heavy_library(module, absent):
    assert not loaded(module) & absent


def package_imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at its top or inside a function (an import
    inside a function still ties the two modules together; only imports of a parent package
    are left out, since importing a module imports its package first anyway)."""
    modules = {}
    for path in (SCRIPTS / "drg_workflow").rglob("*.py"):
        parts = path.relative_to(SCRIPTS).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if modules[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, *([node.module] if node.module else [])])
        return [f"{base}.{alias.name}" for alias in node.names]

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in imported(module, node):
                    while name and name not in modules:  # a name imported from a module
                        name = name.rpartition(".")[0]
                    if name and name != module and not module.startswith(f"{name}."):
                        graph[module].add(name)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others."""
    reaches = {module: set(targets) for module, targets in graph.items()}
    changed = True
    while changed:
        changed = False
        for targets in reaches.values():
            more = set().union(*(reaches[t] for t in targets)) - targets
            if more:
                targets |= more
                changed = True
    cycles = {
        tuple(sorted(m for m in graph if m == module or (m in targets and module in reaches[m])))
        for module, targets in reaches.items()
        if module in targets
    }
    return sorted(list(cycle) for cycle in cycles)


def test_the_package_has_no_import_cycles():
    """Imports point one way (down): no module of drg_workflow imports, directly or through
    others, a module that imports it, not even inside a function."""
    graph = package_imports()
    assert graph["drg_workflow.modelling.target_form"]  # the graph sees relative imports
    assert import_cycles(graph) == []


def test_import_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
