"""Shared fixtures: running the real workflow with Snakemake in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"

#: A small, fast configuration: a few thousand synthetic rows, thresholds scaled to match.
SMALL_CONFIG: dict = {
    "raw": {"source": "synthetic", "synthetic": {"seed": 7, "scale": 0.01}},
    "transformations": {"drop_rare_drgs": {"threshold": 500}},
}


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command line running the repository's workflow with ``workdir`` as working dir."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--nolock",
        *args,
    ]


def write_config(workdir: Path, config: dict) -> Path:
    """Write ``config`` as ``workdir/config/config.yaml`` (what the Snakefile loads)."""
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def run_workflow() -> Callable[..., subprocess.CompletedProcess]:
    """Run Snakemake on the real workflow: ``run_workflow(workdir, config, *args)``."""

    def run(
        workdir: Path, config: dict | None = None, *args: str, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        if config is not None:
            write_config(workdir, config)
        return subprocess.run(
            snakemake_command(workdir, *args),
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=600,
        )

    return run
