"""Clean-up of a traced tree: centring on the image, spur pruning, smoothing, resampling,
radii measured on the image.

All functions take and return :class:`~morph.morphology.Morphology` objects in micrometres
(except :func:`centre_on_image`, on coordinates) and sample the image only in a small
neighbourhood of each node, so they are local: with a stack in chunks, each node needs the
chunk holding it plus a halo of ``radius_max_um``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from morph.morphology import Morphology


def _sample(image: NDArray[Any], xyz_um: NDArray[np.float64], voxel_size: Sequence[float]) -> NDArray[np.float64]:
    """Trilinear samples of ``image`` (Z, Y, X) at physical points (n, 3), 0 outside."""
    v = xyz_um / np.asarray(voxel_size, dtype=np.float64)
    return ndi.map_coordinates(image, v[:, ::-1].T, order=1, mode="constant", cval=0.0)


def _sample_nearest(image: NDArray[Any], xyz_um: NDArray[np.float64], voxel_size: Sequence[float]) -> NDArray[np.float64]:
    """Nearest-voxel samples of ``image`` (Z, Y, X) at physical points (n, 3), 0 outside
    (a fast screen; :func:`_sample` interpolates)."""
    v = np.rint(xyz_um * (1.0 / np.asarray(voxel_size, dtype=np.float64))).astype(np.int64)
    nz, ny, nx = image.shape
    inside = (v[:, 0] >= 0) & (v[:, 0] < nx) & (v[:, 1] >= 0) & (v[:, 1] < ny) & (v[:, 2] >= 0) & (v[:, 2] < nz)
    lin = (v[:, 2] * ny + v[:, 1]) * nx + v[:, 0]
    out = np.take(image.reshape(-1), np.where(inside, lin, 0)).astype(np.float64)
    out[~inside] = 0.0
    return out


def centre_on_image(
    xyz_um: NDArray[np.float64],
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    window_um: float = 1.5,
    iterations: int = 2,
    max_shift_um: float = 3.0,
) -> NDArray[np.float64]:
    """Move points to the intensity centroid of their neighbourhood (mean shift).

    The window is ``window_um`` in x and y and at least one slice on either side in z, so a
    coarse z sampling still gets a sub-slice position. Weights are the image minus the
    window's minimum, squared (the bright core dominates). A point never moves further than
    ``max_shift_um`` from where it started.
    """
    vs = np.asarray(voxel_size, dtype=np.float64)
    rad = np.maximum(np.ceil(window_um / vs), 1).astype(int)
    grid = np.stack(
        np.meshgrid(*[np.arange(-r, r + 1) for r in rad], indexing="ij"), axis=-1
    ).reshape(-1, 3) * vs
    grid = grid[np.sum((grid / (rad * vs)) ** 2, axis=1) <= 1.0 + 1e-9]
    start = np.asarray(xyz_um, dtype=np.float64)
    cur = start.copy()
    for _ in range(iterations):
        pts = (cur[:, None, :] + grid[None]).reshape(-1, 3)
        val = _sample(image, pts, vs).reshape(cur.shape[0], grid.shape[0])
        w = np.maximum(val - val.min(axis=1, keepdims=True), 0.0) ** 2
        tot = w.sum(axis=1)
        shift = np.divide(w @ grid, tot[:, None], out=np.zeros_like(cur), where=tot[:, None] > 0)
        cur = cur + shift
        off = cur - start
        n = np.linalg.norm(off, axis=1, keepdims=True)
        cur = np.where(n > max_shift_um, start + off * (max_shift_um / np.maximum(n, 1e-12)), cur)
    return cur


def min_cost_path_voxels(
    image: NDArray[Any], voxel_size: Sequence[float], start: tuple[int, ...], end: Any, *,
    ref: float, cost_power: float = 8.0,
) -> NDArray[np.float64]:
    """The minimal-cost path from voxel ``start`` to voxel ``end`` (``(z, y, x)`` indices,
    both included) through ``image`` (stained positive) on the gray-weighted cost
    ``exp(cost_power (1 - f)^2)``, ``f = clip(image / ref, 0, 1)``
    (:class:`skimage.graph.MCP_Geometric`, physical voxel spacing): voxels as bright as
    ``ref`` cost 1 per micrometre, background ``e^cost_power``. ``end`` may also be a
    ``(k, 3)`` array of voxels: the path then goes to the one it reaches at the least cost.
    Returns ``(k, 3)`` indices."""
    from skimage.graph import MCP_Geometric

    f = np.clip(np.asarray(image, dtype=np.float32) / np.float32(max(ref, 1e-12)), 0.0, 1.0)
    mcp = MCP_Geometric(np.exp(np.float32(cost_power) * (1.0 - f) ** 2), sampling=tuple(np.asarray(voxel_size, dtype=np.float64)[::-1]))
    del f
    ends = np.asarray(end, dtype=np.int64).reshape(-1, 3)
    cum, _ = mcp.find_costs([tuple(int(v) for v in start)], [tuple(e) for e in ends], find_all_ends=False)
    # the search stops at the first end it settles: the cheapest (the others are unsettled)
    reached = ends[int(np.argmin(cum[tuple(ends.T)]))]
    return np.asarray(mcp.traceback(tuple(int(v) for v in reached)), dtype=np.float64)


def _coarse_factors(shape: Sequence[int], voxel_size: Sequence[float], max_voxels: float) -> NDArray[np.int64]:
    """Whole-number block factors (z, y, x) that bring a box of ``shape`` voxels to at most
    ``max_voxels`` blocks, each step coarsening the axis whose blocks are the smallest in
    micrometres (so the blocks tend to cubes)."""
    f = np.ones(3, dtype=np.int64)
    step = np.asarray(voxel_size, dtype=np.float64)[::-1]
    n = np.asarray(shape, dtype=np.int64)
    while np.prod(-(-n // f), dtype=np.float64) > max_voxels:
        room = f < n
        k = int(np.argmin(np.where(room, step * f, np.inf)))
        f[k] += 1
    return f


def _block_mean(image: Any, box: tuple[slice, ...], f: NDArray[np.int64]) -> NDArray[np.float32]:
    """The mean of ``image[box]`` over blocks of ``f`` (z, y, x) voxels (the last, partial
    blocks over what they hold), read one slab of blocks at a time."""
    n = np.array([s.stop - s.start for s in box])
    cn = -(-n // f)
    out = np.empty(tuple(int(v) for v in cn), dtype=np.float32)
    wy = np.bincount(np.arange(n[1]) // f[1], minlength=cn[1]).astype(np.float32)
    wx = np.bincount(np.arange(n[2]) // f[2], minlength=cn[2]).astype(np.float32)
    for cz in range(int(cn[0])):
        z0 = box[0].start + cz * int(f[0])
        slab = np.asarray(image[z0:min(z0 + int(f[0]), box[0].stop), box[1], box[2]], dtype=np.float32).sum(axis=0)
        pad = ((0, int(cn[1] * f[1] - n[1])), (0, int(cn[2] * f[2] - n[2])))
        slab = np.pad(slab, pad).reshape(int(cn[1]), int(f[1]), int(cn[2]), int(f[2])).sum(axis=(1, 3))
        out[cz] = slab / (min(int(f[0]), int(box[0].stop - z0)) * np.outer(wy, wx))
    return out


def min_cost_path(
    image: Any, voxel_size: Sequence[float], box: tuple[slice, ...], start: Sequence[int], ends: Any, *,
    ref: float, cost_power: float = 8.0, max_voxels: float = 4e6,
) -> NDArray[np.int64]:
    """:func:`min_cost_path_voxels` inside ``box`` ((z, y, x) slices of ``image``, which may
    be any array-like, read only there), with memory bounded by ``max_voxels``.

    ``start`` and ``ends`` (a voxel or ``(k, 3)`` voxels, the path going to the one it
    reaches at the least cost) are (z, y, x) indices of ``image``, inside the box. A box of at
    most ``max_voxels`` voxels is searched whole (:class:`skimage.graph.MCP_Geometric` holds
    about 100 bytes per voxel). A larger one is searched coarse to fine: first on the box's
    mean over blocks (:func:`_coarse_factors`, at most ``max_voxels`` of them, voxel size
    scaled alike); then along that coarse path at the image's own voxels, from waypoint to
    waypoint (the brightest voxel of every few blocks on it), each leg in the box spanned by
    its two waypoints plus two blocks, the last leg to the nearest end in its box. Returns
    ``(k, 3)`` indices of ``image`` from ``start`` to the end reached."""
    vs = np.asarray(voxel_size, dtype=np.float64)
    lo = np.array([s.start for s in box], dtype=np.int64)
    n = np.array([s.stop - s.start for s in box], dtype=np.int64)
    a = np.asarray(start, dtype=np.int64).reshape(3)
    e = np.asarray(ends, dtype=np.int64).reshape(-1, 3)
    if float(np.prod(n, dtype=np.float64)) <= max_voxels:
        sub = np.asarray(image[box], dtype=np.float32)
        return (min_cost_path_voxels(sub, vs, tuple(a - lo), e - lo, ref=ref, cost_power=cost_power) + lo).astype(np.int64)
    f = _coarse_factors(n, vs, max_voxels)
    coarse = _block_mean(image, box, f)
    ce = np.unique((e - lo) // f, axis=0)
    cpath = min_cost_path_voxels(coarse, vs * f[::-1], tuple((a - lo) // f), ce, ref=ref, cost_power=cost_power)
    del coarse
    cpath = cpath.astype(np.int64)
    # waypoints: every few blocks, so that a leg's box stays within the budget
    stride = max(2, int(float(max_voxels) ** (1.0 / 3.0) / float(f.max())) - 4)
    way = [a]
    for c in cpath[stride:-1:stride]:
        b0 = lo + c * f
        b1 = np.minimum(b0 + f, lo + n)
        blk = np.asarray(image[tuple(slice(int(u), int(v)) for u, v in zip(b0, b1, strict=True))], dtype=np.float32)
        way.append(b0 + np.array(np.unravel_index(int(np.argmax(blk)), blk.shape)))
    legs: list[NDArray[np.int64]] = []
    hi_box = lo + n
    for i in range(len(way)):
        p = way[i]
        last = i == len(way) - 1
        if last:  # to the tree's voxels in the end block and around it
            c_end = lo + cpath[-1] * f
            q0, q1 = np.minimum(p, c_end), np.maximum(p, c_end + f - 1)
        else:
            q = way[i + 1]
            q0, q1 = np.minimum(p, q), np.maximum(p, q)
        b0 = np.maximum(q0 - 2 * f, lo)
        b1 = np.minimum(q1 + 2 * f + 1, hi_box)
        sub = np.asarray(image[tuple(slice(int(u), int(v)) for u, v in zip(b0, b1, strict=True))], dtype=np.float32)
        if last:
            inb = e[np.all((e >= b0) & (e < b1), axis=1)] - b0
        else:
            inb = (q - b0)[None]
        leg = min_cost_path_voxels(sub, vs, tuple(p - b0), inb, ref=ref, cost_power=cost_power).astype(np.int64) + b0
        legs.append(leg if i == 0 else leg[1:])
    return np.vstack(legs)


def route_long_edges(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    min_um: float = 3.0,
    margin_um: float = 3.0,
    cost_power: float = 8.0,
    floor: float = 0.0,
    max_detour: float = 2.0,
    near_soma: float | None = None,
) -> Morphology:
    """Each edge longer than ``min_um`` (and than 1.5 voxel diagonals) between two neurite
    nodes (a bridge over a staining gap: the tree joins its ends with a straight edge)
    replaced by the minimal-cost path between its ends through the image
    (:class:`skimage.graph.MCP_Geometric`, physical voxel spacing, inside the box spanned by
    the ends plus ``margin_um``), on the gray-weighted cost ``exp(cost_power (1 - f)^2)``,
    ``f`` the image (stained positive) over the fainter end's value (at least ``floor``),
    clipped to [0, 1]: the path follows what is left of a faint, curving neurite instead of
    cutting across. A path more than ``max_detour`` times as long as the edge (a way round
    through other stained structure) is not taken. Soma-to-stem edges stay. With
    ``near_soma``, only the edges whose parent end lies within ``near_soma`` soma radii of
    the soma's centre (the first soma node) are routed: elsewhere a false bridge is a
    straight line across the background that the ridge tests remove, while routed through
    the texture it would stand out from its sides like a neurite."""
    if len(m) < 2:
        return m
    vs = np.asarray(voxel_size, dtype=np.float64)
    p = m.parent
    soma = m.soma_mask
    has = p >= 0
    length = np.zeros(len(m))
    length[has] = np.linalg.norm(m.xyz[has] - m.xyz[p[has]], axis=1)
    min_um = max(min_um, 1.5 * float(np.linalg.norm(vs)))  # longer than any voxel-to-voxel step
    long_ = np.flatnonzero(has & (length > min_um) & ~soma & ~soma[np.maximum(p, 0)])
    if near_soma is not None:
        if not soma.any():
            return m
        c = m.xyz[soma][0]
        rs = float(m.radius[soma][0])
        dpar = np.linalg.norm(m.xyz[p[long_]] - c, axis=1)
        long_ = long_[dpar <= near_soma * rs]
    if long_.size == 0:
        return m
    shape = np.asarray(image.shape)
    xyz = [m.xyz]
    radius = [m.radius]
    types = [m.types]
    parent = p.copy()
    new_parent: list[NDArray[np.int64]] = []
    n = len(m)
    for i in long_:  # one bridge at a time (a few per tree)
        a, b = m.xyz[p[i]], m.xyz[i]
        lo = np.maximum(np.floor((np.minimum(a, b) - margin_um) / vs).astype(int)[::-1], 0)
        hi = np.minimum(np.ceil((np.maximum(a, b) + margin_um) / vs).astype(int)[::-1] + 1, shape)
        sub = np.asarray(image[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=np.float32)
        ia = tuple(np.clip(np.rint(a / vs).astype(int)[::-1] - lo, 0, hi - lo - 1))
        ib = tuple(np.clip(np.rint(b / vs).astype(int)[::-1] - lo, 0, hi - lo - 1))
        ref = max(float(min(sub[ia], sub[ib])), floor, 1e-6)
        path = min_cost_path_voxels(sub, vs, ia, ib, ref=ref, cost_power=cost_power)[1:-1]  # the ends are the nodes
        if path.shape[0] == 0:
            continue
        pts = (path + lo)[:, ::-1] * vs
        route = np.linalg.norm(np.diff(np.vstack([a, pts, b]), axis=0), axis=1).sum()
        if route > max_detour * length[i]:
            continue
        k = pts.shape[0]
        xyz.append(pts)
        # the parent's side first: p[i] -> n -> n + 1 -> ... -> n + k - 1 -> i
        new_parent.append(np.r_[p[i], np.arange(n, n + k - 1)])
        radius.append(np.linspace(m.radius[p[i]], m.radius[i], k + 2)[1:-1])
        types.append(np.full(k, m.types[i]))
        parent[i] = n + k - 1
        n += k
    if n == len(m):
        return m
    return m._derive(xyz=np.vstack(xyz), radius=np.concatenate(radius), types=np.concatenate(types),
                     parent=np.r_[parent, np.concatenate(new_parent)], ids=np.arange(1, n + 1))


def smooth(m: Morphology, *, iterations: int = 2, keep: NDArray[np.bool_] | None = None) -> Morphology:
    """Smooth node positions along the tree: each round moves every node half way to the
    mean of its neighbours (parent and children). Roots, soma nodes, branch points and tips
    stay where they are (and nodes marked in ``keep``)."""
    if len(m) < 3 or iterations <= 0:
        return m
    parent = m.parent
    fixed = (parent < 0) | m.soma_mask | (m.n_children != 1)
    if keep is not None:
        fixed |= keep
    has = parent >= 0
    idx = np.flatnonzero(has)
    xyz = m.xyz.copy()
    cnt = np.bincount(idx, minlength=len(m)) + np.bincount(parent[idx], minlength=len(m))
    for _ in range(iterations):
        acc = np.zeros_like(xyz)
        np.add.at(acc, idx, xyz[parent[idx]])
        np.add.at(acc, parent[idx], xyz[idx])
        mean = acc / np.maximum(cnt, 1)[:, None]
        new = 0.5 * xyz + 0.5 * mean
        xyz = np.where(fixed[:, None], xyz, new)
    return m._derive(xyz=xyz)


def _drop_short_terminals(
    m: Morphology,
    is_short: Callable[[Morphology, NDArray[np.int64], NDArray[np.bool_], NDArray[np.bool_]], NDArray[np.bool_]],
    rounds: int,
    protect: NDArray[np.bool_] | None,
) -> Morphology:
    """Repeatedly remove terminal sections for which ``is_short(m, hang, from_branch,
    from_soma)`` holds (``hang``: the node each section hangs from, clipped to 0 for roots;
    ``from_branch`` / ``from_soma``: hanging from a neurite node / a soma node). Sections
    leaving a plain root, and sections holding a node marked in ``protect``, are kept."""
    for _ in range(rounds):
        if len(m) < 3:
            return m
        sec = m.sections
        hang = np.maximum(sec.hang, 0)
        from_branch = (sec.hang >= 0) & ~m.soma_mask[hang] & (m.parent[sec.start] >= 0)
        from_soma = (sec.hang >= 0) & m.soma_mask[hang]
        short = (sec.children_count() == 0) & is_short(m, hang, from_branch, from_soma)
        if protect is not None and protect.any():
            held = np.bincount(m.section_id[protect & (m.section_id >= 0)], minlength=sec.n) > 0
            short &= ~held
        if not short.any():
            return m
        drop = short[np.maximum(m.section_id, 0)] & (m.section_id >= 0)
        if protect is not None:
            protect = protect[~drop]
        m = m.take(~drop)
    return m


def prune_spurs(m: Morphology, min_length_um: float, *, rounds: int = 3, protect: NDArray[np.bool_] | None = None) -> Morphology:
    """Remove terminal sections shorter than ``min_length_um`` hanging from a branch point,
    and stems (unbranched sections leaving the soma) reaching less than ``min_length_um``
    beyond the soma's surface.

    Repeated ``rounds`` times (removing a spur can expose another one). Sections leaving a
    plain root, and sections holding a node marked in ``protect``, are kept.
    """

    def is_short(m: Morphology, hang: NDArray, from_branch: NDArray, from_soma: NDArray) -> NDArray[np.bool_]:
        sec = m.sections
        # a stem from the soma is measured from the soma's surface
        stem_len = sec.length + np.where(from_soma, m.edge_length[sec.start] - m.radius[hang], 0.0)
        return (from_branch & (sec.length < min_length_um)) | (from_soma & (stem_len < min_length_um))

    return _drop_short_terminals(m, is_short, rounds, protect)


def ridge_contrast(
    m: Morphology, image: NDArray[Any], voxel_size: Sequence[float], *,
    offset_um: float | NDArray[np.float64] = 1.5, nodes: NDArray[np.int64] | None = None,
) -> NDArray[np.float64]:
    """How much each node (all, or ``nodes``) stands out from the image beside it: the image
    at the node minus the brighter of the two samples ``offset_um`` away on either side,
    across the local direction of the tree (from its parent) in the x-y plane (the image's
    units). ``offset_um`` is one distance or one per node.

    A neurite is a ridge: its centre is brighter than beside it. A path running straight out
    through the blur halo of a dark body (a spur) is not: across it the halo is as bright at
    the same distance from the body.
    """
    idx = np.arange(len(m)) if nodes is None else np.asarray(nodes, dtype=np.int64)
    if idx.size == 0:
        return np.zeros(0)
    xyz = m.xyz[idx]
    p = m.parent[idx]
    d = np.where((p >= 0)[:, None], xyz - m.xyz[np.maximum(p, 0)], 0.0)
    return ridge_contrast_at(image, voxel_size, xyz, d, offset_um=offset_um)


def ridge_contrast_at(
    image: NDArray[Any], voxel_size: Sequence[float], xyz_um: NDArray[np.float64], direction: NDArray[np.float64], *,
    offset_um: float | NDArray[np.float64] = 1.5,
) -> NDArray[np.float64]:
    """:func:`ridge_contrast` at points ``xyz_um`` (n, 3) of a line running along
    ``direction`` (n, 3, any length; across it in x-y, or along x where it is zero or runs
    along z)."""
    d = np.asarray(direction, dtype=np.float64)
    perp = np.stack([-d[:, 1], d[:, 0], np.zeros(len(d))], axis=1)
    nrm = np.linalg.norm(perp, axis=1, keepdims=True)
    perp = np.where(nrm > 1e-9, perp / np.maximum(nrm, 1e-12), np.array([1.0, 0.0, 0.0]))
    vs = np.asarray(voxel_size, dtype=np.float64)
    off = np.broadcast_to(np.asarray(offset_um, dtype=np.float64).reshape(-1, 1), (len(d), 1))
    c = _sample(image, xyz_um, vs)
    a = _sample(image, xyz_um + off * perp, vs)
    b = _sample(image, xyz_um - off * perp, vs)
    return c - np.maximum(a, b)


def _section_medians(values: NDArray[np.float64], sid: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    """Median of ``values`` per section (``sid``: each value's section; the lower middle value
    of an even count); ``-inf`` where a section has none."""
    o = np.lexsort((values, sid))
    ss = sid[o]
    lo = np.searchsorted(ss, np.arange(n))
    hi = np.searchsorted(ss, np.arange(n), side="right")
    med = np.full(n, -np.inf)
    has = hi > lo
    med[has] = values[o][(lo[has] + hi[has] - 1) // 2]
    return med


def _distal_ridge(m: Morphology, hang: NDArray[np.int64], cand: NDArray[np.bool_], image: NDArray[Any],
                  voxel_size: Sequence[float], *, offset_um: float = 1.5,
                  margin_um: float | None = None) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The nodes of the sections marked in ``cand`` lying farther than the radius of the node
    their section hangs from (``hang``) from it, and their :func:`ridge_contrast`, sides
    ``offset_um`` away or, with ``margin_um``, ``max(offset_um, r + margin_um)`` (``r`` the
    node's radius): what the terminal-branch tests judge a section on, beyond the body it
    leaves. Returns ``(nodes, contrast)``."""
    sid = m.section_id
    s0 = np.maximum(sid, 0)
    idx = np.flatnonzero((sid >= 0) & cand[s0] & (np.linalg.norm(m.xyz - m.xyz[hang[s0]], axis=1) > m.radius[hang[s0]]))
    off = offset_um if margin_um is None else np.maximum(offset_um, m.radius[idx] + margin_um)
    return idx, ridge_contrast(m, image, voxel_size, offset_um=off, nodes=idx)


