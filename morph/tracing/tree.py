"""Tree growth from the soma (or root seeds) outwards on a sparse graph of foreground voxels.

The candidate foreground (voxels of the enhanced image above a low threshold, typically 1%
of the stack) becomes a graph: each voxel is joined to its 26 neighbours that are also
candidates, the weight of an edge being its physical length times the mean of the two
voxels' costs ``exp(cost_power * (1 - f)**2)`` (``f``: enhanced intensity scaled to [0, 1]),
the gray-weighted distance of APP2. From the soma voxels (or the root seed) a multi-source
Dijkstra (:func:`scipy.sparse.csgraph.dijkstra`) gives the shortest-path tree (SPT) of
everything connected to the chosen cell; other cells and debris, in other connected pieces,
are never reached.

The SPT of a thick neurite holds many short side paths. It is reduced to the neuron's
skeleton by a longest-path decomposition, as in APP2's hierarchical pruning: each node
continues into the child whose subtree reaches furthest (in path length), which splits the
SPT into segments (chains from a junction to a leaf). A segment is kept when it reaches at
least ``min_branch_um + branch_radius_factor * r`` beyond its junction, ``r`` being the local
radius there (the geodesic distance from the junction to the edge of the foreground). A
child segment is never longer than what remains of its parent, so the kept set is a tree.

Staining gaps are bridged iteratively: from each tip of the current tree, the nearest voxel
of another sufficiently large piece of foreground within ``gap_um`` and within
``gap_max_angle_deg`` of the neurite's direction at the tip gets a bridge edge (costing
``gap_cost`` times the faintest foreground per micrometre), and the tree is regrown. Longer
bridges, up to ``gap_long_um``, join a tip and the end of a piece that point at each other
along one line (:func:`_long_bridges`).

Stages: building the graph is local (each voxel looks at its 26 neighbours: chunks with a
one-slice halo); the Dijkstra and the decomposition are global but only touch the sparse
foreground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from morph import _tree
from morph.tracing.memory import release_memory

#: Rounds of gap bridging in :func:`grow` (each bridges from the tips of the tree of the
#: round before, then regrows it).
MAX_BRIDGE_ROUNDS = 8

# the 13 "forward" neighbour offsets of the 26-neighbourhood
_OFFSETS = np.array(
    [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) > (0, 0, 0)],
    dtype=np.int64,
)


@dataclass
class Foreground:
    """Sparse candidate foreground: sorted linear indices into a (Z, Y, X) stack."""

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    index: NDArray[np.int64]
    value: NDArray[np.float32]

    def __post_init__(self) -> None:
        index = np.asarray(self.index, dtype=np.int64)
        value = np.asarray(self.value, dtype=np.float32)
        if index.size > 1 and np.any(index[1:] < index[:-1]):
            order = np.argsort(index, kind="stable")
            index, value = index[order], value[order]
        # sorted already (as the pipeline's are), the caller's arrays are shared, not copied
        self.index, self.value = index, value

    @property
    def n(self) -> int:
        return int(self.index.size)

    @property
    def zyx(self) -> NDArray[np.int32]:
        """``(n, 3)`` voxel coordinates, computed from the index when asked: not kept, since
        12 bytes per voxel held through the shortest-path stages are worth more than the few
        milliseconds of recomputing them."""
        return self.zyx_of(None)

    def zyx_of(self, nodes: NDArray[np.int64] | None) -> NDArray[np.int32]:
        """Voxel coordinates of ``nodes`` (positions; ``None``: all)."""
        idx = self.index if nodes is None else self.index[nodes]
        return np.stack(np.unravel_index(idx, self.shape), axis=1).astype(np.int32)

    def xyz_um(self, nodes: NDArray[np.int64] | None = None) -> NDArray[np.float64]:
        """Physical ``(x, y, z)`` of voxels (all, or ``nodes``)."""
        return self.zyx_of(nodes)[:, ::-1] * np.asarray(self.voxel_size, dtype=np.float64)

    def distances_to(self, point: NDArray[np.float64], block: int = 1 << 20) -> NDArray[np.float64]:
        """Distance (um) from every voxel to ``point``, computed a block of voxels at a time
        (no coordinate array of the whole foreground)."""
        d = np.empty(self.n, dtype=np.float64)
        for s in range(0, self.n, block):
            d[s : s + block] = np.linalg.norm(self.xyz_um(np.arange(s, min(self.n, s + block))) - point, axis=1)
        return d

    def within(self, point: NDArray[np.float64], radius: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The voxels (positions, ascending) within ``radius`` um of ``point`` and their
        distances: looked up from the voxels of the ball, so the work grows with the ball,
        not the foreground."""
        p = np.asarray(point, dtype=np.float64).reshape(3)
        vs = np.asarray(self.voxel_size, dtype=np.float64)
        lo = np.maximum(np.ceil((p - radius) / vs), 0).astype(np.int64)
        hi = np.minimum(np.floor((p + radius) / vs), np.asarray(self.shape[::-1]) - 1).astype(np.int64)
        if np.any(hi < lo):
            return np.zeros(0, np.int64), np.zeros(0)
        z, y, x = np.meshgrid(*(np.arange(a, b + 1) for a, b in zip(lo[::-1], hi[::-1], strict=True)), indexing="ij")
        d = np.sqrt((x * vs[0] - p[0]) ** 2 + (y * vs[1] - p[1]) ** 2 + (z * vs[2] - p[2]) ** 2)
        inside = d <= radius
        pos = self.lookup((z[inside] * self.shape[1] + y[inside]) * self.shape[2] + x[inside])
        found = pos >= 0
        return pos[found], d[inside][found]

    def lookup(self, linear: NDArray[np.int64]) -> NDArray[np.int64]:
        """Position of linear voxel indices in the foreground, -1 when absent."""
        pos = np.searchsorted(self.index, linear)
        pos = np.minimum(pos, max(self.n - 1, 0))
        ok = self.n > 0
        found = (self.index[pos] == linear) if ok else np.zeros(np.shape(linear), bool)
        return np.where(found, pos, -1)


