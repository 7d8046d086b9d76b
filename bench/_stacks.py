"""What the tracing benchmarks share: the six synthetic brightfield stacks of ``trace.py``
(also the ``bench`` group of ``trace_accuracy.py``) and how an Allen reconstruction is cut
for rendering."""

from __future__ import annotations

import argparse
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


def allen_cell(path: Path, axon_um: float = 100.0, cut: str = "cable"):
    """An Allen reconstruction with its dendrites, soma and the first ``axon_um`` of axon.

    ``cut="cable"``: the ``axon_um`` of axonal cable nearest the soma along the tree (axon
    nodes kept in order of path distance while their edges add up to at most ``axon_um``),
    so an axon that branches near the soma keeps its first ``axon_um`` of cable. Pieces not
    joined to the soma (some files hold the axon's disconnected fragments as further roots)
    are left out. ``cut="path"``: every axon node within ``axon_um`` of path distance of the
    axon's start, every collateral and unjoined piece included (up to 2.5 mm of axon on
    these cells; the set that figures marked ``--allen-axon path`` were measured on).
    """
    import numpy as np

    from morph.io import read_swc

    m = read_swc(path)
    if cut == "path":
        ax = m.types == 2
        if ax.any():
            m = m.take(~ax | (m.path_distance <= m.path_distance[ax].min() + axon_um))
        return m
    if cut != "cable":
        raise ValueError(f"unknown axon cut {cut!r}: 'cable' or 'path'")
    soma_tree = np.isin(m.root_index, m.root_index[m.soma_nodes])
    ax = np.flatnonzero((m.types == 2) & soma_tree)
    if ax.size or not soma_tree.all():
        order = ax[np.argsort(m.path_distance[ax], kind="stable")]
        over = order[np.cumsum(m.neurite_edge_length[order]) > axon_um]
        keep = soma_tree.copy()
        keep[over] = False
        m = m.take(keep)
    return m


def add_output_arguments(ap: argparse.ArgumentParser, help: str = "write the table as TSV") -> None:
    """``-o FILE`` and ``--force``: a bench's table, written whole at the end, never over an
    existing file without ``--force``."""
    ap.add_argument("-o", "--output", type=Path, help=help + " (an existing file only with --force)")
    ap.add_argument("--force", action="store_true", help="overwrite the output file")


def check_output_argument(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse ``-o`` before the run (an existing file without ``--force``, a missing folder):
    a long run must not end with nowhere to write."""
    if args.output is None:
        return
    from morph.errors import MorphError
    from morph.io.atomic import check_output

    try:
        check_output(args.output, force=args.force)
    except MorphError as e:
        ap.error(str(e))


def write_output(args: argparse.Namespace, text: str) -> None:
    """The table to ``-o`` (when given), atomically: a whole file or the one that was there."""
    if args.output is not None:
        from morph.io.atomic import atomic_write_text

        atomic_write_text(args.output, text, force=args.force)


def add_stack_arguments(ap: argparse.ArgumentParser, names_help: str) -> None:
    """The arguments the accuracy benches share: the stacks to run (``names``), tracing
    parameters (``--param NAME=VALUE``, repeatable) and the number of processes (``--jobs``)."""
    ap.add_argument("names", nargs="*", help=names_help)
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--jobs", type=int, default=2)
