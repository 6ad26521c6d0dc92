"""The adapter every transformation rule shares: read the input version, apply a
transformation, check its contract, write the output version and its metadata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from drg_workflow.contracts import check_contract
from drg_workflow.documents import read_json
from drg_workflow.handoff import read_version_data
from drg_workflow.transformations import apply_transformation
from drg_workflow.versions import write_version


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

    Called by scripts/transform_version.py, which runs in a thread of Snakemake's own process
    (rules/common/rule_scripts.smk) unless a software deployment method is requested: a step's
    work is a second or two, and starting Python with pandas and pyarrow for each cost another
    0.7 s (docs/performance.md). There a broken contract raises
    :class:`~drg_workflow.jobs.StepFailed` with the one-line message; in a process of its own
    the message ends the script. ``arguments`` are :func:`transform_version`'s.
    """
    from drg_workflow.jobs import logged_rule

    with logged_rule(str(log_path), rule_name) as log:
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
