"""Scoring a tracing against a gold standard.

:func:`compare` resamples both trees along their edges and measures, for every sample, the
exact distance to the nearest point of the other tree (point-to-segment distance, not the
distance to the other tree's nodes: a sample lying on an edge of the other tree is at
distance 0). From these distances it reports:

* **precision, recall, F1** of cable length: *recall* is the fraction of the gold cable
  lying within ``tolerance`` of the trace, *precision* the fraction of the trace cable
  lying within ``tolerance`` of the gold. Every edge is cut into ``ceil(length / step)``
  equal pieces (a length within 1e-4 steps of a whole number of steps counts as that
  number, so that a tree read back from an SWC's six decimals scores as in memory), each piece is represented by its midpoint and weighted by its length, so
  the fractions are fractions of cable length (exact for straight structures up to
  ``step``).
* **ESA, DSA, PDS** exactly as Vaa3D's ``neuron_distance`` defines them
  (``neuron_sim_scores.cpp``): every edge (child -> parent) of tree 1 is sampled at
  ``N = int(1 + length / vaa3d_step + 0.5)`` evenly spaced points *including both
  endpoints*; each point's distance to the nearest edge of tree 2 is taken. ESA(1->2) is
  the mean of these distances; ESA is the mean of ESA(1->2) and ESA(2->1). DSA averages,
  per direction, only the distances ``>= dsa_threshold`` and then averages the two
  directions (only one direction when the other has no such point; 0 when neither has).
  PDS(1->2) is the fraction of points with distance ``>= dsa_threshold``; PDS is the mean
  of both directions. ``max_distance`` is Vaa3D's ``dist_max``: the *smaller* of the two
  directional maxima. With ``vaa3d_step=1`` and ``dsa_threshold=2`` in voxel units the
  numbers are those of Vaa3D's plugin with its defaults. They are undefined (NaN, ``null``
  in JSON) when a tree has no edge (Vaa3D needs two nodes).
* **cable length** of each tree (``Morphology.total_length``: soma-to-first-node edges
  excluded), the sampled length (every edge but soma-to-soma ones, minus what lies
  inside the soma sphere; the denominators of precision and recall) and the length
  within tolerance (the numerators).
* **branch points and tips** found / missed / extra: gold and trace branch points (and,
  separately, tips) are paired one-to-one at the least total distance (a minimum-weight
  bipartite matching) among pairs closer than ``node_tolerance`` (default
  ``2 * tolerance``).
* **per compartment** (axon, basal_dendrite, apical_dendrite, dendrite) when both trees
  carry SWC types 2-4: the same precision / recall / F1, with distances measured only to
  the other tree's edges of the same compartment (so a dendrite traced as axon counts as
  missed dendrite and extra axon).
* with ``clutter`` (what must not be traced: ``morph synth``'s ``<prefix>.clutter.swc``, other
  cells' fragments as chains and debris as single nodes), the trace's cable lying **on the
  clutter**: samples within the tolerance of a chain's centreline or a ball's surface and
  beyond it from the gold (``clutter_length``, and as a fraction of the trace's sampled
  cable).
* a **DIADEM-style score**: the gold critical nodes (branch points and tips, after
  dropping terminal branches shorter than ``min_terminal_length``) are first paired
  one-to-one with the trace critical nodes within ``node_tolerance`` at the least total
  distance (a branch point paired with a tip costs ``node_tolerance`` more); then, visited
  from the root down, a pair is kept when the trace node lies in the subtree of the
  trace node matched to the nearest matched gold critical ancestor (topological
  consistency, as in the DIADEM metric of Gillette et al. 2011); otherwise the nearest
  free consistent trace node within ``node_tolerance`` is taken. Each gold node is weighted by the number of gold tips in its
  subtree; the score is the matched weight over the total weight. Differences from the
  official DIADEM metric: one isotropic distance threshold instead of separate XY and Z
  thresholds, no path-length-ratio test, and excess trace nodes are not penalised.

Units and voxel sizes
---------------------
The comparison frame is micrometres unless both trees are in voxel units and no voxel
size is known. ``units`` says what the coordinates of both trees are (default: each
tree's own ``units``, from its SWC header; a file without a ``units:`` line is taken as
micrometres). Trees in voxel units are multiplied by ``voxel_size`` (x, y, z) first, so
anisotropy is honoured. The default tolerance is 2 voxel widths (``2 * voxel_size[0]``),
but at least one z step (``voxel_size[2]``: no tracing can be expected to place nodes
closer than that in z), when a voxel size is known; else 2 units.

The DIADEM Olfactory Projection gold tracings are in voxel units with slices 3.03 pixels
apart: compare them with ``units="voxel", voxel_size=DIADEM_OP_VOXEL`` (``(1, 1, 3.03)``)
and e.g. ``tolerance=3``: both trees are then in isotropic x-pixel units and the
tolerance is 3 x-pixels in every direction. (A trace made with that voxel size, already
in those units, goes with ``gold_units="voxel"`` instead of ``units="voxel"``.) The
result then says ``units="um"``: read it as x-pixels.

Samples within the soma (a sphere of the gold soma radius times ``soma_margin`` around
the gold soma centre; the trace's soma when the gold has none) are left out of every
sample-based measure; soma-to-soma edges (soma contours) are never sampled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import MorphError, MorphologyError
from morph.morphology import APICAL, AXON, BASAL, Morphology

#: Voxel size (x, y, z) of the DIADEM Olfactory Projection stacks, in x-pixel units.
DIADEM_OP_VOXEL: tuple[float, float, float] = (1.0, 1.0, 3.03)

_COMPARTMENTS: dict[str, tuple[int, ...]] = {
    "axon": (AXON,),
    "basal_dendrite": (BASAL,),
    "apical_dendrite": (APICAL,),
    "dendrite": (BASAL, APICAL),
}


# ---------------------------------------------------------------------------- geometry
def point_segment_distance(p: NDArray, a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """Euclidean distance from points ``p`` to segments ``[a, b]`` (row-wise, broadcast).

    A degenerate segment (``a == b``) is a point.
    """
    ab = b - a
    ap = p - a
    ab, ap = np.broadcast_arrays(ab, ap)
    den = np.einsum("...i,...i->...", ab, ab)
    num = np.einsum("...i,...i->...", ap, ab)
    t = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    t = np.clip(t, 0.0, 1.0)
    d = ap - t[..., None] * ab
    return np.sqrt(np.einsum("...i,...i->...", d, d))


class SegmentIndex:
    """Exact nearest-segment queries on a set of 3-D segments.

    Segments are cut into pieces no longer than ``piece``; a k-d tree holds the piece
    midpoints. For a query point the ``k`` nearest midpoints give candidate pieces whose
    exact distances are computed; a piece not among them has a midpoint farther than the
    ``k``-th one, hence an exact distance of at least that minus half the longest piece,
    so ``k`` is doubled for the points where that bound does not exclude it.

    Parameters
    ----------
    a, b
        ``(m, 3)`` segment endpoints.
    piece
        Longest piece length (smaller: more memory, fewer candidates per query).
    """

    def __init__(self, a: NDArray, b: NDArray, *, piece: float = 1.0) -> None:
        from scipy.spatial import cKDTree

        a = np.asarray(a, dtype=np.float64).reshape(-1, 3)
        b = np.asarray(b, dtype=np.float64).reshape(-1, 3)
        self.n_segments = a.shape[0]
        if self.n_segments == 0:
            self._tree = None
            return
        length = np.linalg.norm(b - a, axis=1)
        k = np.maximum(1, np.ceil(length / piece).astype(np.int64))
        seg = np.repeat(np.arange(a.shape[0]), k)
        j = np.arange(seg.size) - np.repeat(np.cumsum(k) - k, k)
        t0 = (j / k[seg])[:, None]
        t1 = ((j + 1) / k[seg])[:, None]
        d = (b - a)[seg]
        self._a = a[seg] + t0 * d
        self._b = a[seg] + t1 * d
        self._seg = seg
        self._half = float((length / k).max(initial=0.0)) / 2.0
        self._tree = cKDTree(0.5 * (self._a + self._b))

    def query(self, p: NDArray) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Distance from every point to the nearest segment, and that segment's index
        (``inf`` and ``-1`` when there are no segments)."""
        p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
        n = p.shape[0]
        best = np.full(n, np.inf)
        which = np.full(n, -1, dtype=np.int64)
        if self._tree is None or n == 0:
            return best, which
        npieces = self._a.shape[0]
        todo = np.arange(n)
        k = 4
        while todo.size:
            kk = min(k, npieces)
            md, idx = self._tree.query(p[todo], k=kk)
            md = md.reshape(todo.size, kk)
            idx = idx.reshape(todo.size, kk)
            d = point_segment_distance(p[todo][:, None, :], self._a[idx], self._b[idx])
            arg = np.argmin(d, axis=1)
            dmin = d[np.arange(todo.size), arg]
            best[todo] = dmin
            which[todo] = self._seg[idx[np.arange(todo.size), arg]]
            if kk == npieces:
                break
            # unresolved: a piece beyond the k-th midpoint could still be closer
            unresolved = md[:, -1] - self._half < dmin
            todo = todo[unresolved]
            k *= 4
        return best, which


