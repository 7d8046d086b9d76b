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
