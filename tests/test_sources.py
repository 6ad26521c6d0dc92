"""Raw-data sources (file, HTTP(S), S3) and results in S3, against real servers on 127.0.0.1.

The servers (moto's S3 API, and the small HTTP server of ``servers.py``) are started by the
module-scoped fixtures below and stopped by PID when the module is done. Snakemake runs as a
subprocess, as a user would run it.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest
import yaml
from conftest import ROOT, snakemake_command, write_config
from servers import (
    HOST,
    ServerProcess,
    free_port,
    s3_environment,
    start_http,
    start_moto,
)

from drg_workflow.chain import arrow_copy_versions
from drg_workflow.config_validation import ConfigError, validate_config
from drg_workflow.download import DownloadError, download, public_url
from drg_workflow.synthetic import generate_raw

pytestmark = pytest.mark.workflow

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
#: The ``raw`` settings with the schema's defaults: the one home of every default used here.
RAW_DEFAULTS = validate_config({}, copy.deepcopy(SCHEMA))["raw"]
#: What a chain on a few thousand rows needs (as in conftest's SMALL_CONFIG).
TRANSFORMATIONS = {"drop_rare_drgs": {"threshold": 500}}
#: Fast retries for the tests: two attempts, 50 ms apart.
QUICK_DOWNLOAD = {"retries": 1, "backoff": 0.05, "timeout": 10}
INPUT_BUCKET = "drg-raw-in"
RESULTS_BUCKET = "drg-results"
RAW_KEY = "nys/inpatient_costs.csv"
VERSIONS = [
    "v0", "v1", "v2", "v3", "v4", "v5", "v5_1", "v5_2", "v6", "v7", "v8", "v9", "v10", "v11",
    "v12", "v13",
]  # fmt: skip
#: The versions with an Arrow copy (the default chain, modelling and forecast settings).
ARROW_COPIES = arrow_copy_versions(validate_config({}, copy.deepcopy(SCHEMA)))


# --------------------------------------------------------------------------------------------
# Data and servers
# --------------------------------------------------------------------------------------------


def synthetic(**settings: object) -> pd.DataFrame:
    """generate_raw with ``settings``, the schema's defaults of raw.synthetic for the rest."""
    return generate_raw(**{**RAW_DEFAULTS["synthetic"], **settings})


def download_settings(**overrides: object) -> dict:
    """download's retry settings: the schema's defaults of raw.download, then ``overrides``
    (not validated, so tests can pass bad ones)."""
    return {**RAW_DEFAULTS["download"], **overrides}


@pytest.fixture(scope="module")
def raw_frame() -> pd.DataFrame:
    """A small raw file in the real schema (about 5,600 rows)."""
    return synthetic(seed=11, scale=0.005)


@pytest.fixture(scope="module")
def raw_bytes(raw_frame: pd.DataFrame) -> bytes:
    return raw_frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="module")
def http_server(server_dir: Path, raw_bytes: bytes) -> Iterator[ServerProcess]:
    """An HTTP server on 127.0.0.1 serving ``/raw.csv`` (plus servers.py's special paths)."""
    root = server_dir / "www"
    root.mkdir()
    (root / "raw.csv").write_bytes(raw_bytes)
    server = start_http(root, server_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto(server_dir: Path, raw_bytes: bytes) -> Iterator[ServerProcess]:
    """moto's S3 server on 127.0.0.1 with the input bucket holding the raw CSV."""
    server = start_moto(server_dir)
    try:
        client = s3_client(server)
        client.create_bucket(Bucket=INPUT_BUCKET)
        client.put_object(Bucket=INPUT_BUCKET, Key=RAW_KEY, Body=raw_bytes)
        html = b"<!DOCTYPE html><html><body>Access denied</body></html>\n"
        client.put_object(Bucket=INPUT_BUCKET, Key="nys/page.csv", Body=html)
        yield server
    finally:
        server.stop()


def s3_client(server: ServerProcess):
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def s3_keys(server: ServerProcess, bucket: str, prefix: str) -> set[str]:
    """Every key under ``prefix`` in ``bucket``, relative to the prefix."""
    pages = (
        s3_client(server)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=prefix + "/")
    )
    return {o["Key"][len(prefix) + 1 :] for page in pages for o in page.get("Contents", [])}


