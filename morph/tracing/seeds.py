"""The user's seed points: what the image shows at a click, and the path that joins a seed
the automatic tree does not reach.

A seed is a point the tree must reach. The tree stage reaches a seed that lies on the
foreground when its piece of foreground joins the tree; a seed on a neurite too faint for
the foreground (the case a user clicks on most: a thin branch the tracer left out) is
reached here instead, by the minimal-cost path through the image from the seed to the
traced tree (:func:`path_to_tree`), as a proofreader would draw it.

Functions take the flattened, denoised image (stained structure positive, background about
0) and physical voxel sizes; points are micrometres in the image's frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _box(centre_um: NDArray[np.float64], half_um: float | NDArray[np.float64], shape: Sequence[int],
         voxel_size: Sequence[float]) -> tuple[tuple[slice, ...], NDArray[np.int64]]:
    """(z, y, x) slices of the box ``centre +- half`` clipped to the image, and its first
    voxel (z, y, x)."""
    vs = np.asarray(voxel_size, dtype=np.float64)
    lo = np.floor((centre_um - half_um) / vs).astype(np.int64)[::-1]
    hi = np.ceil((centre_um + half_um) / vs).astype(np.int64)[::-1] + 1
    lo = np.clip(lo, 0, np.asarray(shape) - 1)
    hi = np.clip(hi, lo + 1, np.asarray(shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True)), lo


def peak_near(image: Any, voxel_size: Sequence[float], xyz_um: Sequence[float], *,
              radius_um: float = 1.0) -> float:
    """The brightest value of ``image`` within ``radius_um`` (at least half a voxel) of a
    point: what the image shows where a user clicked, a micrometre of aim allowed.

    On a flattened, denoised brightfield image in noise units, 5 % of the background reaches
    2 within a micrometre, while the gold cable of synthetic cells that the tracer misses
    (thin dendrites below the foreground threshold) does so at 23-75 % of its points
    (``docs/tracing.md``)."""
    vs = np.asarray(voxel_size, dtype=np.float64)
    p = np.asarray(xyz_um, dtype=np.float64).reshape(3)
    r = max(float(radius_um), float(vs.max()) * 0.5)
    sl, _lo = _box(p, r, image.shape, vs)
    sub = np.asarray(image[sl], dtype=np.float64)
    zz, yy, xx = np.meshgrid(*(np.arange(s.start, s.stop) for s in sl), indexing="ij")
    d2 = ((xx * vs[0] - p[0]) ** 2 + (yy * vs[1] - p[1]) ** 2 + (zz * vs[2] - p[2]) ** 2)
    inside = d2 <= r * r
    if not inside.any():  # a point between the voxels of a coarse grid: its nearest voxel
        inside = d2 == d2.min()
    return float(sub[inside].max())


def path_to_tree(
    image: Any,
    voxel_size: Sequence[float],
    seed_um: Sequence[float],
    tree_xyz_um: NDArray[np.float64],
    *,
    ref: float,
    cost_power: float = 4.0,
    margin_um: float = 10.0,
    max_voxels: float = 4e6,
) -> NDArray[np.float64] | None:
    """The minimal-cost path through ``image`` from a seed to the nearest (in cost) point of
    a traced tree.

    The cost per micrometre is ``exp(cost_power (1 - f)^2)``, ``f = clip(image / ref, 0,
    1)`` (:func:`morph.tracing.prune.min_cost_path`, physical voxel spacing), in the box
    around the seed reaching ``margin_um`` beyond the tree's nearest point; every voxel of
    the tree (``tree_xyz_um``, points along its cable) in the box is an end, and the path
    goes to the one it reaches at the least cost. A box of more than ``max_voxels`` voxels (a
    click far from the tree on a finely sampled stack) is searched coarse to fine, so memory
    stays near ``100 max_voxels`` bytes.

    Returns
    -------
    ndarray or None
        ``(k, 3)`` micrometres from the tree's voxel to the seed's, or ``None`` when no tree
        point lies in the box.
    """
    from morph.tracing.prune import min_cost_path

    vs = np.asarray(voxel_size, dtype=np.float64)
    p = np.asarray(seed_um, dtype=np.float64).reshape(3)
    tree = np.asarray(tree_xyz_um, dtype=np.float64).reshape(-1, 3)
    if not len(tree):
        return None
    near = float(np.sqrt(((tree - p) ** 2).sum(axis=1).min()))
    sl, lo = _box(p, near + float(margin_um), image.shape, vs)
    shape = np.array([s.stop - s.start for s in sl])
    ends = np.unique(np.rint(tree / vs).astype(np.int64)[:, ::-1], axis=0)
    ends = ends[np.all((ends >= lo) & (ends < lo + shape), axis=1)]
    if not len(ends):
        return None
    start = np.clip(np.rint(p / vs).astype(np.int64)[::-1], lo, lo + shape - 1)
    path = min_cost_path(image, vs, sl, start, ends, ref=ref, cost_power=cost_power, max_voxels=max_voxels)
    return path[::-1, ::-1] * vs
