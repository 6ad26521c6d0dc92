"""A version without an Arrow copy reaches the next step from memory (same process) or from its
CSV (a new process): the same frame either way, so the chain's bytes do not depend on how the
steps were run (drg_workflow.handoff.hand_off / read_version_data)."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from modelling_frames import SCHEMA, rare_drg_threshold

from drg_workflow import handoff
from drg_workflow.chain import arrow_copy_versions, configured_parameters
from drg_workflow.chain_step import transform_version
from drg_workflow.config_validation import validate_config
from drg_workflow.contract_settings import configured_contract
from drg_workflow.handoff import HANDOFF_LIMIT, forget_handed_off, read_version_data
from drg_workflow.ingest import ingest_raw
from drg_workflow.names import RAW_TRANSFORMATION, RAW_VERSION
from drg_workflow.versions import write_version


@pytest.fixture(autouse=True)
def nothing_held():
    forget_handed_off()
    yield
    forget_handed_off()


@pytest.fixture
def csv_reads(monkeypatch) -> list[str]:
    """The CSVs read_version_data parsed (instead of taking them from memory)."""
    parsed: list[str] = []
    read_table = handoff._checked_csv_table

    def counting_read(path, metadata):
        parsed.append(Path(path).name)
        return read_table(path, metadata)

    monkeypatch.setattr(handoff, "_checked_csv_table", counting_read)
    return parsed


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "year": [2010, 2010, 2011],
            "facility_name": ["General", "", "St. Elsewhere"],
            "mean_cost": [1.5, 0.1 + 0.2, 3.0],
        }
    )


def written(tmp_path: Path, name: str, hand_off: bool = True) -> tuple[Path, dict]:
    csv = tmp_path / f"{name}.csv"
    metadata = write_version(
        frame(),
        csv,
        tmp_path / f"{name}.json",
        None,
        hand_off_table=hand_off,
        version=name,
        transformation="hand_made",
        parameters={},
    )
    return csv, metadata


def test_the_next_step_takes_the_table_from_memory_once(tmp_path: Path, csv_reads):
    csv, metadata = written(tmp_path, "v_a")
    from_memory = read_version_data(csv, metadata)
    assert csv_reads == []
    # Held for one read: the next reader of the file parses it, and gets the same frame.
    from_csv = read_version_data(csv, metadata)
    assert csv_reads == ["v_a.csv"]
    pd.testing.assert_frame_equal(from_memory, from_csv)
    pd.testing.assert_frame_equal(from_memory, frame())


def test_a_csv_replaced_or_other_metadata_is_read_from_disk(tmp_path: Path, csv_reads):
    csv, metadata = written(tmp_path, "v_a")
    # Replaced with the same bytes (a copy moved over it, as an edit or a download does).
    shutil.copyfile(csv, tmp_path / "copy.csv")
    os.replace(tmp_path / "copy.csv", csv)
    read_version_data(csv, metadata)
    assert csv_reads == ["v_a.csv"]

    # Metadata that records another CSV: the table in memory is not taken for it either.
    csv, metadata = written(tmp_path, "v_b")
    with pytest.raises(handoff.ChangedVersionError):
        read_version_data(csv, {**metadata, "sha256": "0" * 64})


def test_a_csv_edited_after_it_was_built_is_refused(tmp_path: Path):
    csv, metadata = written(tmp_path, "v_a", hand_off=False)
    csv.write_text(csv.read_text().replace("1.5", "2.5"))
    message = (
        r"v_a's CSV .*v_a.csv is not the one its metadata records \(sha256 [0-9a-f]{12}, "
        r"recorded [0-9a-f]{12}\): it was changed after it was built. Put it back, or make it "
        "again with snakemake --forcerun hand_made"
    )
    with pytest.raises(handoff.ChangedVersionError, match=message):
        read_version_data(csv, metadata)


def test_only_the_last_tables_are_held(tmp_path: Path, csv_reads):
    names = [f"v_{i}" for i in range(HANDOFF_LIMIT + 1)]
    files = [written(tmp_path, name) for name in names]
    for csv, metadata in files:
        read_version_data(csv, metadata)
    assert csv_reads == [f"{names[0]}.csv"]
    # Nothing is held unless asked for (score_backtest's tables, say).
    csv, metadata = written(tmp_path, "v_kept", hand_off=False)
    read_version_data(csv, metadata)
    assert csv_reads[-1] == "v_kept.csv"


def build_chain(directory: Path, config: dict, from_memory: bool) -> set[str]:
    """Every version of ``config``'s chain made as the workflow makes them (Arrow copies for
    the kept versions only); ``from_memory`` False forgets the handed-off table before each
    step, as a step in a process of its own would. Returns the CSVs parsed."""
    kept = arrow_copy_versions(config)

    def files(version: str) -> dict[str, Path | None]:
        folder = directory / version
        return {
            "csv": folder / f"{version}.csv",
            "metadata": folder / f"{version}_metadata.json",
            "arrow": folder / f"{version}.arrow" if version in kept else None,
        }

    parsed: set[str] = set()
    raw = files(RAW_VERSION)
    ingest_raw(
        {"source": "synthetic", **config["raw"]["synthetic"]},
        raw["csv"],
        raw["metadata"],
        raw["arrow"],
        contract=configured_contract(config, RAW_TRANSFORMATION),
        threads=2,
    )
    for step in config["chain"]:
        if not from_memory:
            forget_handed_off()
        source, target = files(step["input"]), files(step["version"])
        if source["arrow"] is None:
            parsed.add(step["input"])
        transform_version(
            input_data=source["arrow"] or source["csv"],
            input_metadata=source["metadata"],
            output_csv=target["csv"],
            output_metadata=target["metadata"],
            output_arrow=target["arrow"],
            version=step["version"],
            transformation=step["transformation"],
            parameters=configured_parameters(config, step["transformation"]),
            contract=configured_contract(config, step["transformation"]),
            threads=2,
        )
    return parsed


@pytest.mark.parametrize(("seed", "scale"), [(7, 0.01), (2027, 0.03)])
def test_a_chain_from_memory_has_the_bytes_of_one_from_csvs(tmp_path: Path, csv_reads, seed, scale):
    config = validate_config(
        {
            "raw": {"source": "synthetic", "synthetic": {"seed": seed, "scale": scale}},
            "transformations": {"drop_rare_drgs": {"threshold": rare_drg_threshold(scale)}},
        },
        copy.deepcopy(SCHEMA),
    )
    without_copy = build_chain(tmp_path / "memory", config, from_memory=True)
    assert csv_reads == []  # every version without a copy came from memory
    assert build_chain(tmp_path / "csv", config, from_memory=False) == without_copy
    assert sorted(csv_reads) == sorted(f"{v}.csv" for v in without_copy)
    assert len(without_copy) >= 10
    memory_files = sorted(
        p.relative_to(tmp_path / "memory") for p in (tmp_path / "memory").rglob("*.*")
    )
    csv_files = sorted(p.relative_to(tmp_path / "csv") for p in (tmp_path / "csv").rglob("*.*"))
    assert memory_files == csv_files
    for relative in memory_files:
        same = (tmp_path / "memory" / relative).read_bytes() == (
            tmp_path / "csv" / relative
        ).read_bytes()
        assert same, relative
