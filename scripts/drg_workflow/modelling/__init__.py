"""Modelling on the modelling data version: features, years from the data, models, tuning, final
fit, rolling-origin backtest, baseline, comparison and skill gate, MLflow tracking, the
next-year forecast.

Modules (imported explicitly; this package does not re-export them so that a rule needing only
the data helpers does not pay for ``import mlflow``, which takes 1-2 s):

- :mod:`.settings`: the typed modelling settings, built once from the rules' params.
- :mod:`.years`: the year split and the backtest's origins resolved from the data's years, the
  years no model fits or scores.
- :mod:`.data`: feature selection, year split, year folds, ``prepare_modelling_data``.
- :mod:`.metrics`: :func:`~.metrics.regression_metrics`.
- :mod:`.target_form`: the form a model learns the target in (raw, log, relative), applied
  inside the estimator by ``TargetFormRegressor``.
- :mod:`.baseline`: naive persistence baseline, evaluated like the models.
- :mod:`.models`: ``MODEL_BUILDERS`` registry.
- :mod:`.search_space`: the model-config checks the schema cannot make, Optuna suggestion.
- :mod:`.tuning`: Optuna storage and study, CV objective, tuning shards, study results.
- :mod:`.final`: final refit, predictions, importances.
- :mod:`.tracking`: every MLflow call (experiment, study / trial / final / baseline runs).
- :mod:`.sqlite`: race-free first use of local sqlite stores.
- :mod:`.backtest`: the rolling-origin backtest: refits before each origin, skill against
  persistence with bootstrap intervals.
- :mod:`.comparison`: comparison table of all models against the baseline, the skill gate and
  the champion.
- :mod:`.forecast`: the next-year features, split-conformal prediction intervals, the forecast
  table.
- :mod:`.steps`: one function per Snakemake rule.
"""

import os

# MLflow's usage telemetry would try the network from every job, and the build machines have
# none: switched off here, before any module of this package (or a rule script through it)
# imports mlflow.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
