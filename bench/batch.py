"""Benchmark of ``morph.batch``: features of many cells serially and on a local Dask cluster,
and tracing of a stack larger than the memory bound.

Run by hand::

    .venv/bin/python bench/batch.py features --n 2000 --workers 2 [--dask-defaults]
    .venv/bin/python bench/batch.py overhead --n 2000 --workers 2
    .venv/bin/python bench/batch.py trace --voxel 0.6 0.6 0.5 --max-memory 96MiB --ratio 3.2

The machine may be shared: each run prints the 1-minute load average before and after it;
repeat a measurement taken under load (a load above the number of cores slows every process).

``features``: the real SWCs of ``MORPH_DATA`` replicated to ``--n`` files (symlinks in a
temporary folder), measured with

- a plain loop ``features.compute(read_swc(f))`` in this process (the pure cost of the work);
- the peer: ``multiprocessing.Pool(workers).map`` of the same loop body (no cache, no log,
  no progress; fork start);
- ``morph.batch.features(..., scheduler="serial")`` (the engine in process: per-file cache
  and table writing);
- ``morph.batch.features`` on a ``LocalCluster`` of ``workers`` processes started as
  ``morph.batch`` starts it (cluster start-up timed separately), then the same call again
  (everything cached: the cost of a re-run); with ``--dask-defaults`` also on a LocalCluster
  with Dask's default settings (what :data:`morph.batch.LOCAL_CLUSTER_CONFIG` changes).

Each row gives the wall time, the per-file overhead ``(wall x workers - plain loop) / files``,
and the CPU time per file of this process (for a LocalCluster: the client, the scheduler and
the nannies; for the pool: its workers) and of the Dask workers: unlike wall times, CPU times
hardly depend on what else runs on the machine.

``overhead``: the same comparison with a per-file function that only reads the SWC and counts
its nodes, so that what is measured is the cost of the engine (Dask tasks, cache, table).

``trace``: a synthetic neuron (``morph.synth``) rendered into a stack, followed by background
slices (the rendered background beyond the cell, mirrored) until the stack is ``--ratio``
times the bound, stored as OME-Zarr, traced in a fresh process in memory
(``morph.tracing.trace`` after reading the whole stack) and chunk by chunk
(``morph.tracing.chunked.trace`` with ``max_memory``), each with its wall time, its peak
anonymous memory (sampled every 20 ms from ``/proc/self/status``: what the process itself
allocated), split into the image stages (up to the foreground) and the tree stages (graph,
shortest paths, pruning), its peak resident set (``VmHWM``: that plus the memory-mapped file
pages it touched, which the system reclaims under pressure), and the F1 of each trace against
the gold tree (``morph.compare``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def data_dir() -> Path:
    return Path(os.environ.get("MORPH_DATA", ROOT.parent / "shared" / "data"))


def _one(path: str) -> int:
    from morph import features
    from morph.io import read_swc

    return len(features.compute(read_swc(path)))


def _cpu() -> float:
    """CPU seconds used by this process (all threads) and its waited-for children."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _self_cpu() -> float:
    import resource

    a = resource.getrusage(resource.RUSAGE_SELF)
    return a.ru_utime + a.ru_stime


class _Run:
    """Wall time, CPU of this process (client, scheduler and nannies for a LocalCluster; the
    pool's workers for the pool) and of the Dask workers, and the 1-minute load before/after."""

    def __init__(self, name: str, workers: int, client=None) -> None:
        self.name, self.workers, self.client = name, workers, client
        self.worker_cpu = float("nan")

    def __enter__(self) -> _Run:
        self.load0 = os.getloadavg()[0]
        self.w0 = self.client.run(_self_cpu) if self.client is not None else None
        self.c0 = _cpu()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = _cpu() - self.c0
        if self.client is not None:
            w1 = self.client.run(_self_cpu)
            self.worker_cpu = sum(w1[k] - self.w0[k] for k in w1)
        self.load1 = os.getloadavg()[0]


