"""Real Snakemake runs of the workflow on small synthetic data."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, SMALL_CONFIG, deploy_as_module, snakemake_command, write_config

from drg_workflow.chain import arrow_copy_versions
from drg_workflow.config_validation import validate_config
from drg_workflow.documents import read_json
from drg_workflow.tables import metadata_dtypes, read_arrow, read_csv
from drg_workflow.transformations import apply_transformation

pytestmark = pytest.mark.workflow

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(workdir, *args), capture_output=True, text=True, timeout=600
    )


def result_files(workdir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(workdir)): p.read_bytes()
        for p in sorted((workdir / "results").rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """One complete run of every data version on the small config, shared by several tests.

    Target `features`: the default target also tunes models (tests/test_models_workflow.py),
    whose MLflow and Optuna stores are not byte-reproducible.
    """
    workdir = tmp_path_factory.mktemp("small")
    write_config(workdir, SMALL_CONFIG)
    result = run(workdir, "features")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def full_config() -> dict:
    return validate_config(copy.deepcopy(SMALL_CONFIG), SCHEMA)


def test_every_version_and_its_metadata(small_run: Path):
    config = full_config()
    versions = ["v0", *[step["version"] for step in config["chain"]]]
    rules = {"v0": "ingest_raw", **{s["version"]: s["transformation"] for s in config["chain"]}}
    metadata = {}
    for version in versions:
        csv = small_run / "results" / version / f"{version}.csv"
        document = json.loads(
            (small_run / "results" / version / f"{version}_metadata.json").read_text()
        )
        metadata[version] = document
        frame = read_csv(csv, metadata_dtypes(document))
        assert document["version"] == version
        assert document["rows"] == len(frame) > 0
        assert [c["name"] for c in document["columns"]] == list(frame.columns)
        assert document["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
        # The Arrow copy the next rules read holds exactly the CSV's data; a version read only
        # by the next step has none (that step took it from memory or read the CSV).
        arrow = csv.with_suffix(".arrow")
        if version in arrow_copy_versions(config):
            pd.testing.assert_frame_equal(read_arrow(arrow), frame)
            assert document["arrow_sha256"] == hashlib.sha256(arrow.read_bytes()).hexdigest()
        else:
            assert not arrow.exists(), version
            assert "arrow_sha256" not in document, version
        assert document["workflow_version"]
        assert str(small_run) not in json.dumps(document)  # no absolute paths
        log = small_run / "logs" / rules[version] / f"{version}.log"
        assert f"{version}: {document['rows']} rows" in log.read_text()
    copies = arrow_copy_versions(config)
    for step in config["chain"]:
        document = metadata[step["version"]]
        assert document["transformation"]["name"] == step["transformation"]
        assert document["input"] == {
            "version": step["input"],
            "sha256": metadata[step["input"]]["sha256"],
        }
        # One run: each step took a version without a copy from memory, as its step wrote it.
        log = (small_run / "logs" / step["transformation"] / f"{step['version']}.log").read_text()
        source = "its Arrow copy" if step["input"] in copies else "from memory"
        assert f"input {step['input']}: {source}" in log, step["version"]
    assert (
        metadata["v7"]["transformation"]["parameters"]
        == SMALL_CONFIG["transformations"]["drop_rare_drgs"]
    )
    assert metadata["v12"]["transformation"]["parameters"]["window"] == 2
    assert metadata["v0"]["transformation"]["parameters"]["source"] == "synthetic"
    # The rare-DRG threshold bites, and agg_severities collapses severities.
    assert metadata["v7"]["rows"] < metadata["v6"]["rows"]
    assert metadata["v8"]["rows"] < metadata["v7"]["rows"]
    v13_columns = [c["name"] for c in metadata["v13"]["columns"]]
    assert "w_total_median_profit" in v13_columns and "w_mean_cost" not in v13_columns
    assert "w_mean_cost_lag1" in v13_columns and "w_mean_cost_rolling2" in v13_columns
    for version in versions:
        benchmark = small_run / "benchmarks" / rules[version] / f"{version}.tsv"
        header, figures = benchmark.read_text().splitlines()[:2]
        assert header.startswith("s\th:m:s") and float(figures.split("\t")[0]) >= 0


def test_snakemake_outputs_equal_the_package_functions(small_run: Path):
    """The rules pass the configured parameters: replaying the chain in-process agrees."""
    config = full_config()
    frames = {}

    def load(version):
        document = json.loads(
            (small_run / "results" / version / f"{version}_metadata.json").read_text()
        )
        return read_csv(
            small_run / "results" / version / f"{version}.csv", metadata_dtypes(document)
        )

    frames["v0"] = load("v0")
    lags = config["lags"]
    parameters = {
        "drop_rare_drgs": SMALL_CONFIG["transformations"]["drop_rare_drgs"],
        "yearly_discharge_bin": {"bins": 5},
        "lag_columns": {"columns": lags["columns"], "by": "year"},
        "rolling_columns": {"columns": lags["columns"], "window": 2, "by": "year"},
        "drop_non_lag_columns": {"columns": lags["columns"], "keep": ["w_total_median_profit"]},
    }
    for step in config["chain"]:
        name = step["transformation"]
        frames[step["version"]] = apply_transformation(
            name, frames[step["input"]], parameters.get(name, {})
        )
        pd.testing.assert_frame_equal(
            frames[step["version"]], load(step["version"]), check_dtype=False, rtol=1e-12
        )


def test_second_run_has_nothing_to_do(small_run: Path):
    result = run(small_run, "-n", "features")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_two_clean_runs_give_identical_bytes(small_run: Path, tmp_path: Path):
    write_config(tmp_path, SMALL_CONFIG)
    result = run(tmp_path, "features")
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = result_files(small_run), result_files(tmp_path)
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == []


@pytest.mark.parametrize("deployment", ["checkout", "module"])
def test_a_killed_run_resumes_with_the_plain_command(
    small_run: Path, tmp_path: Path, deployment: str
):
    """SIGKILL of the whole run mid-chain (snakemake and its running job), then the plain
    command: no --unlock, no --rerun-incomplete, and the same bytes as an uninterrupted run;
    in a checkout and in a user's directory that uses the workflow as a module."""
    if deployment == "module":
        deploy_as_module(tmp_path, SMALL_CONFIG)
    else:
        write_config(tmp_path, SMALL_CONFIG)
    # The plain command: no --nolock, so Snakemake's own locking is exercised too.
    plain = [arg for arg in snakemake_command(tmp_path, "features") if arg != "--nolock"]
    killed = subprocess.Popen(
        plain, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    incomplete = tmp_path / ".snakemake" / "incomplete"
    deadline = time.monotonic() + 300
    while not (
        (tmp_path / "results/v3/v3_metadata.json").exists()
        and incomplete.is_dir()
        and any(incomplete.iterdir())
    ):
        assert killed.poll() is None and time.monotonic() < deadline, "run ended before the kill"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert any((tmp_path / ".snakemake" / "locks").iterdir())  # what a kill leaves behind
    assert not (tmp_path / "results/v13").exists()

    resumed = subprocess.run(plain, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Removed the locks left by a killed run" in resumed.stderr
    first, second = result_files(small_run), result_files(tmp_path)
    assert sorted(second) == sorted(first)
    assert [name for name in first if first[name] != second[name]] == []


def test_targeted_build_makes_only_what_it_needs(tmp_path: Path):
    write_config(tmp_path, SMALL_CONFIG)
    plan = run(tmp_path, "-n", "results/v11/v11.csv")
    assert plan.returncode == 0
    assert "lag_columns" in plan.stdout and "rolling_columns" not in plan.stdout
    result = run(tmp_path, "results/v11/v11.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "results/v11/v11.csv").exists()
    assert (tmp_path / "results/v11/v11_metadata.json").exists()
    assert not (tmp_path / "results/v12").exists()


def test_chain_is_edited_in_config(tmp_path: Path):
    """Reordering steps, appending one and taking row lags is a config change, nothing else."""
    config = copy.deepcopy(SMALL_CONFIG)
    chain = {step["version"]: step for step in full_config()["chain"]}
    # v6 straight after v5; v5_1 and v5_2 moved after it; v9 becomes a rolling step on v8.
    order = ["v1", "v2", "v3", "v4", "v5", "v6", "v5_1", "v5_2", "v7", "v8"]
    chain["v6"]["input"], chain["v5_1"]["input"], chain["v7"]["input"] = "v5", "v6", "v5_2"
    config["chain"] = [chain[v] for v in order] + [
        {"version": "v9", "transformation": "rolling_columns", "input": "v8"}
    ]
    config["lags"] = {"by": "row", "columns": ["sum_discharges", "w_mean_cost"]}
    write_config(tmp_path, config)
    result = run(tmp_path, "results/v9/v9.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    v5_1 = json.loads((tmp_path / "results/v5_1/v5_1_metadata.json").read_text())
    assert v5_1["input"]["version"] == "v6"
    header = (tmp_path / "results/v9/v9.csv").read_text().splitlines()[0]
    assert "sum_discharges_rolling2" in header and "severity_1_portion_rolling2" not in header
    document = json.loads((tmp_path / "results/v9/v9_metadata.json").read_text())
    assert document["transformation"]["parameters"]["by"] == "row"
    assert not (tmp_path / "results/v10").exists()


def test_a_forecast_from_data_without_lags_stops_naming_the_key(tmp_path: Path):
    """The versions of such a chain build; the forecast stops before any job."""
    config = copy.deepcopy(SMALL_CONFIG)
    config["modelling"] = {"data_version": "v9"}
    write_config(tmp_path, config)
    versions = run(tmp_path, "-n", "results/v9/v9.csv")
    assert versions.returncode == 0, versions.stderr[-3000:]
    forecast = run(tmp_path, "-n", "results/forecast/forecast.csv")
    assert forecast.returncode != 0
    assert "config key modelling.data_version 'v9' is not made through lag_columns" in (
        forecast.stdout + forecast.stderr
    )


def test_a_forecast_whose_names_version_is_not_in_the_chain_stops_naming_the_key(
    tmp_path: Path,
):
    config = copy.deepcopy(SMALL_CONFIG)
    config["forecast"] = {"names": {"version": "v99"}}
    write_config(tmp_path, config)
    forecast = run(tmp_path, "-n", "results/forecast/forecast.csv")
    assert forecast.returncode != 0
    assert "config key forecast.names.version: 'v99' is not a version of the chain" in (
        forecast.stdout + forecast.stderr
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"raw": {"source": "ftp"}}, "config key raw.source: 'ftp' is not allowed"),
        ({"lags": {"by": "month"}}, "config key lags.by"),
        ({"transformations": {"drop_rare_drg": {}}}, "unknown key(s) 'drop_rare_drg'"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path: Path, config: dict, message: str):
    write_config(tmp_path, config)
    result = run(tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "results").exists()


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_a_broken_contract_in_the_chain_stops_the_run_with_its_message(tmp_path: Path):
    """A chain step runs in Snakemake's own process: its broken contract still ends the run
    with the adapter's one-line message, leaves no output of the step, and the same command
    with the contract fixed carries on from the last good version."""
    config = copy.deepcopy(SMALL_CONFIG)
    config["contracts"] = {"agg_severities": {"max_rows": 10}}
    write_config(tmp_path, config)
    broken = run(tmp_path, "results/v8/v8.csv")
    assert broken.returncode != 0
    lines = [line for line in broken.stderr.splitlines() if line.startswith("ERROR in rule")]
    assert lines == [
        "ERROR in rule agg_severities: v8 (agg_severities) breaks its contract: row_bounds: "
        f"{lines[0].split('row_bounds: ')[1].split(' ')[0]} rows, outside [None, 10]"
    ]
    assert not (tmp_path / "results/v8").exists() or not any((tmp_path / "results/v8").iterdir())
    assert (tmp_path / "results/v7/v7_metadata.json").exists()  # the input is kept for the rerun
    write_config(tmp_path, SMALL_CONFIG)
    fixed = run(tmp_path, "results/v8/v8.csv")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert "rule drop_rare_drgs" not in fixed.stdout + fixed.stderr
    assert read_json(tmp_path / "results/v8/v8_metadata.json")["rows"] > 10
