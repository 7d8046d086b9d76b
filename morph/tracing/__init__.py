"""Automatic and semi-automatic tracing of neurons in 3-D stacks (see ``docs/tracing.md``).

>>> from morph.tracing import trace, TraceParams   # doctest: +SKIP
>>> cell = trace(read_stack("cell.tif"), soma=(120.0, 80.0, 30.0))  # doctest: +SKIP
"""

from morph.tracing.params import TraceParams
from morph.tracing.pipeline import trace, trace_path

__all__ = ["TraceParams", "trace", "trace_path"]
