"""What the tracing benchmarks share: the six synthetic brightfield stacks of ``trace.py``
(also the ``bench`` group of ``trace_accuracy.py``) and how an Allen reconstruction is cut
for rendering."""

from __future__ import annotations

from pathlib import Path

# synthetic brightfield stacks: (cell, render seed); a cell is an Allen reconstruction (file
# name) or a generated one (("pyramidal" | "aspiny", generator seed))
SYNTH = {
    "SYN_allen": ("skk_upright_606271263.swc", 1),
    "SYN_allen2": ("bmtk_Pvalb_469628681_m.swc", 2),
    "SYN_gen": (("pyramidal", 7), 1),
    "SYN_gen11": (("pyramidal", 11), 3),
    "SYN_asp3": (("aspiny", 3), 2),
    "SYN_asp5": (("aspiny", 5), 4),
}


def allen_cell(path: Path, axon_um: float = 100.0):
    """An Allen reconstruction with its dendrites, soma and the first ``axon_um`` of axon."""
    from morph.io import read_swc

    m = read_swc(path)
    ax = m.types == 2
    if ax.any():
        start = m.path_distance[ax].min()
        m = m.take(~ax | (m.path_distance <= start + axon_um))
    return m
