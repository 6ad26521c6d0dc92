"""Every MLflow call of the workflow: the experiment, the runs of studies, trials, final models
and the baseline, and where MLflow's (and Optuna's) log lines go.

One module owns them so that the rest of the package never imports MLflow (1-2 s) and the way
runs are named, tagged and nested is written down once.

Run layout in the one experiment of ``modelling.mlflow.experiment_name``:

- ``<model>-tuning``: a study's parent run (stage ``tuning``), created by ``setup_study`` and
  closed with the study's results by ``train_final``;
- ``<model>-trial-<n>``: one run per Optuna trial (stage ``trial``), nested under the parent;
- ``<model>-final``: the tuned model fitted on the train years (stage ``final``), nested under
  the parent;
- ``baseline-final``: the naive baseline (stage ``baseline``), logged like a model without one;
- ``backtest``: the rolling-origin backtest (stage ``backtest``: its table and metadata), with
  one nested run ``<model>-backtest`` per model and the baseline whose metrics have one step
  per origin year (so MLflow draws skill against origin);
- ``<model>-refit``: the champion refitted on every year up to the last (stage ``refit``),
  nested under its study's parent run: the model the registry's alias ``champion`` points at.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from drg_workflow.jobs import JOB_HANDLER_NAME
from drg_workflow.names import BASELINE_NAME, SKILL_COLUMNS
from drg_workflow.profiling import timed

from .settings import MlflowSettings
from .sqlite import sqlite_file, sqlite_init_lock

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sklearn.base import BaseEstimator

_log = logging.getLogger(__name__)
#: The drg_workflow package, logged with every model (see :func:`_log_model`).
_PACKAGE_DIR = Path(__file__).resolve().parents[1]

TRIAL_STAGE = "trial"
TUNING_STAGE = "tuning"
FINAL_STAGE = "final"
BASELINE_STAGE = BASELINE_NAME
BACKTEST_STAGE = "backtest"
REFIT_STAGE = "refit"


def refit_run_name(model: str) -> str:
    """The name of the champion's refit run (the registered model's run), ``<model>-refit``."""
    return f"{model}-{REFIT_STAGE}"


#: Optuna trial state -> status of its MLflow run.
_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


@timed("import")
def route_library_logs(logger: logging.Logger, *, optuna: bool = True) -> None:
    """Send MLflow's (and, with ``optuna``, Optuna's) log lines (one per trial, study
    creation, store creation) to the rule's log file instead of Snakemake's terminal output.

    Both libraries set up their own stderr handler when imported, so this imports them: a job
    that never touches Optuna passes ``optuna=False`` and does not pay for importing it. The
    job's handlers are lent, not given: :func:`~drg_workflow.jobs.logged_rule` takes them back
    when the job ends (in Snakemake's own process other jobs' handlers stay where they are)."""
    import mlflow  # configures its own stderr handler on import; replace it

    mlflow_logger = logging.getLogger(mlflow.__name__)
    for handler in list(mlflow_logger.handlers):
        if handler.get_name() != JOB_HANDLER_NAME:
            mlflow_logger.removeHandler(handler)
    for handler in logger.handlers:
        mlflow_logger.addHandler(handler)
    if optuna:
        import optuna as optuna_module

        optuna_module.logging.disable_default_handler()
        for handler in logger.handlers:
            logging.getLogger("optuna").addHandler(handler)


# --------------------------------------------------------------------------- experiment


@dataclass(frozen=True)
class MlflowExperiment:
    """The experiment every run goes to (``results/mlflow/experiment.json``)."""

    tracking_uri: str
    experiment_name: str
    experiment_id: str
    artifact_location: str

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> MlflowExperiment:
        return cls(**{k: document[k] for k in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@timed("mlflow")
def tracking_client(tracking_uri: str) -> MlflowClient:
    """An ``MlflowClient`` whose store is already opened (tables created for a fresh sqlite DB,
    under :func:`.sqlite.sqlite_init_lock`), so any later use in this process is race-free."""
    from mlflow import MlflowClient

    with sqlite_init_lock(sqlite_file(tracking_uri)):
        # The constructor may already open the store; make sure it did before unlocking.
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)
    return client


def _absolute_artifact_location(location: str) -> str:
    # A relative path would be resolved against whichever cwd later reads/writes artifacts
    # (rules, `mlflow ui`); MLflow itself stores absolute locations by default.
    # `mlflow-artifacts:/prefix` is an mlflow server's own artifact store (--artifacts-destination),
    # reached through the tracking URI's host: the way cluster nodes without a shared file system
    # log models (MLflow refuses the form with a host, mlflow-artifacts://host:port/...).
    if "://" in location or location.startswith(("file:", "mlflow-artifacts:")):
        return location
    return str(Path(location).resolve())


@timed("mlflow")
def ensure_experiment(settings: MlflowSettings) -> MlflowExperiment:
    """Get or create the MLflow experiment (restoring it if deleted), creating a fresh local
    sqlite store on the way.

    The workflow calls this once, in the ``setup_mlflow`` job, before any other job uses the
    store. It is still safe against a concurrent creator of the same name and against
    concurrent creation of a fresh local sqlite store (see :func:`tracking_client`); a remote /
    shared RDB store must be created once before parallel use (e.g. ``mlflow db upgrade``).
    """
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import MlflowException

    client = tracking_client(settings.tracking_uri)
    name = settings.experiment_name
    wanted = (
        None
        if settings.artifact_location is None
        else _absolute_artifact_location(settings.artifact_location)
    )
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            client.create_experiment(name, artifact_location=wanted)
        except MlflowException as exc:
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        client.restore_experiment(experiment.experiment_id)
    if wanted is not None and experiment.artifact_location.removeprefix("file://") != wanted:
        _log.warning(
            "MLflow experiment %r exists with artifact_location %s (config asks for %s); "
            "keeping the existing one",
            name,
            experiment.artifact_location,
            wanted,
        )
    return MlflowExperiment(
        tracking_uri=settings.tracking_uri,
        experiment_name=name,
        experiment_id=experiment.experiment_id,
        artifact_location=experiment.artifact_location,
    )


# --------------------------------------------------------------------------- study runs


@timed("mlflow")
def end_abandoned_runs(
    client: MlflowClient, experiment_id: str, tags: Mapping[str, str]
) -> list[str]:
    """End as KILLED (tag ``interrupted``) the experiment's runs still RUNNING that carry all
    of ``tags``; return their ids.

    A job killed while it logs a run leaves that run RUNNING, and its rerun logs a new one: a
    step calls this first with the tags that identify its own run, so after the plain rerun no
    run of the step is left open."""
    conditions = [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
    query = " and ".join([*conditions, "attributes.status = 'RUNNING'"])
    run_ids = [run.info.run_id for run in client.search_runs([experiment_id], query)]
    for run_id in run_ids:
        client.set_tag(run_id, "interrupted", "true")
        client.set_terminated(run_id, status="KILLED")
    return run_ids


@timed("mlflow")
def create_parent_run(experiment: MlflowExperiment, model: str, tags: Mapping[str, str]) -> str:
    """Create a study's parent run ``<model>-tuning`` (stage ``tuning``); return its id.

    A parent run of the same study (tag ``optuna_study``) still RUNNING was left by an earlier
    setup that was killed or is superseded by this one: it is ended first."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    run_name = f"{model}-tuning"
    all_tags = {MLFLOW_RUN_NAME: run_name, "stage": TUNING_STAGE, "model": model, **tags}
    client = tracking_client(experiment.tracking_uri)
    if "optuna_study" in tags:
        end_abandoned_runs(
            client,
            experiment.experiment_id,
            {"stage": TUNING_STAGE, "model": model, "optuna_study": tags["optuna_study"]},
        )
    return client.create_run(experiment.experiment_id, tags=all_tags, run_name=run_name).info.run_id


