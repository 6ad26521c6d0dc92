"""Errors whose message is meant for the user, and the rule scripts' error handling."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator


class DrgWorkflowError(ValueError):
    """Bad input or configuration: the message says what is wrong and where."""


@contextlib.contextmanager
def logged_rule(log_path: str, rule: str) -> Iterator[logging.Logger]:
    """Log to the rule's log file; turn user-facing errors into one clear message.

    A :class:`DrgWorkflowError` (raised by our functions for bad data and bad parameters) ends
    the job with its message alone on stderr (Snakemake shows it), while the log keeps the full
    traceback for whoever needs to dig. Anything else, a ``ValueError`` from pandas or
    scikit-learn included, is a bug: it is logged and keeps its traceback on stderr too.
    """
    logger = logging.getLogger(rule)
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield logger
    except DrgWorkflowError as error:
        logger.exception("failed")
        sys.exit(f"ERROR in rule {rule}: {error}")
    except Exception:
        logger.exception("failed with an unexpected error (a bug: please report it)")
        raise
    finally:
        handler.close()
        logger.removeHandler(handler)
