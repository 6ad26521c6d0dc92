"""Credentials in URLs: one place that finds a ``user:password@`` part and drops it.

Only the standard library, so the config validation (at every Snakefile parse) can use it
without importing the download machinery.

A password written in the config, or in a setting that becomes a rule's param, would be
recorded by Snakemake in ``.snakemake/metadata`` and the ``--report`` HTML, and by the workflow in
result files and MLflow tags. So such URLs are refused (:func:`credentials_error`) and passwords
travel in the environment instead: ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``
for MLflow, and for an Optuna RDB URL a variable named in ``modelling.tuning.storage_env``.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["CREDENTIALS_HINT", "credentials_error", "has_password", "public_url"]

#: How to pass credentials instead (the one message for every key that refuses them).
CREDENTIALS_HINT = (
    "a password must not be in the config or in MLFLOW_TRACKING_URI (Snakemake records rule "
    "settings in .snakemake/metadata and the report). Pass it in the environment instead: "
    "MLflow reads MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; for an Optuna RDB URL, "
    "put the whole URL in an environment variable and name that variable in "
    "modelling.tuning.storage_env (e.g. storage_env: OPTUNA_STORAGE), which the jobs read"
)


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, fit for logs and metadata."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password (``scheme://user:password@host...``); a user name
    alone (``postgresql://alice@db/optuna``, with the password in ``~/.pgpass``) is fine."""
    try:
        return urllib.parse.urlsplit(url).password is not None
    except ValueError:  # e.g. an unparsable port: not a URL with credentials we can read
        return False


def credentials_error(where: str, url: str) -> str | None:
    """The message refusing ``url`` at ``where`` (a config key or a variable) if it carries a
    password, naming it without the password; ``None`` if it carries none."""
    if not has_password(url):
        return None
    return f"{where}: {public_url(url)!r} carries a user:password; {CREDENTIALS_HINT}"
