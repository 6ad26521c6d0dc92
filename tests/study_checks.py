"""What a finished tuning must look like, per Optuna study and its MLflow runs, however often
its shards were killed and resumed (used by the workflow and cluster tests)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from drg_workflow.documents import read_json
from drg_workflow.modelling.tuning import open_storage


def study_counts(workdir: Path, model: str, storage: str, client) -> str:
    """One line: the study's trials by state and its MLflow trial runs by status (printed by
    the kill tests, before their checks, to show what a kill and a resume left)."""
    setup = read_json(workdir / f"results/tuning/{model}/setup.json")
    study = optuna.load_study(study_name=setup["study_name"], storage=open_storage(storage))
    states = Counter(t.state.name for t in study.get_trials())
    runs = client.search_runs(
        [setup["experiment_id"]],
        f"tags.model = '{model}' and tags.stage = 'trial'",
        max_results=1000,
    )
    statuses = Counter(r.info.status for r in runs)
    return f"{model}: trials {dict(sorted(states.items()))}, runs {dict(sorted(statuses.items()))}"


def assert_study_is_whole(workdir: Path, model: str, storage: str, client, budget: int) -> list:
    """Per study: finished trials (complete or pruned) == ``budget``, no trial RUNNING, every
    failed trial one that was interrupted, no MLflow trial run RUNNING, every finished trial
    exactly one FINISHED run (an interrupted one a KILLED run), and the best value reported by
    the model's metrics, its comparison row and its parent run is the study's best. Returns
    the study's trials."""
    setup = read_json(workdir / f"results/tuning/{model}/setup.json")
    study = optuna.load_study(study_name=setup["study_name"], storage=open_storage(storage))
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(finished) == budget, (model, [t.state.name for t in trials])
    assert all(t.state != TrialState.RUNNING for t in trials), model
    assert all(t.user_attrs.get("interrupted") for t in failed), model
    runs = client.search_runs(
        [setup["experiment_id"]],
        f"tags.model = '{model}' and tags.stage = 'trial'",
        max_results=1000,
    )
    assert "RUNNING" not in {r.info.status for r in runs}, model
    by_trial: dict[int, list] = {}
    for found in runs:
        by_trial.setdefault(int(found.data.tags["trial_number"]), []).append(found)
    for trial in finished:
        assert [r.info.status for r in by_trial.get(trial.number, [])] == ["FINISHED"]
    for trial in failed:
        assert [r.info.status for r in by_trial.get(trial.number, [])] == ["KILLED"]
    assert set(by_trial) == {t.number for t in trials}  # no run without its trial
    # The best trial: the lowest CV loss ratio against persistence (ties to the earliest
    # candidate: round, then index); the reported CV RMSE and MAE are its mean fold errors.
    # Round 0's first candidate, persistence (ratio 1), is in every study, so the best is never
    # worse than persistence.
    best = min(
        (t for t in trials if t.state == TrialState.COMPLETE),
        key=lambda t: (t.value, t.user_attrs["round"], t.user_attrs["candidate"]),
    )
    best_cv_rmse = float(np.mean(best.user_attrs["fold_rmse"]))
    persistence = [t for t in finished if t.user_attrs.get("persistence_trial")]
    assert len(persistence) == 1 and persistence[0].user_attrs["shard"] == 0, model
    assert study.best_value <= 1.0, model
    metrics = read_json(workdir / f"results/models/{model}/metrics.json")
    assert metrics["cv_rmse"] == pytest.approx(best_cv_rmse)
    assert metrics["n_trials_complete"] + metrics["n_trials_pruned"] == budget
    assert metrics["n_trials_interrupted"] == len(failed)
    row = pd.read_csv(workdir / "results/models/comparison.csv").set_index("model").loc[model]
    assert row["n_trials_complete"] == sum(t.state == TrialState.COMPLETE for t in trials)
    assert row["n_trials_pruned"] == sum(t.state == TrialState.PRUNED for t in trials)
    assert row["cv_rmse"] == pytest.approx(best_cv_rmse)
    parent = client.get_run(setup["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["n_trials"] == budget
    assert parent.data.metrics["best_cv_rmse"] == pytest.approx(best_cv_rmse)
    assert parent.data.metrics["best_cv_loss_ratio"] == pytest.approx(study.best_value)
    return trials
