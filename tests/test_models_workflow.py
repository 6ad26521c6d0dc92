"""Real Snakemake runs of the modelling rules: setup, concurrent tuning shards, final fits,
baseline and comparison, on small synthetic data with a few trials per shard, tracked by a
password-protected MLflow server, with the Optuna storage's URL in an environment variable.

The module's run is killed (SIGKILL of Snakemake and its jobs) while the random forest's
shards run, and resumed with the plain command; a second workflow run then shares the same
Optuna storage and MLflow server under another experiment and user. Every test looks at what
these runs left."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from html import unescape
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import study_checks
from conftest import ROOT, SMALL_CONFIG, deploy_as_module, snakemake_command, write_config
from modelling_frames import model_settings, modelling_settings, small_config
from optuna.trial import TrialState
from servers import MlflowServer, start_mlflow_server, unauthenticated_status

from drg_workflow.documents import read_json
from drg_workflow.hashing import file_sha256
from drg_workflow.modelling.backtest import PREDICTION_COLUMNS, SCORE_COLUMNS
from drg_workflow.modelling.baseline import evaluate_baseline
from drg_workflow.modelling.comparison import COMPARISON_COLUMNS, gate_failures
from drg_workflow.modelling.data import prepare_modelling_data
from drg_workflow.modelling.models import model_estimator
from drg_workflow.modelling.tuning import open_storage
from drg_workflow.tables import read_arrow

pytestmark = pytest.mark.workflow


def module_config() -> dict:
    """.test/config-basic (tiny models, 2 shards x 3 trials per model) with two of its models
    (every modelling rule runs per model; tests/test_modelling_final.py logs and loads back
    the third), the Optuna storage named by an environment variable, the experiment's
    artifacts in the tracking server's own store, and random-forest trials of about a second
    (so the kill lands inside one)."""
    config = copy.deepcopy(SMALL_CONFIG)
    modelling = config["modelling"]
    modelling["models"] = {
        model: modelling["models"][model] for model in ("random_forest", "ridge")
    }
    modelling["tuning"]["storage_env"] = "OPTUNA_STORAGE"
    modelling["mlflow"] = {"artifact_location": None}
    modelling["models"]["random_forest"]["search_space"]["n_estimators"] = {
        "type": "int",
        "low": 60,
        "high": 100,
    }
    return config


CONFIG: dict = module_config()
MODELS = tuple(CONFIG["modelling"]["models"])
N_SHARDS = CONFIG["modelling"]["tuning"]["n_shards"]
TRIALS_PER_SHARD = CONFIG["modelling"]["tuning"]["trials_per_shard"]
ROUNDS = CONFIG["modelling"]["tuning"]["rounds"]
BUDGET = N_SHARDS * TRIALS_PER_SHARD
#: What every search space holds: the region that reduces to persistence, and the loss weights.
TARGET_FORM_SPACE = {
    "max_log_change": {"type": "float", "low": 0.0, "high": 1.0},
    "loss_weight_power": {"type": "categorical", "values": [0.0, 1.0]},
}
#: The config above with the schema's defaults filled in.
VALIDATED_CONFIG = small_config(**copy.deepcopy(CONFIG))
#: The default features, split and folds (the config above changes none of them).
SETTINGS = modelling_settings()
#: The second workflow run: one model, its own experiment and user, same storage and server,
#: and one tuning shard in one round (its study only has to be its own and whole).
OTHER_EXPERIMENT, OTHER_USER = "drg-workflow-other", "drg-run-other"
OTHER_TUNING = {"n_shards": 1, "rounds": 1}
OTHER_BUDGET = OTHER_TUNING["n_shards"] * TRIALS_PER_SHARD
#: What the module's runs get in their environment (set by the tracking_server fixture).
RUN_ENVIRONMENT: dict[str, str] = {}


def run_environment(**extra: str) -> dict[str, str]:
    """The environment of the module's runs: the tracking server's URI and user, the Optuna
    storage's URL, then ``extra``."""
    # An MLFLOW_TRACKING_URI of the developer's shell would send the test's runs elsewhere.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update(RUN_ENVIRONMENT)
    env.update(extra)
    return env


