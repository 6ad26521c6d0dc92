"""Concurrent tuning shards (Optuna journal storage + MLflow sqlite store, 2 processes), and a
shard killed in the middle of a trial, then resumed."""

import json
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import optuna
import pytest
from modelling_frames import (
    model_settings,
    modelling_frame,
    modelling_settings,
    rare_drg_threshold,
    small_config,
)
from optuna.trial import TrialState

from drg_workflow.modelling.baseline import baseline_cv_scores, baseline_predictions
from drg_workflow.modelling.data import prepare_modelling_data, year_folds
from drg_workflow.modelling.metrics import capped_rmse, error_cap
from drg_workflow.modelling.settings import MlflowSettings
from drg_workflow.modelling.tracking import (
    close_parent_run,
    create_parent_run,
    ensure_experiment,
)
from drg_workflow.modelling.trial_attrs import (
    CANDIDATE_ATTR,
    ROUND_ATTR,
    SETUP_ATTR,
    SHARD_ATTR,
)
from drg_workflow.modelling.tuning import (
    FoldScores,
    RoundPruner,
    StudyRef,
    TrialRecord,
    TuningError,
    create_study,
    cross_validate_by_year,
    make_objective,
    open_storage,
    run_tuning_shard,
    study_results,
)

TARGET = "w_total_median_profit"
SPACE = {
    "n_estimators": {"type": "int", "low": 3, "high": 8},
    "max_depth": {"type": "int", "low": 2, "high": 6},
    "max_features": {"type": "categorical", "values": [1.0, 0.5]},
}
FIXED = {"n_jobs": 1}


def setup_study(tmp_path, name: str, storage: str, model: str, replace: bool = False) -> dict:
    """What setup_study does: the study, the experiment and the study's parent run."""
    experiment = ensure_experiment(
        MlflowSettings(
            f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", "drg-test", str(tmp_path / "art")
        )
    )
    study = create_study(name, storage, replace_existing=replace)
    parent = create_parent_run(experiment, model, {"optuna_study": name})
    study.set_user_attr("mlflow_parent_run_id", parent)
    return {**experiment.to_json(), "study_name": name, "storage": storage, "parent_run_id": parent}


