"""SWC parsing speed: morph vs MorphIO, side by side, on every file of the real data.

    python bench/parse.py [--repeat 5]

Prints per-file times, nodes/s for both and the ratio. MorphIO is the C++ reference reader
(`pip install morphio`). Each reader parses each file ``--repeat`` times; the best time counts.
Also parses one large file made by concatenating copies of the largest real cell (1 M nodes)
to check the >= 1 M nodes/s floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from morph.io import read_swc

DATA = Path(os.environ.get("MORPH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def best(fn, repeat: int) -> float:
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def big_file(src: Path, copies: int, out: Path) -> int:
    m = read_swc(src)
    lines, n, off = [], len(m), 0
    pid = np.where(m.parent >= 0, m.parent + 1, -1)
    for k in range(copies):
        ids = np.arange(1, n + 1) + off
        par = np.where(pid > 0, pid + off, -1)
        types = m.types.copy()
        if k:  # one cell: later copies hang from the first soma as dendrites
            par[par < 0] = 1
            types[types == 1] = 3
        xyz = m.xyz + [k * 1000.0, 0, 0]
        block = np.column_stack([ids, types, xyz, m.radius, par])
        lines.append(
            "\n".join(
                f"{int(a)} {int(b)} {c:.4f} {d:.4f} {e:.4f} {f:.4f} {int(g)}" for a, b, c, d, e, f, g in block
            )
        )
        off += n
    out.write_text("\n".join(lines) + "\n")
    return off


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        import morphio

        morphio.set_maximum_warnings(0)
    except ImportError:
        print("morphio is not installed: pip install morphio", file=sys.stderr)
        return 1
    files = sorted(DATA.glob("swc/*/*.swc"))
    read_swc(files[0])  # warm imports
    rows = []
    for f in files:
        n = len(read_swc(f))
        tm = best(lambda f=f: read_swc(f), args.repeat)
        try:
            to = best(lambda f=f: morphio.Morphology(str(f)), args.repeat)
        except Exception as e:  # MorphIO refuses some real files
            to = float("nan")
            print(f"morphio cannot read {f.name}: {str(e).splitlines()[0]}", file=sys.stderr)
        rows.append((f.name, n, tm, to))
    with tempfile.TemporaryDirectory() as d:
        big = Path(d) / "big.swc"
        nbig = big_file(DATA / "swc/allen/skk_upright_606271263.swc", 60, big)
        tm = best(lambda: read_swc(big), 3)
        to = best(lambda: morphio.Morphology(str(big)), 3)
        rows.append((f"{nbig // 1000}k-node file (60 copies)", nbig, tm, to))
    print(
        f"{'file':48s} {'nodes':>8s} {'morph ms':>9s} {'MorphIO ms':>10s} {'morph Mn/s':>10s} {'MorphIO Mn/s':>12s} {'ratio':>6s}"
    )
    tot_n = tot_m = tot_o = 0.0
    for name, n, tm, to in rows:
        print(
            f"{name[:48]:48s} {n:8d} {tm * 1e3:9.2f} {to * 1e3:10.2f} {n / tm / 1e6:10.2f} {n / to / 1e6:12.2f} {to / tm:6.2f}"
        )
        if not np.isnan(to) and "copies" not in name:
            tot_n, tot_m, tot_o = tot_n + n, tot_m + tm, tot_o + to
    print(
        f"{'all real files':48s} {int(tot_n):8d} {tot_m * 1e3:9.2f} {tot_o * 1e3:10.2f} {tot_n / tot_m / 1e6:10.2f} {tot_n / tot_o / 1e6:12.2f} {tot_o / tot_m:6.2f}"
    )
    print(
        "ratio = MorphIO time / morph time (> 1: morph faster). MorphIO builds its own section structure; morph's read returns validated arrays."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
