"""The modelling settings, as frozen typed objects built once from the rules' params.

The rules pass plain dicts built from the validated config by ``workflow/rules/common.smk``
(Snakemake params must be plain data, and their change re-runs a job); the step functions turn
them into these objects once, so that no function needs twenty loose parameters and no value
has a second, hard-coded copy in the code. The config (with its schema defaults) is the only
source of every value here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drg_workflow.columns import history_group_columns, lag_column, rolling_column
from drg_workflow.names import SPLIT_NAMES


@dataclass(frozen=True)
class YearSplit:
    """Inclusive year ranges ``(first, last)`` of the train, validation and test splits.

    Resolved from ``modelling.split`` against the data's years by
    :func:`.years.resolve_split` (the ``split_years`` rule); an explicit split's order (train
    before validation before test) is checked once, by the config validation
    (``drg_workflow.config_validation.check_modelling``).
    """

    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]

    @classmethod
    def from_config(cls, split: Mapping[str, Sequence[int]]) -> YearSplit:
        """From explicit ranges (``modelling.split`` in that form, or ``split.json``):
        ``{"train": [first, last], "validation": ..., ...}``."""
        first_last = {name: (int(split[name][0]), int(split[name][1])) for name in SPLIT_NAMES}
        return cls(**first_last)


@dataclass(frozen=True)
class FeatureSettings:
    """What the modelling data looks like: its target, lag list and rolling window."""

    target: str
    lag_columns: tuple[str, ...]
    rolling_window: int

    @property
    def target_lag(self) -> str:
        """The column of the target's previous value."""
        return lag_column(self.target)

    @property
    def target_rolling(self) -> str:
        """The column of the target's mean over the rolling window."""
        return rolling_column(self.target, self.rolling_window)


@dataclass(frozen=True)
class ModellingSettings:
    """Settings every modelling rule shares: data, features, year split, folds and seed.

    The year split is the one resolved from the data (``results/models/split.json``), not the
    config's ``modelling.split``, which may be relative to the data's years.
    """

    features: FeatureSettings
    data_version: str
    include_same_year_features: bool
    include_year: bool
    split: YearSplit
    cv_folds: int
    random_state: int

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], split: YearSplit, cv_folds: int | None = None
    ) -> ModellingSettings:
        """From the dict of ``shared_modelling_settings()`` in
        ``workflow/rules/common/modelling.smk``, the resolved ``split`` and the tuning folds it
        leaves room for (``None``: ``cv_folds`` of the params)."""
        return cls(
            features=FeatureSettings(
                target=params["target"],
                lag_columns=tuple(params["lags"]["columns"]),
                rolling_window=int(params["lags"]["rolling_window"]),
            ),
            data_version=params["data_version"],
            include_same_year_features=bool(params["include_same_year_features"]),
            include_year=bool(params["include_year"]),
            split=split,
            cv_folds=int(params["cv_folds"] if cv_folds is None else cv_folds),
            random_state=int(params["random_state"]),
        )


def tuning_rounds(tuning: Mapping[str, Any]) -> int:
    """The rounds the tuning runs in: ``modelling.tuning.rounds``, but at most
    ``trials_per_shard`` (each round gives every shard at least one trial)."""
    return min(int(tuning["rounds"]), int(tuning["trials_per_shard"]))


@dataclass(frozen=True)
class TuningSettings:
    """``modelling.tuning``: the Optuna budget, its rounds, its fan-out over shards and its
    storage."""

    n_shards: int
    trials_per_shard: int
    #: Rounds the budget is spent in: a round's candidates are asked from the results of the
    #: rounds before it only (:func:`.tuning.round_candidates`).
    rounds: int
    base_seed: int
    storage: str
    #: The environment variable holding the storage URL instead (``None``: ``storage``).
    storage_env: str | None
    replace_existing_study: bool
    pruner_n_startup_trials: int
    pruner_n_warmup_steps: int
    tpe_n_startup_trials: int
    #: The objective's RMSE counts each row's error up to this quantile of persistence's
    #: absolute errors in the fold (1: uncapped; :meth:`.tuning.FoldScores.loss_ratio`).
    error_cap_quantile: float

    @classmethod
    def from_params(cls, tuning: Mapping[str, Any]) -> TuningSettings:
        return cls(
            n_shards=int(tuning["n_shards"]),
            trials_per_shard=int(tuning["trials_per_shard"]),
            rounds=tuning_rounds(tuning),
            base_seed=int(tuning["base_seed"]),
            storage=tuning["storage"],
            storage_env=tuning.get("storage_env"),
            replace_existing_study=bool(tuning["replace_existing_study"]),
            pruner_n_startup_trials=int(tuning["pruner"]["n_startup_trials"]),
            pruner_n_warmup_steps=int(tuning["pruner"]["n_warmup_steps"]),
            tpe_n_startup_trials=int(tuning["tpe_n_startup_trials"]),
            error_cap_quantile=float(tuning["error_cap_quantile"]),
        )

    def round_seed(self, round_index: int) -> int:
        """The seed of the sampler that asks a round's candidates, ``base_seed + round``."""
        return self.base_seed + int(round_index)

    def trials_per_round(self, round_index: int) -> int:
        """Trials each shard runs in round ``round_index``: ``trials_per_shard`` spread over
        the rounds as evenly as it goes, earlier rounds taking the remainder."""
        whole, remainder = divmod(self.trials_per_shard, self.rounds)
        return whole + (1 if int(round_index) < remainder else 0)

    def shard_candidates(self, round_index: int, shard_index: int) -> range:
        """The indices of the round's candidates that shard ``shard_index`` evaluates: a
        fixed slice, whatever runs when."""
        size = self.trials_per_round(round_index)
        return range(int(shard_index) * size, (int(shard_index) + 1) * size)


