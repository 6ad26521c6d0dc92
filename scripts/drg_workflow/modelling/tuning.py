"""Hyper-parameter tuning: Optuna storage, study/experiment setup, year-fold objective, shards.

Flow (one Optuna study and one MLflow parent run per model):

1. :func:`create_study_and_experiment` (once per model, before its shards): creates the study
   in its storage, the MLflow experiment (or gets it) and the model's parent run; its dict goes
   to a small JSON for the shard rules.
2. :func:`run_tuning_shard` (N processes in parallel, possibly on other hosts sharing the
   storage): runs ``n_trials`` trials of the loaded study; each trial is one MLflow run nested
   under the parent run.
3. :func:`study_results` + :func:`close_parent_run` once all shards are done.

Parallel tuning is not bit-reproducible (trials interleave through the shared storage); the
final refit from the chosen parameters is.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from .data import fold_years, year_folds
from .metrics import rmse
from .models import build_model
from .search_space import suggest_params, validate_fixed_params, validate_search_space

if TYPE_CHECKING:  # mlflow takes 1-2 s to import: only where it is used
    from mlflow import MlflowClient

_log = logging.getLogger(__name__)

RDB_PREFIXES: tuple[str, ...] = ("sqlite:", "postgresql", "mysql")
TRIAL_STAGE = "trial"
TUNING_STAGE = "tuning"
FoldCallback = Callable[[int, float, list[float]], None]


# --------------------------------------------------------------------------- storage / setup


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (``None`` for in-memory / non-sqlite)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def _sqlite_init_lock(db_file: Path | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<db>.init.lock`` while a sqlite store is opened.

    Opening a fresh sqlite DB creates its tables; two processes doing it at once corrupt the
    schema migration (measured: "duplicate column name", alembic "expected to match one row").
    Serialising the open makes parallel setup / shard rules on one host safe; the first opener
    pays the table creation (~2 s), later ones only wait for it.
    """
    if db_file is None:
        yield
        return
    import fcntl

    db_file.parent.mkdir(parents=True, exist_ok=True)
    with open(db_file.with_name(db_file.name + ".init.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_storage(spec: str, *, nfs_lock: bool = False) -> BaseStorage:
    """Open an Optuna storage: an RDB URL (``sqlite:``, ``postgresql...``, ``mysql...``) or
    otherwise a journal file path (``JournalStorage(JournalFileBackend(path))``).

    ``nfs_lock`` uses ``JournalFileOpenLock`` instead of the default symlink lock (for journal
    files on NFS). Parent directories are created.
    """
    if spec.startswith(RDB_PREFIXES):
        engine_kwargs: dict[str, Any] = {}
        db_file = _sqlite_file(spec)
        if spec.startswith("sqlite:"):
            # Shards write concurrently; wait for the lock instead of failing at 5 s.
            engine_kwargs["connect_args"] = {"timeout": 60}
        with _sqlite_init_lock(db_file):
            return RDBStorage(spec, engine_kwargs=engine_kwargs)
    path = Path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileOpenLock(str(path)) if nfs_lock else None
    return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


def tracking_client(tracking_uri: str) -> MlflowClient:
    """An ``MlflowClient`` whose store is already opened (tables created for a fresh sqlite DB,
    under :func:`_sqlite_init_lock`), so any later use in this process is race-free."""
    from mlflow import MlflowClient

    with _sqlite_init_lock(_sqlite_file(tracking_uri)):
        # The constructor may already open the store; make sure it did before unlocking.
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)
    return client


def _absolute_artifact_location(location: str) -> str:
    # A relative path would be resolved against whichever cwd later reads/writes artifacts
    # (rules, `mlflow ui`); MLflow itself stores absolute locations by default.
    if "://" in location or location.startswith("file:"):
        return location
    return str(Path(location).resolve())


def ensure_experiment(tracking_uri: str, experiment_name: str, artifact_location: str) -> str:
    """Get or create the MLflow experiment (restoring it if deleted); return its id.

    Safe against a concurrent creator of the same name, and against concurrent creation of a
    fresh local sqlite store (see :func:`tracking_client`). A remote / shared RDB store must
    still be created once before parallel use (e.g. ``mlflow db upgrade``).
    """
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import MlflowException

    client = tracking_client(tracking_uri)
    wanted = _absolute_artifact_location(artifact_location)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        try:
            return client.create_experiment(experiment_name, artifact_location=wanted)
        except MlflowException as exc:
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(experiment_name)
            if exp is None:
                raise
    if exp.lifecycle_stage == LifecycleStage.DELETED:
        client.restore_experiment(exp.experiment_id)
    if exp.artifact_location.removeprefix("file://") != wanted:
        _log.warning(
            "MLflow experiment %r exists with artifact_location %s (config asks for %s); "
            "keeping the existing one",
            experiment_name,
            exp.artifact_location,
            wanted,
        )
    return exp.experiment_id


def create_study_and_experiment(
    study_name: str,
    storage_url_or_journal_path: str,
    tracking_uri: str,
    experiment_name: str,
    artifact_location: str,
    direction: str = "minimize",
    *,
    model: str | None = None,
    replace_existing_study: bool = False,
    parent_tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create the Optuna study, the MLflow experiment and the study's MLflow parent run.

    Run once per model before its shards. Setups of several models may run in parallel on one
    host: local sqlite stores (MLflow, Optuna RDB) are first opened under a file lock, and the
    experiment is created race-free; the shards then get explicit ids (``mlflow.set_experiment``
    races can misplace runs into *Default*).

    ``replace_existing_study`` deletes a study of the same name first, so that re-running the
    setup (e.g. after a search-space change) does not mix old and new trials; otherwise an
    existing study is loaded and new trials add to it.

    Returns a JSON-serialisable dict: study_name, storage, direction, tracking_uri,
    experiment_name, experiment_id, artifact_location, parent_run_id, model.
    """
    storage = open_storage(storage_url_or_journal_path)
    if replace_existing_study:
        try:
            optuna.delete_study(study_name=study_name, storage=storage)
        except KeyError:
            pass
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction, load_if_exists=True
    )
    if study.direction.name.lower() != direction:
        raise ValueError(
            f"study {study_name!r} exists with direction {study.direction.name.lower()}, "
            f"not {direction}"
        )

    experiment_id = ensure_experiment(tracking_uri, experiment_name, artifact_location)
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    client = tracking_client(tracking_uri)
    run_name = f"{model or study_name}-tuning"
    tags = {
        MLFLOW_RUN_NAME: run_name,
        "stage": TUNING_STAGE,
        "optuna_study": study_name,
        "optuna_storage": storage_url_or_journal_path,
        **({"model": model} if model else {}),
        **dict(parent_tags or {}),
    }
    parent = client.create_run(experiment_id, tags=tags, run_name=run_name)
    # Also on the study, so a shard or a later inspection can find the MLflow side.
    study.set_user_attr("mlflow_experiment_id", experiment_id)
    study.set_user_attr("mlflow_parent_run_id", parent.info.run_id)
    return {
        "study_name": study_name,
        "storage": storage_url_or_journal_path,
        "direction": direction,
        "tracking_uri": tracking_uri,
        "experiment_name": experiment_name,
        "experiment_id": experiment_id,
        "artifact_location": client.get_experiment(experiment_id).artifact_location,
        "parent_run_id": parent.info.run_id,
        "model": model,
    }


# --------------------------------------------------------------------------- objective


def merge_params(
    fixed_params: Mapping[str, Any] | None, tuned_params: Mapping[str, Any]
) -> dict[str, Any]:
    """Fixed parameters overlaid with tuned ones (the model's full parameter set)."""
    return {**dict(fixed_params or {}), **dict(tuned_params)}


def cross_validate_by_year(
    model: str,
    params: Mapping[str, Any],
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    n_folds: int,
    random_state: int,
    on_fold: FoldCallback | None = None,
) -> list[float]:
    """RMSE of ``model`` with ``params`` on each year fold (:func:`.data.year_folds`), in time
    order. ``on_fold(fold_index, rmse, scores_so_far)`` runs after each fold and may raise
    (e.g. ``optuna.TrialPruned``) to stop early."""
    y_arr = np.asarray(y, dtype=float)
    scores: list[float] = []
    for i, (train_idx, val_idx) in enumerate(year_folds(years, n_folds)):
        estimator = build_model(model, params, random_state)
        estimator.fit(X.iloc[train_idx], y_arr[train_idx])
        scores.append(rmse(y_arr[val_idx], estimator.predict(X.iloc[val_idx])))
        if on_fold is not None:
            on_fold(i, scores[-1], list(scores))
    return scores


def make_objective(
    model: str,
    space: Mapping[str, Mapping[str, Any]],
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    n_folds: int,
    random_state: int,
    fixed_params: Mapping[str, Any] | None = None,
    record: dict[str, Any] | None = None,
) -> Callable[[optuna.Trial], float]:
    """Optuna objective: mean year-fold CV RMSE (minimise), with pruning after each fold.

    After fold ``i`` it reports the running mean RMSE at ``step=i``: every trial meets the same
    fold years in the same order, so the median pruner compares like with like, and the value at
    the last step equals the objective. ``record`` (if given) is filled per trial with
    ``params`` and ``fold_rmse`` so a wrapper can log pruned / failed trials too.
    """

    def objective(trial: optuna.Trial) -> float:
        rec = record if record is not None else {}
        rec.clear()
        rec["fold_rmse"] = []
        params = merge_params(fixed_params, suggest_params(trial, space))
        rec["params"] = params

        def on_fold(i: int, score: float, scores: list[float]) -> None:
            rec["fold_rmse"] = scores
            trial.report(float(np.mean(scores)), step=i)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {i}")

        scores = cross_validate_by_year(
            model, params, X, y, years, n_folds, random_state, on_fold=on_fold
        )
        return float(np.mean(scores))

    return objective


# --------------------------------------------------------------------------- shards


def _log_trial_run(
    client: MlflowClient,
    run_id: str,
    record: Mapping[str, Any],
    state: str,
    value: float | None,
    seconds: float,
    error: str | None,
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    params = [Param(k, str(v)) for k, v in record.get("params", {}).items()]
    metrics = [Metric("fold_rmse", s, now, i) for i, s in enumerate(record.get("fold_rmse", []))]
    metrics += [Metric(f"fold_{i}_rmse", s, now, 0) for i, s in enumerate(record["fold_rmse"])]
    metrics.append(Metric("trial_seconds", seconds, now, 0))
    if value is not None:
        metrics.append(Metric("cv_rmse", value, now, 0))
    tags = [RunTag("optuna_state", state)]
    if error:
        tags.append(RunTag("error", error[:5000]))
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}.get(state, "KILLED")
    client.set_terminated(run_id, status=status)


def run_tuning_shard(
    study_name: str,
    storage_spec: str,
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str | None,
    model: str,
    space: Mapping[str, Mapping[str, Any]],
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    years: np.ndarray | pd.Series,
    n_folds: int,
    n_trials: int,
    seed: int,
    random_state: int,
    shard_index: int,
    *,
    fixed_params: Mapping[str, Any] | None = None,
    pruner_n_startup_trials: int = 3,
    pruner_n_warmup_steps: int = 0,
    tpe_n_startup_trials: int = 10,
    catch_failures: bool = True,
) -> dict[str, Any]:
    """Run ``n_trials`` trials of an existing study in this process; log each as an MLflow run.

    ``seed`` seeds this shard's ``TPESampler`` and must differ between shards (the caller passes
    base_seed + shard_index): equal seeds make parallel workers propose the same trials.
    ``random_state`` seeds the estimators and is the same for every trial and shard, so trials
    differ only by their parameters.

    Each trial's MLflow run (created with ``MlflowClient``, no process-global active run) is in
    ``experiment_id``, nested under ``parent_run_id`` (tag ``mlflow.parentRunId``), with the
    params, ``fold_rmse`` per step (and ``fold_<i>_rmse``), ``cv_rmse`` when complete, and tags
    model, shard, trial_number, optuna_study, optuna_state (COMPLETE/PRUNED/FAIL), stage=trial.

    A failing trial is recorded as FAIL and the shard goes on (``catch_failures``) unless every
    trial of the shard failed, which raises ``RuntimeError``.

    Returns a JSON-serialisable summary: model, study_name, shard_index, seed, n_trials_run,
    n_complete, n_pruned, n_fail, best_value_in_shard, best_trial_number_in_shard,
    trial_numbers, mlflow_run_ids.
    """
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    validate_search_space(model, space)
    validate_fixed_params(model, fixed_params or {})
    folds_years = fold_years(years, n_folds)  # fail before creating any trial
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")

    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(storage_spec),
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_n_startup_trials),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=pruner_n_startup_trials, n_warmup_steps=pruner_n_warmup_steps
        ),
    )
    client = tracking_client(tracking_uri)
    record: dict[str, Any] = {}
    objective = make_objective(
        model, space, X, y, years, n_folds, random_state, fixed_params, record=record
    )
    trial_numbers: list[int] = []
    run_ids: list[str] = []
    errors: list[str] = []

    def logged_objective(trial: optuna.Trial) -> float:
        run_name = f"{model}-trial-{trial.number}"
        tags = {
            MLFLOW_RUN_NAME: run_name,
            "stage": TRIAL_STAGE,
            "model": model,
            "shard": str(shard_index),
            "trial_number": str(trial.number),
            "optuna_study": study_name,
            "sampler_seed": str(seed),
            "fold_years": ",".join(map(str, folds_years)),
        }
        if parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run_id = client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id
        trial_numbers.append(trial.number)
        run_ids.append(run_id)
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("shard", shard_index)
        record.clear()
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
            errors.append(error)
            raise
        finally:
            record.setdefault("fold_rmse", [])
            trial.set_user_attr("fold_rmse", list(record["fold_rmse"]))
            _log_trial_run(client, run_id, record, state, value, time.perf_counter() - start, error)

    study.optimize(
        logged_objective, n_trials=n_trials, catch=(Exception,) if catch_failures else ()
    )

    mine = set(trial_numbers)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in mine]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    n_fail = sum(t.state == TrialState.FAIL for t in trials)
    if not complete and not n_pruned:
        raise RuntimeError(
            f"all {len(trials)} trials of shard {shard_index} of study {study_name!r} failed; "
            f"first error: {errors[0] if errors else 'unknown'}"
        )
    best = min(complete, key=lambda t: t.value) if complete else None
    return {
        "model": model,
        "study_name": study_name,
        "shard_index": shard_index,
        "seed": seed,
        "n_trials_run": len(trials),
        "n_complete": len(complete),
        "n_pruned": int(n_pruned),
        "n_fail": int(n_fail),
        "best_value_in_shard": float(best.value) if best else None,
        "best_trial_number_in_shard": best.number if best else None,
        "trial_numbers": sorted(mine),
        "mlflow_run_ids": run_ids,
    }


