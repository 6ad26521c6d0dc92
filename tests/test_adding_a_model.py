"""Adding a model touches its builder and the config, nothing else (docs/adding-a-model.md): in
a copy of the workflow, a new builder registered in MODEL_BUILDERS and given a search space in
the user's config gets every modelling job, passes the lint, and is tuned and fitted."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SMALL_CONFIG, copy_of_the_workflow, snakemake_in_copy, write_config

from drg_workflow.documents import read_json

pytestmark = pytest.mark.workflow

GUIDE = (ROOT / "docs/adding-a-model.md").read_text()
#: The guide's two examples: the builder and the config.
PYTHON, CONFIG_YAML = re.findall(r"```(?:python|yaml)\n(.*?)```", GUIDE, re.S)


@pytest.fixture(scope="module")
def extended(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the workflow with the guide's builder, and a working directory whose config
    tunes the guide's model beside ridge (one round of one shard of two trials)."""
    base = tmp_path_factory.mktemp("new-model")
    checkout = copy_of_the_workflow(base / "checkout")
    module = checkout / "scripts/drg_workflow/modelling/models.py"
    module.write_text(module.read_text() + "\n\n" + PYTHON)
    config = copy.deepcopy(SMALL_CONFIG)
    new_models = yaml.safe_load(CONFIG_YAML)["modelling"]["models"]
    config["modelling"]["models"] = {"ridge": config["modelling"]["models"]["ridge"], **new_models}
    config["modelling"]["tuning"] = {"n_shards": 1, "trials_per_shard": 2, "rounds": 1}
    workdir = base / "work"
    write_config(workdir, config)
    return checkout, workdir


def test_the_new_model_gets_every_modelling_job_and_passes_the_lint(extended):
    checkout, workdir = extended
    plan = snakemake_in_copy(checkout, workdir, "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    for rule in ("setup_study", "tune_shard", "train_final", "backtest_model"):
        assert re.search(
            rf"rule {rule}:\n(?:    .*\n)*?    wildcards: model=extra_trees", plan.stdout
        )
    assert "results/report/tuning/extra_trees_optimisation_history.png" in plan.stdout
    lint = snakemake_in_copy(checkout, workdir, "--lint")
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr


def test_the_new_model_is_tuned_and_fitted(extended):
    checkout, workdir = extended
    result = snakemake_in_copy(checkout, workdir, "results/models/extra_trees/metrics.json")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_json(workdir / "results/models/extra_trees/metrics.json")
    assert metrics["model"] == "extra_trees"
    assert metrics["n_trials_complete"] == 2
    assert metrics["best_params"]["n_estimators"] in (10, 20, 30, 40)
    assert metrics["fixed_params"]["bootstrap"] is True
