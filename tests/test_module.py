"""The workflow used as a Snakemake module from a user's own directory, which holds only
``config/config.yaml``, a Snakefile of a few lines (``module`` + ``use rule * from``, what
snakedeploy writes) and a copy of the workflow profile (docs/deploying-as-a-module.md).

The default target, ``verify`` and ``--report`` through the module are checked on the shared
modelling run of tests/test_models_workflow.py, which is deployed this way."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SMALL_CONFIG, deploy_as_module, group_job_rules

from drg_workflow.config_validation import validate_config

pytestmark = pytest.mark.workflow

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The plain command a user types in their directory (no --snakefile, no --directory)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    deploy_as_module(tmp_path, SMALL_CONFIG)
    return tmp_path


def test_the_users_snakefile_is_a_few_lines(user_dir: Path):
    lines = [line for line in (user_dir / "workflow/Snakefile").read_text().splitlines() if line]
    assert len(lines) <= 10
    assert sorted(p.name for p in user_dir.iterdir()) == ["config", "workflow"]


def test_one_version_builds_in_the_users_directory(user_dir: Path):
    result = snakemake(user_dir, "results/v11/v11.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (user_dir / "results/v11/v11.csv").is_file()
    assert (user_dir / "results/v11/v11_metadata.json").is_file()
    assert (user_dir / "logs/lag_columns/v11.log").is_file()
    assert not (user_dir / "results/v12").exists()
    # The workflow profile copied beside the user's Snakefile is read (rerun-incomplete).
    assert "Using workflow specific profile workflow/profiles/default" in result.stderr


def test_the_slurm_profile_plans_the_chain_as_one_group_job(user_dir: Path):
    result = snakemake(user_dir, "-n", "--profile", str(ROOT / "profiles" / "slurm"))
    assert result.returncode == 0, result.stderr[-3000:]
    chain = validate_config(copy.deepcopy(SMALL_CONFIG), SCHEMA)["chain"]
    rules = group_job_rules(result.stdout, "chain")
    assert rules == {"ingest_raw", *(step["transformation"] for step in chain)}
