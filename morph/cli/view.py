"""``morph view``: the 3-D viewer of reconstructions over their imaging (VTK)."""

from __future__ import annotations

import argparse
from pathlib import Path

from morph.cli._common import add_channel, add_voxel, need_files


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "view",
        parents=[common],
        help="3-D viewer of reconstructions (and meshes) over an image stack",
        description="Open a VTK window with radius-true reconstructions coloured by compartment or by a "
        "per-node value, over the stack they were traced from (projection plane, three slices, volume "
        "rendering). With --screenshot or --movie it renders off-screen (no display needed) and exits. "
        "Press h in the window for the keys.",
    )
    p.add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="SWC files (or meshes: .ply .stl .obj .glb)"
    )
    p.add_argument("--stack", type=Path, help="image stack to show behind the reconstructions")
    add_voxel(p)
    add_channel(p)
    p.add_argument(
        "--swc-units",
        choices=("um", "voxel"),
        default="um",
        help="SWC coordinates are micrometres (default) or voxel indices (scaled by the voxel size)",
    )
    p.add_argument("--screenshot", type=Path, metavar="PNG", help="render off-screen to this PNG and exit")
    p.add_argument(
        "--movie",
        type=Path,
        metavar="OUT",
        help="render a turntable movie off-screen (.gif, .mp4, or a folder of PNG frames) and exit",
    )
    p.add_argument("--frames", type=int, default=72, help="movie frames per turn (default 72)")
    p.add_argument("--fps", type=int, default=24, help="movie frames per second (default 24)")
    p.add_argument(
        "--size",
        nargs=2,
        type=int,
        default=(1024, 768),
        metavar=("W", "H"),
        help="picture size in pixels (default 1024 768)",
    )
    p.add_argument(
        "--camera", choices=("xy", "xz", "yz", "iso"), default="xy", help="camera preset (default xy)"
    )
    p.add_argument(
        "--perspective", action="store_true", help="perspective instead of orthographic projection"
    )
    p.add_argument(
        "--color-by",
        default="compartment",
        choices=("compartment", "branch_order", "strahler", "path_distance", "radius", "depth"),
        help="colouring of the reconstructions (default compartment)",
    )
    p.add_argument("--cmap", default="viridis", help="colour map for --color-by values (matplotlib name)")
    p.add_argument(
        "--mode",
        choices=("auto", "tube", "line"),
        default="auto",
        help="tubes (radius-true), lines, or auto (lines for very large trees)",
    )
    p.add_argument(
        "--layers",
        default="mip",
        help="image layers shown at start, comma-separated from mip,slices,volume (default mip; 'none')",
    )
    p.add_argument(
        "--polarity",
        choices=("fluorescence", "brightfield"),
        help="image polarity (default: guessed); brightfield is inverted for display",
    )
    p.add_argument("--window", type=float, help="display window (intensity range shown)")
    p.add_argument("--level", type=float, help="display level (centre of the window)")
    p.add_argument("--gamma", type=float, default=1.0, help="display gamma (default 1)")
    p.add_argument("--opacity", type=float, default=1.0, help="image opacity 0..1 (default 1)")
    p.add_argument("--image-cmap", default="gray", help="image colour map (default gray)")
    p.add_argument("--background", choices=("dark", "light"), default="dark")
    p.add_argument("--no-scale-bar", action="store_true", help="hide the scale bar")
    p.add_argument("--no-axes", action="store_true", help="hide the orientation axes")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing screenshot or movie")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from morph import progress
    from morph.errors import MorphError
    from morph.io import check_output
    from viewers.app import Viewer, build_scene, check_movie_path, write_movie

    if not args.files and args.stack is None:
        raise MorphError("nothing to show", hint="give SWC files, meshes, or a --stack")
    need_files(list(args.files) + ([args.stack] if args.stack else []))
    headless = args.screenshot is not None or args.movie is not None
    if args.screenshot is not None:
        check_output(args.screenshot, force=args.force)
    if args.movie is not None:
        check_movie_path(args.movie, force=args.force)
    layers = [s.strip() for s in args.layers.split(",") if s.strip() and s.strip() != "none"]
    scene = build_scene(
        args.files,
        stack=args.stack,
        voxel=args.voxel,
        channel=args.channel,
        series=args.series,
        swc_units=args.swc_units,
        size=tuple(args.size),
        offscreen=headless,
        color_by=args.color_by,
        cmap=args.cmap,
        mode=args.mode,
        layers=layers,
        polarity=args.polarity,
        window=args.window,
        level=args.level,
        gamma=args.gamma,
        opacity=args.opacity,
        image_cmap=args.image_cmap,
        background=args.background,
        camera=args.camera,
        perspective=args.perspective,
        scale_bar=not args.no_scale_bar,
        axes=not args.no_axes,
    )
    if args.screenshot is not None:
        scene.save_screenshot(args.screenshot, force=args.force)
        progress.info(f"wrote {args.screenshot}")
    if args.movie is not None:
        frames = scene.turntable(args.frames)
        write_movie(frames, args.movie, fps=args.fps, force=args.force)
        progress.info(f"wrote {args.movie}")
    if not headless:
        Viewer(scene).start()
    return 0
