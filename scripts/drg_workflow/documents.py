"""JSON documents (metadata, settings, results): written atomically with sorted keys."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drg_workflow.files import atomic_output
from drg_workflow.profiling import timed


@timed("write")
def write_json(document: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


@timed("read")
def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON document."""
    return json.loads(Path(path).read_text())
