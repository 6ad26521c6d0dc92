"""The workflow on a real one-node SLURM cluster, tracked by a real password-protected MLflow
server.

``tests/cluster/slurm_up.sh`` installs (Debian packages), configures and starts munged,
slurmctld and slurmd on this machine; an ``mlflow server --app-name basic-auth`` (sqlite
backend, artifacts in a temporary folder, no access without a password) listens on 127.0.0.1,
with a user for the workflow's run. The small configuration's default target then runs through
``--profile profiles/slurm`` with ``MLFLOW_TRACKING_URI`` and the user's
``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` in the environment, the way a cluster user runs it
(docs/cluster.md). While it runs, one tuning shard's SLURM job is cancelled (``scancel``) in the
middle of a trial; the profile's ``retries`` submits it again and it resumes. The tests check
that the jobs went through SLURM (one SLURM job per tuning shard, the cancelled one twice), that
every study is whole after the cancel (the budget of finished trials, nothing left running, one
MLflow run per trial), that the server refuses requests without credentials and holds the
runs, the models and the champion alias, that no password landed in a file, that the data
versions, the comparison, the champion, the forecast and its model card are byte-identical to
a local run with one core (tuning in rounds gives the same answer at any parallelism, a
cancelled and retried shard included), and that a rule failing on SLURM fails the run and
shows the rule's log. Skipped, saying why, only where SLURM cannot be installed at all (no
apt-get, no root).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import study_checks
import yaml
from conftest import ROOT, SMALL_CONFIG, snakemake_command, write_config
from optuna.trial import TrialState
from servers import start_mlflow_server, unauthenticated_status

from drg_workflow.chain import arrow_copy_versions
from drg_workflow.config_validation import validate_config
from drg_workflow.documents import read_json
from drg_workflow.modelling.tuning import open_storage

pytestmark = pytest.mark.workflow

SLURM_UP = ROOT / "tests" / "cluster" / "slurm_up.sh"
SLURM_DOWN = ROOT / "tests" / "cluster" / "slurm_down.sh"
PROFILE = ROOT / "profiles" / "slurm"
#: Where slurm_up.sh records the daemons it started (its default).
STARTED = Path(os.environ.get("DRG_SLURM_STATE", "/run/drg-slurm")) / "started"

MODELS = ("random_forest",)
#: One round: later rounds (candidates from the earlier ones) are the same Snakemake jobs and
#: dependencies on any executor; tests/test_config_values_end_to_end.py runs two rounds and
#: tests/test_modelling_tuning.py three. On SLURM, the round's shards run as parallel jobs.
N_SHARDS, TRIALS_PER_SHARD, ROUNDS = 2, 3, 1
BUDGET = N_SHARDS * TRIALS_PER_SHARD
#: The model whose shard is cancelled mid-trial.
CANCELLED_MODEL = "random_forest"


def cluster_config() -> dict:
    """.test/config-basic with one of its tiny models (every rule runs per model: a second model
    adds SLURM jobs, not coverage), 2 shards x 3 trials each, the artifacts
    in the server's own store per experiment (the nodes share no artifact path, and the
    server's basic-auth ties them to the experiment's permissions), and random-forest trials
    of about a second (so the cancel lands inside one)."""
    config = copy.deepcopy(SMALL_CONFIG)
    modelling = config["modelling"]
    modelling["models"] = {model: modelling["models"][model] for model in MODELS}
    modelling["models"]["random_forest"]["search_space"]["n_estimators"] = {
        "type": "int",
        "low": 60,
        "high": 100,
    }
    # No pruning: a pruned trial ends right after its first fold, too soon for the cancel.
    modelling["tuning"] = {
        "n_shards": N_SHARDS,
        "trials_per_shard": TRIALS_PER_SHARD,
        "rounds": ROUNDS,
        "pruner": {"n_startup_trials": 1000},
    }
    modelling["mlflow"] = {"artifact_location": None}
    return config


CONFIG = cluster_config()
#: What the local one-core run builds to compare with the SLURM run: every data version and
#: the model card, which needs the comparison, the champion, the backtest and the forecast (not
#: the report's figures, which no test compares).
LOCAL_TARGETS = ("features", "results/forecast/model_card.md")
#: "Job 12 has been submitted with SLURM jobid 34 (log: <workdir>/.snakemake/slurm_logs/
#: rule_tune_shard/random_forest_0_0/34.log)."
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def environment(**extra: str) -> dict[str, str]:
    """The test's environment for Snakemake (and, through sbatch, for every SLURM job)."""
    tracking = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in tracking}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


