"""``morph trace STACK -o cell.swc``: automatic tracing of a neuron in a 3-D stack."""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from morph.cli._common import add_channel, add_output, add_voxel, check_swc_output, memory_size, numbers, xyz
from morph.errors import MorphError, TracingError


def _roi(text: str) -> tuple[float, ...]:
    return numbers(text, "X0,Y0,Z0,X1,Y1,Z1")


UNITS_HELP = (
    "units of --soma, --axon, --seeds, --roi (and --from/--to): 'um' micrometres (default) or "
    "'voxel' (x = column, y = row, z = slice, from 0, as Fiji shows them)"
)


def add_common_trace_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("stack", type=Path, metavar="STACK", help="3-D TIFF stack or folder of TIFF slices")
    add_voxel(p)
    add_channel(p)
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
    p.add_argument("--axon", type=xyz, metavar="X,Y,Z",
                   help="a point on the axon: the axon is labelled from its start to there (the tree is joined "
                   "to the point like a seed when it does not reach it)")
    p.add_argument(
        "--seeds",
        type=Path,
        metavar="FILE",
        help="points the tree must reach (clicks on neurites it left out: each one it does not reach is "
        "joined by the minimal-cost path through the image; works with --extend too): a text file of "
        "X Y Z lines (commas or spaces; # comments), a table with a header naming columns X, Y and Z "
        "or Slice (Fiji's Results of point measurements; Slice numbered from 1), a Vaa3D .marker file "
        "(1-based voxels), Fiji's point selections (a .roi file or the ROI Manager's RoiSet.zip; each point on "
        "its slice), or an SWC whose nodes are taken; without --soma the first seed is the root",
    )
    p.add_argument("--roi", type=_roi, metavar="X0,Y0,Z0,X1,Y1,Z1", help="trace only inside this box")
    p.add_argument("--extend", type=Path, metavar="CELL.swc", help="trace only what this reconstruction does not cover yet and add it")
    p.add_argument(
        "--max-memory",
        type=memory_size,
        metavar="SIZE",
        help="bound the memory of the run (e.g. 2GB): the stack is read and preprocessed chunk by "
        "chunk (TIFF, OME-Zarr), for stacks larger than memory; same result as in memory. Without it, a "
        "stack that would not fit in the available memory (about 12 bytes a voxel, plus the stack) is "
        "traced chunk by chunk under half the available memory, which is said on stderr",
    )
    p.set_defaults(func=run)


MIN_TRACE_UM = 5.0
"""Least neurite cable a trace must hold to be written (less is a stub at a point on background)."""


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
        if name == "polarity" and polarity != "auto" and value.strip().lower() != polarity:
            raise MorphError(f"--polarity {polarity} and --param polarity={value} disagree", hint="give one of them")
        kind = str(fields[name].type)
        try:
            if value.lower() == "none" and "None" in kind:
                v = None
            elif kind.startswith("bool"):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                v = value.lower() in ("true", "1", "yes")
            elif kind.startswith("tuple"):  # 0.5,1 or (0.5, 1.0) as the header writes it
                v = tuple(float(x) for x in value.strip("()[] ").replace(",", " ").split())
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


