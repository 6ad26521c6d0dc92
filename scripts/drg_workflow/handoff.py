"""The in-memory hand-off of a version's table from the step that wrote it to the step that
reads it next in the same process (:func:`hand_off`, :func:`read_version_data`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.hashing import short_sha
from drg_workflow.profiling import timed
from drg_workflow.tables import metadata_dtypes, read_arrow, read_csv_table

#: Tables of versions just written without an Arrow copy, held for the next step (see
#: :func:`read_version_data`); at most this many at once.
HANDOFF_LIMIT = 2


class ChangedVersionError(DrgWorkflowError):
    """An input version's CSV is not the file its metadata describes (edited after it was
    built)."""


@dataclass(frozen=True)
class _WrittenVersion:
    """A version's table as its CSV was written, and what identifies that file on disk."""

    sha256: str
    file_identity: tuple[int, int, int]
    table: pa.Table


_handed_off: OrderedDict[str, _WrittenVersion] = OrderedDict()


_handoff_lock = threading.Lock()


def _file_identity(path: str | os.PathLike) -> tuple[int, int, int]:
    """Device, inode and size: a file replaced since (atomic writes, downloads and most editors
    make a new inode) or cut or extended gets another identity. Not the modification time:
    Snakemake touches a job's outputs once the job is done."""
    status = os.stat(path)
    return status.st_dev, status.st_ino, status.st_size


def hand_off(table: pa.Table, csv_path: str | os.PathLike, sha256: str) -> None:
    """Hold ``table``, just written as the CSV at ``csv_path`` with digest ``sha256``, for the
    step that reads that CSV next in this process (:func:`read_version_data`).

    The chain's steps run one after another in Snakemake's own process, so the next step can
    take its input from memory instead of parsing the CSV (or writing and reading an Arrow
    copy of it). At most :data:`HANDOFF_LIMIT`
    tables are held; the oldest is dropped first.
    """
    written = _WrittenVersion(sha256, _file_identity(csv_path), table)
    with _handoff_lock:
        _handed_off[os.path.realpath(csv_path)] = written
        while len(_handed_off) > HANDOFF_LIMIT:
            _handed_off.popitem(last=False)


def forget_handed_off() -> None:
    """Drop every table held by :func:`hand_off` (tests; a process that wants the memory)."""
    with _handoff_lock:
        _handed_off.clear()


@timed("read")
def read_version_data(
    path: str | os.PathLike, metadata: Mapping[str, Any], log: logging.Logger | None = None
) -> pd.DataFrame:
    """The data of an input version, given its data file (Arrow copy or CSV) and metadata.

    An Arrow copy is read as it is. A CSV is taken from memory when the step that wrote it
    handed its table off in this process (:func:`hand_off`) and the file on disk is still the
    one written (same file and size, and the metadata's ``sha256``);
    otherwise, e.g. in a new Snakemake run or a separate cluster job, the CSV is parsed with
    the metadata's dtypes, once its sha256 is found to be the metadata's (a CSV edited by hand
    raises :class:`ChangedVersionError`: what is made from it would claim an input it was not
    made from). Both give the frame an Arrow copy would: the table is the one the CSV was
    written from, and the CSV holds its values exactly (shortest round-trip floats). ``log``
    is told which of the three it was.
    """
    say = log.info if log is not None else lambda *arguments: None
    if Path(path).suffix == ".arrow":
        say("input %s: its Arrow copy", metadata["version"])
        return read_arrow(path)
    with _handoff_lock:
        written = _handed_off.pop(os.path.realpath(path), None)
    if (
        written is not None
        and written.sha256 == metadata["sha256"]
        and written.file_identity == _file_identity(path)
    ):
        say("input %s: from memory (the table its step wrote)", metadata["version"])
        table = written.table
    else:
        table = _checked_csv_table(path, metadata)
        say("input %s: parsed from its CSV (sha256 checked)", metadata["version"])
    # In one piece either way: pandas' Arrow-backed strings keep a table's pieces (the CSV
    # reader's blocks), and the next version's Arrow copy would be written in those pieces,
    # so its bytes would depend on where its input came from.
    if any(column.num_chunks > 1 for column in table.columns):
        table = table.combine_chunks()
    return table.to_pandas()


def _checked_csv_table(path: str | os.PathLike, metadata: Mapping[str, Any]) -> pa.Table:
    """A version's CSV parsed with its metadata's dtypes, once its sha256 is found to be the
    metadata's (the file is read once: hashed, then parsed from memory)."""
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != metadata["sha256"]:
        raise ChangedVersionError(
            f"{metadata['version']}'s CSV {path} is not the one its metadata records "
            f"(sha256 {short_sha(actual)}, recorded {short_sha(metadata['sha256'])}): it was "
            "changed after it was built. Put it back, or make it again with snakemake --forcerun "
            f"{metadata['transformation']['name']}"
        )
    return read_csv_table(pa.BufferReader(data), metadata_dtypes(metadata))