# ---------------------------------------------------------------------------- sampling
def _edges(m: Morphology) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Child and parent indices of every sampled edge (soma-to-soma edges left out)."""
    child = np.flatnonzero(m.parent >= 0)
    par = m.parent[child]
    keep = ~(m.soma_mask[child] & m.soma_mask[par])
    return child[keep], par[keep]


def _midpoint_samples(m: Morphology, step: float) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Piece midpoints along every edge, their weights (piece lengths), SWC types and the
    piece endpoints' edge (child node) index. An edge a whole number of steps long (to
    1e-4 of a step: coordinates written to an SWC's six decimals move a length by a few
    millionths of a micrometre) is cut into that many pieces, so a tree scores the same in
    memory and read back from its file."""
    child, par = _edges(m)
    a, b = m.xyz[child], m.xyz[par]
    length = np.linalg.norm(a - b, axis=1)
    k = np.maximum(1, np.ceil(length / step - 1e-4).astype(np.int64))
    k[length == 0] = 0
    e = np.repeat(np.arange(child.size), k)
    j = np.arange(e.size) - np.repeat(np.cumsum(k) - k, k)
    t = ((j + 0.5) / np.maximum(k[e], 1))[:, None]
    pts = a[e] + t * (b[e] - a[e])
    w = (length / np.maximum(k, 1))[e]
    return pts, w, m.types[child][e], child[e]


