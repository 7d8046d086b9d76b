"""Compartment labels: soma 1, axon 2, (basal) dendrite 3, apical dendrite 4.

* Every neurite starts as dendrite (3).
* **Where the axon starts** (:func:`axon_origin`). An axon leaves the soma or, on an
  axon-carrying dendrite, that dendrite's proximal trunk (5 of the 18 Allen cells in the shared
  data, 9-23 um from the soma); a trace also joins an axon to a dendrite where the two touch
  near the soma. Given a node on the axon, the path from its stem's first node through that
  node to the farthest tip beyond it is searched: at each branch point on the path before the
  node and within ``max_um`` (50 um) of the stem's first node, the median radius over
  ``window_um`` (15 um) of path before the branch point (the trunk) is compared with the median
  over the same length after it. The axon is the subtree after the branch point nearest to the
  node where the trunk is at least ``origin_drop`` (1.3) times as thick; where there is none,
  the whole stem. A branch point counts only when another of its children reaches at least
  ``min_side_um`` (5 um) beyond it: a stub on the axon's own trunk is no dendrite to leave.
  The axon's own collaterals do not change its radius, so they are not taken
  for its start, and a dendrite's branch points before the axon's start are passed over. The
  distance bound keeps a traced axon's own taper further out (its radius falling 1.5 times
  over 30 um on sample_stacks/aspiny_brightfield.tif) from being taken for its start.
* **Axon, given** (``axon_point``, the user's click on the axon): the node nearest to the
  click is found (it must be within ``snap_um``); the axon is the subtree from its start
  (above) on the way to the click. With no soma (a plain root), the path starts at the root.
  Confidence 1.
* **Axon, heuristic** (no click; needs a soma and at least two stems). Each stem gets three
  axon-likeness scores, ranked among the stems into [0, 1] (1 = most axon-like; stems that
  tie share their mean rank):
  thin (low median radius, weight 0.35), smooth, i.e. few spines (few terminal branches
  shorter than 5 um per 100 um of cable, 0.2), leaving downwards (away from the pia; without
  a pia direction, towards +y of the image, the bottom of an upright slice, 0.2); the score
  is their weighted sum over 0.75. The best stem holds the axon when its confidence,
  ``0.5 + (best - second best)``, reaches ``axon_confidence_min``; the confidence is always
  written to the SWC header. The axon is then the subtree from its start (above) on the way
  to the stem's farthest tip by path length (an axon runs on, out of the field, where
  dendrites end). (The coefficient of variation of the radius along a stem, once a fourth
  score, reads the stem's taper rather than its smoothness: on 18 synthetic stacks whose
  axon the trace reaches, the heuristic picks it on 9 without that score, on 7 with it; see
  docs/tracing.md.)
* **Apical**: the stem reaching furthest up (towards the pia; without a pia direction, up in
  the image, -y) is apical when its trunk is ``apical_thickness`` (1.3) times as thick as
  every other stem's, or when it reaches at least ``apical_dominance`` (2) times as far up
  as the next stem and its trunk is also the thickest. A stem's trunk radius is the median
  radius over 3-20 um of path from its first node towards its node farthest from the soma
  (an apical trunk is the thickest dendrite of a pyramidal cell); stems with less than 10 um
  of cable (stubs in the soma's blur) are left out, and at least two stems must remain. The
  thickness keeps an interneuron's one long upward dendrite from being called apical, and
  an image upside down from making a basal dendrite apical. Only the stem's dendrite nodes
  become apical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from morph import _tree
from morph.errors import TracingError
from morph.morphology import APICAL, AXON, BASAL, SOMA, Morphology

#: Stems with less cable than this (stubs in the soma's blur, with the blur's radii) are not
#: candidates for the axon or the apical dendrite.
STEM_MIN_UM = 10.0


@dataclass
class LabelReport:
    axon: str = "none"
    axon_confidence: float = 0.0
    apical: str = "none"
    notes: list[str] = field(default_factory=list)

    def header_lines(self) -> list[str]:
        out = [f"axon: {self.axon} (confidence {self.axon_confidence:.2f})", f"apical dendrite: {self.apical}"]
        return out + self.notes


def _stems(m: Morphology) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First node of each stem and, per node, the index of its stem (-1 for soma nodes)."""
    first = np.flatnonzero(~m.soma_mask & ((m.parent < 0) | m.parent_is_soma))
    mark = np.zeros(len(m), dtype=bool)
    mark[first] = True
    owner = _tree.nearest_marked(m.parent, mark)
    pos = np.full(len(m), -1, dtype=np.int64)
    pos[first] = np.arange(first.size)
    stem = np.where(owner >= 0, pos[np.maximum(owner, 0)], -1)
    stem[m.soma_mask] = -1
    return first, stem


