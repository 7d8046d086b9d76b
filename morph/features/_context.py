"""Per-cell cache shared by the features: soma, compartments, path distances, sections.

Everything here is computed once per cell, on first use, with array operations over the
:class:`~morph.morphology.Morphology` arrays (no per-node Python loops).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph import _tree
from morph.errors import MorphError
from morph.features.registry import NotApplicable
from morph.morphology import SOMA, Morphology, compartment_types

CONVENTIONS = ("allen", "neurom")


class Compartment:
    """The nodes of one compartment and the forest they induce.

    Attributes
    ----------
    name
        Compartment name (``axon``, ``dendrite``, ``custom_7``...).
    types
        SWC types in the compartment.
    mask
        Nodes of the compartment.
    idx
        Their indices.
    inner
        Nodes of the compartment whose parent is in the compartment too (their edge to the
        parent is a *compartment edge*, Allen's "compartment").
    roots
        Nodes of the compartment whose parent is not (or that have none).
    typed_children
        Number of children in the compartment, for every node of the cell.
    """

    def __init__(self, m: Morphology, name: str) -> None:
        self.name = name
        present = m.type_counts()
        if name == "all_neurites":
            self.types = tuple(sorted(t for t in present if t != SOMA))
            self.mask = ~m.soma_mask
        else:
            self.types = compartment_types(name, present)
            self.mask = np.isin(m.types, self.types)
        self.idx = np.flatnonzero(self.mask)
        p = m.parent
        has = p >= 0
        pin = np.zeros(len(m), dtype=bool)
        pin[has] = self.mask[p[has]]
        self.inner = self.mask & pin
        self.roots = np.flatnonzero(self.mask & ~pin)
        self.typed_children = np.bincount(p[self.inner], minlength=len(m))

    @property
    def n(self) -> int:
        return int(self.idx.size)

    def require(self) -> None:
        """Raise :class:`NotApplicable` when the compartment has no node."""
        if self.n == 0:
            raise NotApplicable(f"the cell has no {self.name} nodes")


class Context:
    """Shared per-cell arrays for the features of one :class:`Morphology`.

    Parameters
    ----------
    m
        The cell.
    convention
        ``"allen"`` (default; the Allen Cell Types pipeline definitions) or ``"neurom"``
        (NeuroM's). See ``docs/conventions.md``.
    """

    def __init__(self, m: Morphology, convention: str = "allen") -> None:
        if convention not in CONVENTIONS:
            raise MorphError(f"unknown convention {convention!r}", hint="use 'allen' or 'neurom'")
        if m.units != "um":
            raise MorphError(
                "features need micrometre coordinates",
                file=m.source,
                hint="convert with Morphology.to_micrometres(voxel_size) first",
            )
        self.m = m
        self.convention = convention
        self._comps: dict[str, Compartment] = {}
        self.cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ compartments
    def comp(self, name: str) -> Compartment:
        c = self._comps.get(name)
        if c is None:
            c = self._comps[name] = Compartment(self.m, name)
        return c

    def coords(self, comp: Compartment) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(xyz, lo, hi)``: node positions of a compartment and their bounds (cached)."""
        key = ("coords", comp.name)
        if key not in self.cache:
            xyz = self.m.xyz[comp.idx]
            self.cache[key] = (xyz, xyz.min(axis=0), xyz.max(axis=0)) if xyz.size else (xyz, None, None)
        return self.cache[key]

    # ------------------------------------------------------------------ soma
    @cached_property
    def soma_roots(self) -> NDArray[np.int64]:
        """Soma nodes whose parent is not a soma node (one per connected piece of soma)."""
        m = self.m
        return np.flatnonzero(m.soma_mask & ~m.parent_is_soma)

    @property
    def has_soma(self) -> bool:
        """Whether the cell has a soma node."""
        return bool(self.m.soma_nodes.size)

    @cached_property
    def soma_index(self) -> int:
        """The soma node features measure from: the root of the soma when the soma nodes
        form one connected piece (the only soma node, the first node of a three-point soma,
        the first node of a stack of cylinders: the Allen pipeline's root soma node and
        NeuroM's soma centre for SWC somas). -1 when there is no soma, or when the soma
        nodes form several pieces (a contour written as separate points): the centre is
        then their centroid, which no node carries (:attr:`soma_center`). Either way it
        depends on the tree, never on the order of the nodes in the file."""
        r = self.soma_roots
        return int(r[0]) if r.size == 1 else -1

    def require_soma(self) -> None:
        """Raise :class:`NotApplicable` when the cell has no soma node."""
        if not self.has_soma:
            raise NotApplicable("the cell has no soma node")

    @cached_property
    def soma_center(self) -> NDArray[np.float64]:
        """Soma centre used by features: the position of :attr:`soma_index`, or, for a soma
        of several separate pieces, the centroid of the soma nodes
        (:attr:`Morphology.soma_center <morph.morphology.Morphology.soma_center>`). NaN
        without soma."""
        if not self.has_soma:
            return np.full(3, np.nan)
        if self.soma_index < 0:
            return np.asarray(self.m.soma_center, dtype=np.float64).copy()
        return self.m.xyz[self.soma_index].copy()

    @cached_property
    def soma_kind(self) -> str:
        """``none``, ``single_point``, ``three_point``, ``multi_point`` (one connected piece:
        NeuroM's stack of cylinders) or ``contour`` (several separate soma pieces)."""
        if self.has_soma and self.soma_index < 0:
            return "contour"
        return self.m.soma_kind

    @cached_property
    def soma_cylinders(self) -> tuple[float, float]:
        """Lateral area and volume of the soma-to-soma frusta (NeuroM's cylinder soma)."""
        m = self.m
        e = m.soma_mask & m.parent_is_soma
        r0 = m.radius[e]
        r1 = m.radius[m.parent[e]]
        h = m.edge_length[e]
        area = float(np.sum(np.pi * (r0 + r1) * np.sqrt((r0 - r1) ** 2 + h**2)))
        vol = float(np.sum(np.pi * h * (r0**2 + r0 * r1 + r1**2) / 3.0))
        return area, vol

    @cached_property
    def soma_radius(self) -> float:
        """Allen: radius of :attr:`soma_index`. NeuroM: that radius for single-point and
        three-point somas, ``sqrt(area / 4 pi)`` of the soma cylinders for a stack. A soma
        of several separate pieces (both conventions): the mean distance from the centroid
        to the soma nodes (NeuroM's contour radius;
        :attr:`Morphology.soma_radius <morph.morphology.Morphology.soma_radius>`)."""
        if not self.has_soma:
            return float("nan")
        i = self.soma_index
        if i < 0:
            return float(self.m.soma_radius)
        if self.convention == "neurom" and self.soma_kind == "multi_point":
            area, _ = self.soma_cylinders
            if area > 0:
                return float(np.sqrt(area / (4 * np.pi)))
        return float(self.m.radius[i])

    # ------------------------------------------------------------------ distances
    @cached_property
    def dist_to_soma(self) -> NDArray[np.float64]:
        """Euclidean distance of every node to the soma centre."""
        self.require_soma()
        d = self.m.xyz - self.soma_center
        return np.sqrt(np.einsum("ij,ij->i", d, d))

    @cached_property
    def _path_sums(self) -> NDArray[np.float64]:
        """One pointer-jumping pass for three sums along the path from the root: soma path
        length, neurite path length and number of forking non-root nodes above."""
        m = self.m
        vals = np.empty((len(m), 3))
        vals[:, 0] = np.where(m.soma_mask, 0.0, m.edge_length)
        vals[:, 1] = m.neurite_edge_length
        vals[:, 2] = 0.0
        p = m.parent
        has = p >= 0
        is_fork = (m.n_children > 1) & has
        # forks strictly above a node = forks at or above its parent
        vals[has, 2] = is_fork[p[has]]
        return _tree.ancestor_sum(m.parent, vals)

    @cached_property
    def soma_path(self) -> NDArray[np.float64]:
        """Path distance from the soma along the tree, the soma-to-first-node edge
        included and soma-internal edges left out (Allen's max_path_distance)."""
        return np.ascontiguousarray(self._path_sums[:, 0])

    @cached_property
    def neurite_path(self) -> NDArray[np.float64]:
        """Path distance from the first node of each neurite, soma edges left out (NeuroM)."""
        return np.ascontiguousarray(self._path_sums[:, 1])

    @cached_property
    def forks_above(self) -> NDArray[np.int64]:
        """Number of non-root nodes with 2+ children (any type) strictly above each node."""
        return np.rint(self._path_sums[:, 2]).astype(np.int64)

    # ------------------------------------------------------------------ sections
    @cached_property
    def sec_depth(self) -> NDArray[np.int64]:
        """Depth of every section in the section tree (0 for root sections)."""
        return _tree.depth(self.m.sections.parent)

    @cached_property
    def sec_levels(self) -> list[NDArray[np.int64]]:
        """Non-root sections grouped by depth, deepest first (for bottom-up sweeps)."""
        d = self.sec_depth
        if d.size == 0:
            return []
        order = np.argsort(-d, kind="stable")
        ds = d[order]
        cuts = np.flatnonzero(np.diff(ds)) + 1
        groups = np.split(order, cuts)
        return [g for g in groups if g.size and d[g[0]] > 0]

    def upsweep(self, values: NDArray, op: str = "add") -> NDArray:
        """Accumulate per-section ``values`` over every section's subtree (``add`` or
        ``max``), one vectorised step per section-tree level."""
        out = np.array(values, dtype=np.float64, copy=True)
        par = self.m.sections.parent
        ufunc = np.add if op == "add" else np.maximum
        for g in self.sec_levels:
            ufunc.at(out, par[g], out[g])
        return out

    @cached_property
    def sec_subtree_sections(self) -> NDArray[np.float64]:
        """Number of sections in every section's subtree (itself included)."""
        return self.upsweep(np.ones(self.m.sections.n))

    @cached_property
    def sec_subtree_max_soma_path(self) -> NDArray[np.float64]:
        """Largest :attr:`soma_path` in every section's subtree."""
        return self.upsweep(self.soma_path[self.m.sections.end], op="max")

    @cached_property
    def sec_subtree_length(self) -> NDArray[np.float64]:
        """Cable length of every section's subtree."""
        return self.upsweep(self.m.sections.length)

    @cached_property
    def children_csr(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        return self.m.children_csr

    @cached_property
    def section_nodes(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Non-soma nodes sorted by (section, depth), and each section's offset in that
        list: the nodes of section ``s`` from its first to its last are
        ``nodes[off[s]:off[s + 1]]``."""
        m = self.m
        nodes = np.flatnonzero(~m.soma_mask)
        order = nodes[np.lexsort((m.depth[nodes], m.section_id[nodes]))]
        off = np.searchsorted(m.section_id[order], np.arange(m.sections.n + 1))
        return order, off


def pick(candidates: NDArray[np.int64], *keys: NDArray[np.float64], rtol: float = 1e-9) -> int:
    """The candidate that comes first by ``keys`` (each lower is better; NaN last).

    Values within ``rtol`` (relative) of the best count as equal, so that rounding in
    sums taken in storage order never decides. Callers end their keys with the node
    position (x, y, z), so that only candidates identical by every key are left to their
    storage order.

    Parameters
    ----------
    candidates
        Node indices (at least one).
    *keys
        One array per key, aligned with ``candidates``.
    rtol
        Relative tolerance for ties.

    Returns
    -------
    int
        The chosen node index.
    """
    keep = np.arange(candidates.size)
    for k in keys:
        if keep.size == 1:
            break
        v = np.asarray(k, dtype=np.float64)[keep]
        v = np.where(np.isnan(v), np.inf, v)
        best = v.min()
        if not np.isfinite(best):
            continue
        keep = keep[v <= best + rtol * max(1.0, abs(best))]
    return int(candidates[keep[0]])
