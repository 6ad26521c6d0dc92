"""Reading, writing and describing data versions (``{version}.csv`` + ``_metadata.json``).

A version is its CSV, its metadata (which pins the output to its input, transformation and
parameters) and, for some, an Arrow copy: :func:`write_version` writes them.
The files themselves are :mod:`drg_workflow.tables`' and :mod:`drg_workflow.documents`'; the
rule adapter is :mod:`drg_workflow.chain_step`. Nothing here knows about Snakemake; paths come
in as arguments.

Bytes are reproducible: the CSV is written by Arrow (shortest round-trip float text, no index),
and the metadata holds no timestamps or absolute paths, with sorted keys. docs/data-versions.md
describes the files of a version and every metadata field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from drg_workflow import __version__
from drg_workflow.documents import write_json
from drg_workflow.handoff import hand_off
from drg_workflow.profiling import timed
from drg_workflow.tables import column_dtypes, write_arrow, write_csv


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
