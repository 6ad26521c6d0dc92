"""Hyper-parameter tuning: Optuna storage and study, year-fold objective, tuning shards.

Flow (one Optuna study and one MLflow parent run per model):

1. :func:`create_study` (once per model, in ``setup_study``, before its shards).
2. :func:`run_tuning_shard` (N processes in parallel, possibly on other hosts sharing the
   storage): runs the shard's trials of the loaded study; each trial is one MLflow run nested
   under the study's parent run (:mod:`.tracking`).
3. :func:`study_results` once all shards are done.

Parallel tuning is not bit-reproducible (trials interleave through the shared storage); the
final refit from the chosen parameters is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from drg_workflow.errors import DrgWorkflowError

from . import tracking
from .baseline import baseline_predictions
from .data import fold_years, year_folds
from .metrics import mae, rmse
from .models import model_estimator
from .search_space import suggest_params
from .settings import ModelSettings
from .sqlite import sqlite_file, sqlite_init_lock

RDB_PREFIXES: tuple[str, ...] = ("sqlite:", "postgresql", "mysql")


class TuningError(DrgWorkflowError):
    """A study cannot be used (no completed trial, wrong direction)."""


# --------------------------------------------------------------------------- storage / study


def open_storage(spec: str, *, nfs_lock: bool = False) -> BaseStorage:
    """Open an Optuna storage: an RDB URL (``sqlite:``, ``postgresql...``, ``mysql...``) or
    otherwise a journal file path (``JournalStorage(JournalFileBackend(path))``).

    ``nfs_lock`` uses ``JournalFileOpenLock`` instead of the default symlink lock (for journal
    files on NFS). Parent directories are created.
    """
    if spec.startswith(RDB_PREFIXES):
        engine_kwargs: dict[str, Any] = {}
        if spec.startswith("sqlite:"):
            # Shards write concurrently; wait for the lock instead of failing at 5 s.
            engine_kwargs["connect_args"] = {"timeout": 60}
        with sqlite_init_lock(sqlite_file(spec)):
            return RDBStorage(spec, engine_kwargs=engine_kwargs)
    path = Path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileOpenLock(str(path)) if nfs_lock else None
    return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


def create_study(
    study_name: str,
    storage: str,
    *,
    replace_existing: bool,
    direction: str = "minimize",
    first_trial: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Create the study (or load it if it exists and ``replace_existing`` is false).

    ``replace_existing`` deletes a study of the same name first, so that re-running the setup
    does not mix old and new trials. ``first_trial`` (parameter values) is queued as the first
    trial of a new study: the workflow queues :data:`.target_form.PERSISTENCE_PARAMS`, so every
    study scores persistence itself and its best trial is never worse than persistence.

    Raises:
        TuningError: an existing study optimises in the other direction.
    """
    opened = open_storage(storage)
    if replace_existing:
        try:
            optuna.delete_study(study_name=study_name, storage=opened)
        except KeyError:
            pass
    study = optuna.create_study(
        storage=opened, study_name=study_name, direction=direction, load_if_exists=True
    )
    if study.direction.name.lower() != direction:
        raise TuningError(
            f"study {study_name!r} exists with direction {study.direction.name.lower()}, "
            f"not {direction}"
        )
    if first_trial is not None and not study.get_trials(deepcopy=False):
        study.enqueue_trial(dict(first_trial))
    return study


# --------------------------------------------------------------------------- objective


def merge_params(
    fixed_params: Mapping[str, Any] | None, tuned_params: Mapping[str, Any]
) -> dict[str, Any]:
    """Fixed parameters overlaid with tuned ones (the model's full parameter set)."""
    return {**dict(fixed_params or {}), **dict(tuned_params)}


@dataclass
class FoldScores:
    """RMSE and MAE in dollars of a model and of persistence on each year fold, in time
    order."""

    rmse: list[float] = field(default_factory=list)
    mae: list[float] = field(default_factory=list)
    persistence_rmse: list[float] = field(default_factory=list)
    persistence_mae: list[float] = field(default_factory=list)

    def loss_ratio(self) -> float:
        """The tuning objective: the larger of mean RMSE / persistence's mean RMSE and mean
        MAE / persistence's mean MAE over the folds so far (1 is persistence, lower is better;
        minimising it keeps both CV RMSE and CV MAE at or below persistence's)."""
        return max(
            _ratio(float(np.mean(self.rmse)), float(np.mean(self.persistence_rmse))),
            _ratio(float(np.mean(self.mae)), float(np.mean(self.persistence_mae))),
        )


def _ratio(value: float, reference: float) -> float:
    if reference > 0:
        return value / reference
    return 1.0 if value == 0 else float("inf")


FoldCallback = Callable[[int, FoldScores], None]