@timed("mlflow")
def start_trial_run(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str | None,
    model: str,
    trial_number: int,
    tags: Mapping[str, str],
) -> str:
    """Create a trial's run ``<model>-trial-<n>`` (stage ``trial``) under the study's parent run
    with an explicit experiment id (``mlflow.set_experiment`` races can misplace runs into
    *Default*); return its id."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    run_name = f"{model}-trial-{trial_number}"
    all_tags = {
        MLFLOW_RUN_NAME: run_name,
        "stage": TRIAL_STAGE,
        "model": model,
        "trial_number": str(trial_number),
        **tags,
    }
    if parent_run_id:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    return client.create_run(experiment_id, tags=all_tags, run_name=run_name).info.run_id


@timed("mlflow")
def finish_trial_run(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, Any],
    fold_rmse: Sequence[float],
    fold_mae: Sequence[float],
    state: str,
    value: float | None,
    seconds: float,
    error: str | None,
) -> None:
    """Log a trial's params, ``fold_rmse`` and ``fold_mae`` per step (and ``fold_<i>_rmse``,
    ``fold_<i>_mae``), when complete its objective ``cv_loss_ratio`` and its ``cv_rmse`` and
    ``cv_mae``, and its Optuna state, and end its run (FAILED for a failed trial)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics = []
    for name, scores in (("rmse", fold_rmse), ("mae", fold_mae)):
        metrics += [Metric(f"fold_{name}", s, now, i) for i, s in enumerate(scores)]
        metrics += [Metric(f"fold_{i}_{name}", s, now, 0) for i, s in enumerate(scores)]
    metrics.append(Metric("trial_seconds", seconds, now, 0))
    if value is not None:
        metrics.append(Metric("cv_loss_ratio", value, now, 0))
        metrics.append(Metric("cv_rmse", sum(fold_rmse) / len(fold_rmse), now, 0))
        metrics.append(Metric("cv_mae", sum(fold_mae) / len(fold_mae), now, 0))
    tags = [RunTag("optuna_state", state)]
    if error:
        tags.append(RunTag("error", error[:5000]))
    client.log_batch(
        run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()], tags=tags
    )
    client.set_terminated(run_id, status=_RUN_STATUS.get(state, "KILLED"))


