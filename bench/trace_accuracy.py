"""Accuracy of ``morph.tracing.trace`` over many synthetic brightfield stacks.

Run by hand (not a test)::

    .venv/bin/python bench/trace_accuracy.py                       # every stack, defaults
    .venv/bin/python bench/trace_accuracy.py --param denoise_sigma_um=0.6 -o new.tsv
    .venv/bin/python bench/trace_accuracy.py --compare base.tsv new.tsv

Where :mod:`bench.trace` measures speed and memory on a few stacks, this script measures
accuracy on enough stacks that a change of a tracing parameter or rule can be judged: each
parameter in ``docs/tracing.md`` was chosen on stacks like these. The set (31 stacks, all
``morph synth`` renders at the ``realistic`` preset, brightfield):

* ``bench`` (6): the synthetic stacks of ``bench/trace.py`` (two Allen reconstructions and
  four generated cells, 200 x 200 x 60 um around the soma, 0.5 x 0.5 x 1 um voxels);
* ``sample`` (2): the two brightfield stacks of ``sample_stacks/`` (0.3 x 0.3 x 1 um);
* ``further`` (23): eight generated cells (pyramidal seeds 2, 5, 13, 17; aspiny seeds 2, 7,
  9, 13) and the fifteen other Allen reconstructions of the data directory (dendrites,
  soma and the first 100 um of axon; ``skk_test_4493``, whose every node has a radius of
  1 um, left out), 160 x 160 x 50 um around the soma at 0.5 x 0.5 x 1 um.

"The first 100 um of axon" is 100 um of axonal cable, nearest the soma first
(:func:`_stacks.allen_cell`). ``--allen-axon path`` keeps instead every axon branch within
100 um of path distance of the axon's start: on the Sst, Vip and some Pvalb cells that is up
to 2.5 mm of local collaterals, most at the reconstructions' one-pixel radius (0.114 um)
that the renderer draws below the texture (SYN_allen: 1.2 mm, 43 % of its gold).

Scores: :func:`morph.compare.compare` at 2 um (precision, recall, F1, traced / gold cable,
branch points found; ``clutter``: the part of the traced cable lying on other cells' fragments
and debris, the render's clutter, and beyond 2 um from the gold: a share of the
``1 - precision`` that is not the neuron's; none for the two sample stacks), the means per group
and over all. Renders are cached as ``.npz`` with their gold and clutter SWC (keyed by
the cell rendered, its render seed and crop) under
``MORPH_BENCH_CACHE`` (default ``~/.cache/morph-bench``; about 2 MB each, compressed);
stacks are traced in ``--jobs`` processes (default 2, one thread each: MORPH_THREADS=1).
``--param NAME=VALUE`` (repeatable) changes a tracing parameter as ``morph trace --param``
does. ``-o FILE`` writes the table as TSV (an existing file only with ``--force``); ``--compare A B`` prints two such tables side
by side with the change per stack. About 2.5 minutes on two cores, rendering included.

``--draws N`` also renders each of the six bench cells N - 1 more times with other render
seeds (the same cell: another draw of its staining, the clutter, the texture and the noise),
named ``NAME~k``; the summary row ``mean_draws`` is the six cells over all N draws. One draw of
six stacks is a small sample: a stack's F1 moves by a few hundredths from draw to draw.

``--render NAME=VALUE`` (repeatable) renders the synthetic stacks with a parameter of the
``realistic`` preset changed (:class:`morph.synth.render.RenderParams`, e.g. ``texture=2.4``
for a tissue texture a third stronger; cached apart): how the tracer holds up as the image
gets harder. The two sample stacks are files, not renders, and are left out.

``--modality fluorescence`` renders the same cells (same seeds and crops) as fluorescence
(cached apart) and takes the fluorescence sample stack (30 stacks): how the tracer does on a
fill imaged bright on dark, e.g. with ``--param defaults_for=brightfield``.

``--misses`` adds where the missed gold cable lies (:func:`where_missed`, fractions of the
gold's cable): beyond a traced tip, beside a traced neurite, at the soma, or apart; and how
much of it stands out from the texture as whole runs (``evident``), the headroom a tracer
that follows faint neurites over their length, rather than voxel by voxel, could take.
``below_fg``: the missed cable with no voxel of the foreground the tree was grown on
within 1 um (:func:`missed_below_foreground`), which no change to the tree stage or the
pruning can find; ``below_low``: the part of it with no voxel above ``threshold_low`` within
1 um at all, not even in the faint pieces the faint-neurite stage may join (so ``below_fg -
below_low`` is the missed cable on faint pieces left unjoined; ``nan`` when that stage is
off). About 1 s more per stack. ``--save DIR`` keeps each trace and its gold as SWC.

``--clicks N`` measures the semi-automatic use: each stack is traced again with the soma of
the first trace given and N seeds where a proofreader would click (:func:`simulated_clicks`:
the far visible end of each of the N longest missed runs), and the scores of that trace are
added (``f1_clicked`` ...). About one more trace per stack.

``--deletes N`` then removes up to N false branches of that trace (of the first one without
``--clicks``) as a proofreader would with ``morph edit --delete`` (:func:`simulated_deletes`:
each time the branch whose removal takes the most cable lying over ``2 um`` from the gold, net
of the true cable it takes), and adds the scores of the edited trace (``f1_edited`` ...).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _stacks import (
    SYNTH,
    add_output_arguments,
    add_stack_arguments,
    allen_cell,
    check_output_argument,
    write_output,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MORPH_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("MORPH_BENCH_CACHE", Path.home() / ".cache" / "morph-bench"))

# name -> (group, cell, render seed, crop um); a cell is an Allen file name or
# ("pyramidal" | "aspiny", generator seed); "sample:NAME" is a stack of sample_stacks/
_ALLEN_LEFT_OUT = {"skk_test_4493.swc", *(c for c, _ in SYNTH.values() if isinstance(c, str))}


def stacks(modality: str = "brightfield", draws: int = 1) -> dict[str, tuple]:
    """The set, rendered as ``modality``: the same cells, seeds and crops either way; of the
    sample stacks, those of ``sample_stacks/`` in that modality (fluorescence: the aspiny
    one). With ``draws`` > 1, each of the six bench cells is also rendered ``draws - 1``
    more times with other render seeds (``NAME~k``, seed + 1000 k; group ``draws``)."""
    out: dict[str, tuple] = {}
    for name, (cell, seed) in SYNTH.items():
        out[name] = ("bench", cell, seed, (200, 200, 60))
    for k in range(1, max(1, int(draws))):
        for name, (cell, seed) in SYNTH.items():
            out[f"{name}~{k}"] = ("draws", cell, seed + 1000 * k, (200, 200, 60))
    for name in ("pyramidal_brightfield", "aspiny_brightfield"):
        sample = name.replace("brightfield", modality)
        if (ROOT / "sample_stacks" / f"{sample}.tif").exists():
            out["S_" + name.split("_")[0]] = ("sample", "sample:" + sample, 0, None)
    for kind, seeds in (("pyramidal", (2, 5, 13, 17)), ("aspiny", (2, 7, 9, 13))):
        for s in seeds:
            out[f"G_{kind[:3]}{s}"] = ("further", (kind, s), s + 100, (160, 160, 50))
    allen = sorted(p.name for p in (DATA / "swc" / "allen").glob("*.swc") if p.name not in _ALLEN_LEFT_OUT)
    for k, name in enumerate(allen):
        cell_id = max(re.findall(r"\d+", name), key=len)  # the specimen's id
        out[f"A_{cell_id}"] = ("further", name, 200 + k, (160, 160, 50))
    return out


def parse_render(items: list[str]) -> dict[str, float]:
    """``--render NAME=VALUE`` items as render parameter overrides (checked against the
    ``realistic`` preset: an unknown name or a value out of range raises ``MorphError``)."""
    from morph.errors import MorphError
    from morph.synth.render import render_params

    out: dict[str, float] = {}
    for it in items:
        name, sep, value = it.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise MorphError(f"--render {it!r}: expected NAME=NUMBER") from None
        if not sep:
            raise MorphError(f"--render {it!r}: expected NAME=NUMBER")
    render_params("realistic", **out)
    return out


def render_overrides() -> dict[str, float]:
    """The render overrides of this run (``--render``, passed to the workers through
    ``MORPH_BENCH_RENDER``)."""
    text = os.environ.get("MORPH_BENCH_RENDER", "")
    return parse_render(text.split(";")) if text else {}


def _cache_key(name: str, spec: tuple, modality: str):
    """The rendered cell and the cache files' common path (without suffix) of a synthetic stack."""
    cell, seed, crop = spec[1:]
    cut = os.environ.get("MORPH_BENCH_ALLEN_AXON", "cable")
    from morph.synth import generate_neuron

    m = allen_cell(DATA / "swc" / "allen" / cell, cut=cut) if isinstance(cell, str) else generate_neuron(cell[1], cell_type=cell[0])
    # the cache key names the cell rendered, so a change of the cell (or its cut) renders anew
    from morph.synth.render import RENDER_VERSION

    render = render_overrides()
    h = hashlib.sha1(repr((seed, crop, RENDER_VERSION) + ((tuple(sorted(render.items())),) if render else ())).encode())
    for a in (m.xyz, m.radius, m.types, m.parent):
        h.update(np.ascontiguousarray(a).tobytes())
    return m, CACHE / (f"{name}.{h.hexdigest()[:10]}" + ("" if modality == "brightfield" else f".{modality}"))