def shard_processes() -> multiprocessing.context.BaseContext:
    """Where the tests' shard processes come from: each a fresh process forked from one
    single-threaded server that imported the tuning stack once (a new interpreter per shard
    would spend more on its imports than on the small shards it runs)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [
            "drg_workflow.modelling.tuning",
            "drg_workflow.modelling.tracking",
            "mlflow",
            "sklearn.ensemble",
            "sklearn.linear_model",
        ]
    )
    return context


@pytest.fixture(scope="module")
def shard_pool():
    """Two worker processes for the tests that run shards or MLflow side by side."""
    with ProcessPoolExecutor(max_workers=2, mp_context=shard_processes()) as pool:
        yield pool


@pytest.fixture(scope="module")
def train_xy():
    data = prepare_modelling_data(modelling_frame(seed=3), modelling_settings())
    return data.X["train"], data.y["train"], data.years["train"]


def test_open_storage_kinds(tmp_path):
    assert isinstance(
        open_storage(str(tmp_path / "j" / "s.journal")), optuna.storages.JournalStorage
    )
    rdb = open_storage(f"sqlite:///{tmp_path / 'o' / 'optuna.db'}")
    assert isinstance(rdb, optuna.storages.RDBStorage)


def test_cross_validation_folds_in_time_order(train_xy):
    X, y, years = train_xy
    seen = []
    model = model_settings("ridge", {})
    scores = cross_validate_by_year(
        model, {"alpha": 1.0}, X, y, years, on_fold=lambda i, s: seen.append((i, list(s.rmse)))
    )
    assert [i for i, _ in seen] == [0, 1, 2] and seen[-1][1] == scores.rmse
    # Persistence is scored on the same folds as the baseline rule scores it.
    frame = X.assign(year=years, **{TARGET: np.asarray(y)})
    persistence = baseline_cv_scores(frame, 3, model.modelling.features)
    assert scores.persistence_rmse == pytest.approx(persistence["rmse"])
    assert scores.persistence_mae == pytest.approx(persistence["mae"])
    # The capped RMSE counts persistence's errors up to their 99.9th percentile in the fold.
    baseline = baseline_predictions(X, model.modelling.features)
    target = np.asarray(y, dtype=float)
    for i, (_, val_idx) in enumerate(year_folds(np.asarray(years), 3)):
        errors = np.abs(baseline[val_idx] - target[val_idx])
        capped = np.minimum(errors, np.quantile(errors, 0.999))
        assert scores.persistence_capped_rmse[i] == pytest.approx(np.sqrt(np.mean(capped**2)))
        assert scores.persistence_capped_rmse[i] < scores.persistence_rmse[i]
        assert scores.capped_rmse[i] <= scores.rmse[i]


def test_capped_rmse_counts_each_error_up_to_the_cap():
    actual = np.zeros(5)
    reference = np.array([1.0, -2.0, 3.0, -4.0, 100.0])
    assert error_cap(actual, reference, 1.0) == np.inf
    assert error_cap(actual, reference, 0.5) == 3.0
    assert capped_rmse(actual, reference, np.inf) == pytest.approx(np.sqrt(np.mean(reference**2)))
    assert capped_rmse(actual, reference, 3.0) == pytest.approx(np.sqrt((1 + 4 + 9 + 9 + 9) / 5))


def test_the_objective_is_not_ruled_by_one_series():
    """A model better than persistence on every series but one, where one jump it did not
    foresee makes most of the squared error: the plain RMSE ratio calls it worse than
    persistence, the objective (RMSE with errors capped at persistence's 99.9th percentile)
    better; a model worse on every series stays worse."""
    rng = np.random.default_rng(0)
    actual = rng.normal(100.0, 10.0, 5000)
    persistence = actual + rng.normal(0.0, 10.0, actual.size)
    better = actual + 0.7 * (persistence - actual)
    worse = actual + 1.3 * (persistence - actual)
    persistence[0], better[0], worse[0] = actual[0] + 300.0, actual[0] - 900.0, actual[0] + 390.0

    def scores(predicted: np.ndarray) -> FoldScores:
        cap = error_cap(actual, persistence, 0.999)
        return FoldScores(
            rmse=[float(np.sqrt(np.mean((predicted - actual) ** 2)))],
            mae=[float(np.mean(np.abs(predicted - actual)))],
            persistence_rmse=[float(np.sqrt(np.mean((persistence - actual) ** 2)))],
            persistence_mae=[float(np.mean(np.abs(persistence - actual)))],
            capped_rmse=[capped_rmse(actual, predicted, cap)],
            persistence_capped_rmse=[capped_rmse(actual, persistence, cap)],
        )

    plain = scores(better)
    assert plain.rmse[0] > plain.persistence_rmse[0]
    assert plain.loss_ratio() < 0.8
    assert scores(worse).loss_ratio() > 1.2


def test_objective_reports_the_running_loss_ratio_and_prunes(train_xy):
    X, y, years = train_xy
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    record = TrialRecord()
    model = model_settings("ridge", {"alpha": {"type": "float", "low": 0.1, "high": 10.0}})
    objective = make_objective(model, X, y, years, record)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert len(record.fold_rmse) == len(record.fold_mae) == 3
    frame = X.assign(year=years, **{TARGET: np.asarray(y)})
    persistence = baseline_cv_scores(frame, 3, model.modelling.features)

    capped = cross_validate_by_year(model, record.params, X, y, years)

    def ratio(folds: int) -> float:
        return max(
            np.mean(capped.capped_rmse[:folds]) / np.mean(capped.persistence_capped_rmse[:folds]),
            np.mean(record.fold_mae[:folds]) / np.mean(persistence["mae"][:folds]),
        )

    assert trial.intermediate_values == {i: pytest.approx(ratio(i + 1)) for i in range(3)}
    assert trial.value == pytest.approx(ratio(3))
    assert trial.user_attrs == {"fold_rmse": record.fold_rmse, "fold_mae": record.fold_mae}

    class AlwaysPrune(RoundPruner):
        def should_prune(self, step, value):
            return True

    pruned = make_objective(model, X, y, years, record, AlwaysPrune({}, 1))
    study = optuna.create_study()
    study.optimize(pruned, n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED
    assert len(record.fold_rmse) == 1


def _shard(args):  # top level: picklable for another process
    return run_tuning_shard(*args)


def _ensure(args):
    return ensure_experiment(MlflowSettings(*args)).experiment_id


def test_parallel_first_use_of_fresh_sqlite_store(tmp_path, shard_pool):
    # Unguarded, concurrent creation of a fresh MLflow sqlite DB corrupts its migration.
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    args = [(uri, "shared", str(tmp_path / "art"))] * 2
    ids = list(shard_pool.map(_ensure, args))
    assert len(set(ids)) == 1


def test_two_concurrent_shards(tmp_path, train_xy, shard_pool):
    X, y, years = train_xy
    journal = str(tmp_path / "optuna" / "rf.journal")
    setup = setup_study(tmp_path, "rf-study", journal, "random_forest")
    tracking_uri = setup["tracking_uri"]
    json.dumps(setup)  # goes to a JSON file in the workflow
    model = model_settings(
        "random_forest",
        SPACE,
        FIXED,
        trials_per_shard=3,
        rounds=1,
        base_seed=100,
        pruner={"n_startup_trials": 1, "n_warmup_steps": 1},
    )
    shards = [(StudyRef.from_setup(setup), model, X, y, years, i) for i in range(2)]
    summaries = list(shard_pool.map(_shard, shards))

    for i, s in enumerate(summaries):
        json.dumps(s)
        assert s["shard_index"] == i and s["n_trials_run"] == 3 and s["n_fail"] == 0
        assert s["sampler_seed"] == 100 and s["round"] == 0
        assert s["n_complete"] + s["n_pruned"] == 3
    numbers = summaries[0]["trial_numbers"] + summaries[1]["trial_numbers"]
    assert sorted(numbers) == list(range(6))  # shards share one study, no trial twice

    study = optuna.load_study(study_name="rf-study", storage=open_storage(journal))
    assert len(study.trials) == 6
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert study.user_attrs["mlflow_parent_run_id"] == setup["parent_run_id"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([setup["experiment_id"]], "tags.stage = 'trial'", max_results=100)
    assert len(runs) == 6
    all_runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=100
    )
    assert len(all_runs) == 7  # 6 trials + parent, nothing in another experiment
    by_trial = {int(r.data.tags["trial_number"]): r for r in runs}
    assert sorted(by_trial) == list(range(6))
    for t in study.trials:
        run = by_trial[t.number]
        assert run.info.experiment_id == setup["experiment_id"]
        assert run.data.tags["mlflow.parentRunId"] == setup["parent_run_id"]
        assert run.data.tags["model"] == "random_forest"
        assert run.data.tags["shard"] == str(t.user_attrs["shard"])
        assert run.data.tags["optuna_state"] == t.state.name
        assert t.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.params["n_estimators"] == str(t.params["n_estimators"])
        assert run.data.params["n_jobs"] == "1"
        history = client.get_metric_history(run.info.run_id, "fold_rmse")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
            range(len(t.user_attrs["fold_rmse"]))
        )
        if t.state == TrialState.COMPLETE:
            assert len(history) == 3
            assert run.data.metrics["cv_loss_ratio"] == pytest.approx(t.value)
            assert run.data.metrics["cv_rmse"] == pytest.approx(np.mean(t.user_attrs["fold_rmse"]))
            assert run.data.metrics["cv_mae"] == pytest.approx(np.mean(t.user_attrs["fold_mae"]))

    results = study_results(StudyRef.from_setup(setup))
    json.dumps(results)
    assert results["n_trials"] == 6 and results["n_fail"] == 0
    assert results["n_complete"] + results["n_pruned"] == 6
    assert results["best_value"] == min(
        t.value for t in study.trials if t.state == TrialState.COMPLETE
    )
    close_parent_run(tracking_uri, setup["parent_run_id"], results)
    best = study.trials[results["best_trial_number"]]
    assert results["best_cv_rmse"] == pytest.approx(np.mean(best.user_attrs["fold_rmse"]))
    assert results["best_cv_mae"] == pytest.approx(np.mean(best.user_attrs["fold_mae"]))
    parent = client.get_run(setup["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_cv_loss_ratio"] == pytest.approx(results["best_value"])
    assert parent.data.metrics["best_cv_rmse"] == pytest.approx(results["best_cv_rmse"])

    # Re-running the setup: same experiment; replace_existing_study starts the study afresh.
    again = setup_study(tmp_path, "rf-study", journal, "random_forest", replace=True)
    assert again["experiment_id"] == setup["experiment_id"]
    assert again["parent_run_id"] != setup["parent_run_id"]
    assert len(optuna.load_study(study_name="rf-study", storage=open_storage(journal)).trials) == 0


def test_shard_fails_loudly_when_every_trial_fails(tmp_path, train_xy):
    X, y, years = train_xy
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    setup = setup_study(tmp_path, "ridge-study", storage, "ridge")
    tracking_uri = setup["tracking_uri"]
    X_bad = X.assign(facility_id=np.inf)  # Ridge rejects infinite input in every fold
    model = model_settings(
        "ridge", {"alpha": {"type": "float", "low": 0.1, "high": 1.0}}, trials_per_shard=2, rounds=1
    )
    with pytest.raises(RuntimeError, match="all 2 trials of shard 0 of round 0 .* failed"):
        run_tuning_shard(StudyRef.from_setup(setup), model, X_bad, y, years, 0)
    from mlflow import MlflowClient

    runs = MlflowClient(tracking_uri).search_runs([setup["experiment_id"]], "tags.stage = 'trial'")
    assert len(runs) == 2
    assert {r.data.tags["optuna_state"] for r in runs} == {"FAIL"}
    assert {r.info.status for r in runs} == {"FAILED"}
    assert all("error" in r.data.tags for r in runs)


def test_without_catching_failures_the_first_failed_trial_is_recorded_then_raised(
    tmp_path, train_xy
):
    """catch_failures=False: the trial's error propagates, after its MLflow run is ended
    FAILED with the error and its Optuna trial is told FAIL (nothing left RUNNING)."""
    X, y, years = train_xy
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    setup = setup_study(tmp_path, "ridge-study", storage, "ridge")
    X_bad = X.assign(facility_id=np.inf)
    model = model_settings(
        "ridge", {"alpha": {"type": "float", "low": 0.1, "high": 1.0}}, trials_per_shard=2, rounds=1
    )
    with pytest.raises(ValueError, match="infinity"):
        run_tuning_shard(
            StudyRef.from_setup(setup), model, X_bad, y, years, 0, catch_failures=False
        )
    from mlflow import MlflowClient

    runs = MlflowClient(setup["tracking_uri"]).search_runs(
        [setup["experiment_id"]], "tags.stage = 'trial'"
    )
    assert [(r.info.status, r.data.tags["optuna_state"]) for r in runs] == [("FAILED", "FAIL")]
    assert "infinity" in runs[0].data.tags["error"]
    trials = optuna.load_study(study_name="ridge-study", storage=storage).trials
    assert [trial.state for trial in trials] == [TrialState.FAIL]


def test_shard_zero_starts_every_study_with_the_persistence_trial(tmp_path, train_xy):
    """The first trial of shard 0 is the region of the search space that reduces to
    persistence: its CV loss ratio is exactly 1 and its fold errors are persistence's. It runs
    once per study: not in other shards, not again when the shard is started again."""
    X, y, years = train_xy
    setup = setup_study(tmp_path, "ridge", str(tmp_path / "optuna" / "ridge.journal"), "ridge")
    ref = StudyRef.from_setup(setup)
    space = {
        "alpha": {"type": "float", "low": 0.1, "high": 10.0},
        "max_log_change": {"type": "float", "low": 0.0, "high": 1.0},
    }
    model = model_settings("ridge", space, n_shards=2, trials_per_shard=2, rounds=1)
    first_shard = run_tuning_shard(ref, model, X, y, years, 0)
    second_shard = run_tuning_shard(ref, model, X, y, years, 1)
    study = optuna.load_study(study_name="ridge", storage=open_storage(setup["storage"]))
    by_number = {t.number: t for t in study.trials}
    first, second = (by_number[n] for n in first_shard["trial_numbers"])
    assert first.params["max_log_change"] == 0.0 and first.value == 1.0
    assert first.user_attrs["persistence_trial"] is True
    frame = X.assign(year=years, **{TARGET: np.asarray(y)})
    persistence = baseline_cv_scores(frame, 3, model.modelling.features)
    assert first.user_attrs["fold_rmse"] == persistence["rmse"]
    assert first.user_attrs["fold_mae"] == persistence["mae"]
    others = [second, *(by_number[n] for n in second_shard["trial_numbers"])]
    assert all(t.params["max_log_change"] != 0.0 for t in others)
    assert not any(t.user_attrs.get("persistence_trial") for t in others)
    assert run_tuning_shard(ref, model, X, y, years, 0)["n_trials_run"] == 0
    assert (
        len(optuna.load_study(study_name="ridge", storage=open_storage(setup["storage"])).trials)
        == 4
    )


#: Other generated data than the tests' default (seed 7, scale 0.01): other seeds and scales, on
#: both of which the study's random trials alone are worse than persistence in CV (the test then
#: fails without the persistence trial: checked 2026-11-29).
OTHER_DATA = [(2027, 0.02), (101, 0.03)]


@pytest.mark.parametrize(("seed", "scale"), OTHER_DATA, ids=lambda v: str(v))
def test_on_other_data_no_tuned_model_has_a_cv_error_above_persistence(tmp_path, seed, scale):
    """Fit what is scored: with the default models and search spaces (schema defaults), a few
    trials of each study, its best trial's CV MAE is at most persistence's, and so is its CV
    RMSE with errors capped (the objective, a loss ratio of at most 1; the plain RMSE may be
    above persistence's when one series' jump dominates it)."""
    config = small_config(
        raw={"synthetic": {"seed": seed, "scale": scale}},
        transformations={"drop_rare_drgs": {"threshold": rare_drg_threshold(scale)}},
    )
    settings = modelling_settings(config)
    data = prepare_modelling_data(modelling_frame(seed, config), settings)
    X, y, years = data.X["train"], data.y["train"], data.years["train"]
    frame = X.assign(year=years, **{TARGET: np.asarray(y)})
    persistence = baseline_cv_scores(frame, settings.cv_folds, settings.features)
    journal = str(tmp_path / "optuna.journal")
    for name, defaults in config["modelling"]["models"].items():
        model = model_settings(
            name,
            defaults["search_space"],
            defaults["fixed_params"],
            config,
            n_shards=1,
            trials_per_shard=2,
            rounds=1,
            base_seed=seed,
        )
        ref = StudyRef.from_setup(setup_study(tmp_path, name, journal, name))
        run_tuning_shard(ref, model, X, y, years, 0)
        best = study_results(ref)
        assert best["best_value"] <= 1.0, (name, best)
        assert best["best_cv_mae"] <= np.mean(persistence["mae"]), (name, best)


# ------------------------------------------------------------------ a shard killed mid-trial

#: Trials of about a second (three fits of 60-100 trees each) that the pruner never stops, so
#: a kill lands inside a trial, between two of its folds.
SLOW_SPACE = {
    "n_estimators": {"type": "int", "low": 60, "high": 100},
    "max_depth": {"type": "int", "low": 6, "high": 10},
}
NEVER_PRUNE = {"n_startup_trials": 1000, "n_warmup_steps": 1}
#: The trials of the killed shard.
SHARD_TRIALS = 4


def _shard_trials(storage, name: str, shard: int) -> list:
    study_id = storage.get_study_id_from_name(name)
    return [t for t in storage.get_all_trials(study_id) if t.user_attrs.get("shard") == shard]


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_shard_killed_mid_trial_resumes_without_repeating(tmp_path, train_xy, signal_name):
    """Kill a shard's process while its second-or-later trial runs, then start the shard again:
    the finished trials count, the running one is FAIL (interrupted) with its MLflow run KILLED,
    and only the missing trials run. SIGKILL leaves the trial RUNNING for the next start to
    close; SIGTERM (scancel, a time limit) lets the dying shard close it itself."""
    X, y, years = train_xy
    journal = str(tmp_path / "optuna" / "rf.journal")
    setup = setup_study(tmp_path, "rf-kill", journal, "random_forest")
    ref = StudyRef.from_setup(setup)
    model = model_settings(
        "random_forest",
        SLOW_SPACE,
        FIXED,
        n_shards=2,
        trials_per_shard=SHARD_TRIALS,
        rounds=1,
        pruner=NEVER_PRUNE,
    )
    process = shard_processes().Process(target=run_tuning_shard, args=(ref, model, X, y, years, 1))
    process.start()
    storage = open_storage(journal)
    deadline = time.monotonic() + 120
    while True:
        assert process.is_alive() and time.monotonic() < deadline, "shard ended before the kill"
        trials = _shard_trials(storage, "rf-kill", 1) if process.is_alive() else []
        finished = [t for t in trials if t.state.is_finished()]
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        # Not the shard's last trial: a whole trial still follows, so the shard cannot have
        # ended by the time the signal lands (a busy machine may delay this process).
        if finished and running and len(trials) < SHARD_TRIALS:
            break
        time.sleep(0.02)
    os.kill(process.pid, getattr(signal, signal_name))
    process.join(60)
    killed_number = running[0].number

    from mlflow import MlflowClient

    client = MlflowClient(setup["tracking_uri"])

    def trial_runs():
        return client.search_runs([setup["experiment_id"]], "tags.stage = 'trial'")

    left = {t.number: t for t in _shard_trials(storage, "rf-kill", 1)}
    open_runs = [r for r in trial_runs() if r.info.status == "RUNNING"]
    if signal_name == "SIGKILL":  # what a kill leaves behind
        assert left[killed_number].state == TrialState.RUNNING and len(open_runs) == 1
    else:  # the shard closed its trial before it exited
        assert process.exitcode != 0
        assert left[killed_number].state == TrialState.FAIL and open_runs == []
        assert left[killed_number].user_attrs["interrupted"] is True
    done_before = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in left.values())

    summary = run_tuning_shard(ref, model, X, y, years, 1)

    trials = _shard_trials(storage, "rf-kill", 1)
    states = {t.number: t.state for t in trials}
    # The budget, no more.
    assert sum(s == TrialState.COMPLETE for s in states.values()) == SHARD_TRIALS
    assert [n for n, s in states.items() if s == TrialState.FAIL] == [killed_number]
    assert TrialState.RUNNING not in states.values()
    assert summary["n_trials_resumed"] == done_before
    assert summary["n_trials_run"] == SHARD_TRIALS - done_before
    assert summary["interrupted_trial_numbers"] == [killed_number]
    assert summary["trial_numbers"] == sorted(n for n in states if n != killed_number)
    runs = trial_runs()
    by_trial = {}
    for run in runs:
        by_trial.setdefault(int(run.data.tags["trial_number"]), []).append(run)
    assert sorted(by_trial) == sorted(states)  # one run per trial, the killed one's too
    assert all(len(found) == 1 for found in by_trial.values())
    (killed_run,) = by_trial[killed_number]
    assert killed_run.info.status == "KILLED" and killed_run.data.tags["interrupted"] == "true"
    assert {r.info.status for n, (r,) in by_trial.items() if n != killed_number} == {"FINISHED"}
    results = study_results(ref)
    assert results["n_trials"] == SHARD_TRIALS and results["n_interrupted"] == 1
    assert results["best_value"] == min(t.value for t in trials if t.state == TrialState.COMPLETE)
    # Started again once done, the shard runs nothing more.
    again = run_tuning_shard(ref, model, X, y, years, 1)
    assert again["n_trials_run"] == 0 and again["trial_numbers"] == summary["trial_numbers"]


def test_a_trial_killed_before_its_run_began_gets_a_killed_run(tmp_path, train_xy):
    """A shard killed between creating its trial and creating the trial's MLflow run leaves a
    RUNNING trial with no run at all; the shard's next start marks the trial interrupted and
    gives it its one run, KILLED and tagged like the shard's others, then runs the candidate
    again."""
    X, y, years = train_xy
    journal = str(tmp_path / "optuna.journal")
    setup = setup_study(tmp_path, "orphan", journal, "random_forest")
    ref = StudyRef.from_setup(setup)
    model = model_settings("random_forest", SPACE, FIXED, n_shards=1, trials_per_shard=2, rounds=1)
    storage = open_storage(journal)
    # What the shard writes when it creates its first trial (tuning._new_shard_trial).
    attrs = {SHARD_ATTR: 0, ROUND_ATTR: 0, CANDIDATE_ATTR: 0, SETUP_ATTR: setup["parent_run_id"]}
    storage.create_new_trial(
        storage.get_study_id_from_name("orphan"),
        template_trial=optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs=attrs),
    )

    summary = run_tuning_shard(ref, model, X, y, years, 0)

    from mlflow import MlflowClient

    runs = MlflowClient(setup["tracking_uri"]).search_runs(
        [setup["experiment_id"]], "tags.stage = 'trial'"
    )
    by_trial = {int(run.data.tags["trial_number"]): run for run in runs}
    assert len(runs) == len(by_trial) == 3 and summary["interrupted_trial_numbers"] == [0]
    killed = by_trial[0]
    assert killed.info.status == "KILLED" and killed.data.tags["interrupted"] == "true"
    assert killed.data.tags["model"] == "random_forest" and killed.info.run_name.endswith("-0")
    assert killed.data.tags["mlflow.parentRunId"] == setup["parent_run_id"]
    tags = ("shard", "round", "candidate", "optuna_study", "sampler_seed", "fold_years")
    assert {k: killed.data.tags[k] for k in tags} == {k: by_trial[1].data.tags[k] for k in tags}
    assert summary["trial_numbers"] == [1, 2]


# ------------------------------------------------------------------ rounds: the same answer


def _run_rounds(tmp_path, name: str, model, train_xy, shard_orders, pool) -> dict:
    """Tune a study round after round, each round's shards in the given order (a list per
    round, or "parallel": both at once in the two processes of ``pool``); return every trial by its
    (round, candidate) with its parameters, state and value, and the study's results."""
    X, y, years = train_xy
    setup = setup_study(tmp_path, name, str(tmp_path / "optuna" / f"{name}.journal"), "ridge")
    ref = StudyRef.from_setup(setup)
    for round_index, order in enumerate(shard_orders):
        if order == "parallel":
            shards = [(ref, model, *train_xy, i, round_index) for i in (0, 1)]
            list(pool.map(_shard_of_round, shards))
        else:
            for shard in order:
                run_tuning_shard(ref, model, X, y, years, shard, round_index=round_index)
    study = optuna.load_study(study_name=name, storage=open_storage(setup["storage"]))
    trials = {
        (t.user_attrs["round"], t.user_attrs["candidate"]): (t.params, t.state.name, t.value)
        for t in study.trials
    }
    results = study_results(ref)
    return {
        "trials": trials,
        "best": (
            results["best_params"],
            results["best_value"],
            results["best_round"],
            results["best_candidate"],
        ),
        "numbers": [
            t.number
            for t in sorted(
                study.trials, key=lambda t: (t.user_attrs["round"], t.user_attrs["candidate"])
            )
        ],
    }


