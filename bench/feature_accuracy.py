"""How far the morphology features of an automatic trace lie from those of the gold.

Run by hand (not a test)::

    .venv/bin/python bench/feature_accuracy.py               # the 31 stacks of trace_accuracy.py
    .venv/bin/python bench/feature_accuracy.py --draws 3     # and two more draws of the six bench cells
    .venv/bin/python bench/feature_accuracy.py -o f.tsv --param min_branch_um=4

Each stack of ``bench/trace_accuracy.py`` (``morph synth`` renders at the ``realistic``
preset, cached the same way) is traced automatically, with no click, and the features of
:data:`FEATURES` are computed on the trace and on the gold with :func:`morph.features.compute`:
the soma's radius and, over every neurite whatever its label (``all_neurites``: the
automatic axon label is a guess, and the gold's axon is its first 100 um), the Allen Cell
Types features a comparison of cells reads first. Per feature the table gives, over the
stacks where both values are defined:

* ``median err``: the median of ``|trace - gold| / |gold|``;
* ``<=10 %``, ``<=25 %``: the share of stacks whose trace lies that close to the gold;
* ``trace/gold``: the median ratio (below 1: the trace reads low, as a trace missing faint
  dendrites does for sizes and counts);
* ``spearman``: the rank correlation of trace and gold across the stacks: whether the
  traces order the cells as the golds do, which is what a comparison between cells needs.

``-o`` writes every value (stack, feature, gold, trace) as TSV. About 2 minutes on two
cores for the 31 stacks.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import trace_accuracy as ta
from _stacks import add_output_arguments, add_stack_arguments, check_output_argument, write_output

#: Features compared (``compartment.feature`` keys of :func:`morph.features.compute`).
FEATURES = (
    "soma.radius",
    "all_neurites.total_length",
    "all_neurites.num_stems",
    "all_neurites.num_bifurcations",
    "all_neurites.num_tips",
    "all_neurites.max_branch_order",
    "all_neurites.max_path_distance",
    "all_neurites.max_euclidean_distance",
    "all_neurites.extent_x",
    "all_neurites.extent_y",
    "all_neurites.extent_z",
    "all_neurites.section_lengths_mean",
    "all_neurites.terminal_path_lengths_mean",
    "all_neurites.mean_contraction",
    "all_neurites.mean_bifurcation_angle_local",
    "all_neurites.mean_bifurcation_angle_remote",
    "all_neurites.mean_diameter",
    "all_neurites.total_surface_area",
    "all_neurites.sholl_max_crossings",
    "all_neurites.sholl_critical_radius",
)


def run_one(job: tuple) -> dict:
    """Trace one stack; the gold's and the trace's values of :data:`FEATURES`."""
    import morph.progress as pg
    from morph.cli.trace import parse_params
    from morph.errors import TracingError
    from morph.features import compute
    from morph.tracing import trace

    name, spec, items = job
    pg.set_quiet(True)
    warnings.simplefilter("ignore")
    data, vs, gold = ta.load(name, spec)
    try:
        m = trace(data, voxel_size=vs, params=parse_params(items, "auto"), progress=False)
    except TracingError as e:
        return {"stack": name, "skip": e.message}
    comps = sorted({f.split(".")[0] for f in FEATURES})
    fg, ft = compute(gold, comps), compute(m, comps)
    return {"stack": name, "gold": {f: float(fg.get(f, np.nan)) for f in FEATURES},
            "trace": {f: float(ft.get(f, np.nan)) for f in FEATURES}}


def feature_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per feature, over the rows (stacks) where gold and trace are finite and the gold is
    not 0: ``n``, ``median_err`` (median ``|t - g| / |g|``), ``within10`` and ``within25``
    (shares of stacks), ``ratio`` (median ``t / g``) and ``spearman`` (rank correlation of
    ``t`` and ``g`` across the stacks; NaN with fewer than 3 stacks or a constant column)."""
    from scipy.stats import spearmanr

    ok = [r for r in rows if "skip" not in r]
    out: dict[str, dict[str, float]] = {}
    for f in FEATURES:
        g = np.array([r["gold"][f] for r in ok], dtype=np.float64)
        t = np.array([r["trace"][f] for r in ok], dtype=np.float64)
        use = np.isfinite(g) & np.isfinite(t) & (g != 0)
        g, t = g[use], t[use]
        rel = np.abs(t - g) / np.abs(g)
        rho = float("nan")
        if g.size >= 3 and np.ptp(g) > 0 and np.ptp(t) > 0:
            rho = float(spearmanr(g, t).statistic)
        out[f] = {
            "n": float(g.size),
            "median_err": float(np.median(rel)) if g.size else float("nan"),
            "within10": float(np.mean(rel <= 0.10)) if g.size else float("nan"),
            "within25": float(np.mean(rel <= 0.25)) if g.size else float("nan"),
            "ratio": float(np.median(t / g)) if g.size else float("nan"),
            "spearman": rho,
        }
    return out


def format_summary(summ: dict[str, dict[str, float]]) -> str:
    head = f"{'feature':44s} {'n':>3s} {'median err':>10s} {'<=10 %':>7s} {'<=25 %':>7s} {'trace/gold':>10s} {'spearman':>8s}"
    lines = [head, "-" * len(head)]
    for f, s in summ.items():
        lines.append(f"{f:44s} {int(s['n']):3d} {s['median_err']:10.3f} {s['within10']:7.2f} {s['within25']:7.2f} "
                     f"{s['ratio']:10.3f} {s['spearman']:8.3f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_stack_arguments(ap, "stacks (default: the 31 of trace_accuracy.py)")
    ap.add_argument("--draws", type=int, default=1, help="as trace_accuracy.py: more draws of the six bench cells")
    add_output_arguments(ap, "write every value as TSV (stack, feature, gold, trace)")
    a = ap.parse_args(argv)
    check_output_argument(ap, a)
    os.environ.setdefault("MORPH_THREADS", "1")
    st = ta.stacks(draws=a.draws)
    unknown = [n for n in a.names if n not in st]
    if unknown:
        ap.error(f"unknown stacks: {', '.join(unknown)}")
    jobs = [(n, s, a.param) for n, s in st.items() if not a.names or n in a.names]
    rows = []
    with ProcessPoolExecutor(a.jobs) as ex:
        for r in ex.map(run_one, jobs):
            rows.append(r)
            print(f"{r['stack']}: " + (f"skipped: {r['skip']}" if "skip" in r else "traced"), file=sys.stderr, flush=True)
    ok = [r for r in rows if "skip" not in r]
    print(f"# feature_accuracy {' '.join(argv)}: {len(ok)} stacks traced automatically ({len(rows) - len(ok)} skipped)")
    print(format_summary(feature_summary(rows)))
    if a.output:
        lines = ["stack\tfeature\tgold\ttrace"]
        lines += [f"{r['stack']}\t{f}\t{r['gold'][f]:.6g}\t{r['trace'][f]:.6g}" for r in ok for f in FEATURES]
        write_output(a, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
