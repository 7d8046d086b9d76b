"""Hand-built trees with known answers pin every definition; every real SWC gives a full
table; Sholl on known geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

import morph.features as mf
from morph import Morphology
from morph.errors import MorphError
from morph.features.registry import REGISTRY


def line() -> Morphology:
    """Soma (r 5) at the origin; a basal dendrite straight up: nodes at y = 15, 25, 35."""
    return Morphology(
        [[0, 0, 0], [0, 15, 0], [0, 25, 0], [0, 35, 0]], [5, 1, 1, 1], [1, 3, 3, 3], [-1, 0, 1, 2]
    )


def sym_y() -> Morphology:
    """Soma at the origin; basal stem to a fork at (0, 20); children to (-10, 30) and (10, 30)."""
    return Morphology(
        [[0, 0, 0], [0, 10, 0], [0, 20, 0], [-10, 30, 0], [10, 30, 0]],
        [5, 1, 1, 1, 1],
        [1, 3, 3, 3, 3],
        [-1, 0, 1, 2, 2],
    )


def axon_on_dendrite() -> Morphology:
    """Soma (r 5); basal dendrite down y (-10, -20, -30); an axon leaves the basal node at
    y = -20 along +x: nodes at x = 10..60, radii 1.0, 0.9, ..., 0.5."""
    xyz = [[0, 0, 0], [0, -10, 0], [0, -20, 0], [0, -30, 0]]
    xyz += [[10 * k, -20, 0] for k in range(1, 7)]
    radius = [5, 1, 1, 1] + [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    types = [1, 3, 3, 3] + [2] * 6
    parent = [-1, 0, 1, 2, 2, 4, 5, 6, 7, 8]
    return Morphology(xyz, radius, types, parent)


def trifurcation() -> Morphology:
    """A basal stem ending in a node with three children."""
    return Morphology(
        [[0, 0, 0], [0, 10, 0], [0, 20, 0], [-5, 30, 0], [0, 30, 0], [5, 30, 0]],
        [5, 1, 1, 1, 1, 1],
        [1, 3, 3, 3, 3, 3],
        [-1, 0, 1, 2, 2, 2],
    )


# ---------------------------------------------------------------------------- straight line
def test_line_allen():
    d, why = mf.compute(line(), compartments=["basal_dendrite", "cell"], reasons=True)
    b = "basal_dendrite."
    assert d[b + "total_length"] == 20.0  # the soma-to-first-node edge never counts
    assert d[b + "num_nodes"] == 3
    assert d[b + "num_branches"] == 1
    assert d[b + "num_bifurcations"] == 0
    assert d[b + "num_tips"] == 1
    assert d[b + "num_stems"] == 1
    assert d[b + "max_branch_order"] == 1  # Allen: the stem is branch 1
    assert d[b + "max_path_distance"] == 35.0  # Allen: from the soma centre
    assert d[b + "max_euclidean_distance"] == 35.0
    assert d[b + "extent_y"] == 20.0 and d[b + "extent_x"] == 0.0
    assert d[b + "bias_y"] == 35.0
    assert d[b + "soma_percentile_y"] == 0.0
    assert d[b + "mean_diameter"] == 2.0
    assert d[b + "total_surface_area"] == pytest.approx(2 * math.pi * 1 * 20)
    assert d[b + "total_volume"] == pytest.approx(math.pi * 20)
    assert d[b + "stem_exit_down"] == 1.0  # theta = 0: straight up the +y axis, 'down' in Allen naming
    assert d[b + "exit_distance"] == 0.0
    assert np.isnan(d[b + "mean_contraction"]) and "fork" in why[b + "mean_contraction"]
    assert d[b + "section_lengths_max"] == 20.0
    assert d[b + "section_tortuosity_mean"] == 1.0
    assert d[b + "section_strahler_orders_max"] == 1


def test_line_neurom():
    m = line()
    assert mf.get("max_branch_order", m, "basal_dendrite", convention="neurom") == 0
    assert mf.get("max_path_distance", m, "basal_dendrite", convention="neurom") == 20.0
    assert mf.get("num_branches", m, "basal_dendrite", convention="neurom") == 1
    assert mf.get("total_length", m, "basal_dendrite", convention="neurom") == 20.0


def test_absent_compartment():
    m = line()
    d, why = mf.compute(m, compartments=["apical_dendrite"], reasons=True)
    assert np.isnan(d["apical_dendrite.total_length"])
    assert "no apical_dendrite" in why["apical_dendrite.total_length"]
    assert d["apical_dendrite.num_nodes"] == 0
    # NeuroM reports sums over an absent neurite type as 0
    assert mf.get("total_length", m, "apical_dendrite", convention="neurom") == 0.0


# ---------------------------------------------------------------------------- symmetric Y
def test_symmetric_y():
    m = sym_y()
    d = mf.compute(m, compartments=["basal_dendrite", "cell"])
    b = "basal_dendrite."
    arm = math.sqrt(200.0)
    assert d[b + "total_length"] == pytest.approx(10 + 2 * arm)
    assert d[b + "num_branches"] == 3
    assert d[b + "num_bifurcations"] == 1
    assert d[b + "num_tips"] == 2
    assert d[b + "max_branch_order"] == 2
    assert d[b + "mean_bifurcation_angle_local"] == pytest.approx(math.pi / 2)
    assert d[b + "mean_bifurcation_angle_remote"] == pytest.approx(math.pi / 2)
    assert d[b + "mean_contraction"] == pytest.approx(1.0)
    assert d[b + "num_outer_bifurcations"] == 1  # fork at 20 > max distance sqrt(1000) / 2
    assert d[b + "partition_asymmetry_max"] == 0.0
    assert d[b + "section_strahler_orders_max"] == 2
    assert d[b + "mean_fragmentation"] == pytest.approx(1.0)  # 3 compartment edges, 3 branches
    assert d["cell.early_branch_path"] == pytest.approx(arm / (20 + arm))
    assert mf.get("max_branch_order", m, "basal_dendrite", convention="neurom") == 1
    assert mf.get("section_path_distances", m, "basal_dendrite", convention="neurom").tolist() == pytest.approx(
        [10.0, 10 + arm, 10 + arm]
    )


def test_multifurcation_conventions():
    m = trifurcation()
    # Allen: a trifurcation is two successive bifurcations: 1 stem + 4 branches
    assert mf.get("num_branches", m, "basal_dendrite") == 5
    assert mf.get("num_bifurcations", m, "basal_dendrite") == 1
    # NeuroM: 4 sections; a bifurcation has exactly two children
    assert mf.get("num_branches", m, "basal_dendrite", convention="neurom") == 4
    assert mf.get("num_bifurcations", m, "basal_dendrite", convention="neurom") == 0
    assert np.isnan(mf.get("mean_bifurcation_angle_local", m, "basal_dendrite"))


def test_type_change_without_fork_starts_a_section():
    m = Morphology(
        [[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, 30, 0]], [5, 1, 1, 1], [1, 3, 3, 4], [-1, 0, 1, 2]
    )
    assert mf.get("num_branches", m, "all_neurites", convention="neurom") == 2
    assert mf.get("total_length", m, "apical_dendrite") == 0.0  # Allen: no edge with both ends apical
    assert mf.get("total_length", m, "apical_dendrite", convention="neurom") == 10.0
    assert mf.get("remote_bifurcation_angles", m, "all_neurites").size == 0


# ---------------------------------------------------------------------------- axon from a dendrite
def test_axon_from_dendrite_allen():
    d, why = mf.compute(axon_on_dendrite(), compartments=["axon"], reasons=True)
    a = "axon."
    assert d[a + "total_length"] == 50.0  # edges with both ends axon
    assert d[a + "max_path_distance"] == 80.0  # from the soma centre: 20 of dendrite, 10 to the axon, 50 of axon
    assert d[a + "num_stems"] == 0
    assert d[a + "exit_distance"] == pytest.approx(math.hypot(10, 20))
    assert d[a + "num_branches"] == 1
    assert d[a + "max_euclidean_distance"] == pytest.approx(math.hypot(60, 20))
    assert mf.get("total_length", axon_on_dendrite(), "axon", convention="neurom") == 60.0


def test_ais_axon_from_dendrite():
    m = axon_on_dendrite()
    d, why = mf.compute(m, compartments=["ais"], reasons=True)
    assert d["ais.from_dendrite"] == 1.0
    assert d["ais.origin_type"] == 3.0
    assert d["ais.origin_id"] == 3.0
    assert d["ais.axon_root_id"] == 5.0
    assert d["ais.num_axon_roots"] == 1.0
    assert d["ais.origin_path_distance"] == 15.0  # 20 um of dendrite minus the 5 um soma radius
    assert d["ais.origin_euclidean_distance"] == 15.0
    assert d["ais.length_to_end"] == 60.0
    assert d["ais.length_to_first_branch"] == 60.0
    assert (d["ais.direction_x"], d["ais.direction_y"], d["ais.direction_z"]) == pytest.approx((1, 0, 0))
    assert np.isnan(d["ais.angle_to_apical"]) and "apical" in why["ais.angle_to_apical"]
    # diameters: 2.0 at the origin (axon root's radius) and at 10 um, then -0.2 per 10 um
    assert d["ais.diameter_mean_10"] == pytest.approx(2.0)
    assert d["ais.diameter_mean_20"] == pytest.approx(1.95)
    assert d["ais.diameter_max_40"] == pytest.approx(2.0)
    assert d["ais.diameter_min_40"] == pytest.approx(1.4)
    assert d["ais.taper_40"] == pytest.approx(0.6 / 40)
    assert d["ais.tortuosity_40"] == pytest.approx(1.0)
    pia = mf.compute(m, compartments=["ais"], features=["angle_to_apical"], pia_direction=(0, 1, 0))
    assert pia["ais.angle_to_apical"] == pytest.approx(math.pi / 2)


def test_ais_axon_on_soma_and_apical_angle():
    # axon straight down from the soma, apical straight up: angle pi
    xyz = [[0, 0, 0], [0, 6, 0], [0, 50, 0]] + [[0, -6 - 5 * k, 0] for k in range(10)]
    types = [1, 4, 4] + [2] * 10
    parent = [-1, 0, 1, 0] + list(range(3, 12))
    m = Morphology(xyz, [5, 2, 2] + [0.5] * 10, types, parent)
    d = mf.compute(m, compartments=["ais"])
    assert d["ais.from_dendrite"] == 0.0 and d["ais.origin_type"] == 1.0
    assert d["ais.origin_path_distance"] == 0.0
    assert d["ais.length_to_end"] == 45.0  # starts at the axon's first node (soma edge inside the soma)
    assert d["ais.angle_to_apical"] == pytest.approx(math.pi)
    assert d["ais.diameter_mean_40"] == pytest.approx(1.0)


def test_ais_flags_missing_and_short_axon():
    d, why = mf.compute(line(), compartments=["ais"], reasons=True)
    assert all(np.isnan(v) for v in d.values())
    assert all(why[k] == "the cell has no axon" for k in d)
    short = Morphology([[0, 0, 0], [0, -8, 0], [0, -20, 0]], [5, 1, 1], [1, 2, 2], [-1, 0, 1])
    d, why = mf.compute(short, compartments=["ais"], reasons=True)
    assert d["ais.length_to_end"] == 12.0
    assert "shorter than the 20 um window" in why["ais.diameter_mean_20"]
    assert d["ais.direction_y"] == pytest.approx(-1.0)
    d, why = mf.compute(short, compartments=["ais"], reasons=True, direction_length=15.0)
    assert "shorter than direction_length" in why["ais.direction_x"]


# ---------------------------------------------------------------------------- Sholl
def star(k: int = 6, r0: float = 5.5, r1: float = 95.5) -> Morphology:
    """k straight radial neurites in 3-D from r0 to r1, nodes every 3 um."""
    dirs = np.random.default_rng(0).normal(size=(k, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    steps = np.arange(r0, r1 + 1e-9, 3.0)
    xyz, parent = [[0.0, 0.0, 0.0]], [-1]
    for d in dirs:
        for j, s in enumerate(steps):
            parent.append(0 if j == 0 else len(xyz) - 1)
            xyz.append((s * d).tolist())
    n = len(xyz)
    return Morphology(xyz, [5.0] + [1.0] * (n - 1), [1] + [3] * (n - 1), parent)


def test_sholl_known_geometry():
    r = mf.sholl(star(6), step=10.0)
    assert r.radii.tolist() == [10.0 * i for i in range(1, 11)]
    assert r.crossings["all_neurites"].tolist() == [6] * 9 + [0]
    assert r.max_crossings["all_neurites"] == 6
    assert r.radius_of_max["all_neurites"] == 10.0
    np.testing.assert_allclose(r.center, 0.0)
    # centre, max radius and compartments are configurable
    r2 = mf.sholl(star(6), step=5.0, center=(0, 0, 0), max_radius=30, compartments=("basal_dendrite", "axon"))
    assert r2.radii.tolist() == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    assert r2.crossings["axon"].tolist() == [0] * 6


def test_sholl_regression_coefficient_on_decaying_arbor():
    # neurites ending at staggered radii: crossings fall with r; k > 0
    m = star(20)
    keep = np.linalg.norm(m.xyz, axis=1) <= 5 + 4.5 * (1 + np.arange(len(m)) % 20)
    r = mf.sholl(m.take(keep | m.soma_mask), step=10.0)
    c = r.crossings["all_neurites"]
    assert c[0] > c[-2] > 0
    assert r.regression_coefficient["all_neurites"] > 0
    assert 0 < r.critical_radius["all_neurites"] <= r.radii[-1]


def test_sholl_bad_step():
    with pytest.raises(MorphError):
        mf.sholl(line(), step=0)


# ---------------------------------------------------------------------------- registry and API
def test_list_features_and_get():
    rows = mf.list_features()
    assert len(rows) == len(REGISTRY)
    assert all(r.definition for r in rows)
    assert isinstance(mf.get("extent", sym_y(), "basal_dendrite"), dict)
    # soma, cell and AIS features are found without naming their compartment
    assert mf.get("early_branch_path", sym_y()) == mf.get("early_branch_path", sym_y(), "cell")
    assert mf.get("surface_area", sym_y()) == pytest.approx(4 * math.pi * 25)
    with pytest.raises(MorphError):
        mf.get("surface_area", sym_y(), "axon")
    with pytest.raises(MorphError):
        mf.get("no_such_feature", sym_y())
    with pytest.raises(MorphError):
        mf.compute(sym_y(), features=["no_such_feature"])
    with pytest.raises(MorphError):
        mf.compute(sym_y(), bogus_option=1)
    with pytest.raises(MorphError):
        mf.compute(sym_y(), convention="lmeasure")


def test_voxel_units_refused():
    m = Morphology([[0, 0, 0], [0, 1, 0]], [1, 1], [1, 3], [-1, 0], units="voxel")
    with pytest.raises(MorphError, match="micrometre"):
        mf.compute(m)


# ---------------------------------------------------------------------------- real files
def test_every_real_swc_gives_a_full_table(data):
    files = sorted(data.glob("swc/*/*.swc")) + sorted(data.glob("images/*/*.swc"))
    assert len(files) >= 30
    df = mf.table(files, progress=False)
    assert df.attrs["failed"] == {}
    assert len(df) == len(files)
    reasons = df.attrs["reasons"]
    isna = df.isna()
    for cell in df.index:
        missing = [c for c in df.columns[isna.loc[cell].to_numpy()] if c not in reasons[cell]]
        assert missing == [], (cell, missing[:5])
    # the standard compartments are always present as columns
    for key in ("axon.total_length", "basal_dendrite.num_branches", "soma.surface_area", "ais.length_to_end",
                "cell.early_branch_path", "all_neurites.sholl_max_crossings"):
        assert key in df.columns
    # no silent zero: a cell with an axon has a positive axon length
    has_axon = df["axon.num_nodes"] > 1
    assert (df.loc[has_axon, "axon.total_length"] > 0).all()


def test_table_records_failures(tmp_path, data):
    bad = tmp_path / "bad.swc"
    bad.write_text("1 1 0 0 0 1 -1\n2 3 0 0 0 1 7\n")
    df = mf.table([data / "swc" / "small" / "neurom_simple.swc", bad, tmp_path / "missing.swc"], progress=False)
    assert list(df.index) == ["neurom_simple"]
    assert set(df.attrs["failed"]) == {"bad", "missing"}


@pytest.mark.parametrize(
    "m",
    [
        Morphology(np.zeros((0, 3)), [], [], []),
        Morphology([[0, 0, 0]], [5], [1], [-1]),
        Morphology([[0, 0, 0], [0, 10, 0]], [5, 1], [1, 2], [-1, 0]),
        Morphology([[0, 0, 0], [0, 10, 0], [5, 5, 5], [5, 15, 5]], [1] * 4, [3, 3, 2, 2], [-1, 0, -1, 2]),
        Morphology([[0, 0, 0]] * 4, [0] * 4, [1, 3, 3, 3], [-1, 0, 1, 1]),
        Morphology([[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, 30, 0]], [1] * 4, [3, 3, 1, 3], [-1, 0, 1, 2]),
    ],
    ids=["empty", "soma-only", "one-node", "no-soma-two-roots", "zero-lengths-and-radii", "soma-mid-tree"],
)
def test_degenerate_cells_give_full_explained_rows(m):
    d, why = mf.compute(m, reasons=True)
    assert len(d) == len(mf.compute(line()))
    assert [k for k, v in d.items() if not np.isfinite(v) and k not in why] == []


def test_moments_as_neuron_morphology(data):
    """neuron_morphology's moments are scipy.stats.describe of the raw coordinates."""
    from morph.io import read_swc

    stats = pytest.importorskip("scipy.stats")
    m = read_swc(data / "swc" / "allen" / "bmtk_Nr5a1_471087815_m.swc")
    for feat, sel in (
        ("node_moments", m.types == 3),
        ("tip_moments", (m.types == 3) & (m.n_children == 0)),
        ("bifurcation_moments", (m.types == 3) & (m.n_children >= 2)),
    ):
        d = mf.get(feat, m, "basal_dendrite")
        r = stats.describe(m.xyz[sel], axis=0)
        for k, a in enumerate("xyz"):
            assert d[f"mean_{a}"] == pytest.approx(r.mean[k])
            assert d[f"var_{a}"] == pytest.approx(r.variance[k])
            assert d[f"std_{a}"] == pytest.approx(np.sqrt(r.variance[k]))
            assert d[f"skew_{a}"] == pytest.approx(r.skewness[k])
            assert d[f"kurtosis_{a}"] == pytest.approx(r.kurtosis[k])


def test_identical_compartments_share_values(data):
    """A dendrite without apical dendrite has the basal dendrite's nodes: same values as
    computing it alone."""
    from morph.io import read_swc

    m = read_swc(data / "swc" / "allen" / "skk_upright_694146546.swc")
    full = mf.compute(m)
    alone = mf.compute(m, compartments=["dendrite"])
    for k, v in alone.items():
        assert full[k] == v or (np.isnan(full[k]) and np.isnan(v)), k
