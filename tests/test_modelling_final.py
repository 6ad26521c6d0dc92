"""Final refit, importances, MLflow logging/loading and the comparison table."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from modelling_frames import (
    model_settings,
    modelling_frame,
    modelling_settings,
    pooled_skill_test,
)

from drg_workflow.hashing import config_hash, file_sha256
from drg_workflow.modelling.baseline import evaluate_baseline
from drg_workflow.modelling.comparison import (
    COMPARISON_COLUMNS,
    build_comparison,
    comparison_warnings,
)
from drg_workflow.modelling.data import make_xy, select_features, split_by_year
from drg_workflow.modelling.final import (
    evaluate_model,
    fit_final_model,
    flatten_metrics,
    impurity_importances,
    permutation_importances,
    predict_splits,
)
from drg_workflow.modelling.models import final_estimator
from drg_workflow.modelling.settings import MlflowSettings
from drg_workflow.modelling.tracking import (
    FinalRun,
    LoggedDataset,
    ensure_experiment,
    log_final_run,
)

SETTINGS = modelling_settings()
TARGET = SETTINGS.features.target

PARAMS = {
    "random_forest": ({"n_estimators": 6, "max_depth": 5}, {"n_jobs": 1, "max_samples": 0.7}),
    "ridge": ({"alpha": 2.0}, {}),
    "hist_gradient_boosting": ({"max_iter": 15, "learning_rate": 0.2}, {}),
}


@pytest.fixture(scope="module")
def data():
    df = modelling_frame(seed=4)
    parts = split_by_year(df, SETTINGS.split)
    features = select_features(df.columns, SETTINGS.features)
    xy = {name: make_xy(part, features, TARGET)[:2] for name, part in parts.items()}
    return df, parts, features, xy


@pytest.mark.parametrize("model", sorted(PARAMS))
def test_fit_evaluate_importances(data, model):
    _, parts, features, xy = data
    best, fixed = PARAMS[model]
    settings = model_settings(model, {}, fixed)
    est = fit_final_model(settings, best, *xy["train"])
    again = fit_final_model(settings, best, *xy["train"])
    X_val, y_val = xy["validation"]
    np.testing.assert_allclose(est.predict(X_val), again.predict(X_val))  # refit reproducible
    if model == "random_forest":
        forest = final_estimator(est)
        assert forest.max_samples == 0.7 and forest.n_estimators == 6

    metrics = evaluate_model(est, {k: xy[k] for k in ("validation", "test")})
    flat = flatten_metrics(metrics, cv_rmse=1.5)
    assert set(flat) == {f"{p}_{m}" for p in ("val", "test") for m in ("rmse", "mae", "r2")} | {
        "cv_rmse"
    }

    preds = predict_splits(est, {k: parts[k] for k in ("validation", "test")}, features, TARGET)
    assert list(preds.columns) == [
        "year",
        "facility_id",
        "apr_drg_code",
        "split",
        "y_true",
        "y_pred",
    ]
    assert len(preds) == len(parts["validation"]) + len(parts["test"])
    val = preds[preds["split"] == "validation"]
    assert np.sqrt(np.mean((val["y_true"] - val["y_pred"]) ** 2)) == pytest.approx(
        metrics["validation"]["rmse"]
    )

    perm = permutation_importances(est, X_val, y_val, n_repeats=2, random_state=0, max_samples=1.0)
    assert list(perm.columns) == ["feature", "importance_mean", "importance_std"]
    assert set(perm["feature"]) == set(features)
    assert perm["importance_mean"].is_monotonic_decreasing
    assert perm.iloc[0]["importance_mean"] > 0  # the model learnt something
    impurity = impurity_importances(est, features)
    if model == "random_forest":
        assert set(impurity["feature"]) == set(features)
        assert impurity["importance"].sum() == pytest.approx(1.0)
    else:
        assert impurity is None  # Ridge, and HistGradientBoosting has no feature_importances_


def test_permutation_importances_on_a_subsample_compare_shuffled_with_unshuffled_rows():
    """On a share of the rows, each feature is scored against the unshuffled score of the same
    rows: a model that ignores every column gives every feature 0, however much the subsample's
    RMSE differs from the whole's (a heavy-tailed target, a few huge rows), and a feature the
    model uses gives an RMSE increase."""
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"used": rng.normal(size=400), "ignored": rng.normal(size=400)})
    y = np.exp(rng.normal(scale=2.0, size=400))  # heavy-tailed: subsamples' RMSE vary
    constant = DummyRegressor().fit(X, y)
    for share in (0.25, 0.5, 1.0):
        scores = permutation_importances(
            constant, X, y, n_repeats=3, random_state=1, max_samples=share
        )
        assert (scores["importance_mean"] == 0).all(), (share, scores)
    linear = LinearRegression().fit(X, 3 * X["used"] + rng.normal(scale=0.1, size=400))
    scores = permutation_importances(
        linear, X, 3 * X["used"], n_repeats=3, random_state=1, max_samples=0.25
    ).set_index("feature")
    assert scores.loc["used", "importance_mean"] > 1.0
    assert abs(scores.loc["ignored", "importance_mean"]) < 0.05


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """One sqlite MLflow store for the module (creating its tables takes ~2 s)."""
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    return ensure_experiment(MlflowSettings(tracking_uri, "drg-final", str(root / "artifacts")))


@pytest.mark.parametrize("model", ["random_forest", "hist_gradient_boosting"])
def test_final_run_logged_and_loads_back(tmp_path, data, tracking, model):
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    df, parts, features, xy = data
    best, fixed = PARAMS[model]
    est = fit_final_model(model_settings(model, {}, fixed), best, *xy["train"])
    X_val, y_val = xy["validation"]
    tracking_uri, experiment_id = tracking.tracking_uri, tracking.experiment_id
    data_file = tmp_path / "v13.parquet"
    df.to_parquet(data_file)
    info = log_final_run(
        tracking,
        FinalRun(
            model=model,
            params={**fixed, **best},
            metrics=flatten_metrics(evaluate_model(est, {"validation": xy["validation"]})),
            config_hash=config_hash({"model": model, "params": best}),
            tables={
                "predictions/predictions.csv": predict_splits(
                    est, {"validation": parts["validation"]}, features, TARGET
                ),
                "importances/permutation.csv": permutation_importances(
                    est, X_val, y_val, n_repeats=1, random_state=0, max_samples=1.0
                ),
                "importances/impurity.csv": impurity_importances(est, features),
            },
        ),
        LoggedDataset(df, "v13", str(data_file), TARGET, file_sha256(data_file)),
        estimator=est,
        X_example=xy["train"][0],
    )
    client = MlflowClient(tracking_uri)
    run = client.get_run(info["run_id"])
    assert run.info.experiment_id == experiment_id and run.info.status == "FINISHED"
    assert run.data.tags["stage"] == "final" and run.data.tags["model"] == model
    assert run.data.tags["data_sha256"] == file_sha256(data_file)
    assert run.data.params["max_iter" if model != "random_forest" else "n_estimators"]
    assert "val_rmse" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(info["run_id"])}
    assert {"predictions", "importances", "params.json"} <= artifacts
    importance_files = {a.path for a in client.list_artifacts(info["run_id"], "importances")}
    expected = {"importances/permutation.csv"}
    if model == "random_forest":
        expected.add("importances/impurity.csv")
    assert importance_files == expected
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "v13"
    input_tags = {t.key: t.value for t in inputs[0].tags}
    assert input_tags["mlflow.data.context"] == "training"
    assert input_tags["rows"] == str(len(df)) and input_tags["target"] == TARGET
    # The schema is given, not inferred cell by cell: every column, with its missing values.
    schema = json.loads(inputs[0].dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in schema] == list(df.columns)
    required = {c["name"]: c.get("required", True) for c in schema}
    assert required == {c: bool(df[c].notna().all()) for c in df.columns}

    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.sklearn.load_model(info["model_uri"])
    np.testing.assert_allclose(loaded.predict(X_val), est.predict(X_val))
    # The skops file is a deflated zip (a random forest's trees take a fraction of the space).
    local = Path(mlflow.artifacts.download_artifacts(info["model_uri"], dst_path=tmp_path))
    with zipfile.ZipFile(local / "model.skops") as archive:
        entries = archive.infolist()
    assert entries and {entry.compress_type for entry in entries} == {zipfile.ZIP_DEFLATED}


def _row(model, val_rmse, **extra):
    row = {
        "model": model,
        "cv_rmse": val_rmse * 1.1,
        "cv_mae": val_rmse / 2,
        "val_rmse": val_rmse,
        "val_mae": val_rmse / 2,
        "val_r2": 0.8,
        "test_rmse": val_rmse * 1.2,
        "test_mae": val_rmse / 2,
        "test_r2": 0.7,
        "n_trials_complete": 5,
        "n_trials_pruned": 1,
        "best_params": {"b": 1, "a": 0.5},
    }
    return {**row, **extra}


def _backtest(skills: dict[str, float]) -> pd.DataFrame:
    """One choosing origin where each model has the given RMSE and MAE skill (+-0.05)."""
    rows = []
    for model, value in {**skills, "baseline": 0.0}.items():
        interval = 0.0 if model == "baseline" else 0.05
        rows.append(
            {
                "origin": 2015,
                "role": "choosing",
                "model": model,
                "rmse": 10 * (1 - value),
                "mae": 5 * (1 - value),
                "persistence_rmse": 10.0,
                "persistence_mae": 5.0,
                **{
                    f"skill_{metric}{end}": value + shift * interval
                    for metric in ("rmse", "mae")
                    for end, shift in (("", 0), ("_lower", -1), ("_upper", 1))
                },
            }
        )
    return pd.DataFrame(rows)


def test_comparison_flags_models_that_fail_the_gate(data):
    _, parts, _, _ = data
    baseline = evaluate_baseline(parts, 3, SETTINGS.features)
    rows = [
        _row("random_forest", baseline["val_rmse"] * 0.8),
        _row("ridge", baseline["val_rmse"] * 0.5),
        _row("hist_gradient_boosting", baseline["val_rmse"] * 0.9),
        baseline,
    ]
    backtest = _backtest({"random_forest": 0.2, "ridge": -0.1, "hist_gradient_boosting": 0.1})
    table = build_comparison(rows, backtest, pooled_skill_test(backtest))
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert list(table["model"]) == ["random_forest", "hist_gradient_boosting", "baseline", "ridge"]
    passes = dict(zip(table["model"], table["passes_gate"], strict=True))
    assert bool(passes["random_forest"]) and bool(passes["hist_gradient_boosting"])
    assert not passes["ridge"]  # the best validation RMSE does not choose: the backtest does
    assert pd.isna(passes["baseline"])
    params = table.set_index("model")["best_params"]
    assert json.loads(params["ridge"]) == {"a": 0.5, "b": 1} and params["baseline"] == "{}"

    warnings = comparison_warnings(table)
    assert len(warnings) == 1 and "'ridge'" in warnings[0] and "skill gate" in warnings[0]

    with pytest.raises(ValueError, match="needs a 'baseline' row"):
        build_comparison(rows[:3], backtest, pooled_skill_test(backtest))
    with pytest.raises(ValueError, match="duplicate"):
        build_comparison([*rows, rows[0]], backtest, pooled_skill_test(backtest))
    with pytest.raises(ValueError, match="lacks"):
        build_comparison([{"model": "ridge"}, baseline], backtest, pooled_skill_test(backtest))


def test_provenance_hashes(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


KILLED_WHILE_LOGGING = """
import os, signal, sys
import pandas as pd
from drg_workflow.modelling import tracking
from drg_workflow.modelling.settings import MlflowSettings

