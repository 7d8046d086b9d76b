"""Proofreading edits (``morph.edit``, ``morph edit``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import morph.edit as ed
from morph.cli.main import main
from morph.errors import MorphError
from morph.io import read_swc, write_swc
from morph.morphology import APICAL, AXON, BASAL, SOMA, Morphology


def cell() -> Morphology:
    """Soma at the origin; dendrite A along +x (1-10, 5 um steps) with a 10 um spur along +y
    from its node at x = 20 (11-12); an axon B along -y (13-18); a dendrite C along +y
    (19-26), forking at y = 20 into C1 (23-24, towards +x) and C2 (25-26, towards -x)."""
    xyz = [(0, 0, 0)]
    xyz += [(5 * k, 0, 0) for k in range(1, 11)]  # A: 1..10
    xyz += [(20, 5, 0), (20, 10, 0)]  # spur: 11..12 from node 4 (x = 20)
    xyz += [(0, -5 * k, 0) for k in range(1, 7)]  # B: 13..18
    xyz += [(0, 5 * k, 0) for k in range(1, 5)]  # C trunk: 19..22 (y = 5 .. 20)
    xyz += [(5, 25, 0), (10, 30, 0)]  # C1: 23..24
    xyz += [(-5, 25, 0), (-10, 30, 0)]  # C2: 25..26
    parent = [-1] + [0] + list(range(1, 10)) + [4, 11] + [0] + list(range(13, 18)) + [0, 19, 20, 21] + [22, 23] + [22, 25]
    types = [SOMA] + [BASAL] * 12 + [AXON] * 6 + [BASAL] * 8
    return Morphology(np.asarray(xyz, float), np.full(len(xyz), 0.5), np.asarray(types), np.asarray(parent), units="um")


def test_delete_branch_removes_the_picked_branch_from_its_branch_point() -> None:
    m = cell()
    out, note = ed.delete_branch(m, (20.5, 9.0, 0.3))  # on the spur
    assert len(out) == len(m) - 2 and not np.any(np.all(out.xyz == (20, 10, 0), axis=1))
    assert (out.types == BASAL).sum() == 18 and out.total_length() == pytest.approx(m.total_length() - 10)
    assert note == "edit: deleted the branch at (20.0, 10.0, 0.0) um (2 nodes, 10.0 um of cable)"
    assert out.header[-1] == note and not m.header  # m itself is not edited
    # on A beyond the spur: A's continuation from the branch point goes, the spur stays
    out, _ = ed.delete_branch(m, (41, 0, 0))
    assert out.xyz[:, 0].max() == 20 and np.any(np.all(out.xyz == (20, 10, 0), axis=1))
    # on C1: only C1
    out, _ = ed.delete_branch(m, (10, 29, 0))
    assert len(out) == len(m) - 2 and np.any(np.all(out.xyz == (-10, 30, 0), axis=1))


def test_cut_at_removes_the_node_and_all_beyond() -> None:
    m = cell()
    out, note = ed.cut_at(m, (15, 0.5, 0))  # A's node at x = 15: with it, the spur and the rest of A
    assert out.xyz[out.types == BASAL][:, 0].max() == 10 and len(out) == len(m) - 10
    assert "cut at (15.0, 0.0, 0.0) um (10 nodes, 50.0 um of cable)" in note
    assert out.roots.size == 1


def _node(m: Morphology, xyz) -> int:
    return int(np.flatnonzero(np.all(np.isclose(m.xyz, xyz), axis=1))[0])


def test_join_moves_a_branch_to_hang_from_another_node() -> None:
    m = cell()
    out, note = ed.join(m, (20, 9, 0), (0.5, 15, 0))  # the spur onto C's trunk at y = 15
    tip, base, c15, a20 = (_node(out, p) for p in ((20, 10, 0), (20, 5, 0), (0, 15, 0), (20, 0, 0)))
    assert out.parent[tip] == c15 and out.parent[base] == tip  # joined at its nearest node, reversed
    assert out.n_children[a20] == 1 and len(out) == len(m) and out.roots.size == 1
    assert note == ("edit: the branch at (20.0, 10.0, 0.0) um (2 nodes) joined at (20.0, 10.0, 0.0) um to the "
                    "node at (0.0, 15.0, 0.0) um (20.6 um apart)")
    with pytest.raises(MorphError, match="lies on the branch being moved"):
        ed.join(m, (45, 0, 0), (50, 0, 0))
    # a piece traced apart (a root of its own) joined to the soma: the soma counts from its surface
    piece = Morphology(np.vstack([m.xyz, [(-12, 0, 0), (-20, 0, 0)]]), np.r_[m.radius, 0.5, 0.5],
                       np.r_[m.types, BASAL, BASAL], np.r_[m.parent, -1, 27], units="um")
    piece = piece._derive(radius=np.where(piece.soma_mask, 6.0, piece.radius))
    out, _ = ed.join(piece, (-20, 0, 0), (-7, 0, 0))  # 1 um outside the 6 um soma
    assert out.roots.size == 1 and out.soma_mask[out.parent[_node(out, (-12, 0, 0))]]


def test_set_axon_apical_and_dendrite() -> None:
    m = cell()
    out, note = ed.set_axon(m, (0, 15, 0))  # C becomes the axon, B basal dendrite
    assert np.all(out.types[19:27] == AXON) and np.all(out.types[13:19] == BASAL)
    assert "axon set at (0.0, 15.0, 0.0) um, from the soma" in note
    out, note = ed.set_apical(m, (10, 30, 0))  # C's whole stem from the soma, not only C1
    assert np.all(out.types[19:27] == APICAL) and np.all(out.types[13:19] == AXON)
    assert "(8 nodes, 43.3 um)" in note
    again, _ = ed.set_apical(out, (35, 0, 0))  # another stem: C back to basal
    assert np.all(again.types[1:11] == APICAL) and np.all(again.types[19:27] == BASAL)
    den, note = ed.set_dendrite(out, (0, -20, 0))  # the axon B becomes basal; C stays apical
    assert np.all(den.types[13:19] == BASAL) and np.all(den.types[19:27] == APICAL)
    assert "the axon at (0.0, -20.0, 0.0) um relabelled basal dendrite (6 nodes" in note
    with pytest.raises(MorphError, match="already basal dendrite"):
        ed.set_dendrite(m, (35, 0, 0))


def test_set_dendrite_relabels_only_the_picked_compartment() -> None:
    """An axon hanging from a dendrite, and a second axon piece elsewhere: only the picked
    axon's connected nodes become dendrite."""
    m = cell()
    types = m.types.copy()
    types[[7, 8, 9, 10]] = AXON  # the end of A as a second axon piece
    m = m._derive(types=types)
    out, _ = ed.set_dendrite(m, (45, 0, 0))
    assert np.all(out.types[7:11] == BASAL) and np.all(out.types[13:19] == AXON)
    # along B: axon, one dendrite node, axon again: the piece beyond the dendrite node stays
    types[16] = BASAL
    out, _ = ed.set_dendrite(m._derive(types=types), (0, -5, 0))
    assert np.all(out.types[13:17] == BASAL) and np.all(out.types[17:19] == AXON)


