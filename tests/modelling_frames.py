"""Modelling data for the modelling tests, made by the workflow's own code: the raw generator
(``drg_workflow.synthetic.generate_raw``) at small scale, then the configured version chain of
``drg_workflow.transformations``. Nothing here re-implements a transformation."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from drg_workflow.chain import configured_parameters
from drg_workflow.config_validation import validate_config
from drg_workflow.modelling.settings import (
    ModellingSettings,
    ModelSettings,
    shared_rule_settings,
)
from drg_workflow.modelling.years import ModellingYears, resolve_years
from drg_workflow.synthetic import equivalent_rare_drg_threshold, generate_raw
from drg_workflow.transformations import apply_transformation

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
SCALE = 0.01
#: drop_rare_drgs' threshold for full-scale data: its default in the config.
FULL_SCALE_RARE_DRG_THRESHOLD = validate_config({}, copy.deepcopy(SCHEMA))["transformations"][
    "drop_rare_drgs"
]["threshold"]


def rare_drg_threshold(scale: float) -> int:
    """The default drop_rare_drgs threshold scaled to synthetic data of ``scale``."""
    return int(equivalent_rare_drg_threshold(scale, FULL_SCALE_RARE_DRG_THRESHOLD))


def small_config(**overrides: Any) -> dict[str, Any]:
    """The default config (schema defaults) at the small test scale, with ``overrides`` (top
    level keys, merged one level deep)."""
    config: dict[str, Any] = {
        "raw": {"source": "synthetic", "synthetic": {"seed": 7, "scale": SCALE}},
        "transformations": {"drop_rare_drgs": {"threshold": rare_drg_threshold(SCALE)}},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return validate_config(config, copy.deepcopy(SCHEMA))


@functools.cache
def _frame(seed: int, config_yaml: str) -> pd.DataFrame:
    config = yaml.safe_load(config_yaml)
    synthetic = config["raw"]["synthetic"]
    frames = {"v0": generate_raw(**{**synthetic, "seed": seed})}
    for step in config["chain"]:
        frames[step["version"]] = apply_transformation(
            step["transformation"],
            frames[step["input"]],
            configured_parameters(config, step["transformation"]),
        )
    return frames[config["modelling"]["data_version"]]


def modelling_frame(seed: int = 7, config: dict[str, Any] | None = None) -> pd.DataFrame:
    """The modelling data version of the (small) ``config`` from raw data of ``seed``."""
    config = config or small_config()
    return _frame(seed, yaml.safe_dump(config)).copy()


#: The years of the small modelling data (v13 of the generator's default 2009-2017: 2009 has no
#: earlier year to take lags from).
MODELLING_YEARS = tuple(range(2010, 2018))


def shared_params(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shared modelling settings of ``config`` as the rules pass them."""
    return shared_rule_settings(config or small_config())


def modelling_years(
    config: dict[str, Any] | None = None, years: Sequence[int] = MODELLING_YEARS
) -> ModellingYears:
    """The split and origins of ``config`` resolved for modelling data of ``years`` (what the
    split_years rule writes)."""
    config = config or small_config()
    modelling = config["modelling"]
    return resolve_years(
        modelling["split"], modelling["backtest"]["origins"], modelling["cv_folds"], years
    )


def modelling_settings(config: dict[str, Any] | None = None) -> ModellingSettings:
    """The typed shared modelling settings of ``config`` (as the rules build them)."""
    return ModellingSettings.from_params(shared_params(config), modelling_years(config).split)


def model_params(
    model: str,
    space: dict,
    fixed: dict | None = None,
    config: dict | None = None,
    drop_feature_groups: tuple[str, ...] = (),
    **tuning,
) -> dict[str, Any]:
    """A model's rule params (``settings_of_model``): the small config's, with this model
    (leaving out ``drop_feature_groups``)."""
    config = config or small_config()
    return {
        **shared_rule_settings(config),
        "model": model,
        "search_space": space,
        "fixed_params": fixed or {},
        "drop_feature_groups": list(drop_feature_groups),
        "target_form": config["modelling"]["target_form"],
        "tuning": {**config["modelling"]["tuning"], **tuning},
    }


def model_settings(
    model: str,
    space: dict,
    fixed: dict | None = None,
    config: dict | None = None,
    drop_feature_groups: tuple[str, ...] = (),
    **tuning,
) -> ModelSettings:
    """A model's typed settings as the rules build them: the small config's, with this model
    (leaving out ``drop_feature_groups``)."""
    return ModelSettings.from_params(
        model_params(model, space, fixed, config, drop_feature_groups, **tuning),
        modelling_years(config).split,
    )


def pooled_skill_test(backtest: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """A pooled skill test table (``results/backtest/skill_test.csv``) for a hand-made backtest
    table: per model (not the baseline), the mean over its choosing origins of the skill and
    of each interval end."""
    from drg_workflow.modelling.backtest import SKILL_TEST_COLUMNS

    choosing = backtest.loc[(backtest["role"] == "choosing") & (backtest["model"] != "baseline")]
    rows = []
    for model, part in choosing.groupby("model", sort=False):
        rows.append(
            {
                "model": model,
                "choosing_origins": " ".join(str(int(o)) for o in sorted(part["origin"])),
                "n_series": 100,
                "resamples": 1000,
                "level": level,
                **{
                    f"skill_{m}{end}": float(part[f"skill_{m}{end}"].mean())
                    for m in ("rmse", "mae")
                    for end in ("", "_lower", "_upper")
                },
            }
        )
    return pd.DataFrame(rows, columns=list(SKILL_TEST_COLUMNS))
