"""Rule scripts' error handling: user errors get one clear line, bugs keep their traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.jobs import StepFailed, logged_rule


def test_a_user_error_ends_the_job_with_one_line_and_logs_the_traceback(tmp_path: Path):
    log = tmp_path / "rule.log"
    with pytest.raises(SystemExit) as stop, logged_rule(str(log), "some_rule"):
        raise DrgWorkflowError("column 'Discharges' is missing")
    assert stop.value.code == "ERROR in rule some_rule: column 'Discharges' is missing"
    assert "Traceback" in log.read_text()


def test_in_snakemakes_process_a_user_error_raises_its_line_and_logs_only_to_the_file(
    tmp_path: Path, caplog
):
    """The chain's steps run in Snakemake's process: no sys.exit (it would end Snakemake's
    thread without a word), the same line as a StepFailed, nothing printed by the logger."""
    log = tmp_path / "rule.log"
    with pytest.raises(StepFailed) as failed, logged_rule(str(log), "step", in_process=True) as out:
        out.warning("a warning for the log")
        raise DrgWorkflowError("v8 (agg_severities) breaks its contract: row_bounds")
    assert (
        str(failed.value)
        == "ERROR in rule step: v8 (agg_severities) breaks its contract: row_bounds"
    )
    text = log.read_text()
    assert "WARNING step: a warning for the log" in text and "Traceback" in text
    # Nothing reaches the root logger (where Snakemake's process would print it).
    assert not [r for r in caplog.records if r.getMessage() == "a warning for the log"]


@pytest.mark.parametrize("bug", [ValueError("cannot reshape array"), KeyError("w_x_rolling2")])
def test_a_bug_keeps_its_traceback(tmp_path: Path, bug: Exception):
    log = tmp_path / "rule.log"
    with pytest.raises(type(bug)) as raised, logged_rule(str(log), "some_rule"):
        raise bug
    assert raised.value is bug  # not turned into a one-line SystemExit
    assert "a bug" in log.read_text() and "Traceback" in log.read_text()


def test_mlflow_telemetry_is_off_in_every_modelling_job():
    """The build machines have no network: importing the modelling package switches MLflow's
    telemetry off before mlflow is imported, whatever the environment says."""
    code = (
        "import drg_workflow.modelling.tracking; "
        "from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY; "
        "print(MLFLOW_DISABLE_TELEMETRY.get())"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "scripts")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "True"


def test_a_script_run_in_snakemakes_process_fails_like_a_step(tmp_path: Path):
    """A rule script run by a run: block (rules/common/rule_scripts.smk) calls logged_rule as in
    its own process; running_in_process makes the same call raise StepFailed, not exit."""
    from drg_workflow.jobs import running_in_process

    with pytest.raises(StepFailed, match="^ERROR in rule setup_study: no such parameter$"):
        with running_in_process(), logged_rule(str(tmp_path / "a.log"), "setup_study"):
            raise DrgWorkflowError("no such parameter")
    # Only while the runner says so: the next job of this thread is a script's again.
    with pytest.raises(SystemExit), logged_rule(str(tmp_path / "b.log"), "setup_study"):
        raise DrgWorkflowError("no such parameter")


def test_jobs_side_by_side_in_one_process_keep_their_library_lines_apart(tmp_path: Path):
    """Two in-process jobs route MLflow's and Optuna's loggers to their logs at once: each log
    holds the lines its own thread logged, and the loggers let go of both handlers after."""
    import logging
    import threading

    from drg_workflow.jobs import running_in_process
    from drg_workflow.modelling.tracking import route_library_logs

    both_routed = threading.Barrier(2)
    both_logged = threading.Barrier(2)

    def job(name: str) -> None:
        with running_in_process(), logged_rule(str(tmp_path / f"{name}.log"), name) as log:
            route_library_logs(log)
            both_routed.wait()
            logging.getLogger("mlflow.tracking").info("mlflow line of %s", name)
            logging.getLogger("optuna.study").info("optuna line of %s", name)
            both_logged.wait()

    threads = [threading.Thread(target=job, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, other in (("first", "second"), ("second", "first")):
        text = (tmp_path / f"{name}.log").read_text()
        assert f"mlflow line of {name}" in text and f"optuna line of {name}" in text
        assert f"line of {other}" not in text
    for library in ("mlflow", "optuna"):
        assert not [h for h in logging.getLogger(library).handlers if h.get_name()]


def first_imports_side_by_side(tmp_path: Path, name: str, job_context) -> list[str]:
    """Two threads import parts of a fresh package ``name`` for the first time, each inside
    ``job_context()``, the way scikit-learn broke in a build: thread A imports the package,
    whose ``__init__`` imports its ``base`` submodule, while thread B imports ``base``
    directly, which imports back from the package. Events put B inside ``base`` while A is
    inside ``__init__`` (A waits at most a second for that). Returns the errors raised."""
    import importlib
    import threading

    package = tmp_path / name
    package.mkdir(parents=True)
    (tmp_path / f"{name}_sync.py").write_text(
        "import threading\na_in_init = threading.Event()\nb_in_base = threading.Event()\n"
    )
    (package / "__init__.py").write_text(
        f"import {name}_sync\nVERSION = 1\n{name}_sync.a_in_init.set()\n"
        f"{name}_sync.b_in_base.wait(1)\nfrom {name}.base import clone\n"
    )
    (package / "base.py").write_text(
        f"import {name}_sync\n{name}_sync.b_in_base.set()\nfrom . import VERSION\n\n\n"
        "def clone(x):\n    return x\n"
    )
    sys.path.insert(0, str(tmp_path))
    sync = importlib.import_module(f"{name}_sync")
    errors: list[str] = []

    def job(module: str, after: threading.Event | None) -> None:
        if after is not None:
            after.wait(5)
        try:
            with job_context():
                importlib.import_module(module)
        except Exception as error:  # the thread's failure, reported to the test
            errors.append(repr(error))

    threads = [
        threading.Thread(target=job, args=(name, None)),
        threading.Thread(target=job, args=(f"{name}.base", sync.a_in_init)),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.path.remove(str(tmp_path))
    return errors


def test_scripts_in_snakemakes_process_import_one_at_a_time(tmp_path: Path):
    """Python hands one of two threads a half-initialised module here (the race is real: this
    test could not fail otherwise); in_process_script runs such jobs one after the other."""
    from drg_workflow.jobs import in_process_script, running_in_process

    race = first_imports_side_by_side(tmp_path / "free", "circular_free", running_in_process)
    assert any("partially initialized module 'circular_free.base'" in e for e in race), race
    assert first_imports_side_by_side(tmp_path / "one", "circular_one", in_process_script) == []
