"""Modelling on the v13 data: features, year splits, models, tuning, final refit, comparison.

Modules (imported explicitly; this package does not re-export them so that a rule needing only
the data helpers does not pay for ``import mlflow``, which takes 1-2 s):

- :mod:`.data`: constants, feature selection, year split, year folds, ``prepare_modelling_data``.
- :mod:`.metrics`: :func:`~.metrics.regression_metrics`.
- :mod:`.baseline`: naive persistence baseline, evaluated like the models.
- :mod:`.models`: ``MODEL_BUILDERS`` registry and default search spaces.
- :mod:`.search_space`: validation of search-space / fixed-parameter config, Optuna suggestion.
- :mod:`.tuning`: Optuna storage, study + MLflow experiment setup, CV objective, tuning shards.
- :mod:`.final`: final refit, predictions, importances, MLflow logging of the final run.
- :mod:`.comparison`: comparison table of all models against the baseline.
- :mod:`.synthetic`: a small synthetic v13 frame for tests and smoke runs.
"""
