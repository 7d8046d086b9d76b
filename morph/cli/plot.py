"""``morph plot``: figures of a reconstruction (projection, Sholl, dendrogram, summary)."""

from __future__ import annotations

import argparse
from pathlib import Path

from morph.cli._common import add_channel, add_output, add_voxel, need_files, positive_float


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "plot",
        parents=[common],
        help="figures: 2-D projection, Sholl curve, dendrogram, one-page cell summary",
        description="Draw a reconstruction with matplotlib and save it as PNG, SVG or PDF (by the output's "
        "suffix). The projection is coloured by compartment with a scale bar, optionally over the "
        "projection of the stack it was traced from.",
    )
    p.add_argument("swc", type=Path, help="reconstruction (SWC)")
    add_output(p, help="figure file: .png, .svg or .pdf")
    p.add_argument(
        "--kind",
        choices=("summary", "projection", "sholl", "dendrogram"),
        default="summary",
        help="what to draw (default summary)",
    )
    p.add_argument("--plane", choices=("xy", "xz", "yz"), default="xy", help="projection plane (default xy)")
    p.add_argument("--stack", type=Path, help="draw the stack's projection underneath")
    add_voxel(p)
    add_channel(p)
    p.add_argument(
        "--swc-units",
        choices=("um", "voxel"),
        default="um",
        help="SWC coordinates in micrometres (default) or voxel indices",
    )
    p.add_argument(
        "--step", type=positive_float, default=10.0, help="Sholl radius step in micrometres (default 10)"
    )
    p.add_argument("--dpi", type=int, default=150, help="PNG resolution (default 150)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from morph import plot as P
    from morph import progress
    from morph.io import check_output, read_stack

    need_files([args.swc] + ([args.stack] if args.stack else []))
    check_output(args.output, force=args.force)
    st = read_stack(args.stack, voxel_size=args.voxel, channel=args.channel, series=args.series) if args.stack else None
    vs = args.voxel or (st.voxel_size if st is not None else None)
    m = P.load_morphology(args.swc, swc_units=args.swc_units, voxel_size=vs)
    if args.kind == "summary":
        fig = P.cell_summary(m, stack=st, sholl_step=args.step)
    elif args.kind == "projection":
        fig = P.plot_projection(m, args.plane, stack=st).figure
    elif args.kind == "sholl":
        fig = P.plot_sholl(m, step=args.step).figure
    else:
        fig = P.plot_dendrogram(m).figure
    P.save_figure(fig, args.output, force=args.force, dpi=args.dpi)
    progress.info(f"wrote {args.output}")
    return 0
