"""The diagnostics of ``bench/trace_accuracy.py`` (run by hand, so tested here)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from morph.tracing import TraceParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import trace_accuracy  # noqa: E402
from test_tracing import render_tubes, y_cell  # noqa: E402


@pytest.fixture(scope="module")
def y_brightfield():
    segs, gold = y_cell()
    vs = (0.5, 0.5, 1.0)
    data = render_tubes(segs, (20, 200, 200), vs, soma=((40.0, 40.0, 10.0), 6.0), brightfield=True)
    return data, vs, gold


def _cable(m) -> float:
    s = m.resample(0.5)
    return float((~s.soma_mask & (s.parent >= 0)).sum())


def test_where_missed_files_each_missed_run_by_where_it_leaves_the_trace(y_brightfield) -> None:
    data, vs, gold = y_brightfield
    params = TraceParams()
    same = trace_accuracy.where_missed(gold, gold, data, vs, params)
    assert all(v == 0 for v in same.values())

    # the thin stem cut short at its first node (a tip) and one daughter of the fork gone
    # (its parent runs on to the other daughter: a side branch never started)
    trace = gold.take(np.array([i not in (5, 8) for i in range(len(gold))]))
    out = trace_accuracy.where_missed(trace, gold, data, vs, params)
    total = _cable(gold)
    # each run starts 2 um (the tolerance) beyond where the trace ends
    stem = (np.linalg.norm(gold.xyz[8] - gold.xyz[7]) - 2.0) / 0.5 / total
    fork = (np.linalg.norm(gold.xyz[5] - gold.xyz[4]) - 2.0) / 0.5 / total
    assert out["miss_tip"] == pytest.approx(stem, abs=0.01)
    assert out["miss_side"] == pytest.approx(fork, abs=0.01)
    assert out["miss_soma"] == 0 and out["miss_apart"] == 0
    # both are bright tubes on a flat background: they stand out as whole runs
    assert out["evident"] == pytest.approx(out["miss_tip"] + out["miss_side"], abs=1e-9)

    # a stem missed from the soma on, on a stack that does not show it: missed, not evident
    trace = gold.take(np.array([i not in (7, 8) for i in range(len(gold))]))
    blank = np.full_like(data, 190)
    blank += np.random.default_rng(0).integers(0, 4, blank.shape, dtype=np.uint8)
    out = trace_accuracy.where_missed(trace, gold, blank, vs, params)
    assert out["miss_soma"] > 0.15 and out["miss_tip"] == out["miss_side"] == 0
    assert out["evident"] == 0


def test_simulated_clicks_fall_on_the_far_visible_end_of_the_longest_missed_runs(y_brightfield) -> None:
    data, vs, gold = y_brightfield
    params = TraceParams()
    assert trace_accuracy.simulated_clicks(gold, gold, data, vs, params, 5).shape == (0, 3)
    # the thin stem cut short (run to gold node 8, 36 um) and a daughter of the fork gone
    # (run to node 5, 21 um): one click at the tip of each, the longer run first
    trace = gold.take(np.array([i not in (5, 8) for i in range(len(gold))]))
    clicks = trace_accuracy.simulated_clicks(trace, gold, data, vs, params, 5)
    assert clicks.shape == (2, 3)
    assert np.linalg.norm(clicks[0] - gold.xyz[8]) < 1.0 and np.linalg.norm(clicks[1] - gold.xyz[5]) < 1.0
    one = trace_accuracy.simulated_clicks(trace, gold, data, vs, params, 1)
    assert np.allclose(one, clicks[:1])
    # the stem's last 8 um blanked out: the click moves back to where the image still shows
    # it (within the denoising blur and the micrometre of aim)
    blank = data.copy()
    x0 = int(round((gold.xyz[8, 0] + 8) / vs[0]))  # the stem runs to x = 10 um, left-down
    blank[:, :, :x0] = 190
    clicks = trace_accuracy.simulated_clicks(trace, gold, blank, vs, params, 5)
    assert len(clicks) == 2 and np.linalg.norm(clicks[0] - gold.xyz[8]) > 7.0  # short of the blanked end
    assert clicks[0][0] >= x0 * vs[0] - 2.5


def test_missed_below_foreground_counts_only_missed_cable_the_foreground_does_not_hold(y_brightfield) -> None:
    from morph.tracing.pipeline import prepare

    data, vs, gold = y_brightfield
    params = TraceParams()
    trace = gold.take(np.array([i != 8 for i in range(len(gold))]))  # the thin stem cut short
    missed = trace_accuracy.where_missed(trace, gold, data, vs, params)["miss_tip"]
    assert missed > 0.1
    # the stem is a dark tube on a flat background: in the foreground, so missed by the tracer
    prep = prepare(data, vs, params)
    assert trace_accuracy.missed_below_foreground(gold, gold, prep) == 0
    assert trace_accuracy.missed_below_foreground(trace, gold, prep) == 0
    # its last 8 um (along x) blanked out: that much of the missed run lies off the foreground
    blank = data.copy()
    x0 = int(round((gold.xyz[8, 0] + 8) / vs[0]))
    blank[:, :, :x0] = 190
    below = trace_accuracy.missed_below_foreground(trace, gold, prepare(blank, vs, params))
    seg = gold.xyz[8] - gold.xyz[7]

    def blanked(margin_um: float) -> float:  # the stem's cable beyond x0 less margin_um, as a fraction
        return (x0 * vs[0] - margin_um - gold.xyz[8, 0]) / abs(seg[0]) * np.linalg.norm(seg) / 0.5 / _cable(gold)

    # a foreground voxel within 1 um counts, and the denoising blurs the stem's end past x0
    assert 0 < blanked(3.0) < below < blanked(1.0) < missed


def test_missed_below_threshold_leaves_out_the_cable_on_faint_pieces(y_brightfield) -> None:
    """With the faint pieces' voxels (``prep.faint``) counted too, what is left of the missed
    cable is what lies near no voxel above ``threshold_low`` at all."""
    from morph.tracing.pipeline import prepare

    data, vs, gold = y_brightfield
    params = TraceParams()
    trace = gold.take(np.array([i != 8 for i in range(len(gold))]))  # the thin stem cut short
    # the stem's last 8 um (along x) at a tenth of its contrast, behind a 3 um gap of
    # background: a faint piece, above threshold_low but with no voxel above threshold_high
    x0 = int(round((gold.xyz[8, 0] + 8) / vs[0]))
    bg = float(np.median(data))
    faint = data.astype(np.float32)
    faint[:, :, :x0] = bg + (faint[:, :, :x0] - bg) * 0.1
    faint[:, :, x0 - 6:x0] = bg
    faint = np.clip(np.round(faint), 0, 255).astype(data.dtype)
    prep = prepare(faint, vs, params)
    assert prep.faint is not None and prep.faint.size
    below_fg = trace_accuracy.missed_below_foreground(trace, gold, prep)
    below_low = trace_accuracy.missed_below_foreground(trace, gold, prep, faint_index=prep.faint)
    assert trace_accuracy.missed_below_foreground(trace, gold, prep, faint_index=prep.faint[:0]) == below_fg
    seg = gold.xyz[8] - gold.xyz[7]
    gap = 3.0 / abs(seg[0]) * np.linalg.norm(seg) / 0.5 / _cable(gold)  # the gap's cable, as a fraction
    # the faint end lies off the foreground the tree grows on but on a faint piece; only the
    # gap, less the micrometre either side that a voxel within 1 um reaches, is below both
    assert 0 < below_low < gap < below_fg
    assert below_fg > 2 * gap


def test_ais_bench_axon_path_click_and_overlap() -> None:
    """``bench/ais_accuracy.py``: the primary axon is the axon root with the most axon below
    it, followed to its farthest node; the click avoids the dendrites; ``on_gold`` is the
    part of the traced axon's first 50 um lying on the gold axon."""
    import ais_accuracy

    from morph.morphology import Morphology

    # soma; a dendrite along +x; a long axon along -y from the soma with a collateral; a
    # short second axon piece hanging from the dendrite
    xyz = [(0, 0, 0)] + [(x, 0, 0) for x in range(5, 60, 5)]  # 0; dendrite 1..11
    xyz += [(0, -y, 0) for y in range(5, 80, 5)]  # axon 12..26
    xyz += [(5, -40 - 5 * k, 0) for k in range(1, 4)]  # collateral 27..29 from node 19 (y = -40)
    xyz += [(30, 5, 0), (30, 10, 0)]  # a second axon root 30..31 on the dendrite's node 6
    parent = [-1, 0] + list(range(1, 11)) + [0] + list(range(12, 26)) + [19, 27, 28] + [6, 30]
    types = [1] + [3] * 11 + [2] * 15 + [2] * 3 + [2] * 2
    m = Morphology(np.asarray(xyz, float), np.ones(len(xyz)), np.asarray(types), np.asarray(parent), units="um")
    path = ais_accuracy.axon_main_path(m)
    assert path[0] == 12 and path[-1] == 26 and len(path) == 15
    assert ais_accuracy.on_gold(m, m) == 1.0
    # a trace whose axon follows the gold's for 20 um, then runs on 10 um beside it
    veer = [(0, 0, 0)] + [(0, -y, 0) for y in range(5, 30, 5)] + [(10, -y, 0) for y in range(30, 80, 5)]
    t = Morphology(np.asarray(veer, float), np.ones(len(veer)), np.asarray([1] + [2] * (len(veer) - 1)),
                   np.arange(len(veer)) - 1, units="um")
    frac = ais_accuracy.on_gold(t, m)  # its nodes within 50 um of path: 5 on the gold axon, 4 beside it
    assert frac == pytest.approx(5 / 9)
    # the click: 20-50 um along the axon, more than 3 um from the dendrite, where the image is strongest
    img = np.zeros((4, 100, 80), np.float32)
    img[2, 100 - 45 - 5 : 100 - 45 + 5, :] = 10.0  # a bright band around y = -45 (the image's y = 55)
    shifted = m.translate((0.0, 100.0, 2.0))
    click = ais_accuracy.axon_click(shifted, img, (1.0, 1.0, 1.0), TraceParams(), flat=img)
    assert 20 <= 100 - click[1] <= 50 and abs(click[1] - 55) <= 5


