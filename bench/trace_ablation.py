"""What each stage of ``morph trace`` gains: the synthetic brightfield set of
``trace_accuracy.py`` traced with the default parameters, then once with each stage switched
off (one ``--param`` each), every figure from the same run.

Usage::

    .venv/bin/python bench/trace_ablation.py [names ...] [--only NAME ...] [--sweep] [-o table.tsv] [-q]

``--sweep`` instead moves each main numeric parameter to a lower and a higher value than its
brightfield default (:data:`SWEEP`), one at a time: how sensitive the defaults are.

Prints one row per setting: the mean F1 at 2 um, precision, recall, cable (trace over gold)
and branch points found on the six bench stacks and on all 31, and how many of the 31 stacks
the setting moves up or down by more than 0.0005 in F1 against the defaults. A stage that
gains shows as a lower F1 (or recall) on its row. About a minute per setting on two cores
(31 stacks, two processes); the renders are cached as ``trace_accuracy.py`` caches them.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trace_accuracy as ta  # noqa: E402
from _stacks import add_output_arguments, check_output_argument, write_output  # noqa: E402

#: (what is switched off, the parameter that does it): the stages and tests the brightfield
#: defaults run on these stacks, grouped as bridging, pruning tests, searches for more
#: cable, and radii.
SETTINGS: tuple[tuple[str, str], ...] = (
    ("bridges between pieces", "gap_um=0"),
    ("bridges to the soma", "gap_soma_um=0"),
    ("long bridges along a neurite", "gap_long_um=0"),
    ("soma bridges routed through the image", "route_soma_bridges=0"),
    ("thick-spur test", "thick_spur_factor=0"),
    ("spur ridge test", "spur_ridge=0"),
    ("terminal ridge test", "terminal_ridge=0"),
    ("steep terminal ridge test", "steep_terminal_ridge=0"),
    ("edge terminal test", "edge_terminal_fraction=0"),
    ("z-stem test", "z_stem_deg=0"),
    ("tip trimming", "tip_fraction=0"),
    ("tip walks", "tip_extend_um=0"),
    ("side-branch walks", "side_branch_um=0"),
    ("faint-neurite joins", "faint_reach_um=0"),
    ("tip paths", "tip_path_um=0"),
    ("side paths", "side_path_um=0"),
    ("z-blur correction of radii", "z_blur_correction=false"),
)


#: (parameter, the values tried) for ``--sweep``: each around its brightfield default.
SWEEP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("denoise_sigma_um", ("0.6", "1.0")),
    ("threshold_low", ("1.4", "2.0")),
    ("threshold_high", ("3.0", "4.0")),
    ("cost_power", ("6", "10")),
    ("gap_um", ("10", "20")),
    ("min_branch_um", ("1", "3")),
    ("faint_contrast", ("1.2", "1.8")),
    ("tip_path_contrast", ("0.8", "1.2")),
    ("side_path_contrast", ("1.2", "1.8")),
)


def run_setting(names: list[str], specs: dict, items: list[str], jobs: int, *, desc: str = "",
                quiet: bool = False) -> dict[str, dict]:
    """``trace_accuracy.run_one`` over ``names`` with the ``--param`` items ``items`` (a bar
    per stack on stderr unless ``quiet``)."""
    from morph.progress import bar

    rows: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        work = [(n, specs[n], items, False, None, 0, "brightfield", 0) for n in names]
        for r in bar(ex.map(ta.run_one, work), total=len(work), desc=desc, unit="stack", quiet=quiet):
            rows[r["stack"]] = r
    return rows


def _cells(s: dict | None) -> list[str]:
    if s is None:
        return ["-"] * 5
    return [f"{s['f1']:.3f}", f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['cable']:.3f}", f"{s['bp']:.3f}"]


def row_text(label: str, param: str, rows: dict[str, dict], base: dict[str, dict] | None) -> str:
    s = ta.summary(rows)
    up = down = 0
    if base is not None:
        common = [k for k in rows if k in base]
        up = sum(rows[k]["f1"] > base[k]["f1"] + 0.0005 for k in common)
        down = sum(rows[k]["f1"] < base[k]["f1"] - 0.0005 for k in common)
    moved = f"{up}\t{down}" if base is not None else "-\t-"
    return "\t".join([label, param, *_cells(s.get("bench")), *_cells(s.get("all")), moved])


HEAD = ("setting\tparam\tF1_six\tP_six\tR_six\tcable_six\tbp_six\tF1_all\tP_all\tR_all\tcable_all\tbp_all"
        "\tup\tdown")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="stacks to run (default: all 31)")
    ap.add_argument("--only", nargs="+", metavar="PARAM",
                    help="only the settings of these parameters (e.g. --only gap_um tip_path_um)")
    ap.add_argument("--sweep", action="store_true",
                    help="move each main numeric parameter below and above its default instead")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_output_arguments(ap)
    args = ap.parse_args(argv)
    check_output_argument(ap, args)
    specs = ta.stacks("brightfield")
    names = args.names or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        print(f"unknown stacks: {', '.join(unknown)}; known: {', '.join(specs)}", file=sys.stderr)
        return 2
    table = list(SETTINGS)
    if args.sweep:
        from morph.tracing.params import TraceParams

        defaults = TraceParams().resolved("brightfield")
        table = [(f"{name} {value} (default {getattr(defaults, name):g})", f"{name}={value}")
                 for name, values in SWEEP for value in values]
    settings = table
    if args.only:
        settings = [s for s in table if s[1].split("=")[0] in args.only]
        missing = set(args.only) - {s[1].split("=")[0] for s in settings}
        if missing:
            known = ", ".join(dict.fromkeys(s[1].split("=")[0] for s in table))
            print(f"no setting for {', '.join(sorted(missing))}; known: {known}", file=sys.stderr)
            return 2
    os.environ["MORPH_THREADS"] = "1"
    os.environ["MORPH_BENCH_ALLEN_AXON"] = "cable"
    os.environ["MORPH_BENCH_RENDER"] = ""  # the realistic renders, whatever the shell says
    what = " ".join(names) if args.names else f"all {len(names)} stacks"
    lines = [f"# trace_ablation{' --sweep' if args.sweep else ''}: {what}", HEAD]
    print("\n".join(lines), flush=True)
    n = len(settings) + 1
    base = run_setting(names, specs, [], args.jobs, desc=f"1/{n} defaults", quiet=args.quiet)
    lines.append(row_text("(nothing: the defaults)", "-", base, None))
    print(lines[-1], flush=True)
    for k, (label, param) in enumerate(settings, start=2):
        rows = run_setting(names, specs, [param], args.jobs, desc=f"{k}/{n} {param}", quiet=args.quiet)
        lines.append(row_text(label, param, rows, base))
        print(lines[-1], flush=True)
    write_output(args, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