@timed("mlflow")
def end_interrupted_trial_run(client: MlflowClient, run_id: str) -> None:
    """End the run of a trial whose process was killed: tags ``optuna_state`` FAIL and
    ``interrupted``, status KILLED (also when the run had been ended just before the kill)."""
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag("optuna_state", "FAIL"), RunTag("interrupted", "true")])
    client.set_terminated(run_id, status="KILLED")


@timed("mlflow")
def running_trial_runs(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str | None,
    shard: int,
    round_index: int = 0,
) -> dict[str, int]:
    """A shard's trial runs of one tuning round still RUNNING (under the study's parent run),
    run id -> trial number: at the start of the shard, runs that its killed predecessor left
    open."""
    query = (
        f"tags.stage = '{TRIAL_STAGE}' and tags.shard = '{shard}' and "
        f"tags.round = '{round_index}' and attributes.status = 'RUNNING'"
    )
    if parent_run_id:
        query += f" and tags.`mlflow.parentRunId` = '{parent_run_id}'"
    runs = client.search_runs([experiment_id], query, max_results=1000)
    return {run.info.run_id: int(run.data.tags["trial_number"]) for run in runs}


@timed("mlflow")
def close_parent_run(tracking_uri: str, parent_run_id: str, results: Mapping[str, Any]) -> None:
    """Log a study's results (``tuning.study_results``) on its parent run; mark it FINISHED."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics = [
        Metric("best_cv_loss_ratio", float(results["best_value"]), now, 0),
        Metric("best_cv_rmse", float(results["best_cv_rmse"]), now, 0),
        Metric("best_cv_mae", float(results["best_cv_mae"]), now, 0),
    ]
    metrics += [
        Metric(k, float(results[k]), now, 0)
        for k in ("n_trials", "n_complete", "n_pruned", "n_fail", "n_interrupted")
        if k in results
    ]
    params = [Param(f"best.{k}", str(v)) for k, v in results.get("best_params", {}).items()]
    tags = [RunTag("best_trial_number", str(results.get("best_trial_number")))]
    client = tracking_client(tracking_uri)
    client.log_batch(parent_run_id, metrics=metrics, params=params, tags=tags)
    client.set_terminated(parent_run_id, status="FINISHED")


# --------------------------------------------------------------------------- final runs


@dataclass(frozen=True)
class LoggedDataset:
    """The data version a run learnt from, logged as the run's training input."""

    frame: pd.DataFrame
    name: str  # the data version
    source: str | None  # where its CSV is
    target: str
    sha256: str  # of the version's CSV, as its metadata records it


