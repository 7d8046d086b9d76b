"""Benchmark: morph features against NeuroM and navis, in one run, on the same files.

Run by hand (not a test)::

    .venv/bin/python bench/features.py            # every swc/allen/*.swc
    .venv/bin/python bench/features.py --files a.swc b.swc --repeat 3

Three measurements, per cell, parsing excluded (each library reads the files first):

* **core**: total length, bifurcations, tips, max path distance, max Euclidean distance,
  section lengths, all neurites, with morph, NeuroM and navis;
* **sholl**: 3-D Sholl crossings at 10 um steps out to the farthest node, centred on the
  soma, with morph, NeuroM (``sholl_crossings``) and navis (``sholl_analysis``);
* **full**: morph's whole default feature set (Allen set, distributions, soma, Sholl, AIS;
  every compartment) against navis ``ivscc_features`` (navis' Allen IVSCC set), on
  skk_upright_606271263 (else the largest cell) unless ``--full-all``.

Prints per-cell times (ms) and the throughput ratios. Targets: core >= 10x NeuroM, Sholl
>= 100x NeuroM, full set on skk_upright_606271263 < 0.15 s and >= 5x navis.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import morph.features as mf  # noqa: E402
from morph.io import read_swc  # noqa: E402

CORE = ["total_length", "num_bifurcations", "num_tips", "max_path_distance", "max_euclidean_distance", "section_lengths"]


def data_dir() -> Path:
    return Path(os.environ.get("MORPH_DATA", ROOT.parent / "shared" / "data"))


def best(fn, arg, repeat: int) -> float:
    """Shortest of ``repeat`` timed calls of ``fn(arg)``."""
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(arg)
        t.append(time.perf_counter() - t0)
    return min(t)


def morph_core(m):
    return mf.compute(m, compartments=["all_neurites"], features=CORE)


def morph_sholl(m):
    return mf.sholl(m, step=10.0)


def morph_full(m):
    return mf.compute(m)


def nm_core(n):
    from neurom import features

    return (
        features.get("total_length", n),
        features.get("number_of_bifurcations", n),
        features.get("number_of_leaves", n),
        max(features.get("section_path_distances", n)),
        features.get("max_radial_distance", n),
        features.get("section_lengths", n),
    )


def nm_sholl(n):
    from neurom import features

    pts = np.vstack([s.points[:, :3] for s in n.sections])
    far = np.linalg.norm(pts - n.soma.center, axis=1).max()
    radii = np.arange(10.0, 10.0 * np.ceil(far / 10.0) + 1e-9, 10.0)
    return features.get("sholl_crossings", n, radii=radii)


def navis_core(x):
    import navis

    xyz = x.nodes[["x", "y", "z"]].to_numpy()
    root = x.nodes.set_index("node_id").loc[_navis_center(x), ["x", "y", "z"]].to_numpy(dtype=float)
    return (
        x.cable_length,
        x.n_branches,
        x.n_leafs,
        max(navis.dist_to_root(x, weight="weight").values()),
        np.linalg.norm(xyz - root, axis=1).max(),
        navis.segment_analysis(x).length.to_numpy(),
    )


def _navis_center(x) -> int:
    """Node id of navis' soma (its first root when it finds none)."""
    soma = x.soma
    if soma is not None and len(np.atleast_1d(soma)):
        return int(np.atleast_1d(soma)[0])
    return int(np.atleast_1d(x.root)[0])


def navis_sholl(x):
    import navis

    c = _navis_center(x)
    nodes = x.nodes.set_index("node_id")
    center = nodes.loc[c, ["x", "y", "z"]].to_numpy(dtype=float)
    far = np.linalg.norm(x.nodes[["x", "y", "z"]].to_numpy() - center, axis=1).max()
    radii = np.arange(10.0, 10.0 * np.ceil(far / 10.0) + 1e-9, 10.0)
    return navis.sholl_analysis(x, radii=radii, center=c)


