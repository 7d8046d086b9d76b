"""Bifurcation angles (local and remote)."""

from __future__ import annotations

import numpy as np

from morph.features._context import Compartment, Context
from morph.features.registry import NotApplicable, feature


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    nu = np.linalg.norm(u, axis=1)
    nv = np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.einsum("ij,ij->i", u, v) / (nu * nv)
    return np.arccos(np.clip(c, -1.0, 1.0))


def next_stop(ctx: Context, nodes: np.ndarray) -> np.ndarray:
    """For each node, the first node at or below it with other than one child (the next
    branch point or tip), following single children across type changes."""
    m = ctx.m
    sec = m.sections
    sid = m.section_id
    cur = np.where(sid[nodes] >= 0, sec.end[np.maximum(sid[nodes], 0)], nodes)
    off, kids = ctx.children_csr
    while True:
        cont = (m.n_children[cur] == 1) & ~m.soma_mask[cur]
        if not cont.any():
            return cur
        nxt = kids[off[cur[cont]]]
        ok = sid[nxt] >= 0
        cur = cur.copy()
        idx = np.flatnonzero(cont)
        cur[idx[ok]] = sec.end[sid[nxt[ok]]]
        cur[idx[~ok]] = nxt[~ok]  # a soma node: that walk stops there


def bifurcations(ctx: Context, comp: Compartment) -> np.ndarray:
    """Nodes of the compartment with exactly two children (the Allen and NeuroM angle
    features leave multifurcations out)."""
    return comp.idx[ctx.m.n_children[comp.idx] == 2]


def first_off_point(ctx: Context, forks: np.ndarray, kids: np.ndarray) -> np.ndarray:
    """For each child, the first node of its section that does not sit on its fork (NeuroM's
    local bifurcation angle skips zero-length segments the same way); the child itself when
    every node of its section sits on the fork."""
    m = ctx.m
    xyz = m.xyz
    out = kids.copy()
    same = np.flatnonzero(np.all(xyz[kids] == xyz[forks], axis=1) & (m.section_id[kids] >= 0))
    if same.size:
        order, off = ctx.section_nodes
        for j in same:  # zero-length first edges are rare: a short loop over them
            s = m.section_id[kids[j]]
            nodes = order[off[s] : off[s + 1]]
            away = np.flatnonzero(np.any(xyz[nodes] != xyz[forks[j]], axis=1))
            if away.size:
                out[j] = nodes[away[0]]
    return out


def local_angles(ctx: Context, comp: Compartment) -> np.ndarray:
    """Angle at every bifurcation between the first non-zero-length segments of its two
    children (NaN when a child's whole section sits on the bifurcation point)."""
    b = bifurcations(ctx, comp)
    off, kids = ctx.children_csr
    xyz = ctx.m.xyz
    a = first_off_point(ctx, b, kids[off[b]])
    c = first_off_point(ctx, b, kids[off[b] + 1])
    return _angle(xyz[a] - xyz[b], xyz[c] - xyz[b])


def remote_angles(ctx: Context, comp: Compartment) -> np.ndarray:
    b = bifurcations(ctx, comp)
    off, kids = ctx.children_csr
    xyz = ctx.m.xyz
    a, c = next_stop(ctx, kids[off[b]]), next_stop(ctx, kids[off[b] + 1])
    return _angle(xyz[a] - xyz[b], xyz[c] - xyz[b])


def _mean_angle(a: np.ndarray, comp: Compartment) -> float:
    """Mean of the defined angles; NaN with the reason when there is none."""
    if a.size == 0:
        raise NotApplicable(f"the {comp.name} has no bifurcation (node with exactly two children)")
    ok = a[np.isfinite(a)]
    if ok.size == 0:
        raise NotApplicable(
            f"no {comp.name} bifurcation has a defined angle: a child does not leave the branch point "
            "(zero-length child section)"
        )
    return float(ok.mean())


@feature(
    "mean_bifurcation_angle_local",
    family="angles",
    allen="mean_bifurcation_angle_local",
    definition="mean angle (radians) between the first non-zero-length segments of the two children at "
    "each bifurcation (exactly two children) of the compartment",
)
def mean_bifurcation_angle_local(ctx: Context, comp: Compartment) -> float:
    return _mean_angle(local_angles(ctx, comp), comp)


@feature(
    "mean_bifurcation_angle_remote",
    family="angles",
    allen="mean_bifurcation_angle_remote",
    definition="mean angle (radians) between the vectors from each bifurcation of the compartment to the "
    "next branch point or tip down each child",
)
def mean_bifurcation_angle_remote(ctx: Context, comp: Compartment) -> float:
    return _mean_angle(remote_angles(ctx, comp), comp)
