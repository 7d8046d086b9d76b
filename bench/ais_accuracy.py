"""Accuracy of the axon-initial-segment features measured on traces, against the gold.

Run by hand (not a test)::

    .venv/bin/python bench/ais_accuracy.py                    # every stack with an axon
    .venv/bin/python bench/ais_accuracy.py -o ais.tsv SYN_gen G_pyr5
    .venv/bin/python bench/ais_accuracy.py --param working_voxel_um=0

The stacks are those of ``bench/trace_accuracy.py`` (``morph synth`` renders at the
``realistic`` preset, cached the same way) whose gold has an axon. Each is traced as a user
would who wants the AIS: with ``--axon`` on a visible part of the axon (of the gold axon's
main path 20-50 um from its start and more than 3 um from any dendrite, the node where the
flattened, denoised image is darkest, as :mod:`morph.tracing.seeds` reads a click). Then ``morph features``' ``ais``
compartment is computed on the trace and on the gold, and the table gives, per stack:

* ``origin``: where the primary axon leaves, ``S`` the soma, ``D`` a dendrite (gold / trace),
  and ``origin_path_distance`` (um from the soma's surface);
* ``first_branch``: ``length_to_first_branch`` (um);
* ``d10``, ``d20``: ``diameter_mean_10`` and ``diameter_mean_20`` (um);
* ``angle``: degrees between the gold's and the trace's initial direction (10 um);
* ``on_gold``: the fraction of the traced axon's first 50 um of path lying within 2 um of
  the gold axon (the rest runs along a dendrite or elsewhere: the axon was reached through
  the wrong neurite).

The summary counts the stacks whose origin kind agrees and gives medians of the errors.
``--auto`` traces without the click: the AIS of the axon the heuristic labels, where it labels
one. About 1 minute on two cores.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import trace_accuracy as ta
from _stacks import add_output_arguments, add_stack_arguments, check_output_argument, write_output

COLS = ("origin_g", "origin_t", "dist_g", "dist_t", "first_branch_g", "first_branch_t", "d10_g", "d10_t",
        "d20_g", "d20_t", "angle", "on_gold", "conf")


def axon_main_path(m) -> np.ndarray:
    """The primary axon (the axon root with the most axon nodes below it) from its first node
    to its farthest node by path (node indices, in order)."""
    from morph import _tree

    ax = m.types == 2
    roots = np.flatnonzero(ax & ((m.parent < 0) | ~ax[np.maximum(m.parent, 0)]))
    if not roots.size:
        return roots
    mark = np.zeros(len(m), dtype=bool)
    mark[roots] = True
    owner = _tree.nearest_marked(m.parent, mark)  # each node's nearest axon root at or above it
    count = np.bincount(owner[ax & (owner >= 0)], minlength=len(m))
    root = int(roots[np.argmax(count[roots])])
    sub = np.flatnonzero(owner == root)
    pd = m.path_distance
    path = [int(sub[np.argmax(pd[sub])])]
    while path[-1] != root:
        path.append(int(m.parent[path[-1]]))
    return np.asarray(path[::-1])


def axon_click(gold, data, vs, params, *, flat: np.ndarray | None = None) -> np.ndarray | None:
    """Where a user would click on the axon: of the gold axon's main path 20-50 um from its
    start, away from the dendrites (more than 3 um from their cable), the node with the
    strongest image within 1 um (None without an axon). ``flat``: the flattened, denoised
    image, when already at hand (default: made from ``data``)."""
    from morph.tracing.seeds import peak_near

    path = axon_main_path(gold)
    if not path.size:
        return None
    from scipy.spatial import cKDTree

    t = gold.path_distance[path] - gold.path_distance[path[0]]
    cand = path[(t >= 20) & (t <= 50)]
    other = gold.resample(0.5)
    other = other.xyz[(other.types != 2) & ~other.soma_mask]
    if len(other) and cand.size:  # not where the axon crosses or touches a dendrite
        clear = cand[cKDTree(other).query(gold.xyz[cand])[0] > 3.0]
        cand = clear if clear.size else cand
    if not cand.size:
        cand = path[-1:]
    img = ta.flat_image(data, vs, params) if flat is None else flat
    return gold.xyz[max(cand, key=lambda k: peak_near(img, vs, gold.xyz[k]))]


def on_gold(trace, gold, length_um: float = 50.0, tol: float = 2.0) -> float:
    """Fraction of the traced primary axon's first ``length_um`` of path within ``tol`` of the
    gold's axon."""
    from scipy.spatial import cKDTree

    path = axon_main_path(trace)
    if path.size < 2:
        return float("nan")
    t = trace.path_distance[path] - trace.path_distance[path[0]]
    pts = trace.xyz[path[t <= length_um]]
    g = gold.resample(0.5)
    ga = g.xyz[g.types == 2]
    return float((cKDTree(ga).query(pts)[0] <= tol).mean()) if len(ga) else float("nan")


def confidence(m) -> float:
    """The axon label's confidence, from the trace's header (1 for a click)."""
    for h in m.header:
        hit = re.search(r"^axon: .*\(confidence ([0-9.]+)\)", h)
        if hit:
            return float(hit.group(1))
    return float("nan")