@dataclass(frozen=True)
class FinalRun:
    """What a final (or baseline) run logs besides the model and the dataset."""

    model: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    config_hash: str
    stage: str = FINAL_STAGE
    parent_run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    #: File name -> JSON document, logged at the run's root (e.g. ``settings.json``).
    documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Artifact path (``predictions/predictions.csv``) -> table; ``None`` tables are skipped.
    tables: Mapping[str, pd.DataFrame | None] = field(default_factory=dict)
    #: The run's name; ``<model>-final`` when not given.
    run_name: str | None = None


def _dataset_schema(frame: pd.DataFrame) -> Any:
    """The frame's MLflow schema, inferred from a few rows with each column's ``required`` flag
    from a vectorised missing-value test.

    MLflow's own inference (``PandasDataset.schema``) tests every cell for missing values in
    Python: 7 s for the default data's 290k rows x 38 columns, half a minute with other jobs
    competing.
    """
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    with warnings.catch_warnings():
        # Integer key columns that are never missing: see log_final_run.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        sampled = infer_signature(frame.head(100)).inputs
    complete = frame.notna().all()
    return Schema(
        [ColSpec(s.type, s.name, required=bool(complete[s.name])) for s in sampled.inputs]
    )


def _dataset_input(dataset: LoggedDataset) -> Any:
    """The MLflow dataset of a data version: its source, name, digest and schema.

    A ``MetaDataset`` (MLflow's dataset of metadata only) rather than ``from_pandas``: it takes
    the schema as given (see :func:`_dataset_schema`), and its digest is the start of the data's
    sha256 (MLflow keeps at most 36 characters) instead of a hash of ``DataFrame.map(type)``.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        # A relative path resolves to one source class twice; MLflow warns about the tie.
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        source = resolve_dataset_source(dataset.source or dataset.name)
    return MetaDataset(
        source,
        name=dataset.name,
        digest=dataset.sha256[:32],
        schema=_dataset_schema(dataset.frame),
    )


def _log_artifacts(run: FinalRun, params: Mapping[str, Any]) -> None:
    """``params.json``, the run's JSON documents and its tables: written into a temporary
    folder laid out as the run's artifacts, then logged in one call."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        documents = {"params.json": dict(params), **run.documents}
        for file_name, document in documents.items():
            path = Path(tmp) / file_name
            path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
        for artifact_path, table in run.tables.items():
            if table is None:
                continue
            path = Path(tmp) / artifact_path
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(path, index=False)
        mlflow.log_artifacts(tmp)


@contextmanager
def _deflated_skops() -> Iterator[None]:
    """Within the block, skops writes its zip files deflated instead of stored.

    ``mlflow.sklearn.log_model(serialization_format="skops")`` calls ``skops.io.dump`` with
    skops' default, an uncompressed zip, and has no option for it; a random forest of the
    default search space then takes 80-150 MB per logged model (its trees' arrays compress
    well). Deflated at level 1 it loads the same (zip readers decompress whatever they find)
    at a fraction of the size: docs/performance.md has the figures.
    """
    import skops.io

    dump = skops.io.dump
    skops.io.dump = functools.partial(dump, compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    try:
        yield
    finally:
        skops.io.dump = dump


def _log_model(estimator: BaseEstimator, X_example: pd.DataFrame) -> Any:
    """The model as ``name="model"``: skops with the model's own trusted types (so it loads
    back with ``mlflow.sklearn.load_model``), deflated (:func:`_deflated_skops`), signature
    inferred from a few example rows, a pinned scikit-learn requirement so MLflow skips its
    slow requirement inference, and the drg_workflow package as its code."""
    import mlflow.sklearn
    import sklearn
    import skops
    import skops.io
    from mlflow.models import infer_signature

    example = X_example.head(5)
    # Types skops will not load by default (e.g. sklearn.tree._tree.Tree): trusted because we
    # just built the model; skops stays the safer format for anything else loaded from the store.
    trusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)))
    with _deflated_skops():
        return mlflow.sklearn.log_model(
            estimator,
            name="model",
            serialization_format="skops",
            skops_trusted_types=trusted,
            signature=infer_signature(example, estimator.predict(example)),
            input_example=example,
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"skops=={skops.__version__}",
            ],
            # The model is a drg_workflow.modelling.target_form.TargetFormRegressor: the package
            # travels with it, so `mlflow.sklearn.load_model` works where the workflow is not.
            code_paths=[str(_PACKAGE_DIR)],
        )


