"""Morphometric features: the Allen Cell Types set, NeuroM-style distributions, 3-D Sholl
and axon-initial-segment features, from one registry of named functions.

Keys are ``compartment.feature`` (``axon.total_length``, ``basal_dendrite.extent_x``,
``soma.surface_area``, ``cell.early_branch_path``, ``ais.diameter_mean_20``...). Vector
features add the dimension (``extent_x``), distributions their summary (``_mean``,
``_median``, ``_max``). A feature that does not apply is NaN, with the reason available
(``compute(..., reasons=True)``; ``table(...).attrs["reasons"]``).

Conventions (soma centre, soma edge, multifurcations, type changes, Allen vs NeuroM) are
written down in ``docs/conventions.md``; every feature's definition in ``docs/features.md``
and in :func:`list_features`.

Examples
--------
>>> from morph import Morphology
>>> import morph.features as mf
>>> m = Morphology([[0, 0, 0], [0, 10, 0], [0, 30, 0]], [5, 1, 1], [1, 3, 3], [-1, 0, 1])
>>> mf.compute(m, features=["total_length"], compartments=["basal_dendrite"])
{'basal_dendrite.total_length': 20.0}
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from morph.errors import MorphError
from morph.features import ais, angles, branching, distributions, geometry, size, soma  # noqa: F401
from morph.features._context import CONVENTIONS, Context
from morph.features._options import check_options
from morph.features.registry import REGISTRY, Feature, NotApplicable, lookup
from morph.features.sholl import ShollResult, sholl
from morph.morphology import SOMA, Morphology, type_name

__all__ = [
    "CONVENTIONS",
    "FeatureInfo",
    "NotApplicable",
    "ShollResult",
    "compute",
    "get",
    "list_features",
    "sholl",
    "table",
]

NEURITE_COMPARTMENTS = ("all_neurites", "axon", "basal_dendrite", "apical_dendrite", "dendrite")
SPECIAL = ("soma", "cell", "ais")
DIST_STATS = ("mean", "median", "max")


class FeatureInfo(NamedTuple):
    """One row of :func:`list_features`."""

    name: str
    applies_to: str
    definition: str
    family: str
    allen: str | None
    neurom: str | None


def list_features() -> list[FeatureInfo]:
    """Every registered feature: name, compartments it applies to, one-line definition."""
    out = []
    rank = {"neurite": 0, "soma": 1, "cell": 2, "ais": 3}
    for f in sorted(REGISTRY.values(), key=lambda f: rank[f.scope]):
        applies = {
            "neurite": "all_neurites, axon, basal_dendrite, apical_dendrite, dendrite, custom_N",
            "soma": "soma",
            "cell": "cell",
            "ais": "ais",
        }[f.scope]
        name = f.name
        if f.dims:
            name += "_{" + ",".join(f.dims) + "}" if len(f.dims) <= 9 else "_<dim>"
        if f.distribution:
            name += " (distribution)"
        out.append(FeatureInfo(name, applies, f.definition, f.family, f.allen, f.neurom))
    return out


def _default_compartments(m: Morphology) -> list[str]:
    comps = list(NEURITE_COMPARTMENTS)
    for t in sorted(m.type_counts()):
        if t not in (SOMA, 2, 3, 4):
            comps.append(type_name(t))
    return comps + list(SPECIAL)


def _names(arg: Any, what: str) -> list[str] | None:
    """A list of names from ``None``, one name, or an iterable of names."""
    if arg is None:
        return None
    if isinstance(arg, str):
        return [arg]
    try:
        return list(arg)
    except TypeError:
        raise MorphError(f"{what} must be a name or a list of names, got {arg!r}") from None


def _select(features: Sequence[str] | None, scope: str) -> list[Feature]:
    if features is None:
        return [f for f in REGISTRY.values() if f.scope == scope and f.default]
    out = []
    for name in features:
        for f in REGISTRY.values():
            if f.scope == scope and f.name == name:
                out.append(f)
    return out


def _output_suggestion(name: str) -> tuple[str, str | None] | None:
    """``(feature, compartment or None)`` to ask for instead of ``name`` when it is a key
    :func:`compute` outputs (``extent_x``, ``section_lengths_mean``, ``axon.total_length``)
    rather than a feature name; None when it is not."""
    comp = None
    if "." in name:
        comp, name = name.split(".", 1)
    hits = {f.name for f in REGISTRY.values() if f.name == name}
    for f in REGISTRY.values():
        rest = name[len(f.name) + 1 :] if name.startswith(f.name + "_") else None
        if rest is not None and ((f.dims and rest in f.dims) or (f.distribution and rest in DIST_STATS)):
            hits.add(f.name)
    if not hits:
        return None
    return sorted(hits)[0], comp


def _tip(name: str) -> str | None:
    """The hint for an output key given as a feature name to :func:`compute`."""
    s = _output_suggestion(name)
    if s is None:
        return None
    feat, comp = s
    return f"for {name!r} ask for features=[{feat!r}]" + (f" with compartments=[{comp!r}]" if comp else "")


def _check(features: str | Sequence[str] | None, options: dict[str, Any]) -> None:
    """Refuse unknown feature names (with the feature to ask for when a name is an output
    key), unknown options and option values out of range."""
    features = _names(features, "features")
    if features is not None:
        names = {f.name for f in REGISTRY.values()}
        for n in features:
            if not isinstance(n, str):
                raise MorphError(
                    f"feature names must be strings, got {n!r}",
                    hint="run `morph features --list` to see every feature",
                )
        bad = [n for n in features if n not in names]
        if bad:
            tips = [t for n in bad if (t := _tip(n))]
            raise MorphError(
                f"unknown feature(s): {', '.join(bad)}",
                hint="; ".join(tips) if tips else "run `morph features --list` to see every feature",
            )
    known = {o for f in REGISTRY.values() for o in f.options}
    bad = [k for k in options if k not in known]
    if bad:
        raise MorphError(f"unknown feature option(s): {', '.join(bad)}", hint=f"known options: {', '.join(sorted(known))}")
    check_options(options)


def _check_compartments(compartments: Any) -> list[str] | None:
    """Compartment names from a name, a list of names or SWC type numbers (2 -> axon)."""
    if compartments is None:
        return None
    from morph.morphology import compartment_types

    items = [compartments] if isinstance(compartments, (str, int, np.integer)) else _names(compartments, "compartments")
    out = []
    known = ", ".join((*NEURITE_COMPARTMENTS, "custom_N", "undefined", *SPECIAL))
    for c in items or []:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (str, int, np.integer)):
            raise MorphError(f"unknown compartment {c!r}", hint=f"use one of: {known}, or an SWC type number")
        if isinstance(c, (int, np.integer)) or c.strip().isdigit():
            t = int(c)
            if t == SOMA:
                c = "soma"
            else:
                c = type_name(t)
        if c not in SPECIAL:
            try:
                compartment_types(c)
            except MorphError:
                raise MorphError(f"unknown compartment {c!r}", hint=f"use one of: {known}") from None
        out.append(c)
    return out


def _run(f: Feature, ctx: Context, comp: Any, options: dict[str, Any]) -> Any:
    kw = {k: v for k, v in options.items() if k in f.options}
    return f.func(ctx, comp, **kw)


def _emit(out: dict, reasons: dict, prefix: str, f: Feature, value: Any, reason: str | None) -> None:
    base = f"{prefix}.{f.name}"
    if f.dims:
        notes = {} if value is None else value.get("_reasons", {})
        for d in f.dims:
            key = f"{base}_{d}"
            v = np.nan if value is None else value.get(d, np.nan)
            out[key] = float(v)
            if reason is not None or not math.isfinite(out[key]):
                reasons[key] = reason or notes.get(d, "not defined for this cell")
        return
    if f.distribution:
        raw = None if value is None else np.asarray(value, dtype=np.float64)
        arr = None if raw is None else raw[np.isfinite(raw)]  # undefined values are left out
        label = f.name.replace("_", " ")
        if reason is None and (arr is None or arr.size == 0):
            if raw is None or raw.size == 0:
                reason = f"no {label} in the {prefix}"
            else:
                reason = (
                    f"every {label} value of the {prefix} ({raw.size}) is undefined: "
                    f"{f.undefined or 'not a finite number'}"
                )
        for s in DIST_STATS:
            key = f"{base}_{s}"
            if arr is None or arr.size == 0:
                out[key] = np.nan
                reasons[key] = reason or "not defined for this cell"
            else:
                out[key] = float(getattr(np, s)(arr))
        return
    out[base] = np.nan if value is None else float(value)
    if not math.isfinite(out[base]):
        reasons[base] = reason or "not defined for this cell"


def compute(
    m: Morphology,
    compartments: str | int | Iterable[str | int] | None = None,
    features: str | Sequence[str] | None = None,
    *,
    convention: str = "allen",
    reasons: bool = False,
    **options: Any,
) -> dict[str, float] | tuple[dict[str, float], dict[str, str]]:
    """Compute features of one cell as a flat dict ``{"compartment.feature": value}``.

    Parameters
    ----------
    m
        The cell (micrometres).
    compartments
        Compartments to measure: neurite compartments (``all_neurites``, ``axon``,
        ``basal_dendrite``, ``apical_dendrite``, ``dendrite``, ``custom_N``) and the special
        ``soma``, ``cell`` and ``ais``; one name or a list. An SWC type number stands for
        its compartment (``2`` is ``axon``, ``7`` is ``custom_7``). Default: all of them,
        custom types present included.
    features
        Feature names (see :func:`list_features`), one name or a list; default every
        default feature. Output keys (``extent_x``, ``axon.total_length``) are not feature
        names: the error says which feature and compartment to ask for.
    convention
        ``"allen"`` (default) or ``"neurom"``: where the two pipelines define a feature
        differently, which definition to use (``docs/conventions.md``).
    reasons
        Also return ``{key: reason}`` for every NaN value.
    **options
        Feature options: ``sholl_step`` (um, 10), ``z_scale`` (3, stem exit angles),
        ``overlap_bin_width`` (um, 5), ``pia_direction`` (x, y, z; AIS angle when the
        cell has no apical dendrite), ``direction_length`` (um, 10; AIS direction).

    Returns
    -------
    dict, or (dict, dict) with ``reasons=True``

    Raises
    ------
    MorphError
        An unknown compartment, feature or option, or an option value out of range
        (checked before anything is measured).
    """
    features = _names(features, "features")
    _check(features, options)
    comps = _check_compartments(compartments)
    ctx = Context(m, convention)
    if comps is None:
        comps = _default_compartments(m)
    out: dict[str, float] = {}
    why: dict[str, str] = {}
    present = set(m.type_counts())
    seen: dict[tuple[int, ...], str] = {}
    for name in comps:
        scope = name if name in SPECIAL else "neurite"
        comp = None if name in SPECIAL else ctx.comp(name)
        if comp is not None and comp.n:
            # a compartment with the same nodes as one already measured (dendrite without
            # apical dendrite...) has the same values: copy them
            sig = tuple(sorted(set(comp.types) & present))
            if sig in seen:
                _copy(out, why, seen[sig], name)
                continue
            seen[sig] = name
        for f in _select(features, scope):
            try:
                val, reason = _run(f, ctx, comp, options), None
            except NotApplicable as e:
                val, reason = None, str(e)
            _emit(out, why, name, f, val, reason)
    return (out, why) if reasons else out


def _copy(out: dict, why: dict, src: str, dst: str) -> None:
    pre = f"{src}."
    for k in [k for k in out if k.startswith(pre)]:
        nk = dst + k[len(src) :]
        out[nk] = out[k]
        if k in why:
            why[nk] = why[k].replace(src, dst)


def get(
    name: str,
    m: Morphology,
    compartment: str | int = "all_neurites",
    *,
    convention: str = "allen",
    **options: Any,
) -> Any:
    """One feature, NeuroM style: ``get("section_lengths", m, compartment="axon")``.

    Returns a float, a dict (vector features: ``{"x": .., "y": .., "z": ..}``) or an array
    (distributions). A feature that does not apply gives NaN (an empty array for a
    distribution); :func:`compute` with ``reasons=True`` says why.

    Parameters
    ----------
    name
        Feature name (see :func:`list_features`).
    m
        The cell (micrometres).
    compartment
        Compartment name, or an SWC type number (``2`` is ``axon``).
    convention
        ``"allen"`` or ``"neurom"``.
    **options
        Feature options, as for :func:`compute`.

    Raises
    ------
    MorphError
        An unknown feature, compartment or option, or an option value out of range.
    """
    compartment = (_check_compartments(compartment) or ["all_neurites"])[0]
    scope = compartment if compartment in SPECIAL else "neurite"
    try:
        f = lookup(name, scope)
    except MorphError:
        try:
            f = lookup(name)  # a soma, cell or AIS feature asked for without its compartment
        except MorphError:
            s = _output_suggestion(str(name))
            if s is None:
                raise
            feat, comp = s
            raise MorphError(
                f"unknown feature {name!r}: it is an output key of the feature {feat!r}",
                hint=f"ask for get({feat!r}, m, {comp or compartment!r})",
            ) from None
        if compartment != "all_neurites" or f.scope == "neurite":
            raise
        compartment = f.scope
    _check(None, options)
    ctx = Context(m, convention)
    comp = None if compartment in SPECIAL else ctx.comp(compartment)
    try:
        value = _run(f, ctx, comp, options)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "_reasons"}
        return value
    except NotApplicable:
        if f.distribution:
            return np.zeros(0)
        if f.dims:
            return dict.fromkeys(f.dims, float("nan"))
        return float("nan")


class Notes(dict):
    """A dict kept in ``DataFrame.attrs`` by reference: pandas deep-copies ``attrs`` on
    every operation, which would copy thousands of reasons each time."""

    def __deepcopy__(self, memo: dict) -> Notes:
        return self

    def __copy__(self) -> Notes:
        return self


def _load(item: Any) -> tuple[str, Morphology]:
    if isinstance(item, Morphology):
        return (item.name or (Path(item.source).stem if item.source else "cell")), item
    from morph.io import read_swc

    p = Path(os.fspath(item))
    return p.stem, read_swc(p)


def table(
    paths_or_morphologies: Iterable[Any],
    compartments: str | int | Iterable[str | int] | None = None,
    features: str | Sequence[str] | None = None,
    *,
    convention: str = "allen",
    progress: bool | None = None,
    **options: Any,
) -> Any:
    """Features of many cells as a pandas DataFrame: one row per cell (index: file stem or
    cell name), one column per ``compartment.feature``.

    A file that cannot be read or measured does not stop the run: it is left out of the
    rows and recorded in ``df.attrs["failed"]`` (``{name: error message}``). The reasons
    for NaN values are in ``df.attrs["reasons"]`` (``{name: {column: reason}}``).
    A progress bar is shown for more than one cell (``progress=False`` or ``-q`` hides it).
    """
    import pandas as pd

    from morph import progress as prog

    features = _names(features, "features")
    _check(features, options)
    if convention not in CONVENTIONS:
        raise MorphError(f"unknown convention {convention!r}", hint="use 'allen' or 'neurom'")
    items = list(paths_or_morphologies)
    comps = _check_compartments(compartments)
    rows: dict[str, dict[str, float]] = {}
    reasons: dict[str, dict[str, str]] = {}
    failed: dict[str, str] = {}
    quiet = (len(items) < 2) if progress is None else not progress
    names_seen: dict[str, int] = {}
    for item in prog.bar(items, total=len(items), desc="features", unit="cell", quiet=True if quiet else None):
        label = str(item.name if isinstance(item, Morphology) else Path(os.fspath(item)).stem)
        try:
            label, m = _load(item)
            k = names_seen.get(label, 0)
            names_seen[label] = k + 1
            if k:
                label = f"{label}#{k + 1}"
            vals, why = compute(m, comps, features, convention=convention, reasons=True, **options)
        except MorphError as e:
            failed[label] = str(e)
            continue
        except Exception as e:  # a file that breaks a feature must not stop the batch
            failed[label] = f"{type(e).__name__}: {e}"
            continue
        rows[label] = vals
        reasons[label] = why
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "cell"
    cols = list(df.columns)
    for label, vals in rows.items():
        for c in cols:
            if c not in vals:
                reasons[label][c] = f"the cell has no {c.split('.', 1)[0]} nodes"
    df.attrs["reasons"] = Notes(reasons)
    df.attrs["failed"] = Notes(failed)
    df.attrs["convention"] = convention
    return df
