"""Errors whose message is meant for the user, and the rule scripts' error handling."""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import time
from collections.abc import Iterator

from drg_workflow import profiling


class DrgWorkflowError(ValueError):
    """Bad input or configuration: the message says what is wrong and where."""


#: Numbers the loggers of the jobs run in one process.
_job_numbers = itertools.count()


class StepFailed(RuntimeError):
    """A step run inside Snakemake's own process (the chain's ``run:`` rules) failed for a
    reason the user can fix: its message is the one line a script would print."""


@contextlib.contextmanager
def logged_rule(log_path: str, rule: str, in_process: bool = False) -> Iterator[logging.Logger]:
    """Log to the rule's log file; turn user-facing errors into one clear message.

    A :class:`DrgWorkflowError` (raised by our functions for bad data and bad parameters) ends
    the job with its message alone on stderr (Snakemake shows it), while the log keeps the full
    traceback for whoever needs to dig. Anything else, a ``ValueError`` from pandas or
    scikit-learn included, is a bug: it is logged and keeps its traceback on stderr too.

    ``in_process``: the job runs in a thread of Snakemake's own process (a ``run:`` block), not
    in a script's process. Its start-up is then 0, its log lines go to its log file only, and a
    user-facing error raises :class:`StepFailed` with the same message (a script's
    ``sys.exit`` would take Snakemake's thread down without a word).

    A job that ends well logs its profile last (:mod:`drg_workflow.profiling`): its start-up
    (interpreter, Snakemake's preamble and the script's imports) and its body's seconds per
    phase (reading, MLflow, Optuna, writing, compute).
    """
    startup = 0.0 if in_process else profiling.process_age()
    profiling.reset()
    body_started = time.perf_counter()
    # One logger per job (two steps of one rule may run at once in Snakemake's process).
    logger = logging.getLogger(f"drg_workflow.job.{rule}.{next(_job_numbers)}")
    logger.setLevel(logging.INFO)
    logger.propagate = not in_process
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter(f"%(levelname)s {rule}: %(message)s"))
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
