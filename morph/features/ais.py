"""Axon-initial-segment (AIS) features, measured on the traced initial axon.

SWC has no AIS label, so these features describe the start of the traced axon:

* **Axon root**: a node of type axon whose parent is not an axon node. When a cell has
  several, the *primary* axon is the one with the most cable below it; equal cable goes to
  the root closest to the soma centre, then to the smallest x, y, z (never to the storage
  order).
* **Origin**: the node the primary axon hangs from: a soma node (the axon leaves the soma),
  a dendrite node (an *axon-carrying dendrite*; ``from_dendrite`` is 1 only for basal and
  apical dendrite nodes), a node of another type (undefined, custom), or none (the axon is
  a root of its own).
* **Initial path**: starting at the soma surface side of the axon, i.e. at the axon root when
  the origin is a soma node (the soma-to-first-node edge lies inside the soma) and at the
  origin node otherwise, then down the axon, taking at every branch point the child with
  the most cable below it (the main trunk; equal cable goes to the straightest
  continuation, then to the smallest x, y, z), to a tip.
* Windows of 10, 20 and 40 um along that path give mean/min/max diameter, taper
  ``(d(0) - d(W)) / W`` and tortuosity ``W / |p(W) - p(0)|``. Diameters along the path are
  linearly interpolated between nodes; at a dendrite origin the first point takes the axon
  root's radius (the dendrite's radius does not describe the axon).
* A cell without an axon, or whose traced initial path is shorter than a window, gets NaN
  with the reason, never an invented number. So does a direction or a tortuosity whose
  end point coincides with the start of the path (an axon that turns back on itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from morph.features._context import Context, pick
from morph.features.registry import NotApplicable, feature

WINDOWS = (10.0, 20.0, 40.0)
#: SWC types of a dendrite (basal, apical): an axon hanging from one leaves a dendrite.
DENDRITE_TYPES = (3, 4)


def _main_child(ctx: Context, ckids: np.ndarray, fork: int) -> int:
    """The child of ``fork`` the initial path follows: the one with the most cable below
    it, then the straightest continuation of the edge into the fork, then the smallest
    x, y, z."""
    m = ctx.m
    cable = ctx.sec_subtree_length[m.section_id[ckids]]
    p = int(m.parent[fork])
    come = m.xyz[fork] - m.xyz[p] if p >= 0 else np.zeros(3)
    go = m.xyz[ckids] - m.xyz[fork]
    norms = np.linalg.norm(go, axis=1) * np.linalg.norm(come)
    ok = norms > 0
    cos = np.full(ckids.size, np.nan)
    cos[ok] = (go[ok] @ come) / norms[ok]
    xyz = m.xyz[ckids]
    return pick(ckids, -cable, -cos, xyz[:, 0], xyz[:, 1], xyz[:, 2])


def _analyse(ctx: Context, pia_direction: Any = None, direction_length: float = 10.0) -> dict[str, Any]:
    key = ("ais", None if pia_direction is None else tuple(np.ravel(pia_direction)), direction_length)
    if key in ctx.cache:
        return ctx.cache[key]
    m = ctx.m
    out: dict[str, Any] = {"_reasons": {}}
    why = out["_reasons"]
    axon = ctx.comp("axon")
    roots = axon.roots
    if roots.size == 0:
        out["_missing"] = "the cell has no axon"
        ctx.cache[key] = out
        return out
    # primary axon: most cable below, then closest to the soma, then position
    sub = ctx.sec_subtree_length[m.section_id[roots]]
    near = ctx.dist_to_soma[roots] if ctx.has_soma else np.zeros(roots.size)
    rxyz = m.xyz[roots]
    root = pick(roots, -sub, near, rxyz[:, 0], rxyz[:, 1], rxyz[:, 2])
    origin = int(m.parent[root])
    out["num_axon_roots"] = float(roots.size)
    out["axon_root_id"] = float(m.ids[root])
    if origin < 0:
        out["origin_type"] = -1.0
        reason_origin = "the axon is a root of its own (not attached to the soma or a dendrite)"
        out["_origin_reason"] = reason_origin
    else:
        out["origin_type"] = float(m.types[origin])
        out["origin_id"] = float(m.ids[origin])
    from_soma = origin >= 0 and bool(m.soma_mask[origin])
    out["from_dendrite"] = float(origin >= 0 and int(m.types[origin]) in DENDRITE_TYPES)
    # distances from the soma surface to the origin
    if origin >= 0 and ctx.has_soma:
        r = ctx.soma_radius
        if from_soma:
            out["origin_path_distance"] = 0.0
            out["origin_euclidean_distance"] = 0.0
        else:
            out["origin_path_distance"] = max(float(ctx.soma_path[origin]) - r, 0.0)
            out["origin_euclidean_distance"] = max(float(ctx.dist_to_soma[origin]) - r, 0.0)
    # main trunk, section by section
    order, off = ctx.section_nodes
    s = int(m.section_id[root])
    chain: list[np.ndarray] = []
    first_branch_node = -1
    coff, kids = ctx.children_csr
    while True:
        nodes = order[off[s] : off[s + 1]]
        chain.append(nodes)
        end = int(nodes[-1])
        ckids = kids[coff[end] : coff[end + 1]]
        if ckids.size == 0:
            break
        if ckids.size >= 2 and first_branch_node < 0:
            first_branch_node = end
        ckids = ckids[~m.soma_mask[ckids]]
        if ckids.size == 0:
            break
        s = int(m.section_id[_main_child(ctx, ckids, end)])
    path = np.concatenate(chain)
    radii = m.radius[path]
    pts = m.xyz[path]
    if origin >= 0 and not from_soma:
        pts = np.vstack([m.xyz[origin], pts])
        radii = np.concatenate([[m.radius[root]], radii])
        path = np.concatenate([[origin], path])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(arc[-1])
    out["length_to_end"] = total
    if first_branch_node >= 0:
        out["length_to_first_branch"] = float(arc[int(np.flatnonzero(path == first_branch_node)[0])])
    else:
        out["length_to_first_branch"] = total
    out["_length"] = total
    short = f"traced axon is {total:.1f} um long, shorter than"

    def at(t: float) -> np.ndarray:
        return np.array([np.interp(t, arc, pts[:, k]) for k in range(3)])

    if total < direction_length:
        for k in ("direction", "angle_to_apical"):
            why[k] = f"{short} direction_length = {direction_length:g} um"
    else:
        v = at(direction_length) - pts[0]
        n = float(np.linalg.norm(v))
        if not n > 0:
            for k in ("direction", "angle_to_apical"):
                why[k] = (
                    f"the point direction_length = {direction_length:g} um along the initial path coincides "
                    "with its start: no direction"
                )
        else:
            u = v / n
            out["direction"] = u
            ref = None
            if ctx.comp("apical_dendrite").n and ctx.has_soma:
                ref = m.xyz[ctx.comp("apical_dendrite").idx].mean(axis=0) - ctx.soma_center
                if not np.linalg.norm(ref) > 0:
                    why["angle_to_apical"] = "the apical dendrite's centroid is on the soma centre: no apical axis"
            elif pia_direction is not None:
                ref = np.asarray(pia_direction, dtype=np.float64).reshape(3)
            elif ctx.comp("apical_dendrite").n:
                why["angle_to_apical"] = "the cell has no soma node for the apical axis, and no pia_direction given"
            else:
                why["angle_to_apical"] = "no apical dendrite and no pia_direction given"
            if ref is not None and np.linalg.norm(ref) > 0:
                cosang = float(np.dot(u, ref) / np.linalg.norm(ref))
                out["angle_to_apical"] = float(np.arccos(np.clip(cosang, -1.0, 1.0)))
    for w in WINDOWS:
        tag = f"{int(w)}"
        if total < w:
            for k in ("diameter_mean", "diameter_min", "diameter_max", "taper", "tortuosity"):
                why[f"{k}_{tag}"] = f"{short} the {tag} um window"
            continue
        t = np.linspace(0.0, w, int(np.ceil(w / 0.25)) + 1)
        d = 2.0 * np.interp(t, arc, radii)
        inside = (arc > 0) & (arc < w)
        dd = np.concatenate([d[[0, -1]], 2.0 * radii[inside]])
        trap = np.trapezoid if hasattr(np, "trapezoid") else np.trapz
        out[f"diameter_mean_{tag}"] = float(trap(d, t) / w)
        out[f"diameter_min_{tag}"] = float(dd.min())
        out[f"diameter_max_{tag}"] = float(dd.max())
        out[f"taper_{tag}"] = float((d[0] - d[-1]) / w)
        chord = float(np.linalg.norm(at(w) - pts[0]))
        if chord > 0:
            out[f"tortuosity_{tag}"] = float(w / chord)
        else:
            why[f"tortuosity_{tag}"] = (
                f"the point {tag} um along the initial path coincides with its start: zero straight-line distance"
            )
    ctx.cache[key] = out
    return out


_OPTS = ("pia_direction", "direction_length")


def _get(ctx: Context, name: str, pia_direction: Any, direction_length: float) -> float:
    a = _analyse(ctx, pia_direction, direction_length)
    if "_missing" in a:
        raise NotApplicable(a["_missing"])
    if name in a:
        return a[name]
    if name in a["_reasons"]:
        raise NotApplicable(a["_reasons"][name])
    if name.startswith(("origin_path", "origin_euclidean")):
        if "_origin_reason" in a:
            raise NotApplicable(a["_origin_reason"])
        raise NotApplicable("the cell has no soma node")
    if name == "origin_id":
        raise NotApplicable(a.get("_origin_reason", "no origin"))
    raise NotApplicable("not defined for this cell")


def _reg(name: str, definition: str, dims: tuple[str, ...] | None = None) -> None:
    if dims:

        def f(ctx: Context, comp: None, pia_direction: Any = None, direction_length: float = 10.0) -> Any:
            v = _get(ctx, name, pia_direction, direction_length)
            return dict(zip(dims, np.asarray(v, dtype=np.float64).tolist()))

    else:

        def f(ctx: Context, comp: None, pia_direction: Any = None, direction_length: float = 10.0) -> Any:
            return float(_get(ctx, name, pia_direction, direction_length))

    f.__name__ = f"ais_{name}"
    feature(name, scope="ais", family="ais", dims=dims, options=_OPTS, definition=definition)(f)


_reg("num_axon_roots", "number of axon roots (axon nodes whose parent is not an axon node)")
_reg(
    "axon_root_id",
    "SWC id of the first node of the primary axon (the axon root with most cable below; equal cable: the root "
    "closest to the soma centre, then the smallest x, y, z)",
)
_reg("origin_type", "SWC type of the node the primary axon hangs from (1 soma, 3 basal, 4 apical; -1 none)")
_reg("origin_id", "SWC id of the node the primary axon hangs from")
_reg(
    "from_dendrite",
    "1 when the primary axon leaves a dendrite node (basal or apical: an axon-carrying dendrite), else 0 (soma, "
    "undefined or custom node, no origin)",
)
_reg(
    "origin_path_distance",
    "path distance (um) from the soma surface to the axon origin: 0 for an axon on the soma, else the "
    "soma path distance of the origin node minus the soma radius (floored at 0)",
)
_reg(
    "origin_euclidean_distance",
    "straight-line distance (um) from the soma surface to the axon origin (0 on the soma, floored at 0)",
)
_reg("length_to_first_branch", "path length (um) of the initial path to the axon's first branch point (or its end)")
_reg("length_to_end", "path length (um) of the initial path along the main trunk to its tip")
_reg(
    "direction",
    "unit vector from the start of the initial path to its point at direction_length um (default 10); NaN when "
    "that point coincides with the start (an axon that turns back)",
    dims=("x", "y", "z"),
)
_reg(
    "angle_to_apical",
    "angle (radians) between the initial axon direction and the apical axis (soma centre to the centroid "
    "of the apical dendrite), or pia_direction when the cell has no apical dendrite",
)
for _w in WINDOWS:
    _t = f"{int(_w)}"
    _reg(f"diameter_mean_{_t}", f"length-weighted mean diameter (um) over the first {_t} um of the initial path")
    _reg(f"diameter_min_{_t}", f"smallest diameter (um) over the first {_t} um of the initial path")
    _reg(f"diameter_max_{_t}", f"largest diameter (um) over the first {_t} um of the initial path")
    _reg(f"taper_{_t}", f"(d(0) - d({_t})) / {_t}: diameter lost per um over the first {_t} um")
    _reg(
        f"tortuosity_{_t}",
        f"{_t} um over the straight-line distance spanned by the first {_t} um (NaN when the point at {_t} um "
        "coincides with the start)",
    )
