"""``morph trace STACK -o cell.swc``: automatic tracing of a neuron in a 3-D stack."""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

import numpy as np

from morph.cli._common import add_output, add_voxel, memory_size, xyz
from morph.errors import MorphError, TracingError


def _roi(text: str) -> tuple[float, ...]:
    parts = text.replace(",", " ").split()
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,Z0,X1,Y1,Z1 numbers, got {text!r}") from None
    if len(vals) != 6:
        raise argparse.ArgumentTypeError(f"expected 6 numbers X0,Y0,Z0,X1,Y1,Z1, got {len(vals)} in {text!r}")
    return vals


UNITS_HELP = (
    "units of --soma, --axon, --seeds, --roi (and --from/--to): 'um' micrometres (default) or "
    "'voxel' (x = column, y = row, z = slice, from 0, as Fiji shows them)"
)


def add_common_trace_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("stack", type=Path, metavar="STACK", help="3-D TIFF stack or folder of TIFF slices")
    add_voxel(p)
    p.add_argument("--units", choices=("um", "voxel"), default="um", help=UNITS_HELP)
    p.add_argument(
        "--polarity",
        choices=("auto", "brightfield", "fluorescence"),
        default="auto",
        help="brightfield: dark neuron on bright background (biocytin); fluorescence: bright on dark "
        "(default: detected)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a tracing parameter (see docs/tracing.md), e.g. --param min_branch_um=6; repeatable",
    )


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "trace",
        parents=[common],
        help="trace the neuron in a 3-D stack into an SWC (soma, dendrites, axon)",
        description="Trace a biocytin-filled (brightfield) or fluorescent neuron in a 3-D stack: "
        "background flattening, denoising, Hessian tubularity, soma detection, minimal-path tree "
        "growth from the soma with gap bridging, spur pruning, smoothing, radii from the image and "
        "compartment labels. Writes SWC in micrometres whose header records every parameter. "
        "Coordinates given on the command line are micrometres unless --units voxel.",
    )
    add_common_trace_args(p)
    add_output(p, help="output SWC file")
    p.add_argument("--soma", type=xyz, metavar="X,Y,Z", help="soma position (default: detected)")
    p.add_argument("--axon", type=xyz, metavar="X,Y,Z", help="a point on the axon (labels that stem axon)")
    p.add_argument(
        "--seeds",
        type=Path,
        metavar="FILE",
        help="points the tree must reach (clicks on neurites it left out: each one it does not reach is "
        "joined by the minimal-cost path through the image; works with --extend too): a text file of "
        "X Y Z lines (commas or spaces; # comments) or an SWC whose nodes are taken; without --soma "
        "the first seed is the root",
    )
    p.add_argument("--roi", type=_roi, metavar="X0,Y0,Z0,X1,Y1,Z1", help="trace only inside this box")
    p.add_argument("--extend", type=Path, metavar="CELL.swc", help="trace only what this reconstruction does not cover yet and add it")
    p.add_argument(
        "--max-memory",
        type=memory_size,
        metavar="SIZE",
        help="bound the memory of the run (e.g. 2GB): the stack is read and preprocessed chunk by "
        "chunk (TIFF, OME-Zarr), for stacks larger than memory; same result as in memory",
    )
    p.set_defaults(func=run)


def parse_params(items: list[str], polarity: str):
    from morph.tracing import TraceParams

    fields = {f.name: f for f in dataclasses.fields(TraceParams)}
    changes: dict = {"polarity": polarity}
    for item in items:
        if "=" not in item:
            raise MorphError(f"--param expects NAME=VALUE, got {item!r}")
        name, value = (s.strip() for s in item.split("=", 1))
        if name not in fields:
            raise MorphError(f"unknown tracing parameter {name!r}", hint="known: " + ", ".join(sorted(fields)))
        kind = str(fields[name].type)
        try:
            if value.lower() == "none" and "None" in kind:
                v = None
            elif kind.startswith("bool"):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                v = value.lower() in ("true", "1", "yes")
            elif kind.startswith("tuple"):
                v = tuple(float(x) for x in value.replace(",", " ").split())
            elif kind.startswith("int"):
                v = int(value)
            elif kind.startswith("float"):
                v = float(value)
            else:
                v = value
        except ValueError:
            raise MorphError(f"bad value {value!r} for tracing parameter {name}") from None
        changes[name] = v
    return TraceParams(**changes)


def read_points(path: Path) -> np.ndarray:
    """Seed points from a text file (X Y Z per line) or an SWC (its node positions)."""
    if not path.exists():
        raise MorphError("seeds file not found", file=path)
    if path.suffix.lower() == ".swc":
        from morph.io import read_swc

        return np.asarray(read_swc(path).xyz)
    pts = []
    for k, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        try:
            vals = [float(x) for x in parts]
        except ValueError:
            raise MorphError(f"not a number in {line!r}", file=path, line=k, hint="one X Y Z point per line") from None
        if len(vals) != 3:
            raise MorphError(f"expected 3 numbers, got {len(vals)}", file=path, line=k, hint="one X Y Z point per line")
        pts.append(vals)
    if not pts:
        raise MorphError("seeds file holds no point", file=path, hint="one X Y Z point per line")
    return np.asarray(pts, dtype=np.float64)


def to_um(p, units: str, vs) -> np.ndarray | None:
    if p is None:
        return None
    a = np.asarray(p, dtype=np.float64)
    if units == "voxel":
        k = a.size // 3
        return (a.reshape(k, 3) * np.asarray(vs)).reshape(a.shape)
    return a


def show_warnings(caught: list) -> None:
    from morph.progress import warn

    for w in caught:
        warn(str(w.message))


def load_stack(args: argparse.Namespace):
    from morph.io import read_stack

    return read_stack(args.stack, voxel_size=args.voxel)


def run(args: argparse.Namespace) -> int:
    from morph.io import read_swc, write_swc
    from morph.io.atomic import check_output
    from morph.tracing import trace

    check_output(args.output, force=args.force)
    params = parse_params(args.param, args.polarity)
    if args.max_memory:
        from morph.io.chunked import open_chunked

        stack = open_chunked(args.stack, voxel_size=args.voxel)  # lazy: nothing read yet
    else:
        stack = load_stack(args)
    vs = stack.voxel_size
    seeds = read_points(args.seeds) if args.seeds else None
    roi = args.roi
    if roi is not None and args.units == "voxel":
        roi = tuple(np.r_[np.asarray(roi[:3]) * vs, np.asarray(roi[3:]) * vs])
    extend = None
    if args.extend:
        extend = read_swc(args.extend)
        if extend.units != "um":
            extend = extend.to_micrometres(vs)
    if args.max_memory:
        import functools

        from morph.tracing.chunked import trace as chunked_trace

        trace = functools.partial(chunked_trace, max_memory=args.max_memory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = trace(
            stack,
            soma=to_um(args.soma, args.units, vs),
            axon=to_um(args.axon, args.units, vs),
            seeds=to_um(seeds, args.units, vs),
            roi=roi,
            params=params,
            progress=not args.quiet,
            extend=extend,
        )
    show_warnings(caught)
    if len(m) < 2:
        raise TracingError("the tracing produced no neurite; nothing written")
    write_swc(m, args.output, force=args.force)
    if not args.quiet:
        axon = next((h for h in m.header if h.startswith("axon:")), "")
        print(
            f"{args.output}: {len(m)} nodes, {m.total_length():.1f} um of neurites, "
            f"{m.branch_points.size} branch points, {m.tips.size} tips; {axon}"
        )
    return 0
