"""Features on legal but awkward input: node storage order, multi-piece somas, ties,
axons that turn back, zero-length segments, bad options and names."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import morph.features as mf
from morph import Morphology
from morph.errors import MorphError
from morph.io.swc import format_swc, read_swc


def permuted(m: Morphology, order: list[int] | np.ndarray) -> Morphology:
    """The same cell (same ids, same tree) with its nodes stored in another order."""
    order = np.asarray(order)
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    par = np.where(m.parent >= 0, inv[np.maximum(m.parent, 0)], -1)
    return Morphology(m.xyz[order], m.radius[order], m.types[order], par[order], m.ids[order])


def same(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Keys whose values differ (NaN equals NaN)."""
    assert a.keys() == b.keys()
    return [k for k in a if not (a[k] == pytest.approx(b[k], rel=1e-12, abs=1e-12) or (np.isnan(a[k]) and np.isnan(b[k])))]


# ---------------------------------------------------------------------------- exit_theta (1)
def test_exit_theta_does_not_depend_on_storage_order():
    a = Morphology([[0, 0, 0], [0, 10, 0], [10, 0, 0]], [5, 1, 1], [1, 3, 3], [-1, 0, 0])
    b = Morphology([[0, 0, 0], [10, 0, 0], [0, 10, 0]], [5, 1, 1], [1, 3, 3], [-1, 0, 0], [1, 3, 2])
    ta = mf.compute(a)["basal_dendrite.exit_theta"]
    assert ta == mf.compute(b)["basal_dendrite.exit_theta"]
    assert ta == 0.0  # equal cable below both stems: the smallest theta


def test_exit_theta_is_the_stem_with_most_cable_and_the_real_angle():
    # two stems on the soma; the one along +x carries 30 um, the one along +y 10 um
    xyz = [[0, 0, 0], [0, 6, 0], [0, 16, 0], [6, 0, 0], [36, 0, 0]]
    m = Morphology(xyz, [5, 1, 1, 1, 1], [1, 3, 3, 3, 3], [-1, 0, 1, 0, 3])
    for order in ([0, 1, 2, 3, 4], [0, 3, 4, 1, 2]):
        d = mf.compute(permuted(m, order), ["basal_dendrite"], ["exit_theta", "exit_distance"])
        assert d["basal_dendrite.exit_theta"] == pytest.approx(0.5)  # attached to the soma: still its angle
        assert d["basal_dendrite.exit_distance"] == 0.0


def test_exit_theta_of_real_cells_survives_shuffled_lines(data):
    m = read_swc(data / "swc" / "allen" / "bmtk_Pvalb_469628681_m.swc")
    rng = np.random.default_rng(1)
    order = rng.permutation(len(m))
    keys = ["basal_dendrite.exit_theta", "dendrite.exit_theta", "all_neurites.exit_theta", "axon.exit_theta"]
    a = mf.compute(m, features=["exit_theta"])
    b = mf.compute(permuted(m, order), features=["exit_theta"])
    assert [k for k in keys if a[k] != b[k]] == []


# ---------------------------------------------------------------------------- early_branch_path (2)
def test_early_branch_path_of_a_multifurcation_is_order_free():
    # a trifurcation at y = 20 whose children reach 10, 20 and 30 um below it
    xyz = [[0, 0, 0], [0, 10, 0], [0, 20, 0], [-10, 20, 0], [0, 40, 0], [30, 20, 0]]
    m = Morphology(xyz, [5] + [1] * 5, [1] + [3] * 5, [-1, 0, 1, 2, 2, 2])
    values = {mf.get("early_branch_path", permuted(m, o)) for o in ([0, 1, 2, 3, 4, 5], [0, 1, 2, 5, 4, 3], [0, 1, 2, 4, 3, 5])}
    assert len(values) == 1
    # the second longest child path (20 um) over the max path distance (50 um)
    assert values.pop() == pytest.approx(20 / 50)


# ---------------------------------------------------------------------------- soma centre (3)
CONTOUR = """10 1 0 0 0 1 -1
9 1 10 0 0 1 -1
8 1 10 10 0 1 -1
7 1 0 10 0 1 -1
1 3 5 -40 0 1 10
2 3 5 -45 0 1 1
3 2 5 50 0 1 8
"""


