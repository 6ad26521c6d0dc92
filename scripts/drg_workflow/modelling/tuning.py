"""Hyper-parameter tuning: Optuna storage and study, year-fold objective, tuning rounds and
shards.

Flow (one Optuna study and one MLflow parent run per model):

1. :func:`create_study` (once per model, in ``setup_study``, before its shards).
2. ``tuning.rounds`` rounds, one after the other; in each, ``n_shards`` runs of
   :func:`run_tuning_shard` (processes in parallel, possibly on other hosts sharing the
   storage). Every shard of a round asks the round's candidates from an in-memory study rebuilt
   from the finished trials of the earlier rounds (:func:`round_candidates`: a pure function
   of the seed, the round and those results) and evaluates its fixed slice of them; each trial
   is one MLflow run nested under the study's parent run (:mod:`.tracking`).
3. :func:`study_results` once all rounds are done: the best trial by (loss, round, candidate).

Optuna's samplers are reproducible only when trials run one after the other; parallel workers
on one storage see each other's trials as timing allows. Here nothing a trial's parameters,
its pruning or the choice of the best trial depend on is timing: the same data and settings
give the same best parameters with one core, eight or a cluster.

A shard killed at any point and started again resumes: its finished trials count, the trial
that was running is marked failed, and only the missing candidates run
(:func:`run_tuning_shard`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.profiling import phase, timed

from . import tracking
from .baseline import baseline_predictions
from .data import fold_years, year_folds
from .metrics import capped_rmse, error_cap, mae, rmse
from .model_params import PERSISTENCE_PARAMS
from .models import model_estimator
from .search_space import suggest_params
from .settings import ModelSettings
from .sqlite import sqlite_file, sqlite_init_lock
from .trial_attrs import (
    CANDIDATE_ATTR,
    INTERRUPTED_ATTR,
    MLFLOW_RUN_ATTR,
    PERSISTENCE_TRIAL_ATTR,
    ROUND_ATTR,
    SETUP_ATTR,
    SHARD_ATTR,
    candidate_order,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

RDB_PREFIXES: tuple[str, ...] = ("sqlite:", "postgresql", "mysql")


class TuningError(DrgWorkflowError):
    """A study cannot be used (no completed trial, wrong direction)."""


# --------------------------------------------------------------------------- storage / study


@timed("optuna")
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


@timed("optuna")
def create_study(
    study_name: str,
    storage: str,
    *,
    replace_existing: bool,
    direction: str = "minimize",
) -> optuna.Study:
    """Create the study (or load it if it exists and ``replace_existing`` is false).

    ``replace_existing`` deletes a study of the same name first, so that re-running the setup
    does not mix old and new trials. (The study's first trial, at
    :data:`.model_params.PERSISTENCE_PARAMS`, is shard 0's to run: see :func:`run_tuning_shard`.)

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
    order, and the RMSEs with each row's error capped (:func:`.metrics.capped_rmse`) that the
    objective compares."""

    rmse: list[float] = field(default_factory=list)
    mae: list[float] = field(default_factory=list)
    persistence_rmse: list[float] = field(default_factory=list)
    persistence_mae: list[float] = field(default_factory=list)
    capped_rmse: list[float] = field(default_factory=list)
    persistence_capped_rmse: list[float] = field(default_factory=list)

    def loss_ratio(self) -> float:
        """The tuning objective: the larger of mean capped RMSE / persistence's mean capped RMSE
        and mean MAE / persistence's mean MAE over the folds so far (1 is persistence, lower
        is better; minimising it keeps both at or below persistence's).

        The RMSE is capped (``modelling.tuning.error_cap_quantile``) because over a few year
        folds one series' jump can make most of the squared error: the uncapped ratio then
        chooses the parameters that were right about that series, usually the most cautious
        bound on the change, and gives up skill on every other series (measured in
        docs/models-and-tuning.md)."""
        return max(
            _ratio(float(np.mean(self.capped_rmse)), float(np.mean(self.persistence_capped_rmse))),
            _ratio(float(np.mean(self.mae)), float(np.mean(self.persistence_mae))),
        )


def _ratio(value: float, reference: float) -> float:
    if reference > 0:
        return value / reference
    return 1.0 if value == 0 else float("inf")


FoldCallback = Callable[[int, FoldScores], None]


@dataclass(frozen=True)
class YearFold:
    """One year fold: its train and validation rows, and persistence's scores on the validation
    rows (the same for every trial)."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    #: The largest absolute error a row counts with in the capped RMSE: the
    #: ``error_cap_quantile`` of persistence's absolute errors on the validation rows.
    error_cap: float
    persistence_rmse: float
    persistence_mae: float
    persistence_capped_rmse: float


@dataclass(frozen=True)
class YearFolds:
    """The rows of every year fold, sliced once, and persistence's scores on them, computed
    once: a shard's trials all fit the same folds, so they share these instead of copying the
    rows out of the whole frame and scoring persistence again in every trial."""

    folds: tuple[YearFold, ...]

    @classmethod
    def of(
        cls,
        model: ModelSettings,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray,
        years: np.ndarray | pd.Series,
    ) -> YearFolds:
        """The model's ``cv_folds`` year folds of ``X``, ``y`` and ``years``
        (:func:`.data.year_folds`), in time order."""
        y_arr = np.asarray(y, dtype=float)
        persistence = baseline_predictions(X, model.modelling.features)
        folds = []
        for train_idx, val_idx in year_folds(years, model.modelling.cv_folds):
            y_val, predicted = y_arr[val_idx], persistence[val_idx]
            cap = error_cap(y_val, predicted, model.tuning.error_cap_quantile)
            folds.append(
                YearFold(
                    X_train=X.iloc[train_idx],
                    y_train=y_arr[train_idx],
                    X_val=X.iloc[val_idx],
                    y_val=y_val,
                    error_cap=cap,
                    persistence_rmse=rmse(y_val, predicted),
                    persistence_mae=mae(y_val, predicted),
                    persistence_capped_rmse=capped_rmse(y_val, predicted, cap),
                )
            )
        return cls(tuple(folds))


def cross_validate_by_year(
    model: ModelSettings,
    params: Mapping[str, Any],
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    on_fold: FoldCallback | None = None,
    folds: YearFolds | None = None,
) -> FoldScores:
    """RMSE and MAE (in dollars, whatever the target form) of ``model`` with ``params`` and of
    persistence on each of the model's ``cv_folds`` year folds (:func:`.data.year_folds`), in
    time order. ``on_fold(fold_index, scores_so_far)`` runs after each fold and may raise (e.g.
    ``optuna.TrialPruned``) to stop early. ``folds``: the folds of ``X``, ``y`` and ``years``
    already sliced (:class:`YearFolds`), as a shard's trials share them."""
    folds = folds or YearFolds.of(model, X, y, years)
    scores = FoldScores()
    for i, fold in enumerate(folds.folds):
        estimator = model_estimator(model, params)
        estimator.fit(fold.X_train, fold.y_train)
        predicted = estimator.predict(fold.X_val)
        scores.rmse.append(rmse(fold.y_val, predicted))
        scores.mae.append(mae(fold.y_val, predicted))
        scores.capped_rmse.append(capped_rmse(fold.y_val, predicted, fold.error_cap))
        scores.persistence_rmse.append(fold.persistence_rmse)
        scores.persistence_mae.append(fold.persistence_mae)
        scores.persistence_capped_rmse.append(fold.persistence_capped_rmse)
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


@dataclass(frozen=True)
class RoundPruner:
    """Stops a trial whose running loss ratio is worse than persistence's (1) and than the
    median of the earlier rounds' complete trials at the same fold.

    Judged only from the ``n_warmup_steps``-th fold on (at least 1: never on the first fold
    alone, where bold trials look better than they end), and only against trials of earlier
    rounds, never against trials running beside it: the decision depends on the results the
    round starts from, not on timing. A cautious trial, at or better than persistence, is never
    stopped: the median alone would stop it for not being bold.
    """

    #: The median running loss ratio of the earlier rounds' complete trials, per fold index.
    medians: Mapping[int, float]
    n_warmup_steps: int

    @classmethod
    def from_trials(
        cls, earlier: Sequence[FrozenTrial], n_startup_trials: int, n_warmup_steps: int
    ) -> RoundPruner:
        """From the finished trials of the earlier rounds; no pruning before
        ``n_startup_trials`` of them are complete."""
        complete = [t for t in earlier if t.state == TrialState.COMPLETE]
        if len(complete) < max(1, n_startup_trials):
            return cls({}, max(1, n_warmup_steps))
        by_step: dict[int, list[float]] = {}
        for trial in complete:
            for step, value in trial.intermediate_values.items():
                by_step.setdefault(step, []).append(value)
        medians = {step: float(np.median(values)) for step, values in sorted(by_step.items())}
        return cls(medians, max(1, n_warmup_steps))

    def should_prune(self, step: int, value: float) -> bool:
        """Whether a trial whose running loss ratio after fold ``step`` is ``value`` stops."""
        if step < self.n_warmup_steps or step not in self.medians:
            return False
        return value > max(1.0, self.medians[step])


#: A pruner that stops nothing (a round with no earlier results, or a study run outside rounds).
NO_PRUNING = RoundPruner({}, 1)


def make_objective(
    model: ModelSettings,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    record: TrialRecord | None = None,
    pruner: RoundPruner = NO_PRUNING,
) -> Callable[[optuna.Trial], float]:
    """Optuna objective: the year-fold CV loss ratio against persistence
    (:meth:`FoldScores.loss_ratio`, minimise), with pruning after each fold by ``pruner``.

    After fold ``i`` it reports the loss ratio of the folds so far at ``step=i``: every trial
    meets the same fold years in the same order, so the pruner compares like with like, and the
    value at the last step equals the objective. ``record`` (if given) is reset and filled per
    trial; the fold RMSEs and MAEs so far are also the trial's user attributes ``fold_rmse``
    and ``fold_mae`` (:func:`study_results` reads them).
    """

    folds = YearFolds.of(model, X, y, years)

    def objective(trial: optuna.Trial) -> float:
        rec = record if record is not None else TrialRecord()
        rec.fold_rmse, rec.fold_mae = [], []
        rec.params = merge_params(model.fixed_params, suggest_params(trial, model.search_space))

        def on_fold(i: int, scores: FoldScores) -> None:
            rec.fold_rmse, rec.fold_mae = list(scores.rmse), list(scores.mae)
            with phase("optuna"):
                trial.set_user_attr("fold_rmse", rec.fold_rmse)
                trial.set_user_attr("fold_mae", rec.fold_mae)
                trial.report(scores.loss_ratio(), step=i)
            if pruner.should_prune(i, scores.loss_ratio()):
                raise optuna.TrialPruned(f"pruned after fold {i}")

        return cross_validate_by_year(model, rec.params, X, y, years, on_fold, folds).loss_ratio()

    return objective


# --------------------------------------------------------------------------- shards


class ShardInterrupted(BaseException):
    """The shard's process got SIGTERM (``scancel``, a SLURM time limit, Snakemake stopping).

    A ``BaseException`` like ``KeyboardInterrupt``: an objective catching ``Exception`` does not
    swallow it."""


def resolve_storage(storage: str | None, storage_env: str | None) -> str:
    """The Optuna storage to open: the URL in the environment variable ``storage_env`` if one
    is named (``modelling.tuning.storage_env``: it may carry a password, so it is read here, in
    the job, and never written anywhere), else ``storage``.

    Raises:
        TuningError: the variable is not set in this process's environment.
    """
    if not storage_env:
        if not storage:
            raise TuningError("no Optuna storage: modelling.tuning.storage is empty")
        return storage
    value = os.environ.get(storage_env)
    if not value:
        raise TuningError(
            f"config key modelling.tuning.storage_env names the environment variable "
            f"{storage_env}, which is not set here: export it (the Optuna storage URL) where "
            "Snakemake runs; its jobs, on a cluster too, inherit it"
        )
    return value


def storage_label(storage: str | None, storage_env: str | None) -> str:
    """How a storage is named in files and MLflow tags: ``$VARIABLE`` for one from the
    environment (its value is never written), else the configured path or URL."""
    return f"${storage_env}" if storage_env else str(storage)


@dataclass(frozen=True)
class StudyRef:
    """Where a model's study and its MLflow parent run are (from its ``setup.json``)."""

    study_name: str
    storage: str | None
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    storage_env: str | None = None

    @classmethod
    def from_setup(cls, setup: Mapping[str, Any]) -> StudyRef:
        return cls(**{k: setup[k] for k in cls.__dataclass_fields__ if k in setup})

    def open_storage(self) -> BaseStorage:
        """The study's storage, opened (its URL from the environment if so configured)."""
        return open_storage(resolve_storage(self.storage, self.storage_env))


def _trial_attrs(trial: FrozenTrial) -> tuple[Any, Any, Any]:
    attrs = trial.user_attrs
    return attrs.get(SHARD_ATTR), attrs.get(ROUND_ATTR, 0), attrs.get(SETUP_ATTR)


def shard_trials(
    trials: Sequence[FrozenTrial], study: StudyRef, shard_index: int, round_index: int = 0
) -> list[FrozenTrial]:
    """The trials a shard created in one round for this setup of the study (every attempt of
    it)."""
    mine = (shard_index, round_index, study.parent_run_id or "")
    return [t for t in trials if _trial_attrs(t) == mine]


def setup_trials(trials: Sequence[FrozenTrial], study: StudyRef) -> list[FrozenTrial]:
    """The trials of this setup of the study (user attribute ``setup``)."""
    return [t for t in trials if t.user_attrs.get(SETUP_ATTR, "") == (study.parent_run_id or "")]


def is_interrupted(trial: FrozenTrial) -> bool:
    """A trial whose process was killed while it ran (marked FAIL when that was found)."""
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(INTERRUPTED_ATTR))


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """A trial that ran to its end: complete, pruned, or failed by its own error (a killed
    one does not count, and its shard runs another in its place)."""
    return trial.state.is_finished() and not is_interrupted(trial)


