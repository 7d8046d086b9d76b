"""Branching features: branches, bifurcations, tips, stems, orders, fragmentation,
contraction, early branching."""

from __future__ import annotations

import numpy as np

from morph import _tree
from morph.features._context import Compartment, Context
from morph.features.registry import NotApplicable, feature


@feature(
    "num_branches",
    family="branching",
    allen="num_branches",
    neurom="number_of_sections",
    definition="allen: branches between forks/tips of the compartment, a k-furcation counted as k-1 "
    "successive bifurcations (2k-2 branches); neurom: number of sections",
)
def num_branches(ctx: Context, comp: Compartment) -> float:
    m = ctx.m
    if ctx.convention == "neurom":
        return float(np.count_nonzero(np.isin(m.sections.type, comp.types)))
    if comp.n == 0:
        return 0.0
    tc = comp.typed_children
    forks = comp.mask & (tc > 1)
    total = float(np.sum(2 * tc[forks] - 2))
    # every compartment root starts one branch, except a parentless root that forks
    r = comp.roots
    lone = (m.parent[r] < 0) & (tc[r] > 1)
    return total + float(r.size - np.count_nonzero(lone))


@feature(
    "num_bifurcations",
    family="branching",
    allen="num_bifurcations",
    neurom="number_of_bifurcations",
    definition="branch points of the compartment (allen: non-soma nodes with 2 or more children; neurom: "
    "exactly 2)",
)
def num_bifurcations(ctx: Context, comp: Compartment) -> float:
    nc = ctx.m.n_children[comp.idx]
    return float(np.count_nonzero(nc == 2 if ctx.convention == "neurom" else nc >= 2))


@feature(
    "num_tips",
    family="branching",
    allen="num_tips",
    neurom="number_of_leaves",
    definition="nodes of the compartment without children",
)
def num_tips(ctx: Context, comp: Compartment) -> float:
    return float(np.count_nonzero(ctx.m.n_children[comp.idx] == 0))


@feature(
    "num_stems",
    family="branching",
    allen="calculate_number_of_stems",
    neurom="number_of_neurites",
    definition="nodes of the compartment attached directly to a soma node",
)
def num_stems(ctx: Context, comp: Compartment) -> float:
    ctx.require_soma()
    m = ctx.m
    r = comp.roots
    r = r[m.parent[r] >= 0]
    return float(np.count_nonzero(m.soma_mask[m.parent[r]]))


@feature(
    "num_outer_bifurcations",
    family="branching",
    allen="num_outer_bifurcations",
    definition="branch points of the compartment farther from the soma centre than half the compartment's "
    "max_euclidean_distance",
)
def num_outer_bifurcations(ctx: Context, comp: Compartment) -> float:
    comp.require()
    ctx.require_soma()
    d = ctx.dist_to_soma[comp.idx]
    bif = ctx.m.n_children[comp.idx] > 1
    return float(np.count_nonzero(bif & (d > d.max() / 2.0)))


@feature(
    "max_branch_order",
    family="branching",
    allen="max_branch_order",
    neurom="max_section_branch_order",
    definition="allen: largest 1 + number of forking non-root nodes (any type) above a tip of the "
    "compartment; neurom: largest section branch order (0 for the first section of a neurite)",
)
def max_branch_order(ctx: Context, comp: Compartment) -> float:
    comp.require()
    m = ctx.m
    if ctx.convention == "neurom":
        return float(m.branch_order[comp.idx].max())
    order = np.where(m.parent < 0, 0, 1 + ctx.forks_above)
    tips = comp.idx[m.n_children[comp.idx] == 0]
    if tips.size == 0:
        raise NotApplicable(f"the {comp.name} has no tip")
    return float(order[tips].max())


