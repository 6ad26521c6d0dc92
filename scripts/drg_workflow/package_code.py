"""The part of the drg_workflow package a logged model needs to load where the workflow is not.

MLflow copies a model's ``code_paths`` into the model's artifacts, one file per module, and
downloads them one by one when the model is loaded: from a tracking server every file is an
authenticated request. A model holds a few classes of this package (the target-form wrapper,
the imputer), and those import a dozen of its 50 modules, so only that closure is logged with it.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable
from pathlib import Path

#: The package's root directory (scripts/drg_workflow).
PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name


def module_file(module: str) -> Path:
    """The source file of a module of this package (``drg_workflow.modelling`` ->
    ``.../drg_workflow/modelling/__init__.py``)."""
    parts = module.split(".")[1:]
    path = PACKAGE_DIR.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imported_modules(module: str) -> set[str]:
    """The modules of this package that ``module``'s source imports anywhere (top level,
    functions, type-checking blocks alike: a superset is safe), with their parent packages."""
    path = module_file(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base)
                stem = f"{base_name}.{node.module}" if node.module else base_name
            else:
                stem = node.module or ""
            # `from pkg import name`: name may be a module of pkg or an attribute of it.
            names = [stem, *(f"{stem}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] != PACKAGE:
                continue
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if module_file(candidate).exists():
                    found.add(candidate)
    return found


def module_closure(modules: Iterable[str]) -> set[str]:
    """``modules`` (of this package) and every module of the package they import, directly or
    not, with each one's parent packages (whose ``__init__`` runs on import)."""
    pending = [m for m in modules if m.split(".")[0] == PACKAGE]
    closure: set[str] = set()
    while pending:
        module = pending.pop()
        if module in closure:
            continue
        closure.add(module)
        parts = module.split(".")
        parents = {".".join(parts[:end]) for end in range(1, len(parts))}
        pending.extend((_imported_modules(module) | parents) - closure)
    return closure


def copy_modules(modules: Iterable[str], destination: Path) -> Path:
    """Copy the source files of ``modules`` into ``destination/drg_workflow/...`` (the package's
    layout) and return that package directory, for a model's ``code_paths``."""
    for module in sorted(modules):
        source = module_file(module)
        target = destination / source.relative_to(PACKAGE_DIR.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return destination / PACKAGE
