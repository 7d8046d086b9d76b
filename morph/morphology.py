"""The :class:`Morphology`: a neuron reconstruction as numpy arrays.

Arrays are the truth; derived structure (children, sections, path distances, branch
orders, soma centre...) is computed once on first use and cached. The arrays are read-only:
every operation returns a new :class:`Morphology`.

Conventions (see ``docs/conventions.md``)
-----------------------------------------
* Nodes are stored with every parent before its children (a topological order); ``parent``
  holds parent *indices* (``-1`` for a root), ``ids`` the identifiers read from the file.
* SWC types: 0 undefined, 1 soma, 2 axon, 3 basal dendrite, 4 apical dendrite, >= 5 custom.
* **Soma centre and radius.** One soma node: its position and radius. The NeuroMorpho
  three-point soma (three soma nodes, the first one the centre): the first node and its
  radius. Any other multi-node soma (a contour or a stack of cylinders): the mean of the
  soma nodes' positions, and the mean distance from that centre to them (NeuroM's
  convention) or, when every node sits on the centre, their mean radius. No soma: NaN.
* **Sections** are maximal unbranched runs of non-soma nodes. A section starts at a node
  whose parent is a root, a soma node, a node with two or more children, or a node of
  another type (a type change starts a new section even without a fork). A section's
  length includes the edge from its first node to the node it hangs from, except when that
  node is a soma node: the soma-to-first-node edge is not neurite (as in the Allen pipeline
  and NeuroM).
* **Branch points** are non-soma nodes with two or more children (multifurcations count
  once); **tips** are non-soma nodes without children.
* **Branch order** of a node is the number of branch points strictly above it on its path to
  the root (a section's nodes share one order; the first sections out of the soma are 0).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from morph import _tree
from morph.errors import MorphologyError

SOMA, AXON, BASAL, APICAL = 1, 2, 3, 4
TYPE_NAMES: dict[int, str] = {
    0: "undefined",
    SOMA: "soma",
    AXON: "axon",
    BASAL: "basal_dendrite",
    APICAL: "apical_dendrite",
}
#: Compartment names accepted wherever a compartment is asked for, and their SWC types.
COMPARTMENTS: dict[str, tuple[int, ...] | None] = {
    "all_neurites": None,  # every non-soma type
    "soma": (SOMA,),
    "axon": (AXON,),
    "basal_dendrite": (BASAL,),
    "apical_dendrite": (APICAL,),
    "dendrite": (BASAL, APICAL),
    "undefined": (0,),
}


def type_name(t: int) -> str:
    """Name of an SWC type (``custom_7`` for a custom type 7)."""
    return TYPE_NAMES.get(int(t), f"custom_{int(t)}")


def compartment_types(name: str | int, present: Iterable[int] = ()) -> tuple[int, ...]:
    """SWC types making up a compartment.

    Parameters
    ----------
    name
        A compartment name (``axon``, ``dendrite``, ``all_neurites``, ``custom_7``...) or an
        SWC type number.
    present
        Types present in the cell; ``all_neurites`` expands to the non-soma ones.
    """
    if isinstance(name, (int, np.integer)):
        return (int(name),)
    key = str(name).strip().lower()
    if key.isdigit():
        return (int(key),)
    if key.startswith("custom_") and key[7:].isdigit():
        return (int(key[7:]),)
    if key not in COMPARTMENTS:
        known = ", ".join(list(COMPARTMENTS) + ["custom_N"])
        raise MorphologyError(f"unknown compartment {name!r}", hint=f"use one of: {known}")
    types = COMPARTMENTS[key]
    if types is None:
        return tuple(sorted(int(t) for t in set(present) if int(t) != SOMA))
    return types


def _readonly(a: NDArray) -> NDArray:
    a.setflags(write=False)
    return a


#: Coordinate units a :class:`Morphology` can be in.
UNITS = ("um", "voxel")
#: Largest whole number a float64 holds exactly; larger integer-valued floats are refused.
_MAX_EXACT_INT = 2.0**53


def _float_array(label: str, values: ArrayLike) -> NDArray[np.float64]:
    """A fresh float64 copy of ``values``, or a :class:`MorphologyError` if they are not
    numbers."""
    try:
        a = np.asarray(values)
        if a.dtype.kind not in "biufO":  # strings, complex numbers, dates...
            raise TypeError(a.dtype)
        return np.array(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MorphologyError(
            f"{label} must be numbers (an array of one shape)", hint=f"give {label} as an array of numbers"
        ) from err


def _int_array(label: str, values: ArrayLike) -> NDArray[np.int64]:
    """A fresh flat int64 copy of ``values``; floats must hold whole numbers."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biu":
        return np.array(values, dtype=np.int64).reshape(-1)
    a = _float_array(label, values).reshape(-1)
    bad = ~(np.abs(a) <= _MAX_EXACT_INT) | (a != np.round(a))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MorphologyError(
            f"{label} must be whole numbers, entry {i} is {a[i]:g}",
            hint=f"give {label} as integers",
        )
    return a.astype(np.int64)