@dataclass
class Graph:
    """Foreground graph in compressed sparse row form, each undirected edge stored once (from a
    voxel to its neighbour of higher linear index: use ``directed=False``).

    ``indptr`` and ``indices`` (int32) are the structure, ``code`` (uint8) the neighbour offset
    of each edge, whose physical length is ``step[code]``, and ``cost`` the cost per voxel once
    :meth:`set_cost` was called. The float64 matrices scipy's graph routines need
    (:attr:`length`, :attr:`weight`) are built when asked for and not kept: the graph costs
    5 bytes per edge, and one float64 matrix is alive only while it is used.
    """

    indptr: NDArray[np.int32]
    indices: NDArray[np.int32]
    code: NDArray[np.uint8]
    step: NDArray[np.float32]
    n: int
    cost: NDArray[np.floating] | None = None
    cost_max: float = 1.0

    def _row_blocks(self, size: int = 16384):
        """``(a, b, rows)`` per block of ``size`` voxels: its edges ``a:b`` and their rows
        (bounded temporaries)."""
        for i0 in range(0, self.n, size):
            i1 = min(self.n, i0 + size)
            a, b = int(self.indptr[i0]), int(self.indptr[i1])
            yield a, b, np.repeat(np.arange(i0, i1, dtype=self.indices.dtype), np.diff(self.indptr[i0 : i1 + 1]))

    @property
    def rows(self) -> NDArray[np.int32]:
        return np.repeat(np.arange(self.n, dtype=self.indices.dtype), np.diff(self.indptr))

    @property
    def cols(self) -> NDArray[np.int32]:
        return self.indices

    @property
    def lens(self) -> NDArray[np.float32]:
        return self.step[self.code]

    @property
    def degree(self) -> NDArray[np.int64]:
        return np.diff(self.indptr).astype(np.int64) + np.bincount(self.indices, minlength=self.n)

    def _matrix(self, data: NDArray[np.float64]) -> sp.csr_matrix:
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n), copy=False)

    @property
    def length(self) -> sp.csr_matrix:
        return self._matrix(self.step.astype(np.float64)[self.code])

    @property
    def weight(self) -> sp.csr_matrix | None:
        """Costed edge weights: length times the mean cost of the two voxels (float64)."""
        if self.cost is None:
            return None
        cost = self.cost
        data = np.empty(self.indices.size, dtype=np.float64)
        for a, b, r in self._row_blocks():
            data[a:b] = self.step[self.code[a:b]] * 0.5 * (cost[r] + cost[self.indices[a:b]])
        return self._matrix(data)

    def weight_without(self, inner: NDArray[np.bool_], *, cut: NDArray[np.bool_] | None = None,
                       min_fraction: float = 0.2) -> sp.csr_matrix | None:
        """:attr:`weight` without the edges joining two voxels of ``inner`` (a mask), when
        they are at least ``min_fraction`` of the edges (otherwise :attr:`weight` itself),
        and without every edge touching a voxel of ``cut`` (another cell's voxels: a search
        never enters them).

        A shortest-path search from every voxel of ``inner`` (a soma's body, a shape's
        boundary) never uses such an edge: both its ends lie at distance 0. Leaving them out
        changes no distance or predecessor and makes the search's matrices smaller: the
        matrix then holds its own indices (12 bytes per edge kept, against 8 per edge for
        :attr:`weight`, which shares the graph's), and scipy's transposed copy for an
        undirected search 12 per edge kept. On a finely sampled stack the soma's body holds
        half of the graph's edges (``bench/trace.py``'s BF_fine: 48 %)."""
        if self.cost is None:
            return None
        keep = np.empty(self.indices.size, dtype=bool)
        for a, b, r in self._row_blocks():
            c = self.indices[a:b]
            np.logical_not(inner[r] & inner[c], out=keep[a:b])
            if cut is not None:
                keep[a:b] &= ~(cut[r] | cut[c])
        n_keep = int(np.count_nonzero(keep))
        if (cut is None or not cut.any()) and self.indices.size - n_keep < min_fraction * self.indices.size:
            del keep
            return self.weight
        indptr = np.zeros(self.n + 1, dtype=self.indptr.dtype)
        indices = np.empty(n_keep, dtype=self.indices.dtype)
        data = np.empty(n_keep, dtype=np.float64)
        cost, at, ip = self.cost, 0, self.indptr
        for a, b, r in self._row_blocks():
            k = keep[a:b]
            if r.size:  # the edges each row keeps: differences of the block's running count
                i0, i1 = int(r[0]), int(r[-1]) + 1
                run = np.concatenate([[0], np.cumsum(k)])
                indptr[i0 + 1 : i1 + 1] = run[ip[i0 + 1 : i1 + 1] - a] - run[ip[i0:i1] - a]
            rk, ck = r[k], self.indices[a:b][k]
            indices[at : at + rk.size] = ck
            data[at : at + rk.size] = self.step[self.code[a:b][k]] * 0.5 * (cost[rk] + cost[ck])
            at += rk.size
        del keep
        np.cumsum(indptr, out=indptr)
        return sp.csr_matrix((data, indices, indptr), shape=(self.n, self.n), copy=False)

    def set_cost(self, cost: NDArray[np.float64]) -> None:
        """Cost per voxel: an edge weighs its length times the mean cost of its two voxels."""
        self.cost_max = float(np.max(cost)) if cost.size else 1.0
        self.cost = np.asarray(cost)

    def neighbourhood_max(self, value: NDArray[np.float64], rounds: int) -> NDArray[np.float64]:
        """Maximum of ``value`` over the graph neighbourhood of ``rounds`` steps."""
        out = np.array(value, dtype=np.float64, copy=True)
        for _ in range(rounds):
            nxt = out.copy()
            for a, b, r in self._row_blocks():
                c = self.indices[a:b]
                np.maximum.at(nxt, r, out[c])
                np.maximum.at(nxt, c, out[r])
            out = nxt
        return out


def piece_labels(
    shape: tuple[int, int, int], index: NDArray[np.int64], *, slab_bytes: int = 4 * 1024**2
) -> tuple[NDArray[np.int32] | NDArray[np.int64], int]:
    """26-connected pieces of a sparse foreground: ``(label per voxel, number of pieces)``.

    ``index`` holds sorted linear indices into a ``(Z, Y, X)`` stack. The voxels are taken a
    z-range at a time (about ``slab_bytes`` of working memory, 150 bytes per voxel of the
    range), with the last slice of the range before: their neighbour pairs are found by
    searching the sorted indices (the 13 forward neighbours of each voxel) and joined by a
    connected-components pass; pieces met across ranges are merged by a last pass on the
    small graph of labels. The cost follows the number of foreground voxels, not of the
    stack's; the memory is one range's plus 4 bytes per foreground voxel (int32 labels).
    """
    nz, ny, nx = (int(s) for s in shape)
    plane = ny * nx
    n = int(index.size)
    lab = np.empty(n, dtype=np.int32 if n < np.iinfo(np.int32).max else np.int64)
    if n == 0:
        return lab, 0
    per_range = max(1, int(slab_bytes) // 150)
    delta = _OFFSETS @ np.array([plane, nx, 1])
    starts = np.searchsorted(index, np.arange(nz + 1, dtype=np.int64) * plane)  # first voxel of each slice
    join_a: list[NDArray[np.int64]] = []
    join_b: list[NDArray[np.int64]] = []
    base = 0
    z0 = 0
    while z0 < nz:
        # the range [z0, z1): as many slices as fit (at least one)
        z1 = max(z0 + 1, int(np.searchsorted(starts, starts[z0] + per_range, side="right")) - 1)
        z1 = min(z1, nz)
        p0, p1 = int(starts[z0]), int(starts[z1])
        if p1 == p0:
            z0 = z1
            continue
        q0 = int(starts[z0 - 1]) if z0 > 0 else p0  # with the slice before: joins across ranges
        idx = index[q0:p1]
        m = idx.size
        zyx = np.stack(np.unravel_index(idx, shape), axis=1)
        rows, cols = [], []
        for k, off in enumerate(_OFFSETS):
            ok = np.ones(m, dtype=bool)
            for ax, lim in ((1, ny), (2, nx)):
                if off[ax]:
                    c = zyx[:, ax] + off[ax]
                    ok &= (c >= 0) & (c < lim)
            src = np.flatnonzero(ok)
            target = idx[src] + delta[k]
            pos = np.minimum(np.searchsorted(idx, target), m - 1)
            hit = idx[pos] == target
            rows.append(src[hit])
            cols.append(pos[hit])
        del zyx
        r, c = np.concatenate(rows), np.concatenate(cols)
        g = sp.coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(m, m)).tocsr()
        del r, c, rows, cols
        ncomp, comp = connected_components(g, directed=False)
        del g
        new = p0 - q0
        lab[p0:p1] = comp[new:] + base
        if new:  # voxels of the slice before (labelled already): their pieces continue here
            join_a.append(lab[q0:p0].astype(np.int64))
            join_b.append(comp[:new].astype(np.int64) + base)
        base += int(ncomp)
        z0 = z1
    if join_a:
        a = np.concatenate(join_a)
        b = np.concatenate(join_b)
        g = sp.coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(base, base)).tocsr()
        ncomp, comp = connected_components(g, directed=False)
        return comp.astype(lab.dtype)[lab], int(ncomp)
    return lab, base


def graph_components(fg: Foreground) -> tuple[int, NDArray[np.integer]]:
    """``(number, label per voxel)`` of the connected components of the foreground's 26-connected
    graph, numbered as :func:`scipy.sparse.csgraph.connected_components` numbers them (in
    the order of each piece's first voxel), from :func:`piece_labels`: that function, on
    the graph's float64 matrix, holds the matrix and its transpose (20 bytes per edge,
    about 250 per foreground voxel), these labels 4 to 8 bytes per voxel plus one slab."""
    lab, n = piece_labels(fg.shape, fg.index)
    first = np.full(n, fg.n, dtype=np.int64)
    np.minimum.at(first, lab, np.arange(fg.n, dtype=np.int64))
    rank = np.empty(n, dtype=lab.dtype)
    rank[np.argsort(first, kind="stable")] = np.arange(n, dtype=lab.dtype)
    return n, rank[lab]


