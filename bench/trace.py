"""Benchmark of ``morph.tracing.trace``: speed, memory and accuracy, with baselines.

Run by hand (not a test)::

    .venv/bin/python bench/trace.py            # every stack
    .venv/bin/python bench/trace.py OP_6 OP_7  # some of them

Stacks: the nine DIADEM Olfactory Projection stacks (real confocal data with gold tracings,
voxel units, z spacing 3.03, seeded at the root the data README gives; F1 at 3 voxels with z
scaled by 3.03, via :func:`morph.compare.compare`), and synthetic brightfield stacks from
:mod:`morph.synth` at the ``realistic`` preset, 200 x 200 x 60 um around the soma at 0.5 x
0.5 x 1 um voxels (two Allen reconstructions: dendrites, soma and the first 100 um of axon
cable, as in ``trace_accuracy.py``;
two generated pyramidal and two generated aspiny cells; F1 at 2 um). OP_6 is 512 x 512 x 101: the
speed target (>= 2 M voxels/s end to end) is read on it, and on ``BF_512``, a brightfield
stack of that size (SYN_gen's cell rendered 256 x 256 x 100 um, 513 x 513 x 101 voxels; left
out of the accuracy summary). ``BF_fine`` and ``BF_fine_own``: the same cell at Allen-like 63x
voxels (0.12 x 0.12 x 0.3 um, 70 x 70 x 30 um, 584 x 584 x 101 voxels), traced at the
default working voxel size (``working_voxel_um``: 2 x 2 blocks) and at its own voxels.

Each stack runs in its own process so that peak memory is its own: ``peak B/vox`` is the
largest resident set during tracing minus the resident set just before it (after the memory
that loading or rendering the stack freed is returned to the system), plus the input,
per voxel of the input (uint8: 1 byte/voxel), the largest resident set being the kernel's
high-water mark (``VmHWM``, reset just before tracing; where it cannot be reset, the
resident set sampled every 10 ms);
``py B/vox`` is the peak of the allocations Python's tracemalloc sees (numpy buffers, input
excluded) per voxel, measured in a second, untimed run (tracemalloc slows allocation-heavy
code down many times).

``ceiling`` (DIADEM only): the gold tracing itself with each node's z replaced by the
image's centre along z under it (half-maximum-weighted centroid), scored against the gold:
how much the metric (3 voxels with z scaled by 3.03, i.e. about one slice) leaves to any
tracer that places nodes where the image says. ``F1 zsl``: the same trace scored at 3 voxels
in (x, y, slice) space, z not scaled.

``r/gold``: the median, over the traced neurite nodes within 1 um of the gold (DIADEM: 1.5
voxels in (x, y, slice) space, radii in x pixels), of the traced radius over the gold's
radius at the nearest gold point. The DIADEM gold radii are coarse (OP_3's are 1 or 2 pixels,
OP_6's mostly 0.73); the synthetic gold's are the rendered ones.

``visible`` (synthetic only): the fraction of the gold's neurite cable that the image shows
at all, i.e. where the tracer's flattened, denoised image reaches its foreground threshold
(``threshold_low`` noise units) on the gold's centre line. The renderer's thinnest
neurites (Allen radii of one or two 0.114 um pixels; stain fading in thin branches) are
often fainter than that: ``1 - visible`` bounds the recall of a tracer that works from the
image's contrast, and ``2 v / (1 + v)`` its F1.

Baselines, in the same process, on the same stack: ``otsu+skel``: Otsu threshold of the
background-flattened, denoised stack (:func:`morph.tracing.preprocess.preprocess`, the
tracer's own first stage; on raw brightfield stacks Otsu thresholds the uneven background),
:func:`skimage.morphology.skeletonize`, 26-connected
skeleton graph, as a breadth-first tree; ``kimimaro``: kimimaro's TEASAR on the same mask.
Both keep only the connected piece of the Otsu mask nearest to the seed (or soma).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from _stacks import SYNTH, allen_cell

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MORPH_DATA", ROOT.parent / "shared" / "data"))
DIADEM_ROOTS = {
    1: (30.979, 429.04, 0), 2: (0.725, 391.08, 25), 3: (93.742, 179, 38), 4: (128.2, 504.37, 0.3),
    5: (185.7, 264.02, 33), 6: (15.074, 412.01, 10), 7: (119.76, 215.98, 39), 8: (118.64, 181.34, 55),
    9: (64.56, 364.47, 4),
}
# brightfield stacks outside the accuracy summary: (cell, render seed, voxel size, crop um,
# pad to the crop, tracing parameters). BF_512: the size the speed target names (512 x 512 x
# 100 voxels), SYN_gen's cell rendered 256 x 256 x 100 um at the same voxels; BF_fine: the
# same cell at Allen-like 63x voxels (0.12 x 0.12 x 0.3 um, 70 x 70 x 30 um: 584 x 584 x
# 101), traced at the default working voxel size (0.24 um in x-y) and, BF_fine_own, at its own
BIG = {
    "BF_512": (("pyramidal", 7), 1, (0.5, 0.5, 1.0), (256, 256, 100), True, {}),
    "BF_fine": (("pyramidal", 7), 1, (0.12, 0.12, 0.3), (70, 70, 30), False, {}),
    "BF_fine_own": (("pyramidal", 7), 1, (0.12, 0.12, 0.3), (70, 70, 30), False, {"working_voxel_um": 0.0}),
}
ALL = [f"OP_{k}" for k in range(1, 10)] + list(SYNTH) + list(BIG)


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of the resident set (``VmHWM``; Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return abs(_rss_mb("VmHWM") - _rss_mb()) < 1.0


def load(key: str):
    """(data, voxel_size, gold, seeds_um, compare kwargs)."""
    from morph.compare import DIADEM_OP_VOXEL
    from morph.io import read_stack, read_swc

    if key.startswith("OP_"):
        k = int(key[3:])
        s = read_stack(DATA / f"images/diadem_OP/OP_{k}.tif", voxel_size=DIADEM_OP_VOXEL)
        gold = read_swc(DATA / f"images/diadem_OP/OP_{k}.gold.swc")
        seed = np.asarray(DIADEM_ROOTS[k]) * np.asarray(DIADEM_OP_VOXEL)
        cmp = {"tolerance": 3.0, "units": "voxel", "voxel_size": DIADEM_OP_VOXEL, "to_voxels": True}
        return np.asarray(s.data), DIADEM_OP_VOXEL, gold, [seed], cmp
    from morph.synth import generate_neuron, render_stack

    if key in SYNTH:
        what, rseed = SYNTH[key]
        voxel, crop, pad = (0.5, 0.5, 1.0), (200, 200, 60), False
    else:
        what, rseed, voxel, crop, pad, _params = BIG[key]
    if isinstance(what, str):
        cell = allen_cell(DATA / "swc/allen" / what)
    else:
        cell = generate_neuron(what[1], cell_type=what[0])
    st = render_stack(cell, preset="realistic", voxel_size=voxel, crop=crop, pad_to_crop=pad, seed=rseed)
    return st.data, tuple(st.voxel_size), st.gold, None, {"tolerance": 2.0}


def _tree_from_graph(xyz: np.ndarray, edges: np.ndarray, start: np.ndarray):
    """Breadth-first tree of the connected piece of a graph nearest to ``start``."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    from morph.morphology import Morphology

    n = xyz.shape[0]
    if n == 0:
        return Morphology(np.zeros((0, 3)), [], [], [])
    g = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    _, comp = connected_components(g, directed=False)
    s = int(np.argmin(np.linalg.norm(xyz - start, axis=1)))
    order, pred = breadth_first_order(g, s, directed=False)
    keep = order
    pos = np.full(n, -1)
    pos[keep] = np.arange(keep.size)
    parent = np.where(pred[keep] >= 0, pos[np.maximum(pred[keep], 0)], -1)
    del comp
    return Morphology(xyz[keep], np.ones(keep.size), np.full(keep.size, 3), parent)


