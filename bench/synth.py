"""Benchmark: render a neuron spanning 1000 x 1000 x 300 voxels.

Run by hand: ``.venv/bin/python bench/synth.py [--quick]``. Prints a table with the
wall time of each stage, the peak resident memory of the rendering process (measured in a
fresh subprocess), the stack size, and, as a yardstick measured in the same run, the cost
of one full-volume ``scipy.ndimage.gaussian_filter`` pass over a float32 copy of the stack
(what a renderer blurring the whole volume with the PSF would pay at least once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import numpy as np
from morph import progress
progress.set_quiet(True)
from morph.synth import generate_neuron, render_stack
import scipy.ndimage, scipy.spatial  # imported before the baseline RSS is taken
shape = tuple(json.loads(sys.argv[1]))  # (nx, ny, nz)
vs = (0.3, 0.3, 1.0)
crop = tuple((s - 1) * v for s, v in zip(shape, vs))
t0 = time.perf_counter()
m = generate_neuron(7, cell_type="pyramidal", scale=float(sys.argv[2]))
t1 = time.perf_counter()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
s = render_stack(m, voxel_size=vs, crop=crop, pad_to_crop=True, seed=7)
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({
    "generate_s": t1 - t0, "render_s": t2 - t1, "shape_zyx": list(s.data.shape),
    "nodes": len(m), "cable_um": m.total_length(), "peak_rss": peak, "rss_before_render": base,
    "stack_bytes": int(s.data.nbytes),
}))
"""

YARD = r"""
import json, sys, time
import numpy as np
from scipy import ndimage as ndi
nz, ny, nx = json.loads(sys.argv[1])
a = np.zeros((nz, ny, nx), dtype=np.float32)
a[nz // 2, ny // 2, nx // 2] = 1
t = time.perf_counter()
ndi.gaussian_filter(a, (1.2, 0.83, 0.83), output=a)
print(json.dumps({"blur_s": time.perf_counter() - t}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a 500 x 500 x 150 stack instead")
    args = ap.parse_args()
    shape = [500, 500, 150] if args.quick else [1000, 1000, 300]
    scale = 0.5 if args.quick else 1.0
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(shape), str(scale)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    nz, ny, nx = r["shape_zyx"]
    yard = subprocess.run(
        [sys.executable, "-c", YARD, json.dumps([nz, ny, nx])], capture_output=True, text=True, check=True
    )
    y = json.loads(yard.stdout.strip().splitlines()[-1])
    mb = 1024 * 1024
    rows = [
        ("stack (x, y, z voxels)", f"{nx} x {ny} x {nz} = {nx * ny * nz / 1e6:.0f} M voxels"),
        ("neuron", f"{r['nodes']} nodes, {r['cable_um']:.0f} um of cable"),
        ("generate", f"{r['generate_s']:.2f} s"),
        ("render (morph.synth)", f"{r['render_s']:.1f} s"),
        (
            "peak RSS while rendering",
            f"{r['peak_rss'] / mb:.0f} MB ({r['peak_rss'] / r['stack_bytes']:.1f} x the uint8 stack)",
        ),
        ("RSS before rendering", f"{r['rss_before_render'] / mb:.0f} MB"),
        (
            "yardstick: one float32 gaussian_filter",
            f"{y['blur_s']:.1f} s (plus {4 * r['stack_bytes'] / mb:.0f} MB)",
        ),
    ]
    w = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{w}}  {v}" for k, v in rows))
    print(f"[{time.strftime('%Y-%m-%d %H:%M')}, {sys.platform}, 2 shared cores]")


if __name__ == "__main__":
    main()
