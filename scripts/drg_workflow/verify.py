"""Proving the chain on disk: every version's files against its metadata, every link intact.

``snakemake verify`` (rule ``verify``, script ``scripts/verify_versions.py``) calls
:func:`verify_chain` on the configured chain. For each version it re-hashes the CSV and the
Arrow copy (where there is one: the other versions' next step reads the CSV) and compares them
with the ``sha256`` and ``arrow_sha256`` its metadata recorded when both were written from the
same table (so a matching Arrow copy holds the CSV's data), checks that the metadata names the
configured input and transformation and records its contract checks, and that the input
sha256 it recorded is that input's current one (an input rebuilt after it, say with other
parameters, breaks the link). A version none of whose files exist was never built (a targeted
build, e.g. of v11 only, makes only what it needs): it is named as such and breaks nothing,
unless a version that is built was made from it. Nothing here knows about Snakemake; paths come
in as arguments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.hashing import file_sha256, short_sha


class ChainBrokenError(DrgWorkflowError):
    """Some version on disk is not what its metadata says, or a link of the chain is broken."""


@dataclass(frozen=True)
class VersionFiles:
    """One version of the configured chain and where its files are."""

    version: str
    transformation: str
    input_version: str | None
    csv: str | os.PathLike
    #: None for a version without an Arrow copy (its next step reads the CSV).
    arrow: str | os.PathLike | None
    metadata: str | os.PathLike


def _short(digest: str | None) -> str:
    return short_sha(digest, missing="none")


def _file_problems(files: VersionFiles, document: Mapping[str, Any]) -> list[str]:
    """What is wrong with the version's CSV and Arrow copy against its metadata's digests."""
    problems: list[str] = []
    if not Path(files.csv).exists():
        problems.append("CSV missing")
    else:
        actual, recorded = file_sha256(files.csv), document.get("sha256")
        if actual != recorded:
            problems.append(
                f"CSV sha256 {_short(actual)} is not the metadata's {_short(recorded)}"
                " (the CSV was changed after it was built)"
            )
    recorded_arrow = document.get("arrow_sha256")
    if files.arrow is None:
        pass  # no copy kept: the CSV, checked above, is what the next step reads
    elif not Path(files.arrow).exists():
        problems.append("Arrow copy missing")
    elif recorded_arrow is None:
        problems.append("metadata records no Arrow sha256 (built before verify existed)")
    else:
        actual = file_sha256(files.arrow)
        if actual != recorded_arrow:
            problems.append(
                f"Arrow copy sha256 {_short(actual)} is not the one written with its CSV "
                f"({_short(recorded_arrow)}): the copy was replaced and may not hold the CSV's data"
            )
    return problems


def _input_problems(
    files: VersionFiles,
    document: Mapping[str, Any],
    metadata: Mapping[str, Mapping[str, Any] | None],
) -> list[str]:
    """What is wrong with the input the version was made from, against the chain and the
    input's current metadata."""
    problems: list[str] = []
    recorded_input = document.get("input") or {}
    if recorded_input.get("version") != files.input_version:
        problems.append(
            f"made from {recorded_input.get('version')}, but the chain makes it from "
            f"{files.input_version}"
        )
    elif files.input_version is not None:
        source = metadata.get(files.input_version)
        current = None if source is None else source.get("sha256")
        recorded = recorded_input.get("sha256")
        if source is None:
            problems.append(
                f"made from {files.input_version} with sha256 {_short(recorded)}, but "
                f"{files.input_version} is not on disk (deleted after {files.version} was built)"
            )
        elif current != recorded:
            problems.append(
                f"made from {files.input_version} with sha256 {_short(recorded)}, but "
                f"{files.input_version} is now {_short(current)} (rebuilt after "
                f"{files.version})"
            )
    return problems


