"""The small configurations under .test/ (what the tests and the catalogue's CI run) are valid,
and their rare-DRG thresholds are the default one scaled to their data."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import conda_standin
import pandas as pd
import pytest
from conftest import ROOT, SNAKEFILE, TEST_CONFIGS, load_test_config, write_config
from modelling_frames import SCHEMA, rare_drg_threshold
from workflow_rules import rule_file, workflow_rules

from drg_workflow.config_validation import validate_config
from drg_workflow.documents import read_json
from drg_workflow.tables import metadata_dtypes, read_csv

NAMES = sorted(
    path.parent.name.removeprefix("config-") for path in TEST_CONFIGS.glob("*/config.yaml")
)
#: The synthetic scale each raw file under .test/resources was made at (its README).
RAW_FILE_SCALES = {"resources/raw.csv": 0.01, "resources/raw-gap.csv": 0.01}


def test_the_catalogue_configs_are_there():
    assert {"basic", "file", "gap"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_config_is_valid_and_its_threshold_fits_its_data(name: str):
    config = validate_config(load_test_config(name), copy.deepcopy(SCHEMA))
    raw = config["raw"]
    if raw["source"] == "file":
        assert (TEST_CONFIGS / raw["path"]).is_file()
        scale = RAW_FILE_SCALES[raw["path"]]
    else:
        scale = raw["synthetic"]["scale"]
    threshold = config["transformations"]["drop_rare_drgs"]["threshold"]
    assert threshold == rare_drg_threshold(scale)


def check_every_job_ran_in_its_declared_environment(test_dir, record, scratch) -> None:
    """Every job of a run under ``--sdm conda`` (the conda stand-in's ``record``) ran its
    rule's script in a process of its own, inside the environment its rule declares."""
    write_config(scratch, load_test_config("basic"))
    rules = [rule for rule in workflow_rules(SNAKEFILE, scratch) if rule["script"]]
    declared: dict[str, set[str]] = {}
    for rule in rules:
        script = rule_file(rule, "script").name
        declared.setdefault(script, set()).add(rule_file(rule, "conda").read_text())
    runs = conda_standin.recorded_scripts(record)
    job_logs = sorted((test_dir / "logs").rglob("*.log"))
    # One script per job (Snakemake names its copy tmp<random>.<script>.py).
    assert len(runs) == len(job_logs) > 30
    for prefix, script_copy in runs:
        script = script_copy.split(".", 1)[1]
        # Snakemake keeps a copy of the environment file beside the environment.
        environment = prefix.with_name(prefix.name + ".yaml").read_text()
        assert declared[script] == {environment}, script
    ran = {script_copy.split(".", 1)[1] for _, script_copy in runs}
    assert ran == {
        rule_file(rule, "script").name
        for rule in rules
        if rule["name"] in {path.relative_to(test_dir / "logs").parts[0] for path in job_logs}
    }
    # Not in Snakemake's own process: each job's profile line counts its process's start-up.
    for log in job_logs:
        profile = json.loads(log.read_text().splitlines()[-1].split(" profile ", 1)[1])
        assert profile["startup"] > 0, log


def run_catalogue_style(
    tmp_path, name: str, *targets: str, path: str | None = None, options: tuple[str, ...] = ()
) -> tuple[object, object]:
    """``snakemake --cores 2 --directory .test --configfile .test/config-<name>/config.yaml``
    on a copy of .test (the repository's own stays clean); ``path``: put first on PATH."""
    test_dir = tmp_path / ".test"
    if not test_dir.exists():
        shutil.copytree(TEST_CONFIGS, test_dir)
    search_path = os.pathsep.join(filter(None, [path, os.environ["PATH"]]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            *targets,
            "--cores",
            "2",
            "--snakefile",
            str(ROOT / "workflow" / "Snakefile"),
            "--directory",
            str(test_dir),
            *options,
            "--configfile",
            str(test_dir / f"config-{name}" / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": search_path},
    )
    return result, test_dir


@pytest.mark.workflow
def test_config_file_builds_and_proves_every_version(tmp_path):
    result, test_dir = run_catalogue_style(tmp_path, "file", "features")
    assert result.returncode == 0, result.stderr[-3000:]
    verify, _ = run_catalogue_style(tmp_path, "file", "verify")
    assert verify.returncode == 0, verify.stderr[-3000:]
    v0 = read_json(test_dir / "results/v0/v0_metadata.json")
    assert v0["transformation"]["parameters"]["source"] == "file"
    assert v0["rows"] == len(pd.read_csv(test_dir / "resources/raw.csv"))
    assert read_json(test_dir / "logs/verify/verify.json")["passed"]


@pytest.mark.workflow
def test_config_gap_runs_end_to_end_and_forecasts_the_year_after_the_last(tmp_path):
    """A raw file with 2009-2017 and 2021: the default target runs; the missing years are
    found, recorded in v0's metadata and named in one warning; lags across the gap stay
    missing; 2021, which has no lag features, is named as a year no model fits or scores; the
    years of the split come from the data; the forecast is for 2022 and says so.

    Run as the catalogue's CI runs its .test configurations, with ``--sdm conda`` (on the
    conda stand-in: no conda channel can be reached here): every job runs its script in a
    process of its own inside the environment its rule declares."""
    record = tmp_path / "conda-runs.txt"
    standin = conda_standin.install(tmp_path / "conda", record)
    result, test_dir = run_catalogue_style(
        tmp_path,
        "gap",
        path=str(standin),
        options=("--sdm", "conda", "--conda-prefix", str(tmp_path / "envs")),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_every_job_ran_in_its_declared_environment(test_dir, record, tmp_path / "rules")
    missing = "no data for 2018, 2019, 2020 (the raw data has the years 2009-2017, 2021)"
    assert result.stderr.count(f"WARNING: {missing}") == 1
    assert missing in (test_dir / "logs/ingest_raw/v0.log").read_text()
    v0 = read_json(test_dir / "results/v0/v0_metadata.json")
    assert v0["years"]["missing"] == [2018, 2019, 2020] and v0["years"]["last"] == 2021
    v11_metadata = read_json(test_dir / "results/v11/v11_metadata.json")
    v11 = read_csv(test_dir / "results/v11/v11.csv", metadata_dtypes(v11_metadata))
    assert sorted(v11["year"].unique())[-2:] == [2017, 2021]
    assert v11.loc[v11["year"] == 2021, "sum_discharges_lag1"].isna().all()
    split = read_json(test_dir / "results/models/split.json")
    assert split["split"] == {
        "train": [2010, 2013],
        "validation": [2014, 2015],
        "test": [2016, 2017],
    }
    assert split["years"]["missing_in_raw"] == [2018, 2019, 2020]
    assert sorted(split["unused_years"]) == ["2009", "2021"]
    assert "WARNING: years no model is fitted or scored on: 2021 (" in result.stderr
    forecast = pd.read_csv(test_dir / "results/forecast/forecast.csv")
    assert set(forecast["year"]) == {2022}
    metadata = read_json(test_dir / "results/forecast/forecast_metadata.json")
    assert metadata["forecast_year"] == 2022 and metadata["last_data_year"] == 2021
    log = (test_dir / "logs/forecast/forecast.log").read_text()
    assert "for 2022, the year after the data's last year 2021" in log
    assert read_json(test_dir / "results/verify.json")["passed"]
