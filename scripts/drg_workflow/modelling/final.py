"""Final refit with the chosen parameters, evaluation, importances and MLflow logging."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from pandas.errors import Pandas4Warning
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance

from .data import KEY_COLUMNS
from .metrics import regression_metrics
from .models import build_model, final_estimator
from .tuning import merge_params, tracking_client

FINAL_STAGE = "final"
SPLIT_PREFIXES = {"validation": "val", "test": "test"}


def fit_final_model(
    model: str,
    best_params: Mapping[str, Any],
    X_train: pd.DataFrame,
    y_train: pd.Series | np.ndarray,
    random_state: int,
    fixed_params: Mapping[str, Any] | None = None,
) -> BaseEstimator:
    """Fit ``model`` with ``fixed_params`` overlaid by ``best_params`` on the training split.

    Deterministic for a given ``random_state`` (unlike the parallel search that chose the
    parameters). Fitting on train only keeps the validation metrics an honest forecast of an
    unseen year, comparable with the baseline's.
    """
    estimator = build_model(model, merge_params(fixed_params, best_params), random_state)
    return estimator.fit(X_train, np.asarray(y_train, dtype=float))


def evaluate_model(
    estimator: BaseEstimator, data: Mapping[str, tuple[pd.DataFrame, pd.Series | np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Metrics per split: ``{"validation": {"rmse":..., "mae":..., "r2":...}, "test": {...}}``."""
    return {split: regression_metrics(y, estimator.predict(X)) for split, (X, y) in data.items()}


def flatten_metrics(
    by_split: Mapping[str, Mapping[str, float]], cv_rmse: float | None = None
) -> dict[str, float]:
    """``{"validation": {"rmse": 1}}`` -> ``{"val_rmse": 1}`` (plus ``cv_rmse`` if given), the
    names used in MLflow and in the comparison table."""
    flat = {
        f"{SPLIT_PREFIXES.get(split, split)}_{name}": float(value)
        for split, metrics in by_split.items()
        for name, value in metrics.items()
    }
    if cv_rmse is not None:
        flat["cv_rmse"] = float(cv_rmse)
    return flat


def predictions_frame(
    frame: pd.DataFrame, split: str, y_true: pd.Series | np.ndarray, y_pred: np.ndarray
) -> pd.DataFrame:
    """Predictions with their keys: year, facility_id, apr_drg_code, split, y_true, y_pred."""
    out = frame.loc[:, list(KEY_COLUMNS)].reset_index(drop=True)
    out["split"] = split
    out["y_true"] = np.asarray(y_true, dtype=float)
    out["y_pred"] = np.asarray(y_pred, dtype=float)
    return out


def predict_splits(
    estimator: BaseEstimator,
    frames: Mapping[str, pd.DataFrame],
    features: list[str],
    target: str,
) -> pd.DataFrame:
    """:func:`predictions_frame` of every split in ``frames``, concatenated in their order."""
    parts = [
        predictions_frame(df, split, df[target], estimator.predict(df.loc[:, features]))
        for split, df in frames.items()
    ]
    return pd.concat(parts, ignore_index=True)


def permutation_importances(
    estimator: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    n_repeats: int = 5,
    random_state: int = 0,
    n_jobs: int | None = None,
    max_samples: float | int = 1.0,
) -> pd.DataFrame:
    """Permutation importance on held-out data (validation): the RMSE increase when a feature's
    values are shuffled. Columns feature, importance_mean, importance_std; sorted descending."""
    result = permutation_importance(
        estimator,
        X,
        np.asarray(y, dtype=float),
        scoring="neg_root_mean_squared_error",
        n_repeats=n_repeats,
        random_state=random_state,
        n_jobs=n_jobs,
        max_samples=max_samples,
    )
    df = pd.DataFrame(
        {
            "feature": list(X.columns),
            "importance_mean": result.importances_mean,
            "importance_std": result.importances_std,
        }
    )
    return df.sort_values("importance_mean", ascending=False, ignore_index=True)


def impurity_importances(estimator: BaseEstimator, features: list[str]) -> pd.DataFrame | None:
    """``feature_importances_`` of tree models as feature, importance (sorted descending);
    ``None`` for models without it (Ridge, HistGradientBoosting)."""
    values = getattr(final_estimator(estimator), "feature_importances_", None)
    if values is None:
        return None
    df = pd.DataFrame({"feature": features, "importance": np.asarray(values, dtype=float)})
    return df.sort_values("importance", ascending=False, ignore_index=True)


