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
        cur[idx[~ok]] = nxt[~ok]
        if not ok.all():
            return cur


def bifurcations(ctx: Context, comp: Compartment) -> np.ndarray:
    """Nodes of the compartment with exactly two children (the Allen and NeuroM angle
    features leave multifurcations out)."""
    return comp.idx[ctx.m.n_children[comp.idx] == 2]


def local_angles(ctx: Context, comp: Compartment) -> np.ndarray:
    b = bifurcations(ctx, comp)
    off, kids = ctx.children_csr
    xyz = ctx.m.xyz
    a, c = kids[off[b]], kids[off[b] + 1]
    return _angle(xyz[a] - xyz[b], xyz[c] - xyz[b])


def remote_angles(ctx: Context, comp: Compartment) -> np.ndarray:
    b = bifurcations(ctx, comp)
    off, kids = ctx.children_csr
    xyz = ctx.m.xyz
    a, c = next_stop(ctx, kids[off[b]]), next_stop(ctx, kids[off[b] + 1])
    return _angle(xyz[a] - xyz[b], xyz[c] - xyz[b])


@feature(
    "mean_bifurcation_angle_local",
    family="angles",
    allen="mean_bifurcation_angle_local",
    definition="mean angle (radians) between the first edges of the two children at each bifurcation "
    "(exactly two children) of the compartment",
)
def mean_bifurcation_angle_local(ctx: Context, comp: Compartment) -> float:
    a = local_angles(ctx, comp)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise NotApplicable(f"the {comp.name} has no bifurcation")
    return float(a.mean())


@feature(
    "mean_bifurcation_angle_remote",
    family="angles",
    allen="mean_bifurcation_angle_remote",
    definition="mean angle (radians) between the vectors from each bifurcation of the compartment to the "
    "next branch point or tip down each child",
)
def mean_bifurcation_angle_remote(ctx: Context, comp: Compartment) -> float:
    a = remote_angles(ctx, comp)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise NotApplicable(f"the {comp.name} has no bifurcation")
    return float(a.mean())
