"""Distributions in the NeuroM manner: one value per section, bifurcation, segment or tip.

Sections are those of :attr:`Morphology.sections` (maximal unbranched runs; a section
includes the edge to the node it hangs from unless that node is a soma node). A section
belongs to a compartment by its type. In tables, each distribution is summarised as
``<name>_mean``, ``<name>_median`` and ``<name>_max``.
"""

from __future__ import annotations

import numpy as np

from morph import _tree
from morph.features._context import Compartment, Context
from morph.features.angles import local_angles, remote_angles
from morph.features.registry import feature


def _sections(ctx: Context, comp: Compartment) -> np.ndarray:
    key = ("sections", comp.name)
    if key not in ctx.cache:
        ctx.cache[key] = np.flatnonzero(np.isin(ctx.m.sections.type, comp.types))
    return ctx.cache[key]


def _first_point(ctx: Context) -> np.ndarray:
    """First point of every section, as NeuroM has it: the node it hangs from, or its own
    first node when it hangs from a soma node or from nothing."""
    m = ctx.m
    sec = m.sections
    h = sec.hang
    return np.where((h >= 0) & ~m.soma_mask[np.maximum(h, 0)], h, sec.start)


@feature(
    "section_lengths",
    family="distributions",
    distribution=True,
    neurom="section_lengths",
    definition="length of every section of the compartment",
)
def section_lengths(ctx: Context, comp: Compartment) -> np.ndarray:
    return ctx.m.sections.length[_sections(ctx, comp)]


@feature(
    "section_path_distances",
    family="distributions",
    distribution=True,
    neurom="section_path_distances",
    definition="path distance from the neurite's first node to the end of every section of the compartment",
)
def section_path_distances(ctx: Context, comp: Compartment) -> np.ndarray:
    s = _sections(ctx, comp)
    return ctx.neurite_path[ctx.m.sections.end[s]]


@feature(
    "section_radial_distances",
    family="distributions",
    distribution=True,
    neurom="section_radial_distances",
    definition="straight-line distance from the soma centre (the neurite's first node when there is no soma) "
    "to the end of every section",
)
def section_radial_distances(ctx: Context, comp: Compartment) -> np.ndarray:
    m = ctx.m
    s = _sections(ctx, comp)
    ends = m.xyz[m.sections.end[s]]
    if ctx.has_soma:
        return np.linalg.norm(ends - ctx.soma_center, axis=1)
    key = "neurite_first_node"
    if key not in ctx.cache:
        # first node of each neurite: the section start of the root section above
        ctx.cache[key] = m.sections.start[_tree.root_of(m.sections.parent)]
    return np.linalg.norm(ends - m.xyz[ctx.cache[key][s]], axis=1)


@feature(
    "section_branch_orders",
    family="distributions",
    distribution=True,
    neurom="section_branch_orders",
    definition="branch order of every section (branch points between it and the soma)",
)
def section_branch_orders(ctx: Context, comp: Compartment) -> np.ndarray:
    return ctx.m.sections.branch_order[_sections(ctx, comp)].astype(np.float64)


def strahler(ctx: Context) -> np.ndarray:
    """Strahler order of every section: 1 for a terminal section; otherwise the largest
    order among its children, plus one when two or more children share it."""
    if "strahler" in ctx.cache:
        return ctx.cache["strahler"]
    n = ctx.m.sections.n
    par = ctx.m.sections.parent
    order = np.ones(n, dtype=np.int64)
    best = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    for g in ctx.sec_levels:  # deepest first: a level's sections are final when met
        p = par[g]
        np.maximum.at(best, p, order[g])
        np.add.at(count, p, order[g] == best[p])
        up = np.unique(p)
        order[up] = best[up] + (count[up] >= 2)
    ctx.cache["strahler"] = order
    return order


@feature(
    "section_strahler_orders",
    family="distributions",
    distribution=True,
    neurom="section_strahler_orders",
    definition="Strahler order of every section of the compartment",
)
def section_strahler_orders(ctx: Context, comp: Compartment) -> np.ndarray:
    return strahler(ctx)[_sections(ctx, comp)].astype(np.float64)


@feature(
    "partition_asymmetry",
    family="distributions",
    distribution=True,
    neurom="partition_asymmetry",
    definition="at every bifurcation: |n1 - n2| / (n1 + n2), n = sections in each child subtree (0 when "
    "both are 1)",
)
def partition_asymmetry(ctx: Context, comp: Compartment) -> np.ndarray:
    m = ctx.m
    sec = m.sections
    s = _sections(ctx, comp)
    two = s[sec.children_count()[s] == 2]
    if two.size == 0:
        return np.zeros(0)
    # the two child sections of every such section (child nodes of another kind, such as
    # a soma node in the middle of a tree, are not sections and do not count)
    kids = np.flatnonzero(np.isin(sec.parent, two))
    kids = kids[np.argsort(sec.parent[kids], kind="stable")].reshape(-1, 2)
    a = ctx.sec_subtree_sections[kids[:, 0]]
    b = ctx.sec_subtree_sections[kids[:, 1]]
    return np.abs(a - b) / (a + b)


@feature(
    "local_bifurcation_angles",
    family="distributions",
    distribution=True,
    undefined="a child section lies on its branch point (zero length)",
    neurom="local_bifurcation_angles",
    definition="angle (radians) between the first non-zero-length segments of the two children at every "
    "bifurcation (undefined when a child's whole section lies on the bifurcation point)",
)
def local_bifurcation_angles(ctx: Context, comp: Compartment) -> np.ndarray:
    return local_angles(ctx, comp)