def run(
    workdir: Path, raw: dict, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with ``raw`` as the raw-source config."""
    write_config(workdir, {"raw": raw, "transformations": TRANSFORMATIONS})
    return subprocess.run(
        snakemake_command(workdir, *args),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def files_under(path: Path) -> list[str]:
    """Every file (hidden ones too) under ``path``; empty if it does not exist."""
    return sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def data_files(workdir: Path) -> list[str]:
    """Every data output (hidden and temporary files too) in ``workdir``: anything under the
    versions' directories ``results/v*/`` and the downloaded ``resources/raw/download.csv``.

    Not all of ``results/``: setup_mlflow creates the tracking store under ``results/mlflow/``
    independently of the data, and may run before a data job fails."""
    found = [f for d in sorted((workdir / "results").glob("v*")) for f in files_under(d)]
    download = workdir / "resources/raw/download.csv"
    return found + ([str(download)] if download.exists() else [])


def assert_one_clear_error(result: subprocess.CompletedProcess, rule: str, message: str):
    """One line names the problem; no traceback, except in the rule's log if Snakemake shows
    it (``show-failed-logs``): the log keeps the traceback for whoever needs to dig."""
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-3000:]
    assert result.stderr.count(f"ERROR in rule {rule}:") == 1
    shown_logs = re.compile(r"^Logfile \S+:\n(=+)\n.*?^\1$", re.DOTALL | re.MULTILINE)
    assert "Traceback" not in shown_logs.sub("", result.stderr)


# --------------------------------------------------------------------------------------------
# S3: raw data from S3, results in S3
# --------------------------------------------------------------------------------------------


#: The flags that keep every result in the S3 bucket (docs/real-data-and-s3.md).
RESULTS_PREFIX = "drg"
S3_RESULTS = [
    "--default-storage-provider",
    "s3",
    "--default-storage-prefix",
    f"s3://{RESULTS_BUCKET}/{RESULTS_PREFIX}",
]
S3_RAW = {"source": "s3", "s3": f"s3://{INPUT_BUCKET}/{RAW_KEY}"}


@pytest.fixture(scope="module")
def s3_build(moto: ServerProcess, tmp_path_factory) -> dict:
    """Raw data from S3 and every result in S3: a targeted build (v11), then the rest of the
    versions (`features`); what each left in the bucket."""
    workdir = tmp_path_factory.mktemp("s3-results")
    env = s3_environment(moto)
    targeted = run(workdir, S3_RAW, *S3_RESULTS, "results/v11/v11.csv", env=env)
    assert targeted.returncode == 0, targeted.stderr[-3000:]
    keys_after_targeted = s3_keys(moto, RESULTS_BUCKET, RESULTS_PREFIX)
    # `features` = every data version; the modelling state (MLflow DB, Optuna journal) is
    # local by design (see docs/real-data-and-s3.md).
    full = run(workdir, S3_RAW, *S3_RESULTS, "features", env=env)
    assert full.returncode == 0, full.stderr[-3000:]
    return {
        "workdir": workdir,
        "env": env,
        "keys_after_targeted": keys_after_targeted,
        "full": full,
    }


def test_s3_source_and_results_in_s3(s3_build: dict, moto: ServerProcess, raw_bytes: bytes):
    """Targeted build, then the rest, then nothing to do; every version lands in the bucket."""
    workdir, env, prefix = s3_build["workdir"], s3_build["env"], RESULTS_PREFIX
    keys = s3_build["keys_after_targeted"]
    assert "results/v11/v11.csv" in keys and "results/v0/v0_metadata.json" in keys
    assert not any(k.startswith(("results/v12/", "results/v13/")) for k in keys)

    full = s3_build["full"]
    ran = full.stdout + full.stderr
    assert "rule rolling_columns:" in ran and "rule ingest_raw:" not in ran
    keys = s3_keys(moto, RESULTS_BUCKET, prefix)
    for version in VERSIONS:
        for name in (f"{version}.csv", f"{version}_metadata.json"):
            assert f"results/{version}/{name}" in keys
        # Versions read only by the next step have no Arrow copy, in the bucket either.
        kept = f"results/{version}/{version}.arrow" in keys
        assert kept == (version in ARROW_COPIES), version
    assert "logs/ingest_raw/v0.log" in keys and "benchmarks/lag_columns/v11.tsv" in keys
    # Nothing was written to the local results tree.
    assert not (workdir / "results").exists()

    again = run(workdir, S3_RAW, *S3_RESULTS, "features", "-n", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr

    body = s3_client(moto).get_object(
        Bucket=RESULTS_BUCKET, Key=f"{prefix}/results/v0/v0_metadata.json"
    )["Body"]
    v0 = json.loads(body.read())
    assert v0["raw_file"] == {
        "uri": S3_RAW["s3"],
        "sha256": hashlib.sha256(raw_bytes).hexdigest(),
    }
    assert v0["transformation"]["parameters"]["s3"] == S3_RAW["s3"]
    assert str(workdir) not in json.dumps(v0) and ".snakemake" not in json.dumps(v0)


def test_verify_proves_the_chain_in_s3_and_names_an_edited_object(
    s3_build: dict, moto: ServerProcess
):
    """`snakemake verify` and the default target's verify_build with every result in S3: they
    check the objects as they are, build nothing, and name an object edited in the bucket the
    way they name an edited local file."""
    workdir, env = s3_build["workdir"], s3_build["env"]
    client = s3_client(moto)

    def report(key: str) -> dict:
        body = client.get_object(Bucket=RESULTS_BUCKET, Key=f"{RESULTS_PREFIX}/{key}")["Body"]
        return json.loads(body.read())

    proven = run(workdir, S3_RAW, *S3_RESULTS, "verify", env=env)
    assert proven.returncode == 0, proven.stderr[-3000:]
    lines = [line for line in proven.stdout.splitlines() if re.match(r"^v\d", line)]
    assert [line.split()[:2] for line in lines] == [[v, "ok"] for v in VERSIONS]
    assert report("logs/verify/verify.json")["passed"]
    assert not (workdir / "results").exists()  # read from the bucket, not from local files

    key = f"{RESULTS_PREFIX}/results/v8/v8.csv"
    lines = client.get_object(Bucket=RESULTS_BUCKET, Key=key)["Body"].read().splitlines(True)
    client.put_object(Bucket=RESULTS_BUCKET, Key=key, Body=b"".join(lines[:2] + lines[3:]))
    problem = "v8: CSV sha256"
    broken = run(workdir, S3_RAW, *S3_RESULTS, "verify", env=env)
    assert broken.returncode != 0
    assert "ERROR in rule verify: the chain on disk is broken:" in broken.stderr
    assert problem in broken.stderr and "(the CSV was changed after it was built)" in broken.stderr
    assert "--forcerun agg_severities (the rule of v8)" in broken.stderr
    assert re.search(r"^v8 +BROKEN  CSV sha256", broken.stdout, re.M)
    assert report("logs/verify/verify.json")["first_broken"] == {
        "version": "v8",
        "rule": "agg_severities",
    }
    ran = broken.stdout + broken.stderr
    assert re.findall(r"^(?:local)?rule (\w+):", ran, re.M) == ["verify"]  # nothing rebuilt

    # verify_build, the default target's last job, on the versions in the bucket (with a
    # stand-in for the comparison, which this test does not build).
    client.put_object(
        Bucket=RESULTS_BUCKET,
        Key=f"{RESULTS_PREFIX}/results/models/comparison.csv",
        Body=b"model\n",
    )
    only = ("results/verify.json", "--allowed-rules", "verify_build")
    built = run(workdir, S3_RAW, *S3_RESULTS, *only, env=env)
    assert built.returncode != 0
    assert "ERROR in rule verify_build: the chain on disk is broken:" in built.stderr
    assert problem in built.stderr


def test_missing_s3_object_stops_before_any_job(moto: ServerProcess, tmp_path: Path):
    uri = f"s3://{INPUT_BUCKET}/nys/no_such_file.csv"
    result = run(tmp_path, {"source": "s3", "s3": uri}, env=s3_environment(moto))
    assert result.returncode != 0
    assert "Missing input files for rule ingest_raw" in result.stderr
    assert uri in result.stderr
    assert files_under(tmp_path / "results") == []


def test_s3_object_that_is_a_web_page_is_named_by_its_uri(moto: ServerProcess, tmp_path: Path):
    uri = f"s3://{INPUT_BUCKET}/nys/page.csv"
    result = run(
        tmp_path, {"source": "s3", "s3": uri}, "results/v0/v0.csv", env=s3_environment(moto)
    )
    assert_one_clear_error(result, "ingest_raw", f"Raw data file {uri}: looks like an HTML page")
    assert files_under(tmp_path / "results") == []


# --------------------------------------------------------------------------------------------
# HTTP(S)
# --------------------------------------------------------------------------------------------


def test_url_source_retries_and_records_the_url(
    http_server: ServerProcess, tmp_path: Path, raw_bytes: bytes, raw_frame: pd.DataFrame
):
    # The server answers 503 twice before sending the file: two retries are needed.
    url = f"{http_server.url}/flaky2/raw.csv"
    raw = {"source": "url", "url": url, "download": {"retries": 2, "backoff": 0.05}}
    result = run(tmp_path, raw, "results/v0/v0.csv")
    assert result.returncode == 0, result.stderr[-3000:]

    log = (tmp_path / "logs/download_raw/v0.log").read_text()
    assert log.count("failed: HTTP 503") == 2 and "3 attempt(s)" in log
    v0 = json.loads((tmp_path / "results/v0/v0_metadata.json").read_text())
    assert v0["raw_file"] == {"uri": url, "sha256": hashlib.sha256(raw_bytes).hexdigest()}
    assert v0["transformation"]["parameters"]["url"] == url
    assert v0["rows"] == len(raw_frame)
    assert str(tmp_path) not in json.dumps(v0)
    # The download is kept: a second run neither downloads nor rebuilds anything.
    again = run(tmp_path, raw, "-n", "results/v0/v0.csv")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.csv", "could not download {url}: the server answered HTTP 404"),
        ("/html/rows.csv", "Raw data file {url}: looks like an HTML page"),
        (
            "/truncated/raw.csv",
            "could not download {url} after 2 attempt(s): the transfer was cut short",
        ),
        (None, "could not download {url} after 2 attempt(s): server unreachable"),
    ],
    ids=["404", "html-page", "cut-short", "unreachable"],
)
def test_url_failures_give_one_clear_message(
    http_server: ServerProcess, tmp_path: Path, path: str | None, message: str
):
    # None: a loopback port nothing listens on.
    url = f"http://{HOST}:{free_port()}/raw.csv" if path is None else http_server.url + path
    raw = {"source": "url", "url": url, "download": QUICK_DOWNLOAD}
    result = run(tmp_path, raw)
    assert_one_clear_error(result, "download_raw", message.format(url=url))
    assert data_files(tmp_path) == []
    assert files_under(tmp_path / "resources") == []  # not even a temporary file


def test_download_backs_off_exponentially(http_server: ServerProcess, tmp_path: Path):
    waits: list[float] = []
    url = f"{http_server.url}/flaky3/raw.csv"
    settings = download_settings(retries=3, backoff=0.5)
    result = download(url, tmp_path / "raw.csv", **settings, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0] and result.attempts == 4
    # A 404 is not retried.
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(
            f"{http_server.url}/nothing.csv",
            tmp_path / "x.csv",
            **download_settings(),
            sleep=waits.append,
        )
    assert len(waits) == 3 and not (tmp_path / "x.csv").exists()


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Run the test under umask 022 (the usual one), whatever the caller's umask is."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_downloaded_file_gets_the_umask_mode(
    http_server: ServerProcess, tmp_path: Path, raw_bytes: bytes, umask_022: None
):
    """Like any other new file: 0644 under umask 022, not a temporary file's private 0600."""
    target = tmp_path / "raw.csv"
    download(f"{http_server.url}/raw.csv", target, **download_settings())
    assert target.read_bytes() == raw_bytes
    assert target.stat().st_mode & 0o777 == 0o644


def test_each_failed_attempt_is_logged(
    http_server: ServerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    log = logging.getLogger("test_download")
    url = f"{http_server.url}/flaky2/raw.csv?logged"
    with caplog.at_level(logging.INFO, logger="test_download"):
        settings = download_settings(retries=2, backoff=0.05)
        result = download(url, tmp_path / "raw.csv", **settings, log=log)
    assert result.attempts == 3
    assert [r.getMessage() for r in caplog.records] == [
        "attempt 1 of 3 failed: HTTP 503 Service Unavailable; retrying in 0.1 s",
        "attempt 2 of 3 failed: HTTP 503 Service Unavailable; retrying in 0.1 s",
        f"downloaded {url}: {result.size} bytes, sha256 {result.sha256}, 3 attempt(s)",
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/status429/raw.csv", "after 3 attempt(s): HTTP 429 Too Many Requests."),
        ("/status408/raw.csv", "after 3 attempt(s): HTTP 408 Request Timeout."),
        ("/status502/raw.csv", "after 3 attempt(s): HTTP 502 Bad Gateway."),
        ("/truncated/raw.csv", "after 3 attempt(s): the transfer was cut short ("),
        ("/hangup/raw.csv", "connection failed (Remote end closed connection without response)"),
        ("/slow/raw.csv", "after 3 attempt(s): no answer within 0.5 s."),
        ("/stall/raw.csv", "after 3 attempt(s): no answer within 0.5 s."),
        (None, "after 3 attempt(s): server unreachable (Connection refused)."),
    ],
    ids=[
        "429",
        "408",
        "502",
        "cut-short",
        "hang-up",
        "slow-headers",
        "stalled-body",
        "unreachable",
    ],
)
def test_transient_failures_are_retried_with_backoff(
    http_server: ServerProcess, tmp_path: Path, path: str | None, message: str
):
    waits: list[float] = []
    url = f"http://{HOST}:{free_port()}/raw.csv" if path is None else http_server.url + path
    with pytest.raises(DownloadError) as raised:
        download(url, tmp_path / "raw.csv", retries=2, timeout=0.5, backoff=0.1, sleep=waits.append)
    assert str(raised.value).startswith(f"could not download {url} after 3 attempt(s)")
    assert message in str(raised.value)
    assert waits == [0.1, 0.2]
    assert files_under(tmp_path) == []  # not even a temporary file


def test_cut_short_transfer_names_the_bytes(
    http_server: ServerProcess, tmp_path: Path, raw_bytes: bytes
):
    with pytest.raises(DownloadError) as raised:
        settings = download_settings(retries=0)
        download(f"{http_server.url}/truncated/raw.csv", tmp_path / "raw.csv", **settings)
    half = len(raw_bytes) // 2
    assert f"cut short ({half:,} of {len(raw_bytes):,} bytes)" in str(raised.value)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/status403/raw.csv", "the server answered HTTP 403 Forbidden."),
        ("/status400/raw.csv", "the server answered HTTP 400 Bad Request."),
        ("/html/raw.csv", "looks like an HTML page"),
    ],
)
def test_permanent_failures_are_not_retried(
    http_server: ServerProcess, tmp_path: Path, path: str, message: str
):
    waits: list[float] = []
    with pytest.raises(DownloadError, match=message):
        settings = download_settings()
        download(http_server.url + path, tmp_path / "raw.csv", **settings, sleep=waits.append)
    assert waits == [] and files_under(tmp_path) == []


