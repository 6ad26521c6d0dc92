"""Jobs import only what they use: the bookkeeping rules' modules load no heavy library."""

from __future__ import annotations

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
        # the report_* figure jobs
        ("drg_workflow.report.figures", {"sklearn", "mlflow", "optuna"}),
        ("drg_workflow.report.tables", {"sklearn", "mlflow", "optuna"}),
    ],
)
def test_module_imports_no_heavy_library(module, absent):
    assert not loaded(module) & absent
