"""Writing report figures and pages atomically, with bytes free of timestamps."""

from __future__ import annotations

import os

from matplotlib.figure import Figure

from drg_workflow.files import atomic_output

#: Resolution of every PNG: sharp in a browser, small in the report's HTML.
DPI = 100


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    """Write ``figure`` as a PNG at ``path`` (atomically), with no software or date stamp.

    The Agg canvas renders the same bytes for the same figure, so an unchanged figure gives
    an unchanged file.
    """
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI, metadata={"Software": None})


def save_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` (UTF-8) at ``path`` atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