def test_allen_cell_keeps_the_first_100_um_of_axonal_cable(tmp_path: Path) -> None:
    """``bench/_stacks.allen_cell``: the first 100 um of axon is 100 um of axonal cable, nearest
    the soma first (an axon branching near the soma keeps 100 um in all, not every collateral
    within 100 um of path distance); axon pieces not joined to the soma are left out;
    ``cut="path"`` keeps every axon node within 100 um of path distance."""
    from _stacks import allen_cell

    from morph.io import write_swc
    from morph.morphology import Morphology

    # soma; a 40 um dendrite along +x; an axon along -y that forks at 20 um into two 100 um
    # branches; an unjoined axon piece of 30 um
    xyz = [(0, 0, 0)] + [(x, 0, 0) for x in range(5, 45, 5)]  # 0; dendrite 1..8
    xyz += [(0, -y, 0) for y in range(5, 25, 5)]  # axon trunk 9..12 (y = -5 .. -20)
    xyz += [(-x, -20, 0) for x in range(5, 105, 5)]  # branch 13..32 from 12
    xyz += [(x, -20, 0) for x in range(5, 105, 5)]  # branch 33..52 from 12
    xyz += [(50, 50 + y, 0) for y in range(0, 35, 5)]  # unjoined piece 53..59
    parent = [-1, 0] + list(range(1, 8)) + [0, 9, 10, 11] + [12] + list(range(13, 32))
    parent += [12] + list(range(33, 52)) + [-1] + list(range(53, 59))
    types = [1] + [3] * 8 + [2] * 51
    m = Morphology(np.asarray(xyz, float), np.ones(len(xyz)), np.asarray(types), np.asarray(parent), units="um")
    write_swc(m, tmp_path / "c.swc")
    cut = allen_cell(tmp_path / "c.swc")
    ax = cut.types == 2
    assert cut.neurite_edge_length[ax].sum() == pytest.approx(100.0, abs=5.0)
    assert len(cut.roots) == 1 and (cut.types == 3).sum() == 8
    # both branches are cut at the same path distance: 15 um of trunk (its first edge leaves
    # the soma) and 40-45 um of each branch
    tips = cut.xyz[ax & (np.bincount(cut.parent[cut.parent >= 0], minlength=len(cut)) == 0)]
    assert len(tips) == 2 and np.ptp(np.abs(tips[:, 0])) <= 5.0
    old = allen_cell(tmp_path / "c.swc", cut="path")
    assert old.neurite_edge_length[old.types == 2].sum() > 180 and len(old.roots) == 2
    with pytest.raises(ValueError, match="axon cut"):
        allen_cell(tmp_path / "c.swc", cut="nearest")


