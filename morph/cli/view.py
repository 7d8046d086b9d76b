"""``morph view``: the 3-D viewer of reconstructions over their imaging (VTK)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from morph.cli._common import add_channel, add_voxel, need_files

#: Image layers ``--layers`` takes (besides ``none``).
LAYERS = ("mip", "slices", "volume")


def _whole(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from ``lo`` to ``hi``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected {what} from {lo} to {hi}, got {text!r}")
        return v

    return parse


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def _positive(text: str) -> float:
    v = _number(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return v


def _fraction(text: str) -> float:
    v = _number(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return v


def _fps(text: str) -> float:
    from viewers.offscreen import MAX_FPS

    v = _number(text)
    if not 0 < v <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"expected a number of frames per second above 0 and at most {MAX_FPS}, "
                                         f"got {text!r}")
    return v


def _layers(text: str) -> list[str]:
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in (*LAYERS, "none")]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown image layer {bad[0]!r} in {text!r}: use {', '.join(LAYERS)} (comma-separated) or none"
            if bad else "expected image layers (mip, slices, volume, comma-separated) or none"
        )
    return [n for n in names if n != "none"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from viewers.offscreen import MAX_FPS, MAX_FRAMES, MAX_SIDE

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
    p.add_argument(
        "--screenshot", type=Path, metavar="PICTURE", help="render off-screen to this picture (.png or .jpg) and exit"
    )
    p.add_argument(
        "--movie",
        type=Path,
        metavar="OUT",
        help="render a turntable movie off-screen (.gif; .mp4, .mov, .mkv or .avi with imageio-ffmpeg; "
        "or a name without suffix for a new folder of PNG frames) and exit",
    )
    p.add_argument(
        "--frames",
        type=_whole(1, MAX_FRAMES, "a whole number of frames"),
        default=72,
        help=f"movie frames per turn, 1 to {MAX_FRAMES} (default 72)",
    )
    p.add_argument(
        "--fps", type=_fps, default=24, help=f"movie frames per second, above 0 and at most {MAX_FPS} (default 24)"
    )
    p.add_argument(
        "--size",
        nargs=2,
        type=_whole(1, MAX_SIDE, "a whole number of pixels"),
        default=(1024, 768),
        metavar=("W", "H"),
        help=f"picture size in pixels, each side from 1 to {MAX_SIDE} (default 1024 768); videos round it up "
        "to multiples of 16",
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
        type=_layers,
        default="mip",
        help="image layers shown at start, comma-separated from mip,slices,volume (default mip; 'none')",
    )
    p.add_argument(
        "--polarity",
        choices=("fluorescence", "brightfield"),
        help="image polarity (default: guessed); brightfield is inverted for display",
    )
    p.add_argument("--window", type=_positive, help="display window (intensity range shown; above 0)")
    p.add_argument("--level", type=_number, help="display level (centre of the window)")
    p.add_argument("--gamma", type=_positive, default=1.0, help="display gamma, above 0 (default 1)")
    p.add_argument("--opacity", type=_fraction, default=1.0, help="image opacity 0..1 (default 1)")
    p.add_argument("--image-cmap", default="gray", help="image colour map (default gray)")
    p.add_argument("--background", choices=("dark", "light"), default="dark")
    p.add_argument("--no-scale-bar", action="store_true", help="hide the scale bar")
    p.add_argument("--no-axes", action="store_true", help="hide the orientation axes")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing screenshot or movie")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from morph import progress
    from morph.errors import MorphError
    from viewers.app import VIDEO_SUFFIXES, Viewer, build_scene, check_movie_path, video_size, write_movie
    from viewers.offscreen import check_picture_path, check_size
    from viewers.scene import colormap

    if not args.files and args.stack is None:
        raise MorphError("nothing to show", hint="give SWC files, meshes, or a --stack")
    need_files(list(args.files) + ([args.stack] if args.stack else []))
    for option, name in (("--cmap", args.cmap), ("--image-cmap", args.image_cmap)):
        try:
            colormap(name, np.zeros(1))
        except MorphError:
            raise MorphError(
                f"{option} {name!r}: unknown colour map", hint="use a matplotlib colour map name, e.g. gray, viridis, magma"
            ) from None
    headless = args.screenshot is not None or args.movie is not None
    if args.screenshot is not None:
        check_picture_path(args.screenshot, force=args.force)
    if args.movie is not None:
        check_movie_path(args.movie, force=args.force)
    size = check_size(tuple(args.size), what="--size")
    movie_size = size
    if args.movie is not None and args.movie.suffix.lower() in VIDEO_SUFFIXES:
        movie_size = check_size(video_size(size), what="--size")
        if movie_size != size:
            progress.info(
                f"note: the video frames are {movie_size[0]}x{movie_size[1]} pixels (video codecs need sides "
                "that are multiples of 16)"
            )
    scene = build_scene(
        args.files,
        stack=args.stack,
        voxel=args.voxel,
        channel=args.channel,
        series=args.series,
        swc_units=args.swc_units,
        size=size if args.screenshot is not None or args.movie is None else movie_size,
        offscreen=headless,
        color_by=args.color_by,
        cmap=args.cmap,
        mode=args.mode,
        layers=args.layers,
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
        scene.resize(movie_size)
        frames = progress.bar(scene.iter_turntable(args.frames), total=args.frames, desc="rendering", unit="frame")
        write_movie(frames, args.movie, fps=args.fps, force=args.force)
        progress.info(f"wrote {args.movie}")
    if not headless:
        Viewer(scene).start()
    return 0
