"""``morph info FILE...``: a summary of a reconstruction or an image stack."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from morph.cli._common import add_channel, add_voxel, is_stack_path
from morph.errors import MorphError
from morph.io import read_stack, read_swc, stack_channels
from morph.io.stack import folder_stacks, is_zarr_store, series_note
from morph.morphology import Morphology, type_name
from morph.soma_outline import traced_outline


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "info",
        parents=[common],
        help="summarise a reconstruction (SWC) or an image stack (TIFF)",
        description="Nodes, compartments, soma, bounding box and cable length per compartment "
        "of an SWC file; shape, type, voxel size, intensity range and polarity of a stack (of each "
        "channel of a multi-channel or RGB stack, unless --channel picks one).",
    )
    p.add_argument("files", nargs="+", type=str, metavar="FILE",
                   help="SWC files, stacks, folders of 2-D slices (one stack), or folders of stacks or of SWC "
                        "files (each file summarised)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_voxel(p)
    add_channel(p)
    p.set_defaults(func=run)


def _outline(m: Morphology) -> dict:
    """The soma outline a traced cell's header holds (``morph trace``), summarised."""
    o = traced_outline(m)
    if o is None:
        return {}
    major, minor, ang = o.axes()
    return {"outline": {
        "area_um2": round(o.area, 2),
        "perimeter_um": round(o.perimeter, 2),
        "equivalent_radius_um": round(o.equivalent_radius, 3),
        "semi_axes_um": [round(major, 3), round(minor, 3)],
        "major_axis_deg_from_x": round(ang, 1),
    }}


def morphology_summary(m: Morphology) -> dict:
    counts = {type_name(t): c for t, c in m.type_counts().items()}
    lo, hi = m.bounds()
    lengths = {type_name(t): round(m.total_length(t), 3) for t in m.type_counts() if t != 1}
    c = m.soma_center
    return {
        "file": m.source,
        "nodes": len(m),
        "units": m.units,
        "roots": int(m.roots.size),
        "nodes_per_compartment": counts,
        "soma": {
            "kind": m.soma_kind,
            "center": None if np.isnan(c).any() else [round(float(v), 3) for v in c],
            "radius": None if np.isnan(m.soma_radius) else round(m.soma_radius, 3),
            **_outline(m),
        },
        "sections": m.n_sections,
        "branch_points": int(m.branch_points.size),
        "tips": int(m.tips.size),
        "bounding_box": {"min": [round(float(v), 3) for v in lo], "max": [round(float(v), 3) for v in hi]},
        "total_length": round(m.total_length(), 3),
        "length_per_compartment": lengths,
    }


def stack_summary(path: str, voxel: list[float] | None, channel: int | str | None = None,
                  series: int | None = None) -> dict:
    """Shape, type, voxel size, intensity and polarity of a stack; of a multi-channel or RGB
    stack read without ``channel``, those of each channel (``channels``), so that the user
    can pick one."""
    nch, kind = stack_channels(path, series)
    if nch > 1 and channel is None:
        per = [stack_summary(path, voxel, k, series) for k in range(nch)]
        first = per[0]
        out = {k: first[k] for k in ("file", "shape_zyx", "dtype", "voxel_size_um", "voxel_size_origin", "extent_um_xyz")}
        if "image_series" in first:
            out["image_series"] = first["image_series"]
        out["channels"] = f"{nch} ({kind}): give --channel N (0..{nch - 1}) or --channel mean to trace, view or plot it"
        for k, d in enumerate(per):
            out[f"channel {k}"] = {"intensity": d["intensity"], "polarity_guess": d["polarity_guess"],
                                   **({"non_finite_voxels": d["non_finite_voxels"]} if "non_finite_voxels" in d else {})}
        return out
    s = read_stack(path, voxel_size=voxel, channel=channel, series=series)
    data = s.data
    step = max(1, data.size // 4_000_000)
    sample = np.asarray(data).reshape(-1)[::step]
    n_read = sample.size
    if sample.dtype.kind == "f":  # NaN where registration or deconvolution had no data
        sample = sample[np.isfinite(sample)]
    n_bad = n_read - sample.size
    if not sample.size:
        sample = np.full(1, np.nan)
    out = {
        "file": path,
        "shape_zyx": list(s.shape),
        "dtype": str(s.dtype),
        "voxel_size_um": list(s.voxel_size),
        "voxel_size_origin": s.metadata.get("voxel_size_origin"),
        "extent_um_xyz": [round(float(v), 3) for v in s.extent_um],
        "intensity": {
            "min": float(sample.min()),
            "median": float(np.median(sample)),
            "max": float(sample.max()),
        },
        "polarity_guess": s.polarity(),
        "memory_mapped": isinstance(data, np.memmap),
    }
    if s.metadata.get("other_series"):
        out["image_series"] = series_note(s.metadata["other_series"], s.metadata.get("series") or 0)
    if nch > 1:
        out["channel"] = f"{channel} of {nch} ({kind})" if channel != "mean" else f"mean of {nch} ({kind})"
    if n_bad:  # the intensity is that of the finite voxels; tracing refuses such a stack
        out["non_finite_voxels"] = f"{n_bad} NaN or infinite of {n_read} read" + (
            f" (every {step}th voxel)" if step > 1 else "")
    return out


def _print(d: dict, indent: int = 0) -> None:
    for k, v in d.items():
        if isinstance(v, dict):
            print(" " * indent + f"{k}:")
            _print(v, indent + 2)
        else:
            print(" " * indent + f"{k}: {v}")


def _expand(f: str) -> list[str]:
    """A folder of stacks, or of reconstructions (no TIFF in it), stands for its files; any
    other path (a stack, an SWC, a folder of 2-D slices, a zarr store) for itself."""
    p = Path(f)
    if not p.is_dir() or is_zarr_store(p):
        return [f]
    stacks = folder_stacks(p)
    if stacks:
        return [str(s) for s in stacks]
    if not any(q.suffix.lower() in (".tif", ".tiff") for q in p.iterdir()):
        swcs = sorted(q for q in p.iterdir() if q.suffix.lower() == ".swc" and not q.name.startswith("."))
        if swcs:
            return [str(s) for s in swcs]
    return [f]


def run(args: argparse.Namespace) -> int:
    out, failed = [], []
    files = [g for given in args.files for g in _expand(given)]
    for f in files:
        try:
            if is_stack_path(f):
                out.append(stack_summary(f, args.voxel, args.channel, args.series))
            else:
                out.append(morphology_summary(read_swc(f)))
        except MorphError as e:
            if len(files) == 1:
                raise
            failed.append(str(e))  # said after the others' summaries, which are all printed
    if not out:
        for e in failed[:-1]:
            print(f"morph: error: {e}", file=sys.stderr)
        raise MorphError(failed[-1]) if failed else MorphError("nothing to summarise")
    if args.json:
        print(json.dumps(out if len(out) > 1 else out[0], indent=2))
    else:
        for k, d in enumerate(out):
            if k:
                print()
            _print(d)
    for e in failed:
        print(f"morph: error: {e}", file=sys.stderr)
    if failed:
        print(f"morph: {len(failed)} of {len(files)} file(s) could not be read", file=sys.stderr)
        return 2
    return 0
