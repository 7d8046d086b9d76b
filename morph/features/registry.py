"""The feature registry: one name, one documented function, one scope.

Every feature is a function ``func(ctx, comp, **options)`` registered with
:func:`feature`. ``ctx`` is a :class:`~morph.features._context.Context` (one per cell, it
caches the arrays features share) and ``comp`` a
:class:`~morph.features._context.Compartment` (``None`` for cell-level features).

A feature returns a number, a ``dict`` of numbers (one per dimension: ``extent`` gives
``x``, ``y``, ``z``), or a 1-D array (a distribution). When a feature does not apply to a
cell (no axon, no soma, an axon shorter than the window...), it raises
:class:`NotApplicable` with the reason; :func:`morph.features.compute` then records NaN
and keeps the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from morph.errors import MorphError

#: Scopes: which compartments a feature is computed for.
#: ``neurite``: every neurite compartment (all_neurites, axon, basal_dendrite,
#: apical_dendrite, dendrite, custom_N); ``soma``; ``cell`` (the whole cell, key prefix
#: ``cell``); ``ais`` (the axon initial segment, key prefix ``ais``).
SCOPES = ("neurite", "soma", "cell", "ais")


class NotApplicable(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a feature that does not apply to a cell; the message is the reason."""


@dataclass(frozen=True)
class Feature:
    """A registered feature.

    Attributes
    ----------
    name
        Feature name (the part after the compartment in ``compartment.feature`` keys).
    func
        ``func(ctx, comp, **options)``.
    scope
        One of :data:`SCOPES`.
    family
        The module family (size, branching, angles, geometry, soma, sholl, ais,
        distributions).
    definition
        One-line definition.
    dims
        Names of the dimensions of a vector feature (keys ``feature_dim``), or ``None``.
    distribution
        Whether the feature returns a 1-D array (summarised as ``_mean``, ``_median``,
        ``_max`` in tables).
    default
        Whether :func:`morph.features.compute` includes it when no feature list is given.
    allen
        Name of the matching Allen (neuron_morphology / skeleton_keys) feature, if any.
    neurom
        Name of the matching NeuroM feature, if any.
    options
        Names of the keyword options the function accepts.
    undefined
        For a distribution: when one of its values is undefined (not finite), e.g. "a
        section ends on its first point". Summaries leave such values out and name this
        when none is left.
    """

    name: str
    func: Callable[..., Any]
    scope: str
    family: str
    definition: str
    dims: tuple[str, ...] | None = None
    distribution: bool = False
    default: bool = True
    allen: str | None = None
    neurom: str | None = None
    options: tuple[str, ...] = field(default_factory=tuple)
    undefined: str | None = None


REGISTRY: dict[str, Feature] = {}


def feature(
    name: str,
    *,
    scope: str = "neurite",
    family: str,
    definition: str,
    dims: tuple[str, ...] | None = None,
    distribution: bool = False,
    default: bool = True,
    allen: str | None = None,
    neurom: str | None = None,
    options: tuple[str, ...] = (),
    undefined: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` as feature ``name`` (decorator)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        key = f"{scope}:{name}" if scope in ("soma", "cell", "ais") else name
        if key in REGISTRY:
            raise ValueError(f"feature {name!r} registered twice")
        REGISTRY[key] = Feature(
            name=name,
            func=func,
            scope=scope,
            family=family,
            definition=definition,
            dims=dims,
            distribution=distribution,
            default=default,
            allen=allen,
            neurom=neurom,
            options=tuple(options),
            undefined=undefined,
        )
        return func

    return deco


def lookup(name: str, scope: str | None = None) -> Feature:
    """The feature called ``name`` (in ``scope`` when given)."""
    if scope in ("soma", "cell", "ais"):
        f = REGISTRY.get(f"{scope}:{name}")
        if f is not None:
            return f
    if scope in (None, "neurite") and name in REGISTRY:
        return REGISTRY[name]
    if scope is None:
        for s in ("soma", "cell", "ais"):
            if f"{s}:{name}" in REGISTRY:
                return REGISTRY[f"{s}:{name}"]
    raise MorphError(
        f"unknown feature {name!r}" + (f" for {scope}" if scope else ""),
        hint="run `morph features --list` (or morph.features.list_features()) to see every feature",
    )
