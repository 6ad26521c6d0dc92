"""Errors whose message is meant for the user, and the rule scripts' error handling."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

from drg_workflow import profiling


class DrgWorkflowError(ValueError):
    """Bad input or configuration: the message says what is wrong and where."""


@contextlib.contextmanager
def logged_rule(log_path: str, rule: str) -> Iterator[logging.Logger]:
    """Log to the rule's log file; turn user-facing errors into one clear message.

    A :class:`DrgWorkflowError` (raised by our functions for bad data and bad parameters) ends
    the job with its message alone on stderr (Snakemake shows it), while the log keeps the full
    traceback for whoever needs to dig. Anything else, a ``ValueError`` from pandas or
    scikit-learn included, is a bug: it is logged and keeps its traceback on stderr too.

    A job that ends well logs its profile last (:mod:`drg_workflow.profiling`): its start-up
    (interpreter, Snakemake's preamble and the script's imports) and its body's seconds per
    phase (reading, MLflow, Optuna, writing, compute).
    """
    startup = profiling.process_age()
    profiling.reset()
    body_started = time.perf_counter()
    logger = logging.getLogger(rule)
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield logger
        profiling_line = profiling.profile_line(
            profiling.job_profile(startup, time.perf_counter() - body_started)
        )
        logger.info(profiling_line)
    except DrgWorkflowError as error:
        logger.exception("failed")
        sys.exit(f"ERROR in rule {rule}: {error}")
    except Exception:
        logger.exception("failed with an unexpected error (a bug: please report it)")
        raise
    finally:
        handler.close()
        logger.removeHandler(handler)