@feature(
    "mean_fragmentation",
    family="branching",
    allen="mean_fragmentation",
    definition="compartment edges (both ends in the compartment, a k-furcation adding k-2 implicit ones) "
    "per branch",
)
def mean_fragmentation(ctx: Context, comp: Compartment) -> float:
    comp.require()
    nb = num_branches(ctx, comp) if ctx.convention == "allen" else None
    if nb is None:
        nb = float(np.count_nonzero(np.isin(ctx.m.sections.type, comp.types)))
    if nb == 0:
        raise NotApplicable(f"the {comp.name} has no branch")
    tc = comp.typed_children
    extra = np.sum(np.maximum(tc[comp.mask] - 2, 0))
    return float((np.count_nonzero(comp.inner) + extra) / nb)


def _typed_segments(ctx: Context, comp: Compartment) -> tuple[np.ndarray, np.ndarray]:
    """Runs of the compartment between its forks: ``(start_fork, end)``, each run going
    from a fork of the compartment (a node with 2+ children in the compartment) down to the
    next fork or tip through nodes of the compartment only."""
    key = ("typed_segments", comp.name)
    if key in ctx.cache:
        return ctx.cache[key]
    m = ctx.m
    tc = comp.typed_children
    tp = np.where(comp.inner, m.parent, -1)
    has = tp >= 0
    start = ~has
    start[has] = tc[tp[has]] >= 2
    first = _tree.nearest_marked(tp, start)
    ends = comp.idx[tc[comp.idx] != 1]
    s = first[ends]
    fork = tp[s]
    ok = fork >= 0
    out = (fork[ok], ends[ok])
    ctx.cache[key] = out
    return out


@feature(
    "mean_contraction",
    family="branching",
    allen="mean_contraction",
    definition="sum of straight-line over sum of path lengths of the compartment's runs from a fork to the "
    "next fork or tip (runs from the soma to the first fork left out)",
)
def mean_contraction(ctx: Context, comp: Compartment) -> float:
    comp.require()
    fork, end = _typed_segments(ctx, comp)
    xyz = ctx.m.xyz
    # a run lies inside the compartment, so its length is a difference of soma paths
    path = ctx.soma_path[end] - ctx.soma_path[fork]
    tot = path.sum()
    if not tot > 0:
        raise NotApplicable(f"the {comp.name} has no branch beyond its first fork")
    euc = np.linalg.norm(xyz[end] - xyz[fork], axis=1).sum()
    return float(euc / tot)


def _subtree_max_soma_path(ctx: Context, nodes: np.ndarray) -> np.ndarray:
    """Largest soma path distance in the subtree of each node (a soma node counts as its
    own value: it never starts a section)."""
    m = ctx.m
    sid = m.section_id[nodes]
    return np.where(sid >= 0, ctx.sec_subtree_max_soma_path[np.maximum(sid, 0)], ctx.soma_path[nodes])


@feature(
    "early_branch_path",
    scope="cell",
    family="branching",
    allen="early_branch_path",
    definition="largest, over branch points (soma nodes left out), of the shorter of the longest paths "
    "below two children (a multifurcation: the second longest of its children's longest paths), over the "
    "cell's max path distance",
)
def early_branch_path(ctx: Context, comp: None) -> float:
    m = ctx.m
    sp = ctx.soma_path
    total = float(sp.max(initial=0.0))
    if total == 0:
        raise NotApplicable("the cell has no cable")
    forks = m.branch_points
    if forks.size == 0:
        return 0.0
    off, kids = ctx.children_csr
    # every child of every fork, grouped by fork
    counts = off[forks + 1] - off[forks]
    first = np.cumsum(counts) - counts  # where each fork's children start in the list
    owner = np.repeat(np.arange(forks.size), counts)
    child = kids[np.arange(counts.sum()) - first[owner] + off[forks][owner]]
    below = _subtree_max_soma_path(ctx, child) - sp[forks[owner]]
    # the second longest per fork (the shorter of the two longest: for two children, the
    # shorter one; for a multifurcation, independent of the order of its children)
    order = np.lexsort((-below, owner))
    second = first + 1
    return float(np.max(below[order][second]) / total)
