"""The per-job profile (drg_workflow.profiling): phases add up, the rule log gets one line."""

from __future__ import annotations

import time

from drg_workflow import profiling
from drg_workflow.jobs import logged_rule


def test_nested_phases_count_their_own_time_only():
    profiling.reset()
    with profiling.phase("mlflow"):
        time.sleep(0.05)
        with profiling.phase("read"):
            time.sleep(0.1)
    totals = profiling.totals()
    assert 0.1 <= totals["read"] < 0.2
    # The outer phase's time excludes the nested one's.
    assert 0.05 <= totals["mlflow"] < 0.1


def test_timed_counts_every_call():
    profiling.reset()

    @profiling.timed("write")
    def write():
        time.sleep(0.02)

    write()
    write()
    assert profiling.totals()["write"] >= 0.04


def test_logged_rule_logs_a_profile_that_adds_up(tmp_path):
    log = tmp_path / "rule.log"
    with logged_rule(str(log), "some_rule"):
        with profiling.phase("read"):
            time.sleep(0.05)
        time.sleep(0.05)
    lines = [profiling.parse_profile_line(line) for line in log.read_text().splitlines()]
    profiles = [p for p in lines if p is not None]
    assert len(profiles) == 1
    profile = profiles[0]
    assert profile["read"] >= 0.05
    assert profile["compute"] >= 0.05
    assert abs(profile["read"] + profile["compute"] - profile["body"]) < 0.01
    assert profile["startup"] >= 0


def test_process_age_is_the_age_of_this_process():
    age = profiling.process_age()
    assert age is not None and 0 < age < 24 * 3600