@timed("mlflow")
def log_final_run(
    experiment: MlflowExperiment,
    run: FinalRun,
    dataset: LoggedDataset,
    estimator: BaseEstimator | None = None,
    X_example: pd.DataFrame | None = None,
) -> dict[str, str | None]:
    """Log a final model (or, with ``estimator=None``, the baseline; or the refitted champion)
    as one MLflow run (``<model>-final`` unless ``run.run_name``); return ``{"run_id",
    "experiment_id", "model_uri", "model_id"}`` (the last two ``None`` without an estimator).

    Logs the params (as strings and as ``params.json``), the metrics, tags model, stage,
    data_sha256 and config_hash (plus ``run.tags``), the data version as the training input
    (its tags carry the full sha256), the JSON documents and tables of ``run``, and the model.
    The same run left RUNNING by a killed job (same name, stage, settings hash and parent) is
    ended first (:func:`end_abandoned_runs`).
    """
    import mlflow
    from mlflow.entities import Metric, Param
    from pandas.errors import Pandas4Warning

    now = int(time.time() * 1000)
    tags = {
        "model": run.model,
        "stage": run.stage,
        "data_sha256": dataset.sha256,
        "config_hash": run.config_hash,
        **run.tags,
    }
    client = tracking_client(experiment.tracking_uri)  # opens the store race-free
    run_name = run.run_name or f"{run.model}-final"
    same_run = {"mlflow.runName": run_name, "stage": run.stage, "config_hash": run.config_hash}
    if run.parent_run_id:
        same_run["mlflow.parentRunId"] = run.parent_run_id
    end_abandoned_runs(client, experiment.experiment_id, same_run)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(experiment.tracking_uri)
    try:
        with (
            warnings.catch_warnings(),
            mlflow.start_run(
                experiment_id=experiment.experiment_id,
                run_name=run_name,
                parent_run_id=run.parent_run_id,
                tags=tags,
            ) as active,
        ):
            # facility_id / apr_drg_code are integer columns that are never missing: MLflow's
            # schema hint about missing values in integer columns does not apply.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            # pandas 3.1 deprecation notices raised inside MLflow's own code: not actionable here.
            warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"mlflow\.")
            # Parameters and metrics in one call (one store transaction).
            client.log_batch(
                active.info.run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in run.metrics.items()],
                params=[Param(k, str(v)) for k, v in run.params.items()],
            )
            mlflow.log_input(
                _dataset_input(dataset),
                context="training",
                tags={
                    "data_version": dataset.name,
                    "data_sha256": dataset.sha256,
                    "config_hash": run.config_hash,
                    "rows": str(len(dataset.frame)),
                    "target": dataset.target,
                },
            )
            _log_artifacts(run, run.params)
            model = _log_model(estimator, X_example) if estimator is not None else None
            ids = {"run_id": active.info.run_id, "experiment_id": active.info.experiment_id}
    finally:
        mlflow.set_tracking_uri(previous_uri)
    if model is None:
        return {**ids, "model_uri": None, "model_id": None}
    return {**ids, "model_uri": model.model_uri, "model_id": str(model.model_id)}


# --------------------------------------------------------------------------- backtest

#: Metrics of each origin logged on a model's backtest run (one step per origin year).
BACKTEST_METRICS: tuple[str, ...] = (
    "rmse",
    "mae",
    *SKILL_COLUMNS,
)