@timed("optuna")
def end_interrupted_trials(
    storage: BaseStorage,
    study: StudyRef,
    model_name: str,
    shard_tags: Mapping[str, str],
    client: MlflowClient,
) -> list[int]:
    """Close what a killed run of this shard left open; return the trial numbers marked.

    The shard is the only process for its index, so at its start any of its trials still
    RUNNING belongs to a process that is gone: it is marked FAIL with ``interrupted`` (so it
    does not count toward the budget), and its MLflow run is ended KILLED. A trial run still
    RUNNING in MLflow under the study's parent run with this shard's tags (killed before the
    trial recorded its run id) is ended KILLED as well. A trial killed between its creation and
    its run's gets a KILLED run made now (with the shard's ``shard_tags``, see
    :func:`run_tuning_shard`): every trial of the study has exactly one run, whatever moment
    the kill chose.
    """
    shard_index, round_index = int(shard_tags["shard"]), int(shard_tags["round"])
    study_id = storage.get_study_id_from_name(study.study_name)
    running = [
        t
        for t in shard_trials(
            storage.get_all_trials(study_id, deepcopy=False), study, shard_index, round_index
        )
        if t.state == TrialState.RUNNING
    ]
    open_runs = tracking.running_trial_runs(
        client, study.experiment_id, study.parent_run_id, shard_index, round_index
    )
    run_ids: set[str] = set(open_runs)
    with_a_run = set(open_runs.values())
    for trial in running:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        if trial.user_attrs.get(MLFLOW_RUN_ATTR):
            run_ids.add(trial.user_attrs[MLFLOW_RUN_ATTR])
        elif trial.number not in with_a_run:
            tags = {**shard_tags, "candidate": str(trial.user_attrs[CANDIDATE_ATTR])}
            run_ids.add(
                tracking.start_trial_run(
                    client,
                    study.experiment_id,
                    study.parent_run_id,
                    model_name,
                    trial.number,
                    tags,
                )
            )
    for run_id in sorted(run_ids):
        tracking.end_interrupted_trial_run(client, run_id)
    return sorted(t.number for t in running)