@dataclass
class Run:
    """A Snakemake run started by :func:`snakemake`; its output and errors go to ``output``
    (a file, not a pipe: runs going on together would block on full pipes)."""

    process: subprocess.Popen
    output: Path

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        """Wait for the run: (exit code, output)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            text = self.output.read_text(errors="replace")
            pytest.fail(f"Snakemake did not finish within {timeout:.0f} s:\n{text[-5000:]}")
        return self.process.returncode, self.output.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM (Snakemake cancels its SLURM jobs), then SIGKILL if it has not exited."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def snakemake(workdir: Path, *args: str, env: dict[str, str]) -> Run:
    """Start Snakemake on the workflow in ``workdir`` (output in ``workdir/snakemake.out``)."""
    output = workdir / "snakemake.out"
    with open(output, "w") as sink:
        process = subprocess.Popen(
            snakemake_command(workdir, *args), stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    return Run(process, output)


@pytest.fixture(scope="module")
def slurm_cluster():
    """The one-node cluster of slurm_up.sh; stopped again if this test started it."""
    before = STARTED.read_text() if STARTED.exists() else ""
    up = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, timeout=600)
    if up.returncode == 2:
        pytest.skip(f"SLURM cannot be installed here: {up.stderr.strip()}")
    assert up.returncode == 0, f"slurm_up.sh failed:\n{up.stdout}\n{up.stderr}"
    started_now = (STARTED.read_text() if STARTED.exists() else "") != before
    yield up.stdout
    if started_now:
        subprocess.run(["bash", str(SLURM_DOWN)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cluster_run(slurm_cluster, tmp_path_factory):
    """Everything the tests look at, from three runs started together once the MLflow server
    answers (most of a SLURM run is waiting):

    - ``slurm``: the default target through profiles/slurm, tracked by the MLflow server;
    - ``local``: what the tests compare with it (:data:`LOCAL_TARGETS`), built locally with one
      core (``--cores 1``);
    - ``failed``: ingest_raw on a raw CSV without the cost columns, through SLURM.
    """
    base = tmp_path_factory.mktemp("slurm")
    slurm_dir, local_dir, failing_dir = base / "slurm", base / "local", base / "failing"
    server_dir = base / "mlflow-server"
    for folder in (slurm_dir, local_dir, failing_dir, server_dir):
        folder.mkdir()
    profile = ("--profile", str(PROFILE))

    # A rule that fails on SLURM: the raw CSV lacks columns the schema requires.
    bad_raw = failing_dir / "bad.csv"
    bad_raw.write_text("Year,Facility Id,Discharges\n2010,1,5\n")
    write_config(failing_dir, {**SMALL_CONFIG, "raw": {"source": "file", "path": str(bad_raw)}})
    write_config(local_dir, CONFIG)
    write_config(slurm_dir, CONFIG)
    failing = local = slurm = None

    server = start_mlflow_server(server_dir)
    try:
        started = time.monotonic()
        slurm = snakemake(slurm_dir, *profile, env=environment(**server.run_environment()))
        local = snakemake(local_dir, *LOCAL_TARGETS, "--cores", "1", env=environment())
        failing = snakemake(failing_dir, "results/v0/v0.csv", *profile, env=environment())
        cancelled = cancel_mid_shard(slurm, slurm_dir)
        results = {"failed": failing.finish(), "local": local.finish(timeout=900)}
        results["slurm"] = slurm.finish(timeout=900)
        seconds = time.monotonic() - started
        yield {
            **results,
            "failing_dir": failing_dir,
            "local_dir": local_dir,
            "slurm_dir": slurm_dir,
            "slurm_seconds": seconds,
            "server": server,
            "server_dir": server_dir,
            "cancelled": cancelled,
        }
    finally:
        server.stop()
        for run in (failing, local, slurm):
            if run is not None:
                run.stop()


def cancel_mid_shard(slurm: Run, workdir: Path, deadline: float = 600) -> dict:
    """``scancel`` the SLURM job of a random-forest shard once it has a finished trial and
    another running past its first fold; return the job id, the shard and what the study held
    right before the cancel."""
    journal = workdir / f"results/optuna/{CANCELLED_MODEL}.journal"
    setup_path = workdir / f"results/tuning/{CANCELLED_MODEL}/setup.json"
    stop_at = time.monotonic() + deadline
    while True:
        assert slurm.process.poll() is None, slurm.output.read_text()[-5000:]
        assert time.monotonic() < stop_at, "no shard job reached its second trial"
        time.sleep(0.05)
        jobs = {
            wildcards: job_id
            for job_id, rule, wildcards in submissions(slurm.output.read_text(errors="replace"))
            if rule == "tune_shard"
        }
        if not setup_path.exists() or not journal.exists():
            continue
        name = read_json(setup_path)["study_name"]
        trials = optuna.load_study(study_name=name, storage=open_storage(str(journal))).trials

        def round_shard(trial):
            return trial.user_attrs.get("round"), trial.user_attrs.get("shard")

        done = {round_shard(t) for t in trials if t.state.is_finished()}
        for trial in trials:
            round_index, shard = round_shard(trial)
            job = jobs.get(f"{CANCELLED_MODEL}_{round_index}_{shard}")
            if (
                trial.state == TrialState.RUNNING
                and trial.intermediate_values
                and (round_index, shard) in done
                and job
            ):
                subprocess.run(["scancel", job], check=True, timeout=60)
                return {
                    "job_id": job,
                    "round": round_index,
                    "shard": shard,
                    "running_trial": trial.number,
                    "states": {t.number: t.state.name for t in trials},
                }


def submissions(output: str) -> list[tuple[str, str, str]]:
    """(SLURM job id, rule or ``group:<name>``, wildcards) of every job Snakemake submitted,
    from its log path: slurm_logs/rule_<rule>[/<wildcards>]/<id>.log or slurm_logs/group_..."""
    jobs = []
    for job_id, log in SUBMITTED.findall(output):
        parts = log.split("/slurm_logs/", 1)[1].split("/")
        assert parts[-1] == f"{job_id}.log", log
        kind, wildcards = parts[0], "/".join(parts[1:-1])
        name = kind.removeprefix("rule_") if kind.startswith("rule_") else "group:" + kind[6:]
        jobs.append((job_id, name, wildcards))
    return jobs


def test_default_target_runs_through_slurm(cluster_run):
    code, output = cluster_run["slurm"]
    assert code == 0, output[-8000:]
    print(f"default target through SLURM: {cluster_run['slurm_seconds']:.0f} s")
    submitted = submissions(output)
    rules = {rule for _, rule, _ in submitted}
    # The data chain is one group job; the model fits and the forecast are SLURM jobs of their
    # own; the bookkeeping and report rules are local rules (run by Snakemake itself).
    assert any(rule.startswith("group:chain") for rule in rules), rules
    assert {"tune_shard", "train_final", "backtest_model", "forecast"} <= rules, rules
    local = {
        "setup_mlflow",
        "setup_study",
        "evaluate_baseline",
        "score_backtest",
        "compare_models",
        "model_card",
        "report_models",
    }
    assert not rules & local, rules
    # Each job's id is a real SLURM job that ran to completion (squeue still lists finished jobs
    # for SLURM's MinJobAge; sacct needs an accounting daemon this cluster does not have).
    ids = [job_id for job_id, _, _ in submitted]
    assert len(set(ids)) == len(ids), "one SLURM job per Snakemake job"
    listed = subprocess.run(
        ["squeue", "-h", "--states=all", "-j", ",".join(ids), "-o", "%i %T"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    states = dict(line.split() for line in listed.stdout.splitlines())
    cancelled = cluster_run["cancelled"]["job_id"]
    assert states.get(cancelled) == "CANCELLED", states
    recent = [
        job_id
        for job_id, rule, _ in submitted
        if rule in ("tune_shard", "train_final") and job_id != cancelled
    ]
    assert {states.get(job_id) for job_id in recent} == {"COMPLETED"}, (states, recent)


def test_tuning_shards_are_separate_slurm_jobs(cluster_run):
    _code, output = cluster_run["slurm"]
    shards: dict[str, list[str]] = {}
    for job_id, rule, wildcards in submissions(output):
        if rule == "tune_shard":
            shards.setdefault(wildcards, []).append(job_id)
    expected = {
        f"{model}_{round_index}_{shard}"
        for model in MODELS
        for round_index in range(ROUNDS)
        for shard in range(N_SHARDS)
    }
    assert set(shards) == expected, shards
    # The cancelled shard's job was submitted again by the profile's retries, once.
    cancelled = cluster_run["cancelled"]
    again = shards.pop(f"{CANCELLED_MODEL}_{cancelled['round']}_{cancelled['shard']}")
    assert len(again) == 2 and again[0] == cancelled["job_id"], again
    assert all(len(ids) == 1 for ids in shards.values()), shards


@pytest.fixture(scope="module")
def client(cluster_run):
    """An MLflow client of the server, logged in as the workflow's run user."""
    from mlflow import MlflowClient

    server = cluster_run["server"]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server.run_environment().items():
            patch.setenv(name, value)
        yield MlflowClient(server.url)