def _shard_of_round(args):  # top level: picklable for another process
    *rest, shard, round_index = args
    return run_tuning_shard(*rest, shard, round_index=round_index)


#: Ridge with a bound: trials are fast, and some of them are pruned.
ROUND_SPACE = {
    "alpha": {"type": "float", "low": 1e-3, "high": 1e3, "log": True},
    "max_log_change": {"type": "float", "low": 0.0, "high": 1.0},
}


def test_rounds_give_the_same_trials_whatever_order_or_parallelism_the_shards_run_in(
    tmp_path, train_xy, shard_pool
):
    """The design that makes tuning reproducible: each round's candidates come from the
    earlier rounds only and each shard evaluates a fixed slice, so the shards of a round may
    run in any order, one after the other or side by side, and every trial, its pruning and
    the best trial are the same; only Optuna's trial numbers follow the timing."""
    model = model_settings(
        "ridge",
        ROUND_SPACE,
        n_shards=2,
        trials_per_shard=6,
        rounds=3,
        tpe_n_startup_trials=2,
        pruner={"n_startup_trials": 1, "n_warmup_steps": 1},
    )
    forwards = _run_rounds(
        tmp_path, "forwards", model, train_xy, [[0, 1], [0, 1], [0, 1]], shard_pool
    )
    backwards = _run_rounds(
        tmp_path, "backwards", model, train_xy, [[1, 0], [1, 0], [1, 0]], shard_pool
    )
    parallel = _run_rounds(
        tmp_path, "parallel", model, train_xy, ["parallel", [1, 0], "parallel"], shard_pool
    )
    assert sorted(forwards["trials"]) == [(r, i) for r in range(3) for i in range(4)]
    assert backwards["trials"] == forwards["trials"]
    assert parallel["trials"] == forwards["trials"]
    assert backwards["best"] == forwards["best"] == parallel["best"]
    assert backwards["numbers"] != forwards["numbers"]  # the timing shows only here
    # Round 0's first candidate is persistence; later rounds learn from the earlier ones.
    assert forwards["trials"][(0, 0)][0]["max_log_change"] == 0.0
    assert forwards["trials"][(0, 0)][2] == 1.0
    params = [p for p, _, _ in forwards["trials"].values()]
    assert len({tuple(sorted(p.items())) for p in params}) == len(params)


