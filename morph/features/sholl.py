"""3-D Sholl analysis: crossings of concentric spheres, per compartment.

A neurite edge (node to parent; the soma-to-first-node edge and soma-internal edges left
out, as in NeuroM) crosses the sphere of radius ``R`` when ``min(d) <= R <= max(d)``, ``d``
the distances of its two ends from the centre. Counting is vectorised: sort the edges'
near and far distances once, then two ``searchsorted`` per radius set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from morph.errors import MorphError
from morph.features._context import Compartment, Context, pick
from morph.features._options import number, vector3
from morph.features.registry import NotApplicable, feature
from morph.morphology import Morphology


@dataclass
class ShollResult:
    """Sholl crossings and their summary numbers.

    Attributes
    ----------
    radii
        Sphere radii (um), ``step, 2 step, ...``.
    crossings
        Crossings per radius, one array per compartment.
    center
        Centre of the spheres.
    step
        Radius step (um).
    max_crossings, radius_of_max
        Largest crossing count and the smallest radius where it occurs, per compartment.
    critical_value, critical_radius
        Maximum of a polynomial fitted to crossings against radius (degree
        ``min(6, points - 1)``) and the radius where it occurs (the fitted Sholl maximum).
    regression_coefficient
        Sholl's decay coefficient k from the semi-log regression ``ln(N / V) = -k r + c``
        with ``V = 4/3 pi r^3`` (3-D), over radii with at least one crossing.
    """

    radii: NDArray[np.float64]
    crossings: dict[str, NDArray[np.int64]]
    center: NDArray[np.float64]
    step: float
    max_crossings: dict[str, float] = field(default_factory=dict)
    radius_of_max: dict[str, float] = field(default_factory=dict)
    critical_value: dict[str, float] = field(default_factory=dict)
    critical_radius: dict[str, float] = field(default_factory=dict)
    regression_coefficient: dict[str, float] = field(default_factory=dict)

    def summary(self, compartment: str) -> dict[str, float]:
        """The summary numbers of one compartment."""
        return {
            "max_crossings": self.max_crossings[compartment],
            "radius_of_max": self.radius_of_max[compartment],
            "critical_value": self.critical_value[compartment],
            "critical_radius": self.critical_radius[compartment],
            "regression_coefficient": self.regression_coefficient[compartment],
        }


def _edge_distances(ctx: Context, comp: Compartment, center: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    m = ctx.m
    e = comp.mask & (m.parent >= 0) & ~m.parent_is_soma
    if ctx.has_soma and np.array_equal(center, ctx.soma_center):
        dist = ctx.dist_to_soma
    else:
        d = m.xyz - center
        dist = np.sqrt(np.einsum("ij,ij->i", d, d))
    a = dist[e]
    b = dist[m.parent[e]]
    return np.sort(np.minimum(a, b)), np.sort(np.maximum(a, b))


MAX_SPHERES = 100_000
"""Most Sholl spheres one analysis draws (its curve fit samples 20 points per sphere)."""


def crossings_at(near: NDArray, far: NDArray, radii: NDArray) -> NDArray[np.int64]:
    """Number of edges with ``near <= R <= far`` for every ``R`` (sorted inputs)."""
    return (np.searchsorted(near, radii, side="right") - np.searchsorted(far, radii, side="left")).astype(
        np.int64
    )


def _summaries(res: ShollResult, name: str) -> None:
    r, c = res.radii, res.crossings[name].astype(np.float64)
    if c.size == 0 or c.max() == 0:
        for d in (res.max_crossings, res.radius_of_max, res.critical_value, res.critical_radius,
                  res.regression_coefficient):
            d[name] = 0.0 if d is res.max_crossings else float("nan")
        return
    k = int(np.argmax(c))
    res.max_crossings[name] = float(c[k])
    res.radius_of_max[name] = float(r[k])
    deg = min(6, r.size - 1)
    if deg >= 1:
        scale = r.max()
        coef = np.polynomial.polynomial.polyfit(r / scale, c, deg)
        fine = np.linspace(r.min(), r.max(), 20 * r.size)
        fit = np.polynomial.polynomial.polyval(fine / scale, coef)
        j = int(np.argmax(fit))
        res.critical_value[name] = float(fit[j])
        res.critical_radius[name] = float(fine[j])
    else:
        res.critical_value[name] = float(c[k])
        res.critical_radius[name] = float(r[k])
    pos = (c > 0) & (r > 0)
    if np.count_nonzero(pos) >= 2:
        y = np.log(c[pos] / (4.0 / 3.0 * np.pi * r[pos] ** 3))
        slope = np.polynomial.polynomial.polyfit(r[pos], y, 1)[1]
        res.regression_coefficient[name] = float(-slope)
    else:
        res.regression_coefficient[name] = float("nan")


def sholl_center(m: Morphology, *, _ctx: Context | None = None) -> NDArray[np.float64]:
    """The centre of :func:`sholl`'s spheres when none is given: the soma centre features
    measure from (see ``docs/conventions.md``), or without a soma the root with the most
    cable below it."""
    ctx = _ctx if _ctx is not None else Context(m)
    if ctx.has_soma:
        return np.asarray(ctx.soma_center, dtype=np.float64).copy()
    if len(m):
        return m.xyz[_main_root(ctx)].copy()
    raise MorphError("empty morphology: no Sholl centre", file=m.source)


def sholl(
    m: Morphology,
    step: float = 10.0,
    center: ArrayLike | None = None,
    compartments: Sequence[str] = ("all_neurites",),
    max_radius: float | None = None,
    *,
    _ctx: Context | None = None,
) -> ShollResult:
    """3-D Sholl analysis.

    Parameters
    ----------
    m
        The cell (micrometres).
    step
        Radius step in um; radii are ``step, 2 step, ...`` up to ``max_radius``.
    center
        Centre of the spheres, three finite numbers (default: the soma centre; without
        soma, the root with the most cable below it).
    compartments
        Compartments to count (``all_neurites``, ``axon``, ``dendrite``...); one name or a
        list.
    max_radius
        Largest radius, positive (default: the farthest node from the centre, rounded up
        to a step).

    Returns
    -------
    ShollResult
        ``radii``, ``crossings[compartment]`` and the summary numbers.

    Raises
    ------
    MorphError
        A step or max_radius that is not a positive finite number, a centre that is not
        three finite numbers, an unknown compartment, or more than :data:`MAX_SPHERES`
        spheres.

    Examples
    --------
    >>> import morph.features as mf
    >>> from morph import Morphology
    >>> m = Morphology([[0, 0, 0], [0, 25, 0]], [1, 1], [1, 3], [-1, 0])
    >>> r = mf.sholl(m, step=10)
    >>> r.radii.tolist(), r.crossings["all_neurites"].tolist()
    ([10.0, 20.0, 30.0], [0, 0, 0])
    """
    step = number("step", step, hint="give the Sholl step in micrometres")
    if max_radius is not None:
        max_radius = number("max_radius", max_radius, hint="give the largest sphere radius in micrometres")
    if isinstance(compartments, str):
        compartments = (compartments,)
    ctx = _ctx if _ctx is not None else Context(m)
    if center is None:
        c = sholl_center(m, _ctx=ctx)
    else:
        c = vector3("center", center, hint="give the sphere centre as x, y, z in micrometres")
    if max_radius is None:
        if ctx.has_soma and np.array_equal(c, ctx.soma_center):
            far = float(ctx.dist_to_soma.max(initial=0.0))
        else:
            far = float(np.max(np.linalg.norm(m.xyz - c, axis=1), initial=0.0))
        spheres = max(1.0, float(np.ceil(far / step)))
        if spheres <= MAX_SPHERES:
            max_radius = step * spheres
    else:
        spheres = float(np.floor(max_radius / step + 1e-9))
    if spheres > MAX_SPHERES:
        raise MorphError(
            f"a Sholl step of {step:.3g} um makes {spheres:.0f} spheres (at most {MAX_SPHERES})"
            if spheres < 1e12
            else f"a Sholl step of {step:.3g} um makes {spheres:.3g} spheres (at most {MAX_SPHERES})",
            file=m.source,
            hint="give a larger step (--sholl-step)" + ("" if max_radius is None else " or a smaller max_radius"),
        )
    n = int(spheres)
    radii = step * np.arange(1, n + 1, dtype=np.float64)
    res = ShollResult(radii=radii, crossings={}, center=np.asarray(c), step=float(step))
    for name in compartments:
        comp = ctx.comp(name)
        near, far = _edge_distances(ctx, comp, res.center)
        res.crossings[name] = crossings_at(near, far, radii)
        _summaries(res, name)
    return res


def _main_root(ctx: Context) -> int:
    """The root a cell without soma is centred on: the one with the most cable below it,
    then the smallest x, y, z (never the storage order)."""
    m = ctx.m
    r = m.roots
    sid = m.section_id[r]
    cable = np.where(sid >= 0, ctx.sec_subtree_length[np.maximum(sid, 0)], 0.0)
    return pick(r, -cable, m.xyz[r, 0], m.xyz[r, 1], m.xyz[r, 2])


def _sholl_for(ctx: Context, comp: Compartment, sholl_step: float) -> dict[str, float]:
    comp.require()
    ctx.require_soma()
    key = ("sholl", comp.name, sholl_step)
    if key not in ctx.cache:
        ctx.cache[key] = sholl(ctx.m, step=sholl_step, compartments=(comp.name,), _ctx=ctx).summary(comp.name)
    return ctx.cache[key]


_SHOLL_OPT = ("sholl_step",)


def _make(name: str, definition: str) -> None:
    def f(ctx: Context, comp: Compartment, sholl_step: float = 10.0) -> float:
        v = _sholl_for(ctx, comp, sholl_step)[name]
        if not np.isfinite(v):
            raise NotApplicable(f"the {comp.name} crosses fewer than two Sholl spheres")
        return float(v)

    f.__name__ = f"sholl_{name}"
    feature(f"sholl_{name}", family="sholl", options=_SHOLL_OPT, definition=definition)(f)


_make("max_crossings", "largest number of crossings of a sphere centred on the soma (radii every sholl_step um, default 10)")
_make("radius_of_max", "smallest sphere radius (um) with the largest number of crossings")
_make("critical_value", "maximum of the polynomial (degree <= 6) fitted to crossings against radius")
_make("critical_radius", "radius (um) where the fitted polynomial peaks")
_make(
    "regression_coefficient",
    "Sholl decay k: minus the slope of ln(crossings / (4/3 pi r^3)) against r (semi-log, 3-D)",
)
