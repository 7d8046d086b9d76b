"""Figures of a reconstruction with matplotlib (no display needed): 2-D projections coloured
by compartment with a scale bar (optionally over the stack's projection), the Sholl curve,
the dendrogram, and a one-page cell summary (PNG, SVG or PDF).

Conventions
-----------
* Projections drop one axis: ``xy`` (looking along z), ``xz``, ``yz``; axes are in
  micrometres with equal aspect. Without a stack, y points up; over a stack the image
  convention holds (row 0 at the top), as in image viewers.
* The stack's projection is a maximum-intensity projection for fluorescence and a
  minimum-intensity projection for brightfield (the neuron is the extreme either way),
  drawn with each voxel centred at ``index * voxel_size`` (as :meth:`morph.io.Stack.to_um`).
* Line widths follow the radii (``2 r`` in points at the figure's scale is not meaningful
  across figure sizes, so widths are scaled: ``0.4 + 1.2 * r / median(r)`` points, capped).
* The dendrogram's horizontal axis is the path distance from the soma (from the root when
  there is no soma); each section is a horizontal line at the height of its leaves' mean.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph import _tree
from morph.errors import MorphError
from morph.features.sholl import MAX_SPHERES
from morph.morphology import SOMA, Morphology, type_name

#: Compartment colours, as in the 3-D viewer.
COLORS: dict[int, str] = {0: "#8c9e8c", SOMA: "#555555", 2: "#2673ff", 3: "#e52620", 4: "#cc33cc"}
_CUSTOM = ["#ff9900", "#1acc4d", "#00ccd9", "#f2d91a", "#996633", "#8080ff"]
_PLANES = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}
FIGURE_FORMATS = (".png", ".svg", ".pdf")
#: Resolutions a figure may be saved at, in dots per inch: below the lower bound the
#: labels' fonts cannot be drawn, above the upper one the pixel count is unreasonable (the
#: 11 x 8.5 inch summary page is 13200 x 10200 pixels at 1200 dpi).
DPI_RANGE = (30, 1200)
#: Most Sholl radii a figure draws (the number is the farthest node's distance from the
#: centre divided by the step): the bound of the Sholl analysis itself.
MAX_SHOLL_RADII = MAX_SPHERES


def load_morphology(
    path: str | os.PathLike[str], *, swc_units: str = "um", voxel_size: Sequence[float] | None = None
) -> Morphology:
    """Read an SWC file and bring it to micrometres (used by ``morph plot`` and ``morph view``).

    ``swc_units="voxel"`` (or a ``# units: voxel`` header) means the coordinates are voxel
    indices (x column, y row, z slice) to be scaled by ``voxel_size``.
    """
    from morph.io import read_swc

    m = read_swc(path)
    if swc_units == "voxel" or m.units == "voxel":
        vs = voxel_size or m.voxel_size
        if vs is None:
            raise MorphError(
                "the SWC is in voxel units but no voxel size is known",
                file=path,
                hint="give --voxel X Y Z or a --stack with a voxel size",
            )
        m = Morphology(
            m.xyz,
            m.radius,
            m.types,
            m.parent,
            m.ids,
            name=m.name,
            source=m.source,
            units="voxel",
            header=m.header,
        ).to_micrometres(vs)
    return m


def type_color(t: int) -> str:
    """Colour of an SWC type."""
    t = int(t)
    return COLORS.get(t, _CUSTOM[(t - 5) % len(_CUSTOM)])


def _new_axes(ax: Any | None, size: tuple[float, float] = (6, 6)) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.add_subplot(1, 1, 1)


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``target`` (at least 10^k)."""
    if not target > 0:
        return 1.0
    k = 10.0 ** np.floor(np.log10(target))
    return max([c * k for c in (1, 2, 5) if c * k <= target] or [k])


def add_scale_bar(
    ax: Any, length: float | None = None, *, loc: str = "lower right", color: str = "black"
) -> float:
    """A scale bar in micrometres (default: a round length about a fifth of the width)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x0, x1 = ax.get_xlim()
    length = nice_length(abs(x1 - x0) / 5) if length is None else float(length)
    bar = AnchoredSizeBar(
        ax.transData,
        length,
        f"{length:g} µm",
        loc,
        pad=0.4,
        color=color,
        frameon=False,
        size_vertical=0,
        label_top=False,
    )
    ax.add_artist(bar)
    return length


def stack_projection(
    stack: Any, plane: str = "xy", polarity: str | None = None
) -> tuple[NDArray[Any], tuple[float, float, float, float]]:
    """Projection of a stack onto a plane and its extent in micrometres (for ``imshow``)."""
    data = np.asarray(stack.data)
    pol = polarity or stack.polarity()
    axis = {"xy": 0, "xz": 1, "yz": 2}[plane]
    proj = data.min(axis=axis) if pol == "brightfield" else data.max(axis=axis)
    vs = np.asarray(stack.voxel_size, dtype=np.float64)
    z, y, x = data.shape
    n = np.array([x, y, z])
    i, j = _PLANES[plane]
    # rows of proj: (xy) y, (xz) z, (yz) z; columns: x, x, y
    extent = (-0.5 * vs[i], (n[i] - 0.5) * vs[i], (n[j] - 0.5) * vs[j], -0.5 * vs[j])
    return proj, extent


def plot_projection(
    m: Morphology,
    plane: str = "xy",
    *,
    ax: Any | None = None,
    stack: Any | None = None,
    polarity: str | None = None,
    scale_bar: bool = True,
    legend: bool = True,
    invert_y: bool | None = None,
    linewidth: float | str = "radius",
    title: str | None = None,
) -> Any:
    """Draw a 2-D projection coloured by compartment; returns the axes.

    Parameters
    ----------
    m
        Reconstruction (micrometres).
    plane
        ``xy``, ``xz`` or ``yz``.
    ax
        Axes to draw in (default: a new figure).
    stack
        A :class:`morph.io.Stack` whose projection is drawn underneath.
    polarity
        ``brightfield`` or ``fluorescence`` (default: guessed).
    scale_bar, legend
        Draw them.
    invert_y
        Second axis pointing down (default: when a stack is drawn).
    linewidth
        ``"radius"`` (scaled radii) or a width in points.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, Polygon

    if plane not in _PLANES:
        raise MorphError(f"unknown projection plane {plane!r}", hint="use xy, xz or yz")
    if len(m) == 0:
        raise MorphError("the reconstruction has no nodes", file=m.source)
    fig, ax = _new_axes(ax)
    i, j = _PLANES[plane]
    if stack is not None:
        img, extent = stack_projection(stack, plane, polarity)
        lo, hi = np.percentile(img, [0.5, 99.8])
        ax.imshow(
            img,
            cmap="gray",
            extent=extent,
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
            interpolation="nearest",
            zorder=0,
        )
    c = np.flatnonzero(m.parent >= 0)
    c = c[~m.soma_mask[c]]
    p = m.parent[c]
    seg = np.stack([m.xyz[p][:, [i, j]], m.xyz[c][:, [i, j]]], axis=1)
    colors = [type_color(t) for t in m.types[c]]
    if linewidth == "radius":
        med = float(np.median(m.radius[c])) if c.size else 1.0
        lw = np.clip(0.4 + 1.2 * m.radius[c] / max(med, 1e-9), 0.3, 4.0)
    else:
        lw = float(linewidth)
    ax.add_collection(LineCollection(seg, colors=colors, linewidths=lw, capstyle="round", zorder=2))
    s = m.soma_nodes
    if s.size:
        color = type_color(SOMA)
        if m.soma_kind in ("single_point", "three_point"):
            ctr = m.soma_center
            ax.add_patch(Circle((ctr[i], ctr[j]), m.soma_radius, color=color, zorder=3))
        elif s.size >= 3:
            ax.add_patch(Polygon(m.xyz[s][:, [i, j]], closed=True, color=color, zorder=3))
        else:
            ax.scatter(m.xyz[s, i], m.xyz[s, j], s=10, color=color, zorder=3)
    lo3, hi3 = m.bounds()
    r = float(m.radius.max(initial=0))
    lo2, hi2 = lo3[[i, j]] - r, hi3[[i, j]] + r
    if stack is not None:
        lo2 = np.minimum(lo2, [min(extent[0], extent[1]), min(extent[2], extent[3])])
        hi2 = np.maximum(hi2, [max(extent[0], extent[1]), max(extent[2], extent[3])])
    pad = 0.03 * max(float(np.max(hi2 - lo2)), 1.0)
    ax.set_xlim(lo2[0] - pad, hi2[0] + pad)
    ax.set_ylim(lo2[1] - pad, hi2[1] + pad)
    if invert_y if invert_y is not None else stack is not None:
        ax.invert_yaxis()
    ax.set_aspect("equal")
    if stack is not None:
        ax.set_facecolor("0.15")  # white scale bar and legend stay readable around the image
    if scale_bar:
        add_scale_bar(ax, color="white" if stack is not None else "black")
        ax.set_xticks([])
        ax.set_yticks([])
        for sp in ax.spines.values():
            sp.set_visible(False)
    else:
        ax.set_xlabel(f"{plane[0]} (µm)")
        ax.set_ylabel(f"{plane[1]} (µm)")
    if legend:
        types = sorted(set(int(t) for t in m.types))
        handles = [
            Line2D([], [], color=type_color(t), lw=2, label=type_name(t).replace("_", " ")) for t in types
        ]
        leg = ax.legend(
            handles=handles,
            loc="upper right",
            fontsize=7,
            frameon=stack is not None,
            labelcolor="white" if stack is not None else None,
        )
        if stack is not None:  # a dark box keeps the white labels readable over the image
            leg.get_frame().set(facecolor="0.15", edgecolor="none", alpha=0.85)
    if title:
        ax.set_title(title)
    return ax


def sholl_radius_count(m: Morphology, step: float) -> int:
    """How many Sholl radii (``step, 2 step, ...``) reach the node farthest from the soma
    centre (from the first root when there is no soma).

    Parameters
    ----------
    m
        Reconstruction (micrometres).
    step
        Radius step in micrometres.

    Returns
    -------
    int
        The number of radii (at least 1).
    """
    if len(m) == 0:
        return 1
    from morph.features.sholl import sholl_center

    c = sholl_center(m)
    far = float(np.max(np.linalg.norm(m.xyz - c, axis=1), initial=0.0))
    return max(1, int(np.ceil(far / step)))


def check_sholl_step(m: Morphology, step: float, *, option: str = "step") -> None:
    """Refuse a Sholl step that is not positive, or so small for the cell that the curve
    would have more than :data:`MAX_SHOLL_RADII` radii.

    Parameters
    ----------
    m
        Reconstruction (micrometres).
    step
        Radius step in micrometres.
    option
        How the step is named in the message (e.g. ``--step``).

    Raises
    ------
    MorphError
        Naming ``option``, the step, the number of radii and the least step that would do.
    """
    if not (step > 0 and np.isfinite(step)):
        raise MorphError(f"{option} must be a positive number of micrometres, got {step:g}", file=m.source)
    n = sholl_radius_count(m, step)
    if n > MAX_SHOLL_RADII:
        least = step * n / MAX_SHOLL_RADII
        k = 10.0 ** (np.floor(np.log10(least)) - 1)
        least = float(np.ceil(least / k) * k)  # rounded up to two significant digits
        raise MorphError(
            f"{option} {step:g} um would make {n:,} Sholl radii out to the farthest node (at most "
            f"{MAX_SHOLL_RADII:,})",
            file=m.source,
            hint=f"give a larger {option}, e.g. {least:g} um or more",
        )


def plot_sholl(
    m: Morphology, *, step: float = 10.0, ax: Any | None = None, compartments: Sequence[str] | None = None
) -> Any:
    """Sholl curve (intersections per sphere radius) per compartment, from
    :func:`morph.features.sholl`; returns the axes.

    Raises
    ------
    MorphError
        A step that is not positive, or that would make more than :data:`MAX_SHOLL_RADII`
        radii.
    """
    from morph.features import sholl

    check_sholl_step(m, step)
    present = [type_name(t) for t in sorted(set(int(t) for t in m.types)) if t != SOMA]
    comps = (
        list(compartments)
        if compartments is not None
        else (present if len(present) > 1 else ["all_neurites"])
    )
    res = sholl(m, step=step, compartments=tuple(comps))
    fig, ax = _new_axes(ax, (5, 3.5))
    for name in comps:
        t = {"axon": 2, "basal_dendrite": 3, "apical_dendrite": 4}.get(name)
        ax.plot(
            res.radii,
            res.crossings[name],
            color=type_color(t) if t else "black",
            lw=1.5,
            label=name.replace("_", " "),
        )
    ax.set_xlabel("distance from soma (µm)")
    ax.set_ylabel("intersections")
    ax.set_title(f"Sholl ({step:g} µm steps)", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    ax.set_xlim(0, float(res.radii.max(initial=step)))
    ax.set_ylim(bottom=0)
    return ax


def dendrogram_layout(m: Morphology) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per section: ``(x_start, x_end, y)``: path distances from the soma (root) of the
    node the section hangs from and of its last node, and its height (terminal sections
    are ranked in depth-first order; a parent sits at its children's mean height)."""
    sec = m.sections
    pd = m.path_distance.astype(np.float64)
    s = m.soma_nodes
    if s.size:
        mark = np.zeros(len(m), dtype=bool)
        mark[s] = True
        near = _tree.nearest_marked(m.parent, mark)
        base = np.where(near >= 0, pd[np.maximum(near, 0)], pd[_tree.root_of(m.parent)])
    else:
        base = pd[_tree.root_of(m.parent)]
    rel = pd - base
    x0 = np.where(sec.hang >= 0, rel[np.maximum(sec.hang, 0)], rel[sec.start])
    x1 = rel[sec.end]
    n = sec.n
    y = np.zeros(n)
    if n == 0:
        return x0, x1, y
    rank = np.empty(len(m), dtype=np.int64)
    rank[m.dfs_order()] = np.arange(len(m))
    nkids = np.bincount(sec.parent[sec.parent >= 0], minlength=n)
    terminal = np.flatnonzero(nkids == 0)
    y[terminal[np.argsort(rank[sec.start[terminal]])]] = np.arange(terminal.size)
    level = _tree.depth(sec.parent)
    for lev in range(int(level.max()), 0, -1):  # one pass per level of the section tree
        kids = np.flatnonzero(level == lev)
        tot = np.zeros(n)
        np.add.at(tot, sec.parent[kids], y[kids])
        par = np.unique(sec.parent[kids])
        y[par] = tot[par] / nkids[par]
    return x0, x1, y


def plot_dendrogram(m: Morphology, *, ax: Any | None = None) -> Any:
    """Dendrogram: each section a horizontal line over its path-distance range, joined to its
    children by a vertical line at its end; returns the axes."""
    from matplotlib.collections import LineCollection

    x0, x1, y = dendrogram_layout(m)
    sec = m.sections
    fig, ax = _new_axes(ax, (5, 4))
    segs = [((a, c), (b, c)) for a, b, c in zip(x0, x1, y)]
    cols = [type_color(t) for t in sec.type]
    ax.add_collection(LineCollection(segs, colors=cols, linewidths=1.0))
    kids = np.flatnonzero(sec.parent >= 0)
    if kids.size:
        par = sec.parent[kids]
        vsegs = [((x1[p], y[p]), (x1[p], y[k])) for p, k in zip(par, kids)]
        ax.add_collection(
            LineCollection(vsegs, colors=[type_color(t) for t in sec.type[kids]], linewidths=0.6)
        )
    ax.set_xlim(0, float(max(x1.max(initial=1.0), 1e-9)) * 1.02)
    ax.set_ylim(-1, max(float(y.max(initial=0)) + 1, 1))
    ax.set_yticks([])
    ax.set_xlabel("path distance from soma (µm)")
    ax.set_title(f"dendrogram ({sec.n} sections)", fontsize=10)
    for sp in ("top", "right", "left"):
        ax.spines[sp].set_visible(False)
    return ax


#: Numbers shown on the summary page: (label, feature key, format).
SUMMARY_FEATURES = [
    ("total length", "all_neurites.total_length", "{:.0f} µm"),
    ("axon length", "axon.total_length", "{:.0f} µm"),
    ("basal length", "basal_dendrite.total_length", "{:.0f} µm"),
    ("apical length", "apical_dendrite.total_length", "{:.0f} µm"),
    ("surface area", "all_neurites.total_surface_area", "{:.0f} µm²"),
    ("volume", "all_neurites.total_volume", "{:.0f} µm³"),
    ("stems", "all_neurites.num_stems", "{:.0f}"),
    ("bifurcations", "all_neurites.num_bifurcations", "{:.0f}"),
    ("tips", "all_neurites.num_tips", "{:.0f}"),
    ("max branch order", "all_neurites.max_branch_order", "{:.0f}"),
    ("max path distance", "all_neurites.max_path_distance", "{:.0f} µm"),
    ("max Euclidean distance", "all_neurites.max_euclidean_distance", "{:.0f} µm"),
]


def summary_numbers(m: Morphology) -> list[tuple[str, str]]:
    """The key numbers of the summary page, from :func:`morph.features.compute`."""
    from morph.features import compute

    present = {type_name(t) for t in m.types}
    comps = ["all_neurites"] + [c for c in ("axon", "basal_dendrite", "apical_dendrite") if c in present]
    names = sorted({key.split(".", 1)[1] for _, key, _ in SUMMARY_FEATURES})
    vals = compute(m, compartments=comps, features=names)
    rows = []
    for label, key, fmt in SUMMARY_FEATURES:
        v = vals.get(key)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        rows.append((label, fmt.format(v)))
    return rows


def cell_summary(
    m: Morphology, *, stack: Any | None = None, sholl_step: float = 10.0, title: str | None = None
) -> Any:
    """One page: xy, xz and yz projections, the Sholl curve, the dendrogram and key
    features. Returns a :class:`matplotlib.figure.Figure`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8.5), layout="constrained")
    gs = fig.add_gridspec(2, 3, height_ratios=[1.4, 1])
    plot_projection(m, "xy", ax=fig.add_subplot(gs[0, 0]), stack=stack, title="xy")
    plot_projection(m, "xz", ax=fig.add_subplot(gs[0, 1]), stack=stack, legend=False, title="xz")
    plot_projection(m, "yz", ax=fig.add_subplot(gs[0, 2]), stack=stack, legend=False, title="yz")
    plot_sholl(m, step=sholl_step, ax=fig.add_subplot(gs[1, 0]))
    plot_dendrogram(m, ax=fig.add_subplot(gs[1, 1]))
    axt = fig.add_subplot(gs[1, 2])
    axt.axis("off")
    rows = summary_numbers(m)
    axt.table(
        cellText=[[a, b] for a, b in rows],
        colLabels=["feature", "value"],
        loc="upper center",
        cellLoc="left",
        colLoc="left",
    )
    axt.set_title("key features", fontsize=10)
    fig.suptitle(title or m.name or "cell", fontsize=13)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str], *, force: bool = False, dpi: int = 150) -> None:
    """Save a figure (PNG, SVG or PDF by suffix), atomically; refuses to overwrite without
    ``force``, and a ``dpi`` outside :data:`DPI_RANGE`."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from morph.io import atomic_path

    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise MorphError(f"unknown figure format {suffix!r}", file=path, hint="use .png, .svg or .pdf")
    lo, hi = DPI_RANGE
    if isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or not lo <= dpi <= hi:
        raise MorphError(f"the resolution must be a whole number of dpi from {lo} to {hi}, got {dpi!r}",
                         file=path, hint="150 suits a screen, 300-600 a printed page")
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=dpi)
