"""Benchmark the feature chain: full-scale synthetic data through v0 -> v13 with Snakemake.

Prints the wall time of the whole run and, per rule, the seconds and peak memory (max RSS)
that Snakemake's ``benchmark:`` files recorded. Performance targets are checked here, by a
person reading figures, not by timed tests.

Then it times every version's data-contract checks in-process on the versions just built (what
the rules add to the chain; the budget is 2 s in all at full scale) and ``snakemake verify``.

With ``--tuning`` it then runs the modelling with the configured budget (setup, tuning shards,
final fits, baseline, comparison) and prints its wall time, the trials per minute and, for one
model and one trial budget, the speed-up of 2 (and 4, 8 where the cores exist) parallel shards
over 1.

    python scripts/benchmark.py                # full scale (about 1.1 million rows), 2 cores
    python scripts/benchmark.py --scale 0.1 --cores 8
    python scripts/benchmark.py --tuning --cores 8
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
sys.path.insert(0, str(ROOT / "scripts"))


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


def disk_usage(workdir: Path) -> dict[str, int]:
    """Bytes under results/: the version CSVs, their Arrow copies, and everything else."""
    usage = {"CSV": 0, "Arrow copies": 0, "other": 0}
    for path in (workdir / "results").rglob("*"):
        if path.is_file():
            kind = {".csv": "CSV", ".arrow": "Arrow copies"}.get(path.suffix, "other")
            usage[kind] += path.stat().st_size
    return usage


def print_disk_usage(workdir: Path, what: str) -> int:
    """Print the bytes under results/ (what ``du -sb results`` counts for the files) by kind;
    return the total."""
    usage = disk_usage(workdir)
    total = sum(usage.values())
    copies = sorted(p.parent.name for p in (workdir / "results").glob("*/*.arrow"))
    parts = ", ".join(f"{kind} {size / 1e9:.2f}" for kind, size in usage.items())
    print(
        f"disk under results/ after {what}: {total / 1e9:.2f} GB, {total:,} bytes ({parts}; "
        f"Arrow copies of {', '.join(copies) or 'no version'})"
    )
    return total


def version_rows(workdir: Path, version: str) -> int:
    metadata = workdir / "results" / version / f"{version}_metadata.json"
    return json.loads(metadata.read_text())["rows"]


def benchmark_contracts(workdir: Path, config: dict, cores: int) -> None:
    """Seconds of every version's contract checks (what the rules add), then of verify.

    The checks are timed in-process on the versions just built, exactly as the adapter runs
    them; so is the hashing of each Arrow copy for its metadata. Verify is timed as the
    whole ``snakemake verify`` call and as :func:`drg_workflow.verify.verify_chain` alone.
    """
    from drg_workflow.config_validation import validate_config
    from drg_workflow.contract_settings import configured_contract
    from drg_workflow.contracts import check_contract
    from drg_workflow.documents import read_json
    from drg_workflow.hashing import file_sha256
    from drg_workflow.names import RAW_TRANSFORMATION, RAW_VERSION
    from drg_workflow.verify import VersionFiles, verify_chain

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    settings = validate_config(json.loads(json.dumps(config)), schema)
    steps = {
        RAW_VERSION: (RAW_TRANSFORMATION, None),
        **{s["version"]: (s["transformation"], s["input"]) for s in settings["chain"]},
    }
    results = workdir / "results"
    print(f"\n{'version':<8} {'rows':>10} {'checks':>6} {'contract s':>10} {'Arrow hash s':>12}")
    total = hashing = 0.0
    for version, (transformation, source) in steps.items():
        frame = read_version(results, version)
        input_rows = None if source is None else version_rows(workdir, source)
        started = time.perf_counter()
        checks = check_contract(
            frame,
            version,
            transformation,
            configured_contract(settings, transformation),
            input_rows,
        )
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        if (results / version / f"{version}.arrow").exists():
            file_sha256(results / version / f"{version}.arrow")
        hash_seconds = time.perf_counter() - started
        total, hashing = total + seconds, hashing + hash_seconds
        print(
            f"{version:<8} {len(frame):>10,} {len(checks):>6} {seconds:10.3f} {hash_seconds:12.3f}"
        )
    print(
        f"contract checks, all versions: {total:6.2f} s "
        f"(Arrow hashes for the metadata {hashing:.2f} s)"
    )
    chain = [
        VersionFiles(
            version=version,
            transformation=transformation,
            input_version=source,
            csv=results / version / f"{version}.csv",
            arrow=arrow if (arrow := results / version / f"{version}.arrow").exists() else None,
            metadata=results / version / f"{version}_metadata.json",
        )
        for version, (transformation, source) in steps.items()
    ]
    started = time.perf_counter()
    report = verify_chain(chain)
    verify_seconds = time.perf_counter() - started
    assert report["passed"], report["broken"]
    wall = run_snakemake(workdir, cores, "verify")
    print(f"verify_chain (in-process):  {verify_seconds:6.2f} s")
    print(f"snakemake verify (wall):    {wall:6.2f} s")
    assert read_json(workdir / "logs/verify/verify.json")["passed"]


def read_version(results: Path, version: str):
    """A built version's frame: from its Arrow copy if it has one, else from its CSV."""
    from drg_workflow.documents import read_json
    from drg_workflow.tables import metadata_dtypes, read_arrow, read_csv

    arrow = results / version / f"{version}.arrow"
    if arrow.exists():
        return read_arrow(arrow)
    metadata = read_json(results / version / f"{version}_metadata.json")
    return read_csv(results / version / f"{version}.csv", metadata_dtypes(metadata))