def test_points_must_lie_on_the_neurites() -> None:
    m = cell()
    with pytest.raises(MorphError, match=r"the point \(30.0, 20.0, 0.0\) um is 14.1 um from the nearest neurite node"):
        ed.cut_at(m, (30, 20, 0))
    assert ed.nearest_node(m, (0.4, 0.4, 0.0), snap_um=10) != 0  # the soma node is never picked
    lone = Morphology(np.array([[0.0, 0, 0], [5, 0, 0], [10, 0, 0]]), np.ones(3), np.array([BASAL] * 3),
                      np.array([-1, 0, 1]), units="um")  # no soma: cutting at its root leaves nothing
    with pytest.raises(MorphError, match="would remove every node"):
        ed.cut_at(lone, (0, 0, 0))
    with pytest.raises(MorphError, match="voxel units"):
        ed.cut_at(m._derive(units="voxel"), (15, 0, 0))
    with pytest.raises(MorphError, match="no soma"):
        ed.set_apical(m.take(np.arange(1, len(m))), (15, 0, 0))
    parent = m.parent.copy()
    parent[19] = -1  # C a piece of its own
    apart = m._derive(parent=parent)
    with pytest.raises(MorphError, match="not joined to the soma"):
        ed.set_apical(apart, (0, 20, 0))


