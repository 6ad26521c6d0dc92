"""The job runtime every rule script shares: its log file, its profile, and one clear message
for a user-facing error (:func:`logged_rule`), in a script's own process or in a thread of
Snakemake's (:func:`in_process_script`)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import threading
import time
from collections.abc import Iterator

from drg_workflow import profiling
from drg_workflow.errors import DrgWorkflowError

#: Numbers the loggers of the jobs run in one process.
_job_numbers = itertools.count()
#: Whether the current thread runs a rule script inside Snakemake's own process.
_thread_state = threading.local()
#: The libraries whose log lines a job sends to its own log (modelling.tracking.route_library_logs).
LIBRARY_LOGGERS = ("mlflow", "optuna")
#: The name of a job's log-file handler (told apart from the libraries' own stderr handlers).
JOB_HANDLER_NAME = "drg_workflow job log"


#: Taken by every rule script run in Snakemake's own process for its whole run
#: (:func:`in_process_script`), and by the chain's steps while they import the package's data
#: modules. Python's imports are not safe from two threads importing one package for the
#: first time: a package whose ``__init__`` imports a submodule that imports back from the
#: package hands one thread a half-initialised module (seen in a build: three ``setup_study``
#: jobs importing scikit-learn at once, ``ImportError: cannot import name 'clone' from
#: partially initialized module 'sklearn.base'``). The scripts import lazily, deep in their
#: code, so they run one at a time; they are light and hold the GIL most of the time anyway.
IN_PROCESS_LOCK = threading.Lock()


@contextlib.contextmanager
def in_process_script() -> Iterator[None]:
    """Run a rule script in Snakemake's own process: one at a time (:data:`IN_PROCESS_LOCK`)
    and marked as in-process (:func:`running_in_process`)."""
    with IN_PROCESS_LOCK, running_in_process():
        yield


@contextlib.contextmanager
def running_in_process() -> Iterator[None]:
    """Mark the current thread as running a rule script in Snakemake's own process (a ``run:``
    block executing the script): :func:`logged_rule` then behaves as with ``in_process``."""
    _thread_state.in_process = True
    try:
        yield
    finally:
        _thread_state.in_process = False


class _FromThread(logging.Filter):
    """Passes the records logged by one thread: in Snakemake's process, jobs run in threads
    side by side and the libraries' loggers are shared."""

    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread


class StepFailed(RuntimeError):
    """A job run inside Snakemake's own process (the chain's ``run:`` rules, the scripts run by
    :func:`running_in_process`) failed for a reason the user can fix: its message is the one
    line a script would print."""


@contextlib.contextmanager
def logged_rule(log_path: str, rule: str, in_process: bool = False) -> Iterator[logging.Logger]:
    """Log to the rule's log file; turn user-facing errors into one clear message.

    A :class:`DrgWorkflowError` (raised by our functions for bad data and bad parameters) ends
    the job with its message alone on stderr (Snakemake shows it), while the log keeps the full
    traceback for whoever needs to dig. Anything else, a ``ValueError`` from pandas or
    scikit-learn included, is a bug: it is logged and keeps its traceback on stderr too.

    ``in_process``: the job runs in a thread of Snakemake's own process (a ``run:`` block, or a
    script run by one inside :func:`running_in_process`), not in a script's process. Its
    start-up is then 0, its log lines (its libraries' too, from its own thread) go to its log
    file only, and a user-facing error raises :class:`StepFailed` with the same message (a
    script's ``sys.exit`` would take Snakemake's thread down without a word).

    A job that ends well logs its profile last (:mod:`drg_workflow.profiling`): its start-up
    (interpreter, Snakemake's preamble and the script's imports) and its body's seconds per
    phase (reading, MLflow, Optuna, writing, compute).
    """
    in_process = in_process or getattr(_thread_state, "in_process", False)
    startup = 0.0 if in_process else profiling.process_age()
    profiling.reset()
    body_started = time.perf_counter()
    # One logger per job (two steps of one rule may run at once in Snakemake's process).
    logger = logging.getLogger(f"drg_workflow.job.{rule}.{next(_job_numbers)}")
    logger.setLevel(logging.INFO)
    logger.propagate = not in_process
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter(f"%(levelname)s {rule}: %(message)s"))
    handler.set_name(JOB_HANDLER_NAME)
    if in_process:
        handler.addFilter(_FromThread(threading.get_ident()))
    logger.addHandler(handler)
    try:
        yield logger
        profiling_line = profiling.profile_line(
            profiling.job_profile(startup, time.perf_counter() - body_started)
        )
        logger.info(profiling_line)
    except DrgWorkflowError as error:
        logger.exception("failed")
        message = f"ERROR in rule {rule}: {error}"
        if in_process:
            raise StepFailed(message) from None
        sys.exit(message)
    except Exception:
        logger.exception("failed with an unexpected error (a bug: please report it)")
        raise
    finally:
        handler.close()
        logger.removeHandler(handler)
        # route_library_logs may have lent the handler to the libraries' loggers, which outlive
        # the job in Snakemake's process.
        for library in LIBRARY_LOGGERS:
            logging.getLogger(library).removeHandler(handler)
