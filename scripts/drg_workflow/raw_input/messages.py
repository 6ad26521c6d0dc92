"""The error every problem with the raw file becomes, and safe quoting of file content."""

from __future__ import annotations

from drg_workflow.errors import DrgWorkflowError


class RawDataError(DrgWorkflowError):
    """The raw CSV cannot be used; the message says what is wrong and where, for the user."""


def show(raw: bytes | str, limit: int = 80) -> str:
    """Quote the start of some content safely (no control characters reach the terminal)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return repr(raw[:limit])


def quote(value: str, limit: int = 40) -> str:
    """Quote a field's text for a message, shortened and with control characters escaped."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")