def reachable_pieces(
    shape: tuple[int, int, int],
    voxel_size: tuple[float, float, float],
    index: NDArray[np.int64],
    strong: NDArray[np.bool_],
    *,
    keep_xyz_um: NDArray[np.float64] | None = None,
    keep_radius_um: float = 0.0,
    slab_bytes: int = 4 * 1024**2,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Which foreground voxels lie in a piece the tree can ever reach.

    :func:`grow` reaches the pieces that hold its sources and bridges only to pieces that hold
    a ``strong`` voxel (above the high threshold). A 26-connected piece with no strong voxel,
    typically a speck of background noise above the low threshold, can therefore only be
    reached when it holds a source, that is when it lies at a point the user gave: pieces
    with a voxel within ``keep_radius_um`` of ``keep_xyz_um`` (micrometres, ``(k, 3)``) are
    kept too. Dropping the others before the graph is built changes no path, no local radius
    (a voxel's neighbours are in its own piece) and no statistic of the strong voxels; it
    saves the tree stages' memory for those voxels (measured: 0 to 10% of the foreground, the
    most on noisy brightfield stacks).

    Returns two boolean masks over ``index``: the voxels kept, and those in pieces with no
    strong voxel (those kept near the user's points included: the tree never bridges to
    them either).
    """
    lab, n = piece_labels(shape, index, slab_bytes=slab_bytes)
    good = np.zeros(n, dtype=bool)
    good[lab[np.asarray(strong, dtype=bool)]] = True
    weak = ~good[lab]
    if keep_xyz_um is not None and len(keep_xyz_um) and not good.all():
        kd = cKDTree(np.asarray(keep_xyz_um, dtype=np.float64).reshape(-1, 3))
        vs = np.asarray(voxel_size, dtype=np.float64)
        # a block's temporaries (voxel coordinates as integers and micrometres, distances,
        # neighbours) take about 64 bytes a voxel: blocks of slab_bytes, as the labelling's
        block = max(1, int(slab_bytes) // 64)
        for s in range(0, index.size, block):
            zyx = np.stack(np.unravel_index(index[s : s + block], shape), axis=1)
            d, _j = kd.query(zyx[:, ::-1] * vs, distance_upper_bound=float(keep_radius_um) + 1e-9)
            good[lab[s : s + block][np.isfinite(d)]] = True
    return good[lab], weak


def reachable_from(
    fg: Foreground, sources: NDArray[np.int64], strong: NDArray[np.bool_], *, gap_um: float,
    rounds: int | None = None, block: int = 1 << 20,
) -> NDArray[np.bool_]:
    """Which foreground voxels :func:`grow` can reach from ``sources`` (positions in ``fg``).

    The pieces (26-connected) holding a source, and, when ``gap_um`` > 0, for each of
    ``rounds`` bridging rounds (default :data:`MAX_BRIDGE_ROUNDS`, as :func:`grow`), every
    piece holding a ``strong`` voxel (the only pieces bridged to) whose bounding box lies
    within ``gap_um`` of the box of a piece reached so far. A bridge joins two voxels at most
    ``gap_um`` apart (in the tracing space of ``fg``), each inside its piece's box, and each
    round of :func:`grow` bridges once from the tree of the round before, so no piece the
    tree can reach is left out (the box test may keep some that it cannot). Returns a
    boolean mask over ``fg``.
    """
    rounds = MAX_BRIDGE_ROUNDS if rounds is None else int(rounds)
    labels, n = piece_labels(fg.shape, fg.index)
    reached = np.zeros(n, dtype=bool)
    reached[labels[np.asarray(sources, dtype=np.int64)]] = True
    if gap_um > 0 and n > 1:
        lo = np.full((n, 3), np.inf)
        hi = np.full((n, 3), -np.inf)
        for s in range(0, fg.n, block):
            xyz = fg.xyz_um(np.arange(s, min(fg.n, s + block)))
            np.minimum.at(lo, labels[s : s + block], xyz)
            np.maximum.at(hi, labels[s : s + block], xyz)
        target = np.bincount(labels, weights=np.asarray(strong, dtype=np.float64), minlength=n) > 0
        centre, half = 0.5 * (lo + hi), np.linalg.norm(0.5 * (hi - lo), axis=1)
        kd = cKDTree(centre)
        # candidates by box centre within reach of the frontier's boxes; the few largest
        # pieces (half-diagonal above the 99th percentile) are tested against every
        # frontier box directly, so that they do not widen every query
        hsmall = float(np.percentile(half, 99))
        big = np.flatnonzero(half > hsmall)

        def close(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.bool_]:
            sep = np.maximum(0.0, np.maximum(lo[a] - hi[b], lo[b] - hi[a]))
            return np.linalg.norm(sep, axis=-1) <= gap_um

        frontier = np.flatnonzero(reached)
        for _round in range(rounds):
            if frontier.size == 0:
                break
            found: list[NDArray[np.int64]] = []
            near = kd.query_ball_point(centre[frontier], gap_um + half[frontier] + hsmall)
            for f, cand in zip(frontier, near):
                c = np.asarray(cand, dtype=np.int64)
                c = c[target[c] & ~reached[c]]
                if c.size:
                    found.append(c[close(c, np.full(c.size, f))])
            cb = big[target[big] & ~reached[big]]
            for k in range(0, frontier.size, 4096):
                if cb.size:
                    hit = close(cb[:, None], frontier[None, k : k + 4096]).any(axis=1)
                    found.append(cb[hit])
                    cb = cb[~hit]
            new = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
            new = new[~reached[new]]
            reached[new] = True
            frontier = new
    return reached[labels]


def build_graph(fg: Foreground, cost: NDArray[np.float64] | None = None) -> Graph:
    """26-connected graph of the foreground voxels (edges stored once: use ``directed=False``),
    built directly in compressed sparse row form with sorted column indices."""
    n = fg.n
    vs = np.asarray(fg.voxel_size, dtype=np.float64)
    shape = np.array(fg.shape)
    itype = np.int32 if 13 * n < np.iinfo(np.int32).max else np.int64
    step = np.array([np.linalg.norm(off[::-1] * vs) for off in _OFFSETS], dtype=np.float32)
    # the neighbours of a voxel in order of linear index (the column order of a CSR row)
    delta = _OFFSETS @ np.array([shape[1] * shape[2], shape[2], 1])
    srcs, dsts = [], []
    count = np.zeros(n, dtype=itype)
    zyx = fg.zyx
    for k in np.argsort(delta, kind="stable"):
        nb = zyx + _OFFSETS[k].astype(zyx.dtype)
        inside = np.all((nb >= 0) & (nb < shape), axis=1)
        src = np.flatnonzero(inside)
        lin = np.ravel_multi_index(tuple(nb[src].T), fg.shape)
        del nb
        pos = fg.lookup(lin)
        hit = pos >= 0
        srcs.append((int(k), src[hit].astype(itype)))
        dsts.append(pos[hit].astype(itype))
        count[srcs[-1][1]] += 1
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(count, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=itype)
    code = np.empty(int(indptr[-1]), dtype=np.uint8)
    nxt = indptr[:-1].copy()
    for j in range(len(srcs)):  # 13 offsets, each voxel at most once per offset
        k, src = srcs[j]
        at = nxt[src]
        indices[at] = dsts[j]
        code[at] = k
        nxt[src] += 1
        srcs[j] = dsts[j] = None  # type: ignore[call-overload]
    g = Graph(indptr, indices, code, step, n)
    if cost is not None:
        g.set_cost(cost)
    return g


def local_radius(fg: Foreground, graph: Graph) -> NDArray[np.float64]:
    """Geodesic distance (um) from each foreground voxel to the edge of the foreground, plus
    half a voxel: an inner distance transform computed on the sparse graph."""
    half = 0.5 * float(min(fg.voxel_size))
    boundary = np.flatnonzero(graph.degree < 26)
    if boundary.size == 0:
        return np.full(fg.n, half)
    release_memory()  # the graph construction's freed blocks, before the decomposition's
    d = dijkstra(graph.length, directed=False, indices=boundary, min_only=True)
    d[~np.isfinite(d)] = 0.0
    return d + half


def z_elongation(fg: Foreground, strong: NDArray[np.bool_] | None = None, *, max_run: int = 8) -> float:
    """How much longer the stained structure extends along z than across in x-y (the
    point-spread function of most microscopes is elongated along the optical axis).

    For strongly stained voxels, the run of foreground above and below (in slices, times the
    z spacing) is compared with the run along x and along y; the ratio of medians, clipped to
    [1, 4], is returned. Used to make coverage tests ellipsoidal.
    """
    idx = np.flatnonzero(strong) if strong is not None and strong.any() else np.arange(fg.n)
    if idx.size == 0:
        return 1.0
    if idx.size > 20000:
        idx = idx[:: idx.size // 20000 + 1]
    vs = np.asarray(fg.voxel_size, dtype=np.float64)
    shape = np.array(fg.shape)

    at = fg.zyx_of(idx)

    def run(axis: int) -> NDArray[np.float64]:
        total = np.ones(idx.size)
        for sign in (1, -1):
            alive = np.ones(idx.size, dtype=bool)
            for k in range(1, max_run + 1):
                nb = at.copy()
                nb[:, axis] += sign * k
                ok = (nb[:, axis] >= 0) & (nb[:, axis] < shape[axis])
                lin = np.ravel_multi_index(tuple(np.clip(nb, 0, shape - 1).T), fg.shape)
                alive &= ok & (fg.lookup(lin) >= 0)
                total += alive
        return total * vs[::-1][axis]

    ez = np.median(run(0))
    exy = 0.5 * (np.median(run(1)) + np.median(run(2)))
    return float(np.clip(ez / max(exy, 1e-9), 1.0, 4.0))


@dataclass
class GrownTree:
    """A voxel tree: ``node`` (foreground positions), ``parent`` (index into ``node``, -1 root)."""

    node: NDArray[np.int64]
    parent: NDArray[np.int64]
    reached: int = 0
    bridges: int = 0
    z_stretch: float = 1.0


def _levels_max(parent: NDArray[np.int64], value: NDArray[np.float64], depth: NDArray[np.int64]) -> NDArray[np.float64]:
    """Max of ``value`` over each node's subtree, one vectorised step per depth level."""
    out = value.copy()
    order = np.argsort(depth, kind="stable")
    d_sorted = depth[order]
    bounds = np.searchsorted(d_sorted, np.arange(int(d_sorted[-1]) + 2)) if order.size else np.zeros(1, int)
    for lev in range(int(d_sorted[-1]) if order.size else 0, 0, -1):
        nodes = order[bounds[lev] : bounds[lev + 1]]
        np.maximum.at(out, parent[nodes], out[nodes])
    return out


def _siblings_alive(
    node_pts: NDArray[np.float64],
    owner: NDArray[np.int64],
    leaf_pts: NDArray[np.float64],
    reach: NDArray[np.float64],
    forced: NDArray[np.bool_],
    block: int = 256,
) -> NDArray[np.bool_]:
    """Which of ``n`` ranked segments survive: segment ``k`` (leaf at ``leaf_pts[k]``) dies
    when a node (``node_pts``, owned by segment ``owner``) of a surviving segment ranked
    before it lies within ``reach[k]`` of its leaf; ``forced`` segments always survive.

    Exact, in blocks of ``block`` segments: the segments of earlier blocks are settled, so one
    nearest-neighbour query per leaf against their surviving nodes decides those; within a
    block, each leaf's neighbour list holds only the block's own nodes. (Listing every node
    near each leaf at once made lists of up to 27 million entries around a large soma, each
    of whose voxels starts a segment.)"""
    n = leaf_pts.shape[0]
    alive = np.ones(n, dtype=bool)
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(n + 1))
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        check = ~forced[k0:k1]
        if k0 and check.any():
            # the surviving nodes of earlier blocks
            prior = order[: starts[k0]]
            prior = prior[alive[owner[prior]]]
            if prior.size:
                r = reach[k0:k1]
                d, _j = cKDTree(node_pts[prior]).query(leaf_pts[k0:k1], distance_upper_bound=float(r.max()) * 1.001)
                alive[k0:k1] &= ~(check & (d <= r))
        own = order[starts[k0]:starts[k1]]
        if own.size == 0 or not check.any():
            continue
        kd = cKDTree(node_pts[own])
        for s in range(k0, k1, 8):  # neighbour lists of 8 leaves at a time (bounded memory)
            lst = kd.query_ball_point(leaf_pts[s:min(k1, s + 8)], r=reach[s:min(k1, s + 8)])
            for k in range(s, s + len(lst)):  # one check per segment of the block
                if forced[k] or not alive[k]:
                    continue
                others = owner[own[np.asarray(lst[k - s], dtype=np.int64)]]
                if np.any(alive[others[others < k]]):
                    alive[k] = False
    return alive


