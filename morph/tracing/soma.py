"""Soma detection: the largest compact bright (after polarity) body, its centre and radius;
and its outline in the x-y plane (:func:`measure_soma_outline`, kept in the SWC header:
:mod:`morph.soma_outline`).

Works on the sparse foreground (:class:`~morph.tracing.tree.Foreground`) and its local
radius (geodesic distance to the edge of the foreground, an inner distance transform): the
soma is where that radius is largest among strongly stained voxels. Global over the
foreground, but the foreground is small; with a stack in chunks, each chunk proposes its
best candidate and the largest wins.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from morph.errors import NoNeuronError, TracingError
from morph.morphology import Morphology
from morph.soma_outline import SomaOutline
from morph.tracing.tree import Foreground


@dataclass
class Soma:
    """A soma (or a plain root when ``is_soma`` is false): centre (um), radius (um), the
    foreground voxels inside it, and how it was found."""

    centre: NDArray[np.float64]
    radius: float
    voxels: NDArray[np.int64]
    is_soma: bool
    origin: str


def _inside(fg: Foreground, centre: NDArray[np.float64], radius: float, anchor: int) -> NDArray[np.int64]:
    vox = np.flatnonzero(fg.distances_to(centre) <= radius)
    return np.union1d(vox, [anchor])


def detect_soma(
    fg: Foreground,
    local_radius: NDArray[np.float64],
    *,
    strong: NDArray[np.bool_] | None = None,
    min_radius_um: float = 3.0,
    max_radius_um: float = 25.0,
) -> Soma:
    """Find the soma as the thickest strongly stained place of the foreground.

    Returns a :class:`Soma` with ``is_soma`` false when even the thickest place is thinner than
    ``min_radius_um`` (the tree is then rooted there, as a plain point).

    Raises
    ------
    TracingError
        When there is no foreground at all.
    """
    if fg.n == 0:
        raise NoNeuronError("nothing in the {where} stands out from the background",
                            hint="check the polarity (--polarity) or give the soma with --soma")
    cand = np.flatnonzero(strong) if strong is not None and strong.any() else np.arange(fg.n)
    best = int(cand[np.argmax(local_radius[cand])])
    r = float(min(local_radius[best], max_radius_um))
    centre = fg.xyz_um(np.array([best]))[0]
    is_soma = r >= min_radius_um
    vox = _inside(fg, centre, r, best) if is_soma else np.array([best])
    return Soma(centre, r, vox, is_soma, "detected")


def _neck_between(fg: Foreground, local_radius: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64],
                  thin_um: float) -> bool:
    """Whether the foreground thins below ``thin_um`` (its local radius) somewhere on the
    straight line from ``a`` to ``b`` (tracing space, um), or leaves it: two bodies, not one.
    Each point along the line (every half voxel) reads the thickest foreground voxel within
    one voxel of it."""
    step = 0.5 * float(min(fg.voxel_size))
    n = max(2, int(np.ceil(float(np.linalg.norm(b - a)) / step)) + 1)
    reach = float(max(fg.voxel_size))
    for t in np.linspace(0.0, 1.0, n):
        near, _d = fg.within(a + t * (b - a), reach)
        if near.size == 0 or float(local_radius[near].max()) < thin_um:
            return True
    return False


def other_somata(
    fg: Foreground,
    local_radius: NDArray[np.float64],
    chosen: Soma,
    *,
    strong: NDArray[np.bool_] | None = None,
    min_radius_um: float = 3.0,
    max_radius_um: float = 25.0,
    min_fraction: float = 0.7,
    max_elongation: float = 1.5,
    max_count: int = 20,
) -> list[Soma]:
    """Other cells' somata: strongly stained bodies at least ``min_fraction`` times as thick
    as the ``chosen`` soma (and at least ``min_radius_um``), lying outside it (centres more
    than the two radii apart) and round: their thick core (the voxels within twice their
    radius that are at least 0.6 times as thick) no more than ``max_elongation`` times as long
    as wide (the square root of the ratio of its two largest principal variances) and apart
    from the soma: the foreground on the straight line between the two centres thins below
    half the smaller radius, or breaks (:func:`_neck_between`; at fine voxels the base of a
    thick apical trunk is round and deep enough to pass the other tests). Thickest first; a
    place within twice the radius of one already judged is the same body. Each takes the
    foreground within its radius.

    A neighbouring filled cell whose dendrites touch the chosen cell's is otherwise traced
    as part of it; :func:`morph.tracing.tree.grow` leaves to such a soma the voxels nearer to
    it. The roundness keeps a thick neurite out: on the real brightfield crop of the shared
    data the main neurite is 0.78 times as deep as the soma in places, its thick core 2.3-3.1
    times as long as wide (the somata: 1.1-1.2)."""
    if not chosen.is_soma or fg.n == 0:
        return []
    need = max(float(min_radius_um), float(min_fraction) * float(chosen.radius))
    ok = local_radius >= need
    if strong is not None:
        ok &= strong
    cand = np.flatnonzero(ok)
    if cand.size == 0:
        return []
    xyz = fg.xyz_um(cand)
    r = np.minimum(local_radius[cand], max_radius_um)
    far = np.linalg.norm(xyz - chosen.centre, axis=1) > chosen.radius + r
    cand, xyz, r = cand[far], xyz[far], r[far]
    out: list[Soma] = []
    taken = np.zeros(cand.size, dtype=bool)
    for i in np.argsort(-r, kind="stable"):
        if taken[i]:
            continue
        centre, ri = xyz[i], float(r[i])
        taken |= np.linalg.norm(xyz - centre, axis=1) <= 2.0 * ri
        near, _d = fg.within(centre, 2.0 * ri)
        core = fg.xyz_um(near[local_radius[near] >= 0.6 * ri])
        if len(core) < 4:
            continue
        ev = np.sort(np.linalg.eigvalsh(np.cov((core - core.mean(axis=0)).T)))[::-1]
        if np.sqrt(ev[0] / max(ev[1], 1e-12)) > max_elongation:
            continue  # a thick neurite, not a body
        if not _neck_between(fg, local_radius, chosen.centre, centre, 0.5 * min(float(chosen.radius), ri)):
            continue  # joined to the soma by foreground as thick as a body: the soma's own (its trunk)
        out.append(Soma(centre, ri, _inside(fg, centre, ri, int(cand[i])), True, "other cell"))
        if len(out) >= max_count:
            break
    return out


def soma_at(
    fg: Foreground,
    local_radius: NDArray[np.float64],
    point_um: NDArray[np.float64],
    *,
    snap_um: float = 5.0,
    min_radius_um: float = 3.0,
    max_radius_um: float = 25.0,
    as_soma: bool = True,
    what: str = "soma",
) -> Soma:
    """The soma (or root) at a user's point: the thickest foreground voxel within
    ``snap_um`` of it (for a soma) or the nearest one (for a root seed).

    Raises
    ------
    TracingError
        When no foreground voxel lies within ``snap_um`` of the point (a click on background).
    """
    p = np.asarray(point_um, dtype=np.float64)
    if fg.n == 0:
        raise TracingError(f"the {what} point lies on background: no foreground in the stack")
    near, dn = fg.within(p, snap_um)
    if near.size == 0:
        d = fg.distances_to(p)
        j = int(np.argmin(d))
        raise TracingError(
            f"the {what} point ({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f}) um lies on background: the nearest "
            f"stained voxel is {d[j]:.1f} um away (more than {snap_um:g} um)",
            hint="click on the neuron; coordinates are micrometres unless --units voxel is given",
        )
    if as_soma:
        best = int(near[np.argmax(local_radius[near] - 1e-3 * dn)])
    else:
        best = int(near[np.argmin(dn)])
    r = float(min(local_radius[best], max_radius_um))
    is_soma = as_soma and r >= min_radius_um
    centre = fg.xyz_um(np.array([best]))[0]
    vox = _inside(fg, centre, r, best) if is_soma else np.array([best])
    return Soma(centre, r, vox, is_soma, "given")


# ----------------------------------------------------------------------------- outline
def measure_soma_outline(
    image: NDArray,
    centre: NDArray[np.float64] | tuple[float, float, float],
    voxel_size: tuple[float, float, float] | NDArray[np.float64],
    *,
    radius_hint: float,
    n_directions: int = 72,
    window_deg: float = 25.0,
    spike: float = 1.15,
) -> SomaOutline | None:
    """The soma's outline in the x-y plane through ``centre``.

    Along ``n_directions`` horizontal lines from the centre, the edge is where the image
    falls half way from the soma's core to the background
    (:func:`morph.tracing.radius.soma_ray_radii`, as for the soma radius the tracer writes,
    the median of 16 such lines; here the background is the median of the lines' lowest
    values, common to all, so that a line along a stem, whose own lowest value is the stem's,
    does not stop short of the soma's edge). A dendrite's trunk leaving the soma keeps its
    line dark further out; a direction whose distance differs by more than a factor
    ``spike`` from the median of the directions within ``window_deg`` of it (its own left
    out), or that has no crossing, takes that median instead. The lines along z are not
    used: the blur there is two to four times wider, so the z extent of the image is mostly
    the blur's.

    Parameters
    ----------
    image
        Flattened, denoised image (Z, Y, X; structure positive).
    centre
        Soma centre ``(x, y, z)`` micrometres.
    voxel_size
        ``(x, y, z)`` micrometres.
    radius_hint
        The tracer's own radius estimate; lines run to three times it.
    n_directions
        Directions, evenly spaced from +x.
    window_deg, spike
        The stem test above.

    Returns
    -------
    SomaOutline or None
        None when fewer than half the directions cross half way (no compact body there).
    """
    from morph.tracing.radius import soma_ray_radii

    n = int(n_directions)
    a = np.arange(n) * (2.0 * np.pi / n)
    r, ok = soma_ray_radii(image, centre, voxel_size, a, radius_hint=radius_hint, common_base=True)
    if ok.sum() < n / 2:
        return None
    half = max(1, int(round(window_deg / (360.0 / n))))
    offs = np.r_[-half:0, 1 : half + 1]
    idx = (np.arange(n)[:, None] + offs[None, :]) % n
    neigh = np.where(ok[idx], r[idx], np.nan)
    with warnings.catch_warnings():  # a run of directions with no crossing: NaN, replaced below
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(neigh, axis=1)
    med = np.where(np.isfinite(med), med, np.median(r[ok]))
    bad = ~ok | (r > spike * med) | (r < med / spike)
    return SomaOutline(np.asarray(centre, dtype=np.float64).copy(), a, np.where(bad, med, r), bad)


def surface_distance(direction: NDArray[np.float64], radius: float, outline: SomaOutline | None = None
                     ) -> NDArray[np.float64]:
    """How far the soma's surface lies from its centre along 3-D ``direction`` (n, 3; any
    length, not zero): ``radius`` along z, and in x-y the outline's distance in that
    direction (:meth:`~morph.soma_outline.SomaOutline.radius_at`; ``radius`` without an
    outline), blended as on an ellipsoid: ``1 / sqrt((h / r_xy)^2 + (v / radius)^2)`` for a
    unit direction with horizontal part ``h`` and vertical part ``v``."""
    d = np.asarray(direction, dtype=np.float64).reshape(-1, 3)
    u = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    h = np.hypot(u[:, 0], u[:, 1])
    r_xy = np.full(len(u), float(radius)) if outline is None else outline.radius_at(np.arctan2(u[:, 1], u[:, 0]))
    return 1.0 / np.sqrt((h / np.maximum(r_xy, 1e-9)) ** 2 + (u[:, 2] / max(float(radius), 1e-9)) ** 2)


def clip_to_surface(m: Morphology, outline: SomaOutline | None = None, *, min_stem_um: float = 0.0,
                    iterations: int = 30) -> Morphology:
    """The neurites of a one-node soma cut at the soma's surface (:func:`surface_distance`
    of the soma node's radius and ``outline``): their nodes inside it go, and each edge that
    leaves it (from a node inside) gets a node where it crosses the surface, hanging from the
    soma, with its child's type and the radius interpolated along the edge. So every stem
    starts at the surface, as in reconstructions made by hand (generated cells: at the soma's
    radius; the shared data's Allen cells: mostly a median 0.87-1.28 of it), and no cable
    inside the soma counts as a neurite's (the soma-to-first-node edge never does,
    ``docs/conventions.md``). The tree stage grows the stems from the soma's voxels, so they
    start inside the soma (on the 31 synthetic stacks of ``bench/trace_accuracy.py`` at a
    median 0.68 of its radius).

    A neurite that leaves the soma, dips back into it and leaves again keeps its first
    part as a branch ending at the surface; its part beyond becomes a stem of its own. A
    stem hanging from the soma node whose first node already lies outside is left as it is
    (that edge is the soma's link, not a traced path). A stem with no branch left with less
    than ``min_stem_um`` of cable (a stub in the soma's blur, measured from inside the soma
    before) goes. Cells with no soma, or a soma of several nodes, are returned unchanged.
    The crossing is found by bisection along the edge (``iterations`` halvings)."""
    soma = m.soma_nodes
    if soma.size != 1 or len(m) < 2:
        return m
    s = int(soma[0])
    c = m.xyz[s]
    r0 = float(m.radius[s])
    if not np.isfinite(r0) or r0 <= 0:
        return m
    neurite = ~m.soma_mask
    rel = m.xyz - c
    dist = np.linalg.norm(rel, axis=1)
    inside = neurite & (dist < surface_distance(np.where(dist[:, None] > 0, rel, [1.0, 0.0, 0.0]), r0, outline))
    if not inside.any():
        return m
    p = m.parent
    pp = np.maximum(p, 0)
    leaving = np.flatnonzero(neurite & ~inside & (p >= 0) & inside[pp])  # outside nodes whose parent is inside
    a, b = m.xyz[p[leaving]], m.xyz[leaving]
    lo, hi = np.zeros(leaving.size), np.ones(leaving.size)
    for _ in range(int(iterations)):  # f(t) = |x(t) - c| - surface(x(t)): negative at 0, positive at 1
        t = 0.5 * (lo + hi)
        x = a + t[:, None] * (b - a) - c
        nx = np.linalg.norm(x, axis=1)
        beyond = nx >= surface_distance(np.where(nx[:, None] > 0, x, [1.0, 0.0, 0.0]), r0, outline)
        hi = np.where(beyond, t, hi)
        lo = np.where(beyond, lo, t)
    t = hi
    cross_xyz = a + t[:, None] * (b - a)
    cross_r = m.radius[p[leaving]] + t * (m.radius[leaving] - m.radius[p[leaving]])
    keep = ~inside
    n_keep = int(keep.sum())
    newidx = np.full(len(m), -1, dtype=np.int64)
    newidx[keep] = np.arange(n_keep)
    parent = np.where(p[keep] >= 0, newidx[pp[keep]], -1)
    # the leaving nodes hang from their crossing nodes, appended after the kept ones
    parent[newidx[leaving]] = n_keep + np.arange(leaving.size)
    ids = np.r_[m.ids[keep], int(m.ids.max()) + 1 + np.arange(leaving.size)]
    out = m._derive(
        xyz=np.vstack([m.xyz[keep], cross_xyz]),
        radius=np.r_[m.radius[keep], cross_r],
        types=np.r_[m.types[keep], m.types[leaving]],
        parent=np.r_[parent, np.full(leaving.size, newidx[s])],
        ids=ids,
    )
    if min_stem_um > 0:
        sec = out.sections
        hang = sec.hang
        stub = (hang >= 0) & out.soma_mask[np.maximum(hang, 0)] & (sec.children_count() == 0) & (sec.length < min_stem_um)
        if stub.any():
            out = out.take(~np.isin(out.section_id, np.flatnonzero(stub)))
    return out
