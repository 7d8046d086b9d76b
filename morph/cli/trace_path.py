"""``morph trace-path STACK --from X,Y,Z --to X,Y,Z -o out.swc``: the minimal-cost path between
two points (SNT-style click-to-click tracing), optionally appended to a reconstruction."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from morph.cli._common import add_output, check_swc_output, memory_size, xyz
from morph.cli.trace import (
    add_common_trace_args,
    command_line,
    load_stack,
    parse_params,
    show_warnings,
    to_um,
)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "trace-path",
        parents=[common],
        help="trace the minimal-cost path between two points of a stack",
        description="Minimal-cost path (gray-weighted, physical voxel spacing) between two points, "
        "centred on the neurite, smoothed, with radii from the image. With --into, the path is "
        "appended to that reconstruction at its node nearest to the path. Coordinates are "
        "micrometres unless --units voxel.",
    )
    add_common_trace_args(p)
    p.add_argument("--from", dest="start", type=xyz, required=True, metavar="X,Y,Z", help="start point")
    p.add_argument("--to", dest="end", type=xyz, required=True, metavar="X,Y,Z", help="end point")
    p.add_argument("--into", type=Path, metavar="CELL.swc", help="append the path to this reconstruction")
    p.add_argument(
        "--max-memory",
        type=memory_size,
        metavar="SIZE",
        help="bound the memory of the run (e.g. 2GB): the stack is read lazily (TIFF, OME-Zarr), the "
        "box's image kept in a scratch file when large and the path searched coarse to fine; same path",
    )
    add_output(p, help="output SWC file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from morph.io import read_swc, write_swc
    from morph.io.atomic import check_distinct, check_output
    from morph.tracing import trace_path

    check_swc_output(args.output)
    check_distinct([args.output], inputs=[args.stack, args.into])
    check_output(args.output, force=args.force)
    params = parse_params(args.param, args.polarity)
    if args.max_memory:
        from morph.io.chunked import open_chunked

        stack = open_chunked(args.stack, voxel_size=args.voxel, channel=args.channel, series=args.series)  # lazy: only the box is read
    else:
        stack = load_stack(args)
    vs = stack.voxel_size
    into = None
    if args.into:
        into = read_swc(args.into)
        if into.units != "um":
            into = into.to_micrometres(vs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = trace_path(
            stack,
            to_um(args.start, args.units, vs),
            to_um(args.end, args.units, vs),
            params=params,
            into=into,
            progress=not args.quiet,
            max_memory=args.max_memory or None,
        )
    show_warnings(caught)
    write_swc(m, args.output, force=args.force, extra_header=[command_line(args)])
    if not args.quiet:
        print(f"{args.output}: {len(m)} nodes, {m.total_length():.1f} um")
    return 0