def benchmark_single_process(workdir: Path, config: dict, threads: int = 1) -> float:
    """Seconds of the same chain in one Python process, as the floor the workflow is measured
    against: v0 read once, every transformation applied in turn (the workflow's own vectorised
    functions) and each version written once as CSV by pyarrow (one writer, or with ``threads``
    > 1 the workflow's own text formatted in that many threads); no job start-ups, Arrow
    copies, hashes, contracts or metadata."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from drg_workflow.chain import configured_parameters
    from drg_workflow.config_validation import validate_config
    from drg_workflow.tables import csv_pieces
    from drg_workflow.transformations import apply_transformation

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    settings = validate_config(json.loads(json.dumps(config)), schema)
    out = Path(tempfile.mkdtemp(prefix="drg-single-process-"))
    try:
        started = time.perf_counter()
        frames = {"v0": read_version(workdir / "results", "v0")}
        for step in settings["chain"]:
            name = step["transformation"]
            frame = apply_transformation(
                name, frames[step["input"]], configured_parameters(settings, name)
            )
            frames[step["version"]] = frame
            table = pa.Table.from_pandas(frame, preserve_index=False)
            path = out / f"{step['version']}.csv"
            if threads > 1:
                with open(path, "wb") as sink:
                    for piece in csv_pieces(table, threads):
                        sink.write(piece)
            else:
                pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="needed"))
        return time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)


MODELLING_RULES = (
    "setup_mlflow",
    "setup_study",
    "tune_shard",
    "train_final",
    "evaluate_baseline",
    "compare_models",
    "register_champion",
    "forecast",
)


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def shard_summaries(workdir: Path, model: str | None = None) -> list[dict]:
    """The tuning shards' summaries (trials, seconds, start / finish times) of one or all models."""
    pattern = f"{model or '*'}/shard_*.json"
    return [json.loads(p.read_text()) for p in sorted((workdir / "results/tuning").glob(pattern))]


def trial_span(summaries: list[dict]) -> float:
    """Seconds from the first shard's first trial to the last shard's last trial."""
    return max(s["finished"] for s in summaries) - min(s["started"] for s in summaries)