def load(name: str, spec: tuple, modality: str = "brightfield"):
    """(data, voxel size, gold) of one stack, rendered once (as ``modality``) and cached
    (with the render's clutter, :func:`load_clutter`)."""
    from morph.io import read_stack, read_swc

    group, cell, seed, crop = spec
    if isinstance(cell, str) and cell.startswith("sample:"):
        base = ROOT / "sample_stacks" / cell[7:]
        st = read_stack(base.with_suffix(".tif"))
        return np.asarray(st.data), tuple(st.voxel_size), read_swc(base.with_suffix(".gold.swc"))
    from morph.io import write_swc
    from morph.synth import render_stack

    m, key = _cache_key(name, spec, modality)
    f, g = key.with_name(key.name + ".npz"), key.with_name(key.name + ".gold.swc")
    c, none = key.with_name(key.name + ".clutter.swc"), key.with_name(key.name + ".clutter.none")
    if f.exists() and g.exists() and (c.exists() or none.exists()):
        z = np.load(f)
        return z["data"], tuple(z["voxel_size"]), read_swc(g)
    st = render_stack(m, preset="realistic", voxel_size=(0.5, 0.5, 1.0), crop=crop, seed=seed, modality=modality,
                      **render_overrides())
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, data=st.data, voxel_size=np.asarray(st.voxel_size))
    write_swc(st.gold, g.with_suffix(".tmp"))
    if st.clutter_model is not None and len(st.clutter_model):
        write_swc(st.clutter_model, c.with_suffix(".tmp"))
        os.replace(c.with_suffix(".tmp"), c)
    else:
        none.touch()
    os.replace(g.with_suffix(".tmp"), g)
    os.replace(tmp, f)
    return st.data, tuple(st.voxel_size), st.gold


