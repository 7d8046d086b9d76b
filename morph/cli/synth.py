"""``morph synth -o PREFIX``: a synthetic stack with its ground-truth SWC."""

from __future__ import annotations

import argparse
import ast
from dataclasses import fields
from pathlib import Path
from typing import Any

from morph.cli._common import positive_float, whole_number
from morph.errors import MorphError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "synth",
        parents=[common],
        help="make a synthetic brightfield/fluorescence stack and its gold SWC",
        description="Generate a procedural neuron (or take --from CELL.swc) and render it into a 3-D stack. "
        "Writes PREFIX.tif (zlib-compressed ImageJ TIFF with the voxel size) and PREFIX.gold.swc "
        "(the ground truth in the stack's frame, micrometres: voxel (k, j, i) is centred at "
        "(i*vx, j*vy, k*vz)) and, when the preset draws clutter, PREFIX.clutter.swc (other cells' fragments "
        "and debris, in the same frame: what a tracer must leave out; morph compare --clutter). Any generator or renderer parameter can be set with --set NAME=VALUE "
        "(see morph.synth.NeuronParams and RenderParams).",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PREFIX",
        help="output prefix with a name, e.g. out/cell (writes out/cell.tif, out/cell.gold.swc...)",
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    p.add_argument(
        "--seed",
        type=lambda t: whole_number(t, what="a whole number (the random seed)"),
        default=0,
        help="random seed of the cell and of the rendering: a whole number, 0 or more (default 0)",
    )
    p.add_argument("--preset", choices=["easy", "realistic", "hard"], default="realistic", help="difficulty")
    p.add_argument("--modality", choices=["brightfield", "fluorescence"], default="brightfield")
    p.add_argument("--from", dest="source", type=Path, metavar="CELL.swc", help="render this cell instead")
    p.add_argument(
        "--voxel",
        nargs=3,
        type=positive_float,
        metavar=("X", "Y", "Z"),
        help="voxel size in micrometres (default 0.25 0.25 0.75)",
    )
    p.add_argument("--cell-type", choices=["pyramidal", "aspiny"], default="pyramidal")
    p.add_argument("--scale", type=positive_float, help="size factor of the generated cell (default 1)")
    p.add_argument(
        "--axon-length", type=positive_float, metavar="UM", help="main axon length (before --scale)"
    )
    axon = p.add_mutually_exclusive_group()
    axon.add_argument("--axon-on-dendrite", action="store_true", help="the axon leaves a basal dendrite")
    axon.add_argument("--axon-on-soma", action="store_true", help="the axon leaves the soma")
    p.add_argument(
        "--crop",
        nargs=3,
        type=positive_float,
        metavar=("W", "H", "D"),
        help="largest stack extent in micrometres (x, y, z), centred on the soma; the gold is clipped",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any NeuronParams/RenderParams field, e.g. --set haze=0.3 --set n_basal=5,7 --set apical=false "
        "(numbers, ranges LO,HI, True/False; cell_type, modality, voxel_size and crop have their own options)",
    )
    p.set_defaults(func=run)


#: Parameters that have an option of their own (``--set`` would clash with it).
_OWN_OPTION = {"cell_type": "--cell-type", "modality": "--modality"}

