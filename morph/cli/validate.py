"""``morph validate FILE...``: report every problem in SWC files; ``--fix`` repairs."""

from __future__ import annotations

import argparse
import sys

from morph.cli._common import add_output
from morph.errors import MorphError
from morph.io import check_output, fix_swc, validate_swc, write_swc


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "validate",
        parents=[common],
        help="check SWC files and list every problem (exit 1 if any)",
        description="Check SWC files and list every problem found, with its line, and warnings for what "
        "is legal but often unintended (several separate trees, no soma). Every file is checked; the exit "
        "code is 0 when all are valid (warnings allowed), 1 when one has problems, 2 when one cannot be "
        "read at all (missing, a folder). With --fix (one input), write a repaired, renumbered, "
        "parent-before-child file where the repair is unambiguous (exact repeated lines dropped, missing "
        "or self parents made roots).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--fix", action="store_true", help="write a repaired copy to -o")
    add_output(p, required=False, help="repaired file (with --fix)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate every file (or repair one with ``--fix``); return the exit code."""
    if args.fix:
        return _fix(args)
    if args.output is not None:
        raise MorphError(
            "-o needs --fix", hint="validate writes a file only when repairing: add --fix, or drop -o"
        )
    worst, bad = 0, 0
    for f in args.files:
        try:
            report = validate_swc(f)
        except MorphError as e:  # unreadable (missing, a folder): report it, check the others
            print(str(e))
            worst, bad = 2, bad + 1
            continue
        if report.problems:
            worst, bad = max(worst, 1), bad + 1
            for p in report.problems:
                print(p.format(f))
        for w in report.warnings:
            print(f"{f}: warning: {w.message}" + (f" ({w.hint})" if w.hint else ""))
        if not report.problems:
            n = len(report.warnings)
            print(f"{f}: ok" + (f", {n} warning{'s' if n > 1 else ''}" if n else ""))
    if bad:
        print(f"{bad} of {len(args.files)} file(s) have problems", file=sys.stderr)
    return worst


def _fix(args: argparse.Namespace) -> int:
    if len(args.files) != 1 or args.output is None:
        raise MorphError("--fix takes one input file and -o OUTPUT")
    check_output(args.output, force=args.force)  # before any work or message
    m, repaired = fix_swc(args.files[0])
    notes = [
        "repaired: "
        + (f"line {p.line}: " if p.line is not None else "")
        + p.message
        + (f": {p.hint}" if p.hint else "")
        for p in repaired
    ]
    write_swc(m, args.output, force=args.force, extra_header=notes)
    for n in notes:
        print(n, file=sys.stderr)
    print(f"{args.output}: wrote {len(m)} nodes ({len(repaired)} repair(s))")
    return 0
