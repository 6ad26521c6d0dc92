"""Modelling data for the modelling tests, made by the workflow's own code: the raw generator
(``drg_workflow.synthetic.generate_raw``) at small scale, then the configured version chain of
``drg_workflow.transformations``. Nothing here re-implements a transformation."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from drg_workflow.chain import configured_parameters
from drg_workflow.config_validation import validate_config
from drg_workflow.modelling.settings import ModellingSettings, ModelSettings
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


def shared_params(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shared modelling settings of ``config`` as the rules pass them (``common.smk``'s
    ``shared_modelling_settings``)."""
    config = config or small_config()
    modelling = config["modelling"]
    return {
        "target": config["target"],
        "lags": {k: config["lags"][k] for k in ("columns", "rolling_window")},
        **{
            k: modelling[k]
            for k in (
                "data_version",
                "include_same_year_features",
                "include_year",
                "split",
                "cv_folds",
                "random_state",
            )
        },
    }


def modelling_settings(config: dict[str, Any] | None = None) -> ModellingSettings:
    """The typed shared modelling settings of ``config`` (as the rules build them)."""
    return ModellingSettings.from_params(shared_params(config))


def model_settings(
    model: str, space: dict, fixed: dict | None = None, config: dict | None = None, **tuning
) -> ModelSettings:
    """A model's settings as the rules pass them: the small config's, with this model."""
    config = config or small_config()
    modelling = config["modelling"]
    return ModelSettings.from_params(
        {
            **shared_params(config),
            "model": model,
            "search_space": space,
            "fixed_params": fixed or {},
            "target_form": modelling["target_form"],
            "tuning": {**modelling["tuning"], **tuning},
        }
    )
