"""The ``split_years`` rule's step: resolve the split and the backtest origins from the
data's years.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class SplitYearsResult:
    """What :func:`split_years` finds: the document of ``results/models/split.json`` and the
    log lines the rule writes (a warning for years no model fits or scores)."""

    document: dict[str, Any]
    info: list[str]
    warning: str | None


def split_years(
    params: Mapping[str, Any],
    raw_metadata: Mapping[str, Any],
    modelling_metadata: Mapping[str, Any],
    modelling_years: Sequence[int],
) -> SplitYearsResult:
    """Resolve ``modelling.split`` and ``modelling.backtest.origins`` against the years of the
    modelling data (``modelling_years``, its year column), and name the years of the raw data
    (v0's metadata ``years``) that no model fits or scores.

    ``params``: ``split``, ``backtest_origins``, ``cv_folds`` and ``rolling_window`` of the
    config. The document holds the resolved split and origins (:class:`..years.ModellingYears`),
    the year folds of tuning, the years of the raw and of the modelling data, the raw data's
    missing years and the unused years with their reasons.
    """
    from ..data import fold_years
    from ..years import distinct_years, resolve_years, unused_years, years_message

    present = distinct_years(modelling_years)
    years = resolve_years(
        params["split"], params["backtest_origins"], int(params["cv_folds"]), present
    )
    train = [y for y in present if years.split.train[0] <= y <= years.split.train[1]]
    raw_years = raw_metadata["years"]
    unused = unused_years(
        raw_years["present"],
        present,
        years.split,
        modelling_metadata["version"],
        int(params["rolling_window"]),
    )
    info, warning = years_message(unused, present[0])
    document = {
        **years.to_json(),
        "split_setting": dict(params["split"]),
        "cv_fold_years": fold_years(np.asarray(train), years.cv_folds),
        "years": {
            "raw": list(raw_years["present"]),
            "missing_in_raw": list(raw_years["missing"]),
            "modelling": present,
        },
        "unused_years": {str(year): reason for year, reason in sorted(unused.items())},
        "data": {"version": modelling_metadata["version"], "sha256": modelling_metadata["sha256"]},
    }
    split = years.split
    lines = [
        f"split of the {len(present)} years of {modelling_metadata['version']}: train "
        f"{split.train[0]}-{split.train[1]} (tuning folds "
        f"{', '.join(map(str, document['cv_fold_years']))}), validation "
        f"{split.validation[0]}-{split.validation[1]}, test {split.test[0]}-{split.test[1]}",
        f"backtest origins: {', '.join(map(str, years.choosing_origins))} choose the champion"
        + (
            f"; {', '.join(map(str, years.reporting_origins))} report"
            if years.reporting_origins
            else ""
        ),
        info,
    ]
    shrunk = split_shrink_message(params, present)
    if shrunk:
        lines.insert(0, shrunk)
    return SplitYearsResult(document, lines, warning)


def split_shrink_message(params: Mapping[str, Any], present: Sequence[int]) -> str | None:
    """The log line saying how a relative split shrank to fit the data's years ``present``
    (:func:`..years.relative_split_sizes`), or ``None`` when it did not."""
    from ..years import SplitSizes, is_relative_split, relative_split_sizes

    split, cv_folds = params["split"], int(params["cv_folds"])
    if not is_relative_split(split):
        return None
    configured = SplitSizes(int(split["test"]), int(split["validation"]), cv_folds)
    chosen = relative_split_sizes(split, present, cv_folds)
    if chosen == configured:
        return None
    return (
        f"the {len(present)} years of the modelling data ({present[0]}-{present[-1]}) are too "
        f"few for modelling.split and modelling.cv_folds ({configured.describe()}, "
        f"{configured.years_needed} years): using {chosen.describe()}, the split shrunk "
        "towards modelling.split.minimum"
    )