def test_contour_soma_centre_survives_a_write_read_round_trip(tmp_path):
    p = tmp_path / "contour.swc"
    p.write_text(CONTOUR)
    m = read_swc(p)
    q = tmp_path / "again.swc"
    q.write_text(format_swc(m))
    again = read_swc(q)
    a, b = mf.compute(m), mf.compute(again)
    assert set(same(a, b)) <= {"ais.origin_id", "ais.axon_root_id"}  # the writer renumbers the nodes
    assert a["all_neurites.max_euclidean_distance"] == pytest.approx(50.0)  # from the centroid (5, 5, 0)
    assert a["all_neurites.bias_x"] == 0.0
    assert a["axon.exit_theta"] == 0.0
    assert a["soma.radius"] == pytest.approx(math.sqrt(50))  # mean distance to the centroid


def test_contour_soma_in_any_storage_order(data):
    xyz = [[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0], [5, -40, 0], [5, -45, 0], [5, 50, 0]]
    m = Morphology(xyz, [1] * 7, [1, 1, 1, 1, 3, 3, 2], [-1, -1, -1, -1, 0, 4, 2])
    base = mf.compute(m, reasons=True)
    for order in ([3, 2, 1, 0, 6, 4, 5], [2, 0, 3, 1, 4, 5, 6]):
        other = mf.compute(permuted(m, order), reasons=True)
        assert same(base[0], other[0]) == []
        assert base[1] == other[1]
    # a connected soma (NeuroM's stack of cylinders) stays centred on its root node, as
    # NeuroM's reference values for Neuron.swc have it
    n = read_swc(data / "swc" / "small" / "neurom_Neuron.swc")
    root = n.soma_nodes[n.parent[n.soma_nodes] < 0][0]
    far = np.linalg.norm(n.xyz[~n.soma_mask] - n.xyz[root], axis=1).max()
    assert mf.compute(n, ["all_neurites"], ["max_euclidean_distance"])["all_neurites.max_euclidean_distance"] == (
        pytest.approx(far)
    )


# ---------------------------------------------------------------------------- ties for the AIS (4)
def twin_axons() -> Morphology:
    """Two axons of 30 um on the soma, mirror images (left and right)."""
    xyz = [[0, 0, 0], [-6, 0, 0], [-36, 0, 0], [6, 0, 0], [36, 0, 0]]
    return Morphology(xyz, [5, 1, 0.5, 1, 0.5], [1, 2, 2, 2, 2], [-1, 0, 1, 0, 3])


def test_primary_axon_tie_does_not_depend_on_storage_order():
    m = twin_axons()
    a = mf.compute(m, ["ais"])
    b = mf.compute(permuted(m, [0, 3, 4, 1, 2]), ["ais"])
    assert same(a, b) == []
    assert a["ais.axon_root_id"] == 2.0  # equal cable and distance: the smaller x
    assert a["ais.direction_x"] == pytest.approx(-1.0)