def _rank01(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rank of each value in [0, 1] (1 for the largest); equal values share their mean rank."""
    if v.size < 2:
        return np.ones_like(v, dtype=np.float64)
    return (rankdata(v, method="average") - 1.0) / (v.size - 1)


def _stem_lengths(m: Morphology, stem: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    """Cable of each of the ``k`` stems (um)."""
    neur = stem >= 0
    return np.bincount(stem[neur], weights=m.neurite_edge_length[neur], minlength=k)


def stem_features(m: Morphology, *, down: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """Per-stem measures used by the axon heuristic."""
    first, stem = _stems(m)
    k = first.size
    neur = stem >= 0
    length = _stem_lengths(m, stem, k)
    med_r = np.array([np.median(m.radius[stem == s]) if np.any(stem == s) else 0.0 for s in range(k)])
    mean_r = np.bincount(stem[neur], weights=m.radius[neur], minlength=k) / np.maximum(np.bincount(stem[neur], minlength=k), 1)
    sq = np.bincount(stem[neur], weights=m.radius[neur] ** 2, minlength=k) / np.maximum(np.bincount(stem[neur], minlength=k), 1)
    cv = np.sqrt(np.maximum(sq - mean_r**2, 0)) / np.maximum(mean_r, 1e-9)
    sec = m.sections
    term_short = (sec.children_count() == 0) & (sec.length < 5.0) & (sec.parent >= 0)
    sec_stem = stem[sec.start]
    spines = np.bincount(sec_stem[term_short & (sec_stem >= 0)], minlength=k) / np.maximum(length / 100.0, 1e-9)
    # direction of the first 20 um of each stem
    pd = m.path_distance
    start_pd = pd[first]
    near = neur & (pd - start_pd[np.maximum(stem, 0)] <= 20.0)
    cen = m.soma_center if m.soma_nodes.size else m.xyz[m.roots[0]]
    vec = np.zeros((k, 3))
    for a in range(3):
        vec[:, a] = np.bincount(stem[near], weights=m.xyz[near, a] - cen[a], minlength=k)
    vn = np.linalg.norm(vec, axis=1)
    downness = np.divide(vec @ down, vn, out=np.zeros(k), where=vn > 0)
    return {"first": first.astype(float), "length": length, "median_radius": med_r, "radius_cv": cv,
            "spines_per_100um": spines, "downness": downness}


def trunk_radius(m: Morphology, first: NDArray[np.int64], stem: NDArray[np.int64], *,
                 lo_um: float = 3.0, hi_um: float = 20.0) -> NDArray[np.float64]:
    """Median radius of each stem's trunk: the nodes ``lo_um`` to ``hi_um`` along the path from
    the stem's first node towards its node farthest from the soma (0 for a stem shorter than
    ``lo_um``)."""
    cen = m.soma_center if m.soma_nodes.size else m.xyz[m.roots[0]]
    dist = np.linalg.norm(m.xyz - cen, axis=1)
    pd = m.path_distance
    out = np.zeros(first.size)
    for s in range(first.size):  # one path per stem
        nodes = np.flatnonzero(stem == s)
        path = _path_up(m.parent, int(nodes[np.argmax(dist[nodes])]), m.soma_mask)
        along = pd[path] - pd[first[s]]
        sel = path[(along >= lo_um) & (along <= hi_um)]
        out[s] = float(np.median(m.radius[sel])) if sel.size else 0.0
    return out


def _path_up(parent: NDArray[np.int64], node: int, stop: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Nodes from ``node`` up its parents, in that order, to its root (included) or to the
    last node before a ``stop`` node (a soma node: the stem's first node)."""
    out = [node]
    k = int(parent[node])
    while k >= 0 and not stop[k]:
        out.append(k)
        k = int(parent[k])
    return np.asarray(out, dtype=np.int64)