def test_a_shard_cancelled_mid_trial_resumes_on_retry(cluster_run, client):
    """scancel of a random-forest shard's job while a trial ran, after one finished: the
    retried job kept the finished trials, marked the running one FAIL (interrupted) with its
    MLflow run KILLED, and ran only the missing ones; every study is whole."""
    assert cluster_run["slurm"][0] == 0, cluster_run["slurm"][1][-8000:]
    cancelled = cluster_run["cancelled"]
    slurm_dir = cluster_run["slurm_dir"]
    print(f"at the cancel: {cancelled}")
    for model in MODELS:
        journal = str(slurm_dir / f"results/optuna/{model}.journal")
        print("after the retry:", study_checks.study_counts(slurm_dir, model, journal, client))
    for model in MODELS:
        trials = study_checks.assert_study_is_whole(
            slurm_dir, model, str(slurm_dir / f"results/optuna/{model}.journal"), client, BUDGET
        )
        if model == CANCELLED_MODEL:
            states = {t.number: t.state for t in trials}
            assert states[cancelled["running_trial"]] == TrialState.FAIL
            before = [int(n) for n, s in cancelled["states"].items() if s in ("COMPLETE", "PRUNED")]
            assert all(states[n] in (TrialState.COMPLETE, TrialState.PRUNED) for n in before)
    shard = read_json(
        slurm_dir
        / f"results/tuning/{CANCELLED_MODEL}/round_{cancelled['round']}"
        / f"shard_{cancelled['shard']}.json"
    )
    assert shard["interrupted_trial_numbers"] == [cancelled["running_trial"]]
    assert shard["n_trials_resumed"] >= 1
    assert shard["n_trials_resumed"] + shard["n_trials_run"] == len(shard["candidates"])


