"""Vectorised primitives on trees stored as parent-index arrays.

A tree (or forest) of ``n`` nodes is an ``int64`` array ``parent`` where ``parent[i]`` is the
index of node ``i``'s parent and ``-1`` marks a root. The functions here use pointer jumping
(each round doubles the span every node has summed over), so they cost ``O(n log depth)``
array work with no per-node Python loop.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


def ancestor_sum(parent: IntArray, values: NDArray, *, inclusive: bool = True) -> NDArray:
    """Sum ``values`` over every node on the path from each node up to its root.

    Parameters
    ----------
    parent
        Parent index per node, ``-1`` for roots. Must be acyclic.
    values
        One value per node.
    inclusive
        Whether a node's own value counts.

    Returns
    -------
    ndarray
        ``out[i] = sum(values[j] for j on the path from i to its root)``.
    """
    total = np.array(values, copy=True)
    anc = np.array(parent, dtype=np.int64, copy=True)
    active = np.flatnonzero(anc >= 0)
    while active.size:
        up = anc[active]
        total[active] += total[up]
        anc[active] = anc[up]
        active = active[anc[active] >= 0]
    if inclusive:
        return total
    out = np.zeros_like(total)
    has_parent = parent >= 0
    out[has_parent] = total[parent[has_parent]]
    return out


def depth(parent: IntArray) -> IntArray:
    """Number of edges from each node to its root."""
    return ancestor_sum(parent, (parent >= 0).astype(np.int64))


def nearest_marked(parent: IntArray, mark: NDArray[np.bool_]) -> IntArray:
    """Index of the nearest marked node on the path from each node to its root (itself
    included), or ``-1`` when no node on that path is marked."""
    n = parent.size
    ptr = np.where(mark, np.arange(n), parent).astype(np.int64)
    while True:
        live = np.flatnonzero(ptr >= 0)
        live = live[~mark[ptr[live]]]
        if not live.size:
            return ptr
        ptr[live] = ptr[ptr[live]]


def root_of(parent: IntArray) -> IntArray:
    """Index of each node's root."""
    return nearest_marked(parent, parent < 0)


def nodes_in_cycles(parent: IntArray) -> NDArray[np.bool_]:
    """Mark nodes whose chain of parents never reaches a root (a cycle or a path into one).

    Works on arbitrary parent arrays (cycles allowed): after ``ceil(log2 n) + 1`` doubling
    rounds every acyclic node has reached its root.
    """
    n = parent.size
    anc = np.array(parent, dtype=np.int64, copy=True)
    for _ in range(int(np.ceil(np.log2(max(n, 2)))) + 1):
        live = anc >= 0
        if not live.any():
            break
        anc[live] = anc[anc[live]]
    return anc >= 0


def topological_order(parent: IntArray) -> IntArray | None:
    """A permutation putting every parent before its children, or ``None`` when the
    nodes already are in such an order."""
    n = parent.size
    if n == 0 or bool(np.all(parent < np.arange(n))):
        return None
    return np.argsort(depth(parent), kind="stable")


def children_csr(parent: IntArray) -> tuple[IntArray, IntArray]:
    """Children of every node as a CSR pair ``(offsets, child_indices)``; the children of
    node ``i`` are ``child_indices[offsets[i]:offsets[i + 1]]``, in index order."""
    n = parent.size
    has = parent >= 0
    kids = np.flatnonzero(has)
    order = np.argsort(parent[kids], kind="stable")
    kids = kids[order]
    counts = np.bincount(parent[has], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, kids.astype(np.int64)


def subtree_mask(parent: IntArray, node: int) -> NDArray[np.bool_]:
    """Nodes in the subtree rooted at ``node`` (``node`` included)."""
    mark = np.zeros(parent.size, dtype=bool)
    mark[node] = True
    return nearest_marked(parent, mark) == node
