"""Writing data versions: atomic outputs with ordinary modes, compressed Arrow copies."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pytest

from drg_workflow import tables
from drg_workflow.documents import read_json
from drg_workflow.files import atomic_output
from drg_workflow.hashing import file_sha256
from drg_workflow.tables import metadata_dtypes, read_arrow, read_csv, write_arrow, write_csv
from drg_workflow.versions import write_version


@pytest.fixture
def umask() -> Iterator[callable]:
    """Set the process umask for a test (``umask(0o027)``) and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def small_frame(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "year": np.repeat(np.arange(2010, 2014), rows // 4),
            "facility_name": rng.choice(["General Hospital", "St. Elsewhere"], rows),
            "mean_cost": rng.integers(1000, 9000, rows) / 4,
        }
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_version_files_get_the_umask_mode(tmp_path: Path, umask, mask: int, expected: int):
    umask(mask)
    paths = [tmp_path / "v1" / name for name in ("v1.csv", "v1_metadata.json", "v1.arrow")]
    write_version(small_frame(), *paths, version="v1", transformation="t", parameters={})
    assert [mode(p) for p in paths] == [expected] * 3


def test_a_failed_write_leaves_nothing(tmp_path: Path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_replaces_only_when_complete(tmp_path: Path, umask):
    umask(0o022)
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_output(target) as temporary:
        temporary.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new" and mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_write_removes_the_temporaries_a_killed_writer_left(tmp_path: Path):
    """SIGKILL runs no cleanup: the hidden temporary of a killed write stays until the file is
    written again, which removes it (and leaves other files alone)."""
    (tmp_path / ".v.csv.abc123").write_text("half")
    (tmp_path / ".w.csv.abc123").write_text("another file's")
    with atomic_output(tmp_path / "v.csv") as temporary:
        temporary.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".w.csv.abc123", "v.csv"]


def test_arrow_copy_is_compressed_and_equals_the_csv(tmp_path: Path):
    frame = small_frame(20000)
    csv, metadata, arrow = tmp_path / "v.csv", tmp_path / "v.json", tmp_path / "v.arrow"
    write_version(frame, csv, metadata, arrow, version="v", transformation="t", parameters={})
    from_csv = read_csv(csv, metadata_dtypes(read_json(metadata)))
    pd.testing.assert_frame_equal(read_arrow(arrow), from_csv)
    pd.testing.assert_frame_equal(from_csv, frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    plain = tmp_path / "plain.arrow"
    with pa.OSFile(str(plain), "wb") as sink, pa_ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    assert arrow.stat().st_size < 0.5 * plain.stat().st_size


def test_hashes_are_those_of_the_files_written(tmp_path: Path):
    """The CSV and Arrow copy are hashed as they are written (in a thread beside the writer):
    the digests are those of the bytes on disk."""
    table = pa.Table.from_pandas(small_frame(30000), preserve_index=False)
    csv, arrow = tmp_path / "v.csv", tmp_path / "v.arrow"
    assert write_csv(table, csv) == file_sha256(csv)
    assert write_arrow(table, arrow) == file_sha256(arrow)
    document = write_version(
        table.to_pandas(), tmp_path / "w.csv", tmp_path / "w.json", tmp_path / "w.arrow",
        version="v", transformation="t", parameters={},
    )  # fmt: skip
    assert document["sha256"] == file_sha256(tmp_path / "w.csv") == file_sha256(csv)
    assert document["arrow_sha256"] == file_sha256(tmp_path / "w.arrow")
    assert (tmp_path / "w.csv").read_bytes() == csv.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "v.arrow", "v.csv", "w.arrow", "w.csv", "w.json",
    ]  # fmt: skip


@pytest.mark.parametrize("rows", [0, 1, 7, 30, 2000])
def test_a_csv_formatted_in_threads_has_the_single_writers_bytes(tmp_path: Path, monkeypatch, rows):
    """Pieces of a few rows formatted by several threads join to the one writer's bytes (one
    header, rows in order, quoting and missing values alike), whatever the number of rows."""
    monkeypatch.setattr(tables, "CSV_PIECE_ROWS", 7)
    frame = small_frame(2000).head(rows).reset_index(drop=True)
    frame.loc[frame.index[::3], "mean_cost"] = np.nan
    frame.loc[frame.index[::5], "facility_name"] = 'Ward "A", East'
    table = pa.Table.from_pandas(frame, preserve_index=False)
    one = write_csv(table, tmp_path / "one.csv")
    for threads in (2, 3):
        path = tmp_path / f"{threads}.csv"
        assert write_csv(table, path, threads=threads) == one == file_sha256(path)
        assert path.read_bytes() == (tmp_path / "one.csv").read_bytes()


def test_a_failed_hashed_write_leaves_nothing(tmp_path: Path):
    """An error inside the writer (here: a column pyarrow cannot write as CSV) leaves no file
    and no temporary file behind."""
    table = pa.table({"x": pa.array([[1, 2], [3]])})  # lists have no CSV form
    with pytest.raises(pa.ArrowInvalid):
        write_csv(table, tmp_path / "v.csv")
    assert list(tmp_path.iterdir()) == []


def test_arrow_copies_are_kept_for_versions_read_by_more_than_the_next_step():
    import copy

    import yaml
    from conftest import ROOT

    from drg_workflow.chain import arrow_copy_versions
    from drg_workflow.config_validation import validate_config

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    default = validate_config({}, copy.deepcopy(schema))
    # The forecast's names (v1) and base (v10, lag_columns' input), the modelling data.
    assert arrow_copy_versions(default) == {"v1", "v10", "v13"}
    other = copy.deepcopy(default)
    other["modelling"]["data_version"] = "v12"
    other["forecast"]["names"]["version"] = "v2"
    other["chain"].append({"version": "v14", "transformation": "median_profit", "input": "v3"})
    # v3 now feeds v4 and v14; v13 is read by nothing.
    assert arrow_copy_versions(other) == {"v2", "v3", "v10", "v12"}
