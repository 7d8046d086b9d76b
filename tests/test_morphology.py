"""The Morphology model: derived structure, networkx view and operations."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from morph import _tree
from morph.errors import MorphologyError
from morph.io import read_swc
from morph.morphology import Morphology, compartment_types, type_name

from conftest import real_swcs


def y_tree() -> Morphology:
    """Soma at the origin, a stem of 10 um up, two 5 um daughters (symmetric Y), and an
    axon of 3 nodes leaving the left daughter's end."""
    xyz = [
        [0, 0, 0],  # 0 soma
        [0, 2, 0],  # 1 first node (soma edge 2 um, not neurite)
        [0, 12, 0],  # 2 branch point
        [-3, 16, 0],  # 3 left tip? no: axon hangs here
        [3, 16, 0],  # 4 right tip
        [-3, 26, 0],  # 5 axon
        [-3, 36, 0],  # 6 axon tip
    ]
    return Morphology(xyz, [5, 1, 1, 0.5, 0.5, 0.2, 0.2], [1, 3, 3, 3, 3, 2, 2], [-1, 0, 1, 2, 2, 3, 5])


def test_structure_of_a_y() -> None:
    m = y_tree()
    assert m.branch_points.tolist() == [2]
    assert m.tips.tolist() == [4, 6]
    assert m.n_sections == 4  # stem, left, right, axon (type change starts a section)
    s = m.sections
    assert s.length.tolist() == pytest.approx([10.0, 5.0, 5.0, 20.0])
    assert s.parent.tolist() == [-1, 0, 0, 1]
    assert s.branch_order.tolist() == [0, 1, 1, 1]
    assert m.branch_order.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert m.path_distance.tolist() == pytest.approx([0, 2, 12, 17, 17, 27, 37])
    assert m.total_length() == pytest.approx(40.0)
    assert m.total_length("axon") == pytest.approx(20.0)
    assert m.total_length("dendrite") == pytest.approx(20.0)
    assert m.soma_kind == "single_point" and m.soma_radius == 5


def test_unsorted_input_is_reordered_parents_first() -> None:
    m = y_tree()
    order = np.array([6, 3, 0, 5, 2, 4, 1])
    inv = np.empty(7, dtype=int)
    inv[order] = np.arange(7)
    p = m.parent[order]
    shuffled = Morphology(
        m.xyz[order],
        m.radius[order],
        m.types[order],
        np.where(p >= 0, inv[np.maximum(p, 0)], -1),
        m.ids[order],
    )
    assert np.all(shuffled.parent < np.arange(7))
    assert shuffled.total_length() == pytest.approx(40.0)
    assert np.array_equal(shuffled.renumber().xyz, m.renumber().xyz)


def test_bad_arrays_rejected() -> None:
    with pytest.raises(MorphologyError, match="cycle"):
        Morphology(np.zeros((3, 3)), np.ones(3), np.ones(3), [2, 0, 1])
    with pytest.raises(MorphologyError, match="own parent"):
        Morphology(np.zeros((2, 3)), np.ones(2), np.ones(2), [-1, 1])
    with pytest.raises(MorphologyError, match="entries"):
        Morphology(np.zeros((2, 3)), np.ones(3), np.ones(2), [-1, 0])
    with pytest.raises(MorphologyError, match="unknown compartment"):
        compartment_types("dendrites")


def test_compartment_names() -> None:
    assert compartment_types("dendrite") == (3, 4)
    assert compartment_types("custom_7") == (7,)
    assert compartment_types("all_neurites", [1, 2, 3, 9]) == (2, 3, 9)
    assert type_name(12) == "custom_12"


@pytest.mark.parametrize("path", real_swcs()[::3], ids=lambda p: p.name)
def test_derived_arrays_agree_with_networkx(path: Path) -> None:
    m = read_swc(path)
    g = m.to_networkx()
    assert g.number_of_nodes() == len(m) and g.number_of_edges() == len(m) - m.roots.size
    root_id = int(m.ids[m.roots[0]])
    dist = nx.single_source_dijkstra_path_length(g, root_id, weight="length")
    idx = {int(i): k for k, i in enumerate(m.ids)}
    got = np.array([m.path_distance[idx[v]] for v in dist])
    assert np.allclose(got, list(dist.values()))
    # branch points and tips from graph degrees
    out_deg = dict(g.out_degree())
    bp = sorted(idx[v] for v, d in out_deg.items() if d >= 2 and g.nodes[v]["type"] != 1)
    assert bp == m.branch_points.tolist()
    tips = sorted(idx[v] for v, d in out_deg.items() if d == 0 and g.nodes[v]["type"] != 1)
    assert tips == m.tips.tolist()
    # round trip through networkx
    back = Morphology.from_networkx(g)
    assert np.array_equal(back.renumber().xyz, m.renumber().xyz)
    assert back.total_length() == pytest.approx(m.total_length())