@timed("mlflow")
def log_backtest(
    experiment: MlflowExperiment,
    table: pd.DataFrame,
    documents: Mapping[str, Mapping[str, Any]],
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """Log the backtest: a run ``backtest`` (stage ``backtest``) holding ``table`` as
    ``backtest.csv``, the ``documents`` (file name -> JSON) and ``tags``, and under it one run
    ``<model>-backtest`` per model of the table (the baseline among them) whose metrics
    (:data:`BACKTEST_METRICS`) have one step per origin year, tagged with the choosing and
    reporting origins. Returns ``{"run_id", "model_run_ids": {model: run_id}}``."""
    from mlflow.entities import Metric, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    client = tracking_client(experiment.tracking_uri)
    parent = client.create_run(
        experiment.experiment_id,
        tags={MLFLOW_RUN_NAME: "backtest", "stage": BACKTEST_STAGE, **tags},
        run_name="backtest",
    ).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "backtest.csv"
        table.to_csv(path, index=False)
        client.log_artifact(parent, str(path))
        for file_name, document in documents.items():
            path = Path(tmp) / file_name
            path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
            client.log_artifact(parent, str(path))
    now = int(time.time() * 1000)
    model_runs = {}
    for model, rows in table.groupby("model", sort=False):
        run_name = f"{model}-backtest"
        run_tags = {
            MLFLOW_RUN_NAME: run_name,
            MLFLOW_PARENT_RUN_ID: parent,
            "stage": BACKTEST_STAGE,
            "model": str(model),
            **{
                f"{role}_origins": " ".join(
                    str(o) for o in rows.loc[rows["role"] == role, "origin"]
                )
                for role in rows["role"].unique()
            },
        }
        run_id = client.create_run(
            experiment.experiment_id, tags=run_tags, run_name=run_name
        ).info.run_id
        metrics = [
            Metric(name, float(value), now, int(origin))
            for name in BACKTEST_METRICS
            for origin, value in zip(rows["origin"], rows[name], strict=True)
        ]
        client.log_batch(run_id, metrics=metrics, tags=[RunTag("n_origins", str(len(rows)))])
        client.set_terminated(run_id, status="FINISHED")
        model_runs[str(model)] = run_id
    client.set_terminated(parent, status="FINISHED")
    return {"run_id": parent, "model_run_ids": model_runs}


# --------------------------------------------------------------------------- model registry

#: The registry alias of the model the forecast uses.
CHAMPION_ALIAS = "champion"


@timed("mlflow")
def register_champion(
    tracking_uri: str,
    registered_model: str,
    model_uri: str,
    tags: Mapping[str, str],
    description: str,
) -> str:
    """Register ``model_uri`` (the refitted champion's logged model) as a new version of
    ``registered_model`` with ``tags`` and ``description``, point the alias ``champion`` at
    it, and return the version."""
    import mlflow

    client = tracking_client(tracking_uri)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        version = mlflow.register_model(model_uri, registered_model, tags=dict(tags)).version
    finally:
        mlflow.set_tracking_uri(previous_uri)
    client.update_model_version(registered_model, str(version), description=description)
    client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, str(version))
    return str(version)


@timed("mlflow")
def clear_champion(tracking_uri: str, registered_model: str) -> bool:
    """Remove the alias ``champion`` of ``registered_model`` (when no model beats the
    baseline, an older champion must not be served); return whether there was one."""
    from mlflow.exceptions import MlflowException

    client = tracking_client(tracking_uri)
    try:
        client.get_model_version_by_alias(registered_model, CHAMPION_ALIAS)
    except MlflowException:
        return False
    client.delete_registered_model_alias(registered_model, CHAMPION_ALIAS)
    return True


def champion_uri(registered_model: str) -> str:
    """``models:/<name>@champion``: how any MLflow client loads the champion."""
    return f"models:/{registered_model}@{CHAMPION_ALIAS}"


@timed("mlflow")
def load_champion(tracking_uri: str, registered_model: str) -> tuple[BaseEstimator, str]:
    """The estimator the alias ``champion`` points at, loaded by alias the way a user's own
    serving code would (``models:/<name>@champion``), and its version."""
    import mlflow
    import mlflow.sklearn

    version = tracking_client(tracking_uri).get_model_version_by_alias(
        registered_model, CHAMPION_ALIAS
    )
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        estimator = mlflow.sklearn.load_model(champion_uri(registered_model))
    finally:
        mlflow.set_tracking_uri(previous_uri)
    return estimator, str(version.version)


@timed("mlflow")
def log_model_card(
    tracking_uri: str, registered_model: str, version: str, run_id: str, markdown: str
) -> None:
    """Put the model card on the registered ``version`` (its description, which MLflow's
    registry shows as Markdown) and on its run (artifact ``model_card.md``)."""
    client = tracking_client(tracking_uri)
    client.update_model_version(registered_model, version, description=markdown)
    client.log_text(run_id, markdown, "model_card.md")
