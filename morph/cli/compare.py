"""``morph compare TRACE GOLD``: score a tracing against a gold standard."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from morph.cli._common import add_voxel, need_files, output_file, positive_float
from morph.errors import MorphError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "compare",
        parents=[common],
        help="score a tracing against a gold standard (precision/recall/F1, ESA/DSA/PDS, DIADEM-style)",
        description="Resample both trees along their edges and measure, for every sample, the distance "
        "to the other tree. Prints precision, recall and F1 of cable within the tolerance, Vaa3D's "
        "ESA/DSA/PDS, cable lengths, branch points and tips found/missed, a DIADEM-style score and, "
        "when both trees are typed, the same per compartment. Trees in voxel units are scaled by the "
        "voxel size (--voxel, or the SWC header). DIADEM OP gold tracings: --units voxel "
        "--voxel 1 1 3.03 --tolerance 3.",
    )
    p.add_argument("trace", metavar="TRACE", type=Path, help="the tracing to score (SWC)")
    p.add_argument("gold", metavar="GOLD", type=Path, help="the gold standard (SWC)")
    p.add_argument(
        "--tolerance",
        type=positive_float,
        metavar="D",
        help="match distance (default: 2 voxel widths, at least one z step, when the voxel size is known; "
        "else 2 units)",
    )
    p.add_argument("--step", type=positive_float, metavar="D", help="resampling step (default tolerance/4)")
    add_voxel(p)
    p.add_argument(
        "--units",
        choices=["um", "voxel"],
        help="units of BOTH trees' coordinates, overriding their headers (voxel: scaled by --voxel)",
    )
    p.add_argument("--trace-units", choices=["um", "voxel"], help="units of the trace only")
    p.add_argument("--gold-units", choices=["um", "voxel"], help="units of the gold only")
    p.add_argument(
        "--node-tolerance",
        type=positive_float,
        metavar="D",
        help="pairing distance of branch points and tips (default 2 x tolerance)",
    )
    p.add_argument(
        "--dsa-threshold",
        type=positive_float,
        metavar="D",
        help="Vaa3D DSA/PDS threshold (default: tolerance)",
    )
    p.add_argument(
        "--min-terminal",
        type=float,
        default=0.0,
        metavar="D",
        help="ignore terminal branches shorter than D in the DIADEM-style score (DIADEM OP: 6)",
    )
    p.add_argument(
        "--clutter",
        type=Path,
        metavar="SWC",
        help="what must not be traced, in the gold's units (morph synth writes PREFIX.clutter.swc: other cells' "
        "fragments and debris): also report the trace's cable lying on it",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--plot", type=output_file, metavar="PNG", help="also draw gold and trace coloured matched/missed/extra"
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing --plot file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from morph.compare import compare, plot_comparison
    from morph.io import check_distinct, check_output, read_swc

    need_files([args.trace, args.gold] + ([args.clutter] if args.clutter is not None else []))
    if not args.min_terminal >= 0 or not math.isfinite(args.min_terminal):
        raise MorphError(f"--min-terminal must be a length of 0 or more, got {args.min_terminal:g}")
    if args.plot is not None:
        if args.plot.suffix.lower() != ".png":
            raise MorphError(f"the plot is drawn as PNG, not {args.plot.suffix or 'a file without suffix'}",
                             file=args.plot, hint="name it .png")
        check_distinct([args.plot], inputs=[args.trace, args.gold, args.clutter])
        check_output(args.plot, force=args.force)
    trace = read_swc(args.trace)
    gold = read_swc(args.gold)
    result = compare(
        trace,
        gold,
        tolerance=args.tolerance,
        step=args.step,
        voxel_size=args.voxel,
        units=args.units,
        trace_units=args.trace_units,
        gold_units=args.gold_units,
        node_tolerance=args.node_tolerance,
        dsa_threshold=args.dsa_threshold,
        min_terminal_length=args.min_terminal,
        clutter=None if args.clutter is None else read_swc(args.clutter),
    )
    result.trace_name, result.gold_name = str(args.trace), str(args.gold)
    print(result.to_json() if args.json else result.format_table())
    if args.plot is not None:
        plot_comparison(result, args.plot, force=args.force)
    return 0