def test_networkx_algorithms_work_on_the_view(data: Path) -> None:
    m = read_swc(data / "swc/small/neurom_simple.swc")
    g = m.to_networkx()
    sub = nx.descendants(g, int(m.ids[m.branch_points[0]]))
    assert len(sub) == m.subtree(int(m.branch_points[0])).n_nodes - 1
    relabelled = nx.relabel_nodes(g, {v: v + 100 for v in g})
    assert Morphology.from_networkx(relabelled).ids.min() == m.ids.min() + 100
    # whole-number float types are SWC types; missing attributes are 0
    small = _graph(type=3.0)
    small.add_node(3, x=0, y=0, z=-5)
    small.add_edge(1, 3)
    assert Morphology.from_networkx(small).types.tolist() == [1, 3, 0]


def test_sections_cover_every_neurite_node_once(data: Path) -> None:
    m = read_swc(data / "swc/allen/skk_upright_694146546.swc")
    s = m.sections
    assert s.length.sum() == pytest.approx(m.total_length())
    assert s.n_nodes.sum() == int((~m.soma_mask).sum())
    assert np.all(m.section_id[s.start] == np.arange(s.n))
    assert np.all(m.section_id[s.end] == np.arange(s.n))
    # the end of a section is a tip, a branch point or a type change
    ends = s.end
    ok = (m.n_children[ends] != 1) | np.isin(ends, m.parent[s.start[m.types[s.start] != m.types[s.hang]]])
    assert ok.all()


def test_subtree_cut_select_merge(data: Path) -> None:
    m = read_swc(data / "swc/allen/bmtk_Rbp4-Cre_KL100_Ai14-180747.06.01.01_495335491_m.swc")
    bp = int(m.branch_points[5])
    sub = m.subtree(bp)
    rest, removed = m.cut(bp)
    assert len(removed) == len(sub) and len(rest) + len(removed) == len(m)
    assert rest.total_length() + removed.total_length() + m.edge_length[bp] == pytest.approx(m.total_length())
    ax = m.select("axon")
    assert set(ax.type_counts()) == {1, 2}
    assert ax.total_length("axon") == pytest.approx(m.total_length("axon"))
    assert ax.roots.size == 1
    both = m.merge(m.translate([500, 0, 0]))
    assert len(both) == 2 * len(m) and both.roots.size == 2
    assert len(np.unique(both.ids)) == len(both)
    attached = m.merge(sub, attach_to=0)
    assert attached.roots.size == 1
    with pytest.raises(MorphologyError):
        m.subtree(len(m) + 5)


def test_transforms_and_units() -> None:
    m = y_tree()
    r = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    rot = m.rotate(r)
    assert rot.total_length() == pytest.approx(m.total_length())
    assert np.allclose(rot.xyz[2], [-12, 0, 0])
    s = m.scale([2, 2, 2])
    assert s.total_length() == pytest.approx(80.0) and s.radius[0] == pytest.approx(10.0)
    vox = m.to_voxels((0.5, 0.5, 2.0))
    assert vox.units == "voxel" and vox.xyz[2].tolist() == [0, 24, 0]
    back = vox.to_micrometres()
    assert np.allclose(back.xyz, m.xyz) and np.allclose(back.radius, m.radius)
    aff = np.eye(4)
    aff[:3, 3] = [1, 2, 3]
    assert np.allclose(m.transform(aff).xyz - m.xyz, [1, 2, 3])
    with pytest.raises(MorphologyError):
        m.rotate(np.ones((3, 3)))
    with pytest.raises(MorphologyError, match="voxel size unknown"):
        m.to_voxels()