def baselines(data: np.ndarray, vs, start_um: np.ndarray, brightfield: bool):
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.morphology import skeletonize

    from morph.tracing.preprocess import preprocess

    # Otsu on the same flattened, denoised image the tracer starts from (on the raw
    # brightfield stacks Otsu splits the uneven background instead of finding the cell)
    img = preprocess(data, vs, polarity="brightfield" if brightfield else "fluorescence")
    out = {}
    t0 = time.perf_counter()
    mask = img > threshold_otsu(img)
    # the piece of the mask nearest to the seed (or soma): what the graph step keeps anyway
    lab, n = ndi.label(mask, structure=np.ones((3, 3, 3)))
    if n > 1:
        pts = np.argwhere(mask)
        if len(pts) > 200_000:
            pts = pts[:: len(pts) // 200_000 + 1]
        d = np.linalg.norm(pts[:, ::-1] * np.asarray(vs) - start_um, axis=1)
        mask = lab == lab[tuple(pts[int(np.argmin(d))])]
    del lab
    sk = skeletonize(mask)
    zyx = np.argwhere(sk)
    xyz = zyx[:, ::-1] * np.asarray(vs)
    lin = np.ravel_multi_index(tuple(zyx.T), sk.shape) if zyx.size else np.zeros(0, np.int64)
    idx = np.full(sk.size, -1, dtype=np.int64) if zyx.size else None
    edges = []
    if zyx.size:
        idx[lin] = np.arange(lin.size)
        for dz in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if (dz, dy, dx) <= (0, 0, 0):
                        continue
                    nb = zyx + (dz, dy, dx)
                    ok = np.all((nb >= 0) & (nb < sk.shape), axis=1)
                    j = np.full(len(zyx), -1)
                    j[ok] = idx[np.ravel_multi_index(tuple(nb[ok].T), sk.shape)]
                    e = np.flatnonzero(j >= 0)
                    edges.append(np.stack([e, j[e]], axis=1))
    edges = np.concatenate(edges) if edges else np.zeros((0, 2), int)
    out["otsu+skel"] = (_tree_from_graph(xyz, edges, start_um), time.perf_counter() - t0)
    try:
        import kimimaro

        t0 = time.perf_counter()
        aniso = (vs[2], vs[1], vs[0])  # array axes (z, y, x)
        sks = kimimaro.skeletonize(mask.astype(np.uint8), anisotropy=aniso, parallel=1, progress=False,
                                   fix_branching=True, dust_threshold=50)
        verts, eds, off = [], [], 0
        for s in sks.values():
            verts.append(s.vertices[:, ::-1])
            eds.append(s.edges + off)
            off += len(s.vertices)
        vx = np.vstack(verts) if verts else np.zeros((0, 3))
        ex = np.vstack(eds) if eds else np.zeros((0, 2), int)
        out["kimimaro"] = (_tree_from_graph(vx, ex, start_um), time.perf_counter() - t0)
    except ImportError:
        pass
    return out


def gold_is_synthetic(key: str) -> bool:
    return key in SYNTH or key in BIG


def gold_visible(data: np.ndarray, vs, gold) -> float:
    """Fraction of the gold's neurite cable that the image shows at all: the gold resampled
    every 0.5 um, each sample visible when the tracer's flattened, denoised image (in noise
    units, interpolated at the gold's centre line) reaches the tracer's foreground threshold
    ``threshold_low``. This bounds the recall of a tracer that works from the image's
    contrast; ``2 v / (1 + v)`` bounds its F1."""
    from scipy import ndimage as ndi

    from morph.tracing import preprocess as pre
    from morph.tracing.params import TraceParams

    p = TraceParams().resolved("brightfield")
    img = pre.preprocess(data, vs, polarity="brightfield", sigma_um=p.denoise_sigma_um,
                         block_um=p.background_block_um, percentile=p.background_percentile)
    noise = pre.noise_level(img, floor=p.min_noise)
    g = gold.resample(0.5)
    keep = ~g.soma_mask & (g.parent >= 0)
    near = ndi.map_coordinates(img, (g.xyz[keep] / np.asarray(vs))[:, ::-1].T, order=1) / noise
    w = g.edge_length[keep]
    return float(w[near >= p.threshold_low].sum() / max(w.sum(), 1e-12))


def one(key: str) -> dict:
    import morph.progress as pg
    from morph.compare import compare
    from morph.tracing import TraceParams, trace
    from morph.tracing.memory import release_memory

    pg.set_quiet(True)
    warnings.simplefilter("ignore")
    data, vs, gold, seeds, cmp = load(key)
    to_vox = cmp.pop("to_voxels", False)
    nvox = int(data.size)
    import gc
    import threading

    gc.collect()
    # what loading (reading or rendering the stack) freed goes back to the system first: the
    # allocator would otherwise hand it to the tracer without the resident set growing
    release_memory()
    rss0 = _rss_mb()
    peak = [rss0]
    done = threading.Event()
    exact = _reset_peak_rss()  # the kernel's own peak, else sampling every 10 ms

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    if not exact:
        th.start()
    tm: dict[str, float] = {}
    t0 = time.perf_counter()
    params = TraceParams(**BIG[key][5]) if key in BIG else None
    m = trace(data, voxel_size=vs, seeds=seeds, params=params, progress=False, timings=tm)
    total = time.perf_counter() - t0
    if exact:
        peak[0] = _rss_mb("VmHWM")
    else:
        done.set()
        th.join()
    peak_extra_mb = max(peak[0] - rss0, 0.0)
    # Python's view of the allocations in a second run: tracemalloc slows down code that
    # allocates many small arrays many times over, so it is kept out of the timed run
    del m
    gc.collect()
    tracemalloc.start()
    m = trace(data, voxel_size=vs, seeds=seeds, params=params, progress=False)
    py_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    def score(t):
        tt = t.to_voxels(vs) if to_vox else t
        return compare(tt, gold, **cmp)

    r = score(m)
    # radii: median traced / gold radius over the traced neurite nodes within 1 um (DIADEM:
    # 1.5 voxels in (x, y, slice) space, radii in x pixels) of the gold
    from scipy.spatial import cKDTree

    tt = m.to_voxels(vs) if to_vox else m
    gg = gold.resample(0.25)
    dist, j = cKDTree(gg.xyz).query(tt.xyz)
    near = ~tt.soma_mask & (tt.parent >= 0) & (dist <= (1.5 if to_vox else 1.0)) & ~gg.soma_mask[j] & (gg.radius[j] > 0)
    radius_ratio = float(np.median(tt.radius[near] / gg.radius[j[near]])) if near.any() else float("nan")
    start = np.asarray(seeds[0]) if seeds else (m.soma_center if m.soma_nodes.size else m.xyz[0])
    base = baselines(data, vs, start, "brightfield" in " ".join(m.header))
    res = {
        "key": key, "voxels": nvox, "shape": list(data.shape), "time": total, "stages": tm,
        "vox_per_s": nvox / total, "peak_b_per_vox": (peak_extra_mb * 2**20 + data.nbytes) / nvox,
        "py_b_per_vox": py_peak / nvox, "f1": r.f1, "precision": r.precision, "recall": r.recall,
        "length": r.trace_length, "gold_length": r.gold_length, "bp_found": r.branch_points.found,
        "bp_gold": r.branch_points.gold, "radius_ratio": radius_ratio, "baselines": {},
    }
    if key.startswith("OP_"):
        # what the metric allows: the gold itself, its z moved to the image's centre along z
        # (half-maximum-weighted centroid of the smoothed column under each gold node),
        # scored against the gold
        from scipy import ndimage as ndi

        sm = ndi.gaussian_filter(data.astype(np.float32), (0.5, 1.5, 1.5))
        ij = np.clip(np.round(gold.xyz[:, :2]).astype(int), 0, np.array(data.shape[:0:-1]) - 1)
        prof = sm[:, ij[:, 1], ij[:, 0]].T
        w = np.maximum(prof - 0.5 * prof.max(axis=1, keepdims=True), 0)
        zc = (w * np.arange(data.shape[0])).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)
        xyz = np.array(gold.xyz)
        xyz[:, 2] = zc
        res["gold_z_ceiling"] = compare(gold._derive(xyz=xyz), gold, **cmp).f1
        # the same trace scored with z in slices (3 voxels in (x, y, slice) space)
        res["f1_slices"] = compare(m.to_voxels(vs), gold, tolerance=3.0, units="voxel", voxel_size=(1, 1, 1)).f1
    if gold_is_synthetic(key):
        res["gold_visible"] = gold_visible(data, vs, gold)
    for name, (bm, bt) in base.items():
        br = score(bm) if len(bm) > 1 else None
        res["baselines"][name] = {"f1": br.f1 if br else 0.0, "time": bt}
    return res


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--one":
        print(json.dumps(one(argv[1])))
        return 0
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: bench/trace.py [STACK ...]   (default: every stack; one of {' '.join(ALL)})\n\n{__doc__}")
        return 0
    unknown = [k for k in argv if k not in ALL]
    if unknown:
        print(f"unknown stack(s): {' '.join(unknown)}; choose from: {' '.join(ALL)}", file=sys.stderr)
        return 2
    keys = argv or ALL
    rows = []
    for key in keys:
        p = subprocess.run([sys.executable, __file__, "--one", key], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{key}: failed\n{p.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{key} done: F1 {r['f1']:.3f} in {r['time']:.1f} s", file=sys.stderr)
    stages = ["polarity", "preprocess", "tubularity", "graph", "soma", "tree", "refine", "label", "faint"]
    head = (f"{'stack':10} {'shape (z,y,x)':>15} {'Mvox':>6} " + " ".join(f"{s[:6]:>6}" for s in stages)
            + f" {'total s':>7} {'Mvox/s':>6} {'peakB/v':>7} {'pyB/v':>6} {'F1':>6} {'P':>6} {'R':>6}"
            + f" {'len/gold':>8} {'bp':>7} {'r/gold':>6} {'otsu+sk':>7} {'kimimaro':>8} {'ceiling':>7} {'F1 zsl':>7} {'visible':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        b = r["baselines"]
        print(
            f"{r['key']:10} {'x'.join(map(str, r['shape'])):>15} {r['voxels'] / 1e6:6.1f} "
            + " ".join(f"{r['stages'].get(s, 0):6.2f}" for s in stages)
            + f" {r['time']:7.2f} {r['vox_per_s'] / 1e6:6.2f} {r['peak_b_per_vox']:7.2f} {r['py_b_per_vox']:6.2f}"
            + f" {r['f1']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} {r['length'] / max(r['gold_length'], 1e-9):8.2f}"
            + f" {r['bp_found']:>3}/{r['bp_gold']:<3} {r.get('radius_ratio', float('nan')):6.2f}"
            + f" {b.get('otsu+skel', {}).get('f1', float('nan')):7.3f}"
            + f" {b.get('kimimaro', {}).get('f1', float('nan')):8.3f} {r.get('gold_z_ceiling', float('nan')):7.3f} {r.get('f1_slices', float('nan')):7.3f}"
            + f" {r.get('gold_visible', float('nan')):7.2f}"
        )
    syn = [r for r in rows if r["key"] in SYNTH]
    if syn:
        f = np.array([r["f1"] for r in syn])
        ln = np.array([r["length"] / max(r["gold_length"], 1e-9) for r in syn])
        bp = np.array([r["bp_found"] / max(r["bp_gold"], 1) for r in syn])
        v = np.array([r.get("gold_visible", np.nan) for r in syn])
        print(f"\nsynthetic brightfield ({len(syn)} stacks, F1 at 2 um): mean F1 {f.mean():.4f} "
              f"(min {f.min():.3f}), cable {ln.min():.2f}-{ln.max():.2f} x gold (mean {ln.mean():.2f}), "
              f"branch points found {bp.mean():.0%}; gold visible above the foreground threshold "
              f"{np.nanmean(v):.0%} (per stack {', '.join(f'{x:.0%}' for x in v)}), "
              f"F1 bound for a perfect-precision tracer {np.nanmean(2 * v / (1 + v)):.3f}")
    for r in rows:
        if r["key"] in BIG:
            print(f"\nbrightfield {'x'.join(map(str, r['shape']))} (z, y, x) ({r['key']}): "
                  f"{r['vox_per_s'] / 1e6:.2f} M voxels/s, {r['peak_b_per_vox']:.1f} B/voxel, F1 {r['f1']:.3f}")
    op = [r for r in rows if r["key"].startswith("OP_")]
    if op:
        f = np.array([r["f1"] for r in op])
        c = np.array([r.get("gold_z_ceiling", np.nan) for r in op])
        zs = np.array([r.get("f1_slices", np.nan) for r in op])
        print(f"\nDIADEM OP ({len(op)} stacks): mean F1 {f.mean():.3f}, min {f.min():.3f} "
              f"(gold-z ceiling: mean {np.nanmean(c):.3f}; z in slices: mean F1 {np.nanmean(zs):.3f}, "
              f"min {np.nanmin(zs):.3f}); "
              f"beats otsu+skel on {sum(r['f1'] > r['baselines'].get('otsu+skel', {}).get('f1', 0) for r in op)}, "
              f"kimimaro on {sum(r['f1'] > r['baselines'].get('kimimaro', {}).get('f1', 0) for r in op)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
