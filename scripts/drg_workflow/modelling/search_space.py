"""Search spaces from config: validation with key-path error messages, and Optuna suggestion.

A search space maps a parameter name to one of::

    {type: int | float, low: <number>, high: <number>, log: <bool, optional>, step: <optional>}
    {type: categorical, values: [<None | bool | int | float | str>, ...]}
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .models import MODEL_BUILDERS, RESERVED_PARAMS, accepted_params, build_model

if TYPE_CHECKING:  # the structural checks run on every Snakefile parse: keep them import-light
    import optuna

NUMERIC_TYPES = ("int", "float")
SPACE_TYPES = (*NUMERIC_TYPES, "categorical")
_NUMERIC_KEYS = {"type", "low", "high", "log", "step"}
_CATEGORICAL_KEYS = {"type", "values"}


def _model_path(model: str) -> str:
    return f"modelling.models.{model}"


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but `low: true` is a config mistake, not the number 1.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_model(model: str) -> None:
    if model not in MODEL_BUILDERS:
        raise ValueError(
            f"{_model_path(model)}: unknown model {model!r}; known models: {sorted(MODEL_BUILDERS)}"
        )


def _check_name(model: str, name: Any, path: str, accepted: set[str] | None) -> None:
    """``accepted`` is ``None`` for the structural check alone (no estimator built)."""
    if not isinstance(name, str):
        raise ValueError(f"{path}: parameter names must be strings")
    if name.rsplit("__", 1)[-1] in RESERVED_PARAMS:
        raise ValueError(f"{path}: {name!r} is set by the workflow (modelling.random_state)")
    if accepted is not None and name not in accepted:
        raise ValueError(
            f"{path}: {model} does not accept a parameter {name!r}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )


def _check_value(model: str, name: str, value: Any, path: str) -> None:
    """Reject values the estimator's own parameter constraints reject (e.g. ``alpha < 0``).

    Uses scikit-learn's parameter validation so config errors surface at setup, not as failed
    trials hours into tuning.
    """
    estimator = build_model(model, {name: value}, 0)
    steps = [s for _, s in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    for step in [estimator, *steps]:
        validate = getattr(step, "_validate_params", None)
        if validate is None:
            continue
        try:
            validate()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: value {value!r} rejected by {model}: {exc}") from None


def validate_search_space(
    model: str, space: Any, *, key_path: str | None = None, check_estimator: bool = True
) -> None:
    """Check a model's search space; errors name the offending key path.

    Example message: ``modelling.models.ridge.search_space.alpha: low (10) must be < high (1)``.

    ``check_estimator=False`` runs only the structural checks (model name, shapes, bounds, log,
    step), which need no scikit-learn import; the parameter names and values are then not
    checked against the estimator.

    Raises:
        ValueError: unknown model, empty space, parameter the estimator does not accept (checked
            against ``get_params()``), reserved parameter, unknown ``type``, missing/extra keys,
            non-numeric or misordered bounds, non-integer bounds for ``int``, ``log`` with
            ``low <= 0`` or with a ``step``, non-positive step, empty or non-scalar ``values``,
            or a bound/value the estimator rejects.
    """
    _check_model(model)
    base = key_path or f"{_model_path(model)}.search_space"
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"{base}: must be a non-empty mapping of parameter -> distribution")
    accepted = accepted_params(build_model(model, {}, 0)) if check_estimator else None
    for name, spec in space.items():
        path = f"{base}.{name}"
        _check_name(model, name, path, accepted)
        if not isinstance(spec, Mapping):
            raise ValueError(f"{path}: must be a mapping with a 'type' key")
        kind = spec.get("type")
        if kind not in SPACE_TYPES:
            raise ValueError(f"{path}.type: unknown type {kind!r}; expected one of {SPACE_TYPES}")
        allowed = _NUMERIC_KEYS if kind in NUMERIC_TYPES else _CATEGORICAL_KEYS
        extra = sorted(set(spec) - allowed)
        if extra:
            raise ValueError(
                f"{path}: unexpected keys {extra} for type {kind}; allowed: {sorted(allowed)}"
            )
        if kind == "categorical":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}.values: must be a non-empty list")
            for i, value in enumerate(values):
                if value is not None and not isinstance(value, bool | int | float | str):
                    raise ValueError(
                        f"{path}.values[{i}]: {value!r} is not None, bool, int, float or str "
                        "(Optuna stores categorical choices as scalars)"
                    )
                if check_estimator:
                    _check_value(model, name, value, f"{path}.values[{i}]")
            continue
        for bound in ("low", "high"):
            if bound not in spec:
                raise ValueError(f"{path}.{bound}: missing")
            value = spec[bound]
            if not _is_number(value):
                raise ValueError(f"{path}.{bound}: must be a number, got {value!r}")
            if kind == "int" and not isinstance(value, int):
                raise ValueError(f"{path}.{bound}: type int needs an integer, got {value!r}")
        low, high = spec["low"], spec["high"]
        if not low < high:
            # A fixed value belongs in fixed_params; low == high would waste trials.
            raise ValueError(f"{path}: low ({low}) must be < high ({high})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ValueError(f"{path}.log: must be true or false, got {log!r}")
        step = spec.get("step")
        if step is not None:
            if not _is_number(step) or step <= 0:
                raise ValueError(f"{path}.step: must be a positive number, got {step!r}")
            if kind == "int" and not isinstance(step, int):
                raise ValueError(f"{path}.step: type int needs an integer step, got {step!r}")
            if log and not (kind == "int" and step == 1):
                raise ValueError(f"{path}: step cannot be combined with log: true")
        if log and low <= 0:
            raise ValueError(f"{path}: log: true needs low > 0, got low ({low})")
        if check_estimator:
            _check_value(model, name, low, f"{path}.low")
            _check_value(model, name, high, f"{path}.high")


def validate_fixed_params(
    model: str, params: Any, *, key_path: str | None = None, check_estimator: bool = True
) -> None:
    """Check a model's fixed (untuned) parameters, e.g. ``n_jobs``; errors name the key path.

    ``check_estimator=False``: structural checks only (see :func:`validate_search_space`)."""
    _check_model(model)
    base = key_path or f"{_model_path(model)}.fixed_params"
    if params is None:
        return
    if not isinstance(params, Mapping):
        raise ValueError(f"{base}: must be a mapping of parameter -> value")
    accepted = accepted_params(build_model(model, {}, 0)) if check_estimator else None
    for name, value in params.items():
        path = f"{base}.{name}"
        _check_name(model, name, path, accepted)
        if check_estimator:
            _check_value(model, name, value, path)


def validate_model_config(
    model: str, cfg: Any, *, key_path: str | None = None, check_estimator: bool = True
) -> None:
    """Validate ``modelling.models.<model>``: ``search_space`` (required), ``fixed_params``
    (optional) and that no parameter is both fixed and tuned.

    ``check_estimator=False``: structural checks only, no scikit-learn import (see
    :func:`validate_search_space`)."""
    _check_model(model)
    base = key_path or _model_path(model)
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{base}: must be a mapping")
    if "search_space" not in cfg:
        raise ValueError(f"{base}.search_space: missing")
    validate_search_space(
        model, cfg["search_space"], key_path=f"{base}.search_space", check_estimator=check_estimator
    )
    fixed = cfg.get("fixed_params") or {}
    validate_fixed_params(
        model, fixed, key_path=f"{base}.fixed_params", check_estimator=check_estimator
    )
    both = sorted(set(fixed) & set(cfg["search_space"]))
    if both:
        raise ValueError(f"{base}: parameters {both} are both in fixed_params and search_space")


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
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec["values"]))
        else:
            raise ValueError(f"{name}: unknown type {kind!r}")
    return params
