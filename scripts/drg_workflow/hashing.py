"""Content hashes: of data files (version metadata, MLflow ``data_sha256`` tags) and of
configuration (MLflow ``config_hash`` tags, study names).

Only the standard library: hashing needs nothing more, and any script can import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: Hex digits of a sha256 shown where a whole one would not fit: logs, messages, the report,
#: study names.
SHORT_SHA = 12


def short_sha(digest: str | None, missing: str = "") -> str:
    """The first :data:`SHORT_SHA` hex digits of a sha256 (``missing`` for none)."""
    return (digest or missing)[:SHORT_SHA]


def file_sha256(path: str | Path, chunk_size: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file's bytes (streamed: the data files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(config: Any) -> str:
    """SHA-256 of the canonical JSON of ``config`` (sorted keys), so key order in the YAML does
    not change the hash but any value does."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