def _skops_trusted_types(estimator: BaseEstimator) -> list[str]:
    """Types skops will not load by default (e.g. ``sklearn.tree._tree.Tree``) for this model.

    We trust them because we just built the model; skops stays the (safer) format for anything
    else loaded from the store.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)))


def _pandas_dataset(
    frame: pd.DataFrame, source: str | None, name: str, target: str, data_sha256: str
) -> Any:
    """``mlflow.data.from_pandas`` of ``frame``, without its two slow full-frame passes.

    MLflow infers the dataset schema by testing every cell for missing values in Python (7 s
    for v13's 290k rows x 38 columns, half a minute with other jobs competing) and computes its
    digest from ``DataFrame.map(type)``. Here the digest is the start of the data's sha256
    (MLflow keeps at most 36 characters) and the schema is inferred from a few rows, with each
    column's ``required`` flag set from a vectorised missing-value test.
    """
    import mlflow.data
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    with warnings.catch_warnings():
        # A relative path resolves to one source class twice; MLflow warns about the tie.
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        dataset = mlflow.data.from_pandas(
            frame, source=source, name=name, targets=target, digest=data_sha256[:32]
        )
    sampled = infer_signature(frame.head(100)).inputs
    # functools.cached_property reads the instance __dict__ first: this is the schema it uses.
    dataset.__dict__["schema"] = Schema(
        [
            ColSpec(spec.type, spec.name, required=bool(frame[spec.name].notna().all()))
            for spec in sampled.inputs
        ]
    )
    return dataset


def log_final_run(
    *,
    tracking_uri: str,
    experiment_id: str,
    model_name: str,
    estimator: BaseEstimator | None,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    X_example: pd.DataFrame | None,
    dataset: pd.DataFrame,
    target: str,
    data_sha256: str,
    config_hash: str,
    predictions: pd.DataFrame | None = None,
    importances: Mapping[str, pd.DataFrame | None] | None = None,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    dataset_name: str = "v13",
    dataset_source: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
    stage: str = FINAL_STAGE,
    artifacts: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str | None]:
    """Log the final model as one MLflow run; return ``{"run_id", "model_uri", "model_id",
    "experiment_id"}``.

    ``estimator=None`` logs everything but the model (``model_uri``/``model_id`` are ``None``):
    the naive baseline is logged this way, with the same metrics, dataset and tags as the
    models. ``artifacts`` maps file names to JSON documents logged at the run's root (e.g. the
    settings whose hash is ``config_hash``).

    Logs ``params``, ``metrics`` (flat names, see :func:`flatten_metrics`), tags model,
    stage=final, data_sha256, config_hash; ``dataset`` as the training input
    (``mlflow.data.from_pandas(..., name=dataset_name, targets=target)``); predictions and each
    importance table as CSV artifacts (``predictions/``, ``importances/<name>.csv``); and the model
    (``name="model"``, skops with the model's own trusted types so it loads back with
    ``mlflow.sklearn.load_model``, signature inferred from ``X_example``, pinned
    scikit-learn requirement so MLflow skips slow requirement inference).
    """
    import mlflow
    import mlflow.sklearn
    import skops
    from mlflow.models import infer_signature

    tags = {
        "model": model_name,
        "stage": stage,
        "data_sha256": data_sha256,
        "config_hash": config_hash,
        **dict(extra_tags or {}),
    }
    example = X_example.head(5) if X_example is not None else None
    tracking_client(tracking_uri)  # opens / creates the store race-free before the fluent API
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with (
            warnings.catch_warnings(),
            mlflow.start_run(
                experiment_id=experiment_id,
                run_name=run_name or f"{model_name}-final",
                parent_run_id=parent_run_id,
                tags=tags,
            ) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            # facility_id / apr_drg_code are integer columns that are never missing: MLflow's
            # schema hint about missing values in integer columns does not apply.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            # pandas 3.1 deprecation notices raised inside MLflow's own code: not actionable here.
            warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"mlflow\.")
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            # The dataset's own digest is MLflow's (a sample hash, at most 36 characters); the
            # input tags carry the full sha256 of the version's CSV, as its metadata records it.
            mlflow.log_input(
                _pandas_dataset(dataset, dataset_source, dataset_name, target, data_sha256),
                context="training",
                tags={
                    "data_version": dataset_name,
                    "data_sha256": data_sha256,
                    "config_hash": config_hash,
                },
            )
            tmp_dir = Path(tmp)
            (tmp_dir / "params.json").write_text(json.dumps(dict(params), indent=2, default=str))
            mlflow.log_artifact(str(tmp_dir / "params.json"))
            for file_name, document in (artifacts or {}).items():
                (tmp_dir / file_name).write_text(
                    json.dumps(document, indent=2, sort_keys=True, default=str)
                )
                mlflow.log_artifact(str(tmp_dir / file_name))
            if predictions is not None:
                path = tmp_dir / "predictions.csv"
                predictions.to_csv(path, index=False)
                mlflow.log_artifact(str(path), artifact_path="predictions")
            for name, table in (importances or {}).items():
                if table is None:
                    continue
                path = tmp_dir / f"{name}.csv"
                table.to_csv(path, index=False)
                mlflow.log_artifact(str(path), artifact_path="importances")
            if estimator is None:
                return {
                    "run_id": run.info.run_id,
                    "experiment_id": run.info.experiment_id,
                    "model_uri": None,
                    "model_id": None,
                }
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                serialization_format="skops",
                skops_trusted_types=_skops_trusted_types(estimator),
                signature=infer_signature(example, estimator.predict(example)),
                input_example=example,
                pip_requirements=[
                    f"scikit-learn=={sklearn.__version__}",
                    f"skops=={skops.__version__}",
                ],
            )
            return {
                "run_id": run.info.run_id,
                "experiment_id": run.info.experiment_id,
                "model_uri": info.model_uri,
                "model_id": str(info.model_id),
            }
    finally:
        mlflow.set_tracking_uri(previous_uri)
