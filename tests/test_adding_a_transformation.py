"""Adding a transformation touches its function (with its registry entry) and the chain in the
config, nothing else (docs/adding-a-transformation.md): in a copy of the workflow, a new
registered function appended to the chain in the user's config gets its own rule, passes the
lint, builds with its default contract, and a SLURM profile runs it in the chain's group job."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import (
    ROOT,
    SMALL_CONFIG,
    copy_of_the_workflow,
    group_job_rules,
    snakemake_in_copy,
    write_config,
)

from drg_workflow.config_validation import validate_config
from drg_workflow.documents import read_json

pytestmark = pytest.mark.workflow

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())

NEW_TRANSFORMATION = '''

@register(contract={"required_columns": ["year_index"]})
def year_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``year_index``: the year counted from the data's first year."""
    return frame.assign(year_index=frame["year"] - frame["year"].min())
'''


@pytest.fixture(scope="module")
def extended(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the workflow with one new transformation, and a working directory whose
    config appends it to the chain as v14."""
    base = tmp_path_factory.mktemp("extended")
    checkout = copy_of_the_workflow(base / "checkout")
    module = checkout / "scripts/drg_workflow/transformations.py"
    module.write_text(module.read_text() + NEW_TRANSFORMATION)
    workdir = base / "work"
    config = copy.deepcopy(SMALL_CONFIG)
    chain = validate_config(copy.deepcopy(SMALL_CONFIG), copy.deepcopy(SCHEMA))["chain"]
    config["chain"] = [*chain, {"version": "v14", "transformation": "year_index", "input": "v13"}]
    write_config(workdir, config)
    return checkout, workdir


def test_the_new_step_gets_its_rule_and_passes_the_lint(extended):
    checkout, workdir = extended
    plan = snakemake_in_copy(checkout, workdir, "-n", "results/v14/v14.csv")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "rule year_index:" in plan.stdout
    lint = snakemake_in_copy(checkout, workdir, "--lint")
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr


def test_a_slurm_profile_runs_the_new_step_in_the_chains_group_job(extended):
    checkout, workdir = extended
    plan = snakemake_in_copy(checkout, workdir, "-n", "--profile", str(checkout / "profiles/slurm"))
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "year_index" in group_job_rules(plan.stdout, "chain")


def test_the_new_version_builds_with_its_default_contract(extended):
    checkout, workdir = extended
    result = snakemake_in_copy(checkout, workdir, "results/v14/v14.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = read_json(workdir / "results/v14/v14_metadata.json")
    assert metadata["transformation"]["name"] == "year_index"
    assert metadata["input"]["version"] == "v13"
    assert "year_index" in [column["name"] for column in metadata["columns"]]
    assert any(check["check"] == "required_columns" for check in metadata["contracts"])