def verify_version(
    files: VersionFiles, metadata: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """Check one version; ``metadata`` maps every version to its metadata (None if missing).

    Returns ``{"version", "built", "passed", "problems": [...], "rows", "sha256",
    "contract_checks"}``; a version with none of its files on disk is not built and passes.
    """
    problems: list[str] = []
    document = metadata.get(files.version)
    result: dict[str, Any] = {"version": files.version, "rule": files.transformation}
    if document is None:
        present = [p for p in (files.csv, files.arrow, files.metadata) if p and Path(p).exists()]
        if not present:
            return {**result, "built": False, "passed": True, "problems": []}
        problems.append("metadata missing (its build was interrupted, or it was deleted)")
        return {**result, "built": True, "passed": False, "problems": problems}
    if document.get("version") != files.version:
        problems.append(f"metadata is that of {document.get('version')!r}")
    name = document.get("transformation", {}).get("name")
    if name != files.transformation:
        problems.append(f"made by {name!r}, but the chain makes it by {files.transformation!r}")
    problems += _file_problems(files, document)
    problems += _input_problems(files, document, metadata)
    checks = document.get("contracts")
    if checks is None:
        problems.append("no contract checks recorded (built before contracts existed)")
    elif not all(check.get("passed") for check in checks):
        problems.append("a recorded contract check did not pass")
    return {
        **result,
        "built": True,
        "passed": not problems,
        "problems": problems,
        "rows": document.get("rows"),
        "sha256": document.get("sha256"),
        "contract_checks": len(checks or []),
        "arrow_copy": files.arrow is not None,
    }


def verify_chain(chain: Sequence[VersionFiles]) -> dict[str, Any]:
    """Verify every version of ``chain`` (in build order) on disk; return the report.

    The report (``{"passed", "versions": [...], "broken": [...], "first_broken",
    "not_built": [...]}``, see :func:`verify_version`) holds no timestamps or paths. Versions
    never built are listed in ``not_built``; with none built at all, nothing is proven and the
    report does not pass. It does not raise: see :func:`raise_if_broken`.
    """
    metadata: dict[str, dict[str, Any] | None] = {}
    for files in chain:
        path = Path(files.metadata)
        try:
            metadata[files.version] = json.loads(path.read_text()) if path.exists() else None
        except json.JSONDecodeError:
            metadata[files.version] = None
    versions = [verify_version(files, metadata) for files in chain]
    broken = [v for v in versions if not v["passed"]]
    problems = [f"{v['version']}: {problem}" for v in broken for problem in v["problems"]]
    built = [v for v in versions if v["built"]]
    if not built and versions:
        first = versions[0]
        problems = [f"{first['version']}: nothing of the chain is built yet"]
        broken = [first]
    return {
        "passed": not broken,
        "versions": versions,
        "broken": problems,
        "first_broken": None if not broken else {k: broken[0][k] for k in ("version", "rule")},
        "not_built": [v["version"] for v in versions if not v["built"]],
    }


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per version: ``ok`` with rows, sha256 and contract checks, or what is broken."""
    lines = []
    for entry in report["versions"]:
        if not entry["built"]:
            lines.append(f"{entry['version']:<6} not built (nothing of it on disk)")
        elif entry["passed"]:
            lines.append(
                f"{entry['version']:<6} ok      {entry['rows']:>10,} rows  sha256 "
                f"{_short(entry['sha256'])}  "
                f"{'Arrow copy ok' if entry.get('arrow_copy', True) else 'no Arrow copy'}  "
                "input ok  "
                f"{entry['contract_checks']} contract checks passed"
            )
        else:
            lines.append(f"{entry['version']:<6} BROKEN  " + "; ".join(entry["problems"]))
    if report.get("not_built"):
        built = len(report["versions"]) - len(report["not_built"])
        lines.append(
            f"{built} versions proven; never built: {', '.join(report['not_built'])} "
            "(a targeted build makes only what its target needs)"
        )
    return lines


def raise_if_broken(report: Mapping[str, Any]) -> None:
    """Raise :class:`ChainBrokenError` listing every broken link and how to repair the first."""
    if report["passed"]:
        return
    if not any(entry["built"] for entry in report["versions"]):
        raise ChainBrokenError(
            "nothing of the chain is on disk yet: build it first, e.g. snakemake --cores all "
            "features"
        )
    first = report["first_broken"]
    raise ChainBrokenError(
        "the chain on disk is broken:\n  "
        + "\n  ".join(report["broken"])
        + f"\nRebuild the first broken version and everything after it: snakemake --cores 2 "
        f"--forcerun {first['rule']} (the rule of {first['version']}), then verify again."
    )
