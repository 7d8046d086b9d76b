"""Size features: node counts, cable length, surface, volume, diameters, reach."""

from __future__ import annotations

import numpy as np

from morph.features._context import Compartment, Context
from morph.features.registry import NotApplicable, feature


def _empty_zero(ctx: Context, comp: Compartment) -> bool:
    """NeuroM reports sums and maxima over an absent compartment as 0; the Allen
    convention reports NaN with the reason."""
    if comp.n == 0 and ctx.convention == "neurom":
        return True
    comp.require()
    return False


def _frusta(ctx: Context, comp: Compartment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge lengths and end radii of the compartment's edges (Allen: both ends in the
    compartment; NeuroM: every non-soma edge ending in the compartment)."""
    m = ctx.m
    if ctx.convention == "allen":
        e = comp.inner
    else:
        e = comp.mask & (m.parent >= 0) & ~m.parent_is_soma
    return m.edge_length[e], m.radius[e], m.radius[m.parent[e]]


@feature("num_nodes", family="size", allen="num_nodes", definition="number of nodes of the compartment")
def num_nodes(ctx: Context, comp: Compartment) -> float:
    return float(comp.n)


@feature(
    "total_length",
    family="size",
    allen="total_length",
    neurom="total_length",
    definition="cable length: sum of the compartment's edges (the soma-to-first-node edge never counts; "
    "allen: both ends in the compartment, neurom: every edge ending in it)",
)
def total_length(ctx: Context, comp: Compartment) -> float:
    if _empty_zero(ctx, comp):
        return 0.0
    h, _, _ = _frusta(ctx, comp)
    return float(h.sum())


@feature(
    "total_surface_area",
    family="size",
    allen="total_surface_area",
    neurom="total_area",
    definition="lateral area of the compartment's edges as conical frusta: sum pi (r1+r2) sqrt((r1-r2)^2 + L^2)",
)
def total_surface_area(ctx: Context, comp: Compartment) -> float:
    if _empty_zero(ctx, comp):
        return 0.0
    h, r0, r1 = _frusta(ctx, comp)
    return float(np.sum(np.pi * (r0 + r1) * np.sqrt((r0 - r1) ** 2 + h**2)))


@feature(
    "total_volume",
    family="size",
    allen="total_volume",
    neurom="total_volume",
    definition="volume of the compartment's edges as conical frusta: sum pi L (r1^2 + r1 r2 + r2^2) / 3",
)
def total_volume(ctx: Context, comp: Compartment) -> float:
    if _empty_zero(ctx, comp):
        return 0.0
    h, r0, r1 = _frusta(ctx, comp)
    return float(np.sum(np.pi * h * (r0**2 + r0 * r1 + r1**2) / 3.0))


@feature(
    "mean_diameter",
    family="size",
    allen="mean_diameter",
    definition="twice the mean radius of the compartment's nodes",
)
def mean_diameter(ctx: Context, comp: Compartment) -> float:
    comp.require()
    return float(2.0 * ctx.m.radius[comp.idx].mean())


@feature(
    "mean_parent_daughter_ratio",
    family="size",
    allen="mean_parent_daughter_ratio",
    definition="mean of parent radius / node radius over the compartment's edges (both ends in it; "
    "edges with a zero radius are left out)",
)
def mean_parent_daughter_ratio(ctx: Context, comp: Compartment) -> float:
    comp.require()
    m = ctx.m
    e = comp.inner & (m.radius > 0)
    if not e.any():
        raise NotApplicable(f"no {comp.name} edge with a positive radius")
    return float(np.mean(m.radius[m.parent[e]] / m.radius[e]))


@feature(
    "max_euclidean_distance",
    family="size",
    allen="max_euclidean_distance",
    neurom="max_radial_distance",
    definition="largest straight-line distance from the soma centre to a node of the compartment",
)
def max_euclidean_distance(ctx: Context, comp: Compartment) -> float:
    if _empty_zero(ctx, comp):
        return 0.0
    ctx.require_soma()
    return float(ctx.dist_to_soma[comp.idx].max())


@feature(
    "max_path_distance",
    family="size",
    allen="max_path_distance",
    neurom="max_path_distance",
    definition="largest path distance along the tree to a node of the compartment (allen: from the soma "
    "centre, the soma-to-first-node edge included; neurom: from the neurite's first node)",
)
def max_path_distance(ctx: Context, comp: Compartment) -> float:
    if _empty_zero(ctx, comp):
        return 0.0
    p = ctx.soma_path if ctx.convention == "allen" else ctx.neurite_path
    return float(p[comp.idx].max())


@feature(
    "num_segments",
    family="size",
    neurom="number_of_segments",
    definition="number of neurite edges (node-to-parent) in the compartment, soma edges left out",
)
def num_segments(ctx: Context, comp: Compartment) -> float:
    m = ctx.m
    return float(np.count_nonzero(comp.mask & (m.parent >= 0) & ~m.parent_is_soma))