@pytest.mark.parametrize("spacing", [0.5, 2.0, 7.0])
def test_resample_keeps_topology_and_length(spacing: float, data: Path) -> None:
    m = read_swc(data / "swc/allen/bmtk_Rorb_325404214_m.swc")
    r = m.resample(spacing)
    assert r.branch_points.size == m.branch_points.size
    assert r.tips.size == m.tips.size
    assert r.n_sections == m.n_sections
    assert r.type_counts()[1] == m.type_counts()[1]
    # chords cut the corners of a jagged real tracing: little lost at fine spacing, never gained
    assert r.total_length() <= m.total_length() * (1 + 1e-9)
    assert r.total_length() == pytest.approx(m.total_length(), rel={0.5: 0.01, 2.0: 0.04, 7.0: 0.12}[spacing])
    # spacing within each section close to the request
    el = r.neurite_edge_length[(~r.soma_mask) & (~r.parent_is_soma)]
    assert np.median(el) == pytest.approx(spacing, rel=0.25)
    # tips and branch points are exactly where they were
    assert np.allclose(np.sort(r.xyz[r.tips], axis=0), np.sort(m.xyz[m.tips], axis=0))


def test_resample_straight_line_exact() -> None:
    m = Morphology([[0, 0, 0], [0, 1, 0], [0, 11, 0]], [2, 1, 1], [1, 3, 3], [-1, 0, 1])
    r = m.resample(1.0)
    assert len(r) == 12
    assert np.allclose(np.diff(r.xyz[1:, 1]), 1.0)
    assert r.total_length() == pytest.approx(10.0)


def test_tree_primitives_on_a_long_chain() -> None:
    n = 100_000
    parent = np.arange(-1, n - 1)
    assert _tree.depth(parent)[-1] == n - 1
    assert _tree.ancestor_sum(parent, np.ones(n))[-1] == n
    cyc = parent.copy()
    cyc[0] = n - 1
    assert _tree.nodes_in_cycles(cyc).all()


def _assert_same_topology(m: Morphology, r: Morphology) -> None:
    """``r`` (a resampling of ``m``) has the same trees, forks, tips and sections, the
    tips and branch points exactly where they were, and no more cable."""
    assert r.roots.size == m.roots.size
    assert r.branch_points.size == m.branch_points.size
    assert r.tips.size == m.tips.size
    assert r.n_sections == m.n_sections
    assert r.type_counts().get(1, 0) == m.type_counts().get(1, 0)
    for nodes_r, nodes_m in ((r.tips, m.tips), (r.branch_points, m.branch_points)):
        got = np.column_stack([r.xyz[nodes_r], r.radius[nodes_r], r.n_children[nodes_r]])
        want = np.column_stack([m.xyz[nodes_m], m.radius[nodes_m], m.n_children[nodes_m]])
        assert np.allclose(got[np.lexsort(got.T)], want[np.lexsort(want.T)])
    assert r.total_length() <= m.total_length() * (1 + 1e-9) + 1e-12


# zero-length sections (coincident points) in several places; rows: xyz, radius, type, parent
ZERO_LENGTH_CASES = {
    "duplicate_fork_after_soma": (
        [[0, 0, 0], [0, 10, 0], [0, 10, 0], [5, 20, 0], [-5, 20, 0]],
        [5, 1, 2, 1, 1],
        [1, 3, 3, 3, 3],
        [-1, 0, 1, 2, 2],
    ),
    "duplicate_fork_at_a_root_no_soma": (
        [[0, 10, 0], [0, 10, 0], [5, 20, 0], [-5, 20, 0]],
        [1, 2, 1, 1],
        [3, 3, 3, 3],
        [-1, 0, 1, 1],
    ),
    "zero_length_stem_ending_in_a_tip": (
        [[0, 0, 0], [0, 10, 0], [0, 10, 0], [0, -10, 0], [0, -20, 0]],
        [5, 1, 0.5, 1, 1],
        [1, 3, 3, 3, 3],
        [-1, 0, 1, 0, 3],
    ),
    "zero_length_inner_section": (
        [[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, 20, 0], [5, 30, 0], [-5, 30, 0], [8, 25, 0]],
        [5, 1, 1, 0.8, 1, 1, 1],
        [1, 3, 3, 3, 3, 3, 3],
        [-1, 0, 1, 2, 3, 3, 2],
    ),
    "zero_length_terminal_section": (
        [[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, 20, 0], [6, 28, 0]],
        [5, 1, 1, 0.3, 1],
        [1, 3, 3, 3, 3],
        [-1, 0, 1, 2, 2],
    ),
    "chain_of_coincident_points_before_a_fork": (
        [[0, 0, 0], [0, 10, 0], [0, 10, 0], [0, 10, 0], [0, 10, 0], [5, 20, 0], [-5, 20, 0], [0, 25, 0]],
        [5, 1, 1, 1, 2, 1, 1, 1],
        [1, 3, 3, 3, 3, 3, 3, 3],
        [-1, 0, 1, 2, 3, 4, 4, 4],
    ),
    "coincident_axon_stem_and_dendrite_fork": (
        [[0, 0, 0], [0, 10, 0], [0, 10, 0], [5, 20, 0], [-5, 20, 0], [0, -3, 0], [0, -3, 0], [0, -3, 0]],
        [5, 1, 1.5, 1, 1, 0.5, 0.5, 0.4],
        [1, 3, 3, 3, 3, 2, 2, 2],
        [-1, 0, 1, 2, 2, 0, 5, 6],
    ),
}


