"""How the suite is spread over pytest-xdist workers (tests/conftest.py): every end-to-end run
is built once, on one worker."""

from __future__ import annotations

from types import SimpleNamespace

from conftest import LONGEST_FIRST, work_unit
from test_config_values_end_to_end import RUNS
from xdist.scheduler.loadgroup import LoadGroupScheduling


def test_each_config_value_run_is_one_unit_of_work_of_the_scheduler():
    """xdist groups tests by the name after their nodeid's last ``@``, unless that name ends
    in ``]`` (then it takes it for parameters and every test is a unit of its own): the tests
    of one run would go to both workers, and each would build the run again."""
    for run in RUNS:
        item = SimpleNamespace(
            module=SimpleNamespace(__name__="test_config_values_end_to_end"),
            callspec=SimpleNamespace(params={"finished_run": run}),
        )
        group = work_unit(item)
        nodeid = f"tests/test_config_values_end_to_end.py::test_a_check[{run}]@{group}"
        assert LoadGroupScheduling._split_scope(None, nodeid) == group
        assert group in LONGEST_FIRST