def benchmark_tuning(workdir: Path, config: dict, cores: int) -> None:
    """The configured modelling run, then the 1 vs n shard speed-up for one trial budget."""
    tuning = config["modelling"]["tuning"]
    seconds = run_snakemake(workdir, cores, "results/forecast/forecast.csv")
    shards = shard_summaries(workdir)
    trials = sum(s["n_trials_run"] for s in shards)
    span = trial_span(shards)
    print(
        f"\nmodelling (setup, {tuning['n_shards']} shards x {tuning['trials_per_shard']} trials "
        f"per model, finals, baseline, comparison, champion, forecast), --cores {cores}"
    )
    print(f"modelling (wall):          {seconds:7.1f} s")
    print(f"trials:                    {trials:7d} in {span:.1f} s of tuning")
    print(f"trials per minute:         {trials * 60 / span:7.2f} (all shards together)")
    header = ("model", "shard", "trials", "pruned", "seconds", "trials/min")
    print("\n{:<24} {:>5} {:>6} {:>6} {:>8} {:>10}".format(*header))
    for s in shards:
        print(
            f"{s['model']:<24} {s['shard_index']:>5} {s['n_trials_run']:>6} {s['n_pruned']:>6} "
            f"{s['seconds']:8.1f} {s['trials_per_minute']:10.2f}"
        )
    print(f"\n{'rule':<28} {'job':<28} {'seconds':>8} {'max RSS MB':>11}")
    for rule, job, secs, rss in benchmark_rows(workdir):
        if rule in MODELLING_RULES:
            print(f"{rule:<28} {job:<28} {secs:8.2f} {rss:11.0f}")
    comparison = workdir / "results/models/comparison.csv"
    print(f"\n{comparison.name}:\n{comparison.read_text()}")
    forecast = json.loads((workdir / "results/forecast/forecast_metadata.json").read_text())
    by_group = forecast["interval"]["test"]["by_group"]
    print(
        f"forecast of {forecast['forecast_year']} by {forecast['model']}: {forecast['rows']} rows; "
        f"{forecast['interval']['method']} interval coverage on the test years (all rows; "
        "groups from lowest to highest): "
        + "; ".join(
            f"{level} {100 * groups['all']['coverage']:.1f}% "
            f"({min(100 * g['coverage'] for g in groups.values()):.1f}-"
            f"{max(100 * g['coverage'] for g in groups.values()):.1f}%)"
            for level, groups in by_group.items()
        )
    )


