"""Tables as files: CSVs and Arrow copies written by pyarrow and hashed as they are written,
read back with the dtypes their metadata records.

Bytes are reproducible: the CSV is written by Arrow (shortest round-trip float text, no index).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc

from drg_workflow.files import atomic_output
from drg_workflow.profiling import timed

#: Codec of the Arrow copies (see :func:`write_arrow`).
ARROW_COMPRESSION = "zstd"


#: Rows per piece of a CSV formatted in parallel (:func:`write_csv` with threads): small
#: enough that a few pieces in flight hold little memory, large enough to keep threads busy.
CSV_PIECE_ROWS = 131_072


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
    reading Arrow is about ten times faster than parsing the CSV. zstd keeps the copies at
    about 40% of their uncompressed size and reads nearly as fast as lz4, which takes more
    disk (docs/performance.md has the figures; ``scripts/benchmark.py`` prints the disk).
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


@timed("read")
def read_csv(path: str | os.PathLike, dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a version CSV; with ``dtypes`` (from its metadata) every column keeps its type.

    Without them Arrow would re-infer types, and a float column whose values happen to be
    whole (written as ``3``) would come back as integers.
    """
    return read_csv_table(path, dtypes).to_pandas()


def read_csv_table(
    source: str | os.PathLike | pa.NativeFile, dtypes: Mapping[str, str] | None
) -> pa.Table:
    convert = pa_csv.ConvertOptions(
        column_types={name: ARROW_TYPES[dtype] for name, dtype in (dtypes or {}).items()},
        strings_can_be_null=False,
    )
    return pa_csv.read_csv(source, convert_options=convert)


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