def navis_full(x):
    import navis

    return navis.ivscc_features(x, progress=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per measurement (1)")
    ap.add_argument("--full-all", action="store_true", help="full-set comparison on every file")
    ap.add_argument("--no-navis", action="store_true")
    args = ap.parse_args()
    files = args.files or sorted((data_dir() / "swc" / "allen").glob("*.swc"))
    warnings.filterwarnings("ignore")
    import logging

    import navis
    import neurom as nm

    logging.getLogger("navis").setLevel(logging.ERROR)
    navis.config.pbar_hide = True

    rows = []
    for f in files:
        m = read_swc(f)
        n = nm.load_morphology(str(f))
        x = None if args.no_navis else navis.read_swc(str(f))
        if not rows:  # warm up every library once
            morph_core(m), morph_sholl(m), nm_core(n), nm_sholl(n)
            if x is not None:
                navis_core(x), navis_sholl(x)
        r = {"file": f.stem, "nodes": len(m)}
        r["morph_core"] = best(morph_core, m, args.repeat)
        r["nm_core"] = best(nm_core, n, args.repeat)
        r["morph_sholl"] = best(morph_sholl, m, args.repeat)
        r["nm_sholl"] = best(nm_sholl, n, args.repeat)
        if x is not None:
            r["navis_core"] = best(navis_core, x, args.repeat)
            r["navis_sholl"] = best(navis_sholl, x, args.repeat)
        rows.append(r)
        print(f"  {f.stem}: done", file=sys.stderr, flush=True)

    def ms(v):
        return f"{1000 * v:9.1f}"

    print(f"\nPer-cell times (ms, parsing excluded; best of {args.repeat})")
    hdr = f"{'cell':<44}{'nodes':>7}{'core morph':>11}{'NeuroM':>10}{'navis':>10}{'sholl morph':>12}{'NeuroM':>10}{'navis':>10}"
    print(hdr)
    for r in rows:
        print(
            f"{r['file'][:43]:<44}{r['nodes']:>7}{ms(r['morph_core']):>11}{ms(r['nm_core']):>10}"
            f"{ms(r.get('navis_core', np.nan)):>10}{ms(r['morph_sholl']):>12}{ms(r['nm_sholl']):>10}"
            f"{ms(r.get('navis_sholl', np.nan)):>10}"
        )
    tot = {k: sum(r.get(k, np.nan) for r in rows) for k in rows[0] if k not in ("file", "nodes")}
    print("\nThroughput over all cells (total time ratio, peer / morph)")
    print(f"  core : NeuroM {tot['nm_core'] / tot['morph_core']:7.1f}x   (target >= 10x)", end="")
    if "navis_core" in tot:
        print(f"   navis {tot['navis_core'] / tot['morph_core']:7.1f}x", end="")
    print()
    print(f"  sholl: NeuroM {tot['nm_sholl'] / tot['morph_sholl']:7.1f}x   (target >= 100x)", end="")
    if "navis_sholl" in tot:
        print(f"   navis {tot['navis_sholl'] / tot['morph_sholl']:7.1f}x", end="")
    print()

    if args.no_navis:
        return 0
    target = [p for p in files if p.stem == "skk_upright_606271263"]
    full_files = files if args.full_all else (target or [max(files, key=lambda p: len(read_swc(p)))])
    print("\nFull feature set: morph compute() (every compartment, Allen set + distributions + Sholl + AIS)"
          " vs navis ivscc_features")
    print(f"{'cell':<44}{'nodes':>7}{'morph (ms)':>12}{'navis (ms)':>12}{'ratio':>8}{'morph keys':>12}")
    for f in full_files:
        m = read_swc(f)
        x = navis.read_swc(str(f))
        morph_full(m)
        tm = best(morph_full, m, max(args.repeat, 3))
        tn = best(navis_full, x, args.repeat)
        print(f"{f.stem[:43]:<44}{len(m):>7}{ms(tm):>12}{ms(tn):>12}{tn / tm:>7.1f}x{len(morph_full(m)):>12}")
    print("  targets: < 150 ms and >= 5x navis on skk_upright_606271263 (16.7k nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
