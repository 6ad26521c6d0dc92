"""Benchmark the feature chain: full-scale synthetic data through v0 -> v13 with Snakemake.

Prints the wall time of the whole run and, per rule, the seconds and peak memory (max RSS)
that Snakemake's ``benchmark:`` files recorded. Performance targets are checked here, by a
person reading figures, not by timed tests.

    python scripts/benchmark.py                # full scale (about 1.1 million rows), 2 cores
    python scripts/benchmark.py --scale 0.1 --cores 8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, cores: int, *targets: str) -> float:
    """Run the workflow in ``workdir`` and return its wall time in seconds."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        *targets,
        # --quiet takes several values, so it comes after the targets.
        "--quiet",
        "all",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def benchmark_rows(workdir: Path) -> list[tuple[str, str, float, float]]:
    """(rule, version, seconds, max RSS MB) from every benchmark file, in run order."""
    rows = []
    for path in (workdir / "benchmarks").glob("*/*.tsv"):
        with path.open() as handle:
            record = next(csv.DictReader(handle, delimiter="\t"))
        rss = float(record["max_rss"]) if record["max_rss"] not in ("", "NA", "-") else 0.0
        rows.append((path.parent.name, path.stem, float(record["s"]), rss))
    return sorted(rows, key=lambda row: row[2], reverse=True)


def version_rows(workdir: Path, version: str) -> int:
    metadata = workdir / "results" / version / f"{version}_metadata.json"
    return json.loads(metadata.read_text())["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="synthetic data scale")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--workdir", type=Path, help="keep results here (default: temporary)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="drg-benchmark-"))
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["raw"]["synthetic"]["scale"] = args.scale
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        # v0 (generating the raw file) is timed on its own so the chain's figure is v0 -> v13.
        raw_seconds = run_snakemake(workdir, args.cores, "results/v0/v0.csv")
        chain_seconds = run_snakemake(workdir, args.cores, "results/v13/v13.csv")
        print(
            f"\nscale {args.scale}: v0 has {version_rows(workdir, 'v0'):,} rows, "
            f"v8 {version_rows(workdir, 'v8'):,}, v13 {version_rows(workdir, 'v13'):,}"
        )
        print(f"cores: {args.cores} (machine has {os.cpu_count()})")
        print(f"generate v0 (wall):        {raw_seconds:7.1f} s")
        print(f"v0 -> v13 chain (wall):    {chain_seconds:7.1f} s")
        print(f"\n{'rule':<28} {'version':<8} {'seconds':>8} {'max RSS MB':>11}")
        for rule, version, seconds, rss in benchmark_rows(workdir):
            print(f"{rule:<28} {version:<8} {seconds:8.2f} {rss:11.0f}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