def test_the_server_refuses_requests_without_a_password(cluster_run):
    assert unauthenticated_status(cluster_run["server"].url) == 401


def test_no_password_in_any_file_of_the_cluster_run(cluster_run):
    """The run user's password was in the environment of Snakemake and its SLURM jobs only."""
    secret = cluster_run["server"].run_password.encode()
    slurm_dir = cluster_run["slurm_dir"]
    files = [
        path
        for folder in ("results", "logs", "benchmarks", ".snakemake")
        for path in (slurm_dir / folder).rglob("*")
        if path.is_file()
    ]
    assert len(files) > 100
    assert [str(path) for path in files if secret in path.read_bytes()] == []


def test_server_holds_every_trial_the_final_models_and_the_champion(cluster_run, client):
    assert cluster_run["slurm"][0] == 0
    experiment = client.get_experiment_by_name("drg-workflow")
    assert experiment is not None
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    trials = [
        run
        for run in runs
        if run.data.tags.get("stage") == "trial" and run.info.status == "FINISHED"
    ]
    finals = [run for run in runs if run.data.tags.get("stage") == "final"]
    assert len(trials) == len(MODELS) * BUDGET, len(trials)
    assert {run.data.tags["model"] for run in trials} == set(MODELS)
    champion = read_json(cluster_run["slurm_dir"] / "results/models/champion.json")
    if champion["champion"] is not None:
        version = client.get_model_version_by_alias(champion["registered_model"], "champion")
        assert str(version.version) == champion["version"]
        assert version.run_id == champion["run_id"]
    assert sorted(run.data.tags["model"] for run in finals) == sorted(MODELS)
    # Each final model is a logged model of its run, its files in the server's artifact folder.
    models = client.search_logged_models([experiment.experiment_id])
    final_ids = {run.info.run_id for run in finals}
    assert final_ids <= {model.source_run_id for model in models}
    stored = cluster_run["server_dir"] / "artifacts"
    assert len(list(stored.rglob("MLmodel"))) >= len(MODELS)