def skeleton_from_spt(
    parent: NDArray[np.int64],
    xyz: NDArray[np.float64],
    radius: NDArray[np.float64],
    *,
    min_branch_um: float,
    branch_radius_factor: float,
    force: NDArray[np.int64] | None = None,
    cover_xyz: NDArray[np.float64] | None = None,
    cover_radius: NDArray[np.float64] | None = None,
    z_stretch: float = 1.0,
) -> NDArray[np.bool_]:
    """Nodes of a shortest-path forest kept by longest-path decomposition and coverage.

    The forest is split into segments (each node continues into the child whose subtree
    reaches furthest). Segments are then examined level by level from the roots (hierarchical
    pruning, as APP2 does): a segment whose parent segment is kept is kept when its farthest
    node (its leaf) lies at least ``min_branch_um + branch_radius_factor * r`` away from
    every node kept so far, ``r`` being the local radius of the nearest kept node. A segment
    whose leaf lies inside that coverage is cut back to its last node outside it (a neurite
    that runs far on its own and only ends next to another branch keeps what it traced
    alone); a segment with no node outside it is a redundant path inside an already traced
    neurite (or a spur) and goes. Nodes cut or dropped take the segments hanging from them
    along. Within a level, of two segments whose (cut) leaves cover each other the one
    reaching further wins.

    Parameters
    ----------
    parent
        Parent index per node (-1 roots), parents need not come first.
    xyz
        Physical positions (n, 3).
    radius
        Local radius per node (um).
    force
        Nodes that must be kept (with their paths to the root), e.g. user seeds. A segment
        kept only for them (not on its own) is kept up to its last node on the way to them.
    cover_xyz, cover_radius
        Points (and radii) of structure already traced (extend mode): every segment, the
        root ones included, must leave their coverage to be kept.
    z_stretch
        Elongation of the structure along z (:func:`z_elongation`): coverage distances are
        measured with z divided by it (ellipsoidal coverage), so the blur of a neurite along
        the optical axis never makes branches.
    """
    n = parent.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    has = parent >= 0
    step = np.zeros(n)
    step[has] = np.linalg.norm(xyz[has] - xyz[parent[has]], axis=1)
    arc = _tree.ancestor_sum(parent, step)
    depth = _tree.depth(parent)
    height = _levels_max(parent, arc, depth)
    kids = np.flatnonzero(has)
    order = np.lexsort((kids, -height[kids], parent[kids]))
    kids = kids[order]
    first = np.r_[True, parent[kids][1:] != parent[kids][:-1]] if kids.size else np.zeros(0, bool)
    main = np.zeros(n, dtype=bool)
    main[kids[first]] = True
    top = ~main
    del step, height, kids, order, first, main  # n-sized temporaries, not held through the levels
    seg = _tree.nearest_marked(parent, top)  # segment = index of its top node
    tops = np.flatnonzero(top)
    # leaf of each segment: its node of largest arc length
    o = np.lexsort((-arc, seg))
    firsts = np.r_[True, seg[o][1:] != seg[o][:-1]]
    leaf_of = np.full(n, -1, dtype=np.int64)
    leaf_of[seg[o][firsts]] = o[firsts]
    del o, firsts
    seg_parent = np.where(has[tops], seg[np.maximum(parent[tops], 0)], -1)
    tpos = np.full(n, -1, dtype=np.int64)
    tpos[tops] = np.arange(tops.size)
    sp_idx = np.where(seg_parent >= 0, tpos[np.maximum(seg_parent, 0)], -1)
    level = _tree.depth(sp_idx)
    base = np.where(has[tops], arc[np.maximum(parent[tops], 0)], arc[tops])
    forced_seg = np.zeros(tops.size, dtype=bool)
    # each forced segment's last node on the way to a forced node: a segment kept only for a
    # forced node is kept up to there (what lies beyond is judged as any segment's end is)
    forced_end = np.full(tops.size, -1, dtype=np.int64)
    if force is not None and len(force):
        mark = np.zeros(n, dtype=bool)
        mark[np.asarray(force, dtype=np.int64)] = True
        sub = np.flatnonzero(_levels_max(parent, mark.astype(np.float64), depth) > 0)
        forced_seg = np.bincount(tpos[seg[sub]], minlength=tops.size) > 0
        o = sub[np.lexsort((-arc[sub], seg[sub]))]
        firsts = np.r_[True, seg[o][1:] != seg[o][:-1]]
        forced_end[tpos[seg[o][firsts]]] = o[firsts]
        del o, firsts, sub
    kept_seg = np.zeros(tops.size, dtype=bool)
    extending = cover_xyz is not None and len(cover_xyz) > 0
    if extending:
        cov_xyz = np.asarray(cover_xyz, dtype=np.float64).reshape(-1, 3)
        cov_r = np.asarray(cover_radius, dtype=np.float64).reshape(-1)
    else:
        cov_xyz, cov_r = np.zeros((0, 3)), np.zeros(0)
        kept_seg[level == 0] = True
    node_order = np.argsort(seg, kind="stable")
    seg_sorted = seg[node_order]

    def nodes_of(segs: NDArray[np.int64]) -> NDArray[np.int64]:
        """The nodes of segments ``segs``, grouped by segment in the order given."""
        lo = np.searchsorted(seg_sorted, tops[segs], side="left")
        cnt = np.searchsorted(seg_sorted, tops[segs], side="right") - lo
        start = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
        return node_order[start + np.arange(start.size)]

    # a segment whose leaf lies inside what is kept is cut back to its last node outside it
    # (``leaf_now``; nodes beyond ``cut_arc`` go, with the segments hanging from them)
    leaf_now = leaf_of[tops].copy()
    cut_arc = np.full(tops.size, np.inf)

    def kept_part(segs: NDArray[np.int64]) -> NDArray[np.int64]:
        nodes = nodes_of(segs)
        return nodes[arc[nodes] <= cut_arc[tpos[seg[nodes]]]]

    kept_nodes = nodes_of(np.flatnonzero(kept_seg))
    zs = np.array([1.0, 1.0, 1.0 / max(z_stretch, 1e-9)])
    for lev in range(0 if extending else 1, int(level.max(initial=0)) + 1):
        cand = np.flatnonzero((level == lev) & ((sp_idx >= 0) if lev else True))
        if lev:
            cand = cand[kept_seg[sp_idx[cand]]]
            cand = cand[arc[parent[tops[cand]]] <= cut_arc[sp_idx[cand]]]
        if not cand.size:
            break
        pts = np.vstack([xyz[kept_nodes], cov_xyz]) * zs
        prad = np.concatenate([radius[kept_nodes], cov_r])
        kd = cKDTree(pts)
        leaves = leaf_of[tops[cand]]
        d, j = kd.query(xyz[leaves] * zs)
        need = min_branch_um + branch_radius_factor * prad[j]
        ok = d >= need
        if not ok.all():
            bad = cand[~ok]
            nodes = nodes_of(bad)
            dn, jn = kd.query(xyz[nodes] * zs)
            out = nodes[dn >= min_branch_um + branch_radius_factor * prad[jn]]
            if out.size:
                # the farthest (by arc) node of each segment that lies outside what is kept
                o = np.lexsort((-arc[out], seg[out]))
                out = out[o]
                first_out = np.r_[True, seg[out][1:] != seg[out][:-1]]
                cut = tpos[seg[out][first_out]]
                leaf_now[cut] = out[first_out]
                cut_arc[cut] = arc[out[first_out]]
                ok = ok | np.isin(cand, cut)
            # kept only for a forced node: at least up to it
            fb = bad[forced_seg[bad]]
            if fb.size:
                end = forced_end[fb]
                further = ~np.isfinite(cut_arc[fb]) | (arc[end] > cut_arc[fb])
                leaf_now[fb[further]] = end[further]
                cut_arc[fb[further]] = arc[end[further]]
                ok = ok | forced_seg[cand]
        acc = cand[ok]
        if acc.size > 1:
            # siblings covering each other: the one reaching further wins
            acc = acc[np.argsort(-(arc[leaf_now[acc]] - base[acc]) - 1e9 * forced_seg[acc], kind="stable")]
            allnodes = kept_part(acc)  # grouped by segment, in the order of acc
            rank = np.empty(tops.size, dtype=np.int64)
            rank[acc] = np.arange(acc.size)
            owner = rank[tpos[seg[allnodes]]]
            rad_need = min_branch_um + branch_radius_factor * radius[leaf_now[acc]]
            acc = acc[_siblings_alive(xyz[allnodes] * zs, owner, xyz[leaf_now[acc]] * zs, rad_need, forced_seg[acc])]
        kept_seg[acc] = True
        if acc.size:
            kept_nodes = np.concatenate([kept_nodes, kept_part(acc)])
    return kept_seg[tpos[seg]] & (arc <= cut_arc[tpos[seg]])


