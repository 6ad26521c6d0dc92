"""Reading, writing and describing data versions (``{version}.csv`` + ``_metadata.json``).

This is the one adapter every transformation rule shares: read the input version, apply a
transformation, write the output CSV atomically, and write metadata that pins the output to
its input, transformation and parameters. Nothing here knows about Snakemake; paths come in as
arguments.

Bytes are reproducible: the CSV is written by Arrow (shortest round-trip float text, no index),
and the metadata holds no timestamps or absolute paths, with sorted keys. docs/data-versions.md
describes the files of a version and every metadata field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc

from drg_workflow import __version__
from drg_workflow.contracts import check_contract
from drg_workflow.errors import DrgWorkflowError
from drg_workflow.files import atomic_output
from drg_workflow.profiling import timed
from drg_workflow.transformations import apply_transformation

#: Codec of the Arrow copies (see :func:`write_arrow`).
ARROW_COMPRESSION = "zstd"
#: Rows per piece of a CSV formatted in parallel (:func:`write_csv` with threads): small
#: enough that a few pieces in flight hold little memory, large enough to keep threads busy.
CSV_PIECE_ROWS = 131_072

#: Tables of versions just written without an Arrow copy, held for the next step (see
#: :func:`read_version_data`); at most this many at once.
HANDOFF_LIMIT = 2

#: Logical dtype names used in metadata -> Arrow types used to read the CSV back exactly.
ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
}


def logical_dtype(series: pd.Series) -> str:
    """The metadata name of a column's type: ``int64``, ``float64``, ``bool`` or ``string``."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int64"
    if pd.api.types.is_float_dtype(series):
        return "float64"
    return "string"


def column_dtypes(frame: pd.DataFrame) -> dict[str, str]:
    """Column name -> logical dtype, in column order."""
    return {str(name): logical_dtype(frame[name]) for name in frame.columns}


