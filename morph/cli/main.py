"""Entry point of the ``morph`` command.

Every subcommand lives in its own module of :mod:`morph.cli` with two functions:
``register(subparsers, common)`` adds its parser (``common`` carries ``-q``/``--debug``)
and sets ``func`` to a ``run(args) -> int`` callable.

Exit codes: 0 success; 1 the command ran but found problems (validation, failed files);
2 the command could not run (bad input, bad arguments); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

from morph import __version__
from morph.errors import MorphError

#: Subcommand modules, in the order the help lists them.
COMMANDS = [
    "info",
    "validate",
    "convert",
    "edit",
    "trace",
    "trace_path",
    "features",
    "compare",
    "synth",
    "view",
    "mesh",
    "plot",
    "batch",
]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a point or box starting with a negative number ("--from -0.2,28.5,28") is a value,
        # not an option: argparse's own test takes only a bare number (-0.2) for one
        self._negative_number_matcher = re.compile(r"^-\d[\d.eE+-]*(?:[, ]+-?[\d.eE+-]+)*$|^-\.\d")

    def error(self, message: str) -> None:  # argparse exits 2 with usage; keep that
        self.print_usage(sys.stderr)
        self.exit(2, f"morph: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given before or after the subcommand, the flag is not reset by the other parser
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or notes on stderr")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors")
    parser = _Parser(
        prog="morph",
        description="Neuron morphology: trace, measure, compare and view reconstructions.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"morph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"morph.cli.{name}").register(sub, common)
    return parser


class Terminated(BaseException):
    """SIGTERM (a job scheduler's or ``kill``'s stop) raised in the main thread, so that the
    temporary files of atomic writes are removed on the way out, as on Ctrl-C."""


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only; the
    previous handler is restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    reached = threading.Event()  # the exception of a SIGTERM reached this frame

    def again() -> None:
        # raised inside a destructor or a library's callback, the exception is printed and
        # swallowed ("Exception ignored in ..."): until it arrives here, signal again
        if not reached.wait(0.5):
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=again, daemon=True).start()
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except Terminated:
        reached.set()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help, --version, or a usage error (already printed)
            return int(e.code or 0)
        args.argv = list(argv)  # the command as given, for the headers of what it writes
        args.quiet = getattr(args, "quiet", False)
        args.debug = getattr(args, "debug", False)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        from morph import progress

        progress.set_quiet(args.quiet)
        with _terminate_cleanly():
            return int(args.func(args) or 0)
    except MorphError as e:
        if debug:
            traceback.print_exc()
        print(f"morph: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("morph: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("morph: terminated (SIGTERM); no partial output was left", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 0
    except MemoryError:
        if debug:
            traceback.print_exc()
        cmd = next((a.replace("-", "_") for a in argv if a.replace("-", "_") in COMMANDS), None)
        if cmd in ("trace", "trace_path"):
            hint = "give --max-memory (for example 4GB) to trace chunk by chunk, or a smaller --roi"
        elif cmd == "batch":
            hint = "run fewer workers at once (--workers), or on a machine with more memory"
        else:
            hint = "check the options that set a step or a size, or use a machine with more memory"
        print(f"morph: error: out of memory ({hint})", file=sys.stderr)
        return 2
    except Exception as e:  # a bug in morph: say so briefly, traceback with --debug
        if debug:
            traceback.print_exc()
        again = "the traceback is above" if debug else "rerun with --debug for the traceback"
        print(f"morph: internal error: {type(e).__name__}: {e} ({again}, and report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