def _vaa3d_samples(m: Morphology, step: float) -> NDArray:
    """Vaa3D neuron_distance sampling: ``int(1 + len / step + 0.5)`` points per edge from
    the child to the parent, both included (every edge, soma ones too)."""
    child = np.flatnonzero(m.parent >= 0)
    a, b = m.xyz[child], m.xyz[m.parent[child]]
    length = np.linalg.norm(b - a, axis=1)
    n = (1 + length / step + 0.5).astype(np.int64)
    e = np.repeat(np.arange(child.size), n)
    j = np.arange(e.size) - np.repeat(np.cumsum(n) - n, n)
    frac = np.where(n[e] > 1, j / np.maximum(n[e] - 1, 1), 0.0)[:, None]
    return a[e] + frac * (b[e] - a[e])


def _all_segments(m: Morphology, types: Sequence[int] | None = None) -> tuple[NDArray, NDArray]:
    child, par = _edges(m)
    if types is not None:
        child, par = child[np.isin(m.types[child], types)], par[np.isin(m.types[child], types)]
    return m.xyz[child], m.xyz[par]


# ---------------------------------------------------------------------------- result
@dataclass
class NodeCounts:
    """Branch points (or tips) of the gold and the trace, paired within the node
    tolerance."""

    gold: int
    trace: int
    found: int

    @property
    def missed(self) -> int:
        return self.gold - self.found

    @property
    def extra(self) -> int:
        return self.trace - self.found

    def to_dict(self) -> dict[str, int]:
        return {
            "gold": self.gold,
            "trace": self.trace,
            "found": self.found,
            "missed": self.missed,
            "extra": self.extra,
        }


@dataclass
class CompartmentScore:
    """Precision / recall / F1 of one compartment and its cable in both trees."""

    precision: float
    recall: float
    f1: float
    gold_length: float
    trace_length: float