def _replicate(d: Path, n: int) -> list[str]:
    real = sorted(data_dir().glob("swc/*/*.swc"))
    d.mkdir()
    files = []
    for k in range(n):
        src = real[k % len(real)]
        f = d / f"{k:05d}_{src.name}"
        f.symlink_to(src)
        files.append(str(f))
    return files


def bench_features(n: int, workers: int, dask_defaults: bool) -> None:
    import pandas as pd

    from morph import batch

    with tempfile.TemporaryDirectory(prefix="morph-bench-batch-") as tmp:
        files = _replicate(Path(tmp) / "cells", n)
        _one(files[0])  # imports
        runs: list[_Run] = []
        print(f"load before: {os.getloadavg()}", flush=True)

        with _Run("plain loop, in process", 1) as r:
            for f in files:
                _one(f)
        runs.append(r)
        t_loop = r.wall

        ctx = mp.get_context("fork")
        with _Run(f"peer: multiprocessing.Pool({workers}).map", workers) as r:
            with ctx.Pool(workers) as pool:
                pool.map(_one, files, chunksize=8)
        runs.append(r)

        with _Run("morph.batch serial (cache + table)", 1) as r:
            df_s = batch.features(files, scheduler="serial", output=Path(tmp) / "serial.parquet", quiet=True)
        runs.append(r)

        configs = [("morph's LocalCluster settings", batch.LOCAL_CLUSTER_CONFIG)]
        if dask_defaults:
            configs.append(("Dask's default settings", {}))
        tables = []
        for label, cfg in configs:
            t0 = time.perf_counter()
            cluster, client = _local_cluster(workers, cfg)
            client.run(_one, files[0])  # workers import morph once
            t_start = time.perf_counter() - t0
            try:
                out = Path(tmp) / f"cluster{len(tables)}.parquet"
                with _Run(f"morph.batch LocalCluster({workers}), {label}", workers, client) as r:
                    df_c = batch.features(files, client, output=out, quiet=True)
                runs.append(r)
                tables.append(df_c)
                if cfg:
                    with _Run(f"morph.batch LocalCluster({workers}), re-run (all cached)", workers, client) as r:
                        batch.features(files, client, output=out, quiet=True)
                    runs.append(r)
                    t_start_morph = t_start
            finally:
                client.close()
                cluster.close()
        assert len(df_s) == n and df_s.attrs["summary"].ok, df_s.attrs["summary"].format()
        same = all(df_s.equals(t) for t in tables)
        for t in tables:
            pd.testing.assert_frame_equal(df_s, t)

    print(f"\nfeatures of {n} files ({len(set(Path(f).name[6:] for f in files))} real SWCs replicated), "
          f"{df_s.shape[1] - 1} features per cell, {os.cpu_count()} cores")
    print(f"{'method':<62} {'wall s':>7} {'ms/file':>8} {'speed-up':>8} {'overhead':>9} "
          f"{'client CPU':>10} {'worker CPU':>10} {'load':>10}")
    print(f"{'':<62} {'':>7} {'':>8} {'':>8} {'ms/file':>9} {'ms/file':>10} {'ms/file':>10} {'before-after':>12}")
    for r in runs:
        over = (r.wall * r.workers - t_loop) / n * 1000
        wcpu = "" if r.worker_cpu != r.worker_cpu else f"{r.worker_cpu / n * 1000:.1f}"
        print(f"{r.name:<62} {r.wall:>7.1f} {r.wall / n * 1000:>8.1f} {t_loop / r.wall:>8.2f} {over:>9.1f} "
              f"{r.cpu / n * 1000:>10.1f} {wcpu:>10} {r.load0:>5.1f}-{r.load1:<5.1f}")
    print("overhead: (wall x workers - plain loop wall) / files. client CPU: this process (for a "
          "LocalCluster: the client, the scheduler and the nannies; for the pool: its workers). "
          "worker CPU: the Dask worker processes.")
    print(f"LocalCluster start-up (not included above): {t_start_morph:.1f} s")
    print(f"serial and cluster tables identical: {same}")


