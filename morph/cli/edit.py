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
        again = " (repeatable)" if name in ("delete", "cut", "join", "dendrite") else ""
        two = {"nargs": 2, "metavar": ("X,Y,Z", "X,Y,Z")} if name == "join" else {"metavar": "X,Y,Z"}
        p.add_argument(f"--{name}", dest=name, action=_Edit, type=xyz, help=text + again, **two)
    p.add_argument("--units", choices=("um", "voxel"), default="um",
                   help="the points' units: micrometres (default), or voxels of the stack the reconstruction was "
                   "traced from (its voxel size from --voxel or the SWC header)")
    add_voxel(p)
    p.add_argument("--snap-um", type=positive_float, default=3.0, metavar="UM",
                   help="how far a point may lie from the nearest neurite node (default 3)")
    p.set_defaults(func=run, edits=None)


def run(args: argparse.Namespace) -> int:
    import morph.edit as ed
    from morph.io import read_swc, write_swc
    from morph.io.atomic import check_output
    from morph.progress import info

    if not args.edits:
        raise MorphError("no edit given", hint="give --delete, --cut, --join, --axon, --apical or --dendrite")
    check_output(args.output, force=args.force)  # before any work
    m = read_swc(args.input)
    vs = None
    if args.units == "voxel":
        vs = args.voxel or m.voxel_size
        if vs is None:
            raise MorphError("voxel size unknown for --units voxel", file=args.input,
                             hint="give --voxel X Y Z: the SWC header has none")
    scale = np.asarray(vs, dtype=np.float64) if vs is not None else 1.0
    for name, given in args.edits:
        points = given if name == "join" else [given]
        um = [np.asarray(q, dtype=np.float64) * scale for q in points]
        try:
            m, note = getattr(ed, EDITS[name][0])(m, *um, snap_um=args.snap_um)
        except MorphError as e:
            said = " ".join(",".join(f"{v:g}" for v in q) for q in points)
            raise MorphError(f"--{name} {said}: {e.message}", file=e.file, hint=e.hint) from e
        info(note.removeprefix("edit: "))
    write_swc(m, args.output, force=args.force)
    print(f"{args.output}: {len(m)} nodes, {m.total_length():.1f} um of cable")
    return 0
