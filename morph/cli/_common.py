"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from morph.errors import MorphError


def xyz(text: str) -> tuple[float, float, float]:
    """Parse ``X,Y,Z`` (commas or spaces)."""
    parts = text.replace(",", " ").split()
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z numbers, got {text!r}") from None
    if len(vals) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 numbers X,Y,Z, got {len(vals)} in {text!r}")
    return vals  # type: ignore[return-value]


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0:
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


def add_output(p: argparse.ArgumentParser, *, required: bool = True, help: str = "output file") -> None:
    p.add_argument("-o", "--output", required=required, type=Path, help=help)
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")


def need_files(paths: list[Path]) -> None:
    for p in paths:
        if not Path(p).exists():
            raise MorphError("file not found", file=p, hint="check the path")


def is_stack_path(p: Path) -> bool:
    return Path(p).is_dir() or Path(p).suffix.lower() in (".tif", ".tiff", ".ome.tif", ".zarr")