def _local_cluster(workers: int, cfg: dict):
    """A LocalCluster as :func:`morph.batch.dask_client` starts it, with ``cfg`` as Dask settings."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(cfg):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
    return cluster, Client(cluster)


def _light(m) -> dict:
    """A per-file function that costs almost nothing: isolates the engine's own cost."""
    return {"nodes": len(m)}


def bench_overhead(n: int, workers: int) -> None:
    """Per-file cost of the engine itself, with a per-file function that does almost nothing
    (read the SWC, count its nodes)."""
    from morph import batch
    from morph.io import read_swc

    with tempfile.TemporaryDirectory(prefix="morph-bench-batch-") as tmp:
        files = _replicate(Path(tmp) / "cells", n)
        t0 = time.perf_counter()
        for f in files:
            _light(read_swc(f))
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch.features(files, scheduler="serial", func=_light, output=Path(tmp) / "s.parquet", quiet=True)
        t_serial = time.perf_counter() - t0
        cluster, client = _local_cluster(workers, batch.LOCAL_CLUSTER_CONFIG)
        try:
            client.run(lambda: __import__("morph.io"))
            t0 = time.perf_counter()
            df = batch.features(files, client, func=_light, output=Path(tmp) / "c.parquet", quiet=True)
            t_cluster = time.perf_counter() - t0
        finally:
            client.close()
            cluster.close()
        assert len(df) == n
    print(f"\nengine cost with a trivial per-file function (read + count nodes), {n} files, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'method':<40} {'wall s':>8} {'ms/file':>8}")
    for name, t in (("plain loop, in process", t_loop), ("morph.batch serial (cache + table)", t_serial),
                    (f"morph.batch LocalCluster({workers})", t_cluster)):
        print(f"{name:<40} {t:>8.2f} {t / n * 1000:>8.2f}")
    print(f"engine cost per file: serial {(t_serial - t_loop) / n * 1000:.2f} ms; "
          f"cluster (wall x workers - plain loop) {(t_cluster * workers - t_loop) / n * 1000:.2f} worker-ms")


_TRACE_CHILD = r"""
import json, os, sys, threading, time, resource
sys.path.insert(0, {root!r})

peak = {{"anon": 0}}
def _anon():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0
stop = False
def sampler():
    while not stop:
        peak["anon"] = max(peak["anon"], _anon())
        time.sleep(0.02)

import numpy as np
from morph.io.chunked import open_chunked
from morph.tracing import chunked
from morph.tracing import trace
from morph.io import write_swc
# what any run in this process loads first (modules, dask's machinery): not part of the run
import dask.array, scipy.ndimage, zarr  # noqa: E401,F401
import morph.tracing.polarity, morph.tracing.tree, morph.tracing.tubularity  # noqa: E401,F401
with chunked.scratch() as d:
    chunked.map_local(lambda x: x * 2, np.zeros((8, 32, 32), np.float32), halo=(1, 0, 0), max_memory=2**26, scratch_dir=d)
np.asarray(open_chunked({path!r}).data[:2])
base = _anon()
# the peak of the image stages: everything before the tree stages start (foreground_graph)
from morph.tracing import pipeline
_fg = pipeline.foreground_graph
stage = {{}}
def _wrapped(*a, **k):
    stage["image_peak"] = max(peak["anon"], _anon())
    stage["foreground"] = int(a[2].size)
    peak["anon"] = _anon()
    return _fg(*a, **k)
pipeline.foreground_graph = _wrapped
th = threading.Thread(target=sampler, daemon=True); th.start()
t0 = time.perf_counter()
mode, path, out, max_memory, soma = {mode!r}, {path!r}, {out!r}, {max_memory!r}, {soma!r}
if mode == "memory":
    s = open_chunked(path).to_stack()
    m = trace(s, soma=soma, progress=False)
else:
    m = chunked.trace(path, max_memory=max_memory, soma=soma, progress=False, scratch_dir={scratch!r})
t = time.perf_counter() - t0
stop = True; th.join()
write_swc(m, out, force=True)
hwm = 0
with open("/proc/self/status") as fh:
    for line in fh:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
fg = [h for h in m.header if "foreground voxels" in h]
fg = int(fg[0].rsplit(" ", 1)[-1]) if fg else -1
print(json.dumps({{"seconds": t, "peak_anon": max(peak["anon"], stage.get("image_peak", 0)), "base_anon": base,
                  "image_peak": stage.get("image_peak", 0), "tree_peak": peak["anon"], "hwm": hwm, "nodes": len(m),
                  "fg": fg}}))
"""


