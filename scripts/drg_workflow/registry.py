"""The registry of transformations: every fact about a transformation in one entry.

A transformation is registered by decorating its function in :mod:`drg_workflow.transformations`
with :func:`register`, which records next to the function:

- its description: the first paragraph of the function's docstring, as plain text;
- its parameters: a :class:`Parameter` is a setting of its own,
  ``transformations.<name>.<parameter>`` in the config, declared here with its JSON Schema,
  default and description; a :class:`ConfigValue` passes an existing setting shared with other
  steps (e.g. ``lags.columns``);
- its default data contract: the fields of ``$defs/contract`` in
  ``workflow/schemas/config.schema.yaml`` whose defaults differ for the versions it makes.

Everything else is derived from the registry: the config schema's list of transformation names,
its ``transformations`` and ``contracts`` sections
(:func:`drg_workflow.config_validation.config_schema`), the keyword arguments each rule passes
(:func:`drg_workflow.chain.configured_parameters`) and the function a rule runs
(:func:`drg_workflow.transformations.apply_transformation`). So adding a transformation is
writing its decorated function and putting it in the chain; no schema edit.

v0 is not made by a transformation but by rule ``ingest_raw``, from the raw source; its default
contract (:data:`RAW_CONTRACT`) is here too, so that every contract default has this one home.

This module imports only the standard library and imports nothing that registers: the
registry is read through :mod:`drg_workflow.transformations`
(:func:`~drg_workflow.transformations.registered_transformations`,
:func:`~drg_workflow.transformations.default_contracts`), whose decorators fill it, so imports
point one way.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drg_workflow.raw_schema import RAW_KEY_COLUMNS, RAW_MONEY_COLUMNS

#: What ``ingest_raw`` does, as its contract's description (like a docstring's summary).
RAW_DESCRIPTION = "Read the raw source into v0, the raw table with the real file's column names."
#: v0's default contract (real column names: the raw file's, before sanitize_column_names).
RAW_CONTRACT: Mapping[str, Any] = {
    "keys": RAW_KEY_COLUMNS,
    "required_columns": ["Discharges"],
    "not_null": ["Discharges"],
    "finite": RAW_MONEY_COLUMNS,
    "ranges": {"Discharges": {"min": 1}, "APR Severity Of Illness Code": {"min": 1, "max": 4}},
}

# What the config schema generates itself around a parameter's JSON Schema.
_GENERATED_KEYWORDS = ("default", "description")
# Sphinx markup in a docstring: a role (":func:`x`" or ":func:`~a.x`") or a literal ("``x``").
_ROLE = re.compile(r":[a-z]+:`~?([^`]*)`")
_LITERAL = re.compile(r"``([^`]*)``")


class RegistryError(TypeError):
    """A transformation's registration contradicts its function (a programming error)."""


@dataclass(frozen=True)
class Parameter:
    """A parameter that is a setting of its own: ``transformations.<name>.<parameter>``.

    Attributes:
        schema: JSON Schema of the value (type, bounds), without default and description.
        default: The value when the config does not set it (its only home).
        description: What the setting does, for the schema and its error messages.
    """

    schema: Mapping[str, Any]
    default: Any
    description: str

    def config_schema(self) -> dict[str, Any]:
        """The setting's schema in the config: its JSON Schema with default and description."""
        return {**self.schema, "default": self.default, "description": self.description}


@dataclass(frozen=True)
class ConfigValue:
    """A parameter taken from a setting shared with other steps or the modelling.

    Attributes:
        key: The setting's dotted config key, e.g. ``lags.columns``.
        as_list: Pass ``[value]`` (``drop_non_lag_columns`` keeps a list holding the target).
    """

    key: str
    as_list: bool = False

    def value_in(self, config: Mapping[str, Any]) -> Any:
        """The parameter's value in the (validated) ``config``."""
        value: Any = config
        for part in self.key.split("."):
            value = value[part]
        return [value] if self.as_list else value


@dataclass(frozen=True)
class Transformation:
    """One registered transformation (see the module's docstring).

    Attributes:
        name: Its name in the config's chain: the function's name.
        function: ``frame -> frame`` with the keyword ``parameters``.
        description: The first paragraph of the function's docstring, as plain text.
        parameters: Parameter name -> where its value comes from, in the function's order.
        contract: The default contract of the versions it makes (``$defs/contract`` fields).
    """

    name: str
    function: Callable[..., Any]
    description: str
    parameters: Mapping[str, Parameter | ConfigValue] = field(default_factory=dict)
    contract: Mapping[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Parameter]:
        """The parameters that are settings of their own (``transformations.<name>``)."""
        return {n: p for n, p in self.parameters.items() if isinstance(p, Parameter)}


_REGISTRY: dict[str, Transformation] = {}


def _summary(function: Callable[..., Any]) -> str:
    """The first paragraph of ``function``'s docstring, on one line, with its Sphinx markup
    turned into Markdown-like backquotes (it is read in the schema, not rendered)."""
    paragraph = " ".join(inspect.cleandoc(function.__doc__ or "").split("\n\n")[0].split())
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"`\1`", paragraph))


def _check_registration(
    function: Callable[..., Any], parameters: Mapping[str, Parameter | ConfigValue]
) -> None:
    """The registration matches the function: the rules pass exactly the declared parameters
    as keywords, so a parameter declared but not taken (or taken but not declared) would only
    fail when a rule runs."""
    name = function.__name__
    if name in _REGISTRY:
        raise RegistryError(f"transformation {name} is registered twice")
    if not _summary(function):
        raise RegistryError(f"transformation {name} has no docstring to describe it")
    taken = list(inspect.signature(function).parameters)[1:]  # after the frame
    if taken != list(parameters):
        raise RegistryError(
            f"transformation {name} takes the parameters ({', '.join(taken)}) but is "
            f"registered with ({', '.join(parameters)}), in that order"
        )
    for parameter_name, parameter in parameters.items():
        if isinstance(parameter, Parameter):
            doubled = [k for k in _GENERATED_KEYWORDS if k in parameter.schema]
            if doubled:
                raise RegistryError(
                    f"transformation {name}, parameter {parameter_name}: its schema must not "
                    f"hold {', '.join(doubled)} (given by the Parameter itself)"
                )


def register(
    *,
    contract: Mapping[str, Any],
    parameters: Mapping[str, Parameter | ConfigValue] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a transformation with its ``parameters`` and the
    default ``contract`` of the versions it makes; the function itself is returned unchanged.

    Raises:
        RegistryError: The name is taken, the function has no docstring, or ``parameters``
            are not the function's keyword parameters in order.
    """
    parameters = dict(parameters or {})

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        _check_registration(function, parameters)
        _REGISTRY[function.__name__] = Transformation(
            name=function.__name__,
            function=function,
            description=_summary(function),
            parameters=parameters,
            contract=dict(contract),
        )
        return function

    return decorate


def registered_so_far() -> dict[str, Transformation]:
    """Name -> entry of every transformation registered so far, in the order they were
    defined. The registry is complete once :mod:`drg_workflow.transformations` is imported:
    read it through :func:`drg_workflow.transformations.registered_transformations`."""
    return dict(_REGISTRY)
