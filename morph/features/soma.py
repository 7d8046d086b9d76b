"""Soma features and where the neurites leave it (stems, exit angle, exit distance)."""

from __future__ import annotations

import numpy as np

from morph.features._context import Compartment, Context, pick
from morph.features.registry import NotApplicable, feature


@feature(
    "radius",
    scope="soma",
    family="soma",
    neurom="soma_radius",
    definition="soma radius: radius of the root soma node (neurom: sqrt(area / 4 pi) for a stack of soma "
    "cylinders); for a soma of separate pieces (a contour), the mean distance of its nodes to their centroid",
)
def soma_radius(ctx: Context, comp: None) -> float:
    ctx.require_soma()
    return ctx.soma_radius


@feature(
    "surface_area",
    scope="soma",
    family="soma",
    allen="calculate_soma_surface (skeleton_keys soma surface_area)",
    neurom="soma_surface_area",
    definition="soma surface: 4 pi r^2 (neurom: lateral area of the soma cylinders for a soma of several "
    "cylinders)",
)
def soma_surface_area(ctx: Context, comp: None) -> float:
    ctx.require_soma()
    if ctx.convention == "neurom" and ctx.soma_kind == "multi_point":
        return ctx.soma_cylinders[0]
    return float(4.0 * np.pi * ctx.soma_radius**2)


@feature(
    "volume",
    scope="soma",
    family="soma",
    neurom="soma_volume",
    definition="soma volume: 4/3 pi r^3 (neurom: volume of the soma cylinders for a soma of several "
    "cylinders, 2 pi r^3 for the three-point soma)",
)
def soma_volume(ctx: Context, comp: None) -> float:
    ctx.require_soma()
    r = ctx.soma_radius
    if ctx.convention == "neurom":
        if ctx.soma_kind == "multi_point":
            return ctx.soma_cylinders[1]
        if ctx.soma_kind == "three_point":
            return float(2.0 * np.pi * r**3)
    return float(4.0 / 3.0 * np.pi * r**3)


@feature(
    "num_soma_nodes",
    scope="soma",
    family="soma",
    definition="number of soma nodes (1 for a single-point soma)",
)
def num_soma_nodes(ctx: Context, comp: None) -> float:
    return float(ctx.m.soma_nodes.size)


def _stem_exits(ctx: Context, comp: Compartment, z_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Allen ``calculate_stem_exit_and_distance`` for every root of the compartment:
    ``(theta, distance)``, distance 0 for a root attached to a soma node."""
    key = ("stem_exits", comp.name, z_scale)
    if key in ctx.cache:
        return ctx.cache[key]
    comp.require()
    ctx.require_soma()
    m = ctx.m
    r = comp.roots
    v = m.xyz[r] - ctx.soma_center
    v[:, 2] *= z_scale
    n = np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosang = np.where(n > 0, v[:, 1] / np.where(n > 0, n, 1.0), np.nan)
    theta = np.arccos(np.clip(cosang, -1.0, 1.0)) / np.pi
    dist = np.where(m.parent_is_soma[r], 0.0, ctx.dist_to_soma[r])
    ctx.cache[key] = (theta, dist)
    return theta, dist


@feature(
    "stem_exit",
    family="soma",
    dims=("down", "side", "up"),
    allen="stem_exit (skeleton_keys, from calculate_stem_exit_and_distance)",
    options=("z_scale",),
    definition="fractions of the compartment's roots whose direction from the soma centre (z scaled by "
    "z_scale, default 3) makes theta = angle to +y / pi <= 1/3 ('down' in the Allen naming), <= 2/3 "
    "('side') or more ('up')",
)
def stem_exit(ctx: Context, comp: Compartment, z_scale: float = 3.0) -> dict[str, float]:
    theta, _ = _stem_exits(ctx, comp, z_scale)
    theta = theta[np.isfinite(theta)]
    if theta.size == 0:
        raise NotApplicable(f"no {comp.name} root away from the soma centre")
    down = np.count_nonzero(theta <= 1 / 3)
    side = np.count_nonzero((theta > 1 / 3) & (theta <= 2 / 3))
    up = theta.size - down - side
    return {"down": down / theta.size, "side": side / theta.size, "up": up / theta.size}


def exit_root(ctx: Context, comp: Compartment, z_scale: float = 3.0) -> int:
    """Position in ``comp.roots`` of the root ``exit_theta`` and ``exit_distance`` use: the
    root closest to the soma (distance 0 when attached to a soma node); among equally close
    roots, the one with the most cable below it, then the smallest theta, then the
    smallest x, y, z (never the storage order)."""
    theta, dist = _stem_exits(ctx, comp, z_scale)
    m = ctx.m
    r = comp.roots
    cable = ctx.sec_subtree_length[np.maximum(m.section_id[r], 0)]
    cable = np.where(m.section_id[r] >= 0, cable, 0.0)
    pos = np.arange(r.size)
    xyz = m.xyz[r]
    return pick(pos, dist, -cable, theta, xyz[:, 0], xyz[:, 1], xyz[:, 2])


@feature(
    "exit_theta",
    family="soma",
    allen="exit_theta (skeleton_keys)",
    options=("z_scale",),
    definition="theta (angle to +y over pi, z scaled by z_scale) of the direction from the soma centre to "
    "the compartment root closest to the soma (a root attached to a soma node is at distance 0; among "
    "equally close roots, the one with the most cable below it)",
)
def exit_theta(ctx: Context, comp: Compartment, z_scale: float = 3.0) -> float:
    theta, _ = _stem_exits(ctx, comp, z_scale)
    t = float(theta[exit_root(ctx, comp, z_scale)])
    if not np.isfinite(t):
        raise NotApplicable(f"the {comp.name} starts on the soma centre: no exit direction")
    return t


@feature(
    "exit_distance",
    family="soma",
    allen="exit_distance (skeleton_keys)",
    definition="0 when a root of the compartment is attached to a soma node, else the smallest distance "
    "from a root of the compartment to the soma centre",
)
def exit_distance(ctx: Context, comp: Compartment) -> float:
    _, dist = _stem_exits(ctx, comp, 3.0)
    return float(dist.min())
