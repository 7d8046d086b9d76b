"""Faint neurites: pieces of foreground too weak to be bridged to, joined to the traced tree
by minimal paths through the image when the path stands out as a neurite.

A thin dendrite near the noise floor breaks, at the foreground threshold, into short pieces
with no strongly stained voxel; the tree stage never bridges to such pieces (most pieces of
that kind are the background's texture). Here each piece near the refined tree is joined to
it by the least-cost path through the image (the seeds' graded cost,
:func:`morph.tracing.prune.min_cost_path`) and through the piece itself, and the whole path,
outside the tree, is kept only when it is a ridge of the image: brighter than both sides
across it. Kept paths become part of the tree, so a chain of
pieces along a faint dendrite is followed outwards round after round.

Functions take the flattened, denoised image (stained structure positive, background about
0), physical voxel sizes and points in micrometres in the image's frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import uniform_filter1d
from scipy.spatial import cKDTree

from morph.tracing import prune as _prune
from morph.tracing.tubularity import hessian_eigen_at


@dataclass
class FaintPieces:
    """Pieces of foreground with no strong voxel: each voxel's position (micrometres, the
    image's frame) and piece label (0 .. n-1)."""

    xyz: NDArray[np.float64]
    label: NDArray[np.int64]
    n: int

    @classmethod
    def from_index(cls, index: NDArray[np.int64], shape: tuple[int, int, int], voxel_size: Sequence[float], *,
                   min_extent_um: float = 3.0) -> FaintPieces:
        """The 26-connected pieces of the voxels at flat ``index`` (of a ``(Z, Y, X)`` stack)
        whose extent (the diagonal of their bounding box) reaches ``min_extent_um``."""
        from morph.tracing.tree import piece_labels

        vs = np.asarray(voxel_size, dtype=np.float64)
        index = np.sort(np.asarray(index, dtype=np.int64))
        lab, n = piece_labels(shape, index)
        lab = np.asarray(lab, dtype=np.int64)
        xyz = np.stack(np.unravel_index(index, shape), axis=1)[:, ::-1] * vs
        lo = np.full((n, 3), np.inf)
        hi = np.full((n, 3), -np.inf)
        for a in range(3):
            np.minimum.at(lo[:, a], lab, xyz[:, a])
            np.maximum.at(hi[:, a], lab, xyz[:, a])
        keep_piece = np.linalg.norm(hi - lo, axis=1) >= min_extent_um
        keep = keep_piece[lab]
        new = np.cumsum(keep_piece) - 1
        return cls(xyz[keep], new[lab[keep]], int(keep_piece.sum()))


def _ridge(image: NDArray[Any], voxel_size: NDArray[np.float64], pts: NDArray[np.float64], side_um: float) -> float:
    """How much brighter the image is along a path of points than beside it: the median,
    over the points, of the image minus the brighter of the two samples ``side_um`` to
    either side across the path in x-y (:func:`morph.tracing.prune.ridge_contrast_at`)."""
    return float(np.median(_prune.ridge_contrast_at(image, voxel_size, pts, np.gradient(pts, axis=0),
                                                    offset_um=side_um)))


def aligned_fraction(image: NDArray[Any], voxel_size: Sequence[float], path_um: NDArray[np.float64], *,
                     sigma_um: float = 0.5, max_angle_deg: float = 37.0) -> NDArray[np.float64]:
    """Whether the image is a tube along a path, point by point: at each point of
    ``path_um`` (``(k, 3)`` micrometres, on voxel centres, in order), whether the Hessian's
    axis of least curvature (:func:`morph.tracing.tubularity.hessian_eigen_at`, at
    ``sigma_um``), the axis a tube runs along, lies within ``max_angle_deg`` of the path's
    direction there (over five points). The grains of a background texture are round, so
    that axis points anywhere along a path through them. Returns booleans as 0 / 1."""
    vs = np.asarray(voxel_size, dtype=np.float64)
    pts = np.asarray(path_um, dtype=np.float64).reshape(-1, 3)
    if len(pts) < 2:
        return np.zeros(len(pts))
    zyx = np.clip(np.rint(pts / vs).astype(np.int64)[:, ::-1], 0, np.asarray(image.shape) - 1)
    w, vec = hessian_eigen_at(image, zyx, vs, sigma_um=sigma_um)
    axis = vec[np.arange(len(w)), :, np.argmin(np.abs(w), axis=1)]
    t = uniform_filter1d(np.gradient(pts, axis=0), 5, axis=0, mode="nearest")
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return (np.abs(np.sum(t * axis, axis=1)) >= np.cos(np.deg2rad(max_angle_deg))).astype(np.float64)


