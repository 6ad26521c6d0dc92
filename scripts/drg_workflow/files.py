"""Writing output files atomically, with the mode any other new file gets.

Every output of the workflow (data versions, metadata, the downloaded raw CSV, model results)
is first written to a hidden temporary file beside its destination and renamed into place
when complete, so a crash never leaves a half-written file that looks finished. The temporary
file is created private (``tempfile.mkstemp`` makes it 0600); before the rename it gets the
mode a plain ``open(path, "w")`` would have given under the user's umask (0644 with the usual
022), so results on a shared file system stay readable to the group like any other file.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def umask_mode() -> int:
    """The mode a newly created regular file gets under the current umask (``0o666 & ~umask``).

    The umask can only be read by setting it, so it is set and restored at once.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, give it
    the umask's mode and rename it to ``path`` (atomic on one file system).

    On an error the temporary file is removed and ``path`` is left as it was. Parent
    directories are created. Temporaries of ``path`` left by a killed writer (SIGKILL runs no
    cleanup) are removed first, so a rerun leaves the directory as an uninterrupted run does.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*"):
        stale.unlink(missing_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, umask_mode())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