def run(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(workdir, *args),
        capture_output=True,
        text=True,
        timeout=600,
        env=run_environment(**(env or {})),
    )


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """The password-protected MLflow server, its run user's credentials in the environment of
    the runs and of this process (for the tests' clients), and the Optuna storage URL, with a
    token standing in for a password, in OPTUNA_STORAGE."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    server = start_mlflow_server(folder)
    storage = folder / f"optuna-{server.run_password}" / "optuna.db"
    environment = {**server.run_environment(), "OPTUNA_STORAGE": f"sqlite:///{storage}"}
    RUN_ENVIRONMENT.update(environment)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in environment.items():
                patch.setenv(name, value)
            yield server
    finally:
        RUN_ENVIRONMENT.clear()
        server.stop()


def shard_trials_of(model: str, workdir: Path, storage=None) -> list:
    """The trials of a model's study (empty until its setup_study created it), read through
    ``storage`` (opened from OPTUNA_STORAGE if not given)."""
    setup_path = workdir / f"results/tuning/{model}/setup.json"
    if not setup_path.exists():
        return []
    setup = read_json(setup_path)
    storage = storage or open_storage(os.environ["OPTUNA_STORAGE"])
    return optuna.load_study(study_name=setup["study_name"], storage=storage).get_trials()


def shard_summaries(model: str) -> list[str]:
    """The summaries of every tuning shard of ``model``, round after round."""
    return [
        f"results/tuning/{model}/round_{r}/shard_{i}.json"
        for r in range(ROUNDS)
        for i in range(N_SHARDS)
    ]


def kill_mid_shard(workdir: Path, targets: list[str]) -> dict:
    """Run Snakemake for ``targets`` and SIGKILL it (Snakemake and its jobs) once a
    random-forest shard has a finished trial and another running past its first fold; return
    what the kill left: the study's trial states and the MLflow runs still RUNNING."""
    killed = subprocess.Popen(
        snakemake_command(workdir, *targets),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=run_environment(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 420
    # Opened once the study exists, then reused: opening the sqlite storage takes ~40 ms of
    # CPU, which polled every 50 ms took half a core from the shards being watched.
    storage = None
    try:
        while True:
            assert killed.poll() is None, "the run ended before the kill"
            assert time.monotonic() < deadline, "no shard reached its second trial"
            if storage is None and (workdir / "results/tuning/random_forest/setup.json").exists():
                storage = open_storage(os.environ["OPTUNA_STORAGE"])
            trials = shard_trials_of("random_forest", workdir, storage)

            def round_shard(trial):
                return trial.user_attrs["round"], trial.user_attrs["shard"]

            shards_done = {round_shard(t) for t in trials if t.state.is_finished()}
            running = [
                t
                for t in trials
                if t.state == TrialState.RUNNING
                and t.intermediate_values
                and round_shard(t) in shards_done
            ]
            if running:
                break
            time.sleep(0.05)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    from mlflow import MlflowClient

    setup = read_json(workdir / "results/tuning/random_forest/setup.json")
    runs = MlflowClient(RUN_ENVIRONMENT["MLFLOW_TRACKING_URI"]).search_runs(
        [setup["experiment_id"]], "attributes.status = 'RUNNING' and tags.stage = 'trial'"
    )
    trials = shard_trials_of("random_forest", workdir)
    return {
        "states": {t.number: t.state.name for t in trials},
        "running_runs": len(runs),
        "finished": sum(t.state.is_finished() for t in trials),
    }


@pytest.fixture(scope="module")
def model_run(tracking_server, tmp_path_factory) -> Path:
    """Features, then the two random-forest shards alone (the only jobs ready once its study
    exists, so they run concurrently on the 2 cores), killed mid-shard and resumed with the
    same plain command, then the rest of the default target."""
    workdir = tmp_path_factory.mktemp("models")
    # Deployed the way other projects use the workflow: a Snakemake module in their own
    # directory (every test of this run goes through it).
    deploy_as_module(workdir, CONFIG)
    shards = shard_summaries("random_forest")
    killed = kill_mid_shard(workdir, shards)
    (workdir / "killed.json").write_text(json.dumps(killed))
    # The same command again (the workflow profile's rerun-incomplete redoes the killed jobs).
    resumed = run(workdir, *shards)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    second = run(workdir)
    assert second.returncode == 0, second.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def other_run(model_run: Path, tracking_server: MlflowServer, tmp_path_factory) -> Path:
    """A second workflow run sharing the Optuna storage and the MLflow server, under another
    experiment and its own user: the ridge model's comparison, on a copy of the data versions
    (so it does not build the chain again). Without the experiment in the study's name both
    runs would tune one study, and this run's setup would delete the first run's."""
    workdir = tmp_path_factory.mktemp("other")
    config = copy.deepcopy(CONFIG)
    config["modelling"]["models"] = {"ridge": config["modelling"]["models"]["ridge"]}
    config["modelling"]["mlflow"]["experiment_name"] = OTHER_EXPERIMENT
    config["modelling"]["tuning"].update(OTHER_TUNING)
    write_config(workdir, config)
    for version in model_run.glob("results/v*/"):
        if version.is_dir():
            shutil.copytree(version, workdir / "results" / version.name)
    shutil.copytree(model_run / ".snakemake/metadata", workdir / ".snakemake/metadata")
    password = "other-" + tracking_server.run_password[::-1]
    tracking_server.create_user(OTHER_USER, password)
    user = {"MLFLOW_TRACKING_USERNAME": OTHER_USER, "MLFLOW_TRACKING_PASSWORD": password}
    result = run(workdir, "results/models/comparison.csv", env=user)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule lag_columns" not in result.stdout  # the copied versions were used
    return workdir


@pytest.fixture(scope="module")
def mlflow_client(model_run: Path, tracking_server: MlflowServer):
    from mlflow import MlflowClient

    return MlflowClient(tracking_server.url)


def v13(workdir: Path) -> pd.DataFrame:
    return read_arrow(workdir / "results/v13/v13.arrow")


def test_deployed_as_a_module_everything_lands_in_the_users_directory(model_run: Path):
    """The default target, run from the user's directory through the module, writes there."""
    for path in (
        "results/v13/v13.csv",
        "results/models/split.json",
        "results/backtest/backtest.csv",
        "results/models/comparison.csv",
        "results/forecast/forecast.csv",
        "results/verify.json",
        "results/report/models/comparison.html",
        "logs/train_final/ridge.log",
        "benchmarks/tune_shard/ridge_round_0_shard_0.tsv",
    ):
        assert (model_run / path).is_file(), path
    verify = run(model_run, "verify")
    assert verify.returncode == 0, verify.stderr[-3000:]
    assert read_json(model_run / "logs/verify/verify.json")["passed"]


def test_the_forecast_path_goes_before_the_report_figures_ready_with_it(model_run: Path):
    """When the comparison is done, the champion's refit and the report's model figures are
    ready together; the refit (2 threads, the build's critical path) is started first instead
    of waiting for the figures to free a core (FORECAST_PATH_PRIORITY)."""
    logs = sorted((model_run / ".snakemake/log").glob("*.snakemake.log"))
    starts = next(
        re.findall(r"^(?:local)?rule (\w+):$", text, re.MULTILINE)
        for text in (log.read_text() for log in logs)
        if re.search(r"^(?:local)?rule refit_champion:$", text, re.MULTILINE)
    )
    assert starts.index("compare_models") < starts.index("refit_champion"), starts
    assert starts.index("refit_champion") < starts.index("report_models"), starts


def assert_study_is_whole(workdir: Path, model: str, client, budget: int = BUDGET) -> list:
    """The per-study checks of study_checks.py on a study of this module's runs."""
    return study_checks.assert_study_is_whole(
        workdir, model, os.environ["OPTUNA_STORAGE"], client, budget
    )


def test_study_holds_exactly_every_trial_of_the_concurrent_shards(model_run: Path, mlflow_client):
    for model in MODELS:
        setup = read_json(model_run / f"results/tuning/{model}/setup.json")
        assert setup["study_name"].startswith(f"{model}-")
        # The objective's error cap is named beside the study and on its MLflow parent run.
        cap = VALIDATED_CONFIG["modelling"]["tuning"]["error_cap_quantile"]
        assert setup["error_cap_quantile"] == cap
        parent = mlflow_client.get_run(setup["parent_run_id"])
        assert parent.data.tags["error_cap_quantile"] == str(cap)
        # The storage's URL stays in the environment: files name the variable only.
        assert setup["storage"] is None and setup["storage_env"] == "OPTUNA_STORAGE"
        trials = assert_study_is_whole(model_run, model, mlflow_client)
        finished = [t for t in trials if t.state != TrialState.FAIL]
        shards = [read_json(model_run / path) for path in shard_summaries(model)]
        numbers = [n for shard in shards for n in shard["trial_numbers"]]
        assert sorted(numbers) == sorted(t.number for t in finished)  # disjoint, complete
        # One sampler seed per round (base_seed + round), every shard its own slice.
        assert [s["sampler_seed"] for s in shards] == [
            1000 + r for r in range(ROUNDS) for _ in range(N_SHARDS)
        ]
        for shard in shards:
            owned = [
                t.user_attrs["candidate"]
                for t in finished
                if (t.user_attrs["round"], t.user_attrs["shard"])
                == (shard["round"], shard["shard_index"])
            ]
            assert sorted(owned) == shard["candidates"]
        assert sum(len(s["candidates"]) for s in shards) == BUDGET
        # Each trial records the fold RMSEs it reported, one per year fold unless pruned.
        for trial in finished:
            if trial.state == TrialState.COMPLETE:
                assert len(trial.intermediate_values) == 3
    # The random forest's two shards of round 0 ran at the same time, against the one study.
    rf = [t for t in shard_trials_of("random_forest", model_run) if t.user_attrs["round"] == 0]
    spans = [
        [t for t in rf if t.user_attrs["shard"] == shard and t.datetime_complete]
        for shard in range(N_SHARDS)
    ]
    starts = [min(t.datetime_start for t in span) for span in spans]
    ends = [max(t.datetime_complete for t in span) for span in spans]
    assert max(starts) < min(ends)


def test_a_run_killed_mid_shard_resumes_without_repeating_trials(model_run: Path, mlflow_client):
    """SIGKILL of the run while a random-forest shard had finished trials and one running,
    then the plain command: that shard kept its finished trials, its running trial is FAIL
    (interrupted) with its MLflow run KILLED, and it ran only the missing trials."""
    killed = read_json(model_run / "killed.json")
    storage = os.environ["OPTUNA_STORAGE"]
    print(f"after the kill: {killed}")
    print(
        "after the rerun:",
        study_checks.study_counts(model_run, "random_forest", storage, mlflow_client),
    )
    # What the kill left behind: a trial RUNNING in the study, its MLflow run RUNNING.
    assert "RUNNING" in killed["states"].values() and killed["running_runs"] >= 1
    assert killed["finished"] >= 1
    trials = assert_study_is_whole(model_run, "random_forest", mlflow_client)
    states = {str(t.number): t.state.name for t in trials}
    interrupted = [n for n, state in killed["states"].items() if state == "RUNNING"]
    assert all(states[n] == "FAIL" for n in interrupted)
    # Trials finished before the kill are the same trials now: kept, not redone.
    before = {n for n, state in killed["states"].items() if state in ("COMPLETE", "PRUNED")}
    assert all(states[n] in ("COMPLETE", "PRUNED") for n in before)
    assert len(trials) == BUDGET + len(interrupted)
    shards = [read_json(model_run / path) for path in shard_summaries("random_forest")]
    # Every candidate ran once: before the kill (kept, counted as resumed by a shard started
    # again) or after it; the killed trial's shard resumed with its finished trial.
    assert sum(s["n_trials_resumed"] + s["n_trials_run"] for s in shards) == BUDGET
    assert 1 <= sum(s["n_trials_resumed"] for s in shards) <= len(before)
    assert sorted(n for s in shards for n in s["interrupted_trial_numbers"]) == sorted(
        map(int, interrupted)
    )


def test_two_runs_sharing_the_storage_and_the_server_keep_a_study_each(
    model_run: Path, other_run: Path, tracking_server: MlflowServer
):
    """The second run (its own experiment and user) tuned its own ridge study in the same
    Optuna storage; the first run's study is whole, and neither user sees the other's runs."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    first = read_json(model_run / "results/tuning/ridge/setup.json")
    second = read_json(other_run / "results/tuning/ridge/setup.json")
    assert first["study_name"] != second["study_name"]
    assert first["experiment_id"] != second["experiment_id"]
    names = optuna.get_all_study_names(open_storage(os.environ["OPTUNA_STORAGE"]))
    assert {first["study_name"], second["study_name"]} <= set(names)
    other_password = "other-" + tracking_server.run_password[::-1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", OTHER_USER)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", other_password)
        other_client = MlflowClient(tracking_server.url)
        assert_study_is_whole(other_run, "ridge", other_client, OTHER_BUDGET)
        with pytest.raises(MlflowException, match="403|PERMISSION_DENIED|Permission denied"):
            other_client.get_experiment(first["experiment_id"])
    assert_study_is_whole(model_run, "ridge", MlflowClient(tracking_server.url))


def test_mlflow_holds_every_trial_under_its_parent_in_the_experiment(
    model_run: Path, mlflow_client, tracking_server: MlflowServer
):
    experiment = mlflow_client.get_experiment_by_name("drg-workflow")
    assert experiment is not None
    # The server's own artifact store, per experiment (what its basic-auth app can protect).
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    # setup_mlflow created it, once; every setup and the baseline log into it.
    created = read_json(model_run / "results/mlflow/experiment.json")
    assert created["experiment_id"] == experiment.experiment_id
    assert created["tracking_uri"] == tracking_server.url
    baseline = read_json(model_run / "results/models/baseline/metrics.json")
    assert baseline["mlflow"]["experiment_id"] == experiment.experiment_id
    for model in MODELS:
        setup = read_json(model_run / f"results/tuning/{model}/setup.json")
        assert setup["experiment_id"] == experiment.experiment_id
        trials = mlflow_client.search_runs(
            [experiment.experiment_id],
            f"tags.model = '{model}' and tags.stage = 'trial' and attributes.status = 'FINISHED'",
            max_results=1000,
        )
        assert len(trials) == BUDGET
        assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {setup["parent_run_id"]}
        assert {r.data.tags["optuna_state"] for r in trials} <= {"COMPLETE", "PRUNED"}
        assert all("fold_0_rmse" in r.data.metrics for r in trials)
    # Nothing was filed into the Default experiment (the set_experiment race); only the admin
    # may look there (the run's user has no permission on it).
    from mlflow import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", tracking_server.admin_password)
        admin = MlflowClient(tracking_server.url)
        default = admin.get_experiment_by_name("Default")
        assert default is None or admin.search_runs([default.experiment_id]) == []


def test_the_tracking_server_lets_no_one_in_without_a_password(tracking_server: MlflowServer):
    assert unauthenticated_status(tracking_server.url) == 401


def test_final_runs_trace_to_the_data_and_load_back(
    model_run: Path, mlflow_client, tracking_server: MlflowServer
):
    import mlflow

    data_sha256 = read_json(model_run / "results/v13/v13_metadata.json")["sha256"]
    frame = v13(model_run)
    data = prepare_modelling_data(frame, SETTINGS)
    for model in MODELS:
        info = read_json(model_run / f"results/models/{model}/mlflow_run.json")
        metrics = read_json(model_run / f"results/models/{model}/metrics.json")
        run = mlflow_client.get_run(info["run_id"])
        assert run.data.tags["stage"] == "final"
        assert run.data.tags["data_sha256"] == data_sha256 == metrics["data_sha256"]
        assert run.data.tags["config_hash"] == metrics["config_hash"]
        assert run.data.tags["mlflow.parentRunId"] == info["parent_run_id"]
        assert run.data.metrics["val_rmse"] == pytest.approx(metrics["val_rmse"])
        (dataset_input,) = run.inputs.dataset_inputs
        assert dataset_input.dataset.name == "v13"
        assert {t.key: t.value for t in dataset_input.tags}["data_sha256"] == data_sha256
        artifacts = {a.path for a in mlflow_client.list_artifacts(info["run_id"])}
        assert {"predictions", "importances", "settings.json"} <= artifacts

        mlflow.set_tracking_uri(tracking_server.url)
        try:
            loaded = mlflow.sklearn.load_model(info["model_uri"])
        finally:
            mlflow.set_tracking_uri(None)
        predicted = loaded.predict(data.X["validation"])
        saved = pd.read_csv(model_run / f"results/models/{model}/predictions.csv")
        saved = saved[saved["split"] == "validation"]
        np.testing.assert_allclose(predicted, saved["y_pred"].to_numpy(), rtol=1e-9)

        permutation = pd.read_csv(model_run / f"results/models/{model}/permutation_importance.csv")
        assert sorted(permutation["feature"]) == sorted(data.features)
        impurity = pd.read_csv(model_run / f"results/models/{model}/impurity_importance.csv")
        assert impurity.empty == (model != "random_forest")


def test_comparison_has_every_model_and_the_baseline(model_run: Path):
    table = pd.read_csv(model_run / "results/models/comparison.csv")
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert sorted(table["model"]) == sorted([*MODELS, "baseline"])
    models = table[table["model"] != "baseline"]
    trials = models["n_trials_complete"] + models["n_trials_pruned"]
    assert (trials == BUDGET).all()
    assert models[["cv_rmse", "cv_mae", "val_rmse", "test_rmse"]].notna().all().all()
    # Fit what is scored: the best trial of every study is never worse than persistence in CV
    # (in the objective's capped RMSE and in MAE).
    baseline = table.set_index("model").loc["baseline"]
    for model in models["model"]:
        metrics = read_json(model_run / f"results/models/{model}/metrics.json")
        assert metrics["cv_loss_ratio"] <= 1.0, model
    assert (models["cv_mae"] <= baseline["cv_mae"]).all()
    # Models that fail the skill gate carry the warning, the others none.
    backtest = pd.read_csv(model_run / "results/backtest/backtest.csv")
    skill_test = pd.read_csv(model_run / "results/backtest/skill_test.csv")
    assert (table["choosing_origins"] == "2014 2015").all()
    for _, row in models.iterrows():
        passes = row["passes_gate"] in (True, "True")
        assert passes == (gate_failures(backtest, skill_test, row["model"]) == [])
        assert isinstance(row["warning"], str) != passes
        skills = json.loads(row["skill_rmse_by_origin"])
        assert list(skills) == ["2014", "2015", "2017"]


def test_the_oracle_script_scores_the_backtest_as_the_workflow_does(model_run: Path):
    """scripts/oracle_skill.py in the build's directory: a row per backtest origin; the models'
    skills are the backtest's own, the oracle's are finite."""
    command = [sys.executable, str(ROOT / "scripts/oracle_skill.py")]
    printed = subprocess.run(
        [*command, "--configfile", "config/config.yaml"],
        cwd=model_run,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    header, _, *rows = [line.strip("| ").split(" | ") for line in printed.splitlines()]
    backtest = pd.read_csv(model_run / "results/backtest/backtest.csv").set_index(
        ["origin", "model"]
    )
    origins = sorted(backtest.index.get_level_values("origin").unique())
    assert [int(row[0]) for row in rows] == origins
    for row in rows:
        cells = dict(zip(header[2:], row[2:], strict=True))
        oracle = [float(x) for x in cells.pop("oracle").split(" / ")]
        assert np.isfinite(oracle).all()
        for model, cell in cells.items():
            scored = backtest.loc[(int(row[0]), model), ["skill_rmse", "skill_mae"]]
            assert [float(x) for x in cell.split(" / ")] == pytest.approx(scored, abs=5e-4)


def test_the_years_come_from_the_data(model_run: Path):
    """The default relative split on the data's years (2010-2017 in v13), three origins as
    .test/config-basic asks; v0 records the raw data's years."""
    split = read_json(model_run / "results/models/split.json")
    assert split["split"] == {
        "train": [2010, 2013],
        "validation": [2014, 2015],
        "test": [2016, 2017],
    }
    assert split["origins"] == {"choosing": [2014, 2015], "reporting": [2017]}
    assert split["cv_fold_years"] == [2011, 2012, 2013]
    assert list(split["unused_years"]) == ["2009"]
    v0 = read_json(model_run / "results/v0/v0_metadata.json")
    assert v0["years"] == {
        "first": 2009,
        "last": 2017,
        "present": list(range(2009, 2018)),
        "missing": [],
    }
    metrics = read_json(model_run / "results/models/ridge/metrics.json")
    assert metrics["years"] == split["split"]


def test_one_backtest_job_per_model_refits_before_each_origin_on_the_years_before_it(
    model_run: Path,
):
    data = read_json(model_run / "results/v13/v13_metadata.json")
    predictions = []
    for model in MODELS:
        tuned = read_json(model_run / f"results/models/{model}/metrics.json")["best_params"]
        fits = read_json(model_run / f"results/backtest/{model}/fits.json")["fits"]
        assert [fit["origin"] for fit in fits] == [2014, 2015, 2017]
        for fit in fits:
            origin = fit["origin"]
            assert fit["model"] == model
            assert fit["training_years"] == list(range(2010, origin))
            assert fit["role"] == ("choosing" if origin < 2016 else "reporting")
            assert {k: fit["params"][k] for k in tuned} == tuned
        assert (model_run / f"benchmarks/backtest_model/{model}.tsv").is_file()
        own = pd.read_csv(model_run / f"results/backtest/{model}/predictions.csv")
        assert own["origin"].value_counts().sort_index().to_dict() == {
            fit["origin"]: fit["rows_predicted"] for fit in fits
        }
        predictions.append(own)
    # Every out-of-sample prediction in one table, with what the intervals issue calibrates on.
    kept = pd.read_csv(model_run / "results/backtest/predictions.csv")
    assert list(kept.columns) == list(PREDICTION_COLUMNS)
    assert len(kept) == sum(map(len, predictions)) and kept["last_year_discharges"].notna().all()
    v13 = read_arrow(model_run / "results/v13/v13.arrow")
    merged = kept.merge(v13, on=["year", "facility_id", "apr_drg_code"], validate="many_to_one")
    np.testing.assert_allclose(merged["actual"], merged["w_total_median_profit"])
    # The table, with metadata like a data version's; persistence's rows at skill 0.
    table = pd.read_csv(model_run / "results/backtest/backtest.csv")
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert len(table) == 3 * (len(MODELS) + 1)
    baseline = table[table["model"] == "baseline"]
    assert (baseline[["skill_rmse", "skill_mae"]] == 0).all().all()
    models = table[table["model"] != "baseline"]
    assert (models["skill_rmse_lower"] <= models["skill_rmse"]).all()
    assert (models["skill_rmse"] <= models["skill_rmse_upper"]).all()
    metadata = read_json(model_run / "results/backtest/backtest_metadata.json")
    assert metadata["sha256"] == file_sha256(model_run / "results/backtest/backtest.csv")
    assert metadata["input"] == {"version": "v13", "sha256": data["sha256"]}
    assert metadata["rows"] == len(table) and metadata["origins"]["reporting"] == [2017]
    assert metadata["predictions"]["sha256"] == file_sha256(
        model_run / "results/backtest/predictions.csv"
    )
    assert metadata["transformation"]["parameters"]["bootstrap_resamples"] == 1000


def test_the_backtest_is_logged_in_mlflow_one_step_per_origin(model_run: Path, mlflow_client):
    run_ids = read_json(model_run / "results/backtest/mlflow_run.json")
    parent = mlflow_client.get_run(run_ids["run_id"])
    assert parent.data.tags["stage"] == "backtest"
    assert parent.data.tags["choosing_origins"] == "2014 2015"
    artifacts = {a.path for a in mlflow_client.list_artifacts(run_ids["run_id"])}
    assert artifacts == {"backtest.csv", "backtest_metadata.json"}
    table = pd.read_csv(model_run / "results/backtest/backtest.csv")
    assert set(run_ids["model_run_ids"]) == {*MODELS, "baseline"}
    for model, run_id in run_ids["model_run_ids"].items():
        run = mlflow_client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == run_ids["run_id"]
        history = mlflow_client.get_metric_history(run_id, "skill_rmse")
        rows = table[table["model"] == model]
        assert {m.step: m.value for m in history} == pytest.approx(
            dict(zip(rows["origin"], rows["skill_rmse"], strict=True))
        )


def test_the_champion_is_registered_and_loads_back_by_its_alias(
    model_run: Path, mlflow_client, tracking_server: MlflowServer
):
    import mlflow

    table = pd.read_csv(model_run / "results/models/comparison.csv")
    champion = read_json(model_run / "results/models/champion.json")
    winners = table[table["passes_gate"].astype("string") == "True"]
    assert champion["champion"] == winners.sort_values("skill_rmse")["model"].iloc[-1]
    assert table.loc[table["champion"], "model"].tolist() == [champion["champion"]]
    name = "drg-workflow-forecaster"
    assert champion["registered_model"] == name
    version = mlflow_client.get_model_version_by_alias(name, "champion")
    assert str(version.version) == champion["version"] and version.run_id == champion["run_id"]
    refit = read_json(model_run / "results/models/champion_refit.json")
    assert refit["run_id"] == champion["run_id"] and champion["chosen_on"] == [2014, 2015]
    # The registered model is the champion refitted on every year up to the last one.
    years = sorted(v13(model_run)["year"].unique())
    assert champion["training_years"] == refit["training_years"] == years
    assert version.tags["training_years"] == f"{years[0]}-{years[-1]}" == "2010-2017"
    assert version.tags["last_training_year"] == "2017"
    assert "refitted on 2010-2017" in version.description
    assert "origins 2014, 2015" in version.description
    run = mlflow_client.get_run(champion["run_id"])
    assert run.data.tags["stage"] == "refit" and run.data.tags["last_training_year"] == "2017"
    assert run.info.run_name == f"{champion['champion']}-refit"

    frame = v13(model_run)
    features = read_json(model_run / f"results/models/{champion['champion']}/metrics.json")[
        "features"
    ]
    mlflow.set_tracking_uri(tracking_server.url)
    try:
        by_alias = mlflow.sklearn.load_model(f"models:/{name}@champion")
    finally:
        mlflow.set_tracking_uri(None)
    # The same fit, by hand, on every year: the registered model predicts what it predicts.
    model = VALIDATED_CONFIG["modelling"]["models"][champion["champion"]]
    settings = model_settings(
        champion["champion"], model["search_space"], model["fixed_params"], VALIDATED_CONFIG
    )
    by_hand = model_estimator(settings, refit["params"]).fit(
        frame[features], frame["w_total_median_profit"]
    )
    np.testing.assert_allclose(
        by_alias.predict(frame[features]), by_hand.predict(frame[features]), rtol=1e-9
    )
    assert by_alias.target_form == "relative"  # the schema default, learnt inside the model


def test_the_champion_loads_by_alias_where_the_workflow_is_not(
    model_run: Path, tmp_path: Path, tracking_server: MlflowServer
):
    """A user's own Python, without this repository on its path: the model brings its code."""
    champion = read_json(model_run / "results/models/champion.json")["champion"]
    features = read_json(model_run / f"results/models/{champion}/metrics.json")["features"]
    script = f"""
import json, sys, mlflow, pyarrow.ipc as ipc
mlflow.set_tracking_uri("{tracking_server.url}")  # its user and password: the environment
model = mlflow.sklearn.load_model("models:/drg-workflow-forecaster@champion")
rows = ipc.open_file("{model_run}/results/v13/v13.arrow").read_all().to_pandas()
print(sys.modules["drg_workflow"].__file__)
print(json.dumps(model.predict(rows[{features!r}].head(5)).tolist()))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    module_file, predicted = result.stdout.strip().splitlines()[-2:]
    # The model's own copy of the package, downloaded from the server: not this repository's.
    assert "/code/drg_workflow/" in module_file and str(ROOT) not in module_file
    saved = pd.read_csv(model_run / f"results/models/{champion}/predictions.csv")
    rows = v13(model_run).head(5)
    expected = read_json(model_run / "results/models/champion_refit.json")["model_uri"]
    import mlflow

    mlflow.set_tracking_uri(tracking_server.url)
    try:
        from_run = mlflow.sklearn.load_model(expected).predict(rows[features])
    finally:
        mlflow.set_tracking_uri(None)
    assert not saved.empty
    np.testing.assert_allclose(json.loads(predicted), from_run, rtol=1e-12)


def test_the_forecast_covers_every_facility_and_drg_of_the_last_year(model_run: Path):
    forecast = pd.read_csv(model_run / "results/forecast/forecast.csv")
    metadata = read_json(model_run / "results/forecast/forecast_metadata.json")
    v10 = read_arrow(model_run / "results/v10/v10.arrow")
    last_year = int(v10["year"].max())
    keys = ["facility_id", "apr_drg_code"]
    last = v10.loc[v10["year"] == last_year, keys]
    assert (forecast["year"] == last_year + 1).all()
    assert sorted(map(tuple, forecast[keys].to_numpy())) == sorted(map(tuple, last.to_numpy()))
    levels = (0.5, 0.8, 0.95)  # the schema's default forecast.interval_levels
    bounds = [f"{side}_{level:g}" for level in levels for side in ("lower", "upper")]
    assert list(forecast.columns) == [
        "year",
        "facility_id",
        "facility_name",
        "apr_drg_code",
        "apr_drg_description",
        "interval_group",
        "persistence",
        "prediction",
        *bounds,
    ]
    values = forecast[["persistence", "prediction", *bounds]]
    assert np.isfinite(values.to_numpy()).all()
    # Money in cents, intervals around the prediction and nested.
    np.testing.assert_array_equal(values.to_numpy(), np.round(values.to_numpy(), 2))
    for narrow, wide in zip(levels[:-1], levels[1:], strict=True):
        assert (forecast[f"lower_{wide:g}"] <= forecast[f"lower_{narrow:g}"]).all()
        assert (forecast[f"upper_{narrow:g}"] <= forecast[f"upper_{wide:g}"]).all()
    assert (forecast["lower_0.5"] <= forecast["prediction"]).all()
    assert (forecast["prediction"] <= forecast["upper_0.5"]).all()
    # Names of the last year, joined by key.
    v1 = read_arrow(model_run / "results/v1/v1.arrow")
    last_names = v1.loc[v1["year"] == last_year].drop_duplicates("facility_id")
    named = forecast.merge(last_names[["facility_id", "facility_name"]], on="facility_id")
    assert len(named) == len(forecast) and forecast["facility_name"].notna().all()
    assert (named["facility_name_x"] == named["facility_name_y"]).all()
    assert forecast["apr_drg_description"].notna().all()
    # Persistence is last year's target.
    target = v10.loc[v10["year"] == last_year, [*keys, "w_total_median_profit"]]
    merged = forecast.merge(target, on=keys)
    np.testing.assert_allclose(merged["persistence"], merged["w_total_median_profit"])
    assert not np.allclose(forecast["prediction"], forecast["persistence"])  # a model's

    champion = read_json(model_run / "results/models/champion.json")
    assert metadata["rows"] == len(forecast) and metadata["forecast_year"] == last_year + 1
    assert metadata["sha256"] == file_sha256(model_run / "results/forecast/forecast.csv")
    assert metadata["model"] == champion["champion"] and metadata["fallback"] is None
    assert "run_id" not in metadata  # new with every build: the metadata keeps the same bytes
    assert champion["run_name"] == f"{champion['champion']}-refit"
    assert metadata["model_version"] == champion["version"]
    v13_metadata = read_json(model_run / "results/v13/v13_metadata.json")
    assert metadata["modelling_data"] == {"version": "v13", "sha256": v13_metadata["sha256"]}
    assert metadata["last_data_year"] == last_year
    assert metadata["training_years"] == champion["training_years"]
    interval = metadata["interval"]
    assert interval["method"] == "signed_log" and interval["levels"] == list(levels)
    assert interval["groups"]["column"] == "sum_discharges_lag1"
    # Calibrated on the champion's backtest residuals at every origin; measured at the
    # reporting origin with the same groups calibrated on the choosing origins only.
    assert interval["calibration"]["years"] == [2014, 2015, 2017]
    test = interval["test"]
    assert test["years"] == [2017] and test["calibration_years"] == [2014, 2015]
    groups = interval["groups"]["order"]
    assert sorted(groups) == sorted(interval["by_group"])
    for level in ("0.5", "0.8", "0.95"):
        assert sorted(test["by_group"][level]) == sorted([*groups, "all"])
        assert set(test["by_year"][level]) == {"2017", "all"}
        assert test["by_group"][level]["all"]["winkler_score"] > 0
    assert set(forecast["interval_group"]) <= set(groups)
    # The coverage recorded is the coverage of the champion's backtest predictions at the
    # reporting origin, with each row's group's quantile.
    predictions = pd.read_csv(model_run / "results/backtest/predictions.csv")
    test_rows = predictions[
        (predictions["model"] == champion["champion"]) & (predictions["role"] == "reporting")
    ].merge(v13(model_run)[[*keys, "year", "sum_discharges_lag1"]], on=["year", *keys])
    test_rows = test_rows.rename(columns={"actual": "y_true", "prediction": "y_pred"})
    edges, volume = interval["groups"]["edges"], test_rows["sum_discharges_lag1"]
    bins = np.asarray([g for g in groups if g != "missing"])
    labels = np.where(volume.isna(), "missing", bins[np.searchsorted(edges, volume, "right")])
    q = np.asarray([test["quantiles"][g]["0.8"] for g in labels])
    log_pred = np.sign(test_rows["y_pred"]) * np.log1p(np.abs(test_rows["y_pred"]))
    log_true = np.sign(test_rows["y_true"]) * np.log1p(np.abs(test_rows["y_true"]))
    assert test["by_group"]["0.8"]["all"]["coverage"] == pytest.approx(
        np.mean(np.abs(log_true - log_pred) <= q), abs=1e-6
    )
    assert 0.6 <= test["by_group"]["0.8"]["all"]["coverage"] <= 0.95
    log = (model_run / "logs/forecast/forecast.log").read_text()
    assert f"for {last_year + 1}, the year after the data's last year {last_year}" in log


def test_the_forecast_has_the_same_bytes_when_the_champion_is_registered_again(
    model_run: Path, mlflow_client, tmp_path: Path
):
    """A second build that registers the champion again (a new registry version, new MLflow
    ids) writes the same forecast.csv: the ids live only in the metadata. The model card goes
    with the new version, as its description and an artifact of its run."""
    name = "drg-workflow-forecaster"
    before = read_json(model_run / "results/forecast/forecast_metadata.json")
    workdir = tmp_path / "again"
    shutil.copytree(model_run, workdir, symlinks=True)
    try:
        result = run(workdir, "--forcerun", "register_champion")
        assert result.returncode == 0, result.stderr[-3000:]
        after = read_json(workdir / "results/forecast/forecast_metadata.json")
        assert after["model_version"] != before["model_version"]
        assert (workdir / "results/forecast/forecast.csv").read_bytes() == (
            model_run / "results/forecast/forecast.csv"
        ).read_bytes()
        assert after["sha256"] == before["sha256"]
        version = mlflow_client.get_model_version_by_alias(name, "champion")
        assert str(version.version) == after["model_version"]
        card = (workdir / "results/forecast/model_card.md").read_text()
        assert version.description == card
        assert f"{name}, version {version.version}, alias champion" in card
        artifacts = {a.path for a in mlflow_client.list_artifacts(version.run_id)}
        assert "model_card.md" in artifacts
    finally:
        # The module's run shares the server's registry: its champion is its own version again.
        mlflow_client.set_registered_model_alias(name, "champion", before["model_version"])


def test_baseline_rule_equals_the_package(model_run: Path):
    data = prepare_modelling_data(v13(model_run), SETTINGS)
    expected = evaluate_baseline(data.frames, SETTINGS.cv_folds, SETTINGS.features)
    metrics = read_json(model_run / "results/models/baseline/metrics.json")
    for key in (
        "cv_rmse",
        "cv_mae",
        "val_rmse",
        "val_mae",
        "val_r2",
        "test_rmse",
        "test_mae",
        "test_r2",
    ):
        assert metrics[key] == pytest.approx(expected[key])


def test_unchanged_rerun_does_nothing_and_changes_rerun_what_they_touch(model_run: Path):
    result = run(model_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr

    # A lag setting changes v11..v13, hence every model's study (new data, new study name).
    lags = run(model_run, "-n", "--config", "lags={by: row}")
    assert lags.returncode == 0, lags.stderr[-2000:]
    for rule in ("lag_columns", "setup_study", "tune_shard", "train_final", "compare_models"):
        assert f"rule {rule}:" in lags.stdout
    shard_jobs = N_SHARDS * ROUNDS * len(MODELS)
    assert re.search(rf"^tune_shard\s+{shard_jobs}$", lags.stdout, re.MULTILINE)

    # A search-space change re-tunes that model only.
    config = copy.deepcopy(CONFIG)
    config["modelling"]["models"]["ridge"]["search_space"]["alpha"]["high"] = 10.0
    write_config(model_run, config)
    try:
        ridge = run(model_run, "-n")
    finally:
        write_config(model_run, CONFIG)
    assert ridge.returncode == 0, ridge.stderr[-2000:]
    planned = ridge.stdout
    assert "results/tuning/ridge/setup.json" in planned
    assert "results/tuning/random_forest/setup.json" not in planned.split("Job stats")[-1]
    assert "results/models/random_forest/metrics.json" not in _outputs(planned)
    assert "results/models/ridge/metrics.json" in _outputs(planned)


def test_a_search_space_change_reruns_that_model_only_not_the_baseline(model_run: Path):
    """The baseline depends on the data and the MLflow experiment, not on any model (it used to
    take the experiment from the first model's setup)."""
    config = copy.deepcopy(CONFIG)
    config["modelling"]["models"]["random_forest"]["search_space"]["max_depth"]["high"] = 5
    write_config(model_run, config)
    try:
        plan = run(model_run, "-n")
    finally:
        write_config(model_run, CONFIG)
    assert plan.returncode == 0, plan.stderr[-2000:]
    stats = plan.stdout.split("Job stats")[-1]
    for rule, count in (("setup_study", 1), ("tune_shard", N_SHARDS * ROUNDS), ("train_final", 1)):
        assert re.search(rf"^{rule}\s+{count}$", stats, re.MULTILINE), stats
    assert "compare_models" in stats
    assert "evaluate_baseline" not in stats and "setup_mlflow" not in stats
    assert "results/models/baseline/metrics.json" not in _outputs(plan.stdout)
    assert "results/tuning/ridge/setup.json" not in _outputs(plan.stdout)


def _outputs(plan: str) -> str:
    """The ``output:`` lines of a dry-run plan."""
    return "\n".join(line for line in plan.splitlines() if line.strip().startswith("output:"))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"alpha": {"type": "float", "low": 10.0, "high": 1.0}},
            "config key modelling.models.ridge.search_space.alpha: low (10.0) must be < high",
        ),
        (
            {"alpha": {"type": "float", "low": 0.0, "high": 1.0, "log": True}},
            "config key modelling.models.ridge.search_space.alpha: log: true needs low > 0",
        ),
        (
            {"alpha": {"type": "float", "low": 0.1}},
            "config key modelling.models.ridge.search_space.alpha: 'high' is a required",
        ),
    ],
)
def test_bad_search_space_fails_before_any_job(tmp_path: Path, space: dict, message: str):
    config = copy.deepcopy(CONFIG)
    config["modelling"]["models"]["ridge"]["search_space"] = space
    write_config(tmp_path, config)
    result = run(tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"alpah": {"type": "float", "low": 0.1, "high": 1.0}, **TARGET_FORM_SPACE},
            "config key modelling.models.ridge.search_space.alpah: ridge does not accept a "
            "parameter 'alpah'; accepted: alpha, ",
        ),
        (
            {"alpha": {"type": "float", "low": -1.0, "high": 1.0}, **TARGET_FORM_SPACE},
            "config key modelling.models.ridge.search_space.alpha.low: value -1.0 rejected by "
            "ridge: The 'alpha' parameter of Ridge must be",
        ),
    ],
)
def test_estimator_errors_fail_the_setup_job_with_one_clear_line(
    model_run: Path, tmp_path: Path, space: dict, message: str
):
    """Names and values only scikit-learn can judge are checked by the model's setup_study job
    (not at every parse): it fails with one line naming the config key, before any trial."""
    workdir = tmp_path / "copy"
    shutil.copytree(model_run, workdir, symlinks=True)
    config = copy.deepcopy(CONFIG)
    config["modelling"]["models"]["ridge"]["search_space"] = space
    write_config(workdir, config)
    result = run(workdir, "results/tuning/ridge/setup.json")
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if "ERROR in rule" in line]
    assert line.startswith("ERROR in rule setup_study: ") and message in line