def prune_flat_terminals(
    m: Morphology, image: NDArray[Any], voxel_size: Sequence[float], ridge_min: float, *,
    offset_um: float = 1.5, margin_um: float = 1.0, rounds: int = 3, protect: NDArray[np.bool_] | None = None,
    judge_xyz: NDArray[np.float64] | None = None, judge_um: float = 1.0,
) -> Morphology:
    """Remove terminal sections that are not ridges of the image, however long.

    A section's ridge contrast is the median :func:`ridge_contrast` of its nodes farther than
    its radius from the node it hangs from, each node's side samples taken ``max(offset_um,
    r + margin_um)`` away (``r`` its radius: the sides of a thick neurite lie outside its
    own profile). A terminal section (hanging from a branch point or the soma) whose ridge
    contrast is below ``ridge_min`` (image units) is removed, and so is one with no node
    beyond that radius (it never leaves the body it hangs from); repeated ``rounds`` times.

    A neurite, however faint, is darker (brighter, once flattened) along its centre than
    beside it. A path the tree took through the blur halo of a dark body, or through the
    body's blur along z, runs over a smooth slope: across it the image is as bright on one
    side as at the centre. Sections leaving a plain root, and sections holding a node
    marked in ``protect``, are kept.

    With ``judge_xyz`` (points along the cable as traced, before tip walks added to it), a
    section is judged on its nodes within ``judge_um`` of those points, or on all of them when
    none lies there: a walk goes on only where each step stands out, so walked cable would
    lift the median of a branch that is flat where it was traced (a stretch of texture or of
    another cell's fragment, which a walk then continued).
    """

    def is_flat(m: Morphology, hang: NDArray, from_branch: NDArray, from_soma: NDArray) -> NDArray[np.bool_]:
        sec = m.sections
        cand = (from_branch | from_soma) & (sec.children_count() == 0)
        idx, rd = _distal_ridge(m, hang, cand, image, voxel_size, offset_um=offset_um, margin_um=margin_um)
        sid = m.section_id[idx]
        med = _section_medians(rd, sid, sec.n)  # -inf: no node leaves the body it hangs from
        if jkd is not None and idx.size:
            on = jkd.query(m.xyz[idx])[0] <= judge_um
            med_on = _section_medians(rd[on], sid[on], sec.n)
            med = np.where(np.isfinite(med_on), med_on, med)
        return cand & (med < ridge_min)

    jkd = cKDTree(judge_xyz) if judge_xyz is not None and len(judge_xyz) else None

    return _drop_short_terminals(m, is_flat, rounds, protect)