@timed("optuna")
def round_candidates(
    model: ModelSettings, round_index: int, earlier: Sequence[FrozenTrial]
) -> list[dict[str, Any]]:
    """The parameters of every candidate of round ``round_index``, in index order: asked from
    an in-memory study holding the ``earlier`` rounds' finished trials in (round, candidate)
    order, by a TPE sampler seeded with ``base_seed + round`` (constant liar, so the candidates
    of one round spread out instead of piling on one point).

    A pure function of the seed, the round and the earlier results: every shard of the round
    computes the same list, and evaluates its own slice of it
    (:meth:`.settings.TuningSettings.shard_candidates`). Round 0's first candidate is at
    :data:`.model_params.PERSISTENCE_PARAMS` (the region of every search space that predicts
    persistence), so every study scores persistence itself and its best trial is never worse.
    """
    tuning = model.tuning
    sampler = optuna.samplers.TPESampler(
        seed=tuning.round_seed(round_index),
        n_startup_trials=tuning.tpe_n_startup_trials,
        constant_liar=True,
    )
    in_memory = optuna.create_study(direction="minimize", sampler=sampler)
    for trial in sorted(earlier, key=candidate_order):
        in_memory.add_trial(
            optuna.trial.create_trial(
                state=trial.state,
                value=trial.value if trial.state == TrialState.COMPLETE else None,
                params=trial.params,
                distributions=trial.distributions,
                intermediate_values=trial.intermediate_values,
            )
        )
    if round_index == 0:
        in_memory.enqueue_trial(PERSISTENCE_PARAMS)
    candidates = []
    for _ in range(tuning.n_shards * tuning.trials_per_round(round_index)):
        candidates.append(suggest_params(in_memory.ask(), model.search_space))
    return candidates