class _HashingSink:
    """A file-like sink for pyarrow writers that hashes the bytes (and writes them to
    ``handle``, when given) as they come, in a thread of its own: the writer formats the next
    chunk while this one is hashed and written, and no file is read back to hash it.

    Use as a context manager; ``hexdigest()`` after the block.
    """

    def __init__(self, handle: BinaryIO | None = None) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.closed = False
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._consumer = threading.Thread(target=self._consume, daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> _HashingSink:
        self._consumer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._chunks.put(None)
        self._consumer.join()
        if self._error is not None and exc_info[0] is None:
            raise self._error

    def _consume(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None:
                continue
            try:
                self.digest.update(chunk)
                if self.handle is not None:
                    self.handle.write(chunk)
            except BaseException as error:  # re-raised in the writing thread
                self._error = error

    def write(self, data: Any) -> int:
        if self._error is not None:
            raise self._error
        chunk = bytes(data)  # the writer may reuse its buffer once this returns
        self._chunks.put(chunk)
        return len(chunk)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _write_hashed(write: Callable[[Any], None], path: str | os.PathLike | None) -> str:
    """Run ``write(sink)`` into a hashing sink, atomically to ``path`` (or to nothing when
    ``path`` is None: the bytes are only hashed); return their sha256."""
    if path is None:
        with _HashingSink() as sink:
            write(sink)
        return sink.hexdigest()
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as handle, _HashingSink(handle) as sink:
            write(sink)
    return sink.hexdigest()


def csv_pieces(table: pa.Table, threads: int) -> Iterator[pa.Buffer]:
    """``table`` as CSV text in row pieces of :data:`CSV_PIECE_ROWS`, formatted by ``threads``
    threads and yielded in order; the header is the first piece's.

    Formatting a row depends on that row alone, so the pieces joined are byte for byte the
    single writer's output; pyarrow formats without the GIL, so the threads run in parallel
    (formatting floats is most of a version's write time). At most ``threads + 1`` pieces are
    formatted ahead of the one being written.
    """

    def text(start: int) -> pa.Buffer:
        piece = table.slice(start, CSV_PIECE_ROWS)
        options = pa_csv.WriteOptions(quoting_style="needed", include_header=start == 0)
        out = pa.BufferOutputStream()
        pa_csv.write_csv(piece, out, options)
        return out.getvalue()

    starts = range(0, max(table.num_rows, 1), CSV_PIECE_ROWS)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead: deque = deque()
        for start in starts:
            ahead.append(pool.submit(text, start))
            if len(ahead) > threads:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def write_csv(table: pa.Table, path: str | os.PathLike, threads: int = 1) -> str:
    """Write ``table`` as CSV atomically and return the file's sha256 (hashed as written).

    With ``threads`` > 1 the text is formatted in that many threads (:func:`csv_pieces`):
    the same bytes, in about half the time with two. A crash leaves at most a hidden temporary
    file, never a half-written ``path``.
    """
    if threads <= 1:
        options = pa_csv.WriteOptions(quoting_style="needed")
        return _write_hashed(lambda sink: pa_csv.write_csv(table, sink, options), path)

    def write(sink: _HashingSink) -> None:
        for piece in csv_pieces(table, threads):
            sink.write(piece)

    return _write_hashed(write, path)


def write_arrow(table: pa.Table, path: str | os.PathLike) -> str:
    """Write ``table`` as a zstd-compressed Arrow IPC file, atomically; return its sha256.

    The Arrow copy of a version holds exactly the CSV's data and is what the next rules read:
    parsing a 150 MB CSV costs about a second per step, reading Arrow a tenth of that.
    Compressed with zstd it takes 40% of the uncompressed size (0.8 instead of 2.1 GB for
    the default chain); measured on the full-scale data, zstd reads in 0.15 s a step where lz4
    takes 0.08 s at an eighth more disk and Parquet takes 0.2 s (``scripts/benchmark.py``
    prints the disk figure).
    """
    options = pa_ipc.IpcWriteOptions(compression=ARROW_COMPRESSION)

    def write(sink: _HashingSink) -> None:
        with pa_ipc.new_file(sink, table.schema, options=options) as out:
            out.write_table(table)

    return _write_hashed(write, path)


@timed("read")
def read_arrow(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read the Arrow copy of a version (only ``columns``, when given)."""
    with pa.memory_map(str(path)) as source:
        table = pa_ipc.open_file(source).read_all()
        return (table if columns is None else table.select(list(columns))).to_pandas()


@timed("read")
def arrow_columns(path: str | os.PathLike) -> list[str]:
    """The column names of a version's Arrow copy, from its schema alone (no data read)."""
    with pa.memory_map(str(path)) as source:
        return list(pa_ipc.open_file(source).schema.names)


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
    copy of it, as it did: 0.2-0.3 s a step at full scale). At most :data:`HANDOFF_LIMIT`
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
            f"(sha256 {actual[:12]}, recorded {metadata['sha256'][:12]}): it was changed "
            "after it was built. Put it back, or make it again with snakemake --forcerun "
            f"{metadata['transformation']['name']}"
        )
    return _read_csv_table(pa.BufferReader(data), metadata_dtypes(metadata))


@timed("read")
def read_csv(path: str | os.PathLike, dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a version CSV; with ``dtypes`` (from its metadata) every column keeps its type.

    Without them Arrow would re-infer types, and a float column whose values happen to be
    whole (written as ``3``) would come back as integers.
    """
    return _read_csv_table(path, dtypes).to_pandas()


def _read_csv_table(
    source: str | os.PathLike | pa.NativeFile, dtypes: Mapping[str, str] | None
) -> pa.Table:
    convert = pa_csv.ConvertOptions(
        column_types={name: ARROW_TYPES[dtype] for name, dtype in (dtypes or {}).items()},
        strings_can_be_null=False,
    )
    return pa_csv.read_csv(source, convert_options=convert)


@timed("write")
def write_json(document: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


@timed("read")
def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON document."""
    return json.loads(Path(path).read_text())


def _plain(value: Any) -> Any:
    """Turn numpy scalars and tuples inside parameters into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def version_metadata(
    frame: pd.DataFrame,
    version: str,
    csv_sha256: str,
    transformation: str,
    parameters: Mapping[str, Any],
    input_version: str | None = None,
    input_sha256: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata document of one data version (no timestamps, no paths).

    Keys: ``version``, ``rows``, ``columns`` (``[{"name", "dtype"}]`` in column order, dtypes
    as in :func:`logical_dtype`), ``sha256`` (of the CSV), ``input`` (``{"version",
    "sha256"}`` of the version it was made from, both None for the raw version),
    ``transformation`` (``{"name", "parameters"}``) and ``workflow_version``; ``extra`` adds
    further top-level keys (the raw version's ``raw_file`` and ``validation``, every
    version's ``contracts`` and ``arrow_sha256``).
    """
    document = {
        "version": version,
        "rows": int(len(frame)),
        "columns": [{"name": n, "dtype": d} for n, d in column_dtypes(frame).items()],
        "sha256": csv_sha256,
        "input": {"version": input_version, "sha256": input_sha256},
        "transformation": {"name": transformation, "parameters": _plain(dict(parameters))},
        "workflow_version": __version__,
    }
    if extra:
        document.update(_plain(dict(extra)))
    return document


def metadata_dtypes(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Column name -> logical dtype, from a metadata document."""
    return {column["name"]: column["dtype"] for column in metadata["columns"]}


@timed("write")
def write_frame_csv(frame: pd.DataFrame, path: str | os.PathLike) -> dict[str, Any]:
    """Write ``frame`` as a CSV the way a version's is written (Arrow, shortest round-trip
    floats, atomically) and return what a metadata document records about such a file:
    ``rows``, ``columns`` (``[{"name", "dtype"}]``) and ``sha256``."""
    digest = write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
    return {
        "rows": int(len(frame)),
        "columns": [{"name": n, "dtype": d} for n, d in column_dtypes(frame).items()],
        "sha256": digest,
    }


@timed("write")
def write_version(
    frame: pd.DataFrame,
    csv_path: str | os.PathLike,
    metadata_path: str | os.PathLike,
    arrow_path: str | os.PathLike | None = None,
    threads: int = 1,
    hand_off_table: bool = False,
    **metadata: Any,
) -> dict[str, Any]:
    """Write a version's CSV, its Arrow copy (when ``arrow_path`` is given), then its metadata
    (each atomically); the CSV's text is formatted in ``threads`` threads (:func:`write_csv`).
    With ``hand_off_table`` the table is held for the next step in this process
    (:func:`hand_off`).

    The metadata is written last, so a version whose metadata exists is complete. With an
    Arrow copy, the metadata's ``arrow_sha256`` is the sha256 of that file as written from the
    same table as the CSV, so ``snakemake verify`` proves the copy still holds the CSV's data
    by hashing the file (0.05 s for a full-scale version) instead of parsing the CSV.

    Both files are hashed as they are written (not read back), and the Arrow copy is written
    in a second thread while the CSV is (pyarrow releases the GIL): the CSV is the longest
    write, so the copy and both hashes cost little wall time on a machine with two cores.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = dict(metadata.pop("extra", None) or {})
    if arrow_path is None:
        digest = write_csv(table, csv_path, threads)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            arrow_digest = pool.submit(write_arrow, table, arrow_path)
            digest = write_csv(table, csv_path, threads)
            extra["arrow_sha256"] = arrow_digest.result()
    document = version_metadata(frame, csv_sha256=digest, extra=extra, **metadata)
    write_json(document, metadata_path)
    if hand_off_table:
        hand_off(table, csv_path, digest)
    return document


def transform_version(
    input_data: str | os.PathLike,
    input_metadata: str | os.PathLike,
    output_csv: str | os.PathLike,
    output_metadata: str | os.PathLike,
    output_arrow: str | os.PathLike | None,
    version: str,
    transformation: str,
    parameters: Mapping[str, Any],
    contract: Mapping[str, Any] | None = None,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Make ``version`` from an input version by the named transformation; return metadata
    (its CSV formatted in ``threads`` threads). ``log`` is told where the input came from.

    ``input_data`` is the input's Arrow copy or, for a version without one, its CSV
    (:func:`read_version_data`). Without ``output_arrow`` the output gets no Arrow copy and its
    table is handed off to the next step.

    The result is checked against ``contract`` (:func:`drg_workflow.contracts.check_contract`)
    before anything is written: a broken contract raises
    :class:`~drg_workflow.contracts.ContractError` and leaves no output; the passed checks
    are recorded in the metadata's ``contracts``.
    """
    source = read_json(input_metadata)
    frame = read_version_data(input_data, source, log)
    result = apply_transformation(transformation, frame, dict(parameters))
    checks = check_contract(result, version, transformation, contract or {}, source["rows"])
    return write_version(
        result,
        output_csv,
        output_metadata,
        output_arrow,
        version=version,
        transformation=transformation,
        parameters=parameters,
        input_version=source["version"],
        input_sha256=source["sha256"],
        extra={"contracts": checks},
        threads=threads,
        hand_off_table=output_arrow is None,
    )


def transformation_step(
    log_path: str | os.PathLike, rule_name: str, **arguments: Any
) -> dict[str, Any]:
    """The adapter every transformation rule shares: :func:`transform_version` logged to the
    rule's log (its contract checks, its size and its profile) and return the metadata.

    It runs in a thread of Snakemake's own process (the rules' ``run:``), not in a process of
    its own: a step's work is a second or two, and starting Python with pandas and pyarrow for
    each took another 0.7 s (docs/performance.md). A bad contract raises
    :class:`~drg_workflow.errors.StepFailed` with the one-line message. ``arguments`` are
    :func:`transform_version`'s.
    """
    from drg_workflow.errors import logged_rule

    with logged_rule(str(log_path), rule_name, in_process=True) as log:
        metadata = transform_version(**arguments, log=log)
        for check in metadata["contracts"]:
            log.info("contract check %s passed: %s", check["check"], check["measured"])
        log.info(
            "%s: %d rows, %d columns",
            metadata["version"],
            metadata["rows"],
            len(metadata["columns"]),
        )
    return metadata