experiment = tracking.ensure_experiment(MlflowSettings(*sys.argv[2:5]))
if sys.argv[1] == "setup_study":  # killed before setup.json is written
    tracking.create_parent_run(experiment, "ridge", {"optuna_study": "ridge-0123456789ab"})
    os.kill(os.getpid(), signal.SIGKILL)
# killed in the middle of logging the final run, after its metrics and parameters
tracking._log_artifacts = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
tracking.log_final_run(
    experiment,
    tracking.FinalRun(
        model="ridge", params={"alpha": 1.0}, metrics={"val_rmse": 1.0}, config_hash="c0ffee"
    ),
    tracking.LoggedDataset(pd.DataFrame({"y": [1.0, 2.0]}), "v13", "v13.csv", "y", "ab" * 32),
)
"""


@pytest.mark.parametrize("step", ["setup_study", "train_final"])
def test_a_job_killed_while_it_logs_leaves_no_running_run_after_the_rerun(tmp_path, step):
    """A process killed (SIGKILL) right after setup_study created the study's parent run, or
    in the middle of train_final logging its run, leaves that run RUNNING; the rerun's own
    logging ends it as KILLED, so only the rerun's run is left (RUNNING only for a parent run,
    which train_final closes)."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    from drg_workflow.modelling.tracking import create_parent_run

    store = (f"sqlite:///{tmp_path / 'mlflow.db'}", "drg-kill", str(tmp_path / "artifacts"))
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_LOGGING, step, *store], cwd=scripts, check=False
    )
    assert killed.returncode == -9
    experiment = ensure_experiment(MlflowSettings(*store))
    client = MlflowClient(store[0])
    stage = "tuning" if step == "setup_study" else "final"

    def runs():
        found = client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")
        return sorted((r.info.status, r.data.tags.get("interrupted")) for r in found)

    assert runs() == [("RUNNING", None)]  # what the kill left
    if step == "setup_study":
        create_parent_run(experiment, "ridge", {"optuna_study": "ridge-0123456789ab"})
        create_parent_run(experiment, "ridge", {"optuna_study": "ridge-ffffffffffff"})
        expected = [("KILLED", "true"), ("RUNNING", None), ("RUNNING", None)]
    else:
        run = FinalRun(
            model="ridge", params={"alpha": 1.0}, metrics={"val_rmse": 1.0}, config_hash="c0ffee"
        )
        frame = pd.DataFrame({"y": [1.0, 2.0]})
        log_final_run(experiment, run, LoggedDataset(frame, "v13", "v13.csv", "y", "ab" * 32))
        expected = [("FINISHED", None), ("KILLED", "true")]
    assert runs() == expected
