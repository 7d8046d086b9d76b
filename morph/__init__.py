"""morph: neuron morphology reconstruction and analysis.

Trace biocytin-filled neurons from 3-D stacks, measure them with the Allen Cell Types
feature set (plus axon-initial-segment features), compare tracings, and view them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from morph.errors import MorphError, MorphologyError, NoNeuronError, StackError, SWCError, TracingError
from morph.io import Stack, read_stack, read_swc, validate_swc, write_stack, write_swc
from morph.morphology import Morphology

__all__ = [
    "MorphError",
    "Morphology",
    "MorphologyError",
    "NoNeuronError",
    "SWCError",
    "Stack",
    "StackError",
    "TracingError",
    "__version__",
    "read_stack",
    "read_swc",
    "validate_swc",
    "write_stack",
    "write_swc",
]