def imagej_roi_points(path: Path, channels: int = 1) -> np.ndarray:
    """The points of Fiji's point selections (the multi-point tool): a ``.roi`` file (File >
    Save As > Selection) or the ROI Manager's ``RoiSet.zip``, as voxel indices (x = column,
    y = row, z = slice, from 0).

    Each point's slice is the one it was clicked on: its stack position, or the ROI's own
    position (a point added to the ROI Manager with its slice), or the hyperstack's z
    position. Stack positions of a multi-channel stack (``channels``, ImageJ's order:
    channel fastest) count channels too. A point in sub-pixel units (ImageJ's coordinates,
    pixel k spanning [k, k + 1)) is taken at k = coordinate - 0.5; integer points are pixel
    indices already.
    """
    import roifile

    hint = ("save Fiji's point selections with File > Save As > Selection (.roi) or the ROI Manager's "
            "More > Save (RoiSet.zip), each point clicked on its slice")
    try:
        rois = roifile.ImagejRoi.fromfile(path)
    except Exception as e:  # roifile raises ValueError, zipfile BadZipFile, struct.error ...
        raise MorphError(f"not an ImageJ ROI file ({e})", file=path, hint=hint) from None
    rois = rois if isinstance(rois, list) else [rois]
    if not rois:
        raise MorphError("the ROI set holds no ROI", file=path, hint=hint)
    pts = []
    for k, roi in enumerate(rois, start=1):
        label = f"ROI {k} ({roi.name!r})" if roi.name else f"ROI {k}"
        if roi.roitype != roifile.ROI_TYPE.POINT:
            raise MorphError(f"{label} is a {roi.roitype.name.lower()} selection, not points", file=path, hint=hint)
        xy = np.asarray(roi.coordinates(), dtype=np.float64).reshape(-1, 2)
        if roi.subpixelresolution:
            xy = xy - 0.5
        n = len(xy)
        if roi.counter_positions is not None and len(roi.counter_positions) == n and roi.counter_positions.any():
            pos = np.asarray(roi.counter_positions, dtype=np.int64)
            z = (pos - 1) // max(int(channels), 1)
        elif roi.z_position > 0:  # a hyperstack's z position, from 1
            pos = np.full(n, roi.z_position)
            z = pos - 1
        else:
            pos = np.full(n, roi.position)
            z = (pos - 1) // max(int(channels), 1)
        if (pos <= 0).any():
            i = int(np.flatnonzero(pos <= 0)[0])
            raise MorphError(f"point {i + 1} of {label} is on no slice (the ROI holds no z for it)", file=path,
                             hint="click each point on the slice where its neurite is in focus (Fiji's "
                             "point tool stores that slice), or give a table with X, Y and Slice columns")
        pts.append(np.column_stack([xy, z.astype(np.float64)]))
    return np.concatenate(pts)


