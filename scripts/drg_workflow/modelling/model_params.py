"""What every model shares and the config checks need without scikit-learn: the parameters
the workflow reserves, the parameters of the target form, the point where every model predicts
persistence, and the threads a fit may use.

:mod:`.models` (the builders) and :mod:`.target_form` (the regressor wrapper) both read these;
neither imports the other's module for them, so the imports point one way.
"""

from __future__ import annotations

# Set by the workflow (fixed per run so that trials differ only by their parameters); a config
# that tries to set or tune them is rejected.
RESERVED_PARAMS: frozenset[str] = frozenset({"random_state"})
#: Parameters every model has because it learns in a target form
#: (:class:`.target_form.TargetFormRegressor`), not its regressor: a search space may tune them
#: (every other parameter goes to the regressor). Declared here, where the config checks read
#: them without importing scikit-learn.
TARGET_FORM_PARAMS: tuple[str, ...] = ("max_log_change", "loss_weight_power")
#: The parameter values at which every model predicts persistence (last year's value) exactly:
#: each search space must reach them (its region that reduces to persistence), and every
#: study's first trial tries them.
PERSISTENCE_PARAMS: dict[str, float] = {"max_log_change": 0.0}


#: Threads a model fit may use (:func:`set_fit_threads`).
_fit_threads = 1


def set_fit_threads(threads: int) -> None:
    """Let every model fit of this process use ``threads`` threads: the rule scripts pass
    their rule's ``threads`` (Snakemake schedules jobs by them, so ``--cores`` bounds the CPU
    the jobs use together). The random forest builds its trees in that many threads (joblib);
    histogram gradient boosting uses the OpenMP threads Snakemake sets for the job
    (``OMP_NUM_THREADS`` = the rule's threads). Neither changes results: a forest's trees do
    not depend on the threads that build them, and predictions stay single-threaded (a
    forest's threaded prediction sums its trees in whatever order they finish, which changes
    the last bits); gradient boosting's fits are the same for any number of OpenMP threads
    (``tests/test_modelling_models.py`` checks both)."""
    global _fit_threads
    _fit_threads = max(1, int(threads))


def fit_threads() -> int:
    """The threads a model fit may use in this process (1 unless :func:`set_fit_threads`)."""
    return _fit_threads
