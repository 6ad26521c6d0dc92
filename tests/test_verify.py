"""`snakemake verify` and the contracts recorded by a real run on small data.

One small run of every version (module fixture); each test that breaks the chain works on a
copy of it, so the breaks never meet.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from conftest import ROOT, SMALL_CONFIG, snakemake_command, write_config

from drg_workflow.chain import arrow_copy_versions
from drg_workflow.config_validation import validate_config
from drg_workflow.documents import read_json
from drg_workflow.tables import read_arrow, write_arrow

pytestmark = pytest.mark.workflow

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = validate_config(json.loads(json.dumps(SMALL_CONFIG)), SCHEMA)
VERSIONS = ["v0", *(step["version"] for step in CONFIG["chain"])]
RULES = {"v0": "ingest_raw", **{s["version"]: s["transformation"] for s in CONFIG["chain"]}}


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(workdir, *args), capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Every data version of the small config, built once."""
    workdir = tmp_path_factory.mktemp("verify")
    write_config(workdir, SMALL_CONFIG)
    result = run(workdir, "features")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built chain, for a test that breaks it."""
    target = tmp_path / "work"
    shutil.copytree(built, target, symlinks=True)
    return target


def verify(workdir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    result = run(workdir, "verify")
    # Rule verify writes its report beside its log: results/verify.json is verify_build's.
    return result, read_json(workdir / "logs/verify/verify.json")


def assert_broken(workdir: Path, version: str, problem: str) -> None:
    result, report = verify(workdir)
    assert result.returncode != 0
    assert "ERROR in rule verify: the chain on disk is broken:" in result.stderr
    assert f"{version}: {problem}" in result.stderr
    assert f"--forcerun {RULES[version]} (the rule of {version})" in result.stderr
    assert re.search(rf"^{version} +BROKEN  .*{re.escape(problem)}", result.stdout, re.M)
    assert not report["passed"]
    assert report["first_broken"] == {"version": version, "rule": RULES[version]}
    assert [v["version"] for v in report["versions"] if not v["passed"]] == [version]


def test_default_chain_passes_every_contract_and_records_it(built: Path):
    expected = {
        "v0": {"required_columns", "not_null", "finite", "ranges"},
        "v7": {"required_columns", "not_null", "ranges", "rows_vs_input"},
        "v8": {
            "required_columns",
            "not_null",
            "unique_keys",
            "finite",
            "ranges",
            "sums_to_one",
            "rows_vs_input",
        },
        "v13": {"required_columns", "not_null", "unique_keys", "finite", "rows_vs_input"},
    }
    for version in VERSIONS:
        metadata = read_json(built / f"results/{version}/{version}_metadata.json")
        checks = metadata["contracts"]
        assert checks and all(check["passed"] for check in checks), version
        if version in expected:
            assert {check["check"] for check in checks} == expected[version]
        log = (built / f"logs/{RULES[version]}/{version}.log").read_text()
        assert "contract check required_columns passed" in log
    v8 = {
        c["check"]: c["measured"]
        for c in read_json(built / "results/v8/v8_metadata.json")["contracts"]
    }
    assert v8["unique_keys"]["duplicates"] == 0
    assert v8["sums_to_one"]["max_deviation"][0] <= 1e-9
    assert v8["rows_vs_input"]["rows"] <= v8["rows_vs_input"]["input_rows"]


def test_verify_passes_on_a_fresh_build(built: Path):
    result, report = verify(built)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if re.match(r"^v\d", line)]
    assert [line.split()[0] for line in lines] == VERSIONS
    assert all(line.split()[1] == "ok" for line in lines)
    # Only the versions read by more than the next step have an Arrow copy (checked).
    kept = arrow_copy_versions(CONFIG)
    assert {p.parent.name for p in (built / "results").glob("*/*.arrow")} == kept
    assert kept == {"v1", "v10", "v13"}
    for line in lines:
        copy_state = "Arrow copy ok" if line.split()[0] in kept else "no Arrow copy"
        assert copy_state in line, line
    assert report["passed"] and report["broken"] == []
    # The default target's report is verify_build's output alone, untouched by rule verify.
    assert not (built / "results/verify.json").exists()
    # It runs whenever asked, even with nothing changed.
    again = run(built, "verify")
    assert again.returncode == 0 and "Rules with neither input nor output" in again.stderr


def test_verify_fails_after_a_csv_is_edited(copy: Path):
    csv = copy / "results/v10/v10.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:2] + lines[3:]))  # one row deleted by hand
    # Snakemake alone does not notice: nothing reads the CSV (v11 reads v10's Arrow copy).
    dry = run(copy, "-n", "features")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert_broken(copy, "v10", "CSV sha256")


def test_verify_fails_after_an_arrow_copy_is_replaced(copy: Path):
    arrow = copy / "results/v10/v10.arrow"  # kept: the forecast reads it, as does v11
    frame = read_arrow(arrow)
    write_arrow(pa.Table.from_pandas(frame.iloc[1:], preserve_index=False), arrow)
    assert_broken(copy, "v10", "Arrow copy sha256")


def test_verify_fails_when_a_kept_arrow_copy_is_missing(copy: Path):
    (copy / "results/v13/v13.arrow").unlink()
    assert_broken(copy, "v13", "Arrow copy missing")


def test_verify_fails_after_an_input_is_rebuilt_alone(copy: Path):
    other = json.loads(json.dumps(SMALL_CONFIG))
    other["transformations"]["drop_rare_drgs"]["threshold"] = 400
    write_config(copy, other)
    rebuilt = run(copy, "results/v7/v7.csv")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    write_config(copy, SMALL_CONFIG)
    assert_broken(copy, "v8", "made from v7 with sha256")


def test_default_target_ends_with_verify(built: Path):
    """The default target's last job is verify_build, after every version and the comparison."""
    result = run(built, "--dag")
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = dict(re.findall(r'^\s*(\d+)\[label = "([a-z_0-9]+)', result.stdout, re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", result.stdout, re.M)
    (verify_node,) = [node for node, rule in nodes.items() if rule == "verify_build"]
    before = {nodes[a] for a, b in edges if b == verify_node}
    assert {"compare_models", "agg_severities", "ingest_raw"} <= before
    assert [nodes[b] for a, b in edges if a == verify_node] == ["all"]


def test_the_default_targets_check_runs_again_after_a_csv_is_edited(copy: Path):
    """verify_build, the default target's last job, on the versions alone (a stand-in for the
    comparison, which this test does not build): it passes, then reruns and fails once a CSV
    is newer than its report."""
    comparison = copy / "results/models/comparison.csv"
    comparison.parent.mkdir(parents=True, exist_ok=True)
    comparison.write_text("model\n")
    only = ("results/verify.json", "--allowed-rules", "verify_build")
    first = run(copy, *only)
    assert first.returncode == 0, first.stderr[-3000:]
    assert read_json(copy / "results/verify.json")["passed"]
    csv = copy / "results/v3/v3.csv"
    csv.write_text(csv.read_text().replace("\n", "\n\n", 1))  # a blank line added by hand
    again = run(copy, *only)
    assert again.returncode != 0
    assert "ERROR in rule verify_build: the chain on disk is broken:" in again.stderr
    assert "v3: CSV sha256" in again.stderr
    # A failed job's output is removed: no report claims the chain is proven, and the next
    # run checks again.
    assert not (copy / "results/verify.json").exists()


def test_verify_after_a_targeted_build_proves_what_is_there_and_names_the_rest(copy: Path):
    """As after `snakemake results/v11/v11.csv`: v12 and v13 were never built. verify proves
    v0-v11 and names the two as not built, instead of failing the chain."""
    for version in ("v12", "v13"):
        shutil.rmtree(copy / "results" / version)
    result, report = verify(copy)
    assert result.returncode == 0, result.stderr[-3000:]
    assert report["passed"] and report["not_built"] == ["v12", "v13"]
    assert re.search(r"^v11 +ok ", result.stdout, re.M)
    assert re.search(r"^v13 +not built", result.stdout, re.M)
    assert "never built: v12, v13" in result.stdout


def test_verify_fails_when_a_built_versions_input_was_deleted(copy: Path):
    """A version on disk whose input is gone is not proven: the input was not merely never
    built, it was removed after the version was made from it."""
    shutil.rmtree(copy / "results/v11")
    assert_broken(copy, "v12", "made from v11 with sha256")
    result, report = verify(copy)
    assert "but v11 is not on disk (deleted after v12 was built)" in result.stderr
    assert report["not_built"] == ["v11"]


def test_verify_with_nothing_built_says_so(tmp_path: Path):
    write_config(tmp_path, SMALL_CONFIG)
    result, report = verify(tmp_path)
    assert result.returncode != 0
    assert "nothing of the chain is on disk yet" in result.stderr
    assert not report["passed"] and len(report["not_built"]) == len(VERSIONS)