def prune_steep_terminals(
    m: Morphology, image: NDArray[Any], voxel_size: Sequence[float], ridge_min: float, *,
    min_steepness: float = 0.6, offset_um: float = 1.5, margin_um: float = 1.0,
    protect: NDArray[np.bool_] | None = None,
) -> Morphology:
    """Remove terminal sections that run steeply along z and are weak ridges of the image.

    A terminal section (hanging from a branch point or the soma) whose end lies at least
    ``min_steepness`` of its distance from the node it hangs from along z (``|dz| / d``) is
    removed when the median :func:`ridge_contrast` of its nodes farther than that node's
    radius from it (sides ``max(offset_um, r + margin_um)`` away across it in x-y) is below
    ``ridge_min`` (image units), a stricter test than :func:`prune_flat_terminals`' for the
    sections that test judges the most leniently: the blur of structure above or below,
    elongated along z, makes paths that climb through it with a little contrast across
    them, where a neurite running along z stands out as a dot in every slice. One pass;
    sections holding a node marked in ``protect`` are kept.
    """

    def is_steep_weak(m: Morphology, hang: NDArray, from_branch: NDArray, from_soma: NDArray) -> NDArray[np.bool_]:
        sec = m.sections
        d = m.xyz[sec.end] - m.xyz[hang]
        steep = np.abs(d[:, 2]) >= min_steepness * np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        cand = (from_branch | from_soma) & (sec.children_count() == 0) & steep
        if not cand.any():
            return cand
        idx, rd = _distal_ridge(m, hang, cand, image, voxel_size, offset_um=offset_um, margin_um=margin_um)
        med = _section_medians(rd, m.section_id[idx], sec.n)
        return cand & np.isfinite(med) & (med < ridge_min)

    return _drop_short_terminals(m, is_steep_weak, 1, protect)