def test_cli_applies_edits_in_order_and_records_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "cell.swc"
    m = cell()
    m = m._derive(voxel_size=(0.5, 0.5, 1.0))
    write_swc(m, src)
    out = tmp_path / "fixed.swc"
    rc = main(["edit", str(src), "-o", str(out), "--delete", "20,10,0", "--axon", "0,15,0", "--cut", "45,0,0"])
    assert rc == 0
    got = read_swc(out)
    edits = [h for h in got.header if h.startswith("edit:")]
    assert [e.split(" at ")[0] for e in edits] == ["edit: deleted the branch", "edit: axon set", "edit: cut"]
    assert len(got) == len(m) - 2 - 2 and (got.types == AXON).sum() == 8
    assert "fixed.swc: 23 nodes" in capsys.readouterr().out
    # in voxels, scaled by the header's voxel size: (90, 0, 0) voxels is x = 45 um
    rc = main(["edit", str(src), "-o", str(tmp_path / "v.swc"), "--units", "voxel", "--cut", "90,0,0"])
    assert rc == 0 and read_swc(tmp_path / "v.swc").xyz[:, 0].max() == 40
    # the order matters: after the cut, nothing is left at x = 50, and the error says why
    rc = main(["edit", str(src), "-o", str(tmp_path / "w.swc"), "--cut", "45,0,0", "--delete", "50,0,0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--delete 50,0,0: the point (50.0, 0.0, 0.0) um lies on a part already removed by the " \
        "earlier --cut 45,0,0 of this command" in err
    assert not (tmp_path / "w.swc").exists()
    # refusals before any work: an existing output, no edit at all
    rc = main(["edit", str(src), "-o", str(out), "--cut", "45,0,0"])
    assert rc == 2 and "output exists" in capsys.readouterr().err
    rc = main(["edit", str(src), "-o", str(tmp_path / "j.swc"), "--join", "20,10,0", "0,15,0", "--join", "1,1,1", "9,9,9"])
    assert rc == 2 and "--join 1,1,1 9,9,9: the point (1.0, 1.0, 1.0) um is" in capsys.readouterr().err
    rc = main(["edit", str(src), "-o", str(tmp_path / "n.swc")])
    assert rc == 2 and "no edit given" in capsys.readouterr().err


def _g(tmp_path: Path) -> Path:
    """A small cell: soma, a basal dendrite along +y forking at y = 20, an axon along -y."""
    src = tmp_path / "g.swc"
    src.write_text("1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n4 3 5 30 0 1 3\n5 3 -5 30 0 1 3\n"
                   "6 2 0 -10 0 1 1\n7 2 0 -20 0 1 6\n")
    return src


def test_apical_point_must_lie_on_a_dendrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = cell()
    with pytest.raises(MorphError, match=r"the apical point \(0.0, -20.0, 0.0\) um lies on the axon .*not on a "
                       r"dendrite") as e:
        ed.set_apical(m, (0, -20, 0))
    assert "--dendrite" in (e.value.hint or "")
    custom = m._derive(types=np.where(np.arange(len(m)) >= 19, 7, m.types))  # C of a custom type
    with pytest.raises(MorphError, match="lies on the custom 7"):
        ed.set_apical(custom, (0, 15, 0))
    src, out = _g(tmp_path), tmp_path / "x.swc"
    assert main(["edit", str(src), "-o", str(out), "--apical", "0,-20,0"]) == 2
    err = capsys.readouterr().err
    assert "--apical 0,-20,0: the apical point (0.0, -20.0, 0.0) um lies on the axon" in err
    assert "apical dendrite set" not in err and not out.exists()
    # relabelled dendrite first, the same point then makes the apical dendrite
    assert main(["edit", str(src), "-o", str(out), "--dendrite", "0,-20,0", "--apical", "0,-20,0"]) == 0
    assert np.all(read_swc(out).types[5:] == APICAL)


@pytest.mark.parametrize("option", ["--axon", "--apical"])
def test_cli_refuses_axon_or_apical_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str) -> None:
    src, out = _g(tmp_path), tmp_path / "x.swc"
    assert main(["edit", str(src), "-o", str(out), option, "0,20,0", option, "5,30,0"]) == 2
    err = capsys.readouterr().err
    assert f"{option} given 2 times (0,20,0, 5,30,0)" in err and f"give {option} once" in err
    assert "set at" not in err and not out.exists()


def test_cli_point_removed_by_an_earlier_edit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = _g(tmp_path), tmp_path / "x.swc"
    for later in (["--cut", "5,30,0"], ["--join", "5,30,0", "0,-10,0"], ["--join", "0,-20,0", "5,30,0"]):
        assert main(["edit", str(src), "-o", str(out), "--cut", "0,20,0", *later]) == 2
        err = capsys.readouterr().err
        assert f"{' '.join(later)}: the point" in err and "already removed by the earlier --cut 0,20,0" in err
        assert "from the nearest neurite node" not in err and not out.exists()
    # a point far from every node, removed or not, keeps the distance message
    assert main(["edit", str(src), "-o", str(out), "--cut", "0,20,0", "--cut", "50,50,0"]) == 2
    assert "64.0 um from the nearest neurite node" in capsys.readouterr().err


def test_cli_says_nothing_of_edits_it_does_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = _g(tmp_path), tmp_path / "x.swc"
    # a later edit fails: the earlier one is not reported as done
    assert main(["edit", str(src), "-o", str(out), "--cut", "5,30,0", "--cut", "40,40,0"]) == 2
    err = capsys.readouterr().err
    assert "cut at" not in err and err.startswith("morph: error:") and not out.exists()
    # an existing output: refused first, before any edit is made or reported
    out.write_text("keep\n")
    assert main(["edit", str(src), "-o", str(out), "--cut", "5,30,0", "--cut", "40,40,0"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"morph: error: {out}: output exists (use --force to overwrite it)"]
    assert out.read_text() == "keep\n"
    # on success the notes come, in order, before the summary
    assert main(["edit", str(src), "-o", str(out), "--cut", "5,30,0", "--axon", "0,-20,0", "--force"]) == 0
    cap = capsys.readouterr()
    assert [n.split(" at ")[0] for n in cap.err.splitlines()] == ["cut", "axon set"]
    assert "x.swc: 6 nodes" in cap.out
