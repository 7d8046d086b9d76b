"""``morph convert IN -o OUT``: standardise an SWC, voxel <-> micrometre."""

from __future__ import annotations

import argparse
import math

from morph.cli._common import add_output, add_voxel, positive_float
from morph.errors import MorphError
from morph.io import check_output, read_swc, write_swc
from morph.io.swc import header_units

#: Most nodes ``--resample`` may create (an SWC of about half a gigabyte).
MAX_RESAMPLED_NODES = 10_000_000
#: Most decimals ``--precision`` accepts (a float64 holds about 16 significant digits).
MAX_PRECISION = 15


def precision(text: str) -> int:
    """Parse ``--precision``: a whole number of decimals from 0 to :data:`MAX_PRECISION`."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of decimals, got {text!r}") from None
    if not 0 <= v <= MAX_PRECISION:
        raise argparse.ArgumentTypeError(f"expected 0 to {MAX_PRECISION} decimals, got {text!r}")
    return v


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "convert",
        parents=[common],
        help="rewrite an SWC standardised (renumbered, parents first), or convert units",
        description="Write a standard SWC: depth-first, parents before children, ids 1..N, "
        "with a header. --to-um / --to-voxel convert coordinates with --voxel X Y Z "
        "(or the voxel size in the file's header); a file whose header already declares the "
        "target units ('# units: um' or '# units: voxel') is refused: correct or remove that "
        "header line if it is wrong.",
    )
    p.add_argument("input", metavar="IN")
    add_output(p)
    units = p.add_mutually_exclusive_group()
    units.add_argument("--to-um", action="store_true", help="voxel coordinates -> micrometres")
    units.add_argument("--to-voxel", action="store_true", help="micrometres -> voxel coordinates")
    add_voxel(p)
    p.add_argument(
        "--resample",
        type=positive_float,
        metavar="UM",
        help=f"resample sections at this spacing (> 0; at most {MAX_RESAMPLED_NODES:,} nodes result)",
    )
    p.add_argument(
        "--precision", type=precision, default=6, help=f"decimals written, 0 to {MAX_PRECISION} (default 6)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read, convert and write; return the exit code."""
    check_output(args.output, force=args.force)  # before any work
    m = read_swc(args.input)
    if args.to_um or args.to_voxel:
        target = "um" if args.to_um else "voxel"
        if header_units(m.header) == target:
            name = "micrometres" if args.to_um else "voxels"
            raise MorphError(
                f"already in {name}: its header says '# units: {target}'",
                file=args.input,
                hint="converting again would scale twice; if the header is wrong, correct or remove its "
                "'# units:' line, then run this again",
            )
        vs = args.voxel or m.voxel_size
        if vs is None:
            raise MorphError("voxel size unknown", file=args.input, hint="give --voxel X Y Z")
        # the flag states what the input coordinates are when the header does not
        if args.to_um:
            m = m._derive(units="voxel").to_micrometres(vs)
        else:
            m = m._derive(units="um").to_voxels(vs)
        # a traced cell's header names its coordinates' units: no longer true
        m = m._derive(header=[h for h in m.header if not h.lower().startswith("coordinates:")])
    if args.resample:
        _check_resample(m.edge_length.sum(), len(m), args.resample)
        m = m.resample(args.resample)
    write_swc(m, args.output, force=args.force, precision=args.precision)
    print(f"{args.output}: {len(m)} nodes, {m.units}")
    return 0


def _check_resample(length: float, n_nodes: int, spacing: float) -> None:
    """Refuse a ``--resample`` spacing that would create an absurd number of nodes."""
    expected = float(length) / spacing + n_nodes
    if expected > MAX_RESAMPLED_NODES:
        least = float(length) / max(MAX_RESAMPLED_NODES - n_nodes, 1)
        raise MorphError(
            f"--resample {spacing:g} would create about {expected:.3g} nodes "
            f"(the most is {MAX_RESAMPLED_NODES:,})",
            hint=f"give a larger spacing: --resample {_round_up(least):g} or more",
        )


def _round_up(x: float) -> float:
    """``x`` rounded up to two significant digits."""
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / step) * step