def test_empty_body_is_refused(tmp_path: Path, server_dir: Path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "empty.csv").write_bytes(b"")
    server = start_http(root, tmp_path)
    try:
        with pytest.raises(DownloadError, match="the server sent an empty body"):
            settings = download_settings(retries=0)
            download(f"{server.url}/empty.csv", tmp_path / "out/raw.csv", **settings)
    finally:
        server.stop()
    assert files_under(tmp_path / "out") == []


def test_errors_never_show_credentials(http_server: ServerProcess, tmp_path: Path):
    secret_url = http_server.url.replace("http://", "http://reader:s3cret@")
    for path in ("/missing.csv", "/status503/raw.csv", "/truncated/raw.csv"):
        with pytest.raises(DownloadError) as raised:
            download(secret_url + path, tmp_path / "raw.csv", **download_settings(retries=0))
        assert "s3cret" not in str(raised.value) and "reader" not in str(raised.value)
        assert f"{http_server.url}{path}" in str(raised.value)


@pytest.mark.parametrize("settings", [{"retries": -1}, {"timeout": 0}, {"backoff": -1.0}], ids=str)
def test_bad_settings_are_user_errors(tmp_path: Path, settings: dict):
    with pytest.raises(DownloadError, match="bad download settings"):
        download("http://127.0.0.1/raw.csv", tmp_path / "raw.csv", **download_settings(**settings))