def cross_validate_by_year(
    model: ModelSettings,
    params: Mapping[str, Any],
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    on_fold: FoldCallback | None = None,
) -> FoldScores:
    """RMSE and MAE (in dollars, whatever the target form) of ``model`` with ``params`` and of
    persistence on each of the model's ``cv_folds`` year folds (:func:`.data.year_folds`), in
    time order. ``on_fold(fold_index, scores_so_far)`` runs after each fold and may raise (e.g.
    ``optuna.TrialPruned``) to stop early."""
    y_arr = np.asarray(y, dtype=float)
    persistence = baseline_predictions(X, model.modelling.features)
    scores = FoldScores()
    for i, (train_idx, val_idx) in enumerate(year_folds(years, model.modelling.cv_folds)):
        estimator = model_estimator(model, params)
        estimator.fit(X.iloc[train_idx], y_arr[train_idx])
        predicted = estimator.predict(X.iloc[val_idx])
        scores.rmse.append(rmse(y_arr[val_idx], predicted))
        scores.mae.append(mae(y_arr[val_idx], predicted))
        scores.persistence_rmse.append(rmse(y_arr[val_idx], persistence[val_idx]))
        scores.persistence_mae.append(mae(y_arr[val_idx], persistence[val_idx]))
        if on_fold is not None:
            on_fold(i, scores)
    return scores


@dataclass
class TrialRecord:
    """What a trial did, filled in by the objective as it goes (read even if it is pruned or
    fails, to log the trial)."""

    params: dict[str, Any] = field(default_factory=dict)
    fold_rmse: list[float] = field(default_factory=list)
    fold_mae: list[float] = field(default_factory=list)


def make_objective(
    model: ModelSettings,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    record: TrialRecord | None = None,
) -> Callable[[optuna.Trial], float]:
    """Optuna objective: the year-fold CV loss ratio against persistence
    (:meth:`FoldScores.loss_ratio`, minimise), with pruning after each fold.

    After fold ``i`` it reports the loss ratio of the folds so far at ``step=i``: every trial
    meets the same fold years in the same order, so the median pruner compares like with like,
    and the value at the last step equals the objective. ``record`` (if given) is reset and
    filled per trial; the fold RMSEs and MAEs so far are also the trial's user attributes
    ``fold_rmse`` and ``fold_mae`` (:func:`study_results` reads them).
    """

    def objective(trial: optuna.Trial) -> float:
        rec = record if record is not None else TrialRecord()
        rec.fold_rmse, rec.fold_mae = [], []
        rec.params = merge_params(model.fixed_params, suggest_params(trial, model.search_space))

        def on_fold(i: int, scores: FoldScores) -> None:
            rec.fold_rmse, rec.fold_mae = list(scores.rmse), list(scores.mae)
            trial.set_user_attr("fold_rmse", rec.fold_rmse)
            trial.set_user_attr("fold_mae", rec.fold_mae)
            trial.report(scores.loss_ratio(), step=i)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {i}")

        return cross_validate_by_year(model, rec.params, X, y, years, on_fold).loss_ratio()

    return objective


# --------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class StudyRef:
    """Where a model's study and its MLflow parent run are (from its ``setup.json``)."""

    study_name: str
    storage: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None

    @classmethod
    def from_setup(cls, setup: Mapping[str, Any]) -> StudyRef:
        return cls(**{k: setup[k] for k in cls.__dataclass_fields__})


def _load_shard_study(study: StudyRef, model: ModelSettings, seed: int) -> optuna.Study:
    """The study with this shard's seeded TPE sampler and the configured median pruner."""
    tuning = model.tuning
    return optuna.load_study(
        study_name=study.study_name,
        storage=open_storage(study.storage),
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=tuning.tpe_n_startup_trials),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=tuning.pruner_n_startup_trials,
            n_warmup_steps=tuning.pruner_n_warmup_steps,
        ),
    )


@dataclass
class _ShardLog:
    """The trials this shard ran, their MLflow runs and their errors."""

    trial_numbers: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _logged_objective(
    study: StudyRef,
    model: ModelSettings,
    objective: Callable[[optuna.Trial], float],
    record: TrialRecord,
    shard_tags: Mapping[str, str],
    shard_log: _ShardLog,
) -> Callable[[optuna.Trial], float]:
    """``objective`` that also logs each trial as an MLflow run, whatever its outcome."""
    client = tracking.tracking_client(study.tracking_uri)

    def logged(trial: optuna.Trial) -> float:
        run_id = tracking.start_trial_run(
            client, study.experiment_id, study.parent_run_id, model.name, trial.number, shard_tags
        )
        shard_log.trial_numbers.append(trial.number)
        shard_log.run_ids.append(run_id)
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("shard", int(shard_tags["shard"]))
        record.params, record.fold_rmse, record.fold_mae = {}, [], []
        state, value, error = "KILLED", None, None
        start = time.perf_counter()
        try:
            value = objective(trial)
            state = "COMPLETE"
            return value
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        except Exception as exc:
            state, error = "FAIL", f"{type(exc).__name__}: {exc}"
            shard_log.errors.append(error)
            raise
        finally:
            tracking.finish_trial_run(
                client,
                run_id,
                record.params,
                record.fold_rmse,
                record.fold_mae,
                state,
                value,
                time.perf_counter() - start,
                error,
            )

    return logged