def _run_trace(mode: str, path: Path, out: Path, max_memory: int, soma: list[float], scratch: Path) -> dict:
    code = _TRACE_CHILD.format(root=str(ROOT), mode=mode, path=str(path), out=str(out), max_memory=max_memory,
                               soma=soma, scratch=str(scratch))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def _background_padding(stack, gold, vz: float, n: int):
    """``n`` slices of background to append after the stack's last slice: the slices beyond
    the cell (more than 3 um past its last node) mirrored back and forth, every other copy
    also flipped in x and y, so that the padding has the rendered background's statistics."""
    import numpy as np

    top = int(np.ceil((float(np.max(gold.xyz[:, 2] + gold.radius)) + 3.0) / vz))
    block = stack[min(top, stack.shape[0] - 4):]
    out, k = [], 0
    while sum(len(b) for b in out) < n:
        b = block if k % 2 == 0 else block[::-1, ::-1, ::-1]
        out.append(b)
        k += 1
    return np.concatenate(out)[:n]


def bench_trace(voxel: tuple[float, float, float], max_memory: int, seed: int, keep: Path | None,
                ratio: float) -> None:
    import numpy as np

    from morph.compare import compare
    from morph.io import read_swc
    from morph.io.chunked import write_zarr
    from morph.synth import generate_neuron, render_stack
    from morph.tracing.chunked import SPARSE_BYTES_PER_VOXEL as SPARSE

    load0 = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="morph-bench-trace-", dir=keep) as tmp:
        tmp = Path(tmp)
        cell = generate_neuron(seed)
        # lay the cell's longest extent along z: many small slices, the shape of a tall stack
        lo, hi = cell.bounds()
        order = np.argsort(hi - lo)  # shortest, middle, longest -> x, y, z
        rot = np.zeros((4, 4))
        rot[3, 3] = 1.0
        for new_axis, old_axis in enumerate((order[1], order[0], order[2])):
            rot[new_axis, old_axis] = 1.0
        if np.linalg.det(rot[:3, :3]) < 0:
            rot[0] *= -1
        cell = cell.transform(rot)
        t0 = time.perf_counter()
        syn = render_stack(cell, preset="realistic", modality="fluorescence", voxel_size=voxel, seed=seed)
        t_render = time.perf_counter() - t0
        stack = syn.data
        gold = syn.gold
        zpath = tmp / "synthetic.ome.zarr"
        n_cell = stack.shape[0]
        extra = int(np.ceil(ratio * max_memory / (stack.shape[1] * stack.shape[2]))) - n_cell
        if extra > 0:  # a field of view deeper than the cell: background slices after it
            stack = np.concatenate([stack, _background_padding(stack, gold, syn.voxel_size[2], extra)])
        nz, ny, nx = stack.shape
        write_zarr(zpath, stack, syn.voxel_size, chunks=(16, ny, nx))
        soma = [float(v) for v in gold.soma_center] if np.isfinite(gold.soma_center).all() else None
        nbytes = stack.nbytes
        del stack, syn
        res = {}
        for mode in ("memory", "chunked"):
            res[mode] = _run_trace(mode, zpath, tmp / f"{mode}.swc", max_memory, soma, tmp)
            res[mode]["f1"] = compare(read_swc(tmp / f"{mode}.swc"), gold).f1
        mm, ch = read_swc(tmp / "memory.swc"), read_swc(tmp / "chunked.swc")
        identical = (len(mm) == len(ch) and np.array_equal(mm.xyz, ch.xyz) and np.array_equal(mm.parent, ch.parent)
                     and np.array_equal(mm.radius, ch.radius) and np.array_equal(mm.types, ch.types))
    mib = 2**20
    print(f"\ntracing a synthetic stack {nz}x{ny}x{nx} uint8 = {nbytes / mib:.0f} MiB (the cell's {n_cell} slices, "
          f"then {nz - n_cell} of background), float32 working image {4 * nbytes / mib:.0f} MiB; max_memory "
          f"{max_memory / mib:.0f} MiB ({nbytes / max_memory:.1f}x the bound); render {t_render:.0f} s; "
          f"load {load0:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"{'run':<24} {'wall s':>7} {'peak anon MiB':>13} {'image stages':>12} {'tree stages':>11} "
          f"{'peak RSS MiB':>12} {'nodes':>6} {'F1':>6} {'fg voxels':>9} {'tree B/fg voxel':>15}")
    for mode, r in res.items():
        name = "in memory (trace)" if mode == "memory" else f"chunked (max {max_memory / mib:.0f} MiB)"
        img, tree = (r["image_peak"] - r["base_anon"]) / mib, (r["tree_peak"] - r["base_anon"]) / mib
        per = (r["tree_peak"] - r["base_anon"]) / max(r["fg"], 1)
        print(f"{name:<24} {r['seconds']:>7.1f} {(r['peak_anon'] - r['base_anon']) / mib:>13.0f} {img:>12.0f} "
              f"{tree:>11.0f} {r['hwm'] / mib:>12.0f} {r['nodes']:>6} {r['f1']:>6.3f} {r['fg']:>9} {per:>15.0f}")
    print("peak anon: memory the run allocated (above the process after its imports), split into the image "
          "stages (up to the foreground) and the tree stages (graph, costs, radii, shortest paths, pruning); "
          "peak RSS: the process's VmHWM, memory-mapped file pages included")
    ch = res["chunked"]
    print(f"chunked: image stages {'within' if ch['image_peak'] - ch['base_anon'] <= max_memory else 'OVER'} the bound; "
          f"tree stages {'within' if ch['tree_peak'] - ch['base_anon'] <= max_memory else 'over'} the bound "
          f"(estimated before they start: {ch['fg'] * SPARSE / mib:.0f} MiB for {ch['fg']} foreground voxels)")
    print(f"chunked result identical to in-memory (coordinates, topology, radii, types): {identical}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("features")
    f.add_argument("--n", type=int, default=2000)
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--dask-defaults", action="store_true",
                   help="also run the LocalCluster with Dask's default settings (what morph changes, and why)")
    o = sub.add_parser("overhead")
    o.add_argument("--n", type=int, default=2000)
    o.add_argument("--workers", type=int, default=2)
    t = sub.add_parser("trace")
    t.add_argument("--voxel", type=float, nargs=3, default=(0.6, 0.6, 0.5), metavar=("X", "Y", "Z"),
                   help="voxel size of the rendered stack (smaller: a larger stack)")
    t.add_argument("--max-memory", default="96MiB")
    t.add_argument("--seed", type=int, default=3)
    t.add_argument("--ratio", type=float, default=3.2,
                   help="make the stack at least this many times the bound, with background slices after the cell")
    t.add_argument("--tmp", type=Path, default=None, help="folder for the temporary stack (default: system temp)")
    args = ap.parse_args()
    from morph import progress

    progress.set_quiet(True)
    if args.what == "features":
        bench_features(args.n, args.workers, args.dask_defaults)
    elif args.what == "overhead":
        bench_overhead(args.n, args.workers)
    else:
        from dask.utils import parse_bytes

        bench_trace(tuple(args.voxel), int(parse_bytes(args.max_memory)), args.seed, args.tmp, args.ratio)


if __name__ == "__main__":
    main()