def prune_edge_terminals(
    m: Morphology, extent_um: Sequence[float], *, margin_um: float = 1.0, fraction: float = 0.6,
    rounds: int = 3, protect: NDArray[np.bool_] | None = None,
) -> Morphology:
    """Remove terminal sections that run along the x-y border of the image.

    A neurite leaving the field of view is cut where it meets the border; it does not run
    along it. What does is the flattening's edge: the background is extrapolated from the
    blocks' centres to the border, and where it overshoots (beside a dark body cut by the
    border, say) a band of the border's rows stands above the foreground threshold, which
    the tree follows. A terminal section (hanging from a branch point or the soma) whose
    nodes lie within ``margin_um`` of the border in x or y for at least ``fraction`` of them
    goes, repeated ``rounds`` times. ``extent_um``: the image's (x, y) extent, the last
    voxel's centre (the first is at 0). Sections holding a node marked in ``protect`` are
    kept.
    """
    hi = np.asarray(extent_um, dtype=np.float64)[:2]

    def along_edge(m: Morphology, hang: NDArray, from_branch: NDArray, from_soma: NDArray) -> NDArray[np.bool_]:
        sec = m.sections
        xy = m.xyz[:, :2]
        near = np.minimum(xy, hi - xy).min(axis=1) <= margin_um
        sid = m.section_id
        ok = sid >= 0
        count = np.bincount(sid[ok], minlength=sec.n)
        on = np.bincount(sid[ok & near], minlength=sec.n)
        return (from_branch | from_soma) & (count > 0) & (on >= fraction * np.maximum(count, 1))

    return _drop_short_terminals(m, along_edge, rounds, protect)


def prune_thick_spurs(
    m: Morphology, min_length_um: float, radius_factor: float, *, rounds: int = 2,
    protect: NDArray[np.bool_] | None = None, image: NDArray[Any] | None = None,
    voxel_size: Sequence[float] | None = None, ridge_min: float = 0.0, ridge_factor: float = 1.0,
) -> Morphology:
    """Remove terminal sections hanging from a branch point that reach less than
    ``min_length_um + radius_factor * r`` from it, ``r`` being the radius of the node they
    hang from (measured on the image): the blur around a thick, dark body (a soma, a
    varicosity, a thick dendrite) makes short spurs that radiate from it, while a real side
    branch leaves its parent's outline. Unbranched stems leaving the soma must likewise reach
    ``min_length_um`` plus one soma radius beyond its surface. Sections holding a node marked
    in ``protect`` are kept.

    With ``image`` (flattened, background 0) and ``voxel_size``, a section reaching at least
    ``min_length_um + ridge_factor * r`` is kept when the median :func:`ridge_contrast` of its
    nodes farther than ``r`` from the node it hangs from is at least ``ridge_min`` (image
    units): a thin side branch close to a thick dendrite is a ridge of its own, a spur in the
    halo is not.
    """

    def is_short(m: Morphology, hang: NDArray, from_branch: NDArray, from_soma: NDArray) -> NDArray[np.bool_]:
        sec = m.sections
        reach = np.linalg.norm(m.xyz[sec.end] - m.xyz[hang], axis=1)
        r = m.radius[hang]
        short = from_branch & (reach < min_length_um + radius_factor * r)
        if image is not None and voxel_size is not None and short.any():
            idx, rd = _distal_ridge(m, hang, short, image, voxel_size)
            # median ridge contrast of each candidate section's distal nodes
            med = _section_medians(rd, m.section_id[idx], sec.n)
            short &= ~((med >= ridge_min) & (reach >= min_length_um + ridge_factor * r))
        # stems in the soma's blur must reach one soma radius beyond its surface
        return short | (from_soma & (reach < min_length_um + 2.0 * r))

    return _drop_short_terminals(m, is_short, rounds, protect)