def run_one(job) -> dict:
    import morph.progress as pg
    from morph.cli.trace import parse_params
    from morph.errors import TracingError
    from morph.features import compute
    from morph.tracing import trace

    name, spec, items, auto = job
    pg.set_quiet(True)
    warnings.simplefilter("ignore")
    data, vs, gold = ta.load(name, spec)
    params = parse_params(items, "auto")
    click = axon_click(gold, data, vs, params)
    if click is None:
        return {"stack": name, "skip": "no axon in the gold"}
    try:
        m = trace(data, voxel_size=vs, axon=None if auto else click, params=params, progress=False)
    except TracingError as e:
        return {"stack": name, "skip": e.message}
    if not (m.types == 2).any():
        return {"stack": name, "skip": "no axon labelled"}
    fg, ft = compute(gold, ["ais"]), compute(m, ["ais"])

    def kind(f):
        return {0.0: "S", 1.0: "D"}.get(f.get("ais.from_dendrite"), "-")

    def direction(f):
        return np.array([f.get(f"ais.direction_{a}", np.nan) for a in "xyz"])

    cosang = float(np.clip(np.dot(direction(fg), direction(ft)), -1.0, 1.0))
    row = {"stack": name, "origin_g": kind(fg), "origin_t": kind(ft), "angle": math.degrees(math.acos(cosang))
           if np.isfinite(cosang) else np.nan, "on_gold": on_gold(m, gold), "conf": confidence(m)}
    for col, key in (("dist", "origin_path_distance"), ("first_branch", "length_to_first_branch"),
                     ("d10", "diameter_mean_10"), ("d20", "diameter_mean_20")):
        row[col + "_g"], row[col + "_t"] = fg.get("ais." + key, np.nan), ft.get("ais." + key, np.nan)
    return row


def summary(rows: list[dict], how: str = "with an axon click") -> list[str]:
    ok = [r for r in rows if "skip" not in r]
    if not ok:
        return ["no stack traced"]

    def med(vals):
        v = np.asarray([x for x in vals if np.isfinite(x)], dtype=np.float64)
        return (f"{np.median(v):.2f}", v.size) if v.size else ("nan", 0)

    same = sum(r["origin_g"] == r["origin_t"] for r in ok)
    out = [f"{len(ok)} stacks traced {how} ({len(rows) - len(ok)} skipped); origin kind (soma / "
           f"dendrite) agrees on {same}"]
    for col, what in (("dist", "origin path distance, |trace - gold| um"), ("first_branch",
                      "length to first branch, |trace - gold| um")):
        m, n = med(abs(r[col + "_t"] - r[col + "_g"]) for r in ok)
        out.append(f"  {what}: median {m} (over {n})")
    for col in ("d10", "d20"):
        m, n = med(r[col + "_t"] / r[col + "_g"] for r in ok)
        within = sum(abs(r[col + "_t"] / r[col + "_g"] - 1) <= 0.3 for r in ok
                     if np.isfinite(r[col + "_t"] / r[col + "_g"]))
        out.append(f"  diameter_mean_{col[1:]}, trace / gold: median {m}, within 30 % on {within} of {n}")
    m, n = med(r["angle"] for r in ok)
    out.append(f"  initial direction, degrees off the gold's: median {m} (over {n})")
    m, n = med(r["on_gold"] for r in ok)
    out.append(f"  traced axon's first 50 um on the gold axon: median fraction {m}; all of it (>= 0.9) on "
               f"{sum(r['on_gold'] >= 0.9 for r in ok)} of {n}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_stack_arguments(ap, "stacks (default: every one with an axon)")
    ap.add_argument("--auto", action="store_true",
                    help="no click: the axon the automatic heuristic labels (stacks where it labels none are skipped)")
    ap.add_argument("--allen-axon", choices=("cable", "path"), default="cable",
                    help="the Allen cells' first 100 um of axon, as in trace_accuracy.py")
    add_output_arguments(ap)
    a = ap.parse_args()
    check_output_argument(ap, a)
    os.environ.setdefault("MORPH_THREADS", "1")
    os.environ["MORPH_BENCH_ALLEN_AXON"] = a.allen_axon  # read by trace_accuracy.load
    st = ta.stacks()
    unknown = [n for n in a.names if n not in st]
    if unknown:
        ap.error(f"unknown stacks: {', '.join(unknown)}")
    jobs = [(n, s, a.param, a.auto) for n, s in st.items() if not a.names or n in a.names]
    head = "stack            origin  dist g/t    1st br g/t      d10 g/t     d20 g/t   angle on_gold  conf"
    print(head)
    print("-" * len(head))
    rows = []
    with ProcessPoolExecutor(a.jobs) as ex:
        for r in ex.map(run_one, jobs):
            rows.append(r)
            if "skip" in r:
                print(f"{r['stack']:16s} skipped: {r['skip']}", flush=True)
                continue
            print(f"{r['stack']:16s} {r['origin_g']}/{r['origin_t']}   {r['dist_g']:5.1f}/{r['dist_t']:5.1f}  "
                  f"{r['first_branch_g']:6.1f}/{r['first_branch_t']:6.1f}  {r['d10_g']:5.2f}/{r['d10_t']:5.2f}  "
                  f"{r['d20_g']:5.2f}/{r['d20_t']:5.2f}  {r['angle']:6.1f}  {r['on_gold']:6.2f}  {r['conf']:4.2f}", flush=True)
    print()
    print("\n".join(summary(rows, "automatically" if a.auto else "with an axon click")))
    if a.output:
        lines = ["\t".join(("stack", *COLS, "skip"))]
        for r in rows:
            lines.append("\t".join([r["stack"], *(str(r.get(c, "")) for c in COLS), r.get("skip", "")]))
        write_output(a, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