def test_resample_keeps_zero_length_sections() -> None:
    for name, (xyz, radius, types, parent) in ZERO_LENGTH_CASES.items():
        m = Morphology(xyz, radius, types, parent)
        for spacing in (0.5, 1.0, 50.0):
            r = m.resample(spacing)
            try:
                _assert_same_topology(m, r)
            except AssertionError as err:
                raise AssertionError(f"{name}, spacing {spacing}") from err
    m = Morphology(*ZERO_LENGTH_CASES["duplicate_fork_after_soma"])
    r = m.resample(1.0)
    assert r.roots.size == 1 and r.total_length() == pytest.approx(m.total_length())


def test_resample_keeps_a_soma_reached_from_a_neurite() -> None:
    # traced from a dendrite tip: the root is the tip, the soma hangs from a dendrite node
    xyz = [[0, 30, 0], [0, 20, 0], [0, 10, 0], [0, 0, 0], [0, -10, 0], [0, -20, 0]]
    m = Morphology(xyz, [1, 1, 1, 5, 1, 1], [3, 3, 3, 1, 2, 2], [-1, 0, 1, 2, 3, 4])
    r = m.resample(2.0)
    assert r.roots.size == 1
    assert r.n_sections == m.n_sections == 2
    assert r.total_length() == pytest.approx(m.total_length())
    soma = int(r.soma_nodes[0])
    assert r.parent[soma] >= 0 and np.allclose(r.xyz[r.parent[soma]], [0, 10, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(ids=[5, 5]), "duplicate id 5"),
        (dict(radius=[1, -2]), "node 1 .* radius -2"),
        (dict(radius=[1, np.nan]), "radius nan"),
        (dict(radius=[1, np.inf]), "radius inf"),
        (dict(xyz=[[0, 0, 0], [0, np.nan, 0]]), "non-finite position"),
        (dict(xyz=[[0, 0, 0], [np.inf, 1, 0]]), "non-finite position"),
        (dict(types=[1, -1]), "negative type -1"),
        (dict(types=[1, 3.5]), "types must be whole numbers"),
        (dict(parent=[-1, 0.5]), "parent must be whole numbers"),
        (dict(ids=[1, 2.5]), "ids must be whole numbers"),
        (dict(units="nm"), "unknown units 'nm'"),
        (dict(xyz=[[0, 0], [0, 10]]), r"shape \(n, 3\)"),
        (dict(xyz=[[0, 0], [0, 10], [0, 20]]), r"shape \(n, 3\)"),  # 6 numbers: not 2 nodes
        (dict(xyz=[[0, 0, 0], [0, 10]]), "xyz must be numbers"),
        (dict(xyz=[[0, 0, 0], [0, "a", 0]]), "xyz must be numbers"),
        (dict(voxel_size=(0, 1, 1)), "voxel size"),
        (dict(voxel_size=(1, 1)), "voxel size"),
    ],
)
def test_constructor_refuses_invalid_input(kwargs: dict, match: str) -> None:
    args = dict(xyz=[[0, 0, 0], [0, 10, 0]], radius=[1, 1], types=[1, 3], parent=[-1, 0])
    args.update(kwargs)
    with pytest.raises(MorphologyError, match=match):
        Morphology(**args)


