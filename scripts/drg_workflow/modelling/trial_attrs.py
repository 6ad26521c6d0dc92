"""The user attributes a tuning shard sets on each Optuna trial, and the order they give the
trials; without Optuna, so the report's tables read them too."""

from __future__ import annotations

from typing import Any

#: Trial user attributes: the shard that ran the trial, the setup it belongs to (the study's
#: MLflow parent run id, new with every setup_study run), its MLflow run, and whether its
#: process was killed while it ran.
SHARD_ATTR = "shard"
SETUP_ATTR = "setup"
#: Trial user attributes: the tuning round and the index of the trial's candidate in it.
ROUND_ATTR = "round"
CANDIDATE_ATTR = "candidate"
MLFLOW_RUN_ATTR = "mlflow_run_id"
INTERRUPTED_ATTR = "interrupted"
#: Trial user attribute of the study's trial at :data:`.model_params.PERSISTENCE_PARAMS`.
PERSISTENCE_TRIAL_ATTR = "persistence_trial"


def candidate_order(trial: Any) -> tuple[int, int]:
    """(round, candidate index) of a trial (anything with ``user_attrs``): the order of the
    trials that no timing changes, unlike Optuna's trial number, which depends on which shard
    created its trial first."""
    return int(trial.user_attrs.get(ROUND_ATTR, 0)), int(trial.user_attrs.get(CANDIDATE_ATTR, 0))