def test_a_round_starts_only_from_every_trial_of_the_rounds_before_it(tmp_path, train_xy):
    """In an RDB storage (the journal is the other kind): a round's shard waits for nothing,
    it refuses to start before the earlier rounds are whole."""
    X, y, years = train_xy
    model = model_settings("ridge", ROUND_SPACE, n_shards=2, trials_per_shard=2, rounds=2)
    setup = setup_study(tmp_path, "early", f"sqlite:///{tmp_path / 'optuna.db'}", "ridge")
    ref = StudyRef.from_setup(setup)
    run_tuning_shard(ref, model, X, y, years, 0)
    with pytest.raises(TuningError, match=r"round 1 needs one finished trial per candidate of "):
        run_tuning_shard(ref, model, X, y, years, 0, round_index=1)
    run_tuning_shard(ref, model, X, y, years, 1)
    summary = run_tuning_shard(ref, model, X, y, years, 0, round_index=1)
    assert summary["candidates"] == [0] and summary["n_trials_run"] == 1


def _shard_whose_lock_swallows_the_sigterm(ref, model, X, y, years, replace: bool) -> None:
    """Run shard 0 with an objective that, in its second trial, gets SIGTERM inside code shaped
    like Optuna's journal lock release: ``except BaseException`` that cleans up a file already
    gone, so ``FileNotFoundError`` replaces the interrupt on its way up (``replace``), or that
    swallows it."""
    from drg_workflow.modelling import tuning

    real = tuning.make_objective

    def objective_factory(*args, **kwargs):
        objective = real(*args, **kwargs)
        calls = []

        def objective_with_lock(trial):
            calls.append(trial.number)
            if len(calls) == 2:
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                except BaseException:
                    if replace:
                        os.unlink(os.path.join(os.getcwd(), "lock-already-released"))
                        raise
            return objective(trial)

        return objective_with_lock

    tuning.make_objective = objective_factory
    run_tuning_shard(ref, model, X, y, years, 0)