def earlier_round_trials(
    trials: Sequence[FrozenTrial], study: StudyRef, model: ModelSettings, round_index: int
) -> list[FrozenTrial]:
    """This setup's finished trials of the rounds before ``round_index``, in (round, candidate)
    order: what the round's candidates and pruning are computed from.

    Raises:
        TuningError: they are not exactly one finished trial per candidate of those rounds
            (a round not done, or another process tuning the same study).
    """
    finished = sorted(
        (
            t
            for t in setup_trials(trials, study)
            if counts_toward_budget(t) and int(t.user_attrs.get(ROUND_ATTR, 0)) < round_index
        ),
        key=candidate_order,
    )
    tuning = model.tuning
    expected = [
        (r, i)
        for r in range(round_index)
        for i in range(tuning.n_shards * tuning.trials_per_round(r))
    ]
    found = [candidate_order(t) for t in finished]
    if found != expected:
        raise TuningError(
            f"study {study.study_name!r}: round {round_index} needs one finished trial per "
            f"candidate of the rounds before it ({len(expected)}); the study holds "
            f"{len(found)} ({sorted(set(expected) - set(found))[:5]} missing): run the earlier "
            "rounds' shards first, and tune each study from one workflow run only"
        )
    return finished


def _load_shard_study(study: StudyRef, storage: BaseStorage) -> optuna.Study:
    """The stored study, to create and tell the shard's trials. Every trial's parameters are
    fixed when it is created (its round's candidate) and its pruning is decided by a
    :class:`RoundPruner`, so the stored study's own sampler and pruner decide nothing."""
    return optuna.load_study(
        study_name=study.study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
    )


