"""v0: the raw data in the real schema, from the bundled generator or a user's CSV."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from drg_workflow.contracts import check_contract
from drg_workflow.hashing import file_sha256
from drg_workflow.names import RAW_TRANSFORMATION, RAW_VERSION
from drg_workflow.raw_schema import RAW_YEAR_COLUMN
from drg_workflow.synthetic import generate_raw
from drg_workflow.versions import write_version


def load_raw(
    parameters: Mapping[str, Any], raw_path: str | os.PathLike | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The raw frame for the configured source, and what the v0 metadata records about it.

    ``parameters`` are the source settings (``source`` plus the generator's settings, or the
    validation policy, plus ``url`` / ``s3`` for those sources); ``raw_path`` is the local or
    downloaded CSV for non-synthetic sources. For ``file`` only the file's name and sha256 are
    recorded, never its absolute path; for ``url`` and ``s3`` the URL / URI it came from (without
    credentials) and the sha256 of the downloaded bytes. So metadata stays byte-identical
    wherever the workflow runs, and error messages name the URL, not a local cache path.
    """
    if parameters["source"] == "synthetic":
        settings = {k: v for k, v in parameters.items() if k != "source"}
        return generate_raw(**settings), {}
    if raw_path is None:
        raise ValueError(f"raw source {parameters['source']!r} needs an input file")
    # Imported here: the synthetic default never needs the CSV validator.
    from drg_workflow.raw_input import RawDataError, read_raw_csv

    uri = source_uri(parameters)
    first_year, last_year = parameters["plausible_years"]
    try:
        frame, report = read_raw_csv(
            raw_path,
            on_bad_rows=parameters["on_bad_rows"],
            first_year=first_year,
            last_year=last_year,
        )
    except RawDataError as error:
        if uri is None:
            raise
        # Name the URL / URI the user configured, not the local copy's path.
        raise RawDataError(str(error).replace(os.fspath(raw_path), uri, 1)) from error
    sha256 = file_sha256(raw_path)
    raw_file = {"name": Path(raw_path).name} if uri is None else {"uri": uri}
    return frame, {"raw_file": {**raw_file, "sha256": sha256}, "validation": report.to_dict()}


def source_uri(parameters: Mapping[str, Any]) -> str | None:
    """The URL (``url``) or ``s3://`` URI (``s3``) the raw CSV came from; None otherwise."""
    source = parameters["source"]
    if source not in ("url", "s3"):
        return None
    from drg_workflow.download import public_url

    return public_url(parameters[source])


def year_runs(years: list[int]) -> str:
    """Sorted years as runs: ``[2009, 2010, 2011, 2021]`` -> ``2009-2011, 2021``."""
    runs: list[list[int]] = []
    for year in years:
        if runs and year == runs[-1][-1] + 1:
            runs[-1].append(year)
        else:
            runs.append([year])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def raw_years(frame: pd.DataFrame) -> dict[str, Any]:
    """The years of the raw data, recorded in v0's metadata: ``first``, ``last``, ``present``
    (every year with rows) and ``missing`` (the years between first and last without any)."""
    present = sorted(int(year) for year in frame[RAW_YEAR_COLUMN].unique())
    if not present:
        return {"first": None, "last": None, "present": [], "missing": []}
    missing = sorted(set(range(present[0], present[-1] + 1)) - set(present))
    return {"first": present[0], "last": present[-1], "present": present, "missing": missing}


def missing_years_warning(years: dict[str, Any]) -> str | None:
    """One warning naming every year missing inside the raw data's range (``None`` without
    a gap): ``no data for 2018, 2019, 2020 (the raw data has the years 2009-2017, 2021) ...``."""
    if not years["missing"]:
        return None
    return (
        f"no data for {', '.join(map(str, years['missing']))} (the raw data has the years "
        f"{year_runs(years['present'])}): lags across the gap stay missing, and the forecast "
        f"is for {years['last'] + 1}, the year after the last one"
    )


def ingest_raw(
    parameters: Mapping[str, Any],
    output_csv: str | os.PathLike,
    output_metadata: str | os.PathLike,
    output_arrow: str | os.PathLike | None,
    version: str = RAW_VERSION,
    raw_path: str | os.PathLike | None = None,
    contract: Mapping[str, Any] | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Write data version v0 (CSV, Arrow copy, metadata) and return its metadata (the CSV
    formatted in ``threads`` threads). Without ``output_arrow`` v0 gets no Arrow copy and its
    table is handed off to the next step (:func:`drg_workflow.handoff.hand_off`).

    The raw frame is checked against ``contract`` before anything is written (see
    :func:`drg_workflow.contracts.check_contract`); the passed checks go in the metadata, and so
    do the data's years (:func:`raw_years`).
    """
    frame, extra = load_raw(parameters, raw_path)
    checks = check_contract(frame, version, RAW_TRANSFORMATION, contract or {})
    extra = {**extra, "contracts": checks, "years": raw_years(frame)}
    return write_version(
        frame,
        output_csv,
        output_metadata,
        output_arrow,
        version=version,
        transformation=RAW_TRANSFORMATION,
        parameters=parameters,
        extra=extra,
        threads=threads,
        hand_off_table=output_arrow is None,
    )