def test_download_settings_have_no_defaults_in_code():
    """The retry settings' defaults live in the config schema only (raw.download)."""
    parameters = inspect.signature(download).parameters.values()
    assert [p.name for p in parameters if p.default is not p.empty] == ["log", "sleep"]
    with pytest.raises(TypeError):
        download("http://127.0.0.1/raw.csv", "raw.csv")  # type: ignore[call-arg]


def test_public_url_drops_credentials():
    assert public_url("https://user:secret@example.org:8443/a.csv?x=1") == (
        "https://example.org:8443/a.csv?x=1"
    )
    assert public_url("s3://bucket/key.csv") == "s3://bucket/key.csv"


def test_requirements_pin_what_the_download_uses():
    """Every requirement is pinned; requests (imported by download.py) is one of them, and the
    HTTP storage plugin, which nothing uses, is not."""
    lines = [
        line.split("#")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    names = {}
    for line in lines:
        name, _, version = line.partition("==")
        assert version and " " not in version, f"not pinned: {line}"
        names[name.lower()] = version
    assert "requests" in names and "pygments" in names  # pygments: snakemake --report
    assert "snakemake-storage-plugin-http" not in names


# --------------------------------------------------------------------------------------------
# Bad values in the config: refused before any job
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": "ftp://example.org/raw.csv"}, "config key raw.url:"),
        ({"url": "https://user:pw@example.org/raw.csv"}, "config key raw.url:"),
        ({"url": "example.org/raw.csv"}, "config key raw.url:"),
        ({"s3": "s3://Bad_Bucket/raw.csv"}, "config key raw.s3:"),
        ({"s3": "s3://bucket-only"}, "config key raw.s3:"),
        ({"s3": "https://bucket/raw.csv"}, "config key raw.s3:"),
        ({"download": {"retries": -1}}, "config key raw.download.retries:"),
        ({"source": "ftp"}, "config key raw.source: 'ftp' is not allowed"),
    ],
)
def test_bad_source_settings_name_the_key(raw: dict, message: str):
    with pytest.raises(ConfigError) as raised:
        validate_config({"raw": copy.deepcopy(raw)}, SCHEMA)
    assert message in str(raised.value)


