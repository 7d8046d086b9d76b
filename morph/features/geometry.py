"""Geometry features: extent, bias, soma percentile, coordinate moments, depth overlap.

Axes follow the file: x, y, z, with y the cortical depth axis (pia up) for upright Allen
cells; ``bias`` and ``soma_percentile`` fold x and z (left/right carries no meaning).
"""

from __future__ import annotations

import numpy as np

from morph.errors import MorphError
from morph.features._context import Compartment, Context
from morph.features.registry import NotApplicable, feature

XYZ = ("x", "y", "z")


@feature(
    "extent",
    family="geometry",
    dims=XYZ,
    allen="width/height/depth (skeleton_keys extent)",
    definition="size of the compartment's nodes along each axis: max - min (x: width, y: height, z: depth)",
)
def extent(ctx: Context, comp: Compartment) -> dict[str, float]:
    comp.require()
    _, lo, hi = ctx.coords(comp)
    e = hi - lo
    return dict(zip(XYZ, e.tolist()))


@feature(
    "bias",
    family="geometry",
    dims=XYZ,
    allen="bias_xyz (skeleton_keys bias)",
    definition="reach beyond the soma on the + side minus reach on the - side, per axis "
    "(max(hi,0) + min(lo,0) of soma-relative coordinates); absolute value for x and z",
)
def bias(ctx: Context, comp: Compartment) -> dict[str, float]:
    comp.require()
    ctx.require_soma()
    _, lo, hi = ctx.coords(comp)
    c = ctx.soma_center
    b = np.maximum(hi - c, 0.0) + np.minimum(lo - c, 0.0)
    b[[0, 2]] = np.abs(b[[0, 2]])
    return dict(zip(XYZ, b.tolist()))


@feature(
    "soma_percentile",
    family="geometry",
    dims=XYZ,
    allen="soma_percentile",
    definition="fraction of the compartment's nodes with a smaller coordinate than the soma centre; x and "
    "z folded to [0, 0.5] (1 - f when f > 0.5)",
)
def soma_percentile(ctx: Context, comp: Compartment) -> dict[str, float]:
    comp.require()
    ctx.require_soma()
    f = (ctx.coords(comp)[0] < ctx.soma_center).mean(axis=0)
    for k in (0, 2):
        if f[k] > 0.5:
            f[k] = 1.0 - f[k]
    return dict(zip(XYZ, f.tolist()))


_MOMENT_DIMS = tuple(f"{s}_{a}" for s in ("mean", "std", "var", "skew", "kurtosis") for a in XYZ)


def _moments(pts: np.ndarray, what: str, comp: Compartment) -> dict[str, float]:
    if pts.shape[0] == 0:
        raise NotApplicable(f"the {comp.name} has no {what}")
    mean = pts.mean(axis=0)
    d = pts - mean
    d2 = d * d
    n = pts.shape[0]
    # central moments without temporaries for the 3rd and 4th powers
    m2 = d2.sum(axis=0) / n
    m3 = np.einsum("ij,ij->j", d2, d) / n
    m4 = np.einsum("ij,ij->j", d2, d2) / n
    # scipy.stats.describe, as neuron_morphology: sample variance, biased skew and kurtosis
    var = m2 * n / (n - 1) if n > 1 else np.full(3, np.nan)
    std = np.sqrt(var)
    ok = m2 > 0
    safe = np.where(ok, m2, 1.0)
    skew = np.where(ok, m3 / safe**1.5, np.nan)
    kurt = np.where(ok, m4 / safe**2 - 3.0, np.nan)
    vals = np.concatenate([mean, std, var, skew, kurt])
    out: dict = dict(zip(_MOMENT_DIMS, vals.tolist()))
    out["_reasons"] = {
        f"{s}_{a}": f"the {comp.name} {what} do not spread along {a}: zero variance"
        for s in ("skew", "kurtosis")
        for a, v in zip(XYZ, m2)
        if not v > 0
    }
    if n < 2:
        out["_reasons"].update({f"{s}_{a}": f"the {comp.name} has a single {what[:-1]}" for s in ("std", "var") for a in XYZ})
    return out


def _rel(ctx: Context, idx: np.ndarray) -> np.ndarray:
    return ctx.m.xyz[idx]


_MOMENT_DEF = (
    "mean, standard deviation, variance (sample, n-1), skewness and excess kurtosis (biased) of the "
    "coordinates (file frame) of the compartment's {}, as scipy.stats.describe in neuron_morphology"
)


@feature("node_moments", family="geometry", dims=_MOMENT_DIMS, allen="moments (node)", definition=_MOMENT_DEF.format("nodes"))
def node_moments(ctx: Context, comp: Compartment) -> dict[str, float]:
    return _moments(ctx.coords(comp)[0], "nodes", comp)


@feature("tip_moments", family="geometry", dims=_MOMENT_DIMS, allen="moments (tip)", definition=_MOMENT_DEF.format("tips"))
def tip_moments(ctx: Context, comp: Compartment) -> dict[str, float]:
    idx = comp.idx[ctx.m.n_children[comp.idx] == 0]
    return _moments(_rel(ctx, idx), "tips", comp)


