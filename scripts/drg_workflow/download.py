"""Fetch the raw CSV from an HTTP(S) URL: retries with backoff, atomic, one clear error.

Used by the ``download_raw`` rule for ``raw.source: url``. Why not
``snakemake-storage-plugin-http`` (0.3.1): it never retries; it reports a 404 and a
503 alike as a "missing input file" without the status; an unreachable server surfaces as
urllib3's chained ``ConnectionError ... Max retries exceeded`` text; its GET does not check the
status; and it asks the server again (HEAD) on every run, even ``-n``.

Here transient failures (connection refused or reset, timeouts, truncated transfers, HTTP 408,
429 and 5xx) are retried with exponential backoff; anything else fails at once; and the message
always names the URL and what went wrong. The bytes go to a temporary file beside the
destination that is renamed into place only when complete and plausibly a CSV, so a failed or
partial download never looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from drg_workflow import __version__
from drg_workflow.errors import DrgWorkflowError

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


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, fit for logs and metadata."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def download(
    url: str,
    destination: str | os.PathLike[str],
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 2.0,
    log: logging.Logger | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download ``url`` to ``destination`` atomically, retrying transient failures.

    Args:
        url: An ``http://`` or ``https://`` URL.
        destination: Local file written (only) when the whole body has arrived.
        retries: Further attempts after the first for transient failures (0: try once).
        timeout: Seconds to wait for the connection and for each read.
        backoff: Seconds before the first retry, doubled before each further one.
        log: Where failed attempts are reported (default: this module's logger).
        sleep: Called with the seconds to wait between attempts (tests pass a fake).

    Returns:
        The public URL (no credentials), size, sha256 and number of attempts.

    Raises:
        DownloadError: The server is unreachable or kept failing after all attempts, answered
            with an HTTP error that retrying cannot fix (e.g. 404), sent nothing, or sent
            something that is not a CSV (an HTML page, JSON, an archive). Nothing is left at
            ``destination``.
    """
    shown = public_url(url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"cannot download {shown}: only http:// and https:// URLs work")
    if retries < 0 or timeout <= 0 or backoff < 0:
        raise ValueError(f"bad download settings: {retries=}, {timeout=}, {backoff=}")
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    attempts = retries + 1
    log = log or logger
    for attempt in range(1, attempts + 1):
        try:
            size, digest = _fetch_once(url, shown, target, timeout)
        except _Transient as failure:
            if attempt == attempts:
                raise DownloadError(
                    f"could not download {shown} after {attempts} attempt(s): {failure}. "
                    "Check the URL (config key raw.url) and your network, or retry later."
                ) from None
            wait = backoff * 2 ** (attempt - 1)
            log.warning(
                "attempt %d of %d failed: %s; retrying in %.1f s", attempt, attempts, failure, wait
            )
            sleep(wait)
            continue
        log.info("downloaded %s: %d bytes, sha256 %s, %d attempt(s)", shown, size, digest, attempt)
        return DownloadResult(url=shown, size=size, sha256=digest, attempts=attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_once(url: str, shown: str, target: Path, timeout: float) -> tuple[int, str]:
    """One attempt: stream the body into a temporary file, check it, rename it into place."""
    request = urllib.request.Request(
        url,
        headers={"User-Agent": f"drg-workflow/{__version__}", "Accept-Encoding": "identity"},
    )
    handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as sink:
            size, digest, head, content_type = _stream(request, shown, sink, timeout)
        if size == 0:
            raise DownloadError(f"could not download {shown}: the server sent an empty body")
        _refuse_non_csv(shown, head, content_type)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return size, digest


def _stream(
    request: urllib.request.Request, shown: str, sink: BinaryIO, timeout: float
) -> tuple[int, str, bytes, str]:
    """Copy the response body to ``sink``; return size, sha256, first bytes, content type."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            content_type = response.headers.get_content_type()
            while block := response.read(_BLOCK):
                sink.write(block)
                digest.update(block)
                size += len(block)
                if len(head) < _HEAD_BYTES:
                    head += block[: _HEAD_BYTES - len(head)]
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code} {error.reason}".strip()
        if error.code in RETRY_STATUSES:
            raise _Transient(reason) from None
        raise DownloadError(
            f"could not download {shown}: the server answered {reason}. "
            "Check the URL (config key raw.url)."
        ) from None
    except http.client.IncompleteRead as error:
        raise _Transient(
            f"the transfer was cut short ({len(error.partial):,} bytes of the last block)"
        ) from None
    except urllib.error.URLError as error:
        raise _Transient(f"server unreachable ({_reason(error.reason)})") from None
    except TimeoutError:
        raise _Transient(f"no answer within {timeout:g} s") from None
    except (ConnectionError, http.client.HTTPException, ssl.SSLError) as error:
        raise _Transient(f"connection failed ({_reason(error)})") from None
    if expected is not None and expected.isdigit() and int(expected) != size:
        raise _Transient(f"the transfer was cut short ({size:,} of {int(expected):,} bytes)")
    return size, digest.hexdigest(), head, content_type


def _reason(error: object) -> str:
    """A short text for a socket-level error."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _refuse_non_csv(shown: str, head: bytes, content_type: str) -> None:
    """An HTML page, JSON or an archive is not the raw CSV, whatever the status said."""
    from drg_workflow.raw_input import RawDataError, check_csv_head

    try:
        check_csv_head(shown, head)
    except RawDataError as error:
        raise DownloadError(f"{error} (Content-Type {content_type})") from None