def read_points(path: Path, *, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Seed points from a file, and which of their axes are voxel indices whatever ``--units``
    says (x, y, z booleans).

    * text, one ``X Y Z`` per line (commas or spaces; ``#`` comments): units as ``--units``;
    * a table with a header line naming its columns (CSV or tab-separated), such as Fiji's
      Results of point measurements: columns ``X``, ``Y`` and ``Z`` (units as ``--units``) or
      Fiji's ``Slice`` (1-based slice number: always a voxel index), other columns ignored;
    * a Vaa3D marker file (``.marker``: ``x,y,z,radius,...``, 1-based voxel coordinates);
    * an SWC: its node positions (voxel indices when its header says ``# units: voxel``);
    * Fiji's point selections, ``.roi`` or ``RoiSet.zip`` (:func:`imagej_roi_points`; voxel
      indices; ``channels``: the stack's channel count, for the slice of a point).
    """
    if not path.exists():
        raise MorphError("seeds file not found", file=path)
    if path.suffix.lower() in (".roi", ".zip"):
        return imagej_roi_points(path, channels), np.ones(3, dtype=bool)
    if path.suffix.lower() == ".swc":
        from morph.io import read_swc

        m = read_swc(path)  # its nodes in its own units: voxels when its header says so
        return np.asarray(m.xyz), np.full(3, m.units == "voxel")
    marker = path.suffix.lower() == ".marker"
    hint = "one X Y Z point per line, a table with columns X, Y and Z (or Slice), or a Vaa3D .marker file"
    rows: list[tuple[int, list[str]]] = []
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the header line
    for k, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            sep = "\t" if "\t" in line else ","
            rows.append((k, [c.strip() for c in line.split(sep)] if sep in line else line.split()))
    cols, z_index, table = [0, 1, 2], False, False

    def number(text: str, k: int) -> float:
        try:
            v = float(text)
        except ValueError:
            raise MorphError(f"not a number: {text!r}", file=path, line=k, hint=hint) from None
        if not np.isfinite(v):
            raise MorphError(f"not a finite number: {text!r}", file=path, line=k, hint=hint)
        return v

    if rows and not marker:
        k0, head = rows[0]
        try:
            [float(c) for c in head if c]
        except ValueError:  # a header line: the columns by name
            names = [c.strip().strip('"').lower() for c in head]
            zname = "z" if "z" in names else "slice"
            missing = [c.upper() for c in ("x", "y") if c not in names] + ([] if zname in names else ["Z (or Slice)"])
            if missing:
                raise MorphError(f"the header line names no column {' or '.join(missing)}", file=path, line=k0,
                                 hint=hint) from None
            cols = [names.index("x"), names.index("y"), names.index(zname)]
            z_index, table = zname == "slice", True
            rows = rows[1:]
    pts = []
    for k, parts in rows:
        if marker:
            if len(parts) < 3:
                raise MorphError(f"expected x,y,z first, got {len(parts)} fields", file=path, line=k, hint=hint)
            pts.append([number(c, k) - 1.0 for c in parts[:3]])  # 1-based
            continue
        if not table and len(parts) != 3:
            raise MorphError(f"expected 3 numbers, got {len(parts)}", file=path, line=k, hint=hint)
        if max(cols) >= len(parts):
            raise MorphError(f"expected at least {max(cols) + 1} columns, got {len(parts)}", file=path, line=k, hint=hint)
        v = [number(parts[c], k) for c in cols]
        if z_index:
            v[2] -= 1.0  # Fiji's slices are numbered from 1
        pts.append(v)
    if not pts:
        raise MorphError("seeds file holds no point", file=path, hint=hint)
    voxel_axes = np.array([marker, marker, marker or z_index])
    return np.asarray(pts, dtype=np.float64), voxel_axes


def to_um(p, units: str, vs, voxel_axes=None) -> np.ndarray | None:
    """Points of the command line (or a seeds file) in micrometres: multiplied by the voxel
    size with ``--units voxel``, and always along the ``voxel_axes`` a file gives in voxels."""
    if p is None:
        return None
    a = np.asarray(p, dtype=np.float64)
    k = a.size // 3
    scale = np.where((units == "voxel") | np.asarray(voxel_axes if voxel_axes is not None else np.zeros(3, bool)),
                     np.asarray(vs, dtype=np.float64), 1.0)
    return (a.reshape(k, 3) * scale).reshape(a.shape)


def command_line(args: argparse.Namespace) -> str:
    """The header line recording the command as it was given (``morph`` and its arguments,
    quoted for a POSIX shell), so that the run can be repeated from the same folder."""
    import shlex

    return "command: " + shlex.join(["morph", *getattr(args, "argv", [])])


def show_warnings(caught: list) -> None:
    from morph.progress import warn

    for w in caught:
        warn(str(w.message))


def load_stack(args: argparse.Namespace):
    from morph.io import read_stack

    return read_stack(args.stack, voxel_size=args.voxel, channel=args.channel, series=args.series)


def plan_memory(args: argparse.Namespace) -> tuple[Any, int] | None:
    """Without ``--max-memory``: when the stack (or its ``--roi``) would not fit in the
    available memory to be traced whole (:func:`morph.tracing.memory.plan_stack`), the stack
    opened lazily and the bound to trace it under chunk by chunk, said on stderr; else
    ``None``."""
    from morph.progress import info
    from morph.tracing.memory import plan_stack

    def roi_voxels(lazy: Any) -> int:
        shape = np.asarray(lazy.shape[-3:], dtype=np.int64)
        box = np.asarray(args.roi, dtype=np.float64).reshape(2, 3)
        extent = np.abs(box[1] - box[0])
        if args.units != "voxel":
            extent = extent / np.asarray(lazy.voxel_size, dtype=np.float64)
        return int(np.prod(np.clip(np.ceil(extent) + 1, 1, shape[::-1])))

    plan = plan_stack(args.stack, voxel_size=args.voxel, channel=args.channel, series=args.series,
                      roi_voxels=roi_voxels if args.roi is not None else None)
    if plan is None:
        return None
    lazy, need, available, bound = plan
    gib = 1 << 30
    info(f"morph: tracing this stack in memory would take about {need / gib:.1f} GiB "
         f"({int(np.prod(lazy.shape[-3:])):,} voxels), more than the {available / gib:.1f} GiB available: it is "
         f"traced chunk by chunk under {bound / gib:.1f} GiB, as --max-memory {bound / gib:.1f}GiB does (give "
         "--max-memory to choose the bound)", quiet=args.quiet)
    return lazy, bound


def run(args: argparse.Namespace) -> int:
    from morph.io import read_swc, write_swc
    from morph.io.atomic import check_distinct, check_output
    from morph.tracing import trace

    check_swc_output(args.output)
    check_distinct([args.output], inputs=[args.stack, args.extend, args.seeds])
    check_output(args.output, force=args.force)
    params = parse_params(args.param, args.polarity)
    max_memory = args.max_memory
    if max_memory:
        from morph.io.chunked import open_chunked

        stack = open_chunked(args.stack, voxel_size=args.voxel, channel=args.channel, series=args.series)  # lazy: nothing read yet
    else:
        planned = plan_memory(args)
        if planned is not None:
            stack, max_memory = planned
        else:
            stack = load_stack(args)
    vs = stack.voxel_size
    seeds, seed_axes = (None, None)
    if args.seeds:
        from morph.io import stack_channels

        n, kind = stack_channels(args.stack, args.series) if args.seeds.suffix.lower() in (".roi", ".zip") else (1, "")
        # ImageJ's stack positions count a hyperstack's channels (not an RGB image's samples)
        seeds, seed_axes = read_points(args.seeds, channels=n if kind == "multi-channel" else 1)
    if seeds is not None and args.soma is None and not args.extend:
        from morph.progress import info

        info("morph: no --soma given: the first seed is the root of the tree (a neurite entering the field); "
             "give --soma X,Y,Z to trace from the soma and join the seeds to it", quiet=args.quiet)
    roi = args.roi
    if roi is not None and args.units == "voxel":
        roi = tuple(np.r_[np.asarray(roi[:3]) * vs, np.asarray(roi[3:]) * vs])
    extend = None
    if args.extend:
        extend = read_swc(args.extend)
        if extend.units != "um":
            extend = extend.to_micrometres(vs)
    if max_memory:
        import functools

        from morph.tracing.chunked import trace as chunked_trace

        trace = functools.partial(chunked_trace, max_memory=max_memory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = trace(
            stack,
            soma=to_um(args.soma, args.units, vs),
            axon=to_um(args.axon, args.units, vs),
            seeds=to_um(seeds, args.units, vs, seed_axes),
            roi=roi,
            params=params,
            progress=not args.quiet,
            extend=extend,
        )
    show_warnings(caught)
    cable = m.total_length() if len(m) >= 2 else 0.0
    if len(m) < 2 or (cable < MIN_TRACE_UM and extend is None):
        from morph.tracing.pipeline import GREY_LEVEL_NOTE

        grey = next((h[len(GREY_LEVEL_NOTE):] for h in m.header if h.startswith(GREY_LEVEL_NOTE)), "")
        raise TracingError(
            f"the tracing produced {cable:.1f} um of neurite, less than {MIN_TRACE_UM:g} um: no neuron traced; nothing "
            "written",
            hint="check the soma or seed points (on the neuron, in the units given), the polarity and the voxel size "
                 "(morph info STACK shows them)" + (f", and the tracing parameters given ({', '.join(args.param)})"
                                                    if args.param else "")
                 + (f"; this stack's grey level, the unit of the noise floor, is {grey}: if its values sit on a "
                    "large offset (floating point with fractions is counted from 0), that floor is too coarse, so subtract the "
                    "offset first, or lower min_noise (--param min_noise=VALUE)" if grey else ""),
        )
    extra = [f"extended reconstruction: {args.extend}"] if extend is not None else []
    write_swc(m, args.output, force=args.force, extra_header=extra + [command_line(args)])
    if not args.quiet:
        axon = next((h for h in m.header if h.startswith("axon:")), "")
        print(
            f"{args.output}: {len(m)} nodes, {m.total_length():.1f} um of neurites, "
            f"{m.branch_points.size} branch points, {m.tips.size} tips" + (f"; {axon}" if axon else "")
        )
        from morph.progress import info

        if "not identified" in axon:
            info("morph: to label the axon (and measure its initial segment), give a point on it: "
                 f"--axon X,Y,Z, or label this trace with morph edit {args.output} --axon X,Y,Z -o OUT",
                 quiet=args.quiet)
        for line in m.header:  # the tracer's hints (also kept in the header)
            if line.startswith("hint: "):
                info("morph: " + line, quiet=args.quiet)
    return 0