# --------------------------------------------------------------------------- results


def study_results(
    study_name: str, storage_spec: str, trial_numbers: Sequence[int] | None = None
) -> dict[str, Any]:
    """Summary of a finished study (JSON-serialisable): n_trials, n_complete, n_pruned, n_fail,
    best_value (mean CV RMSE), best_params (tuned ones only), best_trial_number,
    best_mlflow_run_id.

    ``trial_numbers`` restricts the summary to those trials (the ones the current shard outputs
    report): a shard that crashed and was re-run leaves its interrupted trials in the study, and
    they must not count.

    Raises:
        ValueError: no trial completed.
    """
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_spec))
    trials = study.get_trials(deepcopy=False)
    if trial_numbers is not None:
        wanted = set(trial_numbers)
        trials = [t for t in trials if t.number in wanted]
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    if not counts[TrialState.COMPLETE]:
        raise ValueError(f"study {study_name!r} has no completed trial ({len(trials)} trials)")
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
        "best_params": dict(best.params),
        "best_trial_number": best.number,
        "best_mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
    }


def close_parent_run(tracking_uri: str, parent_run_id: str, results: Mapping[str, Any]) -> None:
    """Log a study's :func:`study_results` on its parent run and mark it FINISHED."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric("best_cv_rmse", float(results["best_value"]), now, 0)]
    metrics += [
        Metric(k, float(results[k]), now, 0)
        for k in ("n_trials", "n_complete", "n_pruned", "n_fail")
        if k in results
    ]
    params: Sequence[Param] = [
        Param(f"best.{k}", str(v)) for k, v in results.get("best_params", {}).items()
    ]
    tags = [RunTag("best_trial_number", str(results.get("best_trial_number")))]
    client = tracking_client(tracking_uri)
    client.log_batch(parent_run_id, metrics=metrics, params=params, tags=tags)
    client.set_terminated(parent_run_id, status="FINISHED")
