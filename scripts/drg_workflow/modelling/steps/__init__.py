"""The workflow's modelling steps, one function per Snakemake rule, named after it, in a
module per stage (matching ``workflow/rules/models.smk`` and ``forecast.smk``):

- :mod:`.split`: ``split_years``
- :mod:`.tuning`: ``setup_mlflow``, ``setup_study``, ``tune_shard``
- :mod:`.fit`: ``train_final``, ``evaluate_baseline``
- :mod:`.backtest`: ``backtest_model``, ``score_backtest`` (and ``log_backtest``)
- :mod:`.champion`: ``compare_models``, ``refit_champion``, ``register_champion``
- :mod:`.forecast`: ``forecast``
- :mod:`.model_card`: ``model_card``
- :mod:`.shared`: what several of them use (typed settings from params, the data, the study's
  results, the settings hash and study name, writing a table)

A rule script only reads ``snakemake.input``/``params``, calls its step and writes the results;
the steps take paths and dicts and return plain results, so they are testable without
Snakemake. The params dicts come from ``workflow/rules/common/modelling.smk``
(``mlflow_settings``, ``shared_modelling_settings``, ``model_settings``) and become the typed
settings of :mod:`drg_workflow.modelling.settings` here, once, with the years resolved from the
data by the ``split_years`` rule (``results/models/split.json``,
:class:`drg_workflow.modelling.years.ModellingYears`).
"""
