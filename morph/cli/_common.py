"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from morph.errors import MorphError


def numbers(text: str, names: str) -> tuple[float, ...]:
    """Parse as many finite numbers as ``names`` (``"X,Y,Z"``) holds, commas or spaces
    between them."""
    n = len(names.split(","))
    try:
        vals = tuple(float(p) for p in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {names} numbers, got {text!r}") from None
    if len(vals) != n:
        raise argparse.ArgumentTypeError(f"expected {n} numbers {names}, got {len(vals)} in {text!r}")
    if not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"expected finite numbers {names}, got {text!r}")
    return vals


def xyz(text: str) -> tuple[float, float, float]:
    """Parse ``X,Y,Z`` (commas or spaces)."""
    return numbers(text, "X,Y,Z")  # type: ignore[return-value]


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_voxel(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--voxel",
        nargs=3,
        type=positive_float,
        metavar=("X", "Y", "Z"),
        help="voxel size in micrometres (overrides the file's metadata)",
    )


def whole_number(text: str, *, minimum: int = 0, what: str = "a whole number") -> int:
    """Parse a whole number of at least ``minimum``."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r} (the least is {minimum})")
    return v


def channel(text: str) -> int | str:
    """Parse ``--channel``: a 0-based channel index, or ``mean``."""
    t = text.strip().lower()
    return "mean" if t == "mean" else whole_number(t, what="a channel index (0, 1, ...) or 'mean'")


def add_channel(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--channel`` and ``--series``: which image of a stack file to read."""
    p.add_argument(
        "--channel",
        type=channel,
        metavar="N|mean",
        help="for a multi-channel or RGB stack: the channel to use (0-based), or 'mean' for the mean of the "
        "channels (an RGB brightfield image from a colour camera); morph info shows each channel",
    )
    p.add_argument(
        "--series",
        type=lambda t: whole_number(t, what="an image series index (0, 1, ...)"),
        metavar="N",
        help="for a TIFF holding several image series (positions, tiles, acquisitions): the one to use "
        "(0-based; default the first); morph info lists them",
    )


def output_file(text: str) -> Path:
    """argparse type of an output file's name: a name ending with a path separator is a
    folder (``Path`` would drop the separator, and the folder's name become a file)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"'{text}' names a folder: give a file name")
    return Path(text)


def check_swc_output(path: Path) -> None:
    """Refuse an output reconstruction not named ``.swc`` (a stack's name given by mistake
    would receive SWC text)."""
    if Path(path).suffix.lower() != ".swc":
        raise MorphError(f"the output is an SWC reconstruction: its name must end with .swc, not "
                         f"{Path(path).suffix or 'nothing'}", file=path, hint="name it CELL.swc")


def add_output(p: argparse.ArgumentParser, *, required: bool = True, help: str = "output file") -> None:
    p.add_argument("-o", "--output", required=required, type=output_file, help=help)
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")


def need_files(paths: list[Path]) -> None:
    for p in paths:
        if not Path(p).exists():
            raise MorphError("file not found", file=p, hint="check the path")


def is_stack_path(p: Path) -> bool:
    """Whether ``p`` names an image stack rather than a reconstruction: a folder, a stack
    suffix, or a microscope vendor's format (which the stack reader then names)."""
    from morph.io.stack import MICROSCOPE_FORMATS, STACK_SUFFIXES

    suffix = Path(p).suffix.lower()
    return Path(p).is_dir() or suffix in STACK_SUFFIXES or suffix in MICROSCOPE_FORMATS


_SIZE_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def memory_size(text: str) -> int:
    """Parse a memory size such as ``2GB``, ``500MiB`` or ``1e9`` into bytes."""
    import re

    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    try:
        value = float(m.group(1)) * _SIZE_UNITS[unit] if m else float("nan")
    except (ValueError, KeyError):
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a size like 2GB or 500MiB, got {text!r}")
    return int(value)