def _box(a_um: NDArray[np.float64], b_um: NDArray[np.float64], margin_um: float, voxel_size: NDArray[np.float64],
         shape: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First and past-last (z, y, x) voxels of the box spanning two points plus a margin."""
    lo = np.minimum(a_um, b_um) - margin_um
    hi = np.maximum(a_um, b_um) + margin_um
    b0 = np.clip(np.floor(lo / voxel_size).astype(np.int64)[::-1], 0, shape - 1)
    b1 = np.clip(np.ceil(hi / voxel_size).astype(np.int64)[::-1] + 1, b0 + 1, shape)
    return b0, b1


def join_paths(
    image: NDArray[Any],
    voxel_size: Sequence[float],
    tree_xyz_um: NDArray[np.float64],
    pieces: FaintPieces,
    *,
    noise: float,
    ref: float,
    cost_power: float = 4.0,
    reach_um: float = 20.0,
    min_contrast: float = 1.5,
    side_um: float = 1.5,
    halo_um: float = 3.0,
    tree_um: float = 1.5,
    margin_um: float = 3.0,
    max_rounds: int = 4,
    aligned_contrast: float | None = None,
    min_aligned: float = 0.6,
    avoid: NDArray[np.bool_] | None = None,
) -> list[NDArray[np.float64]]:
    """Minimal paths from the traced tree through the faint pieces that stand out as neurites.

    A piece is a candidate when its nearest voxel lies within ``reach_um`` of the tree and
    at most half its voxels lie within ``halo_um`` of it (a screen: a piece in the blur
    beside a traced neurite has a brighter side, and its path would not be kept; not trying
    those saves a tenth of the searches on ``bench/trace.py``'s ``BF_512``). Nearest candidates first, the path is the least-cost
    path through ``image`` (``exp(cost_power (1 - f)^2)``, ``f = clip(image / ref, 0, 1)``,
    physical voxel spacing) from the piece's voxel farthest from the tree to whichever
    point of the tree it reaches first, searched in the box spanning the piece and the
    tree's point nearest to it, ``margin_um`` around: through the piece, then across the gap
    to the tree. It is kept when, over its points more than ``tree_um`` from the tree, the
    image exceeds the brighter of its two sides ``side_um`` across in x-y by a median of
    ``min_contrast`` noise units (:func:`_ridge`): a ridge, as a neurite is, and not the
    texture, nor the blur beside a brighter neurite. A path standing out by less, but by at
    least ``aligned_contrast`` (when given), is kept when the image is also a tube along it:
    at ``min_aligned`` of those points or more, the tube's axis follows the path
    (:func:`aligned_fraction`). A kept path joins the tree (the pieces
    it runs within 1 um of are done with), and the pieces it brought 0.5 um or more nearer
    are tried again in the next round, up to ``max_rounds``: a chain of pieces along a
    faint dendrite is followed outwards.

    Parameters
    ----------
    image
        Flattened, denoised image (stained structure positive), (Z, Y, X).
    voxel_size
        ``(x, y, z)`` micrometres.
    tree_xyz_um
        Points along the tree's cable (every half voxel or so).
    pieces
        The faint pieces (:class:`FaintPieces`).
    aligned_contrast, min_aligned
        The lower ridge contrast (noise units) of paths that run along the image's tube axis,
        and the share of their points off the tree that must do so.
    avoid
        Per point of ``tree_xyz_um``: points no path may end on (the axon: a dendrite
        passing near it is not a branch of it). They still count as the tree for the
        distances above.
    noise, ref
        The image's noise level (``min_contrast`` is in its units) and the
        brightness at which the path's cost is least.

    Returns
    -------
    list of ndarray
        Each kept path, ``(k, 3)`` micrometres from its point on the tree outwards.
    """
    vs = np.asarray(voxel_size, dtype=np.float64)
    shp = np.asarray(image.shape, dtype=np.int64)
    cable = np.asarray(tree_xyz_um, dtype=np.float64).reshape(-1, 3)
    out: list[NDArray[np.float64]] = []
    if pieces.n == 0 or not len(cable):
        return out
    lab, xyz = pieces.label, pieces.xyz
    count = np.bincount(lab, minlength=pieces.n)
    done = np.zeros(pieces.n, dtype=bool)
    tried_at = np.full(pieces.n, np.inf)  # each piece's distance to the tree when last tried
    # the voxels a path may end on: the tree's (but those of ``avoid``) and the kept paths'
    ok_pts = cable if avoid is None else cable[~np.asarray(avoid, dtype=bool)]
    cvox = np.unique(np.rint(ok_pts / vs).astype(np.int64)[:, ::-1], axis=0).reshape(-1, 3)
    kd = cKDTree(cable)
    d = kd.query(xyz)[0]  # each voxel's distance to the tree, kept up to date as paths join it
    for _round in range(max_rounds):
        halo = np.bincount(lab, weights=(d <= halo_um), minlength=pieces.n) / np.maximum(count, 1)
        dmin = np.full(pieces.n, np.inf)
        np.minimum.at(dmin, lab, d)
        cand = np.flatnonzero(~done & (halo <= 0.5) & (dmin <= reach_um) & (dmin < tried_at - 0.5))
        if not cand.size:
            break
        order = np.lexsort((d, lab))
        heads = np.r_[True, lab[order][1:] != lab[order][:-1]]
        near_of = np.full(pieces.n, -1)
        far_of = np.full(pieces.n, -1)
        near_of[lab[order[heads]]] = order[heads]
        far_of[lab[order[np.r_[heads[1:], True]]]] = order[np.r_[heads[1:], True]]
        kept_before = len(out)
        for c in cand[np.argsort(dmin[cand], kind="stable")]:
            if done[c]:
                continue
            tried_at[c] = dmin[c]
            p_near, p_far = xyz[near_of[c]], xyz[far_of[c]]
            _dn, jn = kd.query(p_near)
            lo_um = np.minimum(np.minimum(p_near, p_far), cable[jn])
            hi_um = np.maximum(np.maximum(p_near, p_far), cable[jn])
            b0, b1 = _box(lo_um, hi_um, margin_um, vs, shp)
            inb = np.all((cvox >= b0) & (cvox < b1), axis=1)
            if not inb.any():
                continue
            box = tuple(slice(int(u), int(v)) for u, v in zip(b0, b1, strict=True))
            start = np.clip(np.rint(p_far / vs).astype(np.int64)[::-1], b0, b1 - 1)
            path = _prune.min_cost_path(image, vs, box, start, cvox[inb], ref=ref, cost_power=cost_power)
            path = path[::-1, ::-1] * vs  # from the tree through the piece to its far end
            dt = kd.query(path)[0]
            off = dt > tree_um
            if off.sum() < 4:
                continue
            ridge = _ridge(image, vs, path[off], side_um)
            if ridge < min_contrast * noise and not (
                    aligned_contrast is not None and ridge >= aligned_contrast * noise
                    and float(np.mean(aligned_fraction(image, vs, path)[off])) >= min_aligned):
                continue
            out.append(path)
            # the path's distance to every voxel that lies within twice the reach of it
            dp = cKDTree(path).query(xyz, distance_upper_bound=2.0 * reach_um)[0]
            done[np.unique(lab[dp <= 1.0])] = True
            np.minimum(d, dp, out=d)
            new = path[dt > 0.5 * float(vs.min())]
            cable = np.vstack([cable, new])
            kd = cKDTree(cable)
            cvox = np.unique(np.vstack([cvox, np.rint(new / vs).astype(np.int64)[:, ::-1]]), axis=0)
        if len(out) == kept_before:
            break
    return out


def tip_paths(
    image: NDArray[Any],
    voxel_size: Sequence[float],
    tips_um: NDArray[np.float64],
    directions: NDArray[np.float64],
    tree_xyz_um: NDArray[np.float64],
    *,
    noise: float,
    ref: float,
    cost_power: float = 4.0,
    reach_um: float = 12.0,
    cone_deg: float = 40.0,
    min_contrast: float = 1.0,
    min_aligned: float = 0.6,
    side_um: float = 1.5,
    clear_um: float = 2.0,
    rounds: int = 4,
    max_voxels: float = 2.5e5,
    margin_um: float = 5.0,
) -> list[tuple[int, NDArray[np.float64]]]:
    """Continue tips along faint neurites by minimal paths judged over their whole length.

    A thin dendrite near the noise floor passes the tip walks' test (each 1 um step brighter
    than its sides) at only a few of its steps, but over ten micrometres it stands out. From
    each tip (``tips_um``, its direction ``directions``), the least-cost path through
    ``image`` (``exp(cost_power (1 - f)^2)``, ``f = clip(image / ref, 0, 1)``) runs to
    whichever point of the shell ``reach_um`` away, within ``cone_deg`` of the direction, it
    reaches at the least cost.
    It is kept when at least 90 % of its points more than ``clear_um`` from the tip (nearer,
    the tip itself is within ``clear_um``) lie more than ``clear_um`` from the tree
    (``tree_xyz_um``, points along its cable, and the paths kept so far: a path back along
    the tree or onto another branch is no continuation), and, over its points more than
    1.5 um from the tip, the median ridge contrast (:func:`_ridge`, ``side_um`` to either
    side in x-y) reaches ``min_contrast`` noise units and at least ``min_aligned`` of them
    follow the tube axis of the image (:func:`aligned_fraction`). Each kept path's end is a tip for the next
    round, up to ``rounds``. The search runs in the box spanning the tip and the cone's
    shell, ``margin_um`` around (not the whole sphere's box: half the work, the same paths on
    the benchmark stacks); a box of more than ``max_voxels`` voxels (finely sampled stacks)
    is searched coarse to fine (:func:`morph.tracing.prune.min_cost_path`).

    Returns
    -------
    list of (int, ndarray)
        ``(from, path)``, ``path`` ``(k, 3)`` micrometres from the tip outwards, ``from`` the
        index of the tip in ``tips_um`` when ``>= 0``, else ``-1 - j`` for the end of the
        ``j``-th path returned.
    """
    vs = np.asarray(voxel_size, dtype=np.float64)
    shp = np.asarray(image.shape, dtype=np.int64)
    out: list[tuple[int, NDArray[np.float64]]] = []
    cable = np.asarray(tree_xyz_um, dtype=np.float64).reshape(-1, 3)
    if not len(cable):
        return out
    todo = [(i, np.asarray(tips_um[i], dtype=np.float64), np.asarray(directions[i], dtype=np.float64))
            for i in range(len(tips_um))]
    cos_cone = float(np.cos(np.deg2rad(cone_deg)))
    for _round in range(rounds):
        if not todo:
            break
        kd = cKDTree(cable)
        nxt = []
        for src, p, d in todo:  # one least-cost search per tip (bounded by the tips)
            nd = float(np.linalg.norm(d))
            if nd < 1e-9:
                continue
            d = d / nd
            b0, b1 = _box(p, p, reach_um + 1.0, vs, shp)
            # the shell's voxels (every k-th along each axis in a box over max_voxels: the
            # path goes to the cheapest of them, and the temporaries stay small)
            k = max(1, int(np.ceil((float(np.prod(b1 - b0)) / max_voxels) ** (1.0 / 3.0))))
            zz, yy, xx = np.meshgrid(*(np.arange(a, b, k, dtype=np.float32) for a, b in zip(b0, b1, strict=True)),
                                     indexing="ij", sparse=True)
            vx, vy, vz = xx * np.float32(vs[0]) - p[0], yy * np.float32(vs[1]) - p[1], zz * np.float32(vs[2]) - p[2]
            r = np.sqrt(vx * vx + vy * vy + vz * vz)
            shell = np.abs(r - reach_um) <= 0.75 + 0.5 * (k - 1) * float(vs.max())
            shell &= vx * d[0] + vy * d[1] + vz * d[2] >= cos_cone * r
            del r
            ends = np.argwhere(shell) * k + b0
            if not len(ends):
                continue
            start = np.clip(np.rint(p / vs).astype(np.int64)[::-1], b0, b1 - 1)
            # searched in the box of the tip and the cone's shell, margin_um around
            mg = np.ceil(margin_um / vs[::-1]).astype(np.int64)
            b0 = np.maximum(b0, np.minimum(ends.min(axis=0), start) - mg)
            b1 = np.minimum(b1, np.maximum(ends.max(axis=0), start) + mg + 1)
            box = tuple(slice(int(u), int(v)) for u, v in zip(b0, b1, strict=True))
            path = _prune.min_cost_path(image, vs, box, start, ends, ref=ref, cost_power=cost_power,
                                        max_voxels=max_voxels)
            path = path[:, ::-1] * vs
            dtip = np.linalg.norm(path - p, axis=1)
            far = dtip > 1.5
            # clear of the tree: judged beyond clear_um from the tip (nearer, the tip itself
            # is within clear_um of every point)
            clear = dtip > max(1.5, clear_um)
            if far.sum() < 4 or not clear.any() or np.mean(kd.query(path[clear])[0] > clear_um) < 0.9:
                continue
            if _ridge(image, vs, path[far], side_um) < min_contrast * noise:
                continue
            if float(np.mean(aligned_fraction(image, vs, path)[far])) < min_aligned:
                continue
            out.append((src, path))
            cable = np.vstack([cable, path])
            kd = cKDTree(cable)
            nxt.append((-len(out), path[-1], path[-1] - path[max(0, len(path) - 9)]))
        todo = nxt
    return out
