"""Jobs import only what they use: the bookkeeping rules' modules load no heavy library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def loaded(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=SCRIPTS, check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        # split_years, compare_models, evaluate_baseline's and every step's module
        ("drg_workflow.modelling.steps", {"sklearn", "mlflow", "optuna", "matplotlib"}),
        # every MLflow call lives here; MLflow itself is imported where a call needs it
        ("drg_workflow.modelling.tracking", {"sklearn", "mlflow", "optuna"}),
        ("drg_workflow.versions", {"sklearn", "mlflow", "optuna", "matplotlib"}),
        # the report_* figure jobs
        ("drg_workflow.report.figures", {"sklearn", "mlflow", "optuna"}),
        ("drg_workflow.report.tables", {"sklearn", "mlflow", "optuna"}),
    ],
)
def test_module_imports_no_heavy_library(module, absent):
    assert not loaded(module) & absent


@pytest.mark.parametrize(
    "modules",
    [
        ["drg_workflow.modelling.target_form", "drg_workflow.modelling.imputation"],
        ["drg_workflow.modelling.steps"],
        ["drg_workflow.report.figures"],
    ],
)
def test_the_code_logged_with_a_model_is_what_its_modules_import(modules):
    """The static closure of package_code (what a logged model carries) holds every module of
    the package that importing ``modules`` loads (it may hold more: imports inside functions)."""
    from drg_workflow.package_code import module_closure

    code = f"import sys, {', '.join(modules)}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=SCRIPTS, check=True, capture_output=True, text=True
    ).stdout
    imported = {name for name in out.split() if name.split(".")[0] == "drg_workflow"}
    closure = module_closure(modules)
    assert imported <= closure
    if modules[0].endswith("target_form"):  # what a model carries: no more than it loads
        assert closure == imported