@timed("optuna")
def _new_shard_trial(
    optuna_study: optuna.Study,
    storage: BaseStorage,
    attrs: Mapping[str, Any],
    fixed_params: Mapping[str, Any] | None = None,
) -> optuna.Trial:
    """A new RUNNING trial that carries its shard and setup (and ``fixed_params``, the values
    its ``suggest_*`` calls return for those names) from its first write.

    What ``Study.ask`` (and ``Study.enqueue_trial``) do, except that the trial is created from a
    template holding the user attributes: created and tagged in one storage write, a killed
    shard can never leave a running trial that no shard owns.
    """
    # "fixed_params" is the system attribute Optuna's enqueue_trial writes and Trial reads.
    system_attrs = {"fixed_params": dict(fixed_params)} if fixed_params else {}
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING, user_attrs=dict(attrs), system_attrs=system_attrs
    )
    study_id = storage.get_study_id_from_name(optuna_study.study_name)
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    # An RDB study reads its storage through a cache of its own, which knows a trial made
    # behind its back only once it has read the trials again (a sampler that looks at the
    # study's trials does so before every suggestion; the shard's fixed candidates do not).
    optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return optuna.Trial(optuna_study, trial_id)


@dataclass
class _ShardLog:
    """The errors of the trials this attempt of the shard ran."""

    trial_numbers: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _run_trial(
    optuna_study: optuna.Study,
    storage: BaseStorage,
    client: MlflowClient,
    study: StudyRef,
    model: ModelSettings,
    objective: Callable[[optuna.Trial], float],
    record: TrialRecord,
    shard_tags: Mapping[str, str],
    shard_log: _ShardLog,
    catch_failures: bool,
    candidate: tuple[int, Mapping[str, Any]],
) -> None:
    """Run one trial: create it (tagged with its shard, round and candidate index, at the
    candidate's parameters), log it as an MLflow run whatever its outcome, end the run, then
    tell Optuna. A SIGTERM mid-trial ends both as interrupted and re-raises. Round 0's
    candidate 0 is the study's persistence trial."""
    index, params = candidate
    round_index = int(shard_tags["round"])
    attrs: dict[str, Any] = {
        SHARD_ATTR: int(shard_tags["shard"]),
        ROUND_ATTR: round_index,
        CANDIDATE_ATTR: index,
        SETUP_ATTR: study.parent_run_id or "",
    }
    if round_index == 0 and index == 0:
        attrs[PERSISTENCE_TRIAL_ATTR] = True
    trial = _new_shard_trial(optuna_study, storage, attrs, params)
    shard_log.trial_numbers.append(trial.number)
    run_id = tracking.start_trial_run(
        client, study.experiment_id, study.parent_run_id, model.name, trial.number, shard_tags
    )
    with phase("optuna"):
        trial.set_user_attr(MLFLOW_RUN_ATTR, run_id)
    record.params, record.fold_rmse, record.fold_mae = {}, [], []
    value, error, failure = None, None, None
    start = time.perf_counter()
    try:
        try:
            value = objective(trial)
            state = TrialState.COMPLETE
        except Exception as exc:
            if _sigterm.received:  # a library replaced the interrupt with its own error
                raise ShardInterrupted("SIGTERM") from exc
            raise
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except (ShardInterrupted, KeyboardInterrupt):
        trial.set_user_attr(INTERRUPTED_ATTR, True)
        trial.set_user_attr("fold_rmse", list(record.fold_rmse))
        trial.set_user_attr("fold_mae", list(record.fold_mae))
        tracking.end_interrupted_trial_run(client, run_id)
        optuna_study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:
        state, error = TrialState.FAIL, f"{type(exc).__name__}: {exc}"
        shard_log.errors.append(error)
        # Recorded like any failed trial first; raised after (the shard stops).
        failure = None if catch_failures else exc
    # The MLflow run ends first: killed between the two, the trial is still RUNNING and the
    # next start of the shard marks both as interrupted (end_interrupted_trials).
    with phase("optuna"):
        trial.set_user_attr("fold_rmse", list(record.fold_rmse))
        trial.set_user_attr("fold_mae", list(record.fold_mae))
    tracking.finish_trial_run(
        client,
        run_id,
        record.params,
        record.fold_rmse,
        record.fold_mae,
        state.name,
        value,
        time.perf_counter() - start,
        error,
    )
    with phase("optuna"):
        optuna_study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    if failure is not None:
        raise failure
    if _sigterm.received:  # the interrupt was swallowed inside the trial: stop the shard
        raise ShardInterrupted("SIGTERM")