def _tip_directions(
    parent: NDArray[np.int64], xyz: NDArray[np.float64], tips: NDArray[np.int64], back: int
) -> NDArray[np.float64]:
    anc = tips.copy()
    for _ in range(back):
        p = parent[anc]
        anc = np.where(p >= 0, p, anc)
    d = xyz[tips] - xyz[anc]
    nrm = np.linalg.norm(d, axis=1, keepdims=True)
    return np.divide(d, nrm, out=np.zeros_like(d), where=nrm > 0)


def _tip_candidates(kd: cKDTree, txyz: NDArray[np.float64], tips: NDArray[np.int64], r: float, chunk: int = 256):
    """``(index, tip, list of target positions within r)`` for each tip, queried in chunks of
    tips so that the Python lists held at once stay bounded (a noisy stack can have many tips
    and many unreached voxels near them)."""
    for a in range(0, tips.size, chunk):
        part = tips[a:a + chunk]
        cand = kd.query_ball_point(txyz[part], r=r)
        for k, (t, lst) in enumerate(zip(part, cand)):
            yield a + k, t, lst


def _piece_ends(
    comp: NDArray[np.int64], target: NDArray[np.int64], dist: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For each piece among the ``target`` voxels, the one with the smallest ``dist`` (its end
    facing what the distance is to): ``(positions in target, piece labels)``."""
    c = comp[target]
    order = np.lexsort((dist, c))
    first = order[np.r_[True, c[order][1:] != c[order][:-1]]]
    return first, c[first]


def _end_direction(
    pkd: cKDTree, xyz: NDArray[np.float64], comp: NDArray[np.int64], target: NDArray[np.int64], v: int,
    piece: int, radius_um: float,
) -> NDArray[np.float64] | None:
    """The direction of piece ``piece`` at its voxel ``v``: from the mean of its voxels within
    ``radius_um`` of ``v`` (``pkd`` holds the ``target`` voxels) to ``v``; ``None`` when fewer
    than three voxels are there or they do not point anywhere."""
    nb = target[np.asarray(pkd.query_ball_point(xyz[v], r=radius_um))]
    nb = nb[comp[nb] == piece]
    if nb.size < 3:
        return None
    d = xyz[v] - xyz[nb].mean(axis=0)
    nd = float(np.linalg.norm(d))
    return d / nd if nd > 1e-9 else None


def _piece_axis(
    pkd: cKDTree, xyz: NDArray[np.float64], comp: NDArray[np.int64], target: NDArray[np.int64], v: int,
    piece: int, radius_um: float,
) -> NDArray[np.float64]:
    """The principal axis (unit vector, either sense) of piece ``piece`` over its voxels within
    ``radius_um`` of its voxel ``v`` (``pkd`` holds the ``target`` voxels; ``v`` is one)."""
    nb = target[np.asarray(pkd.query_ball_point(xyz[v], r=radius_um), dtype=np.int64)]
    pts = xyz[nb[comp[nb] == piece]]
    pts = pts - pts.mean(axis=0)
    return np.linalg.eigh(pts.T @ pts)[1][:, -1]


def _end_facing(
    pkd: cKDTree, xyz: NDArray[np.float64], comp: NDArray[np.int64], target: NDArray[np.int64], v: int,
    piece: int, toward: NDArray[np.float64], *, cos_dir: float, cos_axis: float, end_um: float, axis_um: float,
) -> float | None:
    """Whether piece ``piece``'s end at its voxel ``v`` faces ``toward`` (a unit vector): the
    cosine of the angle between its direction there (:func:`_end_direction`, over ``end_um``)
    and ``toward``, when it reaches ``cos_dir`` and the piece's principal axis over its voxels
    within ``axis_um`` of ``v`` (:func:`_piece_axis`) lies along ``toward`` too (the absolute
    cosine at least ``cos_axis``: a piece passing sideways can end facing anything);
    ``None`` otherwise."""
    direc = _end_direction(pkd, xyz, comp, target, v, piece, end_um)
    if direc is None:
        return None
    c = float(direc @ toward)
    if c < cos_dir or abs(float(_piece_axis(pkd, xyz, comp, target, v, piece, axis_um) @ toward)) < cos_axis:
        return None
    return c


def _piece_bridges(
    best: dict[int, tuple[float, int, int]],
    xyz: NDArray[np.float64],
    comp: NDArray[np.int64],
    target: NDArray[np.int64],
    tree_node: NDArray[np.int64],
    gap_um: float,
    cos_max: float,
    target_kd: cKDTree,
    end_um: float = 5.0,
) -> None:
    """Bridges from the ends of unreached pieces that point at the tree (added to ``best``;
    ``target_kd`` holds the ``target`` voxels).

    For every unreached piece (component) its voxel nearest to the tree within ``gap_um`` is
    its end facing the tree; the piece's direction there is from the mean of its voxels
    within ``end_um`` of that end to the end. The bridge is kept when the segment from the
    end to the nearest tree node lies within the angle of that direction. Pieces already
    bridged from a tip keep the tip's bridge.
    """
    if target.size == 0 or tree_node.size == 0:
        return
    tkd = cKDTree(xyz[tree_node])
    d, j = tkd.query(xyz[target], distance_upper_bound=gap_um)
    near = np.isfinite(d)
    if not near.any():
        return
    tv, d, j = target[near], d[near], j[near]
    first, pieces = _piece_ends(comp, tv, d)
    pkd = target_kd
    for k, ci in zip(first, pieces):  # one end per piece (bounded by the number of pieces near the tree)
        ci = int(ci)
        if ci in best:
            continue
        v = int(tv[k])
        direc = _end_direction(pkd, xyz, comp, target, v, ci, end_um)
        a = int(tree_node[j[k]])
        gap = xyz[a] - xyz[v]
        gd = float(np.linalg.norm(gap))
        if direc is None or gd < 1e-9:
            continue
        cosang = float(direc @ gap) / gd
        if cosang >= cos_max:
            best[ci] = (gd / max(cosang, 1e-3), a, v)


def _soma_bridges(
    best: dict[int, tuple[float, int, int]],
    xyz: NDArray[np.float64],
    comp: NDArray[np.int64],
    target: NDArray[np.int64],
    sources: NDArray[np.int64],
    centre: NDArray[np.float64],
    radius: float,
    gap_um: float,
    cos_max: float,
    target_kd: cKDTree,
    end_um: float = 5.0,
    axis_um: float = 15.0,
) -> None:
    """Bridges to the soma from the ends of unreached pieces that point at its centre (added
    to ``best``; ``target_kd`` holds the ``target`` voxels).

    A dendrite leaves the soma radially; its first microns can be lost in the soma's blur
    halo or be too thin to show, so that its visible part starts a few microns out, where the
    soma has no tip to bridge from. For every unreached piece its voxel nearest to the soma's
    centre is its end facing the soma; the piece is joined (to the nearest soma voxel) when
    that end lies at most ``gap_um`` beyond the soma's radius and the piece's direction there
    (from the mean of its voxels within ``end_um`` of the end) and its principal axis over
    its voxels within ``axis_um`` of the end both point at the centre within the angle whose
    cosine is ``cos_max``.
    """
    if target.size == 0 or sources.size == 0:
        return
    dc = np.linalg.norm(xyz[target] - centre, axis=1)
    near = dc <= radius + gap_um
    if not near.any():
        return
    tv, dc = target[near], dc[near]
    first, pieces = _piece_ends(comp, tv, dc)
    pkd = target_kd
    skd = cKDTree(xyz[sources])
    for k, ci in zip(first, pieces):  # one end per piece near the soma
        ci = int(ci)
        if ci in best:
            continue
        v = int(tv[k])
        inward = centre - xyz[v]
        ni = float(np.linalg.norm(inward))
        if ni < 1e-9:
            continue
        # the piece runs radially: its end and its principal axis near it point at the centre
        # (a piece passing the soma sideways can end pointing inwards)
        cosang = _end_facing(pkd, xyz, comp, target, v, ci, inward / ni, cos_dir=cos_max, cos_axis=cos_max,
                             end_um=end_um, axis_um=axis_um)
        if cosang is not None:
            gd, j = skd.query(xyz[v])
            best[ci] = (float(gd) / max(cosang, 1e-3), int(sources[j]), v)


def _terminal_lengths(
    parent: NDArray[np.int64], txyz: NDArray[np.float64], tips: NDArray[np.int64],
    soma: tuple[NDArray[np.float64], float] | None,
) -> NDArray[np.float64]:
    """The length of each tip's terminal branch, from the branch point or root it hangs from
    (a stem's from the soma's surface: the edges inside the soma's sphere do not count)."""
    has = parent >= 0
    seg = np.where(has, np.linalg.norm(txyz - txyz[np.maximum(parent, 0)], axis=1), 0.0)
    if soma is not None:
        seg[np.linalg.norm(txyz - np.asarray(soma[0], dtype=np.float64), axis=1) <= float(soma[1])] = 0.0
    along = _tree.ancestor_sum(parent, seg)
    nchild = np.bincount(parent[has], minlength=parent.size)
    fork = _tree.nearest_marked(parent, (nchild >= 2) | ~has)
    return along[tips] - along[np.maximum(fork[tips], 0)]


def _long_bridges(
    best: dict[int, tuple[float, int, int]],
    xyz: NDArray[np.float64],
    comp: NDArray[np.int64],
    target: NDArray[np.int64],
    txyz: NDArray[np.float64],
    tip_nodes: NDArray[np.int64],
    tips: NDArray[np.int64],
    dirs: NDArray[np.float64],
    extent: NDArray[np.float64],
    *,
    gap_um: float,
    long_um: float,
    cos_max: float,
    min_extent_um: float,
    end_um: float = 5.0,
    axis_um: float = 10.0,
    cos_axis: float = 0.35,
) -> None:
    """Bridges longer than ``gap_um``, up to ``long_um``, where a tip and the end of an
    unreached piece point at each other along one line (added to ``best``; ``target``: the
    unreached voxels, ``extent`` each piece's extent).

    From each tip (``tips``: positions in the tree, ``tip_nodes`` their foreground voxels,
    ``dirs`` their directions), the voxels of unreached pieces at least ``min_extent_um``
    long lying between ``gap_um`` and ``long_um`` away within the angle of the tip's
    direction (cosine ``cos_max``) are candidates; per piece the nearest is its end facing
    the tip. The bridge is kept when the piece's direction at that end
    (:func:`_end_direction`, over ``end_um``) points back at the tip within the same angle,
    and the piece's principal axis over its voxels within ``axis_um`` of the end is not
    across the bridge (the cosine of their angle at least ``cos_axis``: the near side of a
    thick piece lying across the bridge also points back at the tip). A neurite whose stain
    fades over more than ``gap_um`` comes back on the line it left; other cells' fragments
    lie at any angle.
    """
    # only the pieces long enough: the lists of voxels within long_um of a tip stay short
    target = target[extent[comp[target]] >= min_extent_um]
    if tips.size == 0 or target.size == 0:
        return
    target_kd = cKDTree(xyz[target])
    for ti, t, lst in _tip_candidates(target_kd, txyz, tips, long_um, chunk=32):  # one list per tip
        if not lst:
            continue
        tv = target[np.asarray(lst)]
        v = xyz[tv] - txyz[t]
        dd = np.linalg.norm(v, axis=1)
        cosang = (v @ dirs[ti]) / np.maximum(dd, 1e-9)
        ok = (cosang >= cos_max) & (dd > gap_um)
        if not ok.any():
            continue
        tv, dd, cosang = tv[ok], dd[ok], cosang[ok]
        first, pieces = _piece_ends(comp, tv, dd)
        for k, ci in zip(first, pieces):  # one end per piece in the tip's cone
            ci = int(ci)
            if ci in best:
                continue
            vv = int(tv[k])
            back = (txyz[t] - xyz[vv]) / max(float(dd[k]), 1e-9)
            if _end_facing(target_kd, xyz, comp, target, vv, ci, back, cos_dir=cos_max, cos_axis=cos_axis,
                           end_um=end_um, axis_um=axis_um) is None:
                continue
            best[ci] = (float(dd[k]) / max(float(cosang[k]), 1e-3), int(tip_nodes[ti]), vv)


def _thickening_refused(
    best: dict[int, tuple[float, int, int]],
    tip_nodes: NDArray[np.int64],
    xyz: NDArray[np.float64],
    txyz: NDArray[np.float64],
    tree_radius: NDArray[np.float64],
    radius: NDArray[np.float64],
    comp: NDArray[np.int64],
    target: NDArray[np.int64],
    target_kd: cKDTree,
    factor: float,
    min_um: float,
    tip_um: float = 4.0,
    land_um: float = 5.0,
) -> list[int]:
    """The pieces of ``best`` whose bridge from a tip lands on a piece thicker than the neurite
    at the tip: its largest local radius within ``land_um`` of the voxel the bridge lands on
    reaches both ``factor`` times the median local radius of the tree's nodes within
    ``tip_um`` of the tip and ``min_um`` (``txyz``, ``tree_radius``: the tree's nodes;
    ``target_kd`` holds the ``target`` voxels). Bridges from pieces or to the soma are not
    judged."""
    tips = set(tip_nodes.tolist())
    out: list[int] = []
    todo = [(c, a, b) for c, (_s, a, b) in best.items() if a in tips]
    if not todo:
        return out
    tkd = cKDTree(txyz)
    for c, a, b in todo:  # one per bridge of this round (bounded by the pieces near tips)
        near = np.asarray(tkd.query_ball_point(xyz[a], r=tip_um), dtype=np.int64)
        r_tip = float(np.median(tree_radius[near])) if near.size else 0.0
        lst = np.asarray(target_kd.query_ball_point(xyz[b], r=land_um), dtype=np.int64)
        nb = target[lst]
        nb = nb[comp[nb] == c]
        r_land = float(radius[nb].max()) if nb.size else 0.0
        if r_land >= max(min_um, factor * r_tip):
            out.append(c)
    return out


def grow(
    fg: Foreground,
    graph: Graph,
    radius: NDArray[np.float64],
    sources: NDArray[np.int64],
    *,
    min_branch_um: float = 4.0,
    branch_radius_factor: float = 2.0,
    gap_um: float = 8.0,
    gap_cost: float = 4.0,
    gap_min_size_um: float = 6.0,
    gap_max_angle_deg: float = 60.0,
    gap_from_pieces: bool = False,
    gap_piece_um: float | None = None,
    gap_min_elongation: float = 0.0,
    gap_thickening: float = 0.0,
    gap_thickening_min_um: float = 1.0,
    gap_soma_um: float = 0.0,
    gap_soma_angle_deg: float = 30.0,
    gap_long_um: float = 0.0,
    gap_long_angle_deg: float = 20.0,
    gap_long_min_um: float = 10.0,
    soma: tuple[NDArray[np.float64], float] | None = None,
    strong: NDArray[np.bool_] | None = None,
    force: NDArray[np.int64] | None = None,
    max_bridge_rounds: int = MAX_BRIDGE_ROUNDS,
    cover_xyz: NDArray[np.float64] | None = None,
    cover_radius: NDArray[np.float64] | None = None,
    coverage_z_stretch: float = 1.0,
    anchors: NDArray[np.int64] | None = None,
    min_anchors: int = 1,
    rivals: NDArray[np.int64] | None = None,
) -> GrownTree:
    """Grow the tree from ``sources`` (foreground positions), bridging gaps.

    Parameters
    ----------
    strong
        Foreground voxels above the high threshold: a piece of foreground is bridged to only
        if it holds one (hysteresis).
    gap_from_pieces
        Also bridge from the end of an unreached piece to the nearest node of the tree when
        the piece points at it (within ``gap_max_angle_deg`` of the piece's direction at that
        end), so that a faint branch separated from its parent neurite by a gap near the
        branch point (where the tree has no tip) is joined too.
    gap_piece_um
        Longest bridge from the end of a piece (``None``: ``gap_um``).
    anchors, min_anchors
        With ``anchors`` (foreground positions, repeats counted), only the sources in a piece
        of foreground holding at least ``min_anchors`` of them start paths: an extend run's
        sources are every voxel near the given reconstruction, its anchors the voxel each
        point along its cable lies nearest to, so that another cell's fragment the cable
        merely crosses (above a dendrite along z) is not grown as if it were the
        reconstruction's.
    gap_min_elongation
        A piece is bridged to only if its extent is at least this many times its largest
        local radius (compact debris is never joined; 0 disables).
    gap_thickening, gap_thickening_min_um
        A bridge from a tip is refused when the piece it lands on is thicker there (its
        largest local radius within 5 um of the voxel it lands on) than both
        ``gap_thickening`` times the neurite at the tip (the median local radius of the
        tree within 4 um of the tip) and ``gap_thickening_min_um``: a neurite tapers
        towards its tips and does not go on, past a staining gap, as a thicker one; such
        pieces are other cells' neurites (0 disables).
    gap_soma_um, gap_soma_angle_deg, soma
        With ``soma`` (centre in the tracing space of ``fg``, radius) and ``gap_soma_um`` > 0,
        also bridge to the soma from the end of a piece at most ``gap_soma_um`` beyond its
        radius whose direction there points at the centre within ``gap_soma_angle_deg``
        (:func:`_soma_bridges`): a dendrite whose first microns do not show.
    gap_long_um, gap_long_angle_deg, gap_long_min_um
        With ``gap_long_um`` > ``gap_um``, also bridge from a tip to a piece between
        ``gap_um`` and ``gap_long_um`` away when the tip's terminal branch (from its branch
        point, or from the soma's surface) and the piece are at least ``gap_long_min_um``
        long, the piece lies within ``gap_long_angle_deg`` of the tip's direction and its end
        points back at the tip within the same angle (:func:`_long_bridges`): a dendrite
        whose stain fades over a long stretch and comes back on the same line.
    force
        Foreground positions the tree must reach (user seeds), kept whatever their length
        (:func:`skeleton_from_spt`: up to them); no gap bridge leaves a tip that is one.
    cover_xyz, cover_radius
        Structure already traced (extend mode), see :func:`skeleton_from_spt`. A new piece
        then bridges gaps from its tips only when they lie ``gap_min_size_um`` or more from
        where it starts (a stub out of a given neurite's blur has a tip pointing anywhere).
    coverage_z_stretch
        ``z_stretch`` of :func:`skeleton_from_spt`.
    rivals
        Foreground positions of other cells' somata (:func:`morph.tracing.soma.other_somata`):
        the voxels nearer to one of them than to ``sources`` along the foreground (by path
        length) belong to that cell: the tree's search never enters them and their pieces
        are never bridged to.

    Returns
    -------
    GrownTree
        Kept nodes, their parents (-1 for the sources that start a path) and statistics.
    """
    sources = np.unique(np.asarray(sources, dtype=np.int64))
    rivals = (np.setdiff1d(np.asarray(rivals, dtype=np.int64), sources) if rivals is not None
              else np.zeros(0, dtype=np.int64))
    xyz = fg.xyz_um()
    zstretch = float(coverage_z_stretch)
    ncomp, comp = graph_components(fg)
    if anchors is not None and len(anchors):
        anchored = np.bincount(comp[np.asarray(anchors, dtype=np.int64)], minlength=ncomp) >= max(1, int(min_anchors))
        sources = sources[anchored[comp[sources]]]
    comp_ok = np.ones(ncomp, dtype=bool)
    extent = np.zeros(ncomp)
    if gap_um > 0 and ncomp > 1:
        lo = np.full((ncomp, 3), np.inf)
        hi = np.full((ncomp, 3), -np.inf)
        for a in range(3):
            np.minimum.at(lo[:, a], comp, xyz[:, a])
            np.maximum.at(hi[:, a], comp, xyz[:, a])
        extent = np.linalg.norm(hi - lo, axis=1)
        comp_ok = extent >= gap_min_size_um
        if gap_min_elongation > 0:
            # compact bodies (debris, other cells' somata) are not neurites: a piece must be
            # longer than gap_min_elongation times its largest local radius
            rmax = np.zeros(ncomp)
            np.maximum.at(rmax, comp, radius)
            comp_ok &= extent >= gap_min_elongation * rmax
        if strong is not None:
            comp_ok &= np.bincount(comp, weights=strong.astype(float), minlength=ncomp) > 0
    theirs = None
    if rivals.size:
        # other cells' somata: each voxel belongs to the soma nearest to it along the
        # foreground (by length: the cost, cheap along any bright trunk, would give a thick
        # dendrite of this cell the thin ones of the next that it touches)
        dl, _p, origin = dijkstra(graph.length, directed=False, indices=np.concatenate([sources, rivals]),
                                  min_only=True, return_predecessors=True)
        theirs = np.isfinite(dl) & np.isin(origin, rivals)
        comp_ok[np.unique(comp[theirs])] = False  # and never bridged to
        del dl, _p, origin
    # the voxels' positions (24 bytes each) are made again each round, after the shortest-path
    # search: not alive while it holds the graph's matrices
    del xyz
    bridges_r: list[int] = []
    bridges_c: list[int] = []
    bridge_w: list[float] = []
    cmax = graph.cost_max
    inner = np.zeros(fg.n, dtype=bool)  # the sources: the search never takes an edge between two
    inner[sources] = True
    for _round in range(max_bridge_rounds + 1):
        # the costed matrix is built per round and freed before the decomposition: a single
        # float64 copy of the graph at a time, bridges included. The blocks freed by the round
        # before go back to the system first, and again before the decomposition: its large
        # arrays would otherwise come on top of them (glibc keeps freed blocks that small live
        # ones fragment)
        release_memory()
        Wb = graph.weight_without(inner, cut=theirs)
        if bridges_r:
            B = sp.csr_matrix((bridge_w, (bridges_r, bridges_c)), shape=Wb.shape)
            Wb = Wb + B
            del B
            release_memory()
        dist, pred = dijkstra(Wb, directed=False, indices=sources, min_only=True, return_predecessors=True)[:2]
        del Wb
        reached = np.flatnonzero(np.isfinite(dist))
        pos = np.full(fg.n, -1, dtype=np.int64)
        pos[reached] = np.arange(reached.size)
        pr = pred[reached]
        parent = np.where(pr >= 0, pos[np.maximum(pr, 0)], -1)
        if cover_xyz is None and sources.size > 1:
            # one tree: every source (a voxel of the soma) hangs from the thickest one
            anchor = int(sources[np.argmax(radius[sources])])
            sp_ = pos[sources]
            parent[sp_] = pos[anchor]
            parent[pos[anchor]] = -1
        del dist, pred, pr
        release_memory()  # the decomposition's blocks, before the pruning's many smaller ones
        f = None
        if force is not None and len(force):
            f = pos[np.asarray(force)]
            f = f[f >= 0]
        keep = skeleton_from_spt(
            parent,
            fg.xyz_um(reached),
            radius[reached],
            min_branch_um=min_branch_um,
            branch_radius_factor=branch_radius_factor,
            force=f,
            cover_xyz=cover_xyz,
            cover_radius=cover_radius,
            z_stretch=zstretch,
        )
        kept = np.flatnonzero(keep)
        newpos = np.full(reached.size, -1, dtype=np.int64)
        newpos[kept] = np.arange(kept.size)
        kp = parent[kept]
        tree = GrownTree(reached[kept], np.where(kp >= 0, newpos[np.maximum(kp, 0)], -1), int(reached.size), len(bridges_r))
        del pos, parent, keep, kept, newpos, kp  # not kept into the next round's Dijkstra
        if gap_um <= 0 or _round == max_bridge_rounds:
            break
        # candidate targets: voxels of bridgeable pieces not reached yet
        in_reach = np.zeros(ncomp, dtype=bool)
        in_reach[comp[reached]] = True
        target = np.flatnonzero(comp_ok[comp] & ~in_reach[comp])
        if target.size == 0:
            break
        nchild = np.bincount(tree.parent[tree.parent >= 0], minlength=tree.node.size)
        tips = np.flatnonzero((nchild == 0) & (tree.parent >= 0))
        if force is not None and len(force):
            # a branch kept only for a forced node ends on it: no bridge leaves a user's point
            tips = tips[~np.isin(tree.node[tips], force)]
        xyz = fg.xyz_um()
        txyz = xyz[tree.node]
        if cover_xyz is not None and tips.size:
            # extending: a new piece bridges from its tips only when it reaches gap_min_size_um
            # from where it starts (a stub out of a given neurite's blur points anywhere)
            first = _tree.root_of(tree.parent)
            tips = tips[np.linalg.norm(txyz[tips] - txyz[first[tips]], axis=1) >= gap_min_size_um]
        if tips.size == 0:
            break
        back = max(2, int(round(4.0 / float(min(fg.voxel_size)))))
        dirs = _tip_directions(tree.parent, txyz, tips, back)
        kd = cKDTree(xyz[target])
        cos_max = np.cos(np.deg2rad(gap_max_angle_deg))
        best: dict[int, tuple[float, int, int]] = {}
        for ti, t, lst in _tip_candidates(kd, txyz, tips, gap_um):  # one short list per tip
            if not lst:
                continue
            tv = target[np.asarray(lst)]
            v = xyz[tv] - txyz[t]
            dd = np.linalg.norm(v, axis=1)
            cosang = (v @ dirs[ti]) / np.maximum(dd, 1e-9)
            ok = cosang >= cos_max
            if not ok.any():
                continue
            score = dd / np.maximum(cosang, 1e-3)
            score[~ok] = np.inf
            j = int(np.argmin(score))
            c = int(comp[tv[j]])
            if c not in best or score[j] < best[c][0]:
                best[c] = (float(score[j]), int(tree.node[t]), int(tv[j]))
        if gap_long_um > gap_um:
            # from the tips of terminal branches at least gap_long_min_um long (a stub's
            # direction points anywhere)
            far = _terminal_lengths(tree.parent, txyz, tips, soma) >= gap_long_min_um
            _long_bridges(best, xyz, comp, target, txyz, tree.node[tips[far]], tips[far], dirs[far], extent,
                          gap_um=gap_um, long_um=gap_long_um, cos_max=float(np.cos(np.deg2rad(gap_long_angle_deg))),
                          min_extent_um=gap_long_min_um)
        if best and gap_thickening > 0:
            for c in _thickening_refused(best, tree.node[tips], xyz, txyz, radius[tree.node], radius, comp, target,
                                         kd, gap_thickening, gap_thickening_min_um):
                del best[c]
        if gap_from_pieces:
            piece_um = gap_um if gap_piece_um is None else min(gap_um, gap_piece_um)
            _piece_bridges(best, xyz, comp, target, tree.node, piece_um, cos_max, kd)
        if gap_soma_um > 0 and soma is not None:
            _soma_bridges(best, xyz, comp, target, sources, np.asarray(soma[0], dtype=np.float64), float(soma[1]),
                          gap_soma_um, float(np.cos(np.deg2rad(gap_soma_angle_deg))), kd)
        if not best:
            break
        for _s, a, b in best.values():
            bridges_r.append(a)
            bridges_c.append(b)
            bridge_w.append(float(np.linalg.norm(xyz[a] - xyz[b])) * gap_cost * cmax)
            comp_ok[comp[b]] = False  # bridged once
        del xyz, kd, txyz
    tree.bridges = len(bridges_r)
    tree.z_stretch = zstretch
    return tree
