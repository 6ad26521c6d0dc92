"""Resume after a killed run without ``--unlock``.

Snakemake locks the working directory while it runs (files in ``.snakemake/locks``) and
removes the locks when it ends, even after an error or Ctrl-C. A run killed outright (SIGKILL,
the out-of-memory killer, a lost SSH session's hang-up to a process group) leaves them behind,
and the next run stops with "Directory cannot be locked ... use --unlock". Snakemake's lock
files do not say who holds them, so the workflow records the holder itself: the run that holds
the locks writes its host and process id (``record_lock_holder``, from ``onstart``), and a
later run removes the locks only when that holder is provably gone: same host, process no
longer running (``remove_stale_locks``). Locks of a live run, of another host, or with no
recorded holder are left alone, so two runs still cannot write the same files.

Snakemake takes the locks right after it has built the jobs, before any ``onstart`` handler
runs, so the workflow removes stale locks while the jobs are built, and only in a run that
takes the locks (``workflow/rules/common/locks.smk``).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def record_lock_holder(holder_file: Path) -> None:
    """Record this process (host and pid) as the holder of the working directory's locks."""
    holder_file.parent.mkdir(parents=True, exist_ok=True)
    holder_file.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def process_is_running(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_locks(lock_dir: Path, holder_file: Path) -> int | None:
    """Remove the locks in ``lock_dir`` if their recorded holder was killed; return its pid.

    Returns ``None`` (and removes nothing) when there are no locks, no readable holder record,
    the holder ran on another host, or it is still running.
    """
    locks = sorted(lock_dir.glob("*.lock")) if lock_dir.is_dir() else []
    if not locks:
        return None
    try:
        holder = json.loads(holder_file.read_text())
        host, pid = holder["host"], int(holder["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or process_is_running(pid):
        return None
    for lock in locks:
        lock.unlink(missing_ok=True)
    holder_file.unlink(missing_ok=True)
    return pid