def test_data_versions_are_byte_identical_to_a_local_run(cluster_run):
    code, output = cluster_run["local"]
    assert code == 0, output[-5000:]
    on_slurm = cluster_run["slurm_dir"] / "results"
    local = cluster_run["local_dir"] / "results"
    files = sorted(
        path.relative_to(local)
        for path in local.glob("v*/*")
        if path.suffix in (".csv", ".json", ".arrow")
    )
    # CSV and metadata of 16 versions; Arrow copies of the versions that have one.
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    kept = arrow_copy_versions(validate_config(copy.deepcopy(CONFIG), schema))
    assert len(files) == 2 * 16 + len(kept), files
    differing = [str(f) for f in files if (on_slurm / f).read_bytes() != (local / f).read_bytes()]
    assert differing == []


#: What a build answers: the same bytes whatever ran where and when.
ANSWER_FILES = (
    "models/comparison.csv",
    "backtest/backtest.csv",
    "backtest/skill_test.csv",
    "backtest/predictions.csv",
    "forecast/forecast.csv",
    "forecast/forecast_metadata.json",
)


def test_the_answer_is_the_same_on_slurm_as_with_one_local_core(cluster_run):
    """SLURM ran the shards side by side and one of them twice (cancelled mid-trial, retried);
    the local run had one core, so everything ran one job after another. Tuning in rounds
    makes that irrelevant: the same best parameters, comparison, champion, registry version,
    forecast and model card (but for the line naming the tracking server)."""
    assert cluster_run["slurm"][0] == 0 and cluster_run["local"][0] == 0
    on_slurm = cluster_run["slurm_dir"] / "results"
    local = cluster_run["local_dir"] / "results"
    differing = [f for f in ANSWER_FILES if (on_slurm / f).read_bytes() != (local / f).read_bytes()]
    assert differing == []
    for model in MODELS:
        slurm_metrics = read_json(on_slurm / f"models/{model}/metrics.json")
        local_metrics = read_json(local / f"models/{model}/metrics.json")
        for key in ("best_params", "best_round", "best_candidate", "cv_rmse", "val_rmse"):
            assert slurm_metrics[key] == local_metrics[key], (model, key)
    slurm_champion = read_json(on_slurm / "models/champion.json")
    local_champion = read_json(local / "models/champion.json")
    for key in ("champion", "version", "training_years", "skill_rmse_by_origin"):
        assert slurm_champion[key] == local_champion[key], key

    def card(folder: Path) -> list[str]:
        return [
            line
            for line in (folder / "forecast/model_card.md").read_text().splitlines()
            if "set_tracking_uri" not in line
        ]

    assert card(on_slurm) == card(local)


def test_a_rule_failing_on_slurm_fails_the_run_and_shows_its_log(cluster_run):
    code, output = cluster_run["failed"]
    assert code != 0, output[-5000:]
    # ingest_raw ran as a SLURM job (the data chain's group, here of one job) and failed there.
    assert re.search(r"submitted with SLURM jobid \d+ \(log: \S+/group_chain_ingest_raw/", output)
    assert "Error in group chain" in output, output[-5000:]
    # show-failed-logs: the rule's own log, with the message naming the missing columns, is
    # printed (from inside the SLURM job's log).
    log = (cluster_run["failing_dir"] / "logs" / "ingest_raw" / "v0.log").read_text()
    message = next(line for line in log.splitlines() if "required column(s)" in line)
    assert "'Mean Cost'" in message
    assert "logs/ingest_raw/v0.log" in output
    assert message in output, (message, output[-5000:])