class _SigtermState:
    """Whether the running shard got SIGTERM. The handler's exception can be replaced on its
    way up: Optuna's journal lock, interrupted right after it released, unlinks its file again
    in an ``except BaseException`` and raises ``FileNotFoundError`` instead (seen in the suite:
    the trial was recorded as an ordinary failure and the shard went on). The flag keeps the
    signal whatever the libraries did with its exception."""

    received: bool = False


_sigterm = _SigtermState()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into :class:`ShardInterrupted` while the shard runs (main thread only),
    and remember it in ``_sigterm.received``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        _sigterm.received = True
        raise ShardInterrupted(f"signal {signum}")

    _sigterm.received = False
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _shard_summary(
    trials: Sequence[FrozenTrial],
    study: StudyRef,
    model: ModelSettings,
    shard_index: int,
    round_index: int,
    shard_log: _ShardLog,
    resumed: int,
) -> dict[str, Any]:
    budget = [t for t in trials if counts_toward_budget(t)]
    complete = [t for t in budget if t.state == TrialState.COMPLETE]
    n_pruned = sum(t.state == TrialState.PRUNED for t in budget)
    if not complete and not n_pruned:
        raise RuntimeError(
            f"all {len(budget)} trials of shard {shard_index} of round {round_index} of study "
            f"{study.study_name!r} failed; first error: "
            f"{shard_log.errors[0] if shard_log.errors else 'unknown'}"
        )
    best = min(complete, key=lambda t: (t.value, candidate_order(t))) if complete else None
    return {
        "model": model.name,
        "study_name": study.study_name,
        "round": round_index,
        "shard_index": shard_index,
        "sampler_seed": model.tuning.round_seed(round_index),
        "candidates": list(model.tuning.shard_candidates(round_index, shard_index)),
        "n_trials_run": len(shard_log.trial_numbers),
        "n_trials_resumed": resumed,
        "n_complete": len(complete),
        "n_pruned": int(n_pruned),
        "n_fail": sum(t.state == TrialState.FAIL for t in budget),
        "best_value_in_shard": float(best.value) if best else None,
        "best_candidate_in_shard": best.user_attrs.get(CANDIDATE_ATTR) if best else None,
        "trial_numbers": sorted(t.number for t in budget),
        "interrupted_trial_numbers": sorted(t.number for t in trials if is_interrupted(t)),
        "mlflow_run_ids": [t.user_attrs.get(MLFLOW_RUN_ATTR) for t in budget],
    }


