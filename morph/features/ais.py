"""Axon-initial-segment (AIS) features, measured on the traced initial axon.

SWC has no AIS label, so these features describe the start of the traced axon:

* **Axon root**: a node of type axon whose parent is not an axon node. When a cell has
  several, the *primary* axon is the one with the most cable below it.
* **Origin**: the node the primary axon hangs from: a soma node (the axon leaves the soma),
  a dendrite node (an *axon-carrying dendrite*), or none (the axon is a root of its own).
* **Initial path**: starting at the soma surface side of the axon, i.e. at the axon root when
  the origin is a soma node (the soma-to-first-node edge lies inside the soma) and at the
  origin node when it is a dendrite node, then down the axon, taking at every branch point
  the child with the most cable below it (the main trunk), to a tip.
* Windows of 10, 20 and 40 um along that path give mean/min/max diameter, taper
  ``(d(0) - d(W)) / W`` and tortuosity ``W / |p(W) - p(0)|``. Diameters along the path are
  linearly interpolated between nodes; at a dendrite origin the first point takes the axon
  root's radius (the dendrite's radius does not describe the axon).
* A cell without an axon, or whose traced initial path is shorter than a window, gets NaN
  with the reason, never an invented number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from morph.features._context import Context
from morph.features.registry import NotApplicable, feature

WINDOWS = (10.0, 20.0, 40.0)


def _section_nodes(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Non-soma nodes sorted by (section, depth) and each section's offset in that list."""
    if "sec_nodes" not in ctx.cache:
        m = ctx.m
        nodes = np.flatnonzero(~m.soma_mask)
        order = nodes[np.lexsort((m.depth[nodes], m.section_id[nodes]))]
        off = np.searchsorted(m.section_id[order], np.arange(m.sections.n + 1))
        ctx.cache["sec_nodes"] = (order, off)
    return ctx.cache["sec_nodes"]


def _analyse(ctx: Context, pia_direction: Any = None, direction_length: float = 10.0) -> dict[str, Any]:
    key = ("ais", None if pia_direction is None else tuple(np.ravel(pia_direction)), direction_length)
    if key in ctx.cache:
        return ctx.cache[key]
    m = ctx.m
    out: dict[str, Any] = {}
    axon = ctx.comp("axon")
    roots = axon.roots
    if roots.size == 0:
        out["_missing"] = "the cell has no axon"
        ctx.cache[key] = out
        return out
    sub = ctx.sec_subtree_length[m.section_id[roots]]
    root = int(roots[int(np.argmax(sub))])
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
    out["from_dendrite"] = float(origin >= 0 and not from_soma)
    # distances from the soma surface to the origin
    if origin >= 0 and ctx.soma_index >= 0:
        r = ctx.soma_radius
        if from_soma:
            out["origin_path_distance"] = 0.0
            out["origin_euclidean_distance"] = 0.0
        else:
            out["origin_path_distance"] = max(float(ctx.soma_path[origin]) - r, 0.0)
            out["origin_euclidean_distance"] = max(float(ctx.dist_to_soma[origin]) - r, 0.0)
    # main trunk, section by section
    order, off = _section_nodes(ctx)
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
        cs = m.section_id[ckids]
        s = int(cs[int(np.argmax(ctx.sec_subtree_length[cs]))])
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

    def at(t: float) -> np.ndarray:
        return np.array([np.interp(t, arc, pts[:, k]) for k in range(3)])

    if total >= direction_length and total > 0:
        v = at(direction_length) - pts[0]
        n = np.linalg.norm(v)
        if n > 0:
            u = v / n
            out["direction"] = u
            ref = None
            if ctx.comp("apical_dendrite").n and ctx.soma_index >= 0:
                ref = m.xyz[ctx.comp("apical_dendrite").idx].mean(axis=0) - ctx.soma_center
                out["_ref"] = "apical"
            elif pia_direction is not None:
                ref = np.asarray(pia_direction, dtype=np.float64).reshape(3)
                out["_ref"] = "pia"
            if ref is not None and np.linalg.norm(ref) > 0:
                cosang = float(np.dot(u, ref) / np.linalg.norm(ref))
                out["angle_to_apical"] = float(np.arccos(np.clip(cosang, -1.0, 1.0)))
    for w in WINDOWS:
        if total < w:
            continue
        t = np.linspace(0.0, w, int(np.ceil(w / 0.25)) + 1)
        d = 2.0 * np.interp(t, arc, radii)
        inside = (arc > 0) & (arc < w)
        dd = np.concatenate([d[[0, -1]], 2.0 * radii[inside]])
        tag = f"{int(w)}"
        out[f"diameter_mean_{tag}"] = float(np.trapezoid(d, t) / w) if hasattr(np, "trapezoid") else float(
            np.trapz(d, t) / w
        )
        out[f"diameter_min_{tag}"] = float(dd.min())
        out[f"diameter_max_{tag}"] = float(dd.max())
        out[f"taper_{tag}"] = float((d[0] - d[-1]) / w)
        chord = float(np.linalg.norm(at(w) - pts[0]))
        out[f"tortuosity_{tag}"] = float(w / chord) if chord > 0 else float("inf")
    ctx.cache[key] = out
    return out


_OPTS = ("pia_direction", "direction_length")


def _get(ctx: Context, name: str, pia_direction: Any, direction_length: float) -> float:
    a = _analyse(ctx, pia_direction, direction_length)
    if "_missing" in a:
        raise NotApplicable(a["_missing"])
    if name in a:
        return a[name]
    if name.startswith(("origin_path", "origin_euclidean")):
        if "_origin_reason" in a:
            raise NotApplicable(a["_origin_reason"])
        raise NotApplicable("the cell has no soma node")
    if name == "origin_id":
        raise NotApplicable(a.get("_origin_reason", "no origin"))
    if name in ("direction", "angle_to_apical") and "direction" not in a:
        raise NotApplicable(
            f"traced axon is {a['_length']:.1f} um long, shorter than direction_length = {direction_length:g} um"
        )
    if name == "angle_to_apical":
        raise NotApplicable("no apical dendrite and no pia_direction given")
    w = name.rsplit("_", 1)[-1]
    raise NotApplicable(f"traced axon is {a['_length']:.1f} um long, shorter than the {w} um window")


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
_reg("axon_root_id", "SWC id of the first node of the primary axon (the axon root with most cable below)")
_reg("origin_type", "SWC type of the node the primary axon hangs from (1 soma, 3 basal, 4 apical; -1 none)")
_reg("origin_id", "SWC id of the node the primary axon hangs from")
_reg("from_dendrite", "1 when the primary axon leaves a dendrite (axon-carrying dendrite), else 0")
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
    "unit vector from the start of the initial path to its point at direction_length um (default 10)",
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
    _reg(f"tortuosity_{_t}", f"{_t} um over the straight-line distance spanned by the first {_t} um")