def load_clutter(name: str, spec: tuple, modality: str = "brightfield"):
    """The clutter of a synthetic stack (other cells' fragments and debris, the render's
    ``clutter_model``), from the cache :func:`load` fills (rendering it when not cached); ``None`` for the sample stacks
    (rendered without it being kept) and renders without clutter."""
    from morph.io import read_swc

    if isinstance(spec[1], str) and spec[1].startswith("sample:"):
        return None
    _m, key = _cache_key(name, spec, modality)
    c, none = key.with_name(key.name + ".clutter.swc"), key.with_name(key.name + ".clutter.none")
    if not (c.exists() or none.exists()):
        load(name, spec, modality)  # renders and caches it
    return read_swc(c) if c.exists() else None


def missed_runs(m, gs, *, tol: float = 2.0, step: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gold's samples (``gs``: the gold resampled every ``step`` um) that the trace ``m``
    misses (no trace point within ``tol``; soma and roots left out): their indices, the run
    each belongs to (a label per sample of ``gs``: missed samples joined along the gold's
    edges), and the first sample of each run."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    keep = ~gs.soma_mask & (gs.parent >= 0)
    mt = m.resample(step)
    d = cKDTree(mt.xyz).query(gs.xyz)[0] if len(mt) else np.full(len(gs), np.inf)
    miss = keep & (d > tol)
    par = gs.parent
    i = np.flatnonzero(miss)
    e = i[(par[i] >= 0) & miss[np.maximum(par[i], 0)]]
    n = len(gs)
    _, lab = connected_components(coo_matrix((np.ones(e.size), (e, par[e])), shape=(n, n)), directed=False)
    roots = i[(par[i] < 0) | ~miss[np.maximum(par[i], 0)]]  # one per run (a tree)
    return i, lab, roots


def flat_image(data, voxel_size, params) -> np.ndarray:
    """The stack flattened and denoised as the tracer does it (brightfield), in noise units."""
    from morph.tracing import preprocess as pre

    p = params.resolved("brightfield")
    img = pre.preprocess(data, tuple(voxel_size), polarity="brightfield", sigma_um=p.denoise_sigma_um,
                         block_um=p.background_block_um, percentile=p.background_percentile)
    img /= pre.noise_level(img, floor=p.min_noise)
    return img


def simulated_clicks(m, gold, data, voxel_size, params, n: int, *, tol: float = 2.0,
                     step: float = 0.5, img: np.ndarray | None = None) -> np.ndarray:
    """Where a proofreader would click to steer the tracer to what the trace ``m`` misses:
    on each of the ``n`` longest runs of missed gold cable (:func:`missed_runs`), the point
    farthest along the gold (from the soma) among those the tracer accepts as a seed on a
    faint neurite, i.e. where the flattened, denoised image within 1 um reaches
    ``seed_contrast`` noise units (:func:`morph.tracing.seeds.peak_near`): the far end of
    what the image shows of that run. Runs with no such point get no click. ``img``: the
    :func:`flat_image` of ``data`` when the caller has it. Returns ``(k, 3)`` micrometres,
    ``k <= n``."""
    from morph.tracing.seeds import peak_near

    gs = gold.resample(step)
    i, lab, _roots = missed_runs(m, gs, tol=tol, step=step)
    if not i.size or n <= 0:
        return np.zeros((0, 3))
    img = flat_image(data, voxel_size, params) if img is None else img
    need = params.resolved("brightfield").seed_contrast
    runs, cnt = np.unique(lab[i], return_counts=True)
    pd = gs.path_distance
    clicks = []
    for r in runs[np.argsort(-cnt, kind="stable")]:
        if len(clicks) == n:
            break
        idx = i[lab[i] == r]
        idx = idx[np.argsort(-pd[idx], kind="stable")]
        for k in idx:  # from the far end inwards
            if peak_near(img, voxel_size, gs.xyz[k]) >= need:
                clicks.append(gs.xyz[k])
                break
    return np.asarray(clicks, dtype=np.float64).reshape(-1, 3)


def where_missed(m, gold, data, voxel_size, params, *, tol: float = 2.0, step: float = 0.5,
                 min_run_um: float = 10.0, seed: int = 0, img: np.ndarray | None = None) -> dict[str, float]:
    """Where the gold cable that the trace ``m`` misses lies, as fractions of the gold's cable.

    The gold (soma left out) is resampled every ``step`` um; a sample is missed when the trace
    passes no closer than ``tol``. Missed samples joined along the gold's edges form runs;
    each run is filed by where it leaves the found part of the gold: ``miss_tip`` within
    ``2 tol`` of a traced tip (a neurite followed too short), ``miss_side`` from a traced
    neurite elsewhere (a branch never started), ``miss_soma`` from the soma, ``miss_apart``
    from a gold root that is no soma (a branch entering the crop). ``evident``: the cable of runs at
    least ``min_run_um`` long whose mean along the gold, in the flattened, denoised image in
    noise units (best of the gold moved by up to 0.5 um across and 1 um in z, for the
    centring a tracer would do), exceeds the 95th percentile of 20 copies of the same run
    moved 3-8 um sideways (and up to 3 um in z; each copy also at its best offset): cable
    that stands out from the texture as a whole run, though not voxel by voxel. ``img``: the
    :func:`flat_image` of ``data`` when the caller has it.
    """
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    vs = np.asarray(voxel_size, dtype=np.float64)
    gs = gold.resample(step)
    total = max(int((~gs.soma_mask & (gs.parent >= 0)).sum()), 1)
    out = dict.fromkeys(MISS_COLS, 0.0)
    i, lab, roots = missed_runs(m, gs, tol=tol, step=step)
    if not i.size:
        return out
    par = gs.parent
    pp = par[roots]
    nch = np.bincount(m.parent[m.parent >= 0], minlength=len(m))
    tips = m.xyz[(nch == 0) & (m.parent >= 0) & ~m.soma_mask]
    near_tip = (cKDTree(tips).query(gs.xyz[np.maximum(pp, 0)])[0] <= 2 * tol) if len(tips) else np.zeros(pp.size, bool)
    q = np.maximum(pp, 0)
    entering = (pp < 0) | ((par[q] < 0) & ~gs.soma_mask[q])  # from a gold root that is no soma
    kind = np.where(entering, 3, np.where(gs.soma_mask[q], 2, np.where(near_tip, 0, 1)))
    run_kind = np.full(lab.max() + 1, -1)
    run_kind[lab[roots]] = kind
    cnt = np.bincount(lab[i], minlength=run_kind.size)
    for k, col in enumerate(("miss_tip", "miss_side", "miss_soma", "miss_apart")):
        out[col] = float(cnt[run_kind == k].sum()) / total
    # evidence of the long runs against displaced copies of themselves
    long_runs = np.flatnonzero(cnt * step >= min_run_um)
    if not long_runs.size:
        return out
    img = flat_image(data, vs, params) if img is None else img
    sel = i[np.isin(lab[i], long_runs)]
    rid = np.searchsorted(long_runs, lab[sel])
    nrun = long_runs.size
    jit = np.array([(a, b, c) for a in (-0.5, 0, 0.5) for b in (-0.5, 0, 0.5) for c in (-1.0, 0, 1.0)])

    def best_mean(pts: np.ndarray, group: np.ndarray, ngroup: int) -> np.ndarray:
        best = np.full(ngroup, -np.inf)
        w = np.bincount(group, minlength=ngroup)
        for j in jit:
            v = ndi.map_coordinates(img, ((pts + j) / vs)[:, ::-1].T, order=1, mode="nearest")
            best = np.maximum(best, np.bincount(group, weights=v, minlength=ngroup) / np.maximum(w, 1))
        return best

    on = best_mean(gs.xyz[sel], rid, nrun)
    rng = np.random.default_rng(seed)
    ncopy = 20
    ang = rng.uniform(0, 2 * np.pi, (nrun, ncopy))
    dist = rng.uniform(3.0, 8.0, (nrun, ncopy))
    off = np.stack([np.cos(ang) * dist, np.sin(ang) * dist, rng.uniform(-3.0, 3.0, (nrun, ncopy))], axis=-1)
    pts = (gs.xyz[sel][:, None, :] + off[rid]).reshape(-1, 3)
    grp = (rid[:, None] * ncopy + np.arange(ncopy)[None, :]).reshape(-1)
    null = best_mean(pts, grp, nrun * ncopy).reshape(nrun, ncopy)
    stands = on > np.percentile(null, 95, axis=1)
    out["evident"] = float(cnt[long_runs[stands]].sum()) / total
    return out


def missed_below_foreground(m, gold, prep, *, faint_index: np.ndarray | None = None, tol: float = 2.0,
                            step: float = 0.5, near_um: float = 1.0) -> float:
    """The part of the gold's cable (a fraction, soma left out) that the trace ``m`` misses and
    that the tree could not have reached: no voxel of the foreground it was grown on
    (``prep``, the :class:`morph.tracing.pipeline.Prepared` of the trace: voxels above
    ``threshold_low``, without the pieces holding no voxel above ``threshold_high``) lies
    within ``near_um`` of it. What is missed beyond that lay in the foreground and was lost
    by the tree stage or the refinement.

    ``faint_index``: the voxels of those faint pieces (``prep.faint`` as :func:`prepare`
    left it, flat indices of the foreground's grid) count as foreground too. The part then
    left is missed cable with no voxel above ``threshold_low`` near it at all, which no stage
    sees voxel by voxel (only a path judged over its length, a faint join's gap or a tip
    path, crosses it); the difference is the missed cable lying on faint pieces the
    faint-neurite stage did not join."""
    from scipy.spatial import cKDTree

    gs = gold.resample(step)
    total = max(int((~gs.soma_mask & (gs.parent >= 0)).sum()), 1)
    i, _lab, _roots = missed_runs(m, gs, tol=tol, step=step)
    if not i.size:
        return 0.0
    fg = prep.to_physical(prep.fg.xyz_um()) + prep.offset_um
    if faint_index is not None and len(faint_index):
        zyx = np.stack(np.unravel_index(np.asarray(faint_index, dtype=np.int64), prep.fg.shape), axis=1)
        fg = np.vstack([fg, zyx[:, ::-1] * np.asarray(prep.voxel_size, dtype=np.float64) + prep.offset_um])
    d = cKDTree(fg).query(gs.xyz[i], distance_upper_bound=near_um)[0] if len(fg) else np.full(i.size, np.inf)
    return float(np.count_nonzero(d > near_um)) / total


def simulated_deletes(m, gold, n: int, *, tol: float = 2.0):
    """What a proofreader removes with ``n`` deletions (``morph edit --delete`` at a node):
    each time, of the branches (from a branch point or the soma, with everything beyond) whose
    cable lies more than half farther than ``tol`` from the gold, the one whose removal takes
    the most false cable net of the true cable it takes too. Returns the edited trace and the
    number of deletions made (fewer when no such branch is left)."""
    from scipy.spatial import cKDTree

    import morph.edit as ed
    from morph import _tree

    kd = cKDTree(gold.resample(0.5).xyz)
    done = 0
    for _ in range(n):
        off = kd.query(m.xyz)[0] > tol
        el = m.neurite_edge_length
        best, gain = -1, 0.0
        for s in np.flatnonzero(m.section_start):
            sub = _tree.subtree_mask(m.parent, int(s))
            bad, good = float(el[sub & off].sum()), float(el[sub & ~off].sum())
            if bad > good and bad - good > gain:
                best, gain = int(s), bad - good
        if best < 0:
            break
        m, _ = ed.delete_branch(m, m.xyz[best])
        done += 1
    return m, done


def run_one(job: tuple) -> dict:
    import warnings

    import morph.progress as pg
    from morph.cli.trace import parse_params
    from morph.compare import compare
    from morph.tracing import trace
    from morph.tracing.pipeline import prepare

    name, spec, items, misses, save, nclick, modality, ndel = job
    pg.set_quiet(True)
    warnings.simplefilter("ignore")
    data, vs, gold = load(name, spec, modality)
    params = parse_params(items, "auto")
    held = []
    held_faint = []

    def prepare_held(*a, **k):  # the foreground the tree was grown on, for --misses
        held.append(prepare(*a, **k))
        # the faint pieces, before the faint-neurite stage lets go of them
        held_faint.append(None if held[-1].faint is None else held[-1].faint.copy())
        return held[-1]

    t0 = time.perf_counter()
    m = trace(data, voxel_size=vs, params=params, progress=False, prepare_fn=prepare_held if misses else None)
    dt = time.perf_counter() - t0
    clutter = load_clutter(name, spec, modality)
    r = compare(m, gold, tolerance=2.0, clutter=clutter)
    row = {
        "stack": name, "group": spec[0], "precision": r.precision, "recall": r.recall, "f1": r.f1,
        "cable": r.trace_length / max(r.gold_length, 1e-9),
        "bp": r.branch_points.found / max(r.branch_points.gold, 1),
        "clutter": float("nan") if r.clutter_fraction is None else r.clutter_fraction, "time": dt,
    }
    img = flat_image(data, vs, params) if misses or nclick else None  # once for both
    if misses:
        row |= where_missed(m, gold, data, vs, params, img=img)
        row["below_fg"] = missed_below_foreground(m, gold, held[0])
        # without the faint pieces' voxels (no faint-neurite stage) it is not known
        row["below_low"] = (float("nan") if held_faint[0] is None
                            else missed_below_foreground(m, gold, held[0], faint_index=held_faint[0]))
    m2 = m
    if nclick:
        clicks = simulated_clicks(m, gold, data, vs, params, nclick, img=img)
        soma = m.soma_center if m.soma_nodes.size else None
        m2 = trace(data, voxel_size=vs, params=params, progress=False, soma=soma, seeds=clicks)
        r2 = compare(m2, gold, tolerance=2.0)
        row |= {"clicks": float(len(clicks)), "f1_clicked": r2.f1, "precision_clicked": r2.precision,
                "recall_clicked": r2.recall}
    if ndel:
        m3, k = simulated_deletes(m2, gold, ndel)
        r3 = compare(m3, gold, tolerance=2.0)
        row |= {"deletes": float(k), "f1_edited": r3.f1, "precision_edited": r3.precision, "recall_edited": r3.recall}
    if save is not None:
        from morph.io import write_swc

        save.mkdir(parents=True, exist_ok=True)
        write_swc(m, save / f"{name}.swc", force=True)
        write_swc(gold, save / f"{name}.gold.swc", force=True)
    return row


COLS = ("precision", "recall", "f1", "cable", "bp", "clutter", "time")
# with --misses: where the missed gold cable lies (fractions of the gold's cable)
MISS_COLS = ("miss_tip", "miss_side", "miss_soma", "miss_apart", "evident", "below_fg", "below_low")
# with --clicks N: the trace again with N simulated seed clicks on what it missed
CLICK_COLS = ("clicks", "f1_clicked", "precision_clicked", "recall_clicked")
# with --deletes N: then up to N false branches deleted (after the clicks, when given)
DELETE_COLS = ("deletes", "f1_edited", "precision_edited", "recall_edited")
# summary groups: the bench's six stacks, the same cells over every draw (with --draws), the
# 25 others, all 31
GROUPS = {"bench": ("bench",), "draws": ("bench", "draws"), "further": ("sample", "further"),
          "all": ("bench", "sample", "further")}


def read_table(path: Path) -> dict[str, dict]:
    lines = [ln.split("\t") for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    head, rows = lines[0], lines[1:]
    out = {}
    for r in rows:
        d = dict(zip(head, r))
        if d["stack"].startswith("mean"):
            continue
        out[d["stack"]] = {"group": d["group"], **{c: float(d.get(c, "nan")) for c in COLS}}
    return out


def _columns(rows: dict[str, dict]) -> tuple[str, ...]:
    def have(cols: tuple[str, ...]) -> bool:
        return bool(rows) and all(cols[0] in r for r in rows.values())

    return (COLS + (MISS_COLS if have(MISS_COLS) else ()) + (CLICK_COLS if have(CLICK_COLS) else ())
            + (DELETE_COLS if have(DELETE_COLS) else ()))


def _mean(v: list[float]) -> float:
    a = np.asarray(v, dtype=np.float64)
    return float(a[np.isfinite(a)].mean()) if np.isfinite(a).any() else float("nan")


def summary(rows: dict[str, dict]) -> dict[str, dict]:
    out = {}
    cols = _columns(rows)
    for g, members in GROUPS.items():
        if g == "draws" and not any(r["group"] == "draws" for r in rows.values()):
            continue  # the six alone: the bench group
        sel = [r for r in rows.values() if r["group"] in members]
        if sel:
            # the sample stacks have no clutter column: the mean over the stacks that do
            out[g] = {c: _mean([r.get(c, np.nan) for r in sel]) for c in cols} | {"n": len(sel)}
    return out


def format_table(rows: dict[str, dict]) -> str:
    cols = _columns(rows)
    lines = ["stack\tgroup\t" + "\t".join(cols)]
    for name, r in rows.items():
        lines.append(f"{name}\t{r['group']}\t" + "\t".join(f"{r.get(c, np.nan):.3f}" for c in cols))
    for g, s in summary(rows).items():
        lines.append(f"mean_{g}\t{s['n']}\t" + "\t".join(f"{s[c]:.3f}" for c in cols))
    return "\n".join(lines) + "\n"


def compare_tables(a: dict[str, dict], b: dict[str, dict]) -> str:
    out = [f"{'stack':16s} {'F1 a':>6s} {'F1 b':>6s} {'dF1':>7s} {'P a':>6s} {'P b':>6s} {'R a':>6s} {'R b':>6s} {'cable a':>7s} {'cable b':>7s}"]
    for k in a:
        if k not in b:
            continue
        x, y = a[k], b[k]
        out.append(f"{k:16s} {x['f1']:6.3f} {y['f1']:6.3f} {y['f1'] - x['f1']:+7.3f} {x['precision']:6.3f} {y['precision']:6.3f} "
                   f"{x['recall']:6.3f} {y['recall']:6.3f} {x['cable']:7.2f} {y['cable']:7.2f}")
    common = [k for k in a if k in b]
    sa, sb = summary({k: a[k] for k in common}), summary({k: b[k] for k in common})
    for g in sa:
        sel = [k for k in common if a[k]["group"] in GROUPS[g]]
        up = sum(b[k]["f1"] > a[k]["f1"] + 0.0005 for k in sel)
        down = sum(b[k]["f1"] < a[k]["f1"] - 0.0005 for k in sel)
        out.append(f"mean {g:11s} {sa[g]['f1']:6.3f} {sb[g]['f1']:6.3f} {sb[g]['f1'] - sa[g]['f1']:+7.3f} {sa[g]['precision']:6.3f} {sb[g]['precision']:6.3f} "
                   f"{sa[g]['recall']:6.3f} {sb[g]['recall']:6.3f} {sa[g]['cable']:7.2f} {sb[g]['cable']:7.2f}  ({up} up, {down} down)")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_stack_arguments(ap, "stacks to run (default: all)")
    add_output_arguments(ap)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    ap.add_argument("--misses", action="store_true", help="also say where the missed gold cable lies")
    ap.add_argument("--save", type=Path, metavar="DIR", help="write each trace and its gold as DIR/NAME[.gold].swc")
    ap.add_argument("--clicks", type=int, default=0, metavar="N",
                    help="also trace again with N simulated seed clicks on the longest missed runs")
    ap.add_argument("--deletes", type=int, default=0, metavar="N",
                    help="then delete up to N false branches as a proofreader would (morph edit --delete)")
    ap.add_argument("--allen-axon", choices=("cable", "path"), default="cable",
                    help="the Allen cells' first 100 um of axon: of cable (default) or of path distance")
    ap.add_argument("--modality", choices=("brightfield", "fluorescence"), default="brightfield",
                    help="render the cells as this (default brightfield; --misses and --clicks need brightfield)")
    ap.add_argument("--render", action="append", default=[], metavar="NAME=VALUE",
                    help="render the synthetic stacks with a parameter of the realistic preset changed "
                         "(e.g. texture=2.4); repeatable; the sample stacks are left out")
    ap.add_argument("--draws", type=int, default=1, metavar="N",
                    help="also render each of the six bench cells N - 1 more times with other render seeds "
                         "(summary row mean_draws: the six cells over all N draws)")
    args = ap.parse_args(argv)
    check_output_argument(ap, args)
    if args.modality != "brightfield" and (args.misses or args.clicks):
        print("--misses and --clicks read the image as brightfield: run them without --modality", file=sys.stderr)
        return 2
    if args.compare:
        print(compare_tables(read_table(args.compare[0]), read_table(args.compare[1])))
        return 0
    specs = stacks(args.modality, args.draws)
    if args.render:  # files, not renders
        specs = {n: s for n, s in specs.items() if not str(s[1]).startswith("sample:")}
    names = args.names or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        print(f"unknown stacks: {', '.join(unknown)}; known: {', '.join(specs)}", file=sys.stderr)
        return 2
    from morph.cli.trace import parse_params
    from morph.errors import MorphError

    try:
        parse_params(args.param, "auto")  # a bad --param stops here, not in every worker
        parse_render(args.render)
    except MorphError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ["MORPH_BENCH_RENDER"] = ";".join(args.render)
    os.environ["MORPH_THREADS"] = "1"
    os.environ["MORPH_BENCH_ALLEN_AXON"] = args.allen_axon  # read by load() in the workers
    rows: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        jobs = [(n, specs[n], args.param, args.misses, args.save, args.clicks, args.modality, args.deletes)
                for n in names]
        for r in ex.map(run_one, jobs):
            rows[r["stack"]] = r
            print(f"{r['stack']:14s} F1 {r['f1']:.3f}  P {r['precision']:.3f}  R {r['recall']:.3f}  "
                  f"cable {r['cable']:.2f}  bp {r['bp']:.2f}  clutter {r['clutter']:.3f}  {r['time']:.1f} s", file=sys.stderr, flush=True)
    opts = ([f"--modality {args.modality}"] if args.modality != "brightfield" else []) + [f"--param {p}" for p in args.param]
    opts += [f"--allen-axon {args.allen_axon}"] if args.allen_axon != "cable" else []
    opts += [f"--draws {args.draws}"] if args.draws > 1 else []
    opts += [f"--render {r}" for r in args.render]
    text = ("# trace_accuracy " + " ".join(opts) + "\n") + format_table(rows)
    write_output(args, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