def _voxel_size(voxel_size: Any) -> tuple[float, float, float]:
    """``voxel_size`` as three floats, or a :class:`MorphologyError` unless it is three
    finite positive numbers."""
    try:
        vs = np.asarray(voxel_size, dtype=np.float64)
    except (TypeError, ValueError):
        vs = None
    if vs is None or vs.shape != (3,) or not np.all((vs > 0) & (vs < np.inf)):
        raise MorphologyError(
            f"voxel size must be three finite positive numbers (x, y, z), got {voxel_size!r}",
            hint="give the size of a voxel along x, y and z in micrometres, e.g. (0.5, 0.5, 2)",
        )
    return (float(vs[0]), float(vs[1]), float(vs[2]))


def _check_values(
    xyz: NDArray[np.float64], radius: NDArray[np.float64], types: NDArray[np.int64], ids: NDArray[np.int64]
) -> None:
    """Refuse what no reconstruction holds: non-finite positions, negative or non-finite
    radii, negative types and duplicate ids (the SWC reader refuses the same)."""

    def where(bad: NDArray[np.bool_]) -> str:
        i = int(np.flatnonzero(bad)[0])
        return f"node {i} (id {ids[i]})"

    if not np.isfinite(xyz).all():
        bad = ~np.isfinite(xyz).all(axis=1)
        raise MorphologyError(
            f"{where(bad)} has a non-finite position {xyz[bad][0].tolist()}",
            hint="positions must be real numbers: replace NaN/inf or drop the node",
        )
    if not np.all((radius >= 0) & (radius < np.inf)):
        bad = ~((radius >= 0) & (radius < np.inf))
        raise MorphologyError(
            f"{where(bad)} has radius {radius[bad][0]:g}", hint="radii must be finite numbers >= 0"
        )
    if types.size and types.min() < 0:
        bad = types < 0
        raise MorphologyError(
            f"{where(bad)} has the negative type {types[bad][0]}",
            hint="SWC types are whole numbers >= 0: 0 undefined, 1 soma, 2 axon, "
            "3 basal dendrite, 4 apical dendrite, 5 and up custom",
        )
    if ids.size > 1 and not np.all(ids[1:] > ids[:-1]):  # ascending ids are unique: skip the sort
        s = np.sort(ids)
        dup = s[1:][s[1:] == s[:-1]]
        if dup.size:
            first = np.flatnonzero(ids == dup[0])
            raise MorphologyError(
                f"duplicate id {dup[0]} (nodes {first[0]} and {first[1]})",
                hint="every node needs its own id; pass ids=None to number the nodes 1..n",
            )