def axon_origin(
    m: Morphology, node: int, *, window_um: float = 15.0, origin_drop: float = 1.3, max_um: float = 50.0,
    min_side_um: float = 5.0,
) -> int:
    """First node of the axon that holds ``node``: the whole stem's first node, or the child of
    the branch point where a thin axon leaves a thicker dendrite (module docstring).

    Parameters
    ----------
    m
        The tree, in micrometres.
    node
        Index of a (non-soma) node on the axon.
    window_um
        Path length over which the radius is taken before and after each branch point.
    origin_drop
        How many times thicker than the path after a branch point the trunk before it must be.
    max_um
        Farthest an axon's start may be from the stem's first node, along the path.
    min_side_um
        A branch point counts only when another of its children reaches this far beyond it
        (path length): a spur or a one-node stub leaving the axon's own trunk is no dendrite
        the axon could leave.

    Returns
    -------
    int
        Index of the axon's first node; its subtree is the axon.
    """
    par = m.parent
    pd = m.path_distance
    # the path from the stem's first node through the node to the farthest tip (by path
    # length) of the node's subtree
    below = np.flatnonzero(_tree.subtree_mask(par, node))
    tip = int(below[np.argmax(pd[below])])
    path = _path_up(par, tip, m.soma_mask)[::-1]
    at = int(np.flatnonzero(path == node)[0])
    nch = np.bincount(par[par >= 0], minlength=len(m))
    ppd = pd[path]
    r = m.radius[path]
    # branch points strictly before the node and within max_um of the stem's start, nearest
    # to the node first
    for i in range(at - 1, -1, -1):
        if nch[path[i]] < 2 or ppd[i] - ppd[0] > max_um:
            continue
        if min_side_um > 0:  # another child must carry a branch, not a spur
            side = np.flatnonzero(par == path[i])
            side = side[side != path[i + 1]]
            far = max(float(pd[_tree.subtree_mask(par, int(c))].max()) for c in side) if side.size else -np.inf
            if far - ppd[i] < min_side_um:
                continue
        before = r[(ppd <= ppd[i]) & (ppd >= ppd[i] - window_um)]
        after = r[(ppd > ppd[i]) & (ppd <= ppd[i] + window_um)]
        if after.size and np.median(before) >= origin_drop * np.median(after):
            return int(path[i + 1])
    return int(path[0])


def _stem_note(f: dict[str, NDArray[np.float64]], s: int, ok: NDArray[np.bool_], pia: bool) -> str:
    """What the axon heuristic read on the stem it picked, against the other stems, for the
    header: its median radius, its short terminal branches and the direction it leaves in."""
    others = ok.copy()
    others[s] = False

    def span(key: str, fmt: str) -> str:
        v = f[key][others]
        if not v.size:
            return ""
        lo, hi = float(v.min()), float(v.max())
        return f"; others {lo:{fmt}}" if lo == hi else f"; others {lo:{fmt}}-{hi:{fmt}}"

    ang = float(np.degrees(np.arcsin(np.clip(f["downness"][s], -1.0, 1.0))))
    way = ("away from the pia" if ang >= 0 else "towards the pia") if pia else (
        "below the horizontal, +y down" if ang >= 0 else "above the horizontal, +y down")
    return (f"median radius {f['median_radius'][s]:.2f} um{span('median_radius', '.2f')}; "
            f"{f['spines_per_100um'][s]:.1f} terminal branches under 5 um per 100 um"
            f"{span('spines_per_100um', '.1f')}; its first 20 um leave {abs(ang):.0f} deg {way}")


