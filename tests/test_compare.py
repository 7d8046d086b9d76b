"""Tests of morph.compare and `morph compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from morph.cli.main import main
from morph.compare import DIADEM_OP_VOXEL, SegmentIndex, compare, plot_comparison, point_segment_distance
from morph.errors import MorphError
from morph.io import read_swc, write_swc
from morph.morphology import Morphology


def planar_tree() -> Morphology:
    """Trunk (0,0,0)->(100,0,0), continuing to (200,0,0), and a perpendicular branch
    (100,0,0)->(100,80,0); all in the plane z = 0, nodes every 10 um."""
    xyz = [[x, 0, 0] for x in range(0, 201, 10)]
    parent = [-1] + list(range(0, 20))
    fork = 10  # node at (100, 0, 0)
    for k, y in enumerate(range(10, 81, 10)):
        xyz.append([100, y, 0])
        parent.append(fork if k == 0 else len(xyz) - 2)
    n = len(xyz)
    return Morphology(xyz, np.ones(n), np.full(n, 3), parent, name="planar")


def test_identical_trees_score_perfectly():
    g = planar_tree()
    r = compare(g, g, tolerance=2.0)
    assert (r.precision, r.recall, r.f1) == (1.0, 1.0, 1.0)
    assert r.esa == 0 and r.dsa == 0 and r.pds == 0 and r.max_distance == 0
    assert r.gold_length == pytest.approx(280.0) and r.trace_length == pytest.approx(280.0)
    assert r.branch_points.to_dict() == {"gold": 1, "trace": 1, "found": 1, "missed": 0, "extra": 0}
    assert r.tips.found == 2 and r.tips.missed == 0
    assert r.diadem == 1.0 and r.diadem_total_weight == 4.0  # fork (2 tips below) + 2 tips
    assert set(r.compartments) == {"basal_dendrite", "dendrite"}
    assert r.compartments["dendrite"].f1 == 1.0


@pytest.mark.parametrize("shift", [2.5, 10.0])
def test_shift_beyond_tolerance_scores_zero(shift):
    g = planar_tree()
    t = g.translate([0, 0, shift])  # perpendicular to the plane: every distance is `shift`
    r = compare(t, g, tolerance=2.0)
    assert r.precision == 0 and r.recall == 0 and r.f1 == 0
    assert r.esa == pytest.approx(shift) and r.max_distance == pytest.approx(shift)
    assert r.pds == 1.0 and r.dsa == pytest.approx(shift)
    assert r.branch_points.found == (1 if shift < 4 else 0)  # node tolerance 2 x 2


def test_shift_within_tolerance_scores_one():
    g = planar_tree()
    r = compare(g.translate([0, 0, 1.5]), g, tolerance=2.0)
    assert (r.precision, r.recall) == (1.0, 1.0)
    assert r.esa == pytest.approx(1.5) and r.pds == 0 and r.dsa == 0


def test_missing_branch_loses_its_share_of_recall():
    g = planar_tree()
    branch_first = int(np.flatnonzero((g.xyz[:, 0] == 100) & (g.xyz[:, 1] == 10))[0])
    t, removed = g.cut(branch_first)
    assert removed.total_length() == pytest.approx(70.0)  # the fork edge is not in `removed`
    r = compare(t, g, tolerance=2.0, step=0.25)
    # the 80-um branch is lost except its first 2 um, within tolerance of the trunk
    assert r.recall == pytest.approx((280.0 - 78.0) / 280.0, abs=1e-12)
    assert r.precision == 1.0
    assert r.gold_matched_length == pytest.approx(202.0)
    assert r.tips.missed == 1 and r.branch_points.missed == 1
    # DIADEM-style: the fork (weight 2) and the lost tip (weight 1) are missed
    assert r.diadem == pytest.approx(1.0 / 4.0)


def test_vaa3d_measures_by_hand():
    gold = Morphology([[0, 0, 0], [10, 0, 0]], [1, 1], [3, 3], [-1, 0])
    trace = Morphology([[0, 0, 0], [10, 0, 0], [10, 10, 0]], [1, 1, 1], [3, 3, 3], [-1, 0, 1])
    r = compare(trace, gold, tolerance=2.0, dsa_threshold=2.0, vaa3d_step=1.0)
    # trace: 11 + 11 samples; the second edge's are at distances 10, 9, ..., 0
    assert r.esa_trace_to_gold == pytest.approx(55.0 / 22.0)
    assert r.esa_gold_to_trace == 0.0
    assert r.esa == pytest.approx(55.0 / 44.0)
    assert r.dsa == pytest.approx(54.0 / 9.0)  # distances >= 2: 2..10
    assert r.pds_trace_to_gold == pytest.approx(9.0 / 22.0)
    assert r.pds == pytest.approx(9.0 / 44.0)
    assert r.max_distance == 0.0  # Vaa3D keeps the smaller directional maximum
    assert r.recall == 1.0 and r.precision == pytest.approx(12.0 / 20.0)


def test_soma_only_trace_scores_zero():
    g = planar_tree()
    t = Morphology([[0, 0, 0]], [5], [1], [-1])
    r = compare(t, g, tolerance=2.0)
    assert (r.precision, r.recall, r.f1, r.diadem) == (0.0, 0.0, 0.0, 0.0)
    assert r.branch_points.missed == 1 and r.tips.missed == 2
    assert json.loads(r.to_json())["esa"] is None  # Vaa3D measures need an edge
    with pytest.raises(MorphError):
        compare(g, t)  # nothing to compare against


def test_point_on_edge_is_at_zero_distance():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 50, (200, 3))
    b = a + rng.normal(0, 6, (200, 3))
    idx = SegmentIndex(a, b, piece=0.5)
    t = rng.uniform(0, 1, (200, 1))
    on = a + t * (b - a)
    d, _ = idx.query(on)
    assert d.max() < 1e-9
    p = rng.uniform(-10, 60, (1000, 3))
    brute = point_segment_distance(p[:, None, :], a[None], b[None]).min(axis=1)
    np.testing.assert_allclose(idx.query(p)[0], brute, atol=1e-9)


def test_soma_interior_is_ignored():
    # soma of radius 5 at the origin; the trace's neurite starts at the centre instead of
    # the surface, which must not count as extra cable
    gold = Morphology([[0, 0, 0], [5, 0, 0], [50, 0, 0]], [5, 1, 1], [1, 3, 3], [-1, 0, 1])
    trace = Morphology([[0, 0, 0], [1, 0, 0], [50, 0, 0]], [5, 1, 1], [1, 3, 3], [-1, 0, 1])
    r = compare(trace.translate([0, 1.0, 0]), gold, tolerance=2.0)
    assert r.precision == 1.0 and r.recall == 1.0
    assert r.gold_sampled_length == pytest.approx(45.0)


def test_units_and_default_tolerance():
    g = planar_tree()
    gv = g._derive(units="voxel")
    r = compare(gv, gv)
    assert r.units == "voxel" and r.tolerance == 2.0
    r = compare(gv, gv, voxel_size=(0.3, 0.3, 0.5))
    assert r.units == "um" and r.tolerance == pytest.approx(0.6)  # 2 voxel widths
    assert r.gold_length == pytest.approx(280 * 0.3)
    r = compare(gv, gv, voxel_size=(0.3, 0.3, 1.0))
    assert r.tolerance == pytest.approx(1.0)  # at least one z step
    # a trace in um against a gold in voxels, converted with the voxel size
    r = compare(g.scale((0.3, 0.3, 1.0)), gv, voxel_size=(0.3, 0.3, 1.0))
    assert r.f1 == pytest.approx(1.0)
    with pytest.raises(MorphError):
        compare(g, gv)  # um vs voxel without a voxel size
    # a gold in voxels that does not say so, against a trace already in micrometres
    r = compare(g.scale((0.3, 0.3, 1.0)), g, gold_units="voxel", voxel_size=(0.3, 0.3, 1.0))
    assert r.f1 == pytest.approx(1.0) and r.esa == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(MorphError):
        compare(g, g, tolerance=-1)


def test_compartments_typed():
    g = planar_tree()
    types = g.types.copy()
    types[21:] = 2  # the perpendicular branch is axon
    g = g._derive(types=types)
    t = g._derive(types=np.where(g.types == 2, 3, g.types))  # traced as dendrite
    r = compare(t, g, tolerance=2.0)
    assert r.f1 == 1.0
    assert r.compartments["axon"].recall < 0.05
    assert r.compartments["basal_dendrite"].recall == 1.0
    assert r.compartments["basal_dendrite"].precision < 0.8


@pytest.fixture(scope="module")
def op1(data):
    return read_swc(data / "images" / "diadem_OP" / "OP_1.gold.swc")


def test_diadem_gold_with_itself(op1):
    r = compare(op1, op1, units="voxel", voxel_size=DIADEM_OP_VOXEL, tolerance=3)
    assert (r.precision, r.recall, r.f1, r.diadem) == (1.0, 1.0, 1.0, 1.0)
    assert r.esa == pytest.approx(0, abs=1e-9) and r.pds == 0
    assert r.branch_points.gold == r.branch_points.found == len(op1.branch_points) == 48
    assert r.tips.found == 49
    # z is stretched by 3.03: cable longer than in raw voxel units
    assert r.gold_length > op1.total_length()
    assert r.gold_length == pytest.approx(op1.scale((1, 1, 3.03)).total_length())


def test_diadem_gold_translated_within_tolerance(op1):
    t = op1.translate([1.0, 1.0, 0.0])  # sqrt(2) voxels in xy, under the 3-voxel tolerance
    r = compare(t, op1, units="voxel", voxel_size=DIADEM_OP_VOXEL, tolerance=3)
    assert (r.precision, r.recall, r.diadem) == (1.0, 1.0, 1.0)
    assert 0 < r.esa <= np.sqrt(2) + 1e-9 and r.max_distance <= np.sqrt(2) + 1e-9
    assert r.pds == 0 and r.branch_points.missed == 0


@pytest.mark.parametrize("k", range(1, 10))
def test_every_diadem_gold_self_and_translated(data, k):
    g = read_swc(data / "images" / "diadem_OP" / f"OP_{k}.gold.swc")
    kw = {"units": "voxel", "voxel_size": DIADEM_OP_VOXEL, "tolerance": 3}
    r = compare(g, g, **kw)
    assert (r.f1, r.diadem, r.branch_points.missed, r.tips.missed) == (1.0, 1.0, 0, 0)
    # a shift of 1.5 x-pixels and 0.5 slice (1.5 x-pixels in z after scaling by 3.03)
    t = compare(g.translate([1.5, 0.0, 0.5]), g, **kw)
    shift = float(np.hypot(1.5, 0.5 * 3.03))
    assert (t.precision, t.recall, t.diadem) == (1.0, 1.0, 1.0)
    assert t.esa <= shift + 1e-9 and t.max_distance <= shift + 1e-9
    assert t.gold_length == pytest.approx(t.trace_length)


def test_min_terminal_length_ignores_short_spurs():
    g = planar_tree()
    # a 3-um spur on the trunk at (50, 0, 0)
    spur = Morphology([[50, 0, 0], [50, -3, 0]], [1, 1], [3, 3], [-1, 0])
    i50 = int(np.flatnonzero((g.xyz[:, 0] == 50) & (g.xyz[:, 1] == 0))[0])
    gs = g.merge(spur.take(np.array([1])), attach_to=i50)
    assert len(gs.tips) == 3
    r = compare(g, gs, tolerance=2.0)
    assert r.diadem < 1.0 and r.tips.missed == 1
    r = compare(g, gs, tolerance=2.0, min_terminal_length=5.0)
    assert r.diadem == 1.0


def test_json_is_strict_when_a_compartment_is_missing():
    g = planar_tree()
    types = g.types.copy()
    types[21:] = 4  # the perpendicular branch is apical
    g = g._derive(types=types)
    t = g.take(g.types == 3)  # a trace without the apical dendrite
    r = compare(t, g, tolerance=2.0)
    d = json.loads(r.to_json())
    assert d["compartments"]["apical_dendrite"]["precision"] is None
    assert d["compartments"]["apical_dendrite"]["recall"] == 0.0
    assert set(d) >= {"precision", "recall", "f1", "esa", "dsa", "pds", "diadem", "branch_points", "tips"}


def test_diadem_gold_with_a_subtree_removed(op1):
    # remove the largest subtree hanging from a branch point deep in the arbor
    sec = op1.sections
    starts = sec.start[sec.parent >= 0]
    sizes = [(op1.subtree(int(s)).total_length(), int(s)) for s in starts]
    lengths = np.array([s[0] for s in sizes])
    pick = sizes[int(np.argmin(np.abs(lengths - 0.2 * op1.total_length())))][1]
    rest, removed = op1.cut(pick)
    scaled = op1.scale((1, 1, 3.03))
    lost = scaled.subtree(pick).total_length() + scaled.edge_length[pick]
    total = scaled.total_length()
    r = compare(rest, op1, units="voxel", voxel_size=DIADEM_OP_VOXEL, tolerance=3, step=0.25)
    assert r.precision == 1.0
    # lost cable minus at most the stretch within tolerance of what remains
    assert 1 - lost / total - 1e-9 <= r.recall <= 1 - (lost - 3 * 4) / total
    assert r.tips.missed == removed.tips.size
    assert r.diadem < 1.0


def test_plot_and_json(tmp_path):
    g = planar_tree()
    r = compare(g.translate([0, 0, 1.0]), g)
    d = json.loads(r.to_json())
    assert d["precision"] == 1.0 and d["branch_points"]["found"] == 1
    out = plot_comparison(r, tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(MorphError):
        plot_comparison(r, tmp_path / "c.png")
    plot_comparison((g, g), tmp_path / "c.png", force=True)


# ---------------------------------------------------------------------------- CLI
def test_cli_table_json_plot(tmp_path, capsys):
    g = planar_tree()
    gp = write_swc(g, tmp_path / "gold.swc")
    tp = write_swc(g.translate([0, 0, 3.0]), tmp_path / "trace.swc")
    assert main(["compare", str(tp), str(gp), "--tolerance", "2"]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "ESA" in out
    assert main(["compare", str(gp), str(gp), "--json", "--plot", str(tmp_path / "p.png")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["f1"] == 1.0 and (tmp_path / "p.png").exists()
    r = compare(str(tp), gp, tolerance=4)  # paths are read
    assert r.f1 == 1.0 and r.esa == pytest.approx(3.0)
    # refuses to overwrite the plot without --force
    assert main(["compare", str(gp), str(gp), "--plot", str(tmp_path / "p.png")]) == 2
    assert main(["compare", str(gp), str(gp), "--plot", str(tmp_path / "p.png"), "-f"]) == 0


def test_cli_bad_input(tmp_path, capsys):
    g = planar_tree()
    gp = write_swc(g, tmp_path / "gold.swc")
    bad = tmp_path / "bad.swc"
    bad.write_text("1 1 0 0 0 1 -1\n2 3 oops 0 0 1 1\n")
    assert main(["compare", str(tmp_path / "missing.swc"), str(gp)]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["compare", str(bad), str(gp)]) == 2
    err = capsys.readouterr().err
    assert "bad.swc" in err and "Traceback" not in err
    assert _run(["compare", str(gp), str(gp), "--tolerance", "-3"]) == 2  # usage error
    gv = tmp_path / "gv.swc"
    write_swc(g._derive(units="voxel"), gv)
    assert main(["compare", str(gp), str(gv)]) == 2  # um vs voxel, no voxel size
    assert "voxel" in capsys.readouterr().err


def _run(argv: list[str]) -> int:
    """Exit code of ``morph ARGV`` (argparse usage errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def test_scores_do_not_change_when_the_gold_is_read_back_from_its_file(tmp_path):
    """Edges a whole number of steps long are cut into that many pieces even when the SWC's
    six decimals leave them a hair longer: the same trees score the same in memory and read
    back (an extra piece per such edge would move the recall by a few ten-thousandths)."""
    rng = np.random.default_rng(1)
    g = planar_tree()  # every edge exactly 10 um
    noisy = g._derive(xyz=g.xyz + rng.uniform(-4e-7, 4e-7, g.xyz.shape))  # as after a round trip
    t = g._derive(xyz=g.xyz + [0.0, 1.9, 0.3] + rng.normal(0, 0.4, g.xyz.shape))  # some samples in, some out
    a, b = compare(t, g, tolerance=2.0, step=0.5), compare(t, noisy, tolerance=2.0, step=0.5)
    assert a.gold_sampled_length == pytest.approx(b.gold_sampled_length)
    assert 0.1 < a.recall < 0.9
    assert (a.recall, a.precision) == pytest.approx((b.recall, b.precision), abs=1e-6)
    back = read_swc(write_swc(g, tmp_path / "g.swc"))
    c = compare(t, back, tolerance=2.0, step=0.5)
    assert (a.recall, a.precision) == pytest.approx((c.recall, c.precision), abs=1e-6)


def clutter_scene() -> tuple[Morphology, Morphology, Morphology]:
    """The planar tree as gold; clutter: a fragment 30 um long at y = 40 (x 20..50) and a
    debris ball of radius 1.5 um at (150, 30, 0); a trace: the gold, a false branch running
    onto the fragment and along it, and a spur ending in the ball."""
    g = planar_tree()
    frag = np.array([[x, 40.0, 0.0] for x in range(20, 51, 2)])
    clutter = Morphology(np.vstack([frag, [[150.0, 30.0, 0.0]]]), np.r_[np.full(len(frag), 0.5), 1.5],
                         np.zeros(len(frag) + 1, dtype=np.int64), np.r_[-1, np.arange(len(frag) - 1), -1])
    # false branch from the trunk at (20, 0, 0) up to (20, 40, 0), then along the fragment to x = 50
    up = [[20.0, y, 0.0] for y in range(5, 41, 5)]
    along = [[x, 40.0, 0.0] for x in range(25, 51, 5)]
    spur = [[150.0, y, 0.0] for y in range(5, 30, 4)]  # from (150, 0, 0) to (150, 29, 0): into the ball
    xyz = np.vstack([g.xyz, up, along, spur])
    n0, nu, na = len(g), len(up), len(along)
    parent = np.r_[g.parent, 2, n0 + np.arange(nu - 1), n0 + nu - 1, n0 + nu + np.arange(na - 1),
                   15, n0 + nu + na + np.arange(len(spur) - 1)]
    t = Morphology(xyz, np.ones(len(xyz)), np.full(len(xyz), 3), parent)
    return g, clutter, t


def test_cable_traced_on_the_clutter():
    g, clutter, t = clutter_scene()
    r = compare(t, g, tolerance=2.0, clutter=clutter)
    # on the fragment: the 30 um along it and the last 2 um of the branch climbing to it;
    # in the ball: the spur's last part within 1.5 + 2 um of the centre (y >= 26.5)
    assert r.clutter_length == pytest.approx(30.0 + 2.0 + 2.5, abs=1.0)
    assert r.clutter_fraction == pytest.approx(r.clutter_length / r.trace_sampled_length)
    assert "trace on clutter" in r.format_table()
    assert r.to_dict()["clutter_length"] == pytest.approx(r.clutter_length)
    # the gold traced alone touches none of it; without clutter nothing is said
    assert compare(g, g, clutter=clutter).clutter_length == 0.0
    plain = compare(t, g, tolerance=2.0)
    assert plain.clutter_length is None and "clutter" not in plain.format_table()
    # cable near the clutter that is also near the gold is the gold's: a clutter chain
    # running along the trunk 1 um off takes nothing from a trace of the trunk
    beside = Morphology([[0, 1, 0], [200, 1, 0]], [0.5, 0.5], [0, 0], [-1, 0])
    assert compare(g, g, clutter=beside).clutter_length == 0.0


def test_cli_compare_clutter(tmp_path, capsys):
    g, clutter, t = clutter_scene()
    gp, cp, tp = (write_swc(m, tmp_path / f"{k}.swc") for k, m in (("gold", g), ("clutter", clutter), ("trace", t)))
    assert main(["compare", str(tp), str(gp), "--tolerance", "2", "--clutter", str(cp)]) == 0
    out = capsys.readouterr().out
    assert "trace on clutter" in out
    assert main(["compare", str(tp), str(gp), "--json", "--clutter", str(cp)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["clutter_length"] > 30
    assert main(["compare", str(tp), str(gp), "--clutter", str(tmp_path / "none.swc")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_f1_of_two_trees_without_cable_is_undefined():
    s = Morphology([[0, 0, 0]], [5], [1], [-1])
    s2 = s.merge(s, attach_to=0)  # two soma nodes: no neurite cable in either tree
    r = compare(s2, s2)
    assert np.isnan(r.precision) and np.isnan(r.recall) and np.isnan(r.f1)