def test_simulated_deletes_remove_the_false_branches_first() -> None:
    """``--deletes``: the branch whose removal takes the most false cable (net of true cable)
    goes first; a branch mostly on the gold is kept; it stops when no false branch is left."""
    from morph.morphology import Morphology

    # gold: soma and a 50 um dendrite along +x; trace: the same plus a 20 um false branch
    # along +y from x = 20, and a 10 um one along -y from x = 40
    gx = [(0, 0, 0)] + [(x, 0, 0) for x in range(5, 55, 5)]
    gold = Morphology(np.asarray(gx, float), np.ones(len(gx)), np.r_[1, [3] * 10], np.arange(len(gx)) - 1, units="um")
    tx = gx + [(20, y, 0) for y in range(5, 25, 5)] + [(40, -y, 0) for y in range(5, 15, 5)]
    parent = list(range(-1, 10)) + [4, 11, 12, 13] + [8, 15]
    t = Morphology(np.asarray(tx, float), np.ones(len(tx)), np.r_[1, [3] * 16], np.asarray(parent), units="um")
    one, k = trace_accuracy.simulated_deletes(t, gold, 1)
    assert k == 1 and len(one) == len(t) - 4 and one.xyz[:, 1].max() == 0  # the 20 um one first
    every, k = trace_accuracy.simulated_deletes(t, gold, 5)
    assert k == 2 and len(every) == len(gold) and every.total_length() == pytest.approx(gold.total_length())