class Morphology:
    """A neuron reconstruction: a forest of nodes with positions, radii and SWC types.

    Parameters
    ----------
    xyz
        ``(n, 3)`` node positions (micrometres unless ``units`` says otherwise).
    radius
        ``(n,)`` node radii, same units.
    types
        ``(n,)`` SWC types.
    parent
        ``(n,)`` index of each node's parent, ``-1`` for a root. Any order is accepted; nodes
        are reordered so that parents come first (the original identifiers follow).
    ids
        ``(n,)`` unique integer identifiers (default ``1..n``).
    name, source
        A label and the file the cell came from.
    units
        ``"um"`` or ``"voxel"``.
    voxel_size
        ``(x, y, z)`` voxel size in micrometres (three finite positive numbers), when the
        cell is tied to an image.
    header
        Free-text lines carried to the SWC header on writing.
    check
        Check the values (finite positions, finite radii >= 0, types >= 0, unique ids) and
        the parent links (no cycle). Skip only for arrays already checked (the SWC reader
        checks them as it reads); shapes, units, the voxel size and parent indices are
        always checked.

    Raises
    ------
    MorphologyError
        When an array has the wrong shape or holds what no reconstruction holds (a
        non-finite position, a negative radius or type, a duplicate id, a non-integer
        type, parent or id, a parent out of range, a cycle), or ``units`` or
        ``voxel_size`` is not valid.

    Examples
    --------
    >>> m = Morphology([[0, 0, 0], [0, 10, 0]], [5, 1], [1, 3], [-1, 0])
    >>> float(m.total_length())
    10.0
    """

    def __init__(
        self,
        xyz: ArrayLike,
        radius: ArrayLike,
        types: ArrayLike,
        parent: ArrayLike,
        ids: ArrayLike | None = None,
        *,
        name: str | None = None,
        source: str | None = None,
        units: str = "um",
        voxel_size: Sequence[float] | None = None,
        header: Sequence[str] = (),
        check: bool = True,
    ) -> None:
        xyz = _float_array("xyz", xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            if xyz.size:
                raise MorphologyError(
                    f"xyz must have shape (n, 3), not {xyz.shape}", hint="give one row of x, y, z per node"
                )
            xyz = xyz.reshape(0, 3)
        n = xyz.shape[0]
        radius = _float_array("radius", radius).reshape(-1)
        types = _int_array("types", types)
        parent = _int_array("parent", parent)
        ids = np.arange(1, n + 1, dtype=np.int64) if ids is None else _int_array("ids", ids)
        for label, arr in (("radius", radius), ("types", types), ("parent", parent), ("ids", ids)):
            if arr.shape != (n,):
                raise MorphologyError(
                    f"{label} has {arr.shape[0]} entries for {n} nodes", hint="give one entry per row of xyz"
                )
        if units not in UNITS:
            raise MorphologyError(f"unknown units {units!r}", hint="use 'um' (micrometres) or 'voxel'")
        if voxel_size is not None:
            voxel_size = _voxel_size(voxel_size)
        if n and (parent.min() < -1 or parent.max() >= n):
            i = int(np.flatnonzero((parent < -1) | (parent >= n))[0])
            raise MorphologyError(
                f"node {i} (id {ids[i]}): parent index {parent[i]} out of range",
                hint=f"parents are node indices 0..{n - 1}, or -1 for a root",
            )
        self_parent = parent == np.arange(n)
        if self_parent.any():
            i = int(np.flatnonzero(self_parent)[0])
            raise MorphologyError(
                f"node {i} (id {ids[i]}) is its own parent", hint="give a root the parent -1"
            )
        if check:
            _check_values(xyz, radius, types, ids)
        ordered = n == 0 or bool(np.all(parent < np.arange(n)))  # parents first: no cycle possible
        if check and not ordered:
            cyc = _tree.nodes_in_cycles(parent)
            if cyc.any():
                i = int(np.flatnonzero(cyc)[0])
                raise MorphologyError(
                    f"the parent links contain a cycle (node {i}, id {ids[i]}, never reaches a root)",
                    hint="every chain of parents must end at a root (parent -1)",
                )
        order = None if ordered else _tree.topological_order(parent)
        if order is not None:
            inverse = np.empty(n, dtype=np.int64)
            inverse[order] = np.arange(n)
            p = parent[order]
            parent = np.where(p >= 0, inverse[np.maximum(p, 0)], -1)
            xyz, radius, types, ids = xyz[order], radius[order], types[order], ids[order]
        self.xyz = _readonly(xyz)
        self.radius = _readonly(radius)
        self.types = _readonly(types)
        self.parent = _readonly(parent)
        self.ids = _readonly(ids)
        self.name = name
        self.source = source
        self.units = units
        self.voxel_size = voxel_size
        self.header = list(header)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        parts = ", ".join(f"{type_name(t)}: {c}" for t, c in self.type_counts().items())
        return f"<Morphology{label}: {len(self)} nodes ({parts}), {self.units}>"

    def _derive(self, **changes: Any) -> Morphology:
        """A new Morphology with some arrays or attributes replaced."""
        kw: dict[str, Any] = dict(
            xyz=self.xyz,
            radius=self.radius,
            types=self.types,
            parent=self.parent,
            ids=self.ids,
            name=self.name,
            source=self.source,
            units=self.units,
            voxel_size=self.voxel_size,
            header=self.header,
        )
        kw.update(changes)
        return Morphology(**kw)

    def copy(self) -> Morphology:
        return self._derive()

    @property
    def x(self) -> NDArray[np.float64]:
        return self.xyz[:, 0]

    @property
    def y(self) -> NDArray[np.float64]:
        return self.xyz[:, 1]

    @property
    def z(self) -> NDArray[np.float64]:
        return self.xyz[:, 2]

    def type_counts(self) -> dict[int, int]:
        """Number of nodes of each SWC type."""
        t, c = np.unique(self.types, return_counts=True)
        return {int(a): int(b) for a, b in zip(t, c)}

    def index_of(self, node_id: int) -> int:
        """Array index of the node with identifier ``node_id`` (an integer)."""
        try:
            node_id = operator.index(node_id)
        except TypeError:
            raise MorphologyError(f"node id must be an integer, not {node_id!r}") from None
        hits = np.flatnonzero(self.ids == node_id)
        if not hits.size:
            raise MorphologyError(f"no node with id {node_id}")
        return int(hits[0])

    # ------------------------------------------------------------------ structure
    @cached_property
    def children_csr(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Children of every node as ``(offsets, child_indices)``: the children of node
        ``i`` are ``child_indices[offsets[i]:offsets[i + 1]]``, in index order."""
        off, kids = _tree.children_csr(self.parent)
        return _readonly(off), _readonly(kids)

    def children(self, i: int) -> NDArray[np.int64]:
        """Indices of node ``i``'s children."""
        off, kids = self.children_csr
        return kids[off[i] : off[i + 1]]

    @cached_property
    def n_children(self) -> NDArray[np.int64]:
        """Number of children of every node."""
        return _readonly(np.diff(self.children_csr[0]))

    @cached_property
    def roots(self) -> NDArray[np.int64]:
        """Indices of root nodes (parent ``-1``)."""
        return _readonly(np.flatnonzero(self.parent < 0))

    @cached_property
    def soma_mask(self) -> NDArray[np.bool_]:
        return _readonly(self.types == SOMA)

    @cached_property
    def soma_nodes(self) -> NDArray[np.int64]:
        return _readonly(np.flatnonzero(self.soma_mask))

    @cached_property
    def branch_points(self) -> NDArray[np.int64]:
        """Non-soma nodes with two or more children."""
        return _readonly(np.flatnonzero((self.n_children >= 2) & ~self.soma_mask))

    @cached_property
    def tips(self) -> NDArray[np.int64]:
        """Non-soma nodes without children."""
        return _readonly(np.flatnonzero((self.n_children == 0) & ~self.soma_mask))

    @cached_property
    def edge_vectors(self) -> NDArray[np.float64]:
        """Vector from each node's parent to the node (zero for roots)."""
        v = np.zeros_like(self.xyz)
        has = self.parent >= 0
        v[has] = self.xyz[has] - self.xyz[self.parent[has]]
        return _readonly(v)

    @cached_property
    def edge_length(self) -> NDArray[np.float64]:
        """Length of the edge from each node to its parent (zero for roots)."""
        return _readonly(np.sqrt(np.einsum("ij,ij->i", self.edge_vectors, self.edge_vectors)))

    @cached_property
    def parent_is_soma(self) -> NDArray[np.bool_]:
        has = self.parent >= 0
        out = np.zeros(len(self), dtype=bool)
        out[has] = self.soma_mask[self.parent[has]]
        return _readonly(out)

    @cached_property
    def neurite_edge_length(self) -> NDArray[np.float64]:
        """Edge lengths counted as neurite cable: zero for soma nodes, roots and the edge
        from a soma node to the first node of a neurite."""
        e = np.where(self.soma_mask | self.parent_is_soma, 0.0, self.edge_length)
        return _readonly(e)

    @cached_property
    def path_distance(self) -> NDArray[np.float64]:
        """Path length from the root to every node along the tree, counting every edge
        (the soma-to-first-node edge included; soma-internal edges included)."""
        return _readonly(_tree.ancestor_sum(self.parent, self.edge_length))

    @cached_property
    def depth(self) -> NDArray[np.int64]:
        """Number of edges from every node to its root."""
        return _readonly(_tree.depth(self.parent))

    @cached_property
    def root_index(self) -> NDArray[np.int64]:
        """Index of every node's root."""
        return _readonly(_tree.root_of(self.parent))

    @cached_property
    def branch_order(self) -> NDArray[np.int64]:
        """Number of branch points strictly above every node (0 for soma nodes)."""
        is_bp = np.zeros(len(self), dtype=np.int64)
        is_bp[self.branch_points] = 1
        out = _tree.ancestor_sum(self.parent, is_bp, inclusive=False)
        out[self.soma_mask] = 0
        return _readonly(out)

    # ------------------------------------------------------------------ sections
    @cached_property
    def section_start(self) -> NDArray[np.bool_]:
        """Whether each non-soma node starts a section (see the module conventions)."""
        p = self.parent
        has = p >= 0
        start = ~has.copy()
        pp = p[has]
        start[has] = self.soma_mask[pp] | (self.n_children[pp] >= 2) | (self.types[pp] != self.types[has])
        return _readonly(start & ~self.soma_mask)

    @cached_property
    def section_id(self) -> NDArray[np.int64]:
        """Section index of every node (``-1`` for soma nodes); sections are numbered in
        the order of their first node."""
        starts = np.flatnonzero(self.section_start)
        first = _tree.nearest_marked(self.parent, self.section_start)
        sid = np.full(len(self), -1, dtype=np.int64)
        lookup = np.full(len(self), -1, dtype=np.int64)
        lookup[starts] = np.arange(starts.size)
        ok = ~self.soma_mask
        sid[ok] = lookup[first[ok]]
        return _readonly(sid)

    @cached_property
    def sections(self) -> Sections:
        """Per-section arrays (see :class:`Sections`)."""
        return Sections(self)

    @property
    def n_sections(self) -> int:
        return self.sections.n

    # ------------------------------------------------------------------ soma
    @cached_property
    def _soma(self) -> tuple[NDArray[np.float64], float]:
        s = self.soma_nodes
        if s.size == 0:
            return np.full(3, np.nan), float("nan")
        if s.size == 1:
            return self.xyz[s[0]].copy(), float(self.radius[s[0]])
        if s.size == 3 and self._is_three_point_soma(s):
            return self.xyz[s[0]].copy(), float(self.radius[s[0]])
        c = self.xyz[s].mean(axis=0)
        d = np.linalg.norm(self.xyz[s] - c, axis=1)
        r = float(d.mean()) if d.max() > 1e-9 else float(self.radius[s].mean())
        return c, r

    def _is_three_point_soma(self, s: NDArray[np.int64]) -> bool:
        c, r = self.xyz[s[0]], self.radius[s[0]]
        d1 = self.xyz[s[1]] - c
        d2 = self.xyz[s[2]] - c
        tol = max(1e-6, 1e-3 * r)
        return bool(
            abs(np.linalg.norm(d1) - r) < tol
            and abs(np.linalg.norm(d2) - r) < tol
            and np.allclose(d1, -d2, atol=tol)
            and self.parent[s[1]] == s[0]
            and self.parent[s[2]] == s[0]
        )

    @property
    def soma_center(self) -> NDArray[np.float64]:
        """Soma centre (NaN when there is no soma); see the module conventions."""
        return self._soma[0].copy()

    @property
    def soma_radius(self) -> float:
        """Soma radius (NaN when there is no soma); see the module conventions."""
        return self._soma[1]

    @property
    def soma_kind(self) -> str:
        """``"none"``, ``"single_point"``, ``"three_point"`` or ``"multi_point"``."""
        s = self.soma_nodes
        if s.size == 0:
            return "none"
        if s.size == 1:
            return "single_point"
        if s.size == 3 and self._is_three_point_soma(s):
            return "three_point"
        return "multi_point"

    # ------------------------------------------------------------------ measures
    def compartment_mask(self, compartment: str | int | Sequence[int]) -> NDArray[np.bool_]:
        """Nodes belonging to a compartment name, an SWC type or a list of types."""
        if isinstance(compartment, (list, tuple, np.ndarray)):
            types = tuple(int(t) for t in compartment)
        else:
            types = compartment_types(compartment, self.type_counts())
        return np.isin(self.types, types)

    def total_length(self, compartment: str | int | Sequence[int] = "all_neurites") -> float:
        """Cable length of a compartment, soma-to-first-node edges excluded."""
        mask = self.compartment_mask(compartment)
        return float(self.neurite_edge_length[mask].sum())

    def bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Axis-aligned bounding box ``(min_xyz, max_xyz)`` of the node positions."""
        if not len(self):
            raise MorphologyError("empty morphology has no bounds")
        return self.xyz.min(axis=0), self.xyz.max(axis=0)

    # ------------------------------------------------------------------ networkx
    def to_networkx(self) -> Any:
        """A ``networkx.DiGraph`` view (parent -> child).

        Nodes are keyed by the node ids and carry ``type``, ``xyz`` (tuple), ``x``, ``y``,
        ``z`` and ``radius``; edges carry ``length`` (micrometres when ``units == "um"``).
        Graph attributes: ``name``, ``source``, ``units``, ``voxel_size``.
        """
        import networkx as nx

        g = nx.DiGraph(name=self.name, source=self.source, units=self.units, voxel_size=self.voxel_size)
        ids = self.ids.tolist()
        xyz = self.xyz.tolist()
        g.add_nodes_from(
            (
                ids[i],
                {
                    "type": int(t),
                    "xyz": tuple(xyz[i]),
                    "x": xyz[i][0],
                    "y": xyz[i][1],
                    "z": xyz[i][2],
                    "radius": float(r),
                },
            )
            for i, (t, r) in enumerate(zip(self.types.tolist(), self.radius.tolist()))
        )
        has = np.flatnonzero(self.parent >= 0)
        pid = self.ids[self.parent[has]].tolist()
        cid = self.ids[has].tolist()
        lengths = self.edge_length[has].tolist()
        g.add_edges_from((p, c, {"length": w}) for p, c, w in zip(pid, cid, lengths))
        return g

    @classmethod
    def from_networkx(cls, g: Any) -> Morphology:
        """Build a Morphology from a ``networkx.DiGraph`` (edges parent -> child).

        Nodes carry ``xyz`` (a sequence of three numbers; or ``x``, ``y``, ``z``),
        ``radius`` and ``type`` (an SWC type number); a missing attribute is 0. Integer node
        keys are kept as ids; other keys are numbered 1..n.

        Raises
        ------
        MorphologyError
            When ``g`` is not directed, a node has two parents, or an attribute is not a
            number (or, for ``xyz``, three numbers); the message names the node.
        """
        if not (hasattr(g, "is_directed") and hasattr(g, "nodes") and hasattr(g, "edges")):
            raise MorphologyError(f"from_networkx needs a networkx.DiGraph, not {type(g).__name__}")
        if not g.is_directed():
            raise MorphologyError(
                f"from_networkx needs a directed graph (edges parent -> child), got an undirected "
                f"{type(g).__name__}",
                hint="orient it from its root, keeping the attributes: "
                "d = networkx.bfs_tree(g, root); d.add_nodes_from(g.nodes(data=True))",
            )
        nodes = list(g.nodes)
        two = [v for v in nodes if g.in_degree(v) > 1]
        if two:
            raise MorphologyError(
                f"graph is not a forest: node {two[0]!r} has {g.in_degree(two[0])} parents",
                hint="every node needs at most one incoming edge (from its parent)",
            )
        index = {v: i for i, v in enumerate(nodes)}
        n = len(nodes)
        xyz = np.zeros((n, 3))
        radius = np.zeros(n)
        types = np.zeros(n, dtype=np.int64)
        parent = np.full(n, -1, dtype=np.int64)

        def number(v: Any, attr: str, value: Any, *, integer: bool = False) -> Any:
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            if ok and integer and not float(value).is_integer():
                ok = False
            if not ok:
                what = "an SWC type number (0, 1 soma, 2 axon, 3, 4, 5+)" if integer else "a number"
                raise MorphologyError(f"node {v!r}: {attr} {value!r} is not {what}")
            return int(value) if integer else float(value)

        for v, i in index.items():
            d = g.nodes[v]
            if "xyz" in d:
                p = d["xyz"]
                if isinstance(p, (str, bytes)) or np.ndim(p) != 1 or np.size(p) != 3:
                    raise MorphologyError(f"node {v!r}: xyz {p!r} is not three numbers (x, y, z)")
                xyz[i] = [number(v, "xyz", c) for c in p]
            else:
                xyz[i] = [number(v, a, d.get(a, 0.0)) for a in ("x", "y", "z")]
            radius[i] = number(v, "radius", d.get("radius", 0.0))
            types[i] = number(v, "type", d.get("type", 0), integer=True)
        for attr, bad, rule in (
            ("xyz", ~np.isfinite(xyz).all(axis=1), "positions must be finite numbers"),
            ("radius", ~((radius >= 0) & (radius < np.inf)), "radii must be finite numbers >= 0"),
            ("type", types < 0, "SWC types are whole numbers >= 0"),
        ):
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                value = {"xyz": xyz[i].tolist(), "radius": float(radius[i]), "type": int(types[i])}[attr]
                raise MorphologyError(f"node {nodes[i]!r}: {attr} {value!r} is not valid", hint=rule)
        for u, v in g.edges():
            parent[index[v]] = index[u]
        ids = nodes if all(isinstance(v, (int, np.integer)) for v in nodes) else None
        gd = g.graph
        return cls(
            xyz,
            radius,
            types,
            parent,
            ids,
            name=gd.get("name"),
            source=gd.get("source"),
            units=gd.get("units") or "um",
            voxel_size=gd.get("voxel_size"),
        )

    # ------------------------------------------------------------------ selection
    def take(self, keep: NDArray[np.bool_] | NDArray[np.int64], **changes: Any) -> Morphology:
        """Keep a subset of nodes. A kept node whose parent is dropped is attached to its
        nearest kept ancestor (or becomes a root)."""
        mask = np.zeros(len(self), dtype=bool)
        mask[keep] = True
        anc = _tree.nearest_marked(self.parent, mask)
        # nearest kept *strict* ancestor: the nearest kept node from the parent up
        p = self.parent
        up = np.where(p >= 0, anc[np.maximum(p, 0)], -1)
        newidx = np.full(len(self), -1, dtype=np.int64)
        newidx[mask] = np.arange(int(mask.sum()))
        newparent = np.where(up[mask] >= 0, newidx[np.maximum(up[mask], 0)], -1)
        return self._derive(
            xyz=self.xyz[mask],
            radius=self.radius[mask],
            types=self.types[mask],
            parent=newparent,
            ids=self.ids[mask],
            **changes,
        )

    def subtree(self, node: int, *, by_id: bool = False) -> Morphology:
        """The subtree rooted at node index ``node`` (or id, with ``by_id=True``); an
        index or id must be an integer (Python or numpy)."""
        i = self.index_of(node) if by_id else self._index(node)
        return self.take(_tree.subtree_mask(self.parent, i))

    def select(self, compartment: str | int | Sequence[int], *, keep_soma: bool = True) -> Morphology:
        """Only the nodes of a compartment (plus the soma, unless ``keep_soma=False``).

        A neurite that hangs off another compartment (an axon leaving a dendrite) is
        attached to the nearest kept ancestor, so the result is still one tree.
        """
        mask = self.compartment_mask(compartment)
        if keep_soma:
            mask |= self.soma_mask
        return self.take(mask)

    def cut(self, node: int, *, by_id: bool = False) -> tuple[Morphology, Morphology]:
        """Cut above ``node``: returns ``(rest, removed)`` where ``removed`` is the subtree
        rooted at ``node``."""
        i = self.index_of(node) if by_id else self._index(node)
        sub = _tree.subtree_mask(self.parent, i)
        return self.take(~sub), self.take(sub)

    def _index(self, node: Any) -> int:
        """``node`` as a valid node index: an integer (Python or numpy) in ``0..n-1``."""
        try:
            i = operator.index(node)
        except TypeError:
            raise MorphologyError(
                f"node index must be an integer, not {node!r}",
                hint="give the array index of the node (or its id with by_id=True)",
            ) from None
        if not 0 <= i < len(self):
            raise MorphologyError(f"node index {i} out of range (0..{len(self) - 1})")
        return i

    # ------------------------------------------------------------------ geometry
    def transform(self, matrix: ArrayLike, *, radius_scale: float | None = None) -> Morphology:
        """Apply a 3x3 linear or 4x4 affine transform to the positions.

        Radii are multiplied by ``radius_scale`` (default: the cube root of the absolute
        determinant of the linear part, i.e. the mean scale).
        """
        mat = np.asarray(matrix, dtype=np.float64)
        if mat.shape == (3, 3):
            lin, shift = mat, np.zeros(3)
        elif mat.shape == (4, 4):
            lin, shift = mat[:3, :3], mat[:3, 3]
        else:
            raise MorphologyError(f"transform must be 3x3 or 4x4, not {mat.shape}")
        if radius_scale is None:
            radius_scale = float(abs(np.linalg.det(lin)) ** (1.0 / 3.0))
        return self._derive(xyz=self.xyz @ lin.T + shift, radius=self.radius * radius_scale)

    def translate(self, offset: ArrayLike) -> Morphology:
        """Shift every node by ``offset`` (x, y, z)."""
        return self._derive(xyz=self.xyz + np.asarray(offset, dtype=np.float64).reshape(3))

    def rotate(self, matrix: ArrayLike, *, center: ArrayLike | None = None) -> Morphology:
        """Rotate by a 3x3 rotation matrix about ``center`` (default: the soma centre, or
        the origin when there is no soma)."""
        rot = np.asarray(matrix, dtype=np.float64)
        if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
            raise MorphologyError("rotation must be an orthonormal 3x3 matrix")
        c = self.soma_center if center is None else np.asarray(center, dtype=np.float64)
        if np.isnan(c).any():
            c = np.zeros(3)
        return self._derive(xyz=(self.xyz - c) @ rot.T + c)

    def scale(self, factors: float | Sequence[float], *, radius_scale: float | None = None) -> Morphology:
        """Scale positions by one factor or per axis (x, y, z); radii by ``radius_scale``
        (default: the geometric mean of the factors)."""
        f = np.broadcast_to(np.asarray(factors, dtype=np.float64), (3,))
        rs = float(np.prod(np.abs(f)) ** (1.0 / 3.0)) if radius_scale is None else radius_scale
        return self._derive(xyz=self.xyz * f, radius=self.radius * rs)

    def to_micrometres(self, voxel_size: Sequence[float] | None = None) -> Morphology:
        """Convert voxel coordinates to micrometres with ``voxel_size`` (x, y, z).

        Radii are scaled by the in-plane (x) voxel size, since radii of neurites are
        measured across the optical axis. ``voxel_size`` defaults to the cell's own and must
        be three finite positive numbers (:class:`MorphologyError` otherwise).
        """
        if self.units == "um":
            return self
        vs = self._conversion_voxel_size(voxel_size)
        return self._derive(
            xyz=self.xyz * np.asarray(vs),
            radius=self.radius * vs[0],
            units="um",
            voxel_size=vs,
        )

    def to_voxels(self, voxel_size: Sequence[float] | None = None) -> Morphology:
        """Convert micrometre coordinates to voxel indices (the inverse of
        :meth:`to_micrometres`); ``voxel_size`` as there."""
        if self.units == "voxel":
            return self
        vs = self._conversion_voxel_size(voxel_size)
        return self._derive(
            xyz=self.xyz / np.asarray(vs),
            radius=self.radius / vs[0],
            units="voxel",
            voxel_size=vs,
        )

    def _conversion_voxel_size(self, voxel_size: Sequence[float] | None) -> tuple[float, float, float]:
        """The voxel size to convert with: ``voxel_size``, else the cell's own."""
        vs = self.voxel_size if voxel_size is None else voxel_size
        if vs is None:
            raise MorphologyError("voxel size unknown", hint="give the voxel size (x, y, z) in um")
        return _voxel_size(vs)

    # ------------------------------------------------------------------ rebuilding
    def renumber(self) -> Morphology:
        """Depth-first order (children in index order), ids ``1..n``: the order in which
        :func:`morph.io.write_swc` writes."""
        order = self.dfs_order()
        inverse = np.empty(len(self), dtype=np.int64)
        inverse[order] = np.arange(len(self))
        p = self.parent[order]
        newparent = np.where(p >= 0, inverse[np.maximum(p, 0)], -1)
        return self._derive(
            xyz=self.xyz[order],
            radius=self.radius[order],
            types=self.types[order],
            parent=newparent,
            ids=np.arange(1, len(self) + 1),
        )

    def dfs_order(self) -> NDArray[np.int64]:
        """Depth-first pre-order of the nodes; roots and siblings visited in id order (so
        the order does not depend on the order of lines in the file)."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import depth_first_order

        n = len(self)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        # work in id-rank space so csgraph's column order is id order
        perm = np.argsort(self.ids, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[perm] = np.arange(n)
        has = self.parent >= 0
        roots = rank[self.roots]
        # a virtual super-root (n) links to every root so one traversal covers all trees
        src = np.concatenate([rank[self.parent[has]], np.full(roots.size, n)])
        dst = np.concatenate([rank[np.flatnonzero(has)], roots])
        g = csr_matrix((np.ones(src.size), (src, dst)), shape=(n + 1, n + 1))
        g.sort_indices()
        order = depth_first_order(g, n, directed=True, return_predecessors=False)
        return perm[order[1:]].astype(np.int64)

    def merge(self, other: Morphology, *, attach_to: int | None = None) -> Morphology:
        """Combine two reconstructions into one.

        ``other``'s roots become children of node index ``attach_to`` of this cell, or stay
        roots when ``attach_to`` is ``None``. Ids of ``other`` are shifted past this cell's.
        """
        if other.units != self.units:
            raise MorphologyError(f"cannot merge {self.units} with {other.units} coordinates")
        n = len(self)
        if attach_to is not None:
            attach_to = self._index(attach_to)
        op = other.parent + n
        op[other.parent < 0] = -1 if attach_to is None else attach_to
        shift = (int(self.ids.max()) if n else 0) - int(other.ids.min() if len(other) else 0) + 1
        return self._derive(
            xyz=np.vstack([self.xyz, other.xyz]),
            radius=np.concatenate([self.radius, other.radius]),
            types=np.concatenate([self.types, other.types]),
            parent=np.concatenate([self.parent, op]),
            ids=np.concatenate([self.ids, other.ids + shift]),
        )

    def resample(self, spacing: float) -> Morphology:
        """Resample every section at (close to) ``spacing``.

        Soma nodes, roots, branch points and tips are kept exactly; the nodes in between are
        replaced by points evenly spaced along the original polyline (the spacing of each
        section is its length divided by ``round(length / spacing)``), with radii linearly
        interpolated. A section of zero length (coincident points) keeps its end node, so
        the topology never changes. A cell of soma nodes only has nothing to resample and is
        returned as it is.
        """
        if not spacing > 0:
            raise MorphologyError(f"resampling spacing must be positive, got {spacing}")
        if self.soma_mask.all():  # no node, or soma nodes only: no section to resample
            return self.copy()
        sec = self.sections
        # kept as they are: soma nodes, roots and the first node out of the soma (so the
        # soma-to-first-node edge stays what it was, and stays out of neurite length)
        own_start = (self.parent < 0) | self.parent_is_soma
        anchor = self.soma_mask | own_start
        # non-soma nodes, each section contiguous and in path order
        nodes = np.flatnonzero(~self.soma_mask)
        nodes = nodes[np.lexsort((self.depth[nodes], self.section_id[nodes]))]
        sid = self.section_id[nodes]
        el = np.where(own_start[nodes], 0.0, self.edge_length[nodes])
        first = np.r_[True, sid[1:] != sid[:-1]]
        cum = np.cumsum(el)
        arc = cum - np.repeat((cum - el)[first], np.diff(np.r_[np.flatnonzero(first), nodes.size]))
        first_pos = np.flatnonzero(first)
        last_pos = np.r_[first_pos[1:] - 1, nodes.size - 1]
        length = arc[last_pos]  # full polyline length, soma edge included
        root_start = own_start[sec.start]
        nseg = np.maximum(1, np.rint(length / spacing).astype(np.int64))
        # a root or first node out of the soma that is its section's only node is kept as an
        # anchor and has nothing after it to sample; any other section (even of zero length:
        # coincident points) keeps at least its end node, which children may hang from
        nseg[root_start & (sec.start == sec.end)] = 0
        tot = int(nseg.sum())
        s_of = np.repeat(np.arange(sec.n), nseg)
        j = np.arange(tot) - np.repeat(np.cumsum(nseg) - nseg, nseg) + 1
        target = length[s_of] * j / np.maximum(nseg[s_of], 1)
        big = 2.0 * (float(length.max(initial=0.0)) + 1.0)
        pos = np.searchsorted(arc + sid * big, target + s_of * big, side="left")
        pos = np.clip(pos, first_pos[s_of], last_pos[s_of])
        hi = nodes[pos]
        at_first = pos == first_pos[s_of]
        lo = np.where(at_first, self.parent[hi], nodes[np.maximum(pos - 1, 0)])
        lo = np.where(lo >= 0, lo, hi)
        lo_arc = np.where(at_first, 0.0, arc[np.maximum(pos - 1, 0)])
        span = arc[pos] - lo_arc
        t = np.clip(np.divide(target - lo_arc, span, out=np.ones_like(span), where=span > 0), 0, 1)
        xyz_s = self.xyz[lo] * (1 - t)[:, None] + self.xyz[hi] * t[:, None]
        r_s = self.radius[lo] * (1 - t) + self.radius[hi] * t
        is_last = j == nseg[s_of]
        xyz_s[is_last] = self.xyz[sec.end[s_of[is_last]]]
        r_s[is_last] = self.radius[sec.end[s_of[is_last]]]
        # kept nodes first (soma and roots, in their order), then the samples
        kept = np.flatnonzero(anchor)
        m = kept.size
        old_new = np.full(len(self), -1, dtype=np.int64)
        old_new[kept] = np.arange(m)
        end_new = np.where(nseg > 0, m + np.cumsum(nseg) - 1, old_new[sec.end])
        hang = np.where(root_start, sec.start, self.parent[sec.start])
        hang_new = np.where(anchor[hang], old_new[hang], end_new[np.maximum(self.section_id[hang], 0)])
        new_parent = np.where(j == 1, hang_new[s_of], m + np.arange(tot) - 1)
        pk = self.parent[kept]
        kept_parent = np.where(pk >= 0, old_new[np.maximum(pk, 0)], -1)
        # a soma node hanging from a neurite node (a tracing that reaches the soma from a
        # neurite): that node ends its section, so hang from the section's resampled end
        via = (pk >= 0) & ~anchor[np.maximum(pk, 0)]
        kept_parent[via] = end_new[self.section_id[pk[via]]]
        return self._derive(
            xyz=np.vstack([self.xyz[kept], xyz_s]),
            radius=np.concatenate([self.radius[kept], r_s]),
            types=np.concatenate([self.types[kept], sec.type[s_of]]),
            parent=np.concatenate([kept_parent, new_parent]),
            ids=np.arange(1, m + tot + 1),
        )


class Sections:
    """Per-section arrays of a :class:`Morphology` (``n`` sections).

    Attributes
    ----------
    start, end
        Index of the first and last node of each section.
    parent
        Parent section (``-1`` when the section hangs from the soma or a root).
    hang
        Node the section hangs from (the parent of its first node; ``-1`` for a root).
    type
        SWC type of the section's nodes.
    length
        Cable length, including the edge to the hanging node unless that node is a soma
        node.
    n_nodes
        Number of nodes in the section.
    branch_order
        Number of branch points between the section and the soma.
    """

    def __init__(self, m: Morphology) -> None:
        sid = m.section_id
        self.start = _readonly(np.flatnonzero(m.section_start))
        n = self.start.size
        self.n = n
        valid = sid >= 0
        # last node: a node of the section whose children are not in the same section
        last = np.zeros(len(m), dtype=bool)
        last[valid] = m.n_children[valid] != 1
        one_child = valid & (m.n_children == 1)
        if one_child.any():
            off, kids = m.children_csr
            child = kids[off[np.flatnonzero(one_child)]]
            last[np.flatnonzero(one_child)[sid[child] != sid[one_child]]] = True
        end = np.full(n, -1, dtype=np.int64)
        end[sid[last]] = np.flatnonzero(last)
        self.end = _readonly(end)
        self.hang = _readonly(m.parent[self.start].copy())
        h = self.hang
        parent = np.full(n, -1, dtype=np.int64)
        ok = h >= 0
        parent[ok] = sid[h[ok]]
        self.parent = _readonly(parent)
        self.type = _readonly(m.types[self.start].copy())
        self.length = _readonly(np.bincount(sid[valid], weights=m.neurite_edge_length[valid], minlength=n))
        self.n_nodes = _readonly(np.bincount(sid[valid], minlength=n))
        self.branch_order = _readonly(m.branch_order[self.start].copy())

    def children_count(self) -> NDArray[np.int64]:
        """Number of child sections of each section."""
        ok = self.parent >= 0
        return np.bincount(self.parent[ok], minlength=self.n)
