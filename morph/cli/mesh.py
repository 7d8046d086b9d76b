"""``morph mesh``: a surface mesh of a reconstruction (PLY, STL, OBJ, GLB, OFF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from morph.cli._common import add_output, need_files, positive_float


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "mesh",
        parents=[common],
        help="surface mesh of a reconstruction (frusta, or one watertight body)",
        description="Build a triangle mesh with trimesh: one closed frustum per segment (fast), or with "
        "--watertight a single closed surface (boolean union with manifold3d, or voxelisation and "
        "marching cubes). Prints the mesh's area and volume next to the analytic frustum sums "
        "(total_surface_area / total_volume).",
    )
    p.add_argument("swc", type=Path, help="reconstruction (SWC, micrometres)")
    add_output(p, help="mesh file: .ply .stl .obj .glb or .off")
    p.add_argument("--watertight", action="store_true", help="one closed 2-manifold surface")
    p.add_argument(
        "--method", choices=("union", "voxel"), default="union", help="watertight method (default union)"
    )
    p.add_argument("--sides", type=int, default=16, help="polygon sides around each segment (default 16)")
    p.add_argument("--pitch", type=positive_float, help="grid step in micrometres for --method voxel")
    p.add_argument(
        "--no-soma", action="store_true", help="leave out the soma and the soma-to-neurite segments"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from morph import mesh as M
    from morph import progress
    from morph.io import check_output, read_swc

    need_files([args.swc])
    check_output(args.output, force=args.force)
    m = read_swc(args.swc)
    soma = not args.no_soma
    if args.watertight:  # can take a minute on a large cell: show the elapsed time
        with progress.stages([args.method], desc=f"watertight mesh of {len(m)} nodes") as st:
            st.start(args.method)
            mesh = M.watertight_mesh(m, method=args.method, sides=args.sides, pitch=args.pitch, include_soma=soma)
            st.step(args.method)
    else:
        mesh = M.frusta_mesh(m, sides=args.sides, include_soma=soma)
    M.write_mesh(mesh, args.output, force=args.force)
    area, vol = M.analytic_area_volume(m)
    kind = f"watertight ({args.method})" if args.watertight else "frusta"
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