def test_bad_url_stops_the_workflow_before_any_job(tmp_path: Path):
    result = run(tmp_path, {"source": "url", "url": "htp://example.org/raw.csv"})
    assert result.returncode != 0
    assert "config key raw.url:" in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


# --------------------------------------------------------------------------------------------
# Bad input files (the same validation applies to every source)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_frame() -> pd.DataFrame:
    """About 2,000 rows: enough for every check, fast to ingest."""
    return synthetic(seed=5, scale=0.002)


def _with(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    changed = frame.astype({column: object})
    changed.loc[row, column] = value
    return changed


def _truncate_last_line(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]


BAD_FILES = {
    # case: (bytes from the tiny frame, message)
    "missing-column": (
        lambda f: f.drop(columns=["Mean Cost"]).to_csv(index=False).encode(),
        "the header lacks 1 required column(s): 'Mean Cost'",
    ),
    "non-numeric-cost": (
        lambda f: _with(f, 2, "Mean Cost", "abc").to_csv(index=False).encode(),
        "line 4: Mean Cost 'abc' is not a number",
    ),
    "zero-discharges": (
        lambda f: _with(f, 4, "Discharges", 0).to_csv(index=False).encode(),
        "line 6: Discharges '0' is below 1",
    ),
    "empty-file": (lambda f: b"", "the file is empty"),
    "truncated-last-line": (
        lambda f: _truncate_last_line(f.to_csv(index=False)).encode(),
        "truncated line (6 fields, expected 14)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_stops_ingest_with_one_message(tiny_frame: pd.DataFrame, tmp_path, case: str):
    make, message = BAD_FILES[case]
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources/raw.csv").write_bytes(make(tiny_frame))
    result = run(tmp_path, {"source": "file", "path": "resources/raw.csv"})
    assert_one_clear_error(
        result, "ingest_raw", "ERROR in rule ingest_raw: Raw data file resources/raw.csv: "
    )
    assert message in result.stderr
    assert data_files(tmp_path) == []


@pytest.mark.parametrize(
    ("case", "encoding"),
    [("utf-8-bom", "utf-8-sig"), ("latin-1", "latin-1")],
)
def test_other_encodings_are_read(tiny_frame: pd.DataFrame, tmp_path: Path, case, encoding):
    frame = _with(tiny_frame, 0, "Facility Name", "Hôpital Sainte-Anne de Beaupré")
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources/raw.csv").write_bytes(
        frame.to_csv(index=False).encode("utf-8-sig" if case == "utf-8-bom" else "latin-1")
    )
    result = run(tmp_path, {"source": "file"}, "results/v0/v0.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    v0 = json.loads((tmp_path / "results/v0/v0_metadata.json").read_text())
    assert v0["validation"]["encoding"] == encoding
    assert v0["rows"] == len(frame)
    assert "Hôpital Sainte-Anne de Beaupré" in (tmp_path / "results/v0/v0.csv").read_text()


def test_drop_policy_counts_dropped_rows(tiny_frame: pd.DataFrame, tmp_path: Path):
    bad = _with(_with(tiny_frame, 2, "Mean Cost", "abc"), 4, "Discharges", 0)
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources/raw.csv").write_bytes(bad.to_csv(index=False).encode())
    raw = {"source": "file", "on_bad_rows": "drop"}
    result = run(tmp_path, raw, "results/v0/v0.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    validation = json.loads((tmp_path / "results/v0/v0_metadata.json").read_text())["validation"]
    assert validation["rows_dropped"] == 2
    assert validation["rows_kept"] == len(tiny_frame) - 2
    assert validation["drop_reasons"] == {"Discharges: below 1": 1, "Mean Cost: not a number": 1}
    assert [e["line"] for e in validation["bad_row_examples"]] == [4, 6]
    log = (tmp_path / "logs/ingest_raw/v0.log").read_text()
    assert "rows_dropped: 2" in log
