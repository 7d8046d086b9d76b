"""Viewer speed: a 50k-segment reconstruction over a 512 x 512 x 100 stack, off-screen.

Measures, on whatever OpenGL the machine has (software llvmpipe here, through EGL or OSMesa):

* time to first frame of ``morph view cell.swc --stack stack.tif --screenshot`` (a fresh
  process: interpreter start, imports, reading both files, building the scene, rendering,
  writing the PNG), and the same steps in-process without the imports;
* re-render time while the camera moves (azimuth steps): tubes, level-of-detail lines
  (what is drawn while interacting), with the projection plane, the three slices and the
  volume (the volume is ray-cast more coarsely while interacting);
* the same 2-D projection drawn by morph.plot and by NeuroM's matplotlib view (peer).

Run: ``.venv/bin/python bench/view.py [--segments 50000] [--frames 10]``. Prints a table.
Targets: first frame < 4 s; re-render while interacting < 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_tree(n_segments: int, *, section_nodes: int = 25, seed: int = 0, extent: float = 500.0):
    """A branching tree (one soma + sections of ``section_nodes`` nodes) with persistent random
    walks, inside ``extent`` micrometres (x, y) and ``extent / 5`` (z)."""
    from morph.morphology import Morphology

    rng = np.random.default_rng(seed)
    n_sec = max(1, n_segments // section_nodes)
    n = 1 + n_sec * section_nodes
    xyz = np.zeros((n, 3))
    parent = np.full(n, -1, dtype=np.int64)
    radius = np.zeros(n)
    types = np.full(n, 3, dtype=np.int64)
    xyz[0] = (extent / 2, extent / 2, extent / 10)
    radius[0] = 8.0
    types[0] = 1
    step = 1.5
    for k in range(n_sec):  # one iteration per section (synthetic input, not the code measured)
        start = 1 + k * section_nodes
        hang = 0 if k < 8 else int(rng.integers(1, start))
        d = rng.normal(size=3)
        d[2] *= 0.2
        d /= np.linalg.norm(d)
        dirs = (
            d
            + 0.35
            * np.cumsum(rng.normal(size=(section_nodes, 3)) * [1, 1, 0.2], axis=0)
            / np.sqrt(np.arange(1, section_nodes + 1))[:, None]
        )
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        pts = xyz[hang] + np.cumsum(dirs * step, axis=0)
        lo = np.array([5.0, 5.0, 2.0])
        hi = np.array([extent - 5, extent - 5, extent / 5 - 2])
        pts = np.clip(pts, lo, hi)
        idx = np.arange(start, start + section_nodes)
        xyz[idx] = pts
        parent[idx] = np.r_[hang, idx[:-1]]
        r0 = 1.5 if hang == 0 else max(radius[hang] * 0.8, 0.2)
        radius[idx] = np.linspace(r0, max(r0 * 0.7, 0.15), section_nodes)
        # a section inherits its parent's type (a type change only at the soma, as NeuroM needs)
        types[idx] = types[hang] if hang != 0 else (2 if k == 0 else (4 if k == 1 else 3))
    return Morphology(xyz, radius, types, parent, name="synthetic")


def synthetic_stack(shape=(100, 512, 512), seed: int = 1) -> np.ndarray:
    """Noise plus 30 bright blobs (uint8)."""
    rng = np.random.default_rng(seed)
    data = rng.normal(20, 5, size=shape).clip(0, 255).astype(np.float32)
    half = np.array([9, 36, 36])
    for _ in range(30):
        c = (rng.uniform(0, 1, 3) * shape).astype(int)
        lo = np.maximum(c - half, 0)
        hi = np.minimum(c + half, shape)
        zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += 150 * np.exp(
            -(((zz - c[0]) / 3) ** 2 + ((yy - c[1]) / 12) ** 2 + ((xx - c[2]) / 12) ** 2)
        )
    return data.clip(0, 255).astype(np.uint8)


def timed(fn, repeat: int = 1) -> float:
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    return float(np.median(best))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=50_000)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", nargs=2, type=int, default=(1024, 768))
    args = ap.parse_args()

    from morph.io import write_stack, write_swc
    from viewers.offscreen import select_backend

    backend = select_backend(offscreen=True)
    m = synthetic_tree(args.segments)
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        swc = Path(tmp) / "big.swc"
        tif = Path(tmp) / "stack.tif"
        write_swc(m, swc)
        write_stack(tif, synthetic_stack(), (1.0, 1.0, 1.0))
        n_seg = int((m.parent >= 0).sum())
        print(
            f"{n_seg} segments, stack 512x512x100 uint8, window {args.size[0]}x{args.size[1]}, backend {backend}"
        )

        # 1. a fresh process, as a user runs it
        env = dict(os.environ, MORPH_QUIET="1")
        cmd = [
            sys.executable,
            "-m",
            "morph.cli.main",
            "view",
            str(swc),
            "--stack",
            str(tif),
            "--screenshot",
            str(Path(tmp) / "a.png"),
            "-f",
            "--size",
            *map(str, args.size),
            "-q",
        ]
        t = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        cold = time.perf_counter() - t
        if r.returncode:
            raise SystemExit(r.stderr)
        rows.append(("first frame, new process (morph view --screenshot)", cold, "< 4 s"))

        # 2. in process: read + build + first render
        from viewers.app import build_scene

        t = time.perf_counter()
        scene = build_scene([swc], stack=tif, size=tuple(args.size), layers=("mip",))
        scene.render()
        rows.append(("first frame, in process (read, build, render)", time.perf_counter() - t, "< 4 s"))

        cam = scene.renderer.GetActiveCamera()

        def move() -> None:
            cam.Azimuth(5)
            scene.renderer.ResetCameraClippingRange()
            scene.render()

        def per_frame(label: str, target: str, interacting: bool) -> None:
            scene.lod = True
            scene.set_interacting(interacting)
            scene.render_window.SetDesiredUpdateRate(10.0 if interacting else 0.0001)
            move()  # first frame after a change uploads buffers; not counted
            rows.append((label, timed(move, args.frames), target))
            scene.set_interacting(False)

        per_frame("re-render, tubes + MIP (still)", "", False)
        per_frame("re-render, LOD lines + MIP (interacting)", "< 0.3 s", True)
        scene.show_image("mip", False)
        per_frame("re-render, tubes only (still)", "", False)
        per_frame("re-render, LOD lines only (interacting)", "< 0.3 s", True)
        scene.show_image("slices", True)
        per_frame("re-render, LOD lines + 3 slices (interacting)", "< 0.3 s", True)
        scene.show_image("slices", False)
        t = time.perf_counter()
        scene.show_image("volume", True)
        scene.render()
        rows.append(("volume rendering, first frame", time.perf_counter() - t, ""))
        per_frame("re-render, LOD lines + volume (interacting)", "< 0.3 s", True)
        per_frame("re-render, tubes + volume (still)", "", False)
        scene.close()

    # 3. 2-D projection: morph.plot vs NeuroM (peer), same tree
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from morph import plot as P

    def morph_plot() -> None:
        ax = P.plot_projection(m, "xy")
        FigureCanvasAgg(ax.figure).draw()

    rows.append(("2-D projection, morph.plot (draw)", timed(morph_plot, 3), ""))
    try:
        import neurom
        from matplotlib.figure import Figure
        from neurom.view import matplotlib_impl

        with tempfile.TemporaryDirectory() as tmp:
            swc = Path(tmp) / "big.swc"
            write_swc(m, swc)
            nm = neurom.load_morphology(swc)

            def neurom_plot() -> None:
                fig = Figure(figsize=(6, 6))
                ax = fig.add_subplot(1, 1, 1)
                matplotlib_impl.plot_morph(nm, ax=ax)
                FigureCanvasAgg(fig).draw()

            rows.append(("2-D projection, NeuroM plot_morph (peer)", timed(neurom_plot, 3), ""))
    except Exception as e:  # the peer is optional
        rows.append((f"2-D projection, NeuroM (unavailable: {type(e).__name__}: {e})", float("nan"), ""))

    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'seconds':>8}  target")
    for label, sec, target in rows:
        print(f"{label:<{w}}  {sec:8.3f}  {target}")


if __name__ == "__main__":
    main()
