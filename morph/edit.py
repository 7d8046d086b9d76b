"""Proofreading edits of a reconstruction, each at a point the user picked.

The point snaps to the nearest node that is not soma (within ``snap_um``, else
:class:`~morph.errors.MorphError` with the distance). Every function returns the edited
morphology, with a line for its header saying what was done, and never edits in place.

* :func:`delete_branch`: the branch the point lies on, from the branch point (or soma) it
  leaves, with everything beyond it: a false branch, a spur, another cell's fragment joined
  to the tree.
* :func:`cut_at`: the point's node and everything beyond it: a neurite traced too far.
* :func:`join`: the branch the point lies on, moved to hang from the node nearest a second
  point: a neurite the trace joined to the wrong neighbour (an axon joined to the dendrite it
  crosses rather than to its own first micrometres), or a piece traced apart.
* :func:`set_axon`: the axon is the neurite the point lies on, from where it starts
  (:func:`morph.tracing.label.axon_from_point`: its soma stem, or the branch point of the
  dendrite it leaves where the trunk before is thicker); every other axon node becomes basal
  dendrite.
* :func:`set_apical`: the soma stem the point lies on becomes the apical dendrite (its
  dendrite nodes; axon nodes on it stay axon); other apical nodes become basal dendrite.
  The point must lie on a dendrite (basal or apical), not on the axon or another
  compartment.
* :func:`set_dendrite`: the axon or apical compartment the point lies on (the nodes of that
  type joined to the point's node through nodes of that type) becomes basal dendrite.

Coordinates are micrometres, in the reconstruction's frame (the frame of the stack it was
traced from, for a morph trace).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph import _tree
from morph.errors import MorphError
from morph.morphology import APICAL, AXON, BASAL, Morphology, type_name

__all__ = ["cut_at", "delete_branch", "join", "nearest_node", "set_apical", "set_axon", "set_dendrite"]


def _fmt(p: NDArray[np.float64]) -> str:
    return f"({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f})"


def nearest_node(m: Morphology, point: Any, *, snap_um: float = 3.0, what: str = "point", soma: bool = False) -> int:
    """Index of the node of ``m`` nearest to ``point`` (micrometres), soma nodes left out
    unless ``soma`` (then measured to the soma's surface: their distance less their radius).

    Raises
    ------
    MorphError
        When the reconstruction is not in micrometres, has no neurite node, or the nearest
        lies more than ``snap_um`` away.
    """
    if m.units != "um":
        raise MorphError("the reconstruction is in voxel units", file=m.source or None,
                         hint="convert it first: morph convert IN --to-um --voxel X Y Z -o OUT")
    p = np.asarray(point, dtype=np.float64).reshape(3)
    d = np.linalg.norm(m.xyz - p, axis=1)
    d[m.soma_mask] = np.maximum(d[m.soma_mask] - m.radius[m.soma_mask], 0.0) if soma else np.inf
    if not np.isfinite(d).any():
        raise MorphError("the reconstruction has no neurite node to edit", file=m.source or None)
    j = int(np.argmin(d))
    if d[j] > snap_um:
        raise MorphError(
            f"the {what} {_fmt(p)} um is {d[j]:.1f} um from the nearest {'node' if soma else 'neurite node'}, "
            f"{_fmt(m.xyz[j])} (more than {snap_um:g} um)",
            file=m.source or None,
            hint="pick a point on the neurite, e.g. a node picked in morph view, which prints its position; "
            "or raise --snap-um",
        )
    return j


def _removed(m: Morphology, mask: NDArray[np.bool_]) -> tuple[int, float]:
    return int(mask.sum()), float(m.neurite_edge_length[mask].sum())


def _without(m: Morphology, drop: NDArray[np.bool_], note: str) -> tuple[Morphology, str]:
    if drop.all():
        raise MorphError("the edit would remove every node of the reconstruction", file=m.source or None,
                         hint="pick a branch further out")
    return m.take(~drop, header=[*m.header, note]), note


def delete_branch(m: Morphology, point: Any, *, snap_um: float = 3.0) -> tuple[Morphology, str]:
    """Remove the branch ``point`` lies on, from the branch point (or soma, or root) it
    leaves, and everything beyond it."""
    j = nearest_node(m, point, snap_um=snap_um)
    start = int(_tree.nearest_marked(m.parent, m.section_start)[j])
    drop = _tree.subtree_mask(m.parent, start)
    n, cable = _removed(m, drop)
    return _without(m, drop, f"edit: deleted the branch at {_fmt(m.xyz[j])} um ({n} nodes, {cable:.1f} um of cable)")


def cut_at(m: Morphology, point: Any, *, snap_um: float = 3.0) -> tuple[Morphology, str]:
    """Remove the node nearest to ``point`` and everything beyond it."""
    j = nearest_node(m, point, snap_um=snap_um)
    drop = _tree.subtree_mask(m.parent, j)
    n, cable = _removed(m, drop)
    return _without(m, drop, f"edit: cut at {_fmt(m.xyz[j])} um ({n} nodes, {cable:.1f} um of cable)")


def join(m: Morphology, point: Any, to: Any, *, snap_um: float = 3.0) -> tuple[Morphology, str]:
    """Move the branch ``point`` lies on (from the branch point, soma or root it leaves, with
    everything beyond it) so that it hangs from the node nearest ``to`` (a soma node counts
    from the soma's surface, so ``to`` may lie on or near it): the branch's node
    nearest ``to`` is joined to it by a straight edge, and the part of the branch between
    that node and its old base is reversed (it now runs away from the new joint). A piece
    traced apart (a root of its own) is joined the same way."""
    j = nearest_node(m, point, snap_um=snap_um)
    b = nearest_node(m, to, snap_um=snap_um, what="point to join to", soma=True)
    base = int(_tree.nearest_marked(m.parent, m.section_start)[j])
    branch = _tree.subtree_mask(m.parent, base)
    if branch[b]:
        raise MorphError(f"the point to join to, {_fmt(m.xyz[b])} um, lies on the branch being moved",
                         file=m.source or None, hint="join the branch to a node of another neurite or of the soma")
    inside = np.flatnonzero(branch)
    q = int(inside[np.argmin(np.linalg.norm(m.xyz[inside] - m.xyz[b], axis=1))])
    parent = m.parent.copy()
    path = [q]  # from the new joint up to the old base: these links are reversed
    while path[-1] != base:
        path.append(int(m.parent[path[-1]]))
    for child, par in zip(path[1:], path[:-1]):
        parent[child] = par
    parent[q] = b
    gap = float(np.linalg.norm(m.xyz[q] - m.xyz[b]))
    note = (f"edit: the branch at {_fmt(m.xyz[j])} um ({int(branch.sum())} nodes) joined at "
            f"{_fmt(m.xyz[q])} um to the node at {_fmt(m.xyz[b])} um ({gap:.1f} um apart)")
    return m._derive(parent=parent, ids=None, header=[*m.header, note]), note


def _retyped(m: Morphology, types: NDArray[np.int64], note: str) -> tuple[Morphology, str]:
    return m._derive(types=types, header=[*m.header, note]), note


def set_axon(m: Morphology, point: Any, *, snap_um: float = 3.0) -> tuple[Morphology, str]:
    """Label as axon the neurite ``point`` lies on, from where it starts (see the module
    docstring); other axon nodes become basal dendrite."""
    from morph.tracing.label import axon_from_point

    j = nearest_node(m, point, snap_um=snap_um, what="axon point")  # the same refusal as the others
    mask, where = axon_from_point(m, m.xyz[j], snap_um=snap_um)
    types = m.types.copy()
    types[(types == AXON) & ~mask] = BASAL
    types[mask] = AXON
    n, cable = _removed(m, mask)
    origin = where.removeprefix("given by the user")  # ", from the soma" / ", from a dendrite ..."
    note = f"edit: axon set at {_fmt(m.xyz[j])} um{origin} ({n} nodes, {cable:.1f} um)"
    return _retyped(m, types, note)


def set_apical(m: Morphology, point: Any, *, snap_um: float = 3.0) -> tuple[Morphology, str]:
    """Label as apical dendrite the soma stem ``point`` lies on (its dendrite nodes); other
    apical nodes become basal dendrite.

    Raises
    ------
    MorphError
        When the point is not near a neurite node, lies on the axon (or any compartment
        other than a dendrite), or on a piece not joined to the soma, or the reconstruction
        has no soma.
    """
    j = nearest_node(m, point, snap_um=snap_um, what="apical point")
    if not m.soma_nodes.size:
        raise MorphError("an apical dendrite is a stem of the soma, and the reconstruction has no soma",
                         file=m.source or None)
    t = int(m.types[j])
    if t not in (BASAL, APICAL):
        name = type_name(t).replace("_", " ")
        relabel = "; to make this axon the apical dendrite, give --dendrite at it before --apical" if t == AXON else ""
        raise MorphError(f"the apical point {_fmt(np.asarray(point, dtype=np.float64).reshape(3))} um lies on the "
                         f"{name} (type {t}, node at {_fmt(m.xyz[j])} um), not on a dendrite",
                         file=m.source or None,
                         hint=f"pick a point on a dendrite to label it apical{relabel}")
    first = int(_tree.nearest_marked(m.parent, m.parent_is_soma)[j])  # the stem's first node
    if first < 0:
        raise MorphError(f"the node at {_fmt(m.xyz[j])} um lies on a piece not joined to the soma",
                         file=m.source or None, hint="join it to the soma first (--join)")
    stem = _tree.subtree_mask(m.parent, first)
    types = m.types.copy()
    types[(types == APICAL) & ~stem] = BASAL
    types[stem & np.isin(types, (BASAL, APICAL))] = APICAL
    n, cable = _removed(m, stem & (types == APICAL))
    note = f"edit: apical dendrite set at {_fmt(m.xyz[j])} um: its stem ({n} nodes, {cable:.1f} um)"
    return _retyped(m, types, note)


def set_dendrite(m: Morphology, point: Any, *, snap_um: float = 3.0) -> tuple[Morphology, str]:
    """Label as basal dendrite the axon or apical compartment ``point`` lies on."""
    j = nearest_node(m, point, snap_um=snap_um, what="dendrite point")
    t = int(m.types[j])
    if t not in (AXON, APICAL):
        raise MorphError(f"the node at {_fmt(m.xyz[j])} um is already basal dendrite (type {t})",
                         file=m.source or None, hint="pick a point on the axon or apical dendrite to relabel")
    same = m.types == t
    # the nodes of type t joined to j through nodes of type t: the subtree of the run's first
    # node (the nearest node of type t above j whose parent is of another type), less what
    # hangs below a node of another type
    p = m.parent
    starts = same & ((p < 0) | ~same[np.maximum(p, 0)])
    top = int(_tree.nearest_marked(p, starts)[j])
    above = _tree.nearest_marked(p, ~same)  # each node's nearest node of another type
    ok = _tree.subtree_mask(p, top) & same & (above == above[top])
    types = m.types.copy()
    types[ok] = BASAL
    n, cable = _removed(m, ok)
    name = "axon" if t == AXON else "apical dendrite"
    note = f"edit: the {name} at {_fmt(m.xyz[j])} um relabelled basal dendrite ({n} nodes, {cable:.1f} um)"
    return _retyped(m, types, note)
