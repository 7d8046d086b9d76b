"""``morph edit IN -o OUT --delete X,Y,Z ...``: proofreading edits at picked points."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from morph.cli._common import add_output, add_voxel, positive_float, xyz
from morph.errors import MorphError

#: option -> (function name in morph.edit, what the help says it does)
EDITS = {
    "delete": ("delete_branch", "remove the branch the point lies on, from the branch point it leaves, and all "
               "beyond it (a false branch, a spur, another cell's fragment)"),
    "cut": ("cut_at", "remove the point's node and all beyond it (a neurite traced too far)"),
    "join": ("join", "move the branch at the first point to hang from the node (or soma) at the second: a "
             "neurite joined to the wrong neighbour, or a piece traced apart"),
    "axon": ("set_axon", "label as axon the neurite the point lies on, from where it starts (every other axon "
             "node becomes basal dendrite)"),
    "apical": ("set_apical", "label as apical dendrite the soma stem the point lies on (every other apical node "
               "becomes basal dendrite)"),
    "dendrite": ("set_dendrite", "label as basal dendrite the axon or apical dendrite the point lies on"),
}


#: The edits that may be given several times (--axon and --apical each relabel every other
#: node of their type, so a second one would undo the first).
REPEATABLE = ("delete", "cut", "join", "dendrite")


class _Edit(argparse.Action):
    """Appends ``(edit, point)`` to ``args.edits`` in the order the options are given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        edits = list(getattr(namespace, "edits", None) or [])
        edits.append((self.dest, values))
        namespace.edits = edits


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "edit",
        parents=[common],
        help="proofread a reconstruction: delete, cut or move branches, set the axon or apical dendrite at picked points",
        description="Edit an SWC at points picked on it (in the viewer, a picked node's position is printed): "
        "each point snaps to the nearest neurite node within --snap-um. Edits apply in the order given; "
        "each is recorded in the output's header.",
    )
    p.add_argument("input", metavar="IN")
    add_output(p)
    for name, (_, text) in EDITS.items():
        again = " (repeatable)" if name in REPEATABLE else " (once: a cell has one)"
        two = {"nargs": 2, "metavar": ("X,Y,Z", "X,Y,Z")} if name == "join" else {"metavar": "X,Y,Z"}
        p.add_argument(f"--{name}", dest=name, action=_Edit, type=xyz, help=text + again, **two)
    p.add_argument("--units", choices=("um", "voxel"), default="um",
                   help="the points' units: micrometres (default), or voxels of the stack the reconstruction was "
                   "traced from (its voxel size from --voxel or the SWC header)")
    add_voxel(p)
    p.add_argument("--snap-um", type=positive_float, default=3.0, metavar="UM",
                   help="how far a point may lie from the nearest neurite node (default 3)")
    p.set_defaults(func=run, edits=None)


def _said(points: list[Any]) -> str:
    """The points of an edit as given on the command line."""
    return " ".join(",".join(f"{v:g}" for v in q) for q in points)


def _check_edits(edits: list[tuple[str, Any]]) -> None:
    """Refuse --axon or --apical given more than once."""
    for name in EDITS:
        if name in REPEATABLE:
            continue
        given = [_said([q]) for n, q in edits if n == name]
        if len(given) > 1:
            kind = "axon" if name == "axon" else "apical dendrite"
            raise MorphError(
                f"--{name} given {len(given)} times ({', '.join(given)}): a cell has one {kind}, and each "
                f"--{name} relabels every other {kind} node as basal dendrite",
                hint=f"give --{name} once, at a point on the {kind}",
            )


def _gone(before: Any, after: Any) -> Any:
    """Positions of the nodes of ``before`` that ``after`` no longer has."""
    left = {tuple(q) for q in np.asarray(after.xyz).tolist()}
    xyz = np.asarray(before.xyz)
    return xyz[[tuple(q) not in left for q in xyz.tolist()]] if len(xyz) else xyz


def run(args: argparse.Namespace) -> int:
    import morph.edit as ed
    from morph.io import read_swc, write_swc
    from morph.io.atomic import check_output
    from morph.progress import info

    if not args.edits:
        raise MorphError("no edit given", hint="give --delete, --cut, --join, --axon, --apical or --dendrite")
    _check_edits(args.edits)
    check_output(args.output, force=args.force)  # before any work and any message
    m = read_swc(args.input)
    vs = None
    if args.units == "voxel":
        vs = args.voxel or m.voxel_size
        if vs is None:
            raise MorphError("voxel size unknown for --units voxel", file=args.input,
                             hint="give --voxel X Y Z: the SWC header has none")
    scale = np.asarray(vs, dtype=np.float64) if vs is not None else 1.0
    notes: list[str] = []
    removed: list[tuple[str, Any]] = []  # (an earlier edit as given, the positions of the nodes it removed)
    for name, given in args.edits:
        points = given if name == "join" else [given]
        um = [np.asarray(q, dtype=np.float64) * scale for q in points]
        said = f"--{name} {_said(points)}"
        before = m
        try:
            m, note = getattr(ed, EDITS[name][0])(m, *um, snap_um=args.snap_um)
        except MorphError as e:
            _removed_by_earlier(before, um, removed, said, args.snap_um)
            raise MorphError(f"{said}: {e.message}", file=e.file, hint=e.hint) from e
        if len(m) < len(before):
            removed.append((said, _gone(before, m)))
        notes.append(note.removeprefix("edit: "))
    write_swc(m, args.output, force=args.force)
    for note in notes:  # once written: a failed edit leaves no note of the ones before it
        info(note)
    print(f"{args.output}: {len(m)} nodes, {m.total_length():.1f} um of cable")
    return 0


def _removed_by_earlier(m: Any, points: list[Any], removed: list[tuple[str, Any]], said: str, snap_um: float) -> None:
    """Raise a clear error when a point of a failed edit is not near any node of ``m`` but
    lies on nodes an earlier edit of the same command removed."""
    live = ~np.asarray(m.soma_mask) if len(m) else np.zeros(0, dtype=bool)
    for q in points:
        near = np.linalg.norm(m.xyz[live] - q, axis=1).min(initial=np.inf)
        if near <= snap_um:
            continue
        for earlier, gone in removed:
            if gone.size and np.linalg.norm(gone - q, axis=1).min() <= snap_um:
                raise MorphError(
                    f"{said}: the point ({q[0]:.1f}, {q[1]:.1f}, {q[2]:.1f}) um lies on a part already removed by "
                    f"the earlier {earlier} of this command",
                    file=m.source or None,
                    hint="leave this edit out, or give it before the one that removes its part",
                )