def test_ais_main_trunk_tie_does_not_depend_on_storage_order():
    # the axon forks after 10 um into two equal 30 um branches; the one going straight on
    # (along -y) is the trunk, whatever the order of the children
    xyz = [[0, 0, 0], [0, -6, 0], [0, -16, 0], [-30, -16, 0], [0, -46, 0]]
    m = Morphology(xyz, [5, 1, 1, 0.5, 0.5], [1, 2, 2, 2, 2], [-1, 0, 1, 2, 2])
    a = mf.compute(m, ["ais"])
    b = mf.compute(permuted(m, [0, 1, 2, 4, 3]), ["ais"])
    assert same(a, b) == []
    assert a["ais.tortuosity_40"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- hairpin AIS (5)
def test_ais_on_a_hairpin_axon_is_nan_with_true_reasons():
    m = Morphology(
        [[0, 0, 0], [0, -5, 0], [0, -10, 0], [0, -5, 0], [0, -30, 0]], [5, 1, 1, 1, 1], [1, 2, 2, 2, 2], [-1, 0, 1, 2, 3]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d, why = mf.compute(m, ["ais"], reasons=True)
    assert np.isnan(d["ais.tortuosity_10"])
    assert "coincides with its start" in why["ais.tortuosity_10"]
    for k in ("direction_x", "direction_y", "angle_to_apical"):
        assert np.isnan(d[f"ais.{k}"])
        assert "coincides with its start" in why[f"ais.{k}"] and "shorter" not in why[f"ais.{k}"]
    assert d["ais.tortuosity_20"] == pytest.approx(2.0)  # 20 um of path, 10 um apart


# ---------------------------------------------------------------------------- from_dendrite (6)
def test_axon_hanging_from_an_undefined_node_does_not_leave_a_dendrite():
    xyz = [[0, 0, 0], [0, 10, 0], [0, 20, 0], [10, 20, 0], [20, 20, 0]]
    m = Morphology(xyz, [5, 1, 1, 1, 1], [1, 0, 0, 2, 2], [-1, 0, 1, 2, 3])
    d = mf.compute(m, ["ais"])
    assert d["ais.origin_type"] == 0.0
    assert d["ais.from_dendrite"] == 0.0
    d = mf.compute(Morphology(xyz, [5, 1, 1, 1, 1], [1, 4, 4, 2, 2], [-1, 0, 1, 2, 3]), ["ais"])
    assert d["ais.from_dendrite"] == 1.0


# ---------------------------------------------------------------------------- options (7, 8)
def small() -> Morphology:
    xyz = [[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, -10, 0], [15, -25, 0]]
    return Morphology(xyz, [5, 1, 1, 1, 1], [1, 3, 3, 2, 2], [-1, 0, 1, 0, 3])


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("pia_direction", (0, 0, 0)),
        ("pia_direction", (0, 1)),
        ("pia_direction", (0, np.nan, 1)),
        ("overlap_bin_width", 0),
        ("overlap_bin_width", -5),
        ("overlap_bin_width", float("inf")),
        ("sholl_step", float("inf")),
        ("sholl_step", "10"),
        ("z_scale", "3"),
        ("z_scale", -1.0),
        ("direction_length", 0),
        ("direction_length", float("nan")),
        ("direction_length", True),
    ],
)
def test_bad_option_values_are_refused_up_front(option, value):
    with pytest.raises(MorphError, match=option):
        mf.compute(small(), **{option: value})
    with pytest.raises(MorphError, match=option):
        mf.get("total_length", small(), **{option: value})


def test_tiny_overlap_bin_width_is_refused_with_the_least_width():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for w in (1e-9, 5e-324):
            with pytest.raises(MorphError, match="overlap_bin_width") as e:
                mf.compute(small(), ["axon"], ["frac"], overlap_bin_width=w)
            assert "at least" in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"step": float("inf")}, "step"),
        ({"step": "10"}, "step"),
        ({"max_radius": float("nan")}, "max_radius"),
        ({"max_radius": float("inf")}, "max_radius"),
        ({"max_radius": -3}, "max_radius"),
        ({"center": [np.nan, 0, 0]}, "center"),
        ({"center": [0, 0]}, "center"),
    ],
)
def test_sholl_arguments_are_checked(kwargs, name):
    with pytest.raises(MorphError, match=name):
        mf.sholl(small(), **kwargs)


def test_sholl_sphere_count_in_the_error_is_short():
    with pytest.raises(MorphError) as e:
        mf.sholl(small(), step=1e-300)
    assert len(str(e.value)) < 200 and "e+" in str(e.value)


def test_sholl_accepts_one_compartment_name():
    r = mf.sholl(small(), step=5.0, compartments="axon")
    assert list(r.crossings) == ["axon"]


# ---------------------------------------------------------------------------- local angle (9)
def test_local_angle_skips_a_zero_length_first_segment():
    m = Morphology(
        [[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, 20, 0], [5, 30, 0], [0, 30, 0]],
        [5, 1, 1, 1, 1, 1],
        [1, 3, 3, 3, 3, 3],
        [-1, 0, 1, 2, 2, 3],
    )
    d, why = mf.compute(m, ["basal_dendrite"], ["mean_bifurcation_angle_local", "local_bifurcation_angles"], reasons=True)
    assert d["basal_dendrite.mean_bifurcation_angle_local"] == pytest.approx(math.atan(0.5))
    assert d["basal_dendrite.local_bifurcation_angles_max"] == pytest.approx(math.atan(0.5))
    assert why == {}