@feature(
    "bifurcation_moments",
    family="geometry",
    dims=_MOMENT_DIMS,
    allen="moments (bifurcation)",
    definition=_MOMENT_DEF.format("branch points (2+ children)"),
)
def bifurcation_moments(ctx: Context, comp: Compartment) -> dict[str, float]:
    idx = comp.idx[ctx.m.n_children[comp.idx] >= 2]
    return _moments(_rel(ctx, idx), "branch points", comp)


@feature(
    "compartment_moments",
    family="geometry",
    dims=_MOMENT_DIMS,
    allen="moments (compartment)",
    definition=_MOMENT_DEF.format("edge midpoints (edges with both ends in the compartment)"),
)
def compartment_moments(ctx: Context, comp: Compartment) -> dict[str, float]:
    m = ctx.m
    e = np.flatnonzero(comp.inner)
    mid = 0.5 * (m.xyz[e] + m.xyz[m.parent[e]])
    return _moments(mid, "edges", comp)


_OVERLAP_OTHERS = ("axon", "basal_dendrite", "apical_dendrite")
MAX_OVERLAP_BINS = 1_000_000
"""Most depth bins the ``frac`` features draw (``overlap_bin_width`` too small is refused)."""
_OVERLAP_DIMS = tuple(f"{k}_{o}" for o in _OVERLAP_OTHERS for k in ("above", "intersect", "below"))


def depth_profile(ctx: Context, comp: Compartment, bin_width: float, lo: float, nbins: int) -> np.ndarray:
    """Histogram of the compartment's nodes along -y (depth, pia up), ``nbins`` bins of
    ``bin_width`` from ``lo``."""
    depth = -ctx.m.xyz[comp.idx, 1]
    k = np.floor((depth - lo) / bin_width).astype(np.int64)
    return np.bincount(np.clip(k, 0, nbins - 1), minlength=nbins).astype(np.float64)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """skeleton_keys' overlap_between_compartments on two depth profiles."""
    tot = a.sum()
    if tot == 0:
        return 0.0, 0.0, 0.0
    inter = (a > 0) & (b > 0)
    if not inter.any():
        if np.median(np.flatnonzero(a > 0)) < np.median(np.flatnonzero(b > 0)):
            return 1.0, 0.0, 0.0
        return 0.0, 0.0, 1.0
    upper = int(np.argmax(inter))
    lower = len(inter) - int(np.argmax(inter[::-1]))
    return (
        float(a[:upper].sum() / tot),
        float(a[upper : lower + 1].sum() / tot),
        float(a[lower + 1 :].sum() / tot),
    )


@feature(
    "frac",
    family="geometry",
    dims=_OVERLAP_DIMS,
    allen="frac_above/intersect/below_<other> (skeleton_keys overlap_between_compartments)",
    options=("overlap_bin_width",),
    definition="fractions of the compartment's node depth histogram (along -y, bins of overlap_bin_width "
    "um, default 5) above, within and below the depth range shared with another compartment",
)
def frac(ctx: Context, comp: Compartment, overlap_bin_width: float = 5.0) -> dict[str, float]:
    comp.require()
    m = ctx.m
    depth = -m.xyz[~m.soma_mask, 1] if (~m.soma_mask).any() else -m.xyz[:, 1]
    with np.errstate(over="ignore", invalid="ignore"):  # a tiny width: refused just below
        lo = float(np.floor(depth.min() / overlap_bin_width) * overlap_bin_width)
        bins = float(np.ceil((depth.max() - lo) / overlap_bin_width)) + 1
    if not bins <= MAX_OVERLAP_BINS:
        span = float(depth.max() - depth.min())
        raise MorphError(
            f"overlap_bin_width = {overlap_bin_width:.3g} um makes {bins:.3g} depth bins over the cell's "
            f"{span:.3g} um (at most {MAX_OVERLAP_BINS})",
            file=m.source,
            hint=f"give an overlap_bin_width of at least {span / (MAX_OVERLAP_BINS - 2):.3g} um (Allen: 5)",
        )
    nbins = int(bins)
    a = depth_profile(ctx, comp, overlap_bin_width, lo, nbins)
    out: dict = {"_reasons": {}}
    for other in _OVERLAP_OTHERS:
        oc = ctx.comp(other)
        if other == comp.name or oc.n == 0 or set(oc.types) & set(comp.types):
            vals = (np.nan, np.nan, np.nan)
            why = f"the cell has no {other} nodes" if oc.n == 0 else f"the {comp.name} contains the {other}"
            for k in ("above", "intersect", "below"):
                out["_reasons"][f"{k}_{other}"] = why
        else:
            vals = _overlap(a, depth_profile(ctx, oc, overlap_bin_width, lo, nbins))
        for k, v in zip(("above", "intersect", "below"), vals):
            out[f"{k}_{other}"] = v
    return out