#: How ``--set`` spells True and False (besides Python's True and False).
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _parse_sets(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``--set NAME=VALUE`` items as generator and renderer overrides, each checked
    against its field's type and range.

    Raises
    ------
    MorphError
        An item that is not NAME=VALUE, an unknown name, a name with an option of its own,
        or a value of the wrong type or out of range (naming the item given).
    """
    from morph.synth import NeuronParams, RenderParams
    from morph.synth._check import check_field
    from morph.synth.generator import NEURON_LIMITS
    from morph.synth.render import RENDER_LIMITS

    neuron_keys = {f.name for f in fields(NeuronParams)}
    render_keys = {f.name for f in fields(RenderParams)}
    neuron: dict[str, Any] = {}
    render: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise MorphError(f"--set expects NAME=VALUE, got {item!r}", hint="e.g. --set haze=0.3")
        key, text = (s.strip() for s in item.split("=", 1))
        if key in _OWN_OPTION:
            raise MorphError(f"--set {item}: {key} has an option of its own", hint=f"give {_OWN_OPTION[key]}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = text
        if isinstance(value, str) and value.lower() in _BOOLS:
            value = _BOOLS[value.lower()]
        if key in render_keys:
            cls, limits, dest = RenderParams, RENDER_LIMITS, render
        elif key in neuron_keys:
            cls, limits, dest = NeuronParams, NEURON_LIMITS, neuron
        else:
            raise MorphError(
                f"--set {item}: unknown parameter {key!r}",
                hint="see morph.synth.NeuronParams and morph.synth.RenderParams for the names",
            )
        try:
            check_field(cls, key, value, limits)
        except MorphError as e:
            raise MorphError(f"--set {item}: {e.message}", hint=e.hint) from None
        dest[key] = value
    return neuron, render


def _prefix(text: str) -> Path:
    """The output prefix (a ``.tif`` suffix dropped), refused when it has no name."""
    output = Path(text)
    prefix = output.with_suffix("") if output.suffix.lower() in (".tif", ".tiff") else output
    if text.endswith(("/", "\\")) or prefix.name.lower() in ("", ".", "..", ".tif", ".tiff"):
        raise MorphError(
            f"-o {text}: the output must be a prefix with a name, not a folder",
            hint="give a prefix such as out/cell: it writes out/cell.tif and out/cell.gold.swc",
        )
    return prefix


def run(args: argparse.Namespace) -> int:
    from morph.io import check_output, read_swc
    from morph.progress import info
    from morph.synth import generate_neuron, neuron_params, render_params, render_stack

    prefix = _prefix(args.output)
    neuron_kw, render_kw = _parse_sets(args.set)
    tif = prefix.with_name(prefix.name + ".tif")
    swc = prefix.with_name(prefix.name + ".gold.swc")
    check_output(tif, force=args.force)
    check_output(swc, force=args.force)
    from morph.synth.render import clutter_path

    check_output(clutter_path(prefix), force=args.force)

    if args.source is not None:
        if not args.source.exists():
            raise MorphError("file not found", file=args.source, hint="check the path")
        cell = read_swc(args.source)
        if cell.units == "voxel" and cell.voxel_size is None:
            raise MorphError(
                "the cell is in voxel units without a voxel size",
                file=args.source,
                hint="convert it first: morph convert --to-um --voxel X Y Z",
            )
        if neuron_kw or args.scale or args.axon_length or args.axon_on_dendrite or args.axon_on_soma:
            raise MorphError("generator options cannot be combined with --from")
    else:
        if args.scale:
            neuron_kw["scale"] = args.scale
        if args.axon_length:
            neuron_kw["axon_length"] = args.axon_length
        if args.axon_on_dendrite:
            neuron_kw["axon_on_dendrite"] = 1.0
        if args.axon_on_soma:
            neuron_kw["axon_on_dendrite"] = 0.0
        try:
            params = neuron_params(args.cell_type, **neuron_kw)
        except TypeError as e:
            raise MorphError(f"bad generator parameter: {e}") from None
        cell = generate_neuron(args.seed, params)
    if args.voxel:
        render_kw["voxel_size"] = tuple(args.voxel)
    if args.crop:
        render_kw["crop"] = tuple(args.crop)
    render_kw.setdefault("seed", args.seed)
    try:
        rp = render_params(args.preset, modality=args.modality, **render_kw)
    except TypeError as e:
        raise MorphError(f"bad render parameter: {e}") from None
    info(
        f"rendering {len(cell)} nodes ({cell.total_length():.0f} um of cable), {rp.modality}, preset {args.preset}"
    )
    result = render_stack(cell, rp)
    result.save(prefix, force=args.force)
    z, y, x = result.data.shape
    vs = " x ".join(f"{v:g}" for v in result.voxel_size)
    print(f"{tif}: {x} x {y} x {z} voxels of {vs} um ({rp.modality}, {args.preset})")
    print(f"{swc}: {len(result.gold)} nodes, {result.gold.total_length():.1f} um of cable")
    c = result.clutter
    if c.get("debris") or c.get("fragment_segments"):
        print(f"{clutter_path(prefix)}: the clutter (not to be traced): {c['fragment_segments']} fragment segments "
              f"of other cells, {c['debris']} debris balls")
    return 0
