"""``morph batch features|trace``: many files at once, on the local machine or a Dask cluster."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from morph.cli._common import add_channel, memory_size, positive_float, whole_number
from morph.errors import MorphError


def _positive_int(text: str) -> int:
    return whole_number(text, minimum=1)


def _engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where to run")
    g.add_argument(
        "--workers", type=_positive_int, metavar="N",
        help="worker processes of the local cluster (default: one per core)",
    )
    g.add_argument(
        "--scheduler", metavar="ADDR",
        help="address of an existing Dask scheduler (tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT; default: "
        "$DASK_SCHEDULER_ADDRESS, else a local cluster); 'serial' runs in this process",
    )
    g.add_argument("--redo", action="store_true", help="recompute files already done")
    g.add_argument("--log", type=Path, metavar="FILE", help="where to write the errors and tracebacks of failed files")


def _param(text: str) -> tuple[str, Any]:
    key, sep, val = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(val)
    except ValueError:
        return key, val


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "batch",
        parents=[common],
        help="features or tracing of many files, locally or on a Dask cluster",
        description="Process many files as independent tasks on Dask: a local cluster sized to the "
        "machine by default, or an existing cluster (--scheduler). A failing file is logged and never "
        "stops the rest; outputs are written atomically; a re-run skips what is already done. "
        "Exit code 1 when any file failed.",
    )
    bsub = p.add_subparsers(dest="batch_command", metavar="WHAT", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    f = bsub.add_parser(
        "features",
        parents=[common],
        help="features of many reconstructions into one table",
        description="One row of features per SWC file, written to a .parquet, .csv or .tsv table (nothing is "
        "written when no file could be measured). Per-file results are kept in OUTPUT.cache/ so that an "
        "interrupted run restarts where it stopped.",
    )
    f.add_argument("patterns", nargs="+", metavar="PATTERN", help="SWC files or quoted glob patterns ('cells/**/*.swc')")
    f.add_argument("-o", "--output", required=True, type=Path, help="table to write (.parquet, .csv, .tsv)")
    f.add_argument(
        "-f", "--force", action="store_true",
        help="overwrite an existing table (or --log file) not written by this batch, or holding rows of files "
        "this run leaves out",
    )
    f.add_argument("--compartments", nargs="+", metavar="NAME", help="compartments to measure (default: all present)")
    f.add_argument("--features", nargs="+", metavar="NAME", dest="feature_names", help="features to compute (default: all)")
    f.add_argument(
        "--func", metavar="MODULE:FUNCTION", dest="function",
        help="compute FUNCTION(morphology) -> {name: value} instead of morph's features (importable by the workers)",
    )
    _engine_args(f)
    f.set_defaults(func=run_features)

    t = bsub.add_parser(
        "trace",
        parents=[common],
        help="trace many stacks into a folder of SWC files",
        description="One SWC per stack (TIFF, folder of slices, OME-Zarr) in the output folder, keeping the "
        "stacks' relative paths; stacks of one folder whose names differ only by their suffix (a.tif, a.tiff) "
        "keep their whole name (a.tif.swc, a.tiff.swc). Each SWC is stamped with its source, so a re-run skips "
        "stacks already traced.",
    )
    t.add_argument("patterns", nargs="+", metavar="PATTERN", help="stacks or quoted glob patterns ('stacks/*.tif')")
    t.add_argument("-o", "--output", required=True, type=Path, help="output folder (created)")
    t.add_argument("--features", type=Path, metavar="TABLE", dest="features_table", help="then write the features of the traced cells to TABLE")
    t.add_argument(
        "-f", "--force", action="store_true",
        help="overwrite an existing --features table (or --log file) not written by this batch, or holding rows "
        "of files this run leaves out",
    )
    t.add_argument("--voxel", nargs=3, type=positive_float, metavar=("X", "Y", "Z"), help="voxel size in micrometres (overrides the files' metadata)")
    add_channel(t)
    t.add_argument("--max-memory", type=memory_size, metavar="SIZE", help="peak memory bound per stack (e.g. 2GB): larger stacks are traced chunk by chunk")
    t.add_argument(
        "--strict-memory", action="store_true",
        help="with --max-memory: fail a stack whose tree stages (about 600 bytes per voxel of the cell's "
        "foreground, held at once) would exceed the bound, checked before they start, instead of warning and going on",
    )
    t.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE", help="tracing parameter (repeatable)")
    t.add_argument(
        "--points", type=Path, metavar="TABLE",
        help="clicks per stack: a CSV or tab-separated table, one point per row, columns stack (the stack's "
        "file name, or its path), kind (soma, axon or seed), x, y, z; a stack's clicks are part of its stamp, "
        "so changing them retraces it",
    )
    t.add_argument("--units", choices=("um", "voxel"), default="um",
                   help="units of the --points table: 'um' (default) or 'voxel' (x = column, y = row, z = slice, from 0)")
    t.add_argument("--func", metavar="MODULE:FUNCTION", dest="function", help="trace with FUNCTION(stack, **options) -> Morphology instead of morph's tracer")
    _engine_args(t)
    t.set_defaults(func=run_trace)


def _print_summary(summary: Any) -> None:
    from morph import progress

    if progress.QUIET and summary.failures:
        where = f" (see {summary.log})" if summary.log else ""
        progress.warn(f"{summary.failed} of {summary.total} files failed{where}")
        for note in summary.notes:
            progress.warn(note)
    progress.info(summary.format())


def run_features(args: argparse.Namespace) -> int:
    from morph import batch

    func = batch.load_function(args.function) if args.function else None
    if func is not None and (args.compartments or args.feature_names):
        raise MorphError("--compartments and --features apply to morph's features, not to --func")
    df = batch.features(
        args.patterns,
        compartments=args.compartments,
        features=args.feature_names,
        output=args.output,
        redo=args.redo,
        workers=args.workers,
        scheduler=args.scheduler,
        log=args.log,
        func=func,
        force=args.force,
    )
    s = df.attrs["summary"]
    _print_summary(s)
    return 0 if s.ok else 1


def run_trace(args: argparse.Namespace) -> int:
    from morph import batch

    options: dict[str, Any] = {}
    if args.param:
        options["params"] = dict(args.param)
    if args.max_memory:
        options["max_memory"] = args.max_memory
        if args.strict_memory:
            options["strict_memory"] = True
    elif args.strict_memory:
        raise MorphError("--strict-memory applies with --max-memory", hint="give the bound, e.g. --max-memory 2GB")
    if args.units != "um" and args.points is None:
        raise MorphError("--units applies to the --points table", hint="give the clicks with --points TABLE")
    func = batch.load_function(args.function) if args.function else None
    df = batch.trace(
        args.patterns,
        args.output,
        redo=args.redo,
        workers=args.workers,
        scheduler=args.scheduler,
        log=args.log,
        voxel_size=args.voxel,
        channel=args.channel,
        series=args.series,
        features_output=args.features_table,
        func=func,
        force=args.force,
        points=args.points,
        units=args.units,
        **options,
    )
    s = df.attrs["summary"]
    _print_summary(s)
    return 0 if s.ok else 1