def estimate_radii(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    radius_max_um: float = 10.0,
    n_rays: int = 8,
    step_um: float | None = None,
    fallback: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Radius of each node measured on the image profile across the neurite.

    From every node, ``n_rays`` rays are cast in the plane perpendicular to the local
    direction of the tree (parent to child); along each ray the image is sampled every
    ``step_um`` and the radius is where the intensity first falls below half of the node's
    value (full width at half maximum of the cross-section, background being zero after
    flattening). The node's radius is the median over rays, at least half a voxel, at most
    ``radius_max_um``. Nodes whose value is not above zero get ``fallback`` (e.g. a
    distance-transform radius) or half a voxel.
    """
    n = len(m)
    vs = np.asarray(voxel_size, dtype=np.float64)
    rmin = 0.5 * float(vs[:2].min())
    if n == 0:
        return np.zeros(0)
    step = float(step_um) if step_um else 0.5 * float(vs[:2].min())
    # local direction: parent -> node, or node -> first child for roots
    d = np.zeros((n, 3))
    has = m.parent >= 0
    d[has] = m.xyz[has] - m.xyz[m.parent[has]]
    kids = np.flatnonzero(has)
    d_child = np.zeros((n, 3))
    d_child[m.parent[kids]] = m.xyz[kids] - m.xyz[m.parent[kids]]
    d = d + d_child
    nrm = np.linalg.norm(d, axis=1, keepdims=True)
    d = np.where(nrm > 0, d / np.maximum(nrm, 1e-12), np.array([0.0, 0.0, 1.0]))
    # orthonormal basis of the perpendicular plane
    helper = np.where(np.abs(d[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    u = np.cross(d, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = np.cross(d, u)
    ang = np.linspace(0, 2 * np.pi, n_rays, endpoint=False)
    rays = np.cos(ang)[None, :, None] * u[:, None, :] + np.sin(ang)[None, :, None] * w[:, None, :]
    radii = np.arange(1, int(np.ceil(radius_max_um / step)) + 1) * step
    centre = _sample(image, m.xyz, vs)
    r = np.empty(n)
    block = max(1, 2**16 // (n_rays * radii.size))  # bounded temporaries: ~65 k samples (about 4 MiB) at once
    for a in range(0, n, block):
        b = min(n, a + block)
        pts = m.xyz[a:b, None, None, :] + rays[a:b, :, None, :] * radii[None, None, :, None]
        prof = _sample(image, pts.reshape(-1, 3), vs).reshape(b - a, n_rays, radii.size)
        below = prof < 0.5 * centre[a:b, None, None]
        first = np.where(below.any(axis=2), below.argmax(axis=2), radii.size - 1)
        r[a:b] = np.median(radii[first] - 0.5 * step, axis=1)
    r = np.clip(r, rmin, radius_max_um)
    bad = ~(centre > 0)
    if bad.any():
        r[bad] = fallback[bad] if fallback is not None else rmin
    return r


def trim_tips(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    fraction: float = 0.35,
) -> Morphology:
    """Retract every terminal section to where its signal ends.

    The image (flattened: background 0) is sampled at each node; at the tip end of a terminal
    section, the run of nodes darker than ``fraction`` of the section's mean value is removed
    (the blur of a microscope's point-spread function, stronger along z, extends a neurite's
    stain beyond its true end).
    """
    if len(m) < 3 or fraction <= 0:
        return m
    val = _sample(image, m.xyz, voxel_size)
    sec = m.sections
    sid = m.section_id
    neur = sid >= 0
    terminal = sec.children_count() == 0
    mean = np.bincount(sid[neur], weights=val[neur], minlength=sec.n) / np.maximum(np.bincount(sid[neur], minlength=sec.n), 1)
    weak = neur & (val < fraction * mean[np.maximum(sid, 0)]) & terminal[np.maximum(sid, 0)]
    # a node goes when it and every node after it in its (terminal) section are weak
    idx = np.flatnonzero(neur & terminal[np.maximum(sid, 0)])
    if not idx.size:
        return m
    order = idx[np.lexsort((-m.depth[idx], sid[idx]))]  # per section, tip first
    s = sid[order]
    strong = (~weak[order]).astype(np.int64)
    csum = np.cumsum(strong)
    first = np.r_[True, s[1:] != s[:-1]]
    base = np.repeat(csum[first] - strong[first], np.diff(np.r_[np.flatnonzero(first), order.size]))
    strong_so_far = csum - base  # strong nodes from the tip up to this node (inclusive)
    drop = np.zeros(len(m), dtype=bool)
    drop[order[strong_so_far == 0]] = True
    # never remove a whole section (keep its first node)
    drop[sec.start] = False
    if not drop.any():
        return m
    return m.take(~drop)


def prune_z_spurs(
    m: Morphology, min_reach_um: float, *, rounds: int = 2, protect: NDArray[np.bool_] | None = None,
    z_blur: float | None = None,
) -> Morphology:
    """Remove terminal sections (hanging from a branch point) whose reach in x-y from the node
    they hang from is less than ``min_reach_um`` plus that node's radius: in a stack whose
    structure is blurred along z, such branches are the blur's tail, not neurites (a true
    neurite that runs only along z for less than the blur is lost with them).

    With ``z_blur`` (the stack's z elongation), only sections whose reach along z is also
    less than ``z_blur`` times that bound go: a tail of the blur is no longer than the blur,
    and a branch that runs steeply along z beyond it is kept.
    """
    for _ in range(rounds):
        if len(m) < 3:
            return m
        sec = m.sections
        terminal = sec.children_count() == 0
        hang = sec.hang
        ok = (hang >= 0) & (m.parent[sec.start] >= 0)
        hang_c = np.maximum(hang, 0)
        from_branch = ok & ~m.soma_mask[hang_c]
        # largest x-y distance from the hang point over the section's nodes
        sid = m.section_id
        neur = sid >= 0
        dxy = np.linalg.norm(m.xyz[:, :2] - m.xyz[hang_c[np.maximum(sid, 0)], :2], axis=1)
        reach = np.zeros(sec.n)
        np.maximum.at(reach, sid[neur], dxy[neur])
        short = terminal & from_branch & (reach < min_reach_um + m.radius[hang_c])
        if z_blur is not None:
            dz = np.abs(m.xyz[:, 2] - m.xyz[hang_c[np.maximum(sid, 0)], 2])
            zreach = np.zeros(sec.n)
            np.maximum.at(zreach, sid[neur], dz[neur])
            short &= zreach < z_blur * (min_reach_um + m.radius[hang_c])
        if protect is not None and protect.any():
            held = np.bincount(sid[protect & neur], minlength=sec.n) > 0
            short &= ~held
        if not short.any():
            return m
        drop = neur & short[np.maximum(sid, 0)]
        if protect is not None:
            protect = protect[~drop]
        m = m.take(~drop)
    return m


def prune_z_stems(
    m: Morphology, *, max_angle_deg: float = 10.0, reach_um: float = 12.0, protect: NDArray[np.bool_] | None = None,
    max_share: float = 0.5, max_depth_radii: float = 4.0,
) -> Morphology:
    """Remove the soma's stems that run along the optical axis, with all they lead to.

    Blurred along z, a dark (or bright) soma stands in a column of its own blur above and
    below it, which the foreground follows for micrometres and the tree grows up as a stem;
    from its end a bridge or a faint stretch reaches whatever lies above or below the soma.
    A stem is such a column when its first section (up to its first branch point) reaches
    ``reach_um`` beyond the soma's surface and, over that reach (to its last node within
    ``radius + reach_um`` of the soma's centre), runs within ``max_angle_deg`` of the z axis
    from its first node. Of the 323 stems of the reconstructions in the shared data and of
    the generated cells of the benchmarks, none leaves the soma that steeply (the steepest
    13.5 degrees off z); a true neurite leaving the soma straight up or down would go with
    the column. A stem leading to ``max_share`` of the tree's cable or more stays too: a
    column leads to a fragment lying over the soma, not to most of the arbor (a fluorescence
    stack's axon leaving the swelling taken for its soma along z, with the z step three times
    the pixel, carries 81-92 % of the cable). So does a stem whose cable reaches further from
    the soma's centre along z than ``max_depth_radii`` soma radii plus ``reach_um``: a column
    ends where the soma's blur fades and leads to what lies just above or below it (on the
    synthetic renders its stems reach 22-30 um along z from somata of 6-9 um radius), while
    a neurite leaving along the optical axis goes on (a pyramidal cell whose apical dendrite
    runs along z, as in a stack imaged through the cortex from the pia: its stems reach
    285-408 um). Stems holding a ``protect`` node (the user's seeds) stay. Needs one soma
    node (as the tracer writes it).
    """
    if max_angle_deg <= 0 or m.soma_nodes.size != 1 or len(m) < 3:
        return m
    from morph._tree import nearest_marked

    s = int(m.soma_nodes[0])
    c, r = m.xyz[s], float(m.radius[s])
    stems = np.flatnonzero((m.parent == s) & ~m.soma_mask)
    if not stems.size:
        return m
    nch = np.bincount(m.parent[m.parent >= 0], minlength=len(m))
    cos_max = np.cos(np.deg2rad(max_angle_deg))
    drop_stem = np.zeros(len(m), dtype=bool)
    for st in stems:  # a handful of stems, each walked over its first reach_um
        last, cur = int(st), int(st)
        while nch[cur] == 1:
            nxt = int(m.children(cur)[0])
            if np.linalg.norm(m.xyz[nxt] - c) > r + reach_um:
                break
            last = cur = nxt
        else:
            continue  # the section ends (branch point or tip) within reach
        v = m.xyz[last] - m.xyz[st]
        n = float(np.linalg.norm(v))
        if n > 0 and abs(v[2]) / n >= cos_max:
            drop_stem[st] = True
    if not drop_stem.any():
        return m
    mark = np.zeros(len(m), dtype=bool)
    mark[stems] = True
    owner = nearest_marked(m.parent, mark)
    owner[m.soma_mask] = -1
    if protect is not None and protect.any():
        drop_stem[np.unique(owner[protect & (owner >= 0)])] = False
    # each stem's share of the cable (the edges from the soma node included)
    el = np.linalg.norm(m.edge_vectors, axis=1)
    cable = np.bincount(np.maximum(owner, 0), weights=np.where(owner >= 0, el, 0.0), minlength=len(m))
    drop_stem &= cable < max_share * max(float(cable.sum()), 1e-12)
    depth = np.zeros(len(m))
    np.maximum.at(depth, np.maximum(owner, 0), np.where(owner >= 0, np.abs(m.xyz[:, 2] - c[2]), 0.0))
    drop_stem &= depth <= max_depth_radii * r + reach_um
    drop = (owner >= 0) & drop_stem[np.maximum(owner, 0)]
    return m.take(~drop)


def _cone_directions(d: NDArray[np.float64], angles_deg: Sequence[float], ring: Sequence[int]) -> NDArray[np.float64]:
    """Unit directions around each axis ``d`` (n, 3): the axis itself and, per angle in
    ``angles_deg``, a ring of ``ring`` directions that far off it. Shape ``(n, k, 3)``."""
    a = np.where(np.abs(d[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    u = np.cross(d, a)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(d, u)
    dirs = [d[:, None, :]]
    for th, k in zip(angles_deg, ring):
        t = np.deg2rad(th)
        phi = 2 * np.pi * np.arange(k) / k
        off = np.cos(phi)[None, :, None] * u[:, None, :] + np.sin(phi)[None, :, None] * v[:, None, :]
        dirs.append(np.cos(t) * d[:, None, :] + np.sin(t) * off)
    out = np.concatenate(dirs, axis=1)
    return out / np.linalg.norm(out, axis=2, keepdims=True)


def _across_xy(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unit vectors across unit directions ``d`` (n, 3) in the x-y plane (``d`` x z); x for
    directions within about 12 degrees of z, where that is ill-defined."""
    h = np.cross(d, np.array([0.0, 0.0, 1.0]))
    hn = np.linalg.norm(h, axis=1, keepdims=True)
    return np.where(hn > 0.2, h / np.maximum(hn, 1e-9), np.array([1.0, 0.0, 0.0]))


def _walk(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    pos: NDArray[np.float64],
    d: NDArray[np.float64],
    *,
    origin: NDArray[np.int64],
    noise: float,
    threshold: float,
    contrast: float,
    nsteps: int,
    step_um: float,
    cone_deg: float,
    gap_steps: int,
    stop_um: float,
    side_um: float,
    own_um: NDArray[np.float64] | None = None,
    must_count: int = 0,
    must_miss: int = 0,
    ceiling: NDArray[np.float64] | None = None,
    margin: float | NDArray[np.float64] = 0.0,
    behind: NDArray[np.int64] | None = None,
    recentre_um: float = 0.0,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Walks along the image from points ``pos`` (n, 3) in directions ``d`` (unit, n x 3), with
    the steps and stops described in :func:`extend_tips`.

    Each walk belongs to the tree node ``origin``: that node does not stop it. For walks that
    leave the side of a neurite (``own_um`` given), neither do the nodes within ``own_um[i]``
    of it, and a side sample of the contrast test that lies on the tree (within a node's
    radius + 1 um: the neurite the walk leaves) is not compared with. A walk ends at the
    first step among its first ``must_count`` that brings its failed steps above
    ``must_miss``. A step with a mean above ``ceiling[i]`` (image units) fails, and
    ``margin`` (um, per axis) keeps walks that far inside the image's faces. ``behind`` (per
    node of ``m``: the walk whose own branch it is, -1 for none) names the nodes a walk
    leaves behind it, which do not stop it either. With ``recentre_um``, each step's end is
    moved to the brightest point across it (:func:`extend_tips`) before it is judged.

    Returns the step positions ``(n, nsteps, 3)`` (NaN after a walk ended) and whether each
    step counted.
    """
    xyz = m.xyz
    n = len(m)
    extent = (np.asarray(image.shape[::-1], dtype=np.float64) - 1) * np.asarray(voxel_size, dtype=np.float64)
    kd = cKDTree(xyz)
    soma = np.flatnonzero(m.soma_mask)
    nw = pos.shape[0]
    pos = pos.copy()
    d = d.copy()
    alive = np.ones(nw, dtype=bool)
    misses = np.zeros(nw, dtype=np.int64)
    path = np.full((nw, nsteps, 3), np.nan)
    good = np.zeros((nw, nsteps), dtype=bool)
    fr = np.array([0.25, 0.5, 0.75, 1.0])
    thr = threshold * noise
    kq = min(4 if own_um is None else 8, n)
    for s in range(nsteps):
        act = np.flatnonzero(alive)
        if not act.size:
            break
        dirs = _cone_directions(d[act], [cone_deg / 2, cone_deg], [6, 8])
        pts = pos[act, None, None, :] + step_um * fr[None, None, :, None] * dirs[:, :, None, :]
        val = _sample(image, pts.reshape(-1, 3), voxel_size).reshape(act.size, dirs.shape[1], fr.size).mean(axis=2)
        k = np.argmax(val, axis=1)
        best = val[np.arange(act.size), k]
        newd = dirs[np.arange(act.size), k]
        newp = pos[act] + step_um * newd
        if recentre_um > 0:
            # onto the brightest point across the step's end (within recentre_um in x-y and
            # twice that along the other perpendicular, mostly z): a walk whose direction is
            # a little off stays on the neurite instead of drifting off it
            h1 = _across_xy(newd)
            h2 = np.cross(newd, h1)
            offs = np.array([(a, b) for a in (-1.0, -0.5, 0.0, 0.5, 1.0) for b in (-2.0, -1.0, 0.0, 1.0, 2.0)]) * recentre_um
            cand = newp[:, None, :] + offs[None, :, 0, None] * h1[:, None, :] + offs[None, :, 1, None] * h2[:, None, :]
            cv = _sample(image, cand.reshape(-1, 3), voxel_size).reshape(act.size, offs.shape[0])
            newp = cand[np.arange(act.size), np.argmax(cv, axis=1)]
            step = newp - pos[act]
            newd = step / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), 1e-9)
            seg = pos[act, None, :] + fr[None, :, None] * step[:, None, :]
            best = _sample(image, seg.reshape(-1, 3), voxel_size).reshape(act.size, fr.size).mean(axis=1)
        ok = best >= thr
        if ceiling is not None:
            ok &= best <= ceiling[act]
        if contrast > 0:
            # a neurite, not the inside of a bright body: darker on both sides across it, in x-y
            h = _across_xy(newd)
            mid = pos[act] + 0.5 * step_um * newd
            cen = 0.5 * (_sample(image, mid, voxel_size) + _sample(image, newp, voxel_size))
            sides = []
            for sgn in (1.0, -1.0):
                a, b = mid + sgn * side_um * h, newp + sgn * side_um * h
                sv = 0.5 * (_sample(image, a, voxel_size) + _sample(image, b, voxel_size))
                if own_um is not None:
                    # a side lying on the tree itself (the branch a walk leaves) is not judged
                    da, ja = kd.query(a)
                    db, jb = kd.query(b)
                    sv = np.where((da < m.radius[ja] + 1.0) | (db < m.radius[jb] + 1.0), -np.inf, sv)
                sides.append(sv)
            ok &= (cen - np.maximum(sides[0], sides[1])) >= contrast * noise
        # another part of the tree (not the walk's own origin) within its radius + stop_um,
        # the soma included, or the image's edge
        dist, jn = kd.query(newp, k=kq)
        dist, jn = dist.reshape(act.size, -1), jn.reshape(act.size, -1)
        own = jn == origin[act, None]
        if behind is not None:
            own |= behind[jn] == act[:, None]
        if own_um is not None:
            own |= np.linalg.norm(xyz[jn] - xyz[origin[act]][:, None, :], axis=2) < own_um[act, None]
        near = (dist < m.radius[jn] + stop_um) & ~own
        hit_tree = near.any(axis=1)
        if soma.size:
            ds = np.linalg.norm(newp[:, None, :] - xyz[soma][None, :, :], axis=2)
            hit_tree |= (ds < m.radius[soma][None, :] + stop_um).any(axis=1)
        hit_tree |= ((newp < margin) | (newp > extent - margin)).any(axis=1)
        path[act, s] = newp
        good[act, s] = ok & ~hit_tree
        misses[act] = np.where(ok, 0, misses[act] + 1)
        pos[act] = newp
        nd = d[act] + np.where(ok[:, None], newd, 0.0)
        d[act] = nd / np.linalg.norm(nd, axis=1, keepdims=True)
        early = good[act, : s + 1].sum(axis=1) + must_miss >= min(s + 1, must_count)
        alive[act] = ~hit_tree & (misses[act] <= gap_steps) & ((s >= must_count) | early)
    return path, good


def _last_counted(good: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per walk (row of ``good``), the index of its last step that counted; -1 for none."""
    return np.where(good.any(axis=1), good.shape[1] - 1 - np.argmax(good[:, ::-1], axis=1), -1)


def _append_walks(
    m: Morphology,
    origin: NDArray[np.int64],
    path: NDArray[np.float64],
    good: NDArray[np.bool_],
    *,
    start: NDArray[np.float64] | None = None,
    radius: NDArray[np.float64] | None = None,
) -> Morphology:
    """``m`` with each walk of :func:`_walk` appended as a chain of nodes hanging from its
    ``origin`` node: its steps up to the last one that counted, after ``start`` (its first
    point, when given); a walk with no step that counted adds nothing. The new nodes are typed
    like their origin, with ``radius`` per walk (default: the origin's)."""
    nsteps = path.shape[1]
    if nsteps == 0:  # walks shorter than one step (``max_um`` under ``step_um``)
        return m
    last = _last_counted(good)
    pts = path if start is None else np.concatenate([start[:, None, :], path], axis=1)
    cnt = np.where(last >= 0, last + 1 + (start is not None), 0)
    if not cnt.any():
        return m
    n = len(m)
    which = np.repeat(np.arange(origin.size), cnt)
    stepi = np.arange(which.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    new_idx = n + np.arange(which.size)
    rad = m.radius[origin] if radius is None else radius
    return m._derive(
        xyz=np.vstack([m.xyz, pts[which, stepi]]),
        radius=np.concatenate([m.radius, rad[which]]),
        types=np.concatenate([m.types, m.types[origin[which]]]),
        parent=np.concatenate([m.parent, np.where(stepi == 0, origin[which], new_idx - 1)]),
        ids=None,
    )


def extend_tips(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    noise: float,
    threshold: float = 1.8,
    contrast: float = 1.2,
    max_um: float = 20.0,
    step_um: float = 1.0,
    cone_deg: float = 30.0,
    back_um: float = 4.0,
    gap_steps: int = 3,
    stop_um: float = 1.0,
    side_um: float = 1.5,
    recentre_um: float = 0.0,
) -> Morphology:
    """Continue each terminal branch along the image beyond where the foreground ended.

    Thin branches fade towards their tips below the foreground threshold, which is set for
    voxels judged alone. Here each step is judged with the branch behind it: from each tip,
    steps of ``step_um`` go along the branch's direction (over its last ``back_um``) or up to
    ``cone_deg`` off it, each to the direction whose mean image value along the step is the
    highest. A step counts when that mean reaches ``threshold`` and the step is brighter than
    both sides across it in x-y (``side_um`` away) by ``contrast`` (inside a bright body, the
    soma or debris, the sides are as bright). A walk ends after more than ``gap_steps`` failed
    steps in a row, after ``max_um``, on leaving the image, or on coming within ``stop_um``
    of another part of the tree (beyond that node's radius: the soma's surface; the branch
    behind the walk, over ``back_um``, does not stop it); it keeps its steps up to the last
    one that counted. With ``recentre_um`` > 0, each step's end is moved to the brightest
    point across it, within ``recentre_um`` in x-y and twice that along the other
    perpendicular (mostly z), before it is judged, so that a walk whose direction is a
    little off stays on the neurite. The direction follows the counted steps (half the old,
    half the new).

    Parameters
    ----------
    m
        Reconstruction in the image's physical frame (micrometres, origin at voxel 0).
    image
        Flattened, denoised image (bright structure on a background of 0), (Z, Y, X).
    voxel_size
        ``(x, y, z)`` micrometres.
    noise
        The image's noise level: ``threshold`` and ``contrast`` are in its units.

    Returns
    -------
    Morphology
        ``m`` with the new nodes appended (typed and sized like their tips).
    """
    n = len(m)
    if n < 2 or max_um <= 0:
        return m
    par = m.parent
    xyz = m.xyz
    nch = np.bincount(par[par >= 0], minlength=n)
    tips = np.flatnonzero((nch == 0) & (par >= 0) & ~m.soma_mask)
    if not tips.size:
        return m
    anc, run = tips.copy(), np.zeros(tips.size)
    chain_node, chain_tip = [tips], [np.arange(tips.size)]  # each tip's branch over back_um
    for _ in range(int(np.ceil(back_um / 0.25)) + 1):
        p = par[anc]
        ok = (p >= 0) & (run < back_um) & ~m.soma_mask[np.maximum(p, 0)]
        if not ok.any():
            break
        step = np.linalg.norm(xyz[np.maximum(p, 0)] - xyz[anc], axis=1)
        run = np.where(ok, run + step, run)
        anc = np.where(ok, p, anc)
        chain_node.append(anc[ok])
        chain_tip.append(np.flatnonzero(ok))
    d = xyz[tips] - xyz[anc]
    nrm = np.linalg.norm(d, axis=1)
    extent = (np.asarray(image.shape[::-1], dtype=np.float64) - 1) * np.asarray(voxel_size, dtype=np.float64)
    margin = np.maximum(np.asarray(voxel_size, dtype=np.float64), step_um)
    inside = np.all((xyz[tips] >= margin) & (xyz[tips] <= extent - margin), axis=1)
    use = (nrm > 0.5 * back_um) & inside  # a branch that reaches the image's edge leaves it there
    tips, d = tips[use], d[use] / nrm[use, None]
    if not tips.size:
        return m
    # the nodes of the branch behind each walk do not stop it (they lie within a radius and
    # stop_um of its first steps: counted, they would end most walks at their first step)
    walk_of = np.full(use.size, -1, dtype=np.int64)
    walk_of[use] = np.arange(tips.size)
    behind = np.full(n, -1, dtype=np.int64)
    cn, ct = np.concatenate(chain_node), walk_of[np.concatenate(chain_tip)]
    behind[cn[ct >= 0]] = ct[ct >= 0]
    nsteps = int(np.floor(max_um / step_um))
    path, good = _walk(m, image, voxel_size, xyz[tips], d, origin=tips, noise=noise, threshold=threshold,
                       contrast=contrast, nsteps=nsteps, step_um=step_um, cone_deg=cone_deg, gap_steps=gap_steps,
                       stop_um=stop_um, side_um=side_um, behind=behind, recentre_um=recentre_um)
    return _append_walks(m, tips, path, good)


def _in_z_shadow(
    tree_xyz: NDArray[np.float64],
    origin_xyz: NDArray[np.float64],
    path: NDArray[np.float64],
    good: NDArray[np.bool_],
    *,
    xy_um: float,
    z_um: float,
    fraction: float,
    leave_um: float = 3.0,
) -> NDArray[np.bool_]:
    """Which walks run above or below the tree: of the steps up to each walk's last counted
    one, more than ``leave_um`` from its origin, at least ``fraction`` lie within the
    ellipsoid of semi-axes ``xy_um`` (x, y) and ``z_um`` (z) around a point of the tree's
    cable (``tree_xyz``). A walk with no such step is not."""
    last = _last_counted(good)
    upto = np.arange(path.shape[1])[None, :] <= last[:, None]
    away = np.linalg.norm(path - origin_xyz[:, None, :], axis=2) > leave_um
    judged = upto & away
    out = np.zeros(path.shape[0], dtype=bool)
    if not judged.any() or not len(tree_xyz):
        return out
    scale = np.array([1.0, 1.0, xy_um / z_um])
    kd = cKDTree(tree_xyz * scale)
    d, _ = kd.query(path[judged] * scale, distance_upper_bound=xy_um * (1 + 1e-9))
    under = np.zeros(judged.shape, dtype=bool)
    under[judged] = np.isfinite(d)
    cnt = judged.sum(axis=1)
    out[cnt > 0] = under.sum(axis=1)[cnt > 0] >= fraction * cnt[cnt > 0]
    return out


def side_candidates(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    noise: float,
    threshold: float,
    contrast: float,
    probe_steps: int = 6,
    angles_deg: Sequence[float] = (45.0, 60.0, 75.0, 90.0),
    ring: Sequence[int] = (12, 14, 16, 16),
    step_um: float = 1.0,
    side_um: float = 1.5,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The screen of :func:`find_side_branches`: for every unbranched neurite node (not within
    a voxel or a step of the image's faces), the straight ray leaving it at ``angles_deg``
    off its direction that stands highest above the darker of its sides, among the rays
    whose mean over ``probe_steps`` steps reaches ``threshold`` noise units. Returns the
    nodes whose ray rises by ``contrast`` noise units or more: ``(nodes, rise, directions,
    starts)``, each ray starting 1 um beyond its node's radius."""
    n = len(m)
    none = (np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)))
    if n < 3:
        return none
    par = m.parent
    xyz = m.xyz
    nch = np.bincount(par[par >= 0], minlength=n)
    child = np.full(n, -1)
    child[par[par >= 0]] = np.flatnonzero(par >= 0)
    org = np.flatnonzero((nch == 1) & (par >= 0) & ~m.soma_mask)
    org = org[~m.soma_mask[par[org]]]
    # nothing starts or runs within a voxel (and a step) of the image's faces: beyond them
    # lies structure the stack holds only the blur of
    extent = (np.asarray(image.shape[::-1], dtype=np.float64) - 1) * np.asarray(voxel_size, dtype=np.float64)
    margin = np.maximum(np.asarray(voxel_size, dtype=np.float64), step_um)
    org = org[np.all((xyz[org] >= margin) & (xyz[org] <= extent - margin), axis=1)]
    if not org.size:
        return none
    t = xyz[child[org]] - xyz[par[org]]
    tn = np.linalg.norm(t, axis=1)
    org, t = org[tn > 0], t[tn > 0] / tn[tn > 0, None]
    if not org.size:
        return none
    # a cheap screen of straight rays over the probe's length: the mean must reach the
    # threshold; of those, the ray standing out most above its sides is walked
    # (in batches of nodes: bounded temporaries)
    fr = step_um * np.arange(1, probe_steps + 1, dtype=np.float64)
    nd = int(sum(ring))
    d0 = np.zeros((org.size, 3))
    p0 = np.zeros((org.size, 3))
    best = np.zeros(org.size)

    def ray_mean(a: NDArray[np.float64], dd: NDArray[np.float64]) -> NDArray[np.float64]:
        pts = a[..., None, :] + fr[:, None] * dd[..., None, :]
        return _sample_nearest(image, pts.reshape(-1, 3), voxel_size).reshape(a.shape[:-1] + (fr.size,)).mean(axis=-1)

    batch = max(1, (1 << 15) // (nd * fr.size))
    for b0 in range(0, org.size, batch):
        b = slice(b0, min(org.size, b0 + batch))
        dirs = _cone_directions(t[b], angles_deg, ring)[:, 1:]  # (n, k, 3), the axis itself left out
        start = xyz[org[b], None, :] + (m.radius[org[b], None, None] + 1.0) * dirs
        val = ray_mean(start, dirs)
        bright = val >= threshold * noise  # the sides only of the rays that pass (a few %)
        score = np.full(val.shape, -np.inf)
        dd, a = dirs[bright], start[bright]
        h = _across_xy(dd)
        score[bright] = val[bright] - np.minimum(ray_mean(a + side_um * h, dd), ray_mean(a - side_um * h, dd))
        k = np.argmax(score, axis=1)
        rows = np.arange(score.shape[0])
        best[b], d0[b], p0[b] = score[rows, k], dirs[rows, k], start[rows, k]
    keep = best >= contrast * noise
    return org[keep], best[keep], d0[keep], p0[keep]


def find_side_branches(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    noise: float,
    threshold: float = 1.8,
    contrast: float = 1.2,
    max_um: float = 20.0,
    probe_steps: int = 6,
    probe_miss: int = 1,
    angles_deg: Sequence[float] = (45.0, 60.0, 75.0, 90.0),
    ring: Sequence[int] = (12, 14, 16, 16),
    step_um: float = 1.0,
    cone_deg: float = 30.0,
    gap_steps: int = 3,
    stop_um: float = 1.0,
    side_um: float = 1.5,
    clearance_um: float = 1.5,
    shadow_xy_um: float = 1.5,
    shadow_z_um: float = 5.0,
    shadow_fraction: float = 0.9,
) -> Morphology:
    """Start the thin side branches that leave the tree below the foreground threshold.

    The foreground misses a thin branch whose voxels stay below its threshold from where the
    branch leaves its parent: the tree never reaches it, and it has no tip to walk on from
    (:func:`extend_tips`). Here every unbranched neurite node (not within a voxel or a step
    of the image's faces) looks for one:

    1. *Screen*: straight rays leave at ``angles_deg`` off the neurite's direction (``ring``
       directions each), from 1 um beyond the node's radius, ``probe_steps`` steps long
       (sampled once per step, nearest voxel). A ray counts when its mean value reaches
       ``threshold`` noise units; of those, the one standing highest above the darker of its
       two sides (``side_um`` across, in x-y; the other side may be the parent) is taken,
       when that rise reaches ``contrast``.
    2. *Probe*: the ray is walked as :func:`extend_tips` walks (same ``threshold``,
       ``contrast``, 30 degree cone, stops), with three differences: the neurite it leaves
       (nodes within its radius + 2.5 um of the start) neither stops it nor serves as a side
       of the contrast test; a step brighter than the image at the node it leaves fails (a
       side branch is no brighter than its parent: this keeps walks out of dark bodies beside
       a neurite); and the walk must count ``probe_steps`` of its first ``probe_steps +
       probe_miss`` steps, else it is dropped. Its steps are not re-centred (see
       :func:`extend_tips`): near its start that pulls them back into the parent's blur.
    3. *Shadow*: a walk that runs above or below the tree is the blur of the tree along
       the optical axis (where it is longer than across), not a branch: the walk is dropped
       when ``shadow_fraction`` of its steps (up to its last that counted, beyond 3 um from
       its node) lie within ``shadow_xy_um`` in x-y and ``shadow_z_um`` along z of the
       tree's cable (an ellipsoid around each of its points). A real branch leaves its
       parent in x-y within a few micrometres; one stacked over another neurite for its whole
       length is not started (``shadow_fraction`` 1 turns the test off).
    4. Of walks whose probes come within ``clearance_um`` of each other (neighbouring nodes
       finding the same branch), the one with the highest rise is kept; it goes on up to
       ``max_um`` and is kept up to its last step that counted.

    Parameters
    ----------
    m
        Reconstruction in the image's physical frame (micrometres, origin at voxel 0).
    image
        Flattened, denoised image (bright structure on a background of 0), (Z, Y, X).
    voxel_size
        ``(x, y, z)`` micrometres.
    noise
        The image's noise level: ``threshold`` and ``contrast`` are in its units.

    Returns
    -------
    Morphology
        ``m`` with the new branches appended (typed like the node they leave, radius at most
        0.5 um until measured).
    """
    n = len(m)
    if n < 3 or max_um <= 0:
        return m
    org, best, d0, p0 = side_candidates(m, image, voxel_size, noise=noise, threshold=threshold, contrast=contrast,
                                        probe_steps=probe_steps, angles_deg=angles_deg, ring=ring, step_um=step_um,
                                        side_um=side_um)
    if not org.size:
        return m
    xyz = m.xyz
    margin = np.maximum(np.asarray(voxel_size, dtype=np.float64), step_um)
    nsteps = max(probe_steps, int(np.floor(max_um / step_um)))
    path, good = _walk(m, image, voxel_size, p0, d0, origin=org, noise=noise, threshold=threshold,
                       contrast=contrast, nsteps=nsteps, step_um=step_um, cone_deg=cone_deg, gap_steps=gap_steps,
                       stop_um=stop_um, side_um=side_um, own_um=m.radius[org] + 2.5,
                       must_count=probe_steps + probe_miss, must_miss=probe_miss,
                       ceiling=_sample(image, xyz[org], voxel_size), margin=margin)
    ok = good[:, : probe_steps + probe_miss].sum(axis=1) >= probe_steps
    if not ok.any():
        return m
    org, best, p0, path, good = org[ok], best[ok], p0[ok], path[ok], good[ok]
    if shadow_fraction < 1.0:
        cable = m.resample(0.5 * shadow_xy_um)
        ok = ~_in_z_shadow(cable.xyz[~cable.soma_mask], xyz[org], path, good, xy_um=shadow_xy_um,
                           z_um=shadow_z_um, fraction=shadow_fraction)
        if not ok.any():
            return m
        org, best, p0, path, good = org[ok], best[ok], p0[ok], path[ok], good[ok]
    # one branch per place: of the walks whose probes come close, the one standing out most
    order = np.argsort(-best)
    probe = path[:, :probe_steps]
    taken = np.zeros(org.size, dtype=bool)
    acc: list[int] = []
    for i in order:
        if taken[i]:
            continue
        acc.append(int(i))
        dd = np.linalg.norm(probe[:, :, None, :] - probe[i][None, None, :, :], axis=3).min(axis=(1, 2))
        taken |= dd < clearance_um
    sel = np.array(acc)
    org = org[sel]
    return _append_walks(m, org, path[sel], good[sel], start=p0[sel], radius=np.minimum(m.radius[org], 0.5))