def test_unknown_model_fails_before_any_job(tmp_path: Path):
    config = copy.deepcopy(CONFIG)
    config["modelling"]["models"]["xgboost"] = {
        "search_space": {"eta": {"type": "float", "low": 0.01, "high": 0.3}}
    }
    write_config(tmp_path, config)
    result = run(tmp_path)
    assert result.returncode != 0
    assert "config key modelling.models.xgboost: unknown model 'xgboost'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_tracking_uri_comes_from_the_environment_when_not_configured(model_run: Path):
    """modelling.mlflow.tracking_uri is null: MLFLOW_TRACKING_URI decides where runs go, and a
    new store means new studies (the URI is part of the rules' params)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///elsewhere/mlflow.db"}
    result = subprocess.run(
        snakemake_command(model_run, "-n"), capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule setup_study:" in result.stdout
    assert "Params have changed since last execution" in result.stdout
    assert "sqlite:///elsewhere/mlflow.db" in result.stdout


# ------------------------------------------------------------------------- the report

#: Categories of `snakemake --report` (workflow/rules/report.smk).
REPORT_CATEGORIES = ("Data versions", "Features", "Tuning", "Models", "Backtest", "Forecast")
#: Headless Chromium flags that keep it off the network and out of the user's profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
)


@pytest.fixture(scope="module")
def report_html(model_run: Path) -> Path:
    """`snakemake --report report.html` after the module's run (which built the figures)."""
    result = run(model_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_run / "report.html"


def _embedded(html: str, path: Path) -> bool:
    """Whether the report embeds the file's bytes (as base64, the way Snakemake does)."""
    return base64.b64encode(path.read_bytes()).decode() in html


def test_report_holds_every_category_figure_table_and_data_version(
    model_run: Path, report_html: Path
):
    html = report_html.read_text()
    for category in REPORT_CATEGORIES:
        assert f'"{category}"' in html, category
    report_dir = model_run / "results/report"
    items = sorted(p for p in report_dir.rglob("*") if p.suffix in {".png", ".html", ".json"})
    pngs = [p for p in items if p.suffix == ".png"]
    # Per model: history, importances, predicted vs actual, residuals, feature importances;
    # and rows along the chain, target by year, lag features, trials per shard, the backtest's
    # skill by origin, the forecast's changes, its intervals' coverage by group, their
    # calibration and their width by group.
    assert len(pngs) == 5 * len(MODELS) + 9
    for path in items:
        assert _embedded(html, path), path
    # The comparison table is embedded with every model, the baseline and the warnings.
    comparison = (report_dir / "models/comparison.html").read_text()
    for model in (*MODELS, "baseline"):
        assert f'<td class="text">{model}</td>' in comparison
    table = pd.read_csv(model_run / "results/models/comparison.csv", keep_default_na=False)
    for warning in filter(None, table["warning"]):
        assert warning.replace("'", "&#x27;") in comparison
    # Every data version: in the lineage table, and its metadata attached with its sha256.
    lineage = (report_dir / "data_versions/lineage.html").read_text()
    versions = sorted(model_run.glob("results/v*/v*_metadata.json"))
    assert len(versions) == 16  # v0..v13, v5_1, v5_2
    for meta_path in versions:
        meta = read_json(meta_path)
        version = meta["version"]
        assert f'<td class="text">{version}</td>' in lineage
        assert f"{len(meta['contracts'])} passed: " in lineage  # its contract checks
        assert f'"version": "{version}"' in html
        assert f'"sha256": "{meta["sha256"][:12]}"' in html
        assert _embedded(html, meta_path)  # the attached copy holds the same bytes
    # The backtest: its figure and its table, every model and origin in it.
    backtest = (report_dir / "backtest/backtest.html").read_text()
    for origin in ("2014", "2015", "2017"):
        assert f'<td class="text">{origin}</td>' in backtest
    assert "choosing" in backtest and "reporting" in backtest and "(champion)" in backtest
    assert _embedded(html, report_dir / "backtest/skill_by_origin.png")
    # The forecast's figures, captioned with the registry alias they came from.
    for figure in (
        "forecast_changes.png",
        "coverage_by_group.png",
        "interval_calibration.png",
        "interval_width_by_group.png",
        "forecast_table.html",
        "model_card.html",
    ):
        assert _embedded(html, report_dir / f"forecast/{figure}")
    card = (report_dir / "forecast/model_card.html").read_text()
    assert "Prediction intervals: coverage per group and level" in card
    assert "models:/drg-workflow-forecaster@champion" in unescape(html)  # docutils writes &#64;
    # The default target's verify result joins the data versions.
    verify = model_run / "results/verify.json"
    assert read_json(verify)["passed"] and _embedded(html, verify)
    # Captions name the data the figures came from (version and short sha256).
    v13 = read_json(model_run / "results/v13/v13_metadata.json")
    assert html.count(f"v13, sha256 {v13['sha256'][:12]}") >= len(pngs)


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="headless Chromium is not installed (.ci/run installs the Debian package chromium; "
    "apt-get install chromium to run this check)",
)
def test_report_renders_in_headless_chromium(report_html: Path, tmp_path: Path):
    """The page's JavaScript runs offline: it hides the 'JavaScript is disabled' warning and
    lists the categories in the menu (neither is in the HTML file itself); a screenshot is
    taken."""
    raw = report_html.read_text()
    assert "<span>Models</span>" not in raw

    def chromium(*args: str) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as profile:
            return subprocess.run(
                ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True,
                text=True,
                timeout=120,
            )

    dom = chromium("--dump-dom", report_html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<p id="jswarning" style="display: none;">' in dom.stdout
    for category in REPORT_CATEGORIES:
        assert f"<span>{category}</span>" in dom.stdout, category
    # The forecast's table (shown in the report's frame) renders its first page of rows, and
    # a search narrows them.
    table = report_html.parent / "results/report/forecast/forecast_table.html"
    page = chromium("--dump-dom", table.as_uri())
    assert page.returncode == 0, page.stderr[-2000:]
    body = page.stdout.split('<tbody id="forecast-body">')[1].split("</tbody>")[0]
    assert body.count("<tr>") == 50
    assert re.search(r"of [\d,]+ rows; page 1 of \d+", page.stdout)
    screenshot = tmp_path / "report.png"
    shot = chromium("--window-size=1400,900", f"--screenshot={screenshot}", report_html.as_uri())
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_no_password_in_any_file_or_the_report(
    model_run: Path, report_html: Path, tracking_server: MlflowServer
):
    """The run's MLflow password and the Optuna storage URL (a token in its path stands in for
    a database password) were in the environment only: neither is in any file the runs left
    under results/, logs/, benchmarks/ or .snakemake/ (Snakemake's records of every job's
    params), nor in the report HTML, while the runs did log to the server."""
    secrets = {
        "MLflow password": tracking_server.run_password.encode(),
        "Optuna storage URL": os.environ["OPTUNA_STORAGE"].encode(),
        "admin password": tracking_server.admin_password.encode(),
    }
    files = [report_html] + [
        path
        for folder in ("results", "logs", "benchmarks", ".snakemake")
        for path in (model_run / folder).rglob("*")
        if path.is_file()
    ]
    assert len(files) > 100 and any(".snakemake/metadata" in str(path) for path in files)
    leaks = [
        f"{what} in {path.relative_to(model_run)}"
        for path in files
        for what, secret in secrets.items()
        if secret in path.read_bytes()
    ]
    assert leaks == []
    # Files name the variable that holds the storage instead.
    assert b"$OPTUNA_STORAGE" in (model_run / "logs/setup_study/ridge.log").read_bytes()
