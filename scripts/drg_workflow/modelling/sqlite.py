"""Race-free first use of a local sqlite store (MLflow's or an Optuna RDB storage)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (``None`` for in-memory / non-sqlite)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def sqlite_init_lock(db_file: Path | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<db>.init.lock`` while a sqlite store is opened.

    Opening a fresh sqlite DB creates its tables; two processes doing it at once corrupt the
    schema migration (measured: "duplicate column name", alembic "expected to match one row").
    Serialising the open makes parallel jobs on one host safe (setup_study jobs may share one
    Optuna RDB store); the first opener pays the table creation (~2 s), later ones only wait.
    """
    if db_file is None:
        yield
        return
    import fcntl

    db_file.parent.mkdir(parents=True, exist_ok=True)
    with open(db_file.with_name(db_file.name + ".init.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