def test_unchecked_construction_still_refuses_bad_shapes_and_units() -> None:
    # check=False (arrays already checked, as by the SWC reader) skips only the value checks
    loose = Morphology([[0, 0, 0], [0, np.nan, 0]], [1, -1], [1, 3], [-1, 0], check=False)
    assert len(loose) == 2
    with pytest.raises(MorphologyError, match=r"shape \(n, 3\)"):
        Morphology([[0, 0], [0, 1], [0, 2]], [1, 1], [1, 3], [-1, 0], check=False)
    with pytest.raises(MorphologyError, match="unknown units"):
        Morphology([[0, 0, 0]], [1], [1], [-1], units="mm", check=False)
    # degenerate but valid input is accepted
    assert len(Morphology(np.zeros((0, 3)), [], [], [])) == 0
    ok = Morphology([[0, 0, 0], [0, 0, 0]], [0, 0], [1.0, 7.0], [-1, 0], ids=np.array([9, 3]))
    assert ok.types.tolist() == [1, 7] and ok.ids.tolist() == [9, 3] and ok.total_length() == 0


def test_node_indices_must_be_integers() -> None:
    m = y_tree()
    for call in (
        lambda: m.subtree(2.7),
        lambda: m.cut(1.5),
        lambda: m.subtree(2.0),
        lambda: m.subtree(2.0, by_id=True),
        lambda: m.merge(m, attach_to=0.5),
    ):
        with pytest.raises(MorphologyError, match="must be an integer"):
            call()
    assert len(m.subtree(np.int64(2))) == len(m.subtree(2)) == 5
    assert len(m.subtree(np.int32(3), by_id=True)) == len(m.subtree(2))


@pytest.mark.parametrize("voxel_size", [(0, 1, 1), (-1, 1, 1), (np.nan, 1, 1), (1, 1, np.inf), (1, 1), "abc"])
def test_voxel_conversions_refuse_impossible_voxel_sizes(voxel_size: object) -> None:
    m = y_tree()
    with pytest.raises(MorphologyError, match="voxel size must be three finite positive numbers"):
        m.to_voxels(voxel_size)  # type: ignore[arg-type]
    vox = m.to_voxels((1, 1, 2))
    with pytest.raises(MorphologyError, match="voxel size must be three finite positive numbers"):
        vox.to_micrometres(voxel_size)  # type: ignore[arg-type]


def test_voxel_conversions_accept_a_numpy_voxel_size() -> None:
    m = y_tree()
    vox = m.to_voxels(np.array([0.5, 0.5, 2.0]))
    assert vox.voxel_size == (0.5, 0.5, 2.0)
    assert np.allclose(vox.to_micrometres(np.array([0.5, 0.5, 2.0])).xyz, m.xyz)
    with pytest.raises(MorphologyError, match="voxel size"):
        vox.to_micrometres((0, 0, 0))


def _graph(**attrs: object) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node(1, xyz=(0, 0, 0), radius=5, type=1)
    g.add_node(2, **{"xyz": (0, 10, 0), "radius": 1, "type": 3, **attrs})
    g.add_edge(1, 2)
    return g


@pytest.mark.parametrize(
    ("g", "match"),
    [
        (nx.Graph([(1, 2)]), "needs a directed graph"),
        (_graph(type="soma"), "node 2: type 'soma' is not an SWC type number"),
        (_graph(type=2.5), "node 2: type 2.5"),
        (_graph(xyz=(0, 10)), r"node 2: xyz \(0, 10\) is not three numbers"),
        (_graph(xyz="abc"), "node 2: xyz 'abc' is not three numbers"),
        (_graph(radius="thick"), "node 2: radius 'thick' is not a number"),
        (_graph(radius=-1), "node 2: radius -1.0 is not valid"),
        (_graph(xyz=(0, np.nan, 0)), "node 2: xyz"),
        (_graph(type=-3), "node 2: type -3 is not valid"),
        (nx.DiGraph([(1, 3), (2, 3)]), "node 3 has 2 parents"),
        ([(1, 2)], "needs a networkx.DiGraph"),
    ],
)
def test_from_networkx_refuses_bad_graphs(g: object, match: str) -> None:
    with pytest.raises(MorphologyError, match=match):
        Morphology.from_networkx(g)
