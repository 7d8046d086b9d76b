"""``morph mesh``: a surface mesh of a reconstruction (PLY, STL, OBJ, GLB, OFF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from morph.cli._common import add_output, need_files, positive_float, whole_number
from morph.errors import MorphError

#: The range of --sides (more sides than this add triangles, not accuracy).
MIN_SIDES, MAX_SIDES = 3, 256
DEFAULT_SIDES = 16


def sides(text: str) -> int:
    """Parse ``--sides``: a whole number from :data:`MIN_SIDES` to :data:`MAX_SIDES`."""
    v = whole_number(text, minimum=MIN_SIDES, what=f"a whole number of sides, {MIN_SIDES} to {MAX_SIDES}")
    if v > MAX_SIDES:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SIDES} sides, got {text!r} (16 or 32 are "
                                         "accurate to about 1 %)")
    return v


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options that do not apply to the mesh asked for."""
    if not args.watertight:
        given = [o for o, v in (("--method", args.method), ("--pitch", args.pitch)) if v is not None]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise MorphError(f"{' and '.join(given)} only {verb} to a watertight mesh (--watertight)",
                             hint=f"add --watertight, or leave {'them' if len(given) > 1 else 'it'} out for the frusta mesh")
        return
    if args.pitch is not None and args.method != "voxel":
        raise MorphError("--pitch only applies to --method voxel", hint="add --method voxel, or leave --pitch out")
    if args.sides is not None and args.method == "voxel":
        raise MorphError("--sides does not apply to --method voxel (it samples spheres on a grid of --pitch)",
                         hint="leave --sides out, or use --method union")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "mesh",
        parents=[common],
        help="surface mesh of a reconstruction (frusta, or one watertight body)",
        description="Build a triangle mesh with trimesh: one closed frustum per segment (fast), or with "
        "--watertight a single closed surface (boolean union with manifold3d, or voxelisation and "
        "marching cubes; --method and --pitch apply only then). Prints the mesh's area and volume next to "
        "the analytic frustum sums (total_surface_area / total_volume).",
    )
    p.add_argument("swc", type=Path, help="reconstruction (SWC, micrometres)")
    add_output(p, help="mesh file: .ply .stl .obj .glb or .off")
    p.add_argument("--watertight", action="store_true", help="one closed 2-manifold surface")
    p.add_argument(
        "--method",
        choices=("union", "voxel"),
        help="watertight method (default union); only with --watertight, refused without it",
    )
    p.add_argument(
        "--sides",
        type=sides,
        help=f"polygon sides around each segment, {MIN_SIDES} to {MAX_SIDES} (default 16); not with --method voxel",
    )
    p.add_argument(
        "--pitch",
        type=positive_float,
        help="grid step in micrometres (default: half the median radius); only with --watertight --method voxel, "
        "refused otherwise",
    )
    p.add_argument(
        "--no-soma", action="store_true", help="leave out the soma and the soma-to-neurite segments"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from morph import mesh as M
    from morph import progress
    from morph.io import check_output, read_swc

    _check_options(args)
    need_files([args.swc])
    check_output(args.output, force=args.force)
    m = read_swc(args.swc)
    soma = not args.no_soma
    method = args.method or "union"
    n_sides = args.sides or DEFAULT_SIDES
    if args.watertight:  # can take a minute on a large cell: show the elapsed time
        with progress.stages([method], desc=f"watertight mesh of {len(m)} nodes") as st:
            st.start(method)
            mesh = M.watertight_mesh(m, method=method, sides=n_sides, pitch=args.pitch, include_soma=soma)
            st.step(method)
    else:
        mesh = M.frusta_mesh(m, sides=n_sides, include_soma=soma)
    M.write_mesh(mesh, args.output, force=args.force)
    area, vol = M.analytic_area_volume(m)
    kind = f"watertight ({method})" if args.watertight else "frusta"
    print(
        f"{args.output}: {kind} mesh, {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, watertight: {mesh.is_watertight}"
    )
    shown = M.lateral_area(mesh) if not args.watertight else float(mesh.area)
    label = "lateral area" if not args.watertight else "area"
    print(
        f"{label} {shown:.1f} um^2 (analytic neurite sum {area:.1f}); volume {float(mesh.volume):.1f} um^3 (analytic {vol:.1f})"
    )
    if soma:
        progress.info(
            "the soma is included in the mesh but not in the analytic sums (use --no-soma to compare)"
        )
    return 0