def _origin_note(m: Morphology, start: int) -> str:
    """Where the axon starts, for the header."""
    par = int(m.parent[start])
    if par < 0 or not m.soma_nodes.size:
        return ""
    if m.soma_mask[par]:
        return ", from the soma"
    return f", from a dendrite {m.path_distance[par]:.1f} um from the soma's centre along the path"


def axon_from_point(
    m: Morphology, axon_point: Any, *, snap_um: float = 10.0, window_um: float = 15.0, origin_drop: float = 1.3,
    max_um: float = 50.0,
) -> tuple[NDArray[np.bool_], str]:
    """The axon the user clicked on: a mask of its nodes (the subtree from its start,
    :func:`axon_origin`, of the node nearest ``axon_point``, micrometres) and where it starts,
    for the header. :class:`TracingError` when no node lies within ``snap_um``."""
    p = np.asarray(axon_point, dtype=np.float64)
    d = np.linalg.norm(m.xyz - p, axis=1)
    d[m.soma_mask] = np.inf
    j = int(np.argmin(d)) if len(m) else -1
    if j < 0 or not np.isfinite(d[j]) or d[j] > snap_um:
        far = f"{d[j]:.1f} um" if j >= 0 and np.isfinite(d[j]) else "far"
        raise TracingError(
            f"the axon point ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) um is {far} from the traced tree "
            f"(more than {snap_um:g} um)",
            hint="click on a traced neurite (the axon) or give a --seeds point on it",
        )
    start = axon_origin(m, j, window_um=window_um, origin_drop=origin_drop, max_um=max_um)
    return _tree.subtree_mask(m.parent, start), "given by the user" + _origin_note(m, start)