def benchmark_speedup(workdir: Path, config: dict, cores: int, model: str, budget: int) -> None:
    """Wall time of ``budget`` trials of ``model`` in 1, 2, 4, ... shards (up to the machine's
    cores: more shards than cores only compete for them).

    Pruning is switched off so that every configuration does the same work (pruning decisions
    depend on the order trials finish in, which differs with the number of shards). Setup is
    run first and not timed: it is the same serial step whatever the number of shards. ``wall``
    is the whole Snakemake call (start-up, imports and data loading of each job included),
    ``trials`` the span from the first trial's start to the last one's end.
    """
    machine = max(os.cpu_count() or 2, 2)
    counts = [n for n in (1, 2, 4, 8, 16, 32) if n <= machine and budget % n == 0]
    print(f"\nspeed-up: {budget} trials of {model}, no pruning, --cores {cores}")
    print(f"{'shards':>6} {'wall s':>8} {'trials s':>8} {'trials/min':>10} {'speed-up':>17}")
    reference = None
    for n in counts:
        trial_config = json.loads(json.dumps(config))
        tuning = trial_config["modelling"]["tuning"]
        tuning.update(n_shards=n, trials_per_shard=budget // n)
        tuning.setdefault("pruner", {})["n_startup_trials"] = budget + 1
        write_config(workdir, trial_config)
        run_snakemake(workdir, cores, f"results/tuning/{model}/setup.json")
        targets = [f"results/tuning/{model}/shard_{i}.json" for i in range(n)]
        seconds = run_snakemake(workdir, cores, *targets)
        span = trial_span([json.loads((workdir / t).read_text()) for t in targets])
        reference = reference or (seconds, span)
        print(
            f"{n:>6} {seconds:8.1f} {span:8.1f} {budget * 60 / seconds:10.2f} "
            f"{reference[0] / seconds:5.2f}x ({reference[1] / span:.2f}x trials)"
        )
    write_config(workdir, config)


# --------------------------------------------------------------------------- modelling profile

#: Columns of the modelling profile: the phases of drg_workflow.profiling, in order.
PROFILE_COLUMNS = ("startup", "import", "read", "compute", "mlflow", "optuna", "write")


def job_profiles(workdir: Path) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """Per rule, every job's (wall seconds of its benchmark file, profile from its log)."""
    from drg_workflow.profiling import parse_profile_line

    rules: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for rule, job, seconds, _ in benchmark_rows(workdir):
        log = workdir / "logs" / rule / f"{job}.log"
        profile: dict[str, float] = {}
        if log.exists():
            for line in log.read_text().splitlines():
                profile = parse_profile_line(line) or profile
        rules.setdefault(rule, []).append((seconds, profile))
    return rules


def print_modelling_profile(workdir: Path) -> None:
    """Per rule of a finished build in ``workdir``: jobs, mean wall seconds and the mean
    seconds of start-up (interpreter, Snakemake's preamble, the script's imports), lazy
    imports, reading, compute, MLflow, Optuna and writing; then the trials per minute of each
    model's shards (trials alone, without start-up and data loading)."""
    print(f"\nper-rule profile of {workdir} (mean seconds per job)")
    header = ("rule", "jobs", "wall", *PROFILE_COLUMNS)
    print("{:<26} {:>4} {:>7}".format(*header[:3]) + "".join(f" {c:>7}" for c in header[3:]))
    for rule, jobs in sorted(
        job_profiles(workdir).items(), key=lambda kv: -max(j[0] for j in kv[1])
    ):
        walls = [wall for wall, _ in jobs]
        cells = []
        for column in PROFILE_COLUMNS:
            values = [profile.get(column, 0.0) for _, profile in jobs if profile]
            cells.append(f" {sum(values) / len(values):7.2f}" if values else f" {'-':>7}")
        print(f"{rule:<26} {len(jobs):>4} {sum(walls) / len(walls):7.2f}" + "".join(cells))
    shards = shard_summaries(workdir)
    if shards:
        print(f"\n{'model':<24} {'shards':>6} {'trials':>6} {'trials/min per shard':>22}")
        for model in sorted({s["model"] for s in shards}):
            mine = [s for s in shards if s["model"] == model]
            rates = [s["trials_per_minute"] for s in mine]
            print(
                f"{model:<24} {len(mine):>6} {sum(s['n_trials_run'] for s in mine):>6} "
                f"{min(rates):10.2f} - {max(rates):<9.2f}"
            )


def benchmark_modelling_profile(workdir: Path, cores: int) -> None:
    """The whole default target from scratch in ``workdir``, then its per-rule profile."""
    seconds = run_snakemake(workdir, cores)
    print(f"\nthe default target, --cores {cores} (machine has {os.cpu_count()}): {seconds:.1f} s")
    print_modelling_profile(workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="synthetic data scale")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--workdir", type=Path, help="keep results here (default: temporary)")
    parser.add_argument(
        "--tuning", action="store_true", help="also benchmark the modelling and its fan-out"
    )
    parser.add_argument(
        "--speedup-model", default="ridge", help="model of the 1 vs n shards comparison"
    )
    parser.add_argument(
        "--speedup-trials", type=int, default=16, help="trial budget of that comparison"
    )
    parser.add_argument(
        "--modelling-profile",
        nargs="?",
        const=True,
        metavar="BUILD",
        help="run the whole default target and print per rule its start-up, reading, compute, "
        "MLflow / Optuna and writing seconds and the trials per minute per model; with BUILD, "
        "the directory of a finished build, print that build's profile instead",
    )
    args = parser.parse_args()
    if isinstance(args.modelling_profile, str):
        print_modelling_profile(Path(args.modelling_profile))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="drg-benchmark-"))
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["raw"]["synthetic"]["scale"] = args.scale
    write_config(workdir, config)
    if args.modelling_profile:
        try:
            benchmark_modelling_profile(workdir, args.cores)
        finally:
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
        return
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
        single = benchmark_single_process(workdir, config)
        ratio = chain_seconds / single
        print(
            f"the same in one process:   {single:7.1f} s "
            f"(the workflow takes {ratio:.2f}x; the goal is at most 1.3x)"
        )
        threaded = benchmark_single_process(workdir, config, threads=2)
        print(
            f"  ... its CSVs in 2 threads: {threaded:5.1f} s "
            f"(as the workflow writes them: the workflow takes {chain_seconds / threaded:.2f}x)"
        )
        print_disk_usage(workdir, "the feature chain")
        print(f"\n{'rule':<28} {'version':<8} {'seconds':>8} {'max RSS MB':>11}")
        for rule, version, seconds, rss in benchmark_rows(workdir):
            print(f"{rule:<28} {version:<8} {seconds:8.2f} {rss:11.0f}")
        benchmark_contracts(workdir, config, args.cores)
        if args.tuning:
            benchmark_tuning(workdir, config, args.cores)
            # The rest of the default target (report figures and tables, verify_build).
            rest = run_snakemake(workdir, args.cores)
            print(f"rest of the default target (wall): {rest:7.1f} s")
            print_disk_usage(workdir, "the default target")
            benchmark_speedup(workdir, config, args.cores, args.speedup_model, args.speedup_trials)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