@dataclass(frozen=True)
class ModelSettings:
    """One model of ``modelling.models`` with everything its setup, shards and final fit use."""

    name: str
    search_space: Mapping[str, Mapping[str, Any]]
    fixed_params: Mapping[str, Any]
    #: How the model learns the target (``modelling.target_form``, see :mod:`.target_form`).
    target_form: str
    modelling: ModellingSettings
    tuning: TuningSettings
    #: Groups of series_history's columns the model leaves out (``drop_feature_groups``).
    drop_feature_groups: tuple[str, ...]

    @property
    def dropped_features(self) -> tuple[str, ...]:
        """The columns of :attr:`drop_feature_groups` for the target: in the modelling data,
        never seen by the model's regressor."""
        return history_group_columns(self.modelling.features.target, self.drop_feature_groups)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], split: YearSplit, cv_folds: int | None = None
    ) -> ModelSettings:
        """From the dict of ``model_settings()`` in ``workflow/rules/common/modelling.smk``,
        the resolved ``split`` and its tuning folds (see :meth:`ModellingSettings.from_params`).
        """
        return cls(
            name=params["model"],
            search_space=dict(params["search_space"]),
            fixed_params=dict(params["fixed_params"] or {}),
            target_form=params["target_form"],
            modelling=ModellingSettings.from_params(params, split, cv_folds),
            tuning=TuningSettings.from_params(params["tuning"]),
            drop_feature_groups=tuple(params["drop_feature_groups"]),
        )


@dataclass(frozen=True)
class BacktestSettings:
    """``modelling.backtest``: how the skill of each origin's refit is scored."""

    #: Resamples of the series in the bootstrap interval of the skill.
    bootstrap_resamples: int
    #: Two-sided level of that interval (0.9: from the 5th to the 95th percentile).
    interval_level: float
    #: Seed of the bootstrap (``modelling.random_state``).
    seed: int

    @classmethod
    def from_params(cls, backtest: Mapping[str, Any], seed: int) -> BacktestSettings:
        return cls(
            bootstrap_resamples=int(backtest["bootstrap_resamples"]),
            interval_level=float(backtest["interval_level"]),
            seed=int(seed),
        )


@dataclass(frozen=True)
class ImportanceSettings:
    """``modelling.importance``: permutation importances on the validation split."""

    n_repeats: int
    max_samples: float

    @classmethod
    def from_params(cls, importance: Mapping[str, Any]) -> ImportanceSettings:
        return cls(n_repeats=int(importance["n_repeats"]), max_samples=importance["max_samples"])


@dataclass(frozen=True)
class MlflowSettings:
    """``modelling.mlflow`` with the tracking URI resolved (config, environment or default)."""

    tracking_uri: str
    experiment_name: str
    #: ``None``: the tracking server's default (``mlflow-artifacts:/<experiment id>``).
    artifact_location: str | None

    @classmethod
    def from_params(cls, mlflow: Mapping[str, Any]) -> MlflowSettings:
        return cls(
            tracking_uri=mlflow["tracking_uri"],
            experiment_name=mlflow["experiment_name"],
            artifact_location=mlflow["artifact_location"],
        )


def shared_rule_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings every modelling rule shares, from the validated ``config``: target, lag
    list and window, data version, feature switches, folds and seed (the params the rules pass
    to :meth:`ModellingSettings.from_params`). The year split is not among them: the rules read
    it, resolved from the data, from split_years' output."""
    modelling = config["modelling"]
    return {
        "target": config["target"],
        "lags": {
            "columns": config["lags"]["columns"],
            "rolling_window": config["lags"]["rolling_window"],
        },
        "data_version": modelling["data_version"],
        "include_same_year_features": modelling["include_same_year_features"],
        "include_year": modelling["include_year"],
        "cv_folds": modelling["cv_folds"],
        "random_state": modelling["random_state"],
    }


def model_rule_settings(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Everything a model's setup, shards, final fit, backtest and refit depend on, from the
    validated ``config`` (the params :meth:`ModelSettings.from_params` takes)."""
    modelling = config["modelling"]
    tuning = modelling["tuning"]
    return {
        **shared_rule_settings(config),
        "model": model,
        "search_space": modelling["models"][model]["search_space"],
        "fixed_params": modelling["models"][model]["fixed_params"],
        "drop_feature_groups": modelling["models"][model]["drop_feature_groups"],
        "target_form": modelling["target_form"],
        "tuning": {**tuning, "storage": tuning["storage"].format(model=model)},
    }