def test_local_angle_of_a_child_lying_on_its_fork_has_a_true_reason():
    m = Morphology(
        [[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, 20, 0], [5, 30, 0]],
        [5, 1, 1, 1, 1],
        [1, 3, 3, 3, 3],
        [-1, 0, 1, 2, 2],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d, why = mf.compute(m, ["basal_dendrite"], ["mean_bifurcation_angle_local", "local_bifurcation_angles"], reasons=True)
    assert np.isnan(d["basal_dendrite.mean_bifurcation_angle_local"])
    assert "no bifurcation" not in why["basal_dendrite.mean_bifurcation_angle_local"]
    assert "zero-length" in why["basal_dendrite.mean_bifurcation_angle_local"]
    assert "undefined" in why["basal_dendrite.local_bifurcation_angles_mean"]


# ---------------------------------------------------------------------------- distributions (10)
def test_undefined_distribution_values_have_a_true_reason():
    # a basal section that comes back to its first point: tortuosity undefined
    xyz = [[0, 0, 0], [0, 10, 0], [10, 20, 0], [0, 10, 0]]
    m = Morphology(xyz, [5, 1, 1, 1], [1, 3, 3, 3], [-1, 0, 1, 2])
    d, why = mf.compute(m, ["basal_dendrite"], ["section_tortuosity"], reasons=True)
    assert np.isnan(d["basal_dendrite.section_tortuosity_mean"])
    r = why["basal_dendrite.section_tortuosity_mean"]
    assert "undefined" in r and "ends on its first point" in r and "no section tortuosity" not in r
    assert np.isinf(mf.get("section_tortuosity", m, "basal_dendrite")).all()  # NeuroM's value


# ---------------------------------------------------------------------------- names (11)
def test_one_name_is_one_name():
    m = small()
    assert list(mf.compute(m, "axon", "total_length")) == ["axon.total_length"]
    assert list(mf.compute(m, ["axon"], "total_length")) == ["axon.total_length"]


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("extent_x", "features=['extent']"),
        ("section_lengths_mean", "features=['section_lengths']"),
        ("axon.total_length", "features=['total_length'] with compartments=['axon']"),
    ],
)
def test_output_keys_given_as_features_name_their_feature(name, hint):
    with pytest.raises(MorphError) as e:
        mf.compute(small(), ["axon"], [name])
    assert hint in str(e.value)


def test_get_names_the_feature_of_an_output_key():
    with pytest.raises(MorphError, match="get\\('extent', m, 'axon'\\)"):
        mf.get("extent_x", small(), "axon")


def test_type_numbers_stand_for_compartments():
    m = small()
    assert list(mf.compute(m, [2], ["total_length"])) == ["axon.total_length"]
    assert list(mf.compute(m, [3, 7], ["num_nodes"])) == ["basal_dendrite.num_nodes", "custom_7.num_nodes"]
    assert mf.get("total_length", m, 2) == mf.get("total_length", m, "axon")
    with pytest.raises(MorphError, match="unknown compartment"):
        mf.compute(m, [2.5], ["total_length"])


# ---------------------------------------------------------------------------- soma nodes inside a tree
def test_partition_asymmetry_ignores_a_soma_child():
    # a dendrite root whose children are a soma node and two dendrite branches: one forks
    # once (3 sections), the other forks twice (5 sections)
    xyz = [[0, 0, 0], [0, -10, 0], [10, 0, 0], [-10, 0, 0], [20, 5, 0], [20, -5, 0], [-20, 5, 0], [-20, -5, 0],
           [-30, 0, 0], [-30, -10, 0]]
    m = Morphology(xyz, [1, 5] + [1] * 8, [3, 1] + [3] * 8, [-1, 0, 0, 0, 2, 2, 3, 3, 7, 7])
    for order in ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 2, 3, 1, 5, 4, 7, 6, 9, 8], [0, 3, 2, 1, 6, 7, 4, 5, 8, 9]):
        got = np.sort(mf.get("partition_asymmetry", permuted(m, order), "basal_dendrite"))
        assert got.tolist() == pytest.approx([0.0, 0.0, 0.25, 0.5])  # root: |3 - 5| / 8


def test_remote_walks_are_not_cut_short_by_a_soma_node():
    from morph.features._context import Context
    from morph.features.angles import next_stop

    # X (basal) has a single soma child; A (axon) -> B (apical) -> C (axon tip) crosses types
    xyz = [[0, 0, 0], [-10, 0, 0], [-20, 0, 0], [10, 0, 0], [20, 0, 0], [20, 10, 0]]
    m = Morphology(xyz, [1] * 6, [3, 3, 1, 2, 4, 2], [-1, 0, 1, 0, 3, 4])
    stops = next_stop(Context(m), np.array([1, 3]))
    assert stops.tolist() == [2, 5]  # the soma node, and the tip C (not B)
    a = mf.compute(m, ["all_neurites"], ["mean_bifurcation_angle_remote"])
    b = mf.compute(permuted(m, [0, 3, 4, 5, 1, 2]), ["all_neurites"], ["mean_bifurcation_angle_remote"])
    assert a == b