def test_draws_render_the_bench_cells_again_and_have_their_own_summary() -> None:
    """``--draws N``: each bench cell N - 1 more times under other render seeds, summarised
    apart (``mean_draws``), the 31-stack means unchanged."""
    one = trace_accuracy.stacks()
    three = trace_accuracy.stacks(draws=3)
    extra = {k: v for k, v in three.items() if k not in one}
    assert len(extra) == 2 * sum(v[0] == "bench" for v in one.values())
    for k, (group, cell, seed, crop) in extra.items():
        name, n = k.split("~")
        assert group == "draws" and cell == one[name][1] and crop == one[name][3]
        assert seed == one[name][2] + 1000 * int(n)
    row = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "cable": 1.0, "bp": 1.0, "time": 1.0}
    rows = {"A": {"group": "bench", **row}, "B": {"group": "further", **row}}
    assert "draws" not in trace_accuracy.summary(rows)
    rows["A~1"] = {"group": "draws", **row, "f1": 0.0}
    s = trace_accuracy.summary(rows)
    assert s["draws"]["n"] == 2 and s["draws"]["f1"] == 0.5 and s["bench"]["f1"] == 1.0 and s["all"]["n"] == 2


def test_clutter_column_is_averaged_over_the_stacks_that_have_one(tmp_path) -> None:
    """The sample stacks have no clutter kept (``nan``): a group's mean is over the others,
    and a table written before the column existed still reads."""
    row = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "cable": 1.0, "bp": 1.0, "time": 1.0}
    rows = {"A": {"group": "bench", **row, "clutter": 0.02}, "B": {"group": "bench", **row, "clutter": 0.04},
            "S": {"group": "sample", **row, "clutter": float("nan")}}
    s = trace_accuracy.summary(rows)
    assert s["bench"]["clutter"] == pytest.approx(0.03) and s["all"]["clutter"] == pytest.approx(0.03)
    assert np.isnan(s["further"]["clutter"])
    assert "\tnan\t" in trace_accuracy.format_table(rows)
    old = tmp_path / "old.tsv"
    old.write_text("stack\tgroup\tprecision\trecall\tf1\tcable\tbp\ttime\nA\tbench\t1\t1\t1\t1\t1\t2\n")
    assert np.isnan(trace_accuracy.read_table(old)["A"]["clutter"])


def test_feature_bench_summary_reads_errors_shares_ratios_and_rank_correlation() -> None:
    import feature_accuracy as fa

    f0, f1 = fa.FEATURES[0], fa.FEATURES[1]
    rows = [
        {"stack": f"s{k}", "gold": dict.fromkeys(fa.FEATURES, np.nan) | {f0: g, f1: g},
         "trace": dict.fromkeys(fa.FEATURES, np.nan) | {f0: t, f1: -t}}
        for k, (g, t) in enumerate([(10.0, 11.0), (20.0, 18.0), (40.0, 30.0), (0.0, 5.0)])
    ] + [{"stack": "bad", "skip": "no neuron"}]
    s = fa.feature_summary(rows)
    # the gold of 0 and the skipped stack are left out: errors 0.1, 0.1, 0.25
    assert s[f0]["n"] == 3 and s[f0]["median_err"] == pytest.approx(0.1)
    assert s[f0]["within10"] == pytest.approx(2 / 3) and s[f0]["within25"] == pytest.approx(1.0)
    assert s[f0]["ratio"] == pytest.approx(0.9) and s[f0]["spearman"] == pytest.approx(1.0)
    assert s[f1]["spearman"] == pytest.approx(-1.0) and s[f1]["within25"] == 0.0
    assert s[fa.FEATURES[2]]["n"] == 0 and np.isnan(s[fa.FEATURES[2]]["median_err"])
    assert np.isnan(s[fa.FEATURES[2]]["spearman"])
    text = fa.format_summary(s)
    assert text.splitlines()[0].split()[:2] == ["feature", "n"] and f0 in text


