"""Search spaces from config: the checks the config schema cannot make, and Optuna suggestion.

A search space maps a parameter name to one of::

    {type: int | float, low: <number>, high: <number>, log: <bool, optional>, step: <optional>}
    {type: categorical, values: [<None | bool | int | float | str>, ...]}

Their shape (keys, types, required entries) is checked by the config schema
(``workflow/schemas/config.schema.yaml``) before anything here runs. Here are the two passes it
cannot make, each error naming the config key:

- :func:`check_model_structure` (pure Python, runs at every Snakefile parse): known model,
  reserved parameters, ``low < high``, integer bounds and steps for ``int``, ``log`` needs
  ``low > 0`` and no step, no parameter both fixed and tuned, the region that reduces to
  persistence (every search space tunes ``max_log_change`` from 0,
  :data:`.model_params.PERSISTENCE_PARAMS`), and the loss weights (every model sets or tunes
  ``loss_weight_power``).
- :func:`check_model_estimator` (imports scikit-learn and fits tiny probe models, so it runs in
  the ``setup_study`` job, once per model configuration): the estimator accepts every parameter
  name and every configured value (bound, choice, fixed value).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .model_params import PERSISTENCE_PARAMS, RESERVED_PARAMS, TARGET_FORM_PARAMS
from .models import (
    CHEAP_FIT_PARAMS,
    MODEL_BUILDERS,
    ModelConfigError,
    accepted_params,
    build_model,
)

if TYPE_CHECKING:  # the structural checks run on every Snakefile parse: keep them import-light
    import optuna

#: Rows of the probe data the estimator check fits on (enough for every default estimator).
_PROBE_ROWS = 40


def model_key(model: str) -> str:
    """The config key of a model: ``modelling.models.<model>``."""
    return f"modelling.models.{model}"


def _check_known(model: str) -> None:
    if model not in MODEL_BUILDERS:
        raise ModelConfigError(
            f"{model_key(model)}: unknown model {model!r}; known models: {sorted(MODEL_BUILDERS)}"
        )


def _check_not_reserved(name: str, path: str) -> None:
    if name.rsplit("__", 1)[-1] in RESERVED_PARAMS:
        raise ModelConfigError(f"{path}: {name!r} is set by the workflow (modelling.random_state)")


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_distribution(spec: Mapping[str, Any], path: str) -> None:
    """The rules of a numeric distribution the schema cannot express."""
    if spec["type"] == "categorical":
        return
    low, high = spec["low"], spec["high"]
    if spec["type"] == "int":
        for bound in ("low", "high"):
            if not _is_integer(spec[bound]):
                raise ModelConfigError(
                    f"{path}.{bound}: type int needs an integer, got {spec[bound]!r}"
                )
    if not low < high:
        # A fixed value belongs in fixed_params; low == high would waste trials.
        raise ModelConfigError(f"{path}: low ({low}) must be < high ({high})")
    log, step = spec.get("log", False), spec.get("step")
    if step is not None:
        if spec["type"] == "int" and not _is_integer(step):
            raise ModelConfigError(f"{path}.step: type int needs an integer step, got {step!r}")
        if log and not (spec["type"] == "int" and step == 1):
            raise ModelConfigError(f"{path}: step cannot be combined with log: true")
    if log and low <= 0:
        raise ModelConfigError(f"{path}: log: true needs low > 0, got low ({low})")


def _check_persistence_region(space: Mapping[str, Mapping[str, Any]], base: str) -> None:
    """The search space reaches the parameters at which the model predicts persistence (its
    region that reduces to persistence)."""
    example = "{type: float, low: 0.0, high: 1.0}"
    for name, value in PERSISTENCE_PARAMS.items():
        path = f"{base}.search_space.{name}"
        spec = space.get(name)
        if spec is None:
            raise ModelConfigError(
                f"{path}: every search space tunes {name} from {value} (at {value} the model "
                f"predicts last year's value: the region that reduces to persistence), e.g. "
                f"{example}"
            )
        if spec["type"] == "categorical":
            values = list(spec["values"])
            numeric = all(_is_number(v) for v in values)
            if not numeric or value not in values or min(values) < 0:
                raise ModelConfigError(
                    f"{path}.values: numbers >= 0 including {value} (persistence), not {values}"
                )
        elif spec["low"] != value:
            raise ModelConfigError(
                f"{path}.low: must be {value} (persistence), not {spec['low']}; e.g. {example}"
            )


def _check_loss_weights(model_config: Mapping[str, Any], base: str) -> None:
    """The model says how its loss is weighted: ``loss_weight_power`` (a number >= 0) in its
    fixed_params, or tuned in its search_space."""
    space, fixed = model_config["search_space"], model_config.get("fixed_params") or {}
    name = "loss_weight_power"
    if name in fixed:
        if not _is_number(fixed[name]) or fixed[name] < 0:
            raise ModelConfigError(
                f"{base}.fixed_params.{name}: a number >= 0, not {fixed[name]!r}"
            )
    elif name in space:
        spec = space[name]
        values = spec["values"] if spec["type"] == "categorical" else [spec["low"]]
        if not all(_is_number(v) and v >= 0 for v in values):
            raise ModelConfigError(f"{base}.search_space.{name}: numbers >= 0 only")
    else:
        raise ModelConfigError(
            f"{base}: set {name} in fixed_params (1: each row's loss weighted by last year's "
            f"value, as dollars weigh it; 0: unweighted) or tune it in search_space, e.g. "
            f"{{type: categorical, values: [0.0, 1.0]}}"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_model_structure(model: str, model_config: Mapping[str, Any]) -> None:
    """The checks of ``modelling.models.<model>`` that need no scikit-learn (see the module).

    ``model_config`` is schema-valid: ``{search_space: {...}, fixed_params: {...}}``.

    Raises:
        ModelConfigError: naming the config key.
    """
    _check_known(model)
    base = model_key(model)
    space = model_config["search_space"]
    fixed = model_config.get("fixed_params") or {}
    for name, spec in space.items():
        path = f"{base}.search_space.{name}"
        _check_not_reserved(name, path)
        _check_distribution(spec, path)
    for name in fixed:
        _check_not_reserved(name, f"{base}.fixed_params.{name}")
    both = sorted(set(fixed) & set(space))
    if both:
        raise ModelConfigError(
            f"{base}: parameters {both} are both in fixed_params and search_space"
        )
    _check_persistence_region(space, base)
    _check_loss_weights(model_config, base)


def _configured_values(model_config: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """Every ``(key suffix, parameter, value)`` the config can hand the estimator, the fixed
    parameters first (the search space's values are checked beside them)."""
    values = [
        (f"fixed_params.{name}", name, value)
        for name, value in (model_config.get("fixed_params") or {}).items()
    ]
    for name, spec in model_config["search_space"].items():
        if spec["type"] == "categorical":
            values += [
                (f"search_space.{name}.values[{i}]", name, v) for i, v in enumerate(spec["values"])
            ]
        else:
            values += [(f"search_space.{name}.{b}", name, spec[b]) for b in ("low", "high")]
    return values


def _probe_data() -> tuple[Any, Any]:
    """A tiny regression problem, enough for any estimator here to run its parameter checks."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(_PROBE_ROWS, 3)), columns=["a", "b", "c"])
    return X, X["a"].to_numpy() + rng.normal(scale=0.1, size=_PROBE_ROWS)


def check_model_estimator(model: str, model_config: Mapping[str, Any]) -> None:
    """Check ``modelling.models.<model>`` against its estimator: every parameter name is one
    the estimator accepts, and every configured value (each bound, choice and fixed value) is
    one it accepts, so that a bad value fails here, once, not as failed trials hours into
    tuning.

    Values are checked through scikit-learn's public API: the estimator is fitted on tiny
    probe data with the one value set beside the fixed parameters (fitting validates the
    parameters), its other size parameters at their cheapest (:data:`.models.CHEAP_FIT_PARAMS`).

    Raises:
        ModelConfigError: one line naming the config key.
    """
    check_model_structure(model, model_config)
    base = model_key(model)
    # The target form's own parameters are checked by check_model_structure.
    accepted = accepted_params(build_model(model, {}, 0)) | set(TARGET_FORM_PARAMS)
    for section in ("search_space", "fixed_params"):
        for name in model_config.get(section) or {}:
            if name not in accepted:
                raise ModelConfigError(
                    f"{base}.{section}.{name}: {model} does not accept a parameter {name!r}; "
                    f"accepted: {', '.join(sorted(accepted))}"
                )
    X, y = _probe_data()
    # Every trial and the final fit have the fixed parameters, so each value is checked beside
    # them (one may need another: max_samples needs bootstrap=True in extra trees).
    fixed = {
        name: value
        for name, value in (model_config.get("fixed_params") or {}).items()
        if name not in TARGET_FORM_PARAMS
    }
    context = {**CHEAP_FIT_PARAMS.get(model, {}), **fixed}
    for key, name, value in _configured_values(model_config):
        if name in TARGET_FORM_PARAMS:
            continue
        try:
            with warnings.catch_warnings():
                # e.g. "max_samples=0.1 of 40 rows is few": true of the probe, not of the data.
                warnings.simplefilter("ignore", UserWarning)
                build_model(model, {**context, name: value}, 0).fit(X, y)
        except (ValueError, TypeError) as error:
            reason = " ".join(str(error).split())
            raise ModelConfigError(
                f"{base}.{key}: value {value!r} rejected by {model}: {reason}"
            ) from None


def suggest_params(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Suggest one value per parameter of a (validated) search space."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        log = bool(spec.get("log", False))
        if kind == "int":
            params[name] = trial.suggest_int(
                name, spec["low"], spec["high"], step=spec.get("step") or 1, log=log
            )
        elif kind == "float":
            params[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), step=spec.get("step"), log=log
            )
        else:
            params[name] = trial.suggest_categorical(name, list(spec["values"]))
    return params
