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
from dataclasses import asdict, dataclass, replace
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


@dataclass(frozen=True)
class SplitSizes:
    """The numbers of years of a relative split: test, validation, and tuning folds (the train
    years need one more than the folds: each fold trains on earlier years)."""

    test: int
    validation: int
    cv_folds: int

    @property
    def years_needed(self) -> int:
        return self.test + self.validation + self.cv_folds + 1

    def describe(self) -> str:
        return (
            f"{self.test} test, {self.validation} validation and {self.cv_folds + 1} train "
            f"years ({self.cv_folds} tuning folds)"
        )


#: The order a relative split shrinks in when the data has too few years: the test years
#: first (they only report), then the tuning folds, then the validation years (they choose).
SHRINK_ORDER: tuple[str, ...] = ("test", "cv_folds", "validation")


def relative_split_sizes(
    split_config: Mapping[str, Any], present: Sequence[int], cv_folds: int
) -> SplitSizes:
    """The sizes of a relative ``modelling.split`` for data with the years ``present``: the
    configured ``test``, ``validation`` and ``cv_folds`` when the data has enough years, else
    shrunk one year at a time in :data:`SHRINK_ORDER`, each down to
    ``modelling.split.minimum`` (without a ``minimum``, nothing shrinks).

    Raises:
        ModellingDataError: even the minimum needs more years than the data has; the message
            names the years and the key.
    """
    sizes = SplitSizes(int(split_config["test"]), int(split_config["validation"]), cv_folds)
    floor = {**asdict(sizes), **dict(split_config.get("minimum") or {})}
    for name in SHRINK_ORDER:
        while sizes.years_needed > len(present) and getattr(sizes, name) > floor[name]:
            sizes = replace(sizes, **{name: getattr(sizes, name) - 1})
    if sizes.years_needed > len(present):
        smallest = SplitSizes(floor["test"], floor["validation"], floor["cv_folds"])
        raise ModellingDataError(
            f"config key modelling.split: the modelling data has {len(present)} years "
            f"({', '.join(map(str, present))}); the smallest split allowed "
            f"(modelling.split.minimum: {smallest.describe()}) needs "
            f"{smallest.years_needed}: give more years of data, or lower modelling.split.minimum"
        )
    return sizes


def _resolve_split(
    split_config: Mapping[str, Any], years: Iterable[Any], cv_folds: int
) -> tuple[YearSplit, int]:
    """The split and the number of tuning folds it leaves room for (:func:`resolve_split`)."""
    present = distinct_years(years)
    if is_relative_split(split_config):
        sizes = relative_split_sizes(split_config, present, cv_folds)
        n_test, n_validation = sizes.test, sizes.validation
        test = present[-n_test:]
        validation = present[-(n_test + n_validation) : -n_test]
        train = present[: -(n_test + n_validation)]
        split = YearSplit(
            train=(train[0], train[-1]),
            validation=(validation[0], validation[-1]),
            test=(test[0], test[-1]),
        )
        return split, sizes.cv_folds
    return _explicit_split(split_config, present, cv_folds), cv_folds


def resolve_split(
    split_config: Mapping[str, Any], years: Iterable[Any], cv_folds: int
) -> YearSplit:
    """The train / validation / test year ranges of ``modelling.split`` for data holding
    ``years`` (the modelling data's year column).

    Relative: the last ``test`` distinct years test, the ``validation`` years before them
    validate, all earlier years train; with too few years, fewer test and validation years
    and tuning folds (:func:`relative_split_sizes`). Explicit: the ranges as configured.

    Raises:
        ModellingDataError: the data has too few years for the relative split even at its
            minimum, or an explicit range holds no year of the data, or the train years are
            too few for ``cv_folds`` year folds (each needs an earlier year to train on); the
            message names the key.
    """
    return _resolve_split(split_config, years, cv_folds)[0]


def _explicit_split(
    split_config: Mapping[str, Any], present: Sequence[int], cv_folds: int
) -> YearSplit:
    """An explicit split, checked against the years ``present``."""
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
    #: The tuning folds the split leaves room for (``modelling.cv_folds``, or fewer when a
    #: relative split shrank); ``None``: as configured.
    cv_folds: int | None = None

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
        cv_folds = document.get("cv_folds")
        return cls(
            split=YearSplit.from_config(document["split"]),
            choosing_origins=tuple(int(year) for year in origins[CHOOSING_ROLE]),
            reporting_origins=tuple(int(year) for year in origins[REPORTING_ROLE]),
            cv_folds=None if cv_folds is None else int(cv_folds),
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "split": {name: list(getattr(self.split, name)) for name in SPLIT_NAMES},
            "origins": {
                CHOOSING_ROLE: list(self.choosing_origins),
                REPORTING_ROLE: list(self.reporting_origins),
            },
        }
        if self.cv_folds is not None:
            document["cv_folds"] = self.cv_folds
        return document


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
    split, folds = _resolve_split(split_config, years, cv_folds)
    choosing, reporting = resolve_origins(origins_config, split, years)
    return ModellingYears(split, choosing, reporting, folds)


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
