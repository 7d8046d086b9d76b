"""``morph validate FILE...``: report every problem in SWC files; ``--fix`` repairs."""

from __future__ import annotations

import argparse
import sys

from morph.cli._common import add_output
from morph.errors import MorphError
from morph.io import fix_swc, validate_swc, write_swc


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "validate",
        parents=[common],
        help="check SWC files and list every problem (exit 1 if any)",
        description="Check SWC files and list every problem found, with its line. With --fix "
        "(one input), write a repaired, renumbered, parent-before-child file where the repair "
        "is unambiguous (exact repeated lines dropped, missing or self parents made roots).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--fix", action="store_true", help="write a repaired copy to -o")
    add_output(p, required=False, help="repaired file (with --fix)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.fix:
        if len(args.files) != 1 or args.output is None:
            raise MorphError("--fix takes one input file and -o OUTPUT")
        m, repaired = fix_swc(args.files[0])
        notes = [f"repaired: {p.format()}" for p in repaired]
        write_swc(m, args.output, force=args.force, extra_header=notes)
        for n in notes:
            print(n, file=sys.stderr)
        print(f"{args.output}: wrote {len(m)} nodes ({len(repaired)} repair(s))")
        return 0
    bad = 0
    for f in args.files:
        report = validate_swc(f)
        if report.ok:
            print(f"{f}: ok")
        else:
            bad += 1
            for p in report.problems:
                print(p.format(f))
    if bad:
        print(f"{bad} of {len(args.files)} file(s) have problems", file=sys.stderr)
    return 1 if bad else 0
