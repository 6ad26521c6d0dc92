"""The years the modelling uses, taken from the data: the year split, the backtest's origins
and the years no model fits or scores (the raw data's missing years are found by
:func:`drg_workflow.ingest.raw_years`).

``modelling.split`` gives the split either relative to the data (``validation`` and ``test`` as
numbers of years: the last ``test`` years of the modelling data are the test years, the
``validation`` years before them the validation years, every earlier year trains) or as
explicit inclusive year ranges (``train``, ``validation``, ``test``).
``modelling.backtest.origins`` lists the backtest's origin years or, when null, takes every
year of the validation and test splits. Origins in the validation years choose the champion;
origins in the test years only report.

The ``split_years`` rule resolves them once against the years the data holds
(:func:`resolve_years`) and writes ``results/models/split.json``; every modelling rule reads
the resolved years from there (:class:`ModellingYears`), never from the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drg_workflow.names import CHOOSING_ROLE, REPORTING_ROLE, SPLIT_NAMES

from .data import ModellingDataError
from .settings import YearSplit


def distinct_years(years: Iterable[Any]) -> list[int]:
    """The distinct years of ``years`` (any iterable of integers, e.g. a year column), sorted."""
    return sorted({int(year) for year in np.unique(np.asarray(list(years)))})


def is_relative_split(split_config: Mapping[str, Any]) -> bool:
    """Whether ``modelling.split`` is given relative to the data (``validation`` and ``test``
    as numbers of years) rather than as explicit year ranges; the config validation allows one
    form or the other (``drg_workflow.config_validation.check_split_form``)."""
    return not isinstance(split_config["test"], list)


def _years_in(years: Sequence[int], first_last: tuple[int, int]) -> list[int]:
    return [year for year in years if first_last[0] <= year <= first_last[1]]


def resolve_split(
    split_config: Mapping[str, Any], years: Iterable[Any], cv_folds: int
) -> YearSplit:
    """The train / validation / test year ranges of ``modelling.split`` for data holding
    ``years`` (the modelling data's year column).

    Relative: the last ``test`` distinct years test, the ``validation`` years before them
    validate, all earlier years train. Explicit: the ranges as configured.

    Raises:
        ModellingDataError: the data has too few years for the relative split, or an explicit
            range holds no year of the data, or the train years are too few for ``cv_folds``
            year folds (each needs an earlier year to train on); the message names the key.
    """
    present = distinct_years(years)
    if is_relative_split(split_config):
        n_validation, n_test = int(split_config["validation"]), int(split_config["test"])
        needed = n_validation + n_test + cv_folds + 1
        if len(present) < needed:
            raise ModellingDataError(
                f"config key modelling.split: {n_test} test years, {n_validation} validation "
                f"years and {cv_folds + 1} train years (modelling.cv_folds + 1) need {needed} "
                f"years of modelling data; it has {len(present)}: {present}"
            )
        test = present[-n_test:]
        validation = present[-(n_test + n_validation) : -n_test]
        train = present[: -(n_test + n_validation)]
        return YearSplit(
            train=(train[0], train[-1]),
            validation=(validation[0], validation[-1]),
            test=(test[0], test[-1]),
        )
    split = YearSplit.from_config(split_config)
    for name in SPLIT_NAMES:
        first, last = getattr(split, name)
        if not _years_in(present, (first, last)):
            raise ModellingDataError(
                f"config key modelling.split.{name}: no data for the years {first}-{last} "
                f"(the modelling data has the years {present})"
            )
    train_years = _years_in(present, split.train)
    if len(train_years) < cv_folds + 1:
        raise ModellingDataError(
            f"config key modelling.cv_folds: {cv_folds} year folds need {cv_folds + 1} train "
            f"years with data; modelling.split.train {list(split.train)} has {train_years}"
        )
    return split


@dataclass(frozen=True)
class ModellingYears:
    """The resolved years every modelling rule uses (``results/models/split.json``).

    ``split``: the train / validation / test ranges; ``choosing_origins``: the backtest's
    origins in the validation years (they choose the champion); ``reporting_origins``: those in
    the test years (reported, never used to choose).
    """

    split: YearSplit
    choosing_origins: tuple[int, ...]
    reporting_origins: tuple[int, ...]

    @property
    def origins(self) -> tuple[int, ...]:
        """Every origin, in time order."""
        return tuple(sorted((*self.choosing_origins, *self.reporting_origins)))

    def role(self, origin: int) -> str:
        """``choosing`` or ``reporting``.

        Raises:
            ModellingDataError: ``origin`` is not an origin of the backtest.
        """
        if origin in self.choosing_origins:
            return CHOOSING_ROLE
        if origin in self.reporting_origins:
            return REPORTING_ROLE
        raise ModellingDataError(f"{origin} is not a backtest origin ({list(self.origins)})")

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ModellingYears:
        """From ``split.json`` (see :func:`years_document`)."""
        origins = document["origins"]
        return cls(
            split=YearSplit.from_config(document["split"]),
            choosing_origins=tuple(int(year) for year in origins[CHOOSING_ROLE]),
            reporting_origins=tuple(int(year) for year in origins[REPORTING_ROLE]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "split": {name: list(getattr(self.split, name)) for name in SPLIT_NAMES},
            "origins": {
                CHOOSING_ROLE: list(self.choosing_origins),
                REPORTING_ROLE: list(self.reporting_origins),
            },
        }


def resolve_origins(
    origins_config: Sequence[int] | None, split: YearSplit, years: Iterable[Any]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The backtest's choosing and reporting origins: ``modelling.backtest.origins``, or every
    year of the validation and test splits that has data when it is null.

    Raises:
        ModellingDataError: an origin is not a year of the validation or test splits with data,
            or no origin is in the validation years (the champion is chosen there) or none in
            the test years (they measure the champion's skill and its forecast's intervals on
            years that chose nothing).
    """
    present = distinct_years(years)
    in_validation = _years_in(present, split.validation)
    in_test = _years_in(present, split.test)
    if origins_config is None:
        origins = [*in_validation, *in_test]
    else:
        origins = sorted({int(year) for year in origins_config})
        outside = [year for year in origins if year not in (*in_validation, *in_test)]
        if outside:
            raise ModellingDataError(
                f"config key modelling.backtest.origins: {outside} are not years of the "
                f"validation ({in_validation}) or test ({in_test}) splits with data"
            )
    choosing = tuple(year for year in origins if year in in_validation)
    reporting = tuple(year for year in origins if year in in_test)
    if not choosing:
        raise ModellingDataError(
            f"config key modelling.backtest.origins: no origin in the validation years "
            f"({in_validation}), which choose the champion"
        )
    if not reporting:
        raise ModellingDataError(
            f"config key modelling.backtest.origins: no origin in the test years with data "
            f"({in_test}), which measure the champion's skill and its intervals on years that "
            "chose nothing"
        )
    return choosing, reporting


def unused_years(
    raw_years: Iterable[Any],
    modelling_years: Iterable[Any],
    split: YearSplit,
    data_version: str,
    rolling_window: int,
) -> dict[int, str]:
    """Every year of the raw data that no model is fitted on or scored on, with the reason.

    A raw year missing from the modelling data lost its rows to the lag steps: with no data in
    the ``rolling_window`` years before it, its rows have no lag features (its values are still
    the lags of the years after it). A year of the modelling data outside every split is left
    out by the configured split.
    """
    modelling = set(distinct_years(modelling_years))
    raw = distinct_years(raw_years)
    in_split = {
        year for year in modelling if any(_years_in([year], getattr(split, n)) for n in SPLIT_NAMES)
    }
    reasons: dict[int, str] = {}
    for year in raw:
        if year in in_split:
            continue
        if year in modelling:
            reasons[year] = "outside every range of modelling.split"
        elif not any(year - rolling_window <= earlier < year for earlier in raw):
            reasons[year] = (
                f"not in the modelling data {data_version}: no data in the {rolling_window} "
                "years before it, so its rows have no lag features (its values are the lags "
                "of the years after it)"
            )
        else:
            reasons[year] = f"not in the modelling data {data_version}"
    return reasons


def resolve_years(
    split_config: Mapping[str, Any],
    origins_config: Sequence[int] | None,
    cv_folds: int,
    modelling_years: Iterable[Any],
) -> ModellingYears:
    """The split (:func:`resolve_split`) and the origins (:func:`resolve_origins`) for
    modelling data holding ``modelling_years``."""
    years = distinct_years(modelling_years)
    split = resolve_split(split_config, years, cv_folds)
    choosing, reporting = resolve_origins(origins_config, split, years)
    return ModellingYears(split, choosing, reporting)


def years_message(unused: Mapping[int, str], first_modelling_year: int) -> tuple[str, str | None]:
    """The log lines about unused years: an informational line naming the leading years whose
    values serve only as lags (the data's first years always do), and a warning naming every
    later unused year with its reason, or ``None`` when there is none."""
    leading = [year for year in unused if year < first_modelling_year]
    later = {year: reason for year, reason in unused.items() if year >= first_modelling_year}
    info = (
        f"years used only as lags of later years: {', '.join(map(str, leading))}"
        if leading
        else "every year of the data is fitted or scored"
    )
    warning = (
        "years no model is fitted or scored on: "
        + "; ".join(f"{year} ({reason})" for year, reason in sorted(later.items()))
        if later
        else None
    )
    return info, warning
