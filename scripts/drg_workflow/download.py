"""Fetch the raw CSV from an HTTP(S) URL: retries with backoff, atomic, one clear error.

Used by the ``download_raw`` rule for ``raw.source: url``. Why not
``snakemake-storage-plugin-http`` (0.3.1): it never retries; it reports a 404 and a
503 alike as a "missing input file" without the status; an unreachable server surfaces as
urllib3's chained ``ConnectionError ... Max retries exceeded`` text; its GET does not check the
status; and it asks the server again (HEAD) on every run, even ``-n``.

Here ``requests`` does the HTTP. Transient failures (connection refused or reset, timeouts,
a body cut short before its Content-Length, HTTP 408, 425, 429 and 5xx) are retried with
exponential backoff; anything else (e.g. a 404) fails at once; the message always names the URL
(without credentials) and what went wrong. The bytes go to a temporary file beside the
destination that is renamed into place only when complete and plausibly a CSV, so a failed or
partial download never looks complete.

Why a loop of our own rather than urllib3's ``Retry`` mounted on requests' ``HTTPAdapter``:
``Retry`` only covers a request until its headers arrive (requests reads the body itself,
``preload_content=False``), so a transfer cut short or stalled mid-body would still need a
second retry mechanism; and ``Retry`` waits 0 s before the first retry, logs to urllib3's own
logger and sleeps with ``time.sleep``, so the configured schedule, the rule's log lines and the
tests' fake sleep would each need an override.
"""

from __future__ import annotations

import hashlib
import http
import logging
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.exceptions import ChunkedEncodingError
from urllib3.exceptions import IncompleteRead, MaxRetryError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from drg_workflow import __version__
from drg_workflow.errors import DrgWorkflowError
from drg_workflow.files import atomic_output
from drg_workflow.urls import public_url

__all__ = ["DownloadError", "DownloadResult", "download", "public_url"]

#: HTTP statuses worth retrying: the server may answer differently a moment later.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Bytes of the response inspected to recognise a non-CSV page.
_HEAD_BYTES = 1 << 16
_BLOCK = 1 << 20

logger = logging.getLogger(__name__)


class DownloadError(DrgWorkflowError):
    """The raw CSV could not be downloaded; the message names the URL and the cause."""


