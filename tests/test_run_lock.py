"""Locks of a killed run are removed, a live run's locks never."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SMALL_CONFIG, snakemake_command, write_config

from drg_workflow.run_lock import record_lock_holder, remove_stale_locks


@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, Path]:
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    (lock_dir / "0.input.lock").write_text("results/v1/v1.csv\n")
    (lock_dir / "0.output.lock").write_text("results/v2/v2.csv\n")
    return lock_dir, tmp_path / "holder.json"


def finished_process_id() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_locks_of_a_killed_holder_are_removed(locked):
    lock_dir, holder = locked
    pid = finished_process_id()
    holder.write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
    assert remove_stale_locks(lock_dir, holder) == pid
    assert list(lock_dir.iterdir()) == [] and not holder.exists()


def test_locks_of_a_running_holder_stay(locked):
    lock_dir, holder = locked
    record_lock_holder(holder)  # this very process, alive
    assert json.loads(holder.read_text())["pid"] == os.getpid()
    assert remove_stale_locks(lock_dir, holder) is None
    assert len(list(lock_dir.iterdir())) == 2


@pytest.mark.parametrize("record", [None, "not json", {"host": "another-host", "pid": 1}])
def test_locks_of_an_unknown_or_remote_holder_stay(locked, record):
    lock_dir, holder = locked
    if record is not None:
        holder.write_text(record if isinstance(record, str) else json.dumps(record))
    if isinstance(record, dict):
        record["pid"] = finished_process_id()  # dead here, but on another host: not ours
        holder.write_text(json.dumps(record))
    assert remove_stale_locks(lock_dir, holder) is None
    assert len(list(lock_dir.iterdir())) == 2


@pytest.mark.workflow
@pytest.mark.parametrize(
    "args",
    [("-n",), ("--lint",), ("--report", "report.html"), ("--nolock", "-n"), ("--list-rules",)],
)
def test_only_a_run_that_takes_the_locks_removes_stale_ones(tmp_path: Path, args: tuple):
    """Dry runs, --lint, --report and the like change nothing, stale locks included; the kill
    and resume of a real run is tests/test_workflow.py's."""
    write_config(tmp_path, SMALL_CONFIG)
    lock_dir = tmp_path / ".snakemake" / "locks"
    lock_dir.mkdir(parents=True)
    (lock_dir / "0.input.lock").write_text("results/v1/v1.csv\n")
    holder = tmp_path / ".snakemake" / "drg-workflow" / "lock-holder.json"
    holder.parent.mkdir(parents=True)
    holder.write_text(json.dumps({"host": socket.gethostname(), "pid": finished_process_id()}))
    command = snakemake_command(tmp_path, *args)
    command.remove("--nolock")  # the helper's own: the run decides about the locks itself
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "Removed the locks left by a killed run" not in result.stderr
    assert (lock_dir / "0.input.lock").exists() and holder.exists()