def run_tuning_shard(
    study: StudyRef,
    model: ModelSettings,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    shard_index: int,
    *,
    round_index: int = 0,
    catch_failures: bool = True,
) -> dict[str, Any]:
    """Evaluate the shard's slice of its round's candidates as trials of an existing study;
    log each as an MLflow run.

    The round's candidates are :func:`round_candidates` of the earlier rounds' finished trials
    (:func:`earlier_round_trials`), the shard's slice is
    :meth:`.settings.TuningSettings.shard_candidates`, and the pruning is a
    :class:`RoundPruner` of the same earlier trials: nothing depends on which shard runs when.

    Resume, don't repeat: the shard's trials carry its index, round, candidate and the setup
    (user attributes) from the write that creates them. A trial that ran to its end, in this
    process or in an earlier one that was killed, counts; one left RUNNING by a killed process
    is marked FAIL (``interrupted``) with its MLflow run ended KILLED
    (:func:`end_interrupted_trials`), and only the missing candidates run. SIGTERM
    (``scancel``, a time limit) ends the running trial the same way before the process exits.

    Each trial's MLflow run (see :func:`.tracking.start_trial_run`) is in the study's
    experiment, nested under its parent run, with tags model, shard, round, candidate,
    trial_number, optuna_study, optuna_state (COMPLETE/PRUNED/FAIL), sampler_seed and
    fold_years. ``modelling.random_state`` seeds the estimators, the same for every trial.

    A failing trial is recorded as FAIL, counts, and the shard goes on (``catch_failures``)
    unless every trial of the shard failed, which raises ``RuntimeError``.

    Returns a JSON-serialisable summary: model, study_name, round, shard_index, sampler_seed,
    candidates (the slice's indices), n_trials_run (by this process), n_trials_resumed
    (finished before it started), n_complete, n_pruned, n_fail, best_value_in_shard,
    best_candidate_in_shard, trial_numbers (every trial of the shard's budget),
    interrupted_trial_numbers, mlflow_run_ids.
    """
    tuning = model.tuning
    folds_years = fold_years(years, model.modelling.cv_folds)  # fail before creating any trial
    storage = study.open_storage()
    client = tracking.tracking_client(study.tracking_uri)
    record = TrialRecord()
    shard_log = _ShardLog()
    shard_tags = {
        "shard": str(shard_index),
        "round": str(round_index),
        "optuna_study": study.study_name,
        "sampler_seed": str(tuning.round_seed(round_index)),
        "fold_years": ",".join(map(str, folds_years)),
    }
    with _sigterm_interrupts():
        end_interrupted_trials(storage, study, model.name, shard_tags, client)
        study_id = storage.get_study_id_from_name(study.study_name)
        stored = storage.get_all_trials(study_id)
        earlier = earlier_round_trials(stored, study, model, round_index)
        candidates = round_candidates(model, round_index, earlier)
        pruner = RoundPruner.from_trials(
            earlier, tuning.pruner_n_startup_trials, tuning.pruner_n_warmup_steps
        )
        objective = make_objective(model, X, y, years, record, pruner)
        mine = shard_trials(stored, study, shard_index, round_index)
        done = {int(t.user_attrs[CANDIDATE_ATTR]) for t in mine if counts_toward_budget(t)}
        optuna_study = _load_shard_study(study, storage)
        for index in tuning.shard_candidates(round_index, shard_index):
            if index in done:
                continue
            _run_trial(
                optuna_study,
                storage,
                client,
                study,
                model,
                objective,
                record,
                {**shard_tags, "candidate": str(index)},
                shard_log,
                catch_failures,
                (index, candidates[index]),
            )
    trials = shard_trials(optuna_study.get_trials(deepcopy=False), study, shard_index, round_index)
    return _shard_summary(trials, study, model, shard_index, round_index, shard_log, len(done))


