"""``morph convert IN -o OUT``: standardise an SWC, voxel <-> micrometre."""

from __future__ import annotations

import argparse

from morph.cli._common import add_output, add_voxel
from morph.errors import MorphError
from morph.io import read_swc, write_swc


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "convert",
        parents=[common],
        help="rewrite an SWC standardised (renumbered, parents first), or convert units",
        description="Write a standard SWC: depth-first, parents before children, ids 1..N, "
        "with a header. --to-um / --to-voxel convert coordinates with --voxel X Y Z "
        "(or the voxel size in the file's header).",
    )
    p.add_argument("input", metavar="IN")
    add_output(p)
    units = p.add_mutually_exclusive_group()
    units.add_argument("--to-um", action="store_true", help="voxel coordinates -> micrometres")
    units.add_argument("--to-voxel", action="store_true", help="micrometres -> voxel coordinates")
    add_voxel(p)
    p.add_argument("--resample", type=float, metavar="UM", help="resample sections at this spacing")
    p.add_argument("--precision", type=int, default=6, help="decimals written (default 6)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    m = read_swc(args.input)
    if args.to_um or args.to_voxel:
        vs = args.voxel or m.voxel_size
        if vs is None:
            raise MorphError("voxel size unknown", file=args.input, hint="give --voxel X Y Z")
        # the flag states what the input coordinates are, whatever the header says
        if args.to_um:
            m = m._derive(units="voxel").to_micrometres(vs)
        else:
            m = m._derive(units="um").to_voxels(vs)
    if args.resample:
        m = m.resample(args.resample)
    write_swc(m, args.output, force=args.force, precision=args.precision)
    print(f"{args.output}: {len(m)} nodes, {m.units}")
    return 0