@dataclass
class CompareResult:
    """Everything :func:`compare` measures (see the module docstring for definitions).

    Lengths and distances are in ``units`` (micrometres, or voxels when both trees were
    compared in voxel units).
    """

    units: str
    voxel_size: tuple[float, float, float] | None
    tolerance: float
    step: float
    node_tolerance: float
    precision: float
    recall: float
    f1: float
    gold_length: float
    trace_length: float
    gold_sampled_length: float
    trace_sampled_length: float
    gold_matched_length: float
    trace_matched_length: float
    esa: float
    esa_gold_to_trace: float
    esa_trace_to_gold: float
    dsa: float
    pds: float
    pds_gold_to_trace: float
    pds_trace_to_gold: float
    max_distance: float
    dsa_threshold: float
    vaa3d_step: float
    branch_points: NodeCounts
    tips: NodeCounts
    diadem: float
    diadem_matched_weight: float
    diadem_total_weight: float
    compartments: dict[str, CompartmentScore] = field(default_factory=dict)
    #: With ``clutter`` given: the trace's sampled cable within tolerance of the clutter and
    #: beyond it from the gold, and that as a fraction of the trace's sampled cable.
    clutter_length: float | None = None
    clutter_fraction: float | None = None
    gold_name: str | None = None
    trace_name: str | None = None
    # per-sample arrays for plotting (not part of to_dict)
    _gold_samples: Any = field(default=None, repr=False)
    _trace_samples: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary (no per-sample arrays; undefined values, such as
        the precision of a compartment the trace does not have, are ``None``)."""
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        d["branch_points"] = self.branch_points.to_dict()
        d["tips"] = self.tips.to_dict()
        d["voxel_size"] = None if self.voxel_size is None else list(self.voxel_size)
        return _finite(d)

    def to_json(self, **kw: Any) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), allow_nan=False, **kw)

    def format_table(self) -> str:
        """A readable multi-line table."""
        u = "um" if self.units == "um" else "vox"
        rows: list[tuple[str, str]] = []
        if self.trace_name or self.gold_name:
            rows.append(("trace / gold", f"{self.trace_name} / {self.gold_name}"))
        vs = (
            ""
            if self.voxel_size is None
            else " (voxel " + " x ".join(f"{v:g}" for v in self.voxel_size) + ")"
        )
        rows += [
            ("tolerance", f"{self.tolerance:.4g} {u}{vs}; step {self.step:.3g} {u}"),
            ("precision", f"{self.precision:.4f}"),
            ("recall", f"{self.recall:.4f}"),
            ("F1", f"{self.f1:.4f}"),
            (
                "cable length gold",
                f"{self.gold_length:.2f} {u} (sampled outside the soma {self.gold_sampled_length:.2f}, "
                f"within tolerance {self.gold_matched_length:.2f})",
            ),
            (
                "cable length trace",
                f"{self.trace_length:.2f} {u} (sampled outside the soma {self.trace_sampled_length:.2f}, "
                f"within tolerance {self.trace_matched_length:.2f})",
            ),
            (
                "ESA (Vaa3D)",
                f"{self.esa:.4f} {u} (gold->trace {self.esa_gold_to_trace:.4f}, trace->gold {self.esa_trace_to_gold:.4f})",
            ),
            ("DSA (Vaa3D)", f"{self.dsa:.4f} {u} (threshold {self.dsa_threshold:.3g})"),
            (
                "PDS (Vaa3D)",
                f"{self.pds:.4f} (gold->trace {self.pds_gold_to_trace:.4f}, trace->gold {self.pds_trace_to_gold:.4f})",
            ),
            ("max distance (Vaa3D)", f"{self.max_distance:.4f} {u}"),
        ]
        for label, c in (("branch points", self.branch_points), ("tips", self.tips)):
            rows.append(
                (
                    label,
                    f"gold {c.gold}, trace {c.trace}: found {c.found}, missed {c.missed}, extra {c.extra}",
                )
            )
        rows.append(
            (
                "DIADEM-style score",
                f"{self.diadem:.4f} ({self.diadem_matched_weight:g} / {self.diadem_total_weight:g}, "
                f"node tolerance {self.node_tolerance:.3g} {u})",
            )
        )
        if self.clutter_length is not None:
            rows.append(("trace on clutter", f"{self.clutter_length:.2f} {u} ({self.clutter_fraction:.4f} of the trace's "
                                             "sampled cable; within tolerance of the clutter, beyond it from the gold)"))
        for name, c in self.compartments.items():
            rows.append(
                (
                    f"  {name}",
                    f"P {c.precision:.4f}  R {c.recall:.4f}  F1 {c.f1:.4f}  "
                    f"length gold {c.gold_length:.1f} / trace {c.trace_length:.1f}",
                )
            )
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# ---------------------------------------------------------------------------- helpers
def _finite(obj: Any) -> Any:
    """Replace NaN / inf by None, recursively (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _f1(p: float, r: float) -> float:
    """F1 of precision ``p`` and recall ``r``: NaN when both are (neither tree has cable to
    score: two somata alone), 0 when only one is (one tree has none)."""
    if not (math.isfinite(p) or math.isfinite(r)):
        return float("nan")
    return 0.0 if p + r <= 0 or not (math.isfinite(p) and math.isfinite(r)) else 2 * p * r / (p + r)


def _frac(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _frame(
    trace: Morphology,
    gold: Morphology,
    units: str | None,
    voxel_size: Sequence[float] | None,
    trace_units: str | None = None,
    gold_units: str | None = None,
) -> tuple[Morphology, Morphology, str, tuple[float, float, float] | None]:
    """Bring both trees to one frame; returns them, the frame's units and the voxel size."""
    for u in (units, trace_units, gold_units):
        if u not in (None, "um", "voxel"):
            raise MorphError(f"units must be 'um' or 'voxel', not {u!r}")
    ut = trace_units or units or trace.units
    ug = gold_units or units or gold.units
    vs = None
    if voxel_size is not None:
        vs = tuple(float(v) for v in voxel_size)
    else:
        for m in (gold, trace):
            if m.voxel_size is not None:
                vs = m.voxel_size
                break
    if vs is not None and (len(vs) != 3 or min(vs) <= 0):
        raise MorphError(f"voxel size must be 3 positive numbers (x, y, z), got {vs}")
    if ut == ug == "voxel" and vs is None:
        return trace._derive(units="voxel"), gold._derive(units="voxel"), "voxel", None
    out = []
    for m, u, label in ((trace, ut, "trace"), (gold, ug, "gold")):
        if u == "voxel":
            if vs is None:
                raise MorphError(
                    f"the {label} is in voxel units and the other tree in micrometres",
                    hint="give the voxel size (x, y, z) to convert it",
                )
            m = m._derive(units="voxel").to_micrometres(vs)
        else:
            m = m._derive(units="um")
        out.append(m)
    return out[0], out[1], "um", vs  # type: ignore[return-value]


def _soma_sphere(gold: Morphology, trace: Morphology, margin: float) -> tuple[NDArray, float] | None:
    for m in (gold, trace):
        if m.soma_nodes.size:
            c, r = m.soma_center, m.soma_radius
            if np.isfinite(r) and r > 0:
                return c, r * margin
    return None


MAX_SAMPLES = 5e7
"""Most samples of the two trees' cable one comparison takes (a few GB of distances)."""


def _pair_nodes(pa: NDArray, pb: NDArray, tol: float) -> int:
    """Number of one-to-one pairs of points of ``pa`` and ``pb`` closer than ``tol``
    (least total distance)."""
    kind_a = np.zeros(len(pa), dtype=bool)
    kind_b = np.zeros(len(pb), dtype=bool)
    return int((_assign(pa, pb, kind_a, kind_b, tol) >= 0).sum())


def _prune_terminals(m: Morphology, min_length: float) -> Morphology:
    """Drop terminal sections shorter than ``min_length`` (one pass)."""
    if min_length <= 0 or len(m) == 0:
        return m
    sec = m.sections
    terminal = sec.children_count() == 0
    short = terminal & (sec.length < min_length) & (sec.parent >= 0)
    if not short.any():
        return m
    drop = np.isin(m.section_id, np.flatnonzero(short))
    return m.take(~drop)


def _critical(m: Morphology) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Critical nodes (section ends: branch points and tips), the critical parent of each
    (index into the returned list, -1 at the top), and the number of tips below each."""
    sec = m.sections
    nodes = sec.end.copy()
    parent = sec.parent.copy()
    # sections are numbered in node order, so a parent section has a smaller index
    tips = (sec.children_count() == 0).astype(np.float64)
    order = np.argsort(sec.branch_order, kind="stable")[::-1]
    for bo in np.unique(sec.branch_order)[::-1]:
        s = order[sec.branch_order[order] == bo]
        s = s[parent[s] >= 0]
        np.add.at(tips, parent[s], tips[s])
    return nodes, parent, tips


def _section_intervals(m: Morphology) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pre-order entry / exit numbers of the sections (ancestor test: tin[a] <= tin[b] <
    tout[a])."""
    sec = m.sections
    n = sec.n
    kids: list[list[int]] = [[] for _ in range(n)]
    for s, p in enumerate(sec.parent.tolist()):
        if p >= 0:
            kids[p].append(s)
    tin = np.zeros(n, dtype=np.int64)
    tout = np.zeros(n, dtype=np.int64)
    clock = 0
    for r in np.flatnonzero(sec.parent < 0).tolist():
        stack = [(r, False)]
        while stack:
            s, done = stack.pop()
            if done:
                tout[s] = clock
                continue
            tin[s] = clock
            clock += 1
            stack.append((s, True))
            stack.extend((k, False) for k in reversed(kids[s]))
    return tin, tout


def _assign(pg: NDArray, pt: NDArray, g_tip: NDArray, t_tip: NDArray, tol: float) -> NDArray[np.int64]:
    """Least-cost one-to-one pairing of gold and trace points closer than ``tol`` (cost:
    distance, plus ``tol`` when a branch point is paired with a tip); ``-1`` when unpaired."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching
    from scipy.spatial import cKDTree

    ng, nt = len(pg), len(pt)
    out = np.full(ng, -1, dtype=np.int64)
    if ng == 0 or nt == 0:
        return out
    sdm = cKDTree(pg).sparse_distance_matrix(cKDTree(pt), tol, output_type="ndarray")
    cost = sdm["v"] + tol * (g_tip[sdm["i"]] != t_tip[sdm["j"]]) + 1e-9
    # one dummy partner per gold node, dearer than any real pair: a full matching exists
    rows = np.concatenate([sdm["i"], np.arange(ng)])
    cols = np.concatenate([sdm["j"], nt + np.arange(ng)])
    vals = np.concatenate([cost, np.full(ng, 4.0 * tol + 1.0)])
    graph = coo_matrix((vals, (rows, cols)), shape=(ng, nt + ng)).tocsr()
    try:
        row, col = min_weight_full_bipartite_matching(graph)
    except ValueError:
        return out
    real = col < nt
    out[row[real]] = col[real]
    return out


def _diadem(gold: Morphology, trace: Morphology, tol: float, min_terminal: float) -> tuple[float, float]:
    """DIADEM-style matched weight and total weight (see the module docstring)."""
    g = _prune_terminals(gold, min_terminal)
    t = _prune_terminals(trace, min_terminal)
    if g.sections.n == 0:
        return 0.0, 0.0
    gnodes, gpar, gw = _critical(g)
    total = float(gw.sum())
    if t.sections.n == 0:
        return 0.0, total
    from scipy.spatial import cKDTree

    tnodes = t.sections.end
    t_tip = t.sections.children_count() == 0
    g_tip = g.sections.children_count() == 0
    tin, tout = _section_intervals(t)
    ttree = cKDTree(t.xyz[tnodes])
    cands = ttree.query_ball_point(g.xyz[gnodes], tol)
    # 1) a globally optimal one-to-one pairing (least total distance, kind mismatches
    #    penalised) so that close critical nodes do not steal each other's partner
    assigned = _assign(g.xyz[gnodes], t.xyz[tnodes], g_tip, t_tip, tol)
    reserved = np.zeros(tnodes.size, dtype=bool)
    reserved[assigned[assigned >= 0]] = True
    # 2) top-down: keep a pair when it is topologically consistent (inside the subtree of
    #    the trace node matched to the nearest matched gold ancestor), else take the
    #    nearest free consistent candidate
    match = np.full(gnodes.size, -1, dtype=np.int64)
    claimed = np.zeros(tnodes.size, dtype=bool)
    anc_match = np.full(gnodes.size, -1, dtype=np.int64)
    order = np.argsort(g.sections.branch_order, kind="stable")
    matched = 0.0

    def consistent(anchor: int, j: int) -> bool:
        return anchor < 0 or bool(tin[anchor] < tin[j] < tout[anchor])

    for s in order.tolist():
        p = gpar[s]
        anchor = -1
        if p >= 0:
            anchor = match[p] if match[p] >= 0 else anc_match[p]
        anc_match[s] = anchor
        j = int(assigned[s])
        if j < 0 or claimed[j] or not consistent(anchor, j):
            if j >= 0:
                reserved[j] = False
            c = [k for k in cands[s] if not claimed[k] and not reserved[k] and consistent(anchor, k)]
            if not c:
                continue
            cj = np.asarray(c)
            d = np.linalg.norm(t.xyz[tnodes[cj]] - g.xyz[gnodes[s]], axis=1)
            # a node of the same kind (branch point / tip) first, then the nearest
            j = int(cj[np.lexsort((d, t_tip[cj] != g_tip[s]))[0]])
        match[s] = j
        claimed[j] = True
        matched += float(gw[s])
    return matched, total


# ---------------------------------------------------------------------------- compare
def compare(
    trace: Morphology | str | Path,
    gold: Morphology | str | Path,
    *,
    tolerance: float | None = None,
    step: float | None = None,
    voxel_size: Sequence[float] | None = None,
    units: str | None = None,
    trace_units: str | None = None,
    gold_units: str | None = None,
    node_tolerance: float | None = None,
    dsa_threshold: float | None = None,
    vaa3d_step: float = 1.0,
    min_terminal_length: float = 0.0,
    soma_margin: float = 1.0,
    clutter: Morphology | str | Path | None = None,
) -> CompareResult:
    """Score a tracing against a gold-standard reconstruction.

    Parameters
    ----------
    trace, gold
        The two reconstructions (or SWC paths).
    tolerance
        Distance under which a sample counts as matched (default: 2 voxel widths,
        ``2 * voxel_size[0]``, but at least ``voxel_size[2]``, when a voxel size is
        known; else 2 units).
    step
        Resampling step along the edges (default ``tolerance / 4``).
    voxel_size
        ``(x, y, z)`` size of a voxel in micrometres (or, for voxel-unit trees without a
        physical size, the relative spacing such as :data:`DIADEM_OP_VOXEL`). Trees in
        voxel units are scaled by it. Default: the gold's (then the trace's) voxel size
        from its SWC header.
    units
        ``"um"`` or ``"voxel"``: the units of *both* trees' coordinates, overriding what
        their headers say. Default: each tree's own ``units``.
    trace_units, gold_units
        The same for one tree only (e.g. a trace already in micrometres against a gold in
        voxels whose file does not say so: ``gold_units="voxel"``).
    node_tolerance
        Pairing distance for branch points, tips and the DIADEM-style score (default
        ``2 * tolerance``).
    dsa_threshold
        Vaa3D's "visible" distance threshold for DSA and PDS (default: ``tolerance``;
        Vaa3D's own default is 2 in the SWC's units).
    vaa3d_step
        Sampling step of the Vaa3D measures (Vaa3D uses 1 unit).
    min_terminal_length
        Terminal branches shorter than this are ignored by the DIADEM-style score (the
        DIADEM challenge used 6 pixels for the Olfactory Projection set).
    soma_margin
        Samples closer to the soma centre than ``soma_margin`` times the soma radius are
        left out.
    clutter
        What the image holds that must not be traced (or an SWC path), in the gold's units:
        other cells' fragments as chains of nodes, debris as single nodes whose radius is
        the ball's (``morph synth`` writes it as ``<prefix>.clutter.swc``). The result then
        says how much of the trace's cable lies within ``tolerance`` of it (of a chain's
        centreline, of a ball's surface) and beyond ``tolerance`` from the gold.

    Returns
    -------
    CompareResult

    Examples
    --------
    >>> from morph.morphology import Morphology
    >>> g = Morphology([[0, 0, 0], [100, 0, 0]], [1, 1], [3, 3], [-1, 0])
    >>> r = compare(g, g)
    >>> (r.precision, r.recall, r.f1)
    (1.0, 1.0, 1.0)
    """
    if not isinstance(trace, Morphology):
        from morph.io import read_swc

        trace = read_swc(trace)
    if not isinstance(gold, Morphology):
        from morph.io import read_swc

        gold = read_swc(gold)
    if len(gold) < 2:
        raise MorphologyError("the gold reconstruction has fewer than 2 nodes: nothing to compare against")
    if len(trace) == 0:
        raise MorphologyError("the trace is empty", hint="an empty tracing cannot be scored")
    if clutter is not None and not isinstance(clutter, Morphology):
        from morph.io import read_swc

        clutter = read_swc(clutter)
    t_m, g_m, frame, vs = _frame(trace, gold, units, voxel_size, trace_units, gold_units)
    if tolerance is None:
        tolerance = max(2.0 * vs[0], vs[2]) if vs is not None and frame == "um" else 2.0
    if not tolerance > 0:
        raise MorphError(f"tolerance must be positive, got {tolerance}")
    step = float(step) if step is not None else tolerance / 4.0
    if not step > 0:
        raise MorphError(f"step must be positive, got {step}")
    n_samples = (g_m.edge_length.sum() + t_m.edge_length.sum()) / step
    if n_samples > MAX_SAMPLES:
        raise MorphError(f"a sampling step of {step:g} makes {n_samples:.3g} samples of the two trees (at most "
                         f"{MAX_SAMPLES:.0e})", hint="give a larger --step (by default a quarter of --tolerance)")
    node_tol = float(node_tolerance) if node_tolerance is not None else 2.0 * tolerance
    dsa_thr = float(dsa_threshold) if dsa_threshold is not None else float(tolerance)
    piece = max(step, 1e-6)

    g_seg = _all_segments(g_m)
    t_seg = _all_segments(t_m)
    g_index = SegmentIndex(*g_seg, piece=piece)
    t_index = SegmentIndex(*t_seg, piece=piece)

    # ---- sample-based precision / recall
    sphere = _soma_sphere(g_m, t_m, soma_margin)

    def samples(m: Morphology) -> tuple[NDArray, NDArray, NDArray]:
        p, w, ty, _ = _midpoint_samples(m, step)
        if sphere is not None:
            keep = np.linalg.norm(p - sphere[0], axis=1) > sphere[1]
            p, w, ty = p[keep], w[keep], ty[keep]
        return p, w, ty

    gp, gw, gt = samples(g_m)
    tp, tw, tt = samples(t_m)
    gd, _ = t_index.query(gp)  # gold samples -> trace
    td, _ = g_index.query(tp)  # trace samples -> gold
    g_ok = gd <= tolerance
    t_ok = td <= tolerance
    recall = _frac(float(gw[g_ok].sum()), float(gw.sum()))
    precision = _frac(float(tw[t_ok].sum()), float(tw.sum()))
    clutter_length = clutter_fraction = None
    if clutter is not None:
        on = _near_clutter(clutter, tp, tolerance, frame, vs, gold_units or units or gold.units) & ~t_ok
        clutter_length = float(tw[on].sum())
        clutter_fraction = _frac(clutter_length, float(tw.sum()))
    if len(t_m) < 2 or tw.sum() == 0:
        precision = 0.0 if gw.sum() > 0 else float("nan")

    # ---- Vaa3D ESA / DSA / PDS
    g_v = _vaa3d_samples(g_m, vaa3d_step)
    t_v = _vaa3d_samples(t_m, vaa3d_step)
    g_all = SegmentIndex(*_vaa3d_segments(g_m), piece=piece)
    t_all = SegmentIndex(*_vaa3d_segments(t_m), piece=piece)
    d_gt, _ = t_all.query(g_v)
    d_tg, _ = g_all.query(t_v)
    esa_gt = float(d_gt.mean()) if d_gt.size else float("nan")
    esa_tg = float(d_tg.mean()) if d_tg.size else float("nan")
    big_gt = d_gt[d_gt >= dsa_thr]
    big_tg = d_tg[d_tg >= dsa_thr]
    parts = [float(x.mean()) for x in (big_gt, big_tg) if x.size]
    dsa = float(np.mean(parts)) if parts else 0.0
    pds_gt = _frac(big_gt.size, d_gt.size)
    pds_tg = _frac(big_tg.size, d_tg.size)
    maxes = [float(x.max()) for x in (d_gt, d_tg) if x.size]
    max_distance = min(maxes) if maxes else float("nan")

    # ---- branch points, tips
    def counts(ig: NDArray, it: NDArray) -> NodeCounts:
        found = _pair_nodes(g_m.xyz[ig], t_m.xyz[it], node_tol)
        return NodeCounts(int(ig.size), int(it.size), found)

    bp = counts(g_m.branch_points, t_m.branch_points)
    tips = counts(g_m.tips, t_m.tips)
    dm, dt = _diadem(g_m, t_m, node_tol, min_terminal_length)

    # ---- compartments
    comps: dict[str, CompartmentScore] = {}
    typed = {AXON, BASAL, APICAL}
    if typed & set(np.unique(g_m.types).tolist()) and typed & set(np.unique(t_m.types).tolist()):
        for name, types in _COMPARTMENTS.items():
            gsel = np.isin(gt, types)
            tsel = np.isin(tt, types)
            if not gsel.any() and not tsel.any():
                continue
            gi = SegmentIndex(*_all_segments(g_m, types), piece=piece)
            ti = SegmentIndex(*_all_segments(t_m, types), piece=piece)
            dg, _ = ti.query(gp[gsel])
            dtt, _ = gi.query(tp[tsel])
            r = _frac(float(gw[gsel][dg <= tolerance].sum()), float(gw[gsel].sum()))
            p = _frac(float(tw[tsel][dtt <= tolerance].sum()), float(tw[tsel].sum()))
            comps[name] = CompartmentScore(
                precision=p,
                recall=r,
                f1=_f1(p, r),
                gold_length=g_m.total_length(list(types)),
                trace_length=t_m.total_length(list(types)),
            )

    return CompareResult(
        units=frame,
        voxel_size=vs,
        tolerance=float(tolerance),
        step=step,
        node_tolerance=node_tol,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        gold_length=g_m.total_length(),
        trace_length=t_m.total_length(),
        gold_sampled_length=float(gw.sum()),
        trace_sampled_length=float(tw.sum()),
        gold_matched_length=float(gw[g_ok].sum()),
        trace_matched_length=float(tw[t_ok].sum()),
        esa=float(np.mean([esa_gt, esa_tg])),
        esa_gold_to_trace=esa_gt,
        esa_trace_to_gold=esa_tg,
        dsa=dsa,
        pds=float(np.mean([pds_gt, pds_tg])),
        pds_gold_to_trace=pds_gt,
        pds_trace_to_gold=pds_tg,
        max_distance=max_distance,
        dsa_threshold=dsa_thr,
        vaa3d_step=float(vaa3d_step),
        branch_points=bp,
        tips=tips,
        diadem=_frac(dm, dt) if dt > 0 else float("nan"),
        diadem_matched_weight=dm,
        diadem_total_weight=dt,
        compartments=comps,
        clutter_length=clutter_length,
        clutter_fraction=clutter_fraction,
        gold_name=gold.name,
        trace_name=trace.name,
        _gold_samples=(gp, g_ok),
        _trace_samples=(tp, t_ok),
    )


def _near_clutter(clutter: Morphology, pts: NDArray, tolerance: float, frame: str,
                  vs: tuple[float, float, float] | None, gold_units: str) -> NDArray[np.bool_]:
    """Which of ``pts`` (the comparison's frame) lie within ``tolerance`` of the clutter:
    of its chains' centrelines, or of the surface of its single nodes (balls). The clutter
    is taken in the gold's units."""
    c = clutter._derive(units=gold_units)
    if frame == "um" and gold_units == "voxel":
        c = c.to_micrometres(vs)
    near = np.zeros(len(pts), dtype=bool)
    if not len(c) or not len(pts):
        return near
    child = np.flatnonzero(c.parent >= 0)
    if child.size:
        d, _ = SegmentIndex(c.xyz[child], c.xyz[c.parent[child]], piece=max(tolerance / 4.0, 1e-6)).query(pts)
        near |= d <= tolerance
    single = (c.parent < 0) & (np.bincount(c.parent[child], minlength=len(c)) == 0)
    if single.any():
        from scipy.spatial import cKDTree

        hits = cKDTree(pts).query_ball_point(c.xyz[single], c.radius[single] + tolerance)
        near[np.concatenate([np.asarray(h, dtype=np.int64) for h in hits])] = True
    return near


def _vaa3d_segments(m: Morphology) -> tuple[NDArray, NDArray]:
    """Every edge, soma ones included (Vaa3D's target set)."""
    child = np.flatnonzero(m.parent >= 0)
    if child.size == 0:  # a single node: Vaa3D measures to the node itself
        return m.xyz[:1], m.xyz[:1]
    return m.xyz[child], m.xyz[m.parent[child]]


# ---------------------------------------------------------------------------- plot
def plot_comparison(
    result: CompareResult | tuple[Morphology, Morphology],
    path: str | Path,
    *,
    force: bool = False,
    dpi: int = 150,
    title: str | None = None,
    **compare_kw: Any,
) -> Path:
    """Draw gold and trace projected on the xy and xz planes, coloured matched / missed /
    extra, into a PNG (matplotlib, Agg backend).

    ``result`` is a :class:`CompareResult` or a ``(trace, gold)`` pair (then compared with
    ``compare_kw``). Green: gold matched by the trace; red: gold missed; blue: trace not on
    the gold (extra). Written atomically; refuses to overwrite without ``force``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from morph.io import atomic_write_with

    if isinstance(result, tuple):
        result = compare(result[0], result[1], **compare_kw)
    gp, g_ok = result._gold_samples
    tp, t_ok = result._trace_samples
    fig, axes = plt.subplots(1, 2, figsize=(12, 6), gridspec_kw={"width_ratios": [1, 1]})
    s = 1.5
    for ax, (i, j, lab) in zip(axes, ((0, 1, "xy"), (0, 2, "xz"))):
        ax.scatter(tp[t_ok, i], tp[t_ok, j], s=s, c="0.75", lw=0, label="trace on gold")
        ax.scatter(gp[g_ok, i], gp[g_ok, j], s=s, c="tab:green", lw=0, label="gold matched")
        ax.scatter(gp[~g_ok, i], gp[~g_ok, j], s=s, c="tab:red", lw=0, label="gold missed")
        ax.scatter(tp[~t_ok, i], tp[~t_ok, j], s=s, c="tab:blue", lw=0, label="trace extra")
        ax.set_aspect("equal")
        ax.set_xlabel(f"{lab[0]} ({result.units})")
        ax.set_ylabel(f"{lab[1]} ({result.units})")
        if lab == "xy":
            ax.invert_yaxis()
        ax.set_title(f"{lab} projection")
    axes[0].legend(loc="best", markerscale=6, fontsize=8)
    fig.suptitle(
        title
        or f"precision {result.precision:.3f}  recall {result.recall:.3f}  F1 {result.f1:.3f}  "
        f"(tolerance {result.tolerance:.3g} {result.units})"
    )
    fig.tight_layout()

    def writer(tmp: Path) -> None:
        fig.savefig(tmp, dpi=dpi, format="png")

    try:
        return atomic_write_with(path, writer, force=force)
    finally:
        plt.close(fig)


__all__ = [
    "DIADEM_OP_VOXEL",
    "CompareResult",
    "CompartmentScore",
    "NodeCounts",
    "SegmentIndex",
    "compare",
    "plot_comparison",
    "point_segment_distance",
]
