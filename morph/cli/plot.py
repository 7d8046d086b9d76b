"""``morph plot``: figures of a reconstruction (projection, Sholl, dendrogram, summary)."""

from __future__ import annotations

import argparse
from pathlib import Path

from morph.cli._common import add_channel, add_output, add_voxel, need_files, positive_float
from morph.plot import DPI_RANGE, MAX_SHOLL_RADII


def dpi(text: str) -> int:
    """Parse ``--dpi``: a whole number in :data:`morph.plot.DPI_RANGE`."""
    lo, hi = DPI_RANGE
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of dots per inch, got {text!r}") from None
    if not lo <= v <= hi:
        raise argparse.ArgumentTypeError(
            f"expected a resolution from {lo} to {hi} dots per inch, got {text!r} (the labels need at least {lo}; "
            f"above {hi} the figure would have too many pixels)"
        )
    return v


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
        "--step",
        type=positive_float,
        default=10.0,
        help=f"Sholl radius step in micrometres (default 10; at most {MAX_SHOLL_RADII:,} radii out to the "
        "farthest node)",
    )
    lo, hi = DPI_RANGE
    p.add_argument(
        "--dpi",
        type=dpi,
        default=150,
        help=f"PNG resolution in dots per inch, {lo} to {hi} (default 150; at {hi} the summary page is "
        "13200 x 10200 pixels)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from morph import plot as P
    from morph import progress
    from morph.io import check_output, read_stack, read_swc

    need_files([args.swc] + ([args.stack] if args.stack else []))
    check_output(args.output, force=args.force)
    step_unchecked = args.kind in ("summary", "sholl")
    if step_unchecked:  # the step is checked against the cell before the stack is read...
        raw = read_swc(args.swc)
        vs = args.voxel or raw.voxel_size
        if not (args.swc_units == "voxel" or raw.units == "voxel") or vs is not None:
            P.check_sholl_step(P.load_morphology(args.swc, swc_units=args.swc_units, voxel_size=vs), args.step,
                               option="--step")
            step_unchecked = False
    st = read_stack(args.stack, voxel_size=args.voxel, channel=args.channel, series=args.series) if args.stack else None
    vs = args.voxel or (st.voxel_size if st is not None else None)
    m = P.load_morphology(args.swc, swc_units=args.swc_units, voxel_size=vs)
    if step_unchecked:  # ...unless the cell is in voxels of the stack's size
        P.check_sholl_step(m, args.step, option="--step")
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
