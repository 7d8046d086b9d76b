"""Agreement with the field's reference values: the Allen pipeline (skeleton_keys) on the
three upright cells, and NeuroM's published values for its test cells."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import morph.features as mf
from morph.io import read_swc

SKK = (606271263, 694146546, 740135032)

#: Reference features morph does not compute, and why (also in docs/features.md).
NOT_COMPUTED = {
    "aligned_dist_from_pia": "needs the pia/white-matter surfaces of the slice (layer drawings)",
    "depth_pc_0": "PCA of layer-aligned depth profiles fitted on a population of cells",
    "depth_pc_1": "PCA of layer-aligned depth profiles fitted on a population of cells",
    "emd_with_basal_dendrite": "earth mover's distance between layer-aligned depth profiles",
}
#: Reference features computed on a different depth axis (upright y instead of layer-aligned depth).
DIFFERENT_AXIS = ("frac_above", "frac_intersect", "frac_below")
COUNTS = {
    "num_branches",
    "max_branch_order",
    "num_outer_bifurcations",
    "calculate_number_of_stems",
}


def _key(feature: str, compartment: str, dimension: str) -> str:
    comp = "cell" if compartment == "none" else compartment
    name = {"calculate_number_of_stems": "num_stems"}.get(feature, feature)
    if name.startswith("frac_"):
        _, where, other = name.split("_", 2)
        return f"{comp}.frac_{where}_{other}"
    return f"{comp}.{name}" + ("" if dimension == "none" else f"_{dimension}")


@pytest.fixture(scope="module")
def skk(data):
    ref = pd.read_csv(data / "reference" / "skeleton_keys_example_features_long.csv", index_col=0)
    got = {sid: mf.compute(read_swc(data / "swc" / "allen" / f"skk_upright_{sid}.swc")) for sid in SKK}
    return ref, got


@pytest.mark.parametrize("sid", SKK)
def test_skeleton_keys_agreement(skk, sid):
    ref, got = skk
    rows = ref[ref.specimen_id == sid]
    checked = 0
    for _, r in rows.iterrows():
        if r.feature in NOT_COMPUTED or r.feature.startswith(DIFFERENT_AXIS):
            continue
        key = _key(r.feature, r.compartment_type, r.dimension)
        assert key in got[sid], key
        value = got[sid][key]
        if r.feature in COUNTS:
            assert value == r.value, (key, value, r.value)
        else:
            assert value == pytest.approx(r.value, rel=0.01, abs=1e-9), (key, value, r.value)
        checked += 1
    assert checked == 36


@pytest.mark.parametrize("sid", SKK)
def test_skeleton_keys_overlap_close_on_upright_depth(skk, sid):
    """frac_* use layer-aligned depth in skeleton_keys; on the upright cell they are close."""
    ref, got = skk
    rows = ref[(ref.specimen_id == sid) & ref.feature.str.startswith(DIFFERENT_AXIS)]
    assert len(rows) == 6
    for _, r in rows.iterrows():
        v = got[sid][_key(r.feature, r.compartment_type, r.dimension)]
        assert abs(v - r.value) < 0.05


def test_every_reference_feature_is_computed_or_listed(skk):
    ref, got = skk
    names = set(ref.feature)
    listed = set(NOT_COMPUTED) | {n for n in names if n.startswith(DIFFERENT_AXIS)}
    for n in names - listed:
        r = ref[ref.feature == n].iloc[0]
        assert _key(n, r.compartment_type, r.dimension) in got[SKK[0]]


def test_axon_from_dendrite_is_measured(skk):
    """694146546 and 740135032 carry their axon on a dendrite: no zero axon metrics."""
    _, got = skk
    for sid in (694146546, 740135032):
        d = got[sid]
        assert d["ais.from_dendrite"] == 1.0
        assert d["axon.exit_distance"] > 0
        for k in ("total_length", "max_path_distance", "mean_contraction", "num_branches"):
            assert d[f"axon.{k}"] > 0


# ---------------------------------------------------------------------------- NeuroM
NM_MAP = {
    "number_of_sections": "num_branches",
    "number_of_neurites": "num_stems",
    "number_of_segments": "num_segments",
    "section_path_distances": "section_path_distances",
    "section_radial_distances": "section_radial_distances",
    "trunk_section_lengths": "trunk_section_lengths",
    "trunk_origin_radii": "trunk_origin_radii",
    "local_bifurcation_angles": "local_bifurcation_angles",
    "remote_bifurcation_angles": "remote_bifurcation_angles",
    "number_of_sections_per_neurite": "sections_per_neurite",
}
NM_TYPES = {
    "": "all_neurites",
    "NeuriteType.all": "all_neurites",
    "NeuriteType.axon": "axon",
    "NeuriteType.basal_dendrite": "basal_dendrite",
    "NeuriteType.apical_dendrite": "apical_dendrite",
}


def test_neurom_point_neuron_values(data):
    ref = json.loads((data / "reference" / "neurom_point_neuron_feature_values.json").read_text())["swc"]
    m = read_swc(data / "swc" / "small" / "neurom_Neuron.swc")
    n = 0
    for feat, per_type in ref.items():
        if feat.startswith("soma"):
            continue
        for t, expected in per_type.items():
            if t not in NM_TYPES:
                continue
            got = np.atleast_1d(np.asarray(mf.get(NM_MAP[feat], m, NM_TYPES[t], convention="neurom"), float))
            exp = np.asarray(expected, float)
            assert got.shape == exp.shape, (feat, t)
            np.testing.assert_allclose(np.sort(got), np.sort(exp), rtol=1e-5, atol=1e-5, err_msg=f"{feat} {t}")
            n += 1
    assert n >= 40
    for feat, name in (("soma_radii", "radius"), ("soma_surface_areas", "surface_area"), ("soma_volumes", "volume")):
        assert mf.get(name, m, "soma", convention="neurom") == pytest.approx(ref[feat][""][0], rel=1e-9)


def test_neurom_extracted_stats(data):
    df = pd.read_csv(data / "reference" / "neurom_extracted-stats.csv", header=[0, 1], index_col=0)
    n = 0
    for _, row in df.iterrows():
        m = read_swc(data / "swc" / "small" / f"neurom_{row[('property', 'name')]}")
        for (comp, stat), expected in row.items():
            if comp == "property":
                continue
            c = {"all": "all_neurites", "morphology": "all_neurites"}.get(comp, comp)

            def g(name, c=c, m=m):
                return mf.get(name, m, c, convention="neurom")

            if stat == "max_section_lengths":
                sl = g("section_lengths")
                got = float(sl.max()) if sl.size else np.nan
            elif stat == "sum_section_lengths":
                got = g("total_length")
            elif stat == "sum_section_volumes":
                got = g("total_volume")
            elif stat == "max_section_branch_orders":
                bo = g("section_branch_orders")
                got = float(bo.max()) if bo.size else np.nan
            elif stat.startswith("max_segment_midpoints"):
                got = g("segment_midpoints")["xyz"[int(stat[-1])]]
            elif stat == "mean_max_radial_distance":
                got = g("max_euclidean_distance")
            elif stat == "mean_soma_radius":
                got = mf.get("radius", m, "soma", convention="neurom")
            else:
                raise AssertionError(stat)
            if np.isnan(expected):
                assert np.isnan(got), (comp, stat)
            else:
                assert got == pytest.approx(expected, rel=1e-6), (row[("property", "name")], comp, stat)
            n += 1
    assert n == 2 * 34


def test_neurom_totals_for_neuron(data):
    m = read_swc(data / "swc" / "small" / "neurom_Neuron.swc")
    assert mf.get("total_length", m, convention="neurom") == pytest.approx(840.685, abs=1e-3)
    assert mf.get("num_branches", m, convention="neurom") == 84
    assert mf.get("num_bifurcations", m, convention="neurom") == 40
    assert mf.get("num_tips", m, convention="neurom") == 44


def test_sholl_matches_neurom_counting(data):
    """Same crossing rule as NeuroM's sholl_crossings on its test cell."""
    m = read_swc(data / "swc" / "small" / "neurom_Neuron.swc")
    r = mf.sholl(m, step=5.0, compartments=("all_neurites", "axon"))
    expected_all = {5.0: 4, 10.0: 8, 20.0: 8}  # neurom.features.get("sholl_crossings", radii=[5, 10, 20])
    for radius, n in expected_all.items():
        assert r.crossings["all_neurites"][np.flatnonzero(r.radii == radius)[0]] == n