def label(
    m: Morphology,
    *,
    axon_point: Any = None,
    pia_direction: Any = None,
    axon_confidence_min: float = 0.6,
    apical_dominance: float = 2.0,
    apical_thickness: float = 1.3,
    snap_um: float = 10.0,
    origin_window_um: float = 15.0,
    origin_drop: float = 1.3,
    origin_max_um: float = 50.0,
) -> tuple[Morphology, LabelReport]:
    """Label the neurites of ``m`` (micrometres); see the module docstring for the rules.

    Parameters
    ----------
    m
        The traced tree, in micrometres.
    axon_point
        ``(x, y, z)`` in micrometres on the axon (the user's click), or ``None`` for the
        heuristic.
    pia_direction
        Unit-free vector towards the pia, or ``None`` (then -y of the image is up).
    axon_confidence_min
        Heuristic confidence below which no axon is labelled.
    apical_dominance
        How many times further up than the next stem the apical must reach (its trunk also
        the thickest), unless its trunk is ``apical_thickness`` times as thick as every
        other.
    apical_thickness
        How many times thicker than every other stem's trunk the trunk of the stem reaching
        furthest up must be to make it apical however far the next stem reaches.
    snap_um
        Largest distance from ``axon_point`` to the tree.
    origin_window_um, origin_drop, origin_max_um
        Where the axon starts (:func:`axon_origin`).

    Returns
    -------
    Morphology, LabelReport
        The tree with its types set, and what was decided (for the SWC header).
    """
    rep = LabelReport()
    types = np.where(m.soma_mask, SOMA, BASAL).astype(np.int64)
    if len(m) == 0:
        return m, rep
    first, stem = _stems(m)
    has_soma = m.soma_nodes.size > 0
    pia = None
    if pia_direction is not None:
        pia = np.asarray(pia_direction, dtype=np.float64)
        pia = pia / max(np.linalg.norm(pia), 1e-12)
    down = -pia if pia is not None else np.array([0.0, 1.0, 0.0])
    if axon_point is not None:
        mask, rep.axon = axon_from_point(m, axon_point, snap_um=snap_um, window_um=origin_window_um,
                                         origin_drop=origin_drop, max_um=origin_max_um)
        types[mask] = AXON
        rep.axon_confidence = 1.0
    elif has_soma and first.size >= 2:
        f = stem_features(m, down=down)
        ok = f["length"] >= STEM_MIN_UM
        score = (0.35 * _rank01(-f["median_radius"]) + 0.2 * _rank01(-f["spines_per_100um"])
                 + 0.2 * _rank01(f["downness"])) / 0.75
        score[~ok] = -1
        order = np.argsort(-score)
        conf = float(np.clip(0.5 + score[order[0]] - max(score[order[1]], 0.0), 0, 1)) if ok.sum() >= 2 else 0.0
        rep.axon_confidence = conf
        if conf >= axon_confidence_min:
            axon_stem = int(order[0])
            in_stem = np.flatnonzero(stem == axon_stem)
            far = int(in_stem[np.argmax(m.path_distance[in_stem])])
            start = axon_origin(m, far, window_um=origin_window_um, origin_drop=origin_drop, max_um=origin_max_um)
            types[_tree.subtree_mask(m.parent, start)] = AXON
            rep.axon = (f"heuristic: stem {axon_stem} of {first.size}{_origin_note(m, start)} "
                        f"({_stem_note(f, axon_stem, ok, pia is not None)})")
        elif ok.sum() >= 2:
            rep.axon = (f"not identified (heuristic below the confidence threshold {axon_confidence_min:g}; "
                        f"the most axon-like, stem {int(order[0])} of {first.size}: "
                        f"{_stem_note(f, int(order[0]), ok, pia is not None)})")
        else:
            rep.axon = f"not identified (fewer than two stems of at least {STEM_MIN_UM:g} um of cable)"
    else:
        rep.axon = "not identified (needs a soma and two stems, or --axon)"
    if has_soma and first.size >= 2:
        up = pia if pia is not None else np.array([0.0, -1.0, 0.0])
        length = _stem_lengths(m, stem, first.size)
        reach = np.full(first.size, -np.inf)
        dend = (stem >= 0) & (types == BASAL)
        proj = (m.xyz - m.soma_center) @ up
        np.maximum.at(reach, stem[dend], proj[dend])
        reach[length < STEM_MIN_UM] = -np.inf
        o = np.argsort(-reach)
        trunk = trunk_radius(m, first, stem)
        others = np.isfinite(reach)
        others[o[0]] = False
        best = trunk[o[0]]
        thick = best / max(float(trunk[others].max()) if others.any() else 1.0, 1e-9)
        next_up = float(reach[o[1]])  # > 0 when the next stem rises above the soma at all
        far = reach[o[0]] / next_up if next_up > 0 else np.inf
        seen = (f"stem {int(o[0])}, reaching furthest {'towards the pia' if pia is not None else 'up (-y)'} "
                f"({reach[o[0]]:.1f} um, "
                + (f"{far:.1f} x the next stem" if np.isfinite(far) else "no other stem rises above the soma")
                + f"), trunk {best:.2f} um ({thick:.2f} x the thickest other)")
        if others.any() and reach[o[0]] > 0 and best > 0 and (
            thick >= apical_thickness or (far >= apical_dominance and thick >= 1.0)
        ):
            types[(stem == o[0]) & (types == BASAL)] = APICAL
            rep.apical = seen
        elif others.any() and reach[o[0]] > 0 and best > 0:
            # what the rule saw, so that a user can judge it (and set the apical by hand)
            rep.apical = (f"none: {seen}; apical needs a trunk {apical_thickness:g} x the thickest other, or "
                          f"the thickest and {apical_dominance:g} x the next stem's reach")
    return m._derive(types=types), rep
