"""``morph features FILES... -o table.csv``: morphometric features of many cells."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from morph.cli._common import add_output, output_file
from morph.errors import MorphError

FORMATS = (".csv", ".parquet", ".json")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "features",
        parents=[common],
        help="measure cells: Allen Cell Types features, NeuroM distributions, Sholl, AIS",
        description="Compute morphometric features of SWC files into one table (one row per cell, "
        "one column per compartment.feature). A file that fails is reported and the others "
        "still complete; the exit code is 1 when any file failed.",
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE", help="SWC files")
    add_output(p, required=False, help="output table: .csv, .parquet or .json (without it: CSV in the long "
               "format on standard output, one value per line)")
    p.add_argument("--long", action="store_true", help="long format: cell, compartment, feature, value")
    p.add_argument(
        "--compartments",
        nargs="+",
        metavar="NAME",
        help="compartments (all_neurites axon basal_dendrite apical_dendrite dendrite custom_N soma cell "
        "ais); default all",
    )
    p.add_argument("--features", nargs="+", metavar="NAME", help="feature names; default all (see --list)")
    p.add_argument("--list", action="store_true", help="list every feature with its definition and exit")
    p.add_argument(
        "--convention",
        choices=("allen", "neurom"),
        default="allen",
        help="definitions where the Allen pipeline and NeuroM differ (default: allen)",
    )
    p.add_argument("--nm-compatible", action="store_true", help="same as --convention neurom")
    p.add_argument("--sholl-step", type=float, default=10.0, metavar="UM", help="Sholl radius step (10 um)")
    p.add_argument(
        "--reasons", type=output_file, metavar="FILE", help="also write why each NaN is NaN (CSV: cell, column, reason)"
    )
    p.set_defaults(func=run)


def _print_list() -> None:
    from morph.features import list_features

    rows = list_features()
    w = min(40, max(len(r.name) for r in rows))
    for r in rows:
        scope = "neurite compartments" if r.applies_to.startswith("all_neurites") else r.applies_to
        print(f"{r.name:<{w}}  [{scope}] {r.definition}")


def _long(df):  # type: ignore[no-untyped-def]
    import pandas as pd

    s = df.stack(future_stack=True) if "future_stack" in pd.DataFrame.stack.__code__.co_varnames else df.stack()
    out = s.reset_index()
    out.columns = ["cell", "column", "value"]
    parts = out["column"].str.split(".", n=1, expand=True)
    out.insert(1, "compartment", parts[0])
    out.insert(2, "feature", parts[1])
    return out.drop(columns="column")


def _write(df, path: Path, force: bool, index: bool) -> None:  # type: ignore[no-untyped-def]
    from morph.io.atomic import atomic_write_with

    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise MorphError(f"unknown table format {path.suffix!r}", file=path, hint="use .csv, .parquet or .json")

    def writer(tmp: Path) -> None:
        if suffix == ".csv":
            df.to_csv(tmp, index=index)
        elif suffix == ".parquet":
            df.to_parquet(tmp, index=index)
        else:
            df.to_json(tmp, orient="records" if not index else "index", indent=1)

    atomic_write_with(path, writer, force=force)


def run(args: argparse.Namespace) -> int:
    if args.list:
        _print_list()
        return 0
    if not args.files:
        raise MorphError("no input files", hint="give one or more SWC files (or --list)")
    from morph.io.atomic import check_distinct, check_output

    if not args.sholl_step > 0 or not math.isfinite(args.sholl_step):
        raise MorphError(f"--sholl-step must be a positive number of micrometres, got {args.sholl_step:g}")
    for out in (args.output, args.reasons):
        if out is not None and out.suffix.lower() not in FORMATS:
            raise MorphError(f"unknown table format {out.suffix!r}", file=out, hint="use .csv, .parquet or .json")
    check_distinct([args.output, args.reasons], inputs=args.files)
    if args.output is not None:
        check_output(args.output, force=args.force)
    if args.reasons is not None:
        check_output(args.reasons, force=args.force)
    import morph.features as mf

    convention = "neurom" if args.nm_compatible else args.convention
    missing = [f for f in args.files if not f.exists()]
    files = [f for f in args.files if f.exists()]
    df = mf.table(
        files,
        compartments=args.compartments,
        features=args.features,
        convention=convention,
        progress=None if len(files) > 1 else False,
        sholl_step=args.sholl_step,
    )
    failed = dict(df.attrs["failed"])
    for f in missing:
        failed[str(f)] = f"{f}: file not found (check the path)"
    for name, msg in failed.items():
        # a reader's message already names the file: the cell's name would repeat it
        named = msg.startswith(str(name)) or msg.split(": ", 1)[0].endswith((".swc", ".SWC"))
        print(f"morph: error: {msg}" if named else f"morph: error: {name}: {msg}", file=sys.stderr)
    if len(df):
        if args.output is None:  # to the terminal or a pipe: one value per line
            _long(df).to_csv(sys.stdout, index=False)
        elif args.long:
            _write(_long(df), args.output, args.force, index=False)
        else:
            _write(df, args.output, args.force, index=True)
        if args.reasons is not None:
            import pandas as pd

            rows = [(c, k, r) for c, d in df.attrs["reasons"].items() for k, r in d.items()]
            rdf = pd.DataFrame(rows, columns=["cell", "column", "reason"])
            _write(rdf, args.reasons, args.force, index=False)
        from morph import progress

        progress.info(f"{len(df)} cell(s), {df.shape[1]} columns -> {args.output or 'standard output'}")
    else:
        print("morph: no cell could be measured; nothing written", file=sys.stderr)
    if failed:
        print(f"morph: {len(failed)} of {len(args.files)} file(s) failed", file=sys.stderr)
        return 1
    return 0