def test_ablation_settings_each_switch_off_a_stage_the_brightfield_defaults_run() -> None:
    """A setting whose parameter the brightfield defaults already leave off would print a
    row equal to the defaults' and read as "this stage gains nothing"."""
    import trace_ablation as ab

    from morph.cli.trace import parse_params

    on = TraceParams().resolved("brightfield")
    for _label, item in ab.SETTINGS:
        name = item.split("=")[0]
        off = parse_params([item], "auto").resolved("brightfield")
        assert getattr(off, name) != getattr(on, name), item
        assert bool(getattr(on, name)), f"{name} is off by default"
    # the sweep straddles each default
    for name, values in ab.SWEEP:
        lo, hi = (float(v) for v in values)
        assert lo < float(getattr(on, name)) < hi, name


def test_ablation_rows_count_stacks_moved_and_summarise_both_groups() -> None:
    import trace_ablation as ab

    def row(f1: float, group: str) -> dict:
        return {"group": group, "precision": 1.0, "recall": f1, "f1": f1, "cable": 1.0, "bp": 1.0,
                "clutter": 0.0, "time": 1.0}

    base = {"A": row(0.9, "bench"), "B": row(0.8, "further"), "C": row(0.7, "further")}
    rows = {"A": row(0.9003, "bench"), "B": row(0.7, "further"), "C": row(0.75, "further")}
    cells = ab.row_text("x", "p=0", rows, base).split("\t")
    assert len(cells) == len(ab.HEAD.split("\t"))
    assert cells[2] == "0.900" and cells[7] == f"{(0.9003 + 0.7 + 0.75) / 3:.3f}"
    assert cells[-2:] == ["1", "1"]  # C up, B down; A within 0.0005
    assert ab.row_text("d", "-", base, None).split("\t")[-2:] == ["-", "-"]


def test_render_overrides_are_checked_and_key_the_cache_apart(monkeypatch) -> None:
    from morph.errors import MorphError

    assert trace_accuracy.parse_render(["texture=2.4", "read_noise=1"]) == {"texture": 2.4, "read_noise": 1.0}
    for bad in (["textur=2"], ["texture"], ["texture=a lot"], ["gap_depth=2"]):
        with pytest.raises(MorphError):
            trace_accuracy.parse_render(bad)
    spec = trace_accuracy.stacks()["SYN_gen"]
    monkeypatch.delenv("MORPH_BENCH_RENDER", raising=False)
    _, plain = trace_accuracy._cache_key("SYN_gen", spec, "brightfield")
    monkeypatch.setenv("MORPH_BENCH_RENDER", "texture=2.4")
    _, harder = trace_accuracy._cache_key("SYN_gen", spec, "brightfield")
    assert trace_accuracy.render_overrides() == {"texture": 2.4} and plain != harder


def test_bench_tables_never_overwrite_without_force(tmp_path, capsys) -> None:
    """``-o`` names an existing file: the benches stop before any work unless ``--force``;
    the table is then written whole."""
    import argparse

    import feature_accuracy as fa
    import trace_ablation as ab
    from _stacks import add_output_arguments, check_output_argument, write_output

    out = tmp_path / "table.tsv"
    out.write_text("an earlier run\n")
    for main in (trace_accuracy.main, ab.main, fa.main):
        with pytest.raises(SystemExit) as e:
            main(["SYN_gen", "-o", str(out)])
        assert e.value.code == 2
        assert "output exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        trace_accuracy.main(["SYN_gen", "-o", str(tmp_path / "no_such_folder" / "t.tsv")])
    assert "does not exist" in capsys.readouterr().err
    assert out.read_text() == "an earlier run\n"
    ap = argparse.ArgumentParser()
    add_output_arguments(ap)
    args = ap.parse_args(["-o", str(out), "--force"])
    check_output_argument(ap, args)
    write_output(args, "stack\tf1\n")
    assert out.read_text() == "stack\tf1\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.tsv"]
