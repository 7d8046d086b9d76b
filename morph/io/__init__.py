"""Reading and writing reconstructions (SWC) and image stacks (TIFF, OME-TIFF, Zeiss LSM, slices,
OME-Zarr)."""

from morph.io.atomic import atomic_path, atomic_write_text, atomic_write_with, check_distinct, check_output
from morph.io.stack import Stack, read_stack, stack_channels, write_stack
from morph.io.swc import fix_swc, format_swc, read_swc, validate_swc, write_swc

__all__ = [
    "Stack",
    "atomic_path",
    "atomic_write_text",
    "atomic_write_with",
    "check_distinct",
    "check_output",
    "fix_swc",
    "format_swc",
    "read_stack",
    "read_swc",
    "stack_channels",
    "validate_swc",
    "write_stack",
    "write_swc",
]