class _Transient(Exception):
    """A failure worth another attempt (carries the user-facing reason)."""


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` fetched: public URL, size, sha256, and attempts used."""

    url: str
    size: int
    sha256: str
    attempts: int


def download(
    url: str,
    destination: str | os.PathLike[str],
    *,
    retries: int,
    timeout: float,
    backoff: float,
    log: logging.Logger | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download ``url`` to ``destination`` atomically, retrying transient failures.

    ``retries``, ``timeout`` and ``backoff`` are required: their defaults live in the config
    schema (``raw.download``), not here.

    Args:
        url: An ``http://`` or ``https://`` URL.
        destination: Local file written (only) when the whole body has arrived; it gets the
            mode of any new file under the umask (see :func:`drg_workflow.files.atomic_output`).
        retries: Further attempts after the first for transient failures (0: try once).
        timeout: Seconds to wait for the connection and for each read.
        backoff: Seconds before the first retry, doubled before each further one.
        log: Where failed attempts are reported (default: this module's logger).
        sleep: Called with the seconds to wait between attempts (tests pass a fake).

    Returns:
        The public URL (no credentials), size, sha256 and number of attempts.

    Raises:
        DownloadError: The URL or the settings are unusable, the server is unreachable or kept
            failing after all attempts, answered with an HTTP error that retrying cannot fix
            (e.g. 404), sent nothing, or sent something that is not a CSV (an HTML page, JSON,
            an archive). Nothing is left at ``destination``.
    """
    shown = public_url(url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"cannot download {shown}: only http:// and https:// URLs work")
    if retries < 0 or timeout <= 0 or backoff < 0:
        raise DownloadError(f"bad download settings: {retries=}, {timeout=}, {backoff=}")
    log = log or logger
    attempts = retries + 1
    with requests.Session() as session:
        for attempt in range(1, attempts + 1):
            try:
                size, digest = _fetch_once(session, url, shown, Path(destination), timeout)
            except _Transient as failure:
                if attempt == attempts:
                    raise DownloadError(
                        f"could not download {shown} after {attempts} attempt(s): {failure}. "
                        "Check the URL (config key raw.url) and your network, or retry later."
                    ) from None
                wait = backoff * 2 ** (attempt - 1)
                log.warning(
                    "attempt %d of %d failed: %s; retrying in %.1f s",
                    *(attempt, attempts, failure, wait),
                )
                sleep(wait)
                continue
            log.info(
                "downloaded %s: %d bytes, sha256 %s, %d attempt(s)", shown, size, digest, attempt
            )
            return DownloadResult(url=shown, size=size, sha256=digest, attempts=attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_once(
    session: requests.Session, url: str, shown: str, target: Path, timeout: float
) -> tuple[int, str]:
    """One attempt: GET ``url`` into ``target`` (atomically); return size and sha256."""
    headers = {"User-Agent": f"drg-workflow/{__version__}", "Accept-Encoding": "identity"}
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            _refuse_http_error(response, shown)
            return _save(response, shown, target)
    # Refused or reset connections, timeouts, TLS failures and a body cut short; not a
    # malformed URL or a redirect loop, which another attempt cannot fix.
    except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError) as error:
        raise _Transient(_describe(error, timeout)) from None


def _refuse_http_error(response: requests.Response, shown: str) -> None:
    """An HTTP error status: worth another attempt (408, 429, 5xx...) or fatal (404...)."""
    if response.status_code < 400:
        return
    try:
        status = f"HTTP {response.status_code} {http.HTTPStatus(response.status_code).phrase}"
    except ValueError:  # a code Python does not know: the server's own words
        status = f"HTTP {response.status_code} {response.reason or ''}".strip()
    if response.status_code in RETRY_STATUSES:
        raise _Transient(status)
    raise DownloadError(
        f"could not download {shown}: the server answered {status}. "
        "Check the URL (config key raw.url)."
    )


def _save(response: requests.Response, shown: str, target: Path) -> tuple[int, str]:
    """Stream the body into ``target`` atomically if it is plausibly a CSV; size and sha256.

    A body shorter than its Content-Length raises urllib3's ``IncompleteRead`` (its
    ``enforce_content_length`` is on by default), which requests reports as
    ``ChunkedEncodingError``; the temporary file is then removed.
    """
    digest = hashlib.sha256()
    size = 0
    head = b""
    with atomic_output(target) as temporary, open(temporary, "wb") as sink:
        for block in response.iter_content(_BLOCK):
            sink.write(block)
            digest.update(block)
            size += len(block)
            if len(head) < _HEAD_BYTES:
                head += block[: _HEAD_BYTES - len(head)]
        if size == 0:
            raise DownloadError(f"could not download {shown}: the server sent an empty body")
        _refuse_non_csv(shown, head, response.headers.get("Content-Type", "unknown"))
    return size, digest.hexdigest()


def _refuse_non_csv(shown: str, head: bytes, content_type: str) -> None:
    """An HTML page, JSON or an archive is not the raw CSV, whatever the status said."""
    from drg_workflow.raw_input import RawDataError, check_csv_head

    try:
        check_csv_head(shown, head)
    except RawDataError as error:
        content_type = content_type.split(";")[0].strip()
        raise DownloadError(f"{error} (Content-Type {content_type})") from None


def _describe(error: BaseException, timeout: float) -> str:
    """A short reason for a failed attempt, without the URL (the caller names it safely)."""
    # requests wraps urllib3's exception (sometimes inside a MaxRetryError): unwrap it.
    while isinstance(error, requests.RequestException | MaxRetryError):
        inner = error.reason if isinstance(error, MaxRetryError) else error.args[0]
        if not isinstance(inner, BaseException):
            break
        error = inner
    if isinstance(error, NewConnectionError):  # checked first: it subclasses the timeout
        return f"server unreachable ({_os_reason(error)})"
    if isinstance(error, Urllib3Timeout | requests.Timeout):
        return f"no answer within {timeout:g} s"
    incomplete = [a for a in getattr(error, "args", ()) if isinstance(a, IncompleteRead)]
    if isinstance(error, ProtocolError) and incomplete:
        received, missing = incomplete[0].partial, incomplete[0].expected
        return f"the transfer was cut short ({received:,} of {received + missing:,} bytes)"
    return f"connection failed ({_os_reason(error)})"


def _os_reason(error: BaseException) -> str:
    """The lowest-level words for what failed (e.g. ``Connection refused``)."""
    causes = [error, error.__cause__, *error.args]
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    # e.g. ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed ..."))
    inner = [c for c in causes[1:] if isinstance(c, BaseException) and str(c)]
    return str(inner[-1] if inner else error) or type(error).__name__