# --------------------------------------------------------------------------- results


@timed("optuna")
def study_results(study: StudyRef) -> dict[str, Any]:
    """Summary of a finished study's trials of this setup (JSON-serialisable): n_trials (the
    trials of the budget: complete, pruned or failed by their own error), n_complete,
    n_pruned, n_fail, n_interrupted (killed while running, redone by their shard), n_running,
    best_value (mean CV RMSE), best_params (tuned ones only), best_trial_number,
    best_mlflow_run_id.

    Only trials of this setup count (user attribute ``setup``): with
    ``replace_existing_study: false`` the study also holds an earlier setup's trials.

    Raises:
        TuningError: no trial completed.
    """
    optuna_study = optuna.load_study(study_name=study.study_name, storage=study.open_storage())
    trials = setup_trials(optuna_study.get_trials(deepcopy=False), study)
    budget = [t for t in trials if counts_toward_budget(t)]
    counts = {s: sum(t.state == s for t in budget) for s in TrialState}
    if not counts[TrialState.COMPLETE]:
        raise TuningError(
            f"study {study.study_name!r} has no completed trial ({len(trials)} trials)"
        )
    # Lowest value, ties to the earliest candidate: (round, index), never the trial number,
    # which depends on which shard created its trial first.
    best = min(
        (t for t in budget if t.state == TrialState.COMPLETE),
        key=lambda t: (t.value, candidate_order(t)),
    )
    return {
        "study_name": study.study_name,
        "n_trials": len(budget),
        "n_complete": int(counts[TrialState.COMPLETE]),
        "n_pruned": int(counts[TrialState.PRUNED]),
        "n_fail": int(counts[TrialState.FAIL]),
        "n_interrupted": sum(is_interrupted(t) for t in trials),
        "n_running": sum(t.state == TrialState.RUNNING for t in trials),
        "best_value": float(best.value),
        "best_cv_rmse": float(np.mean(best.user_attrs["fold_rmse"])),
        "best_cv_mae": float(np.mean(best.user_attrs["fold_mae"])),
        "best_params": dict(best.params),
        "best_trial_number": best.number,
        "best_round": candidate_order(best)[0],
        "best_candidate": candidate_order(best)[1],
        "best_is_persistence": bool(best.user_attrs.get(PERSISTENCE_TRIAL_ATTR, False)),
        "best_mlflow_run_id": best.user_attrs.get(MLFLOW_RUN_ATTR),
    }