NM_LIVE = [
    ("section_lengths", "section_lengths"),
    ("section_strahler_orders", "section_strahler_orders"),
    ("partition_asymmetry", "partition_asymmetry"),
    ("section_tortuosity", "section_tortuosity"),
    ("section_taper_rates", "section_taper_rates"),
    ("segment_radii", "segment_radii"),
    ("terminal_path_lengths", "terminal_path_lengths"),
    ("section_branch_orders", "section_branch_orders"),
    ("section_path_distances", "section_path_distances"),
    ("section_radial_distances", "section_radial_distances"),
    ("local_bifurcation_angles", "local_bifurcation_angles"),
    ("remote_bifurcation_angles", "remote_bifurcation_angles"),
    ("total_length", "total_length"),
    ("number_of_sections", "num_branches"),
    ("number_of_bifurcations", "num_bifurcations"),
    ("number_of_leaves", "num_tips"),
    ("max_radial_distance", "max_euclidean_distance"),
    ("total_area", "total_surface_area"),
    ("total_volume", "total_volume"),
]


@pytest.mark.parametrize(
    "name", ["small/neurom_strahler.swc", "allen/bmtk_Nr5a1_471087815_m.swc", "small/tmd_sample.swc"]
)
def test_distributions_match_installed_neurom(data, name):
    """NeuroM-convention values equal NeuroM's own on real cells (NeuroM is a benchmark peer)."""
    neurom = pytest.importorskip("neurom")
    from neurom import features

    path = data / "swc" / name
    n = neurom.load_morphology(str(path))
    m = read_swc(path)
    for nm_name, ours in NM_LIVE:
        a = np.sort(np.atleast_1d(np.asarray(features.get(nm_name, n), float)))
        b = np.sort(np.atleast_1d(np.asarray(mf.get(ours, m, convention="neurom"), float)))
        assert a.shape == b.shape, nm_name
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=nm_name)
