"""Shared fixtures: running the real workflow with Snakemake in a scratch directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
#: The small test configurations (.test/config-<name>/config.yaml), as the catalogue keeps them.
TEST_CONFIGS = ROOT / ".test"


def load_test_config(name: str) -> dict:
    """A fresh copy of ``.test/config-<name>/config.yaml`` (raw file paths relative to .test)."""
    return yaml.safe_load((TEST_CONFIGS / f"config-{name}" / "config.yaml").read_text())


#: The small end-to-end configuration (.test/config-basic): a few thousand synthetic rows,
#: thresholds scaled to match, three tiny models. Copy it before changing it.
SMALL_CONFIG: dict = load_test_config("basic")


#: A user's own Snakefile using this checkout as a Snakemake module (what snakedeploy writes,
#: with a local path instead of github(...); docs/deploying-as-a-module.md).
MODULE_SNAKEFILE = """\
configfile: "config/config.yaml"


module drg_workflow:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from drg_workflow
"""


def deploy_as_module(workdir: Path, config: dict) -> None:
    """Make ``workdir`` a user's directory that uses this workflow as a module: its own
    ``config/config.yaml``, ``workflow/Snakefile`` and a copy of the workflow profile."""
    write_config(workdir, config)
    (workdir / "workflow").mkdir(parents=True, exist_ok=True)
    (workdir / "workflow" / "Snakefile").write_text(MODULE_SNAKEFILE.format(snakefile=SNAKEFILE))
    shutil.copytree(ROOT / "workflow" / "profiles", workdir / "workflow" / "profiles")


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command line running the workflow with ``workdir`` as working dir: the repository's
    Snakefile, or the user's own where ``workdir`` uses it as a module (deploy_as_module)."""
    own = workdir / "workflow" / "Snakefile"
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(own if own.exists() else SNAKEFILE),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--nolock",
        *args,
    ]


def copy_of_the_workflow(checkout: Path) -> Path:
    """A copy of the workflow's code (workflow/, scripts/, profiles/) at ``checkout``, for a
    test that edits it as a developer would (the adding-a-... guides)."""
    for part in ("workflow", "scripts", "profiles"):
        shutil.copytree(ROOT / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    return checkout


def snakemake_in_copy(checkout: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the Snakefile of a copy of the workflow (:func:`copy_of_the_workflow`) in
    ``workdir`` on 2 cores."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(checkout / "workflow/Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def write_config(workdir: Path, config: dict) -> Path:
    """Write ``config`` as ``workdir/config/config.yaml`` (what the Snakefile loads)."""
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def run_workflow() -> Callable[..., subprocess.CompletedProcess]:
    """Run Snakemake on the real workflow: ``run_workflow(workdir, config, *args)``."""

    def run(
        workdir: Path, config: dict | None = None, *args: str, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        if config is not None:
            write_config(workdir, config)
        return subprocess.run(
            snakemake_command(workdir, *args),
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=600,
        )

    return run


def group_job_rules(dry_run_output: str, group: str) -> set[str]:
    """The rules of the group job ``group`` in a dry run's output (a cluster profile's plan)."""
    rules: set[str] = set()
    inside = False
    for line in dry_run_output.splitlines():
        if line.startswith("["):  # a job or group job (the group's jobs are indented)
            inside = f"Group job {group} " in line
        elif inside and line.startswith("    rule "):
            rules.add(line.removeprefix("    rule ").rstrip(":"))
    return rules


#: The test modules (and config-value runs) that run real workflows, longest first. The README's
#: test command runs the suite in pytest-xdist workers (pyproject.toml): every module is one
#: unit of work kept on one worker (its module-scoped runs are built once), each config-value
#: run its own, and the longest start first so the workers finish together. The SLURM module
#: is the longest (much of it waiting for SLURM's status checks), so the other workers'
#: CPU-heavy modules run beside it (their measured times: docs/performance.md).
LONGEST_FIRST = (
    "test_slurm_cluster",
    "test_models_workflow",
    "test_sources",
    "test_test_configs",
    "test_config_values_end_to_end:seed-2027-scale-0.05-default-models",
    "test_config_values_end_to_end:window3-same-year-features-and-year",
    "test_workflow",
    "test_config_values_end_to_end:window1-by-row-2-bins-no-threshold",
    "test_modelling_tuning",
    "test_verify",
)


def work_unit(item: pytest.Item) -> str:
    """The xdist group of a test: its module, and for a parametrised module-scoped run
    (``finished_run``) the run, so each run can go to another worker. (No brackets: xdist
    reads a group name ending in ``]`` as a test's parameters and gives every test its own
    unit, so a run's tests went to both workers and each built the run again.)"""
    unit = item.module.__name__
    run = getattr(item, "callspec", None) and item.callspec.params.get("finished_run")
    return f"{unit}:{run}" if run else unit


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {unit: index for index, unit in enumerate(LONGEST_FIRST)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(work_unit(item)))
    # Stable: tests keep their order within a unit (and the parametrised runs their grouping).
    items.sort(key=lambda item: rank.get(work_unit(item), len(rank)))