@feature(
    "remote_bifurcation_angles",
    family="distributions",
    distribution=True,
    undefined="a child's next branch point or tip lies on the branch point",
    neurom="remote_bifurcation_angles",
    definition="angle (radians) between the vectors to the ends of the two child sections at every "
    "bifurcation",
)
def remote_bifurcation_angles(ctx: Context, comp: Compartment) -> np.ndarray:
    return remote_angles(ctx, comp)


@feature(
    "section_tortuosity",
    family="distributions",
    distribution=True,
    undefined="a section ends on its first point (zero straight-line distance)",
    neurom="section_tortuosity",
    definition="section length over the straight-line distance between its first point and its end "
    "(infinite, so left out of the summaries, for a section that ends on its first point)",
)
def section_tortuosity(ctx: Context, comp: Compartment) -> np.ndarray:
    m = ctx.m
    s = _sections(ctx, comp)
    chord = np.linalg.norm(m.xyz[m.sections.end[s]] - m.xyz[_first_point(ctx)[s]], axis=1)
    length = m.sections.length[s]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(chord > 0, length / np.where(chord > 0, chord, 1.0), np.where(length > 0, np.inf, 1.0))


@feature(
    "section_taper_rates",
    family="distributions",
    distribution=True,
    undefined="all the points of a section are at one path position",
    neurom="section_taper_rates",
    definition="slope of the least-squares line of diameter against path length along every section "
    "(first point included; um of diameter per um)",
)
def section_taper_rates(ctx: Context, comp: Compartment) -> np.ndarray:
    m = ctx.m
    sec = m.sections
    s = _sections(ctx, comp)
    if s.size == 0:
        return np.zeros(0)
    # points of every section: its first point then its nodes, grouped by section
    nodes = np.flatnonzero(np.isin(m.section_id, s))
    sid = m.section_id[nodes]
    fp = _first_point(ctx)[s]
    has_extra = fp != sec.start[s]
    x_nodes = ctx.neurite_path[nodes]
    x_first = ctx.neurite_path[fp]
    # path along the section, from its first point
    rel = np.zeros(sec.n)
    rel[s] = x_first
    pos_sid = np.concatenate([sid, s[has_extra]])
    x = np.concatenate([x_nodes, x_first[has_extra]]) - rel[pos_sid]
    d = 2.0 * np.concatenate([m.radius[nodes], m.radius[fp[has_extra]]])
    n = np.bincount(pos_sid, minlength=sec.n)[s].astype(np.float64)
    sx = np.bincount(pos_sid, x, sec.n)[s]
    sy = np.bincount(pos_sid, d, sec.n)[s]
    sxx = np.bincount(pos_sid, x * x, sec.n)[s]
    sxy = np.bincount(pos_sid, x * d, sec.n)[s]
    den = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(den) > 1e-12, (n * sxy - sx * sy) / den, np.nan)


@feature(
    "segment_radii",
    family="distributions",
    distribution=True,
    neurom="segment_radii",
    definition="mean of the two end radii of every neurite edge (soma edges left out)",
)
def segment_radii(ctx: Context, comp: Compartment) -> np.ndarray:
    m = ctx.m
    e = comp.mask & (m.parent >= 0) & ~m.parent_is_soma
    return 0.5 * (m.radius[e] + m.radius[m.parent[e]])


@feature(
    "terminal_path_lengths",
    family="distributions",
    distribution=True,
    neurom="terminal_path_lengths",
    definition="path distance from the neurite's first node to every tip of the compartment",
)
def terminal_path_lengths(ctx: Context, comp: Compartment) -> np.ndarray:
    idx = comp.idx[ctx.m.n_children[comp.idx] == 0]
    return ctx.neurite_path[idx]


def _trunks(ctx: Context, comp: Compartment) -> np.ndarray:
    """Root sections (hanging from a soma node or from nothing) of the compartment's type."""
    m = ctx.m
    sec = m.sections
    h = sec.hang
    root = (h < 0) | m.soma_mask[np.maximum(h, 0)]
    return np.flatnonzero(root & np.isin(sec.type, comp.types))


@feature(
    "trunk_section_lengths",
    family="distributions",
    distribution=True,
    neurom="trunk_section_lengths",
    definition="length of the first section of every neurite of the compartment's type",
)
def trunk_section_lengths(ctx: Context, comp: Compartment) -> np.ndarray:
    return ctx.m.sections.length[_trunks(ctx, comp)]


@feature(
    "trunk_origin_radii",
    family="distributions",
    distribution=True,
    neurom="trunk_origin_radii",
    definition="radius of the first node of every neurite of the compartment's type",
)
def trunk_origin_radii(ctx: Context, comp: Compartment) -> np.ndarray:
    return ctx.m.radius[ctx.m.sections.start[_trunks(ctx, comp)]]


@feature(
    "sections_per_neurite",
    family="distributions",
    distribution=True,
    neurom="number_of_sections_per_neurite",
    definition="number of sections of every neurite whose first section is of the compartment's type",
)
def sections_per_neurite(ctx: Context, comp: Compartment) -> np.ndarray:
    return ctx.sec_subtree_sections[_trunks(ctx, comp)]


@feature(
    "segment_midpoints",
    family="distributions",
    dims=("x", "y", "z"),
    default=False,
    neurom="segment_midpoints (max)",
    definition="largest x, y and z of the midpoints of the compartment's neurite edges (NeuroM's "
    "max_segment_midpoints)",
)
def segment_midpoints(ctx: Context, comp: Compartment) -> dict[str, float]:
    m = ctx.m
    e = comp.mask & (m.parent >= 0) & ~m.parent_is_soma
    if not e.any():
        from morph.features.registry import NotApplicable

        raise NotApplicable(f"the {comp.name} has no neurite edge")
    mid = 0.5 * (m.xyz[e] + m.xyz[m.parent[e]])
    return dict(zip(("x", "y", "z"), mid.max(axis=0).tolist()))
