"""Rule scripts' error handling: user errors get one clear line, bugs keep their traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from drg_workflow.errors import DrgWorkflowError, logged_rule


def test_a_user_error_ends_the_job_with_one_line_and_logs_the_traceback(tmp_path: Path):
    log = tmp_path / "rule.log"
    with pytest.raises(SystemExit) as stop, logged_rule(str(log), "some_rule"):
        raise DrgWorkflowError("column 'Discharges' is missing")
    assert stop.value.code == "ERROR in rule some_rule: column 'Discharges' is missing"
    assert "Traceback" in log.read_text()


@pytest.mark.parametrize("bug", [ValueError("cannot reshape array"), KeyError("w_x_rolling2")])
def test_a_bug_keeps_its_traceback(tmp_path: Path, bug: Exception):
    log = tmp_path / "rule.log"
    with pytest.raises(type(bug)) as raised, logged_rule(str(log), "some_rule"):
        raise bug
    assert raised.value is bug  # not turned into a one-line SystemExit
    assert "a bug" in log.read_text() and "Traceback" in log.read_text()