@pytest.mark.parametrize("replace", [True, False], ids=["replaced", "swallowed"])
def test_a_sigterm_a_library_turns_into_its_own_error_still_interrupts_the_shard(
    tmp_path, train_xy, replace
):
    """The shard stops (exit code not 0) instead of going on: a trial whose interrupt became
    another error is FAIL and marked interrupted (not an ordinary failure); one whose interrupt
    was swallowed ends COMPLETE, and no trial follows it."""
    X, y, years = train_xy
    journal = str(tmp_path / "optuna" / "lock.journal")
    ref = StudyRef.from_setup(setup_study(tmp_path, "lock", journal, "ridge"))
    model = model_settings("ridge", ROUND_SPACE, n_shards=1, trials_per_shard=4, rounds=1)
    process = shard_processes().Process(
        target=_shard_whose_lock_swallows_the_sigterm, args=(ref, model, X, y, years, replace)
    )
    process.start()
    process.join(120)
    assert process.exitcode not in (0, None)
    trials = _shard_trials(open_storage(journal), "lock", 0)
    if replace:
        assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
        assert trials[1].user_attrs["interrupted"] is True
    else:
        assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]


def trial_with(values: dict[int, float]):
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=values[max(values)], intermediate_values=values
    )


def test_the_pruner_never_judges_the_first_fold_nor_stops_a_cautious_trial():
    """Earlier rounds' trials had running ratios 0.9 (bold, good), 0.95 and 0.97 after fold
    1. A trial at 0.99 there (cautious, still better than persistence) goes on, though it is
    worse than their median: the median pruner would stop it. One at 1.05 stops; after fold 0
    nothing is judged, however bad."""
    earlier = [
        trial_with({0: r0, 1: r1, 2: r1}) for r0, r1 in ((0.8, 0.9), (0.9, 0.95), (0.99, 0.97))
    ]
    pruner = RoundPruner.from_trials(earlier, n_startup_trials=3, n_warmup_steps=1)
    assert pruner.medians == {0: 0.9, 1: 0.95, 2: 0.95}
    assert not pruner.should_prune(0, 5.0)
    assert not pruner.should_prune(1, 0.99)
    assert pruner.should_prune(1, 1.05)
    assert not pruner.should_prune(1, 1.0)
    # Worse than persistence, but better than the earlier trials' median: goes on.
    high = RoundPruner.from_trials([trial_with({0: 1.2, 1: 1.2})] * 3, 3, 1)
    assert not high.should_prune(1, 1.1) and high.should_prune(1, 1.3)
    # Too few earlier complete trials, or a warm-up of 0 asked for: nothing before fold 1.
    assert RoundPruner.from_trials(earlier, 4, 1).medians == {}
    assert RoundPruner.from_trials(earlier, 3, 0).n_warmup_steps == 1