def _shard_summary(
    trials: Sequence[FrozenTrial],
    study: StudyRef,
    model: ModelSettings,
    shard_index: int,
    seed: int,
    shard_log: _ShardLog,
) -> dict[str, Any]:
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    if not complete and not n_pruned:
        raise RuntimeError(
            f"all {len(trials)} trials of shard {shard_index} of study {study.study_name!r} "
            f"failed; first error: {shard_log.errors[0] if shard_log.errors else 'unknown'}"
        )
    best = min(complete, key=lambda t: t.value) if complete else None
    return {
        "model": model.name,
        "study_name": study.study_name,
        "shard_index": shard_index,
        "seed": seed,
        "n_trials_run": len(trials),
        "n_complete": len(complete),
        "n_pruned": int(n_pruned),
        "n_fail": sum(t.state == TrialState.FAIL for t in trials),
        "best_value_in_shard": float(best.value) if best else None,
        "best_trial_number_in_shard": best.number if best else None,
        "trial_numbers": sorted(shard_log.trial_numbers),
        "mlflow_run_ids": shard_log.run_ids,
    }


def run_tuning_shard(
    study: StudyRef,
    model: ModelSettings,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    shard_index: int,
    *,
    catch_failures: bool = True,
) -> dict[str, Any]:
    """Run ``tuning.trials_per_shard`` trials of an existing study in this process; log each as
    an MLflow run.

    The shard's TPE sampler is seeded with ``base_seed + shard_index`` (equal seeds make
    parallel workers propose the same trials); ``modelling.random_state`` seeds the estimators
    and is the same for every trial and shard, so trials differ only by their parameters.

    Each trial's MLflow run (see :func:`.tracking.start_trial_run`) is in the study's
    experiment, nested under its parent run, with tags model, shard, trial_number,
    optuna_study, optuna_state (COMPLETE/PRUNED/FAIL), sampler_seed and fold_years.

    A failing trial is recorded as FAIL and the shard goes on (``catch_failures``) unless every
    trial of the shard failed, which raises ``RuntimeError``.

    Returns a JSON-serialisable summary: model, study_name, shard_index, seed, n_trials_run,
    n_complete, n_pruned, n_fail, best_value_in_shard, best_trial_number_in_shard,
    trial_numbers, mlflow_run_ids.
    """
    seed = model.tuning.shard_seed(shard_index)
    folds_years = fold_years(years, model.modelling.cv_folds)  # fail before creating any trial
    optuna_study = _load_shard_study(study, model, seed)
    record = TrialRecord()
    shard_log = _ShardLog()
    shard_tags = {
        "shard": str(shard_index),
        "optuna_study": study.study_name,
        "sampler_seed": str(seed),
        "fold_years": ",".join(map(str, folds_years)),
    }
    objective = make_objective(model, X, y, years, record)
    optuna_study.optimize(
        _logged_objective(study, model, objective, record, shard_tags, shard_log),
        n_trials=model.tuning.trials_per_shard,
        catch=(Exception,) if catch_failures else (),
    )
    mine = set(shard_log.trial_numbers)
    trials = [t for t in optuna_study.get_trials(deepcopy=False) if t.number in mine]
    return _shard_summary(trials, study, model, shard_index, seed, shard_log)


# --------------------------------------------------------------------------- results


def study_results(
    study_name: str, storage_spec: str, trial_numbers: Sequence[int] | None = None
) -> dict[str, Any]:
    """Summary of a finished study (JSON-serialisable): n_trials, n_complete, n_pruned, n_fail,
    best_value (the CV loss ratio against persistence, :meth:`FoldScores.loss_ratio`),
    best_cv_rmse and best_cv_mae (the best trial's mean fold RMSE and MAE, dollars),
    best_params (tuned ones only), best_trial_number, best_mlflow_run_id.

    ``trial_numbers`` restricts the summary to those trials (the ones the current shard outputs
    report): a shard that crashed and was re-run leaves its interrupted trials in the study, and
    they must not count.

    Raises:
        TuningError: no trial completed.
    """
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_spec))
    trials = study.get_trials(deepcopy=False)
    if trial_numbers is not None:
        wanted = set(trial_numbers)
        trials = [t for t in trials if t.number in wanted]
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    if not counts[TrialState.COMPLETE]:
        raise TuningError(f"study {study_name!r} has no completed trial ({len(trials)} trials)")
    # Lowest value, ties to the lowest trial number (what study.best_trial does on all trials).
    best = min(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (t.value, t.number)
    )
    return {
        "study_name": study_name,
        "n_trials": len(trials),
        "n_complete": int(counts[TrialState.COMPLETE]),
        "n_pruned": int(counts[TrialState.PRUNED]),
        "n_fail": int(counts[TrialState.FAIL]),
        "n_running": int(counts[TrialState.RUNNING]),
        "best_value": float(best.value),
        "best_cv_rmse": float(np.mean(best.user_attrs["fold_rmse"])),
        "best_cv_mae": float(np.mean(best.user_attrs["fold_mae"])),
        "best_params": dict(best.params),
        "best_trial_number": best.number,
        "best_mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
    }
