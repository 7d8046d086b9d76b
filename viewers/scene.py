"""A VTK scene of reconstructions over their imaging, testable off-screen.

Everything is placed in micrometres, in the frame of the reconstruction:

* a node at ``(x, y, z)`` is drawn at ``(x, y, z)``;
* a stack voxel at column ``i``, row ``j``, slice ``k`` is drawn centred at
  ``(i * vx, j * vy, k * vz)`` with ``(vx, vy, vz)`` the stack's voxel size, so anisotropic
  stacks keep their true proportions (the convention of :meth:`morph.io.Stack.to_um`).

Reconstructions are drawn as radius-true tubes: each section (an unbranched run of nodes, see
:mod:`morph.morphology`) is one polyline swept by ``vtkTubeFilter`` with the node radii, so
the tube is a chain of frusta whose ends have the node radii. The edge from the soma to the
first node of a neurite is drawn with the radius of that first node. A one-pixel line is
drawn along every tube so that processes thinner than a pixel stay visible; sections whose
radius stays under :attr:`Scene.tube_min_pixels` pixels at the current zoom are drawn only as
that line (screen-space level of detail, re-chosen when the zoom changes by more than 1.5x). The soma is a
sphere (one-point and three-point somata) or the outline through the soma nodes (contours
and cylinder stacks), filled when the outline is flat.

Colours: by compartment (legend) or by a per-node value (colour bar): branch order, Strahler
order, path distance, radius, or any array given by the caller.

Images: window/level (linear map of ``[level - window/2, level + window/2]`` to ``[0, 1]``),
then gamma (``out = in ** gamma``), then the colour map; brightfield stacks (dark structure
on a bright background) are inverted for display (``1 - in`` before gamma) and their
projection is a *minimum*-intensity projection, so the neuron is bright either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph import _tree
from morph.morphology import APICAL, AXON, BASAL, SOMA, Morphology, type_name
from morph.soma_outline import traced_outline
from viewers.offscreen import ViewerError, capture, check_size, make_render_window

#: Compartment colours (RGB in 0..1): soma grey, axon blue, basal dendrite red, apical
#: dendrite magenta (the usual Allen/NeuroM scheme), undefined grey-green.
COMPARTMENT_COLORS: dict[int, tuple[float, float, float]] = {
    0: (0.55, 0.62, 0.55),
    SOMA: (0.62, 0.62, 0.62),
    AXON: (0.15, 0.45, 1.00),
    BASAL: (0.95, 0.15, 0.12),
    APICAL: (0.85, 0.20, 0.90),
}
_CUSTOM_COLORS = [
    (1.00, 0.60, 0.00),
    (0.10, 0.80, 0.30),
    (0.00, 0.80, 0.85),
    (0.95, 0.85, 0.10),
    (0.60, 0.40, 0.20),
    (0.50, 0.50, 1.00),
]
HIGHLIGHT_COLOR = (1.0, 0.95, 0.2)
BACKGROUNDS = {"dark": (0.06, 0.06, 0.08), "light": (1.0, 1.0, 1.0)}
#: Scalar colourings understood by name (all per node).
SCALARS = ("branch_order", "strahler", "path_distance", "radius", "depth")
#: Above this many segments a reconstruction starts in line mode.
AUTO_LINE_SEGMENTS = 250_000
CAMERA_PRESETS = ("xy", "xz", "yz", "iso")
#: Image layers of a stack (see :meth:`Scene.add_stack`).
IMAGE_LAYERS = ("mip", "slices", "volume")


def check_layers(layers: Sequence[str]) -> list[str]:
    """The image layer names, refused when one is not in :data:`IMAGE_LAYERS`."""
    out = []
    for name in layers:
        if name not in IMAGE_LAYERS:
            raise ViewerError(f"unknown image layer {name!r}", hint="use " + ", ".join(IMAGE_LAYERS))
        out.append(name)
    return out


def check_display(
    *,
    window: float | None = None,
    level: float | None = None,
    gamma: float = 1.0,
    opacity: float = 1.0,
    cmap: str = "gray",
) -> None:
    """Refuse display settings that cannot be shown (see :class:`ImageDisplay`): a window
    that is not a positive number, a level that is not finite, a gamma that is not
    positive, an opacity outside ``[0, 1]``, an unknown colour map."""
    import math

    def num(v: Any) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan

    if window is not None and not (num(window) > 0 and math.isfinite(num(window))):
        raise ViewerError(f"image window {window!r}: must be a positive number", hint="e.g. 200 for 8-bit images")
    if level is not None and not math.isfinite(num(level)):
        raise ViewerError(f"image level {level!r}: must be a finite number")
    if not (num(gamma) > 0 and math.isfinite(num(gamma))):
        raise ViewerError(f"image gamma {gamma!r}: must be a positive number", hint="1 is linear")
    if not 0.0 <= num(opacity) <= 1.0:
        raise ViewerError(f"image opacity {opacity!r}: must be from 0 to 1")
    colormap(cmap, np.zeros(1))


def compartment_color(t: int) -> tuple[float, float, float]:
    """Display colour of an SWC type."""
    t = int(t)
    if t in COMPARTMENT_COLORS:
        return COMPARTMENT_COLORS[t]
    return _CUSTOM_COLORS[(t - 5) % len(_CUSTOM_COLORS)]


# ---------------------------------------------------------------------------- geometry
@dataclass
class Polylines:
    """Sections as polylines: ``points`` in order, ``counts`` points per polyline."""

    points: NDArray[np.float64]
    node: NDArray[np.int64]  # node index of each point
    radius: NDArray[np.float64]
    type: NDArray[np.int64]  # SWC type used for the colour of each point
    counts: NDArray[np.int64]

    @property
    def n_segments(self) -> int:
        return int(np.sum(np.maximum(self.counts - 1, 0)))


def section_polylines(m: Morphology) -> Polylines:
    """One polyline per section (its hanging node first), plus one two-point polyline per
    soma-to-soma edge. Vectorised: one sort of all nodes by (section, depth)."""
    sid = m.section_id
    neur = np.flatnonzero(sid >= 0)
    sec = m.sections
    hs = np.flatnonzero(sec.hang >= 0)
    hang = sec.hang[hs]
    s_all = np.concatenate([sid[neur], hs])
    key = np.concatenate([m.depth[neur], np.full(hs.size, -1, dtype=np.int64)])
    node = np.concatenate([neur, hang])
    order = np.lexsort((key, s_all))
    s_all, node, is_hang = s_all[order], node[order], key[order] < 0
    radius = m.radius[node].astype(np.float64)
    # the soma->first-node edge takes the first node's radius
    first = sec.start[s_all]
    hang_soma = is_hang & m.soma_mask[node]
    radius[hang_soma] = m.radius[first[hang_soma]]
    types = sec.type[s_all]
    counts = np.bincount(s_all, minlength=sec.n)
    # soma-soma edges (contours, cylinder stacks)
    p = m.parent
    se = np.flatnonzero(m.soma_mask & (p >= 0))
    se = se[m.soma_mask[p[se]]]
    if se.size:
        pair = np.stack([p[se], se], axis=1).reshape(-1)
        node = np.concatenate([node, pair])
        radius = np.concatenate([radius, m.radius[pair]])
        types = np.concatenate([types, np.full(pair.size, SOMA)])
        counts = np.concatenate([counts, np.full(se.size, 2)])
    return Polylines(
        m.xyz[node], node.astype(np.int64), radius, types.astype(np.int64), counts.astype(np.int64)
    )


def strahler_order(m: Morphology) -> NDArray[np.int64]:
    """Strahler order per node (terminal sections 1; a section whose children have maximal
    order ``k`` reached by two or more of them gets ``k + 1``, otherwise ``k``). Computed on
    sections, one pass per level of the section tree. Soma nodes get the cell's maximum."""
    sec = m.sections
    out = np.ones(len(m), dtype=np.int64)
    if sec.n == 0:
        return out
    par = sec.parent
    level = _tree.depth(par)
    order = np.ones(sec.n, dtype=np.int64)
    for lev in range(int(level.max()), 0, -1):
        kids = np.flatnonzero(level == lev)
        pk = par[kids]
        best = np.zeros(sec.n, dtype=np.int64)
        np.maximum.at(best, pk, order[kids])
        ties = np.zeros(sec.n, dtype=np.int64)
        np.add.at(ties, pk, (order[kids] == best[pk]).astype(np.int64))
        parents = np.unique(pk)
        order[parents] = np.where(ties[parents] >= 2, best[parents] + 1, best[parents])
    valid = m.section_id >= 0
    out[valid] = order[m.section_id[valid]]
    out[m.soma_mask] = int(order.max())
    return out


def node_scalar(m: Morphology, name: str | NDArray[Any]) -> tuple[NDArray[np.float64], str]:
    """A per-node value by name (see :data:`SCALARS`) or from an array; returns
    ``(values, title)``."""
    if not isinstance(name, str):
        v = np.asarray(name, dtype=np.float64).reshape(-1)
        if v.size != len(m):
            raise ViewerError(f"{v.size} values given to colour {len(m)} nodes")
        return v, "value"
    key = name.lower().replace("-", "_")
    if key == "branch_order":
        return m.branch_order.astype(np.float64), "branch order"
    if key == "strahler":
        return strahler_order(m).astype(np.float64), "Strahler order"
    if key == "path_distance":
        return m.path_distance.astype(np.float64), "path distance (µm)"
    if key == "radius":
        return m.radius.astype(np.float64), "radius (µm)"
    if key == "depth":
        return m.depth.astype(np.float64), "node depth"
    raise ViewerError(f"unknown colouring {name!r}", hint="use compartment, " + ", ".join(SCALARS))


def _shape_sphere(sphere: Any, centre: NDArray[np.float64], radius: float, outline: Any) -> Any:
    """The sphere's polydata with each point's horizontal distance from the centre scaled so
    that the equator follows the outline (interpolated around it); the poles stay at the soma
    radius: a body whose x-y section is the traced outline."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    pts = vtk_to_numpy(sphere.GetPoints().GetData()).astype(np.float64) - centre
    az = np.mod(np.arctan2(pts[:, 1], pts[:, 0]), 2.0 * np.pi)
    a = np.r_[outline.angles, 2.0 * np.pi]
    rr = np.r_[outline.radii, outline.radii[:1]]
    scale = np.interp(az, a, rr) / max(radius, 1e-9)
    pts[:, :2] *= scale[:, None]
    sphere.GetPoints().SetData(_np2vtk(pts + centre))
    sphere.GetPointData().SetNormals(None)  # the sphere's own no longer fit: recomputed below
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals

    nf = vtkPolyDataNormals()
    nf.SetInputData(sphere)
    nf.Update()
    return nf.GetOutput()


def _np2vtk(a: NDArray[Any], name: str | None = None, *, id_type: bool = False) -> Any:
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    if id_type:
        arr = numpy_to_vtkIdTypeArray(np.ascontiguousarray(a, dtype=np.int64), deep=1)
    else:
        arr = numpy_to_vtk(np.ascontiguousarray(a), deep=1)
    if name:
        arr.SetName(name)
    return arr


def polylines_to_vtk(pl: Polylines) -> Any:
    """``vtkPolyData`` with the polylines; point arrays ``radius`` (active scalars),
    ``node`` and ``rgb``."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    pts = vtkPoints()
    pts.SetData(_np2vtk(pl.points.astype(np.float64)))
    offsets = np.zeros(pl.counts.size + 1, dtype=np.int64)
    np.cumsum(pl.counts, out=offsets[1:])
    cells = vtkCellArray()
    cells.SetData(_np2vtk(offsets, id_type=True), _np2vtk(np.arange(pl.points.shape[0]), id_type=True))
    pd = vtkPolyData()
    pd.SetPoints(pts)
    pd.SetLines(cells)
    pd.GetPointData().SetScalars(_np2vtk(pl.radius, "radius"))
    pd.GetPointData().AddArray(_np2vtk(pl.node.astype(np.int64), "node"))
    return pd


def lookup_table(
    cmap: str,
    lo: float,
    hi: float,
    *,
    n: int = 256,
    gamma: float = 1.0,
    invert: bool = False,
    alpha: float = 1.0,
) -> Any:
    """A ``vtkLookupTable`` over ``[lo, hi]``: ``t`` in 0..1, inverted if asked, raised to
    ``gamma``, then mapped through the named matplotlib colour map (``gray`` without
    matplotlib)."""
    from vtkmodules.vtkCommonCore import vtkLookupTable

    t = np.linspace(0.0, 1.0, n)
    if invert:
        t = 1.0 - t
    t = np.clip(t, 0, 1) ** float(gamma)
    rgba = colormap(cmap, t)
    rgba[:, 3] = alpha
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(n)
    lut.SetTable(_np2vtk((rgba * 255).round().astype(np.uint8)))
    lut.SetRange(float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    lut.SetBelowRangeColor(*rgba[0])
    lut.SetAboveRangeColor(*rgba[-1])
    lut.UseBelowRangeColorOn()
    lut.UseAboveRangeColorOn()
    return lut


def colormap(name: str, t: NDArray[np.float64]) -> NDArray[np.float64]:
    """RGBA (0..1) of values ``t`` in 0..1 through a matplotlib colour map."""
    if name in ("gray", "grey"):
        out = np.ones((t.size, 4))
        out[:, :3] = t[:, None]
        return out
    import matplotlib

    try:
        cm = matplotlib.colormaps[name]
    except KeyError:
        raise ViewerError(
            f"unknown colour map {name!r}", hint="use a matplotlib colour map name, e.g. gray, viridis, magma"
        ) from None
    return np.asarray(cm(t), dtype=np.float64)


# ---------------------------------------------------------------------------- neuron layer
@dataclass
class NeuronLayer:
    """The actors of one reconstruction and what is needed to recolour and pick it."""

    morphology: Morphology
    name: str
    polylines: Polylines
    polydata: Any
    tube_filter: Any
    tube_actor: Any
    line_actor: Any
    soma_actor: Any | None
    base_rgb: NDArray[np.uint8]
    mode: str = "tube"
    visible: bool = True
    highlighted: int | None = None
    props: list[Any] = field(default_factory=list)
    #: per-point arrays of the polylines (``rgb``, ``value``), pushed to both polydata
    arrays: dict[str, NDArray[Any]] = field(default_factory=dict)
    #: polylines swept as tubes (sections at least ``tube_threshold`` um thick somewhere)
    tube_polydata: Any = None
    tube_mask: NDArray[np.bool_] | None = None
    tube_threshold: float = -1.0

    @property
    def n_segments(self) -> int:
        return self.polylines.n_segments


@dataclass
class ImageDisplay:
    """How intensities are shown: window/level, gamma, opacity, colour map, inversion."""

    window: float
    level: float
    gamma: float = 1.0
    opacity: float = 1.0
    cmap: str = "gray"
    invert: bool = False

    @property
    def range(self) -> tuple[float, float]:
        return self.level - self.window / 2, self.level + self.window / 2


@dataclass
class PickResult:
    """A picked node."""

    neuron: int
    node: int
    position: NDArray[np.float64]


class Scene:
    """Reconstructions, image layers, overlays and a camera, in one VTK renderer.

    Parameters
    ----------
    size
        Window size in pixels ``(width, height)``.
    offscreen
        Render without a display (screenshots, tests).
    background
        ``"dark"`` or ``"light"``.
    render_window
        Use this VTK render window instead of making one.
    """

    def __init__(
        self,
        size: tuple[int, int] = (1024, 768),
        *,
        offscreen: bool = True,
        background: str = "dark",
        render_window: Any | None = None,
    ) -> None:
        from vtkmodules.vtkRenderingCore import vtkRenderer

        size = check_size(size)
        if background not in BACKGROUNDS:
            raise ViewerError(f"unknown background {background!r}", hint="use " + " or ".join(BACKGROUNDS))
        self.render_window = (
            render_window if render_window is not None else make_render_window(size, offscreen=offscreen)
        )
        self.render_window.SetSize(int(size[0]), int(size[1]))
        self.renderer = vtkRenderer()
        self.render_window.AddRenderer(self.renderer)
        # multisampling multiplies the cost of software OpenGL (llvmpipe) by the sample count
        self.render_window.SetMultiSamples(0)
        self.renderer.AddObserver(
            "StartEvent", lambda *_: None if (self.lod and self._interacting) else self._update_tube_lod()
        )
        self.neurons: list[NeuronLayer] = []
        self.meshes: list[Any] = []
        self.stack: Any | None = None
        self.display: ImageDisplay | None = None
        self.image_props: dict[str, Any] = {}
        self.image_visible: dict[str, bool] = {}
        self.slice_index = [0, 0, 0]
        self._lazy = False
        self.y_down = False
        self.color_by: str | NDArray[Any] = "compartment"
        self.cmap = "viridis"
        self.lod = False
        self._interacting = False
        self.background = background
        self.renderer.SetBackground(*BACKGROUNDS[background])
        self._overlays()
        self.camera_preset = "xy"
        self.marker_actor: Any | None = None

    # ---------------------------------------------------------------- overlays
    def _overlays(self) -> None:
        from vtkmodules.vtkRenderingAnnotation import vtkLegendBoxActor, vtkScalarBarActor
        from vtkmodules.vtkRenderingCore import vtkTextActor

        self.legend = vtkLegendBoxActor()
        self.legend.SetNumberOfEntries(0)
        self.legend.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self.legend.GetPositionCoordinate().SetValue(0.80, 0.80)
        self.legend.GetPosition2Coordinate().SetValue(0.19, 0.18)
        self.legend.BorderOff()
        self.legend.SetPickable(False)
        self.renderer.AddViewProp(self.legend)
        self.scalar_bar = vtkScalarBarActor()
        self.scalar_bar.SetVisibility(False)
        self.scalar_bar.SetNumberOfLabels(5)
        self.scalar_bar.SetOrientationToHorizontal()
        self.scalar_bar.SetWidth(0.4)
        self.scalar_bar.SetHeight(0.09)
        self.scalar_bar.SetPosition(0.3, 0.02)
        self.scalar_bar.SetLabelFormat("%.4g")
        self.scalar_bar.UnconstrainedFontSizeOn()
        self.scalar_bar.GetTitleTextProperty().SetFontSize(14)
        self.scalar_bar.GetLabelTextProperty().SetFontSize(12)
        self.renderer.AddViewProp(self.scalar_bar)
        self.info_text = vtkTextActor()
        self.info_text.GetTextProperty().SetFontSize(14)
        self.info_text.SetPosition(10, 10)
        self.renderer.AddViewProp(self.info_text)
        self.help_text = vtkTextActor()
        self.help_text.GetTextProperty().SetFontSize(14)
        self.help_text.GetTextProperty().SetFontFamilyToCourier()
        self.help_text.GetTextProperty().SetVerticalJustificationToTop()
        self.help_text.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self.help_text.GetPositionCoordinate().SetValue(0.01, 0.98)
        self.help_text.GetTextProperty().SetBackgroundOpacity(0.6)
        self.help_text.SetVisibility(False)
        self.renderer.AddViewProp(self.help_text)
        self.scale_bar: Any | None = None
        self.axes: Any | None = None
        self._text_color()

    def _text_color(self) -> None:
        c = (0.05, 0.05, 0.05) if self.background == "light" else (0.95, 0.95, 0.95)
        bg = BACKGROUNDS[self.background]
        for t in (self.info_text, self.help_text):
            t.GetTextProperty().SetColor(*c)
        self.help_text.GetTextProperty().SetBackgroundColor(*bg)
        self.legend.GetEntryTextProperty().SetColor(*c)
        self.scalar_bar.GetLabelTextProperty().SetColor(*c)
        self.scalar_bar.GetTitleTextProperty().SetColor(*c)
        if self.scale_bar is not None:
            self.scale_bar[0].GetProperty().SetColor(*c)
            self.scale_bar[1].GetTextProperty().SetColor(*c)

    def set_background(self, name: str) -> None:
        """``"dark"`` or ``"light"``."""
        if name not in BACKGROUNDS:
            raise ViewerError(f"unknown background {name!r}", hint="use dark or light")
        self.background = name
        self.renderer.SetBackground(*BACKGROUNDS[name])
        self._text_color()

    def toggle_background(self) -> None:
        self.set_background("light" if self.background == "dark" else "dark")

    def set_help(self, text: str, visible: bool | None = None) -> None:
        self.help_text.SetInput(text)
        if visible is not None:
            self.help_text.SetVisibility(bool(visible))

    def set_info(self, text: str) -> None:
        self.info_text.SetInput(text)

    def show_scale_bar(self, visible: bool = True) -> None:
        """A horizontal scale bar of a round length in micrometres (1, 2 or 5 x 10^k), about
        a fifth of the view wide, bottom right; its length is correct in the focal plane
        (exactly, in orthographic projection)."""
        if self.scale_bar is None:
            from vtkmodules.vtkCommonCore import vtkPoints
            from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
            from vtkmodules.vtkRenderingCore import vtkActor2D, vtkPolyDataMapper2D, vtkTextActor

            pts = vtkPoints()
            pts.SetNumberOfPoints(2)
            lines = vtkCellArray()
            lines.InsertNextCell(2)
            lines.InsertCellPoint(0)
            lines.InsertCellPoint(1)
            pd = vtkPolyData()
            pd.SetPoints(pts)
            pd.SetLines(lines)
            mapper = vtkPolyDataMapper2D()
            mapper.SetInputData(pd)
            bar = vtkActor2D()
            bar.SetMapper(mapper)
            bar.GetProperty().SetLineWidth(4)
            label = vtkTextActor()
            label.GetTextProperty().SetFontSize(14)
            label.GetTextProperty().SetJustificationToCentered()
            self.scale_bar = (bar, label, pd)
            self.renderer.AddViewProp(bar)
            self.renderer.AddViewProp(label)
            self.renderer.AddObserver("StartEvent", lambda *_: self._update_scale_bar())
            self._text_color()
        for a in self.scale_bar[:2]:
            a.SetVisibility(bool(visible))
        self._update_scale_bar()

    def um_per_pixel(self) -> float:
        """Micrometres per pixel in the focal plane."""
        cam = self.renderer.GetActiveCamera()
        h = max(self.render_window.GetSize()[1], 1)
        if cam.GetParallelProjection():
            return 2.0 * cam.GetParallelScale() / h
        return 2.0 * cam.GetDistance() * np.tan(np.radians(cam.GetViewAngle()) / 2) / h

    def _update_scale_bar(self) -> None:
        if self.scale_bar is None or not self.scale_bar[0].GetVisibility():
            return
        bar, label, pd = self.scale_bar
        w, h = self.render_window.GetSize()
        upp = self.um_per_pixel()
        target = 0.2 * w * upp
        k = 10.0 ** np.floor(np.log10(max(target, 1e-9)))
        length = max(c * k for c in (1, 2, 5) if c * k <= target) if target >= k else k
        px = length / upp
        x1 = w - 30
        x0 = x1 - px
        pd.GetPoints().SetPoint(0, x0, 25, 0)
        pd.GetPoints().SetPoint(1, x1, 25, 0)
        pd.GetPoints().Modified()
        label.SetInput(f"{length:g} µm")
        label.SetPosition((x0 + x1) / 2, 32)
        self.scale_bar_um = float(length)
        self.scale_bar_px = (float(x0), float(x1))

    def show_axes(self, visible: bool = True) -> None:
        """An x/y/z orientation triad in the lower-left corner, following the camera."""
        if self.axes is None:
            from vtkmodules.vtkRenderingAnnotation import vtkAxesActor
            from vtkmodules.vtkRenderingCore import vtkRenderer

            ax = vtkAxesActor()
            ax.SetTotalLength(1, 1, 1)
            ax.SetShaftTypeToCylinder()
            ax.SetCylinderRadius(0.04)
            r = vtkRenderer()
            r.SetViewport(0.0, 0.0, 0.16, 0.2)
            r.SetLayer(1)
            r.InteractiveOff()
            r.AddActor(ax)
            self.render_window.SetNumberOfLayers(2)
            self.render_window.AddRenderer(r)
            self.axes = (ax, r)
            self.renderer.AddObserver("StartEvent", lambda *_: self._sync_axes())
            self._text_color()
        self.axes[0].SetVisibility(bool(visible))

    def _sync_axes(self) -> None:
        if self.axes is None:
            return
        cam = self.renderer.GetActiveCamera()
        r = self.axes[1]
        c2 = r.GetActiveCamera()
        d = np.array(cam.GetDirectionOfProjection())
        c2.SetFocalPoint(0.5, 0.5, 0.5)
        c2.SetPosition(*(np.array([0.5, 0.5, 0.5]) - 4 * d))
        c2.SetViewUp(*cam.GetViewUp())
        r.ResetCamera()

    # ---------------------------------------------------------------- neurons
    def add_morphology(
        self, m: Morphology, *, name: str | None = None, mode: str = "auto", sides: int = 8
    ) -> NeuronLayer:
        """Add a reconstruction (micrometres).

        Parameters
        ----------
        m
            The reconstruction; it must have at least one node.
        name
            Label (default ``m.name``).
        mode
            ``"tube"`` (radius-true), ``"line"`` or ``"auto"`` (line above
            :data:`AUTO_LINE_SEGMENTS` segments).
        sides
            Polygon sides of the tubes.
        """
        from vtkmodules.vtkFiltersCore import vtkTubeFilter
        from vtkmodules.vtkFiltersSources import vtkSphereSource
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        if len(m) == 0:
            raise ViewerError("the reconstruction has no nodes", file=m.source, hint="check the SWC file")
        if m.units == "voxel":
            raise ViewerError(
                "the reconstruction is in voxel units",
                file=m.source,
                hint="convert it with its voxel size first (--swc-units voxel --voxel X Y Z)",
            )
        pl = section_polylines(m)
        pd = polylines_to_vtk(pl)
        tube = vtkTubeFilter()
        tube.SetVaryRadiusToVaryRadiusByAbsoluteScalar()
        tube.SetNumberOfSides(int(sides))
        tube.CappingOn()
        tube_mapper = vtkPolyDataMapper()
        tube_mapper.SetInputConnection(tube.GetOutputPort())
        tube_actor = vtkActor()
        tube_actor.SetMapper(tube_mapper)
        line_mapper = vtkPolyDataMapper()
        line_mapper.SetInputData(pd)
        line_actor = vtkActor()
        line_actor.SetMapper(line_mapper)
        line_actor.GetProperty().SetLineWidth(1.0)
        line_actor.GetProperty().LightingOff()
        for a in (tube_actor, line_actor):
            a.GetProperty().SetAmbient(0.25)
            a.GetProperty().SetDiffuse(0.8)
            a.GetProperty().SetSpecular(0.1)
        soma_actor = None
        if m.soma_kind in ("single_point", "three_point") and np.isfinite(m.soma_radius):
            sph = vtkSphereSource()
            sph.SetCenter(*m.soma_center)
            sph.SetRadius(max(float(m.soma_radius), 1e-3))
            sph.SetThetaResolution(32)
            sph.SetPhiResolution(24)
            sm = vtkPolyDataMapper()
            outline = traced_outline(m)
            if outline is None:
                sm.SetInputConnection(sph.GetOutputPort())
            else:
                sph.SetThetaResolution(outline.radii.size)
                sph.Update()
                sm.SetInputData(_shape_sphere(sph.GetOutput(), m.soma_center, float(m.soma_radius), outline))
            soma_actor = vtkActor()
            soma_actor.SetMapper(sm)
            soma_actor.GetProperty().SetColor(*compartment_color(SOMA))
        elif m.soma_kind == "multi_point":
            soma_actor = self._soma_outline(m)
        base = np.array([compartment_color(t) for t in range(0, int(max(pl.type.max(initial=0), 5)) + 1)])
        base_rgb = (base[np.maximum(pl.type, 0)] * 255).round().astype(np.uint8)
        layer = NeuronLayer(
            m,
            name or m.name or f"neuron {len(self.neurons) + 1}",
            pl,
            pd,
            tube,
            tube_actor,
            line_actor,
            soma_actor,
            base_rgb,
        )
        layer.props = [a for a in (tube_actor, line_actor, soma_actor) if a is not None]
        for a in layer.props:
            self.renderer.AddActor(a)
        self.neurons.append(layer)
        self._set_tube_threshold(layer, 0.0)
        if mode == "auto":
            mode = "line" if layer.n_segments > AUTO_LINE_SEGMENTS else "tube"
        self.set_mode(mode, neuron=len(self.neurons) - 1)
        self._apply_colors()
        return layer

    @property
    def stack_is_lazy(self) -> bool:
        """Whether the stack shown was opened lazily (larger than memory, or a zarr store):
        never read whole."""
        return bool(self.stack is not None and self._lazy)

    def replace_morphology(self, k: int, m: Morphology) -> NeuronLayer:
        """Show ``m`` in place of neuron ``k`` (an edited reconstruction): same name, drawing
        mode, visibility and colouring; the highlight is cleared."""
        old = self.neurons[k]
        for a in old.props:
            self.renderer.RemoveActor(a)
        layer = self.add_morphology(m, name=old.name, mode=old.mode)
        self.neurons[k] = self.neurons.pop()
        self.set_neuron_visible(k, old.visible)
        self._apply_colors()
        return layer

    #: Sections whose radius stays below this many pixels at the current zoom (at most two
    #: pixels wide) are drawn as one-pixel lines only, not swept as tubes.
    tube_min_pixels = 1.0

    @staticmethod
    def _push_arrays(layer: NeuronLayer) -> None:
        for pd, mask in ((layer.polydata, None), (layer.tube_polydata, layer.tube_mask)):
            if pd is None:
                continue
            pdata = pd.GetPointData()
            for name in ("rgb", "value"):
                if name in layer.arrays:
                    a = layer.arrays[name]
                    pdata.AddArray(_np2vtk(a if mask is None else a[mask], name))
                elif pdata.HasArray(name):
                    pdata.RemoveArray(name)
            pd.Modified()

    def _set_tube_threshold(self, layer: NeuronLayer, r_min: float) -> None:
        """Sweep tubes only along the sections whose largest radius is at least ``r_min``."""
        pl = layer.polylines
        counts = pl.counts
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        ok = counts > 0
        maxr = np.zeros(counts.size)
        maxr[ok] = np.maximum.reduceat(pl.radius, starts[ok])
        keep = ok & (maxr >= r_min)
        if r_min <= 0 or keep.all():
            mask = None
            pd = layer.polydata
        else:
            mask = np.repeat(keep, counts)
            sub = Polylines(pl.points[mask], pl.node[mask], pl.radius[mask], pl.type[mask], counts[keep])
            pd = polylines_to_vtk(sub)
        layer.tube_mask = mask
        layer.tube_polydata = pd if mask is not None else None
        layer.tube_threshold = float(r_min)
        layer.tube_filter.SetInputData(pd)
        self._push_arrays(layer)

    def _update_tube_lod(self) -> None:
        """Re-select the tube sections when the zoom changed by more than 1.5x."""
        if not self.neurons:
            return
        r_min = self.tube_min_pixels * self.um_per_pixel()
        for layer in self.neurons:
            old = layer.tube_threshold
            if old < 0 or (old == 0 and r_min > 0) or not (old / 1.5 <= r_min <= old * 1.5):
                self._set_tube_threshold(layer, r_min)

    def _soma_outline(self, m: Morphology) -> Any | None:
        """A filled polygon through the soma nodes when they lie in a plane (a contour)."""
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        s = m.soma_nodes
        p = m.xyz[s]
        if s.size < 3:
            return None
        c = p - p.mean(axis=0)
        sv = np.linalg.svd(c, compute_uv=False)
        if sv[0] <= 0 or sv[2] > 0.15 * sv[0]:
            return None  # not flat: drawn by its tubes only
        pts = vtkPoints()
        pts.SetData(_np2vtk(p.astype(np.float64)))
        poly = vtkCellArray()
        poly.SetData(_np2vtk(np.array([0, s.size]), id_type=True), _np2vtk(np.arange(s.size), id_type=True))
        pd = vtkPolyData()
        pd.SetPoints(pts)
        pd.SetPolys(poly)
        from vtkmodules.vtkFiltersCore import vtkTriangleFilter

        tri = vtkTriangleFilter()  # ear-cut triangulation: concave outlines fill correctly
        tri.SetInputData(pd)
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(tri.GetOutputPort())
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*compartment_color(SOMA))
        actor.GetProperty().SetOpacity(0.8)
        return actor

    def set_mode(self, mode: str, *, neuron: int | None = None) -> None:
        """``"tube"`` or ``"line"`` for one neuron (index) or all."""
        if mode not in ("tube", "line"):
            raise ViewerError(f"unknown drawing mode {mode!r}", hint="use tube or line")
        for k, layer in enumerate(self.neurons):
            if neuron is None or k == neuron:
                layer.mode = mode
        self._update_visibility()

    def toggle_mode(self) -> str:
        mode = "line" if all(n.mode == "tube" for n in self.neurons) else "tube"
        self.set_mode(mode)
        return mode

    def set_neuron_visible(self, k: int, visible: bool) -> None:
        self.neurons[k].visible = bool(visible)
        self._update_visibility()

    def _update_visibility(self) -> None:
        for layer in self.neurons:
            tubes = layer.visible and layer.mode == "tube" and not (self.lod and self._interacting)
            layer.tube_actor.SetVisibility(tubes)
            layer.line_actor.SetVisibility(layer.visible)
            layer.line_actor.GetProperty().SetLineWidth(1.0)
            if layer.soma_actor is not None:
                layer.soma_actor.SetVisibility(layer.visible)

    def set_interacting(self, interacting: bool) -> None:
        """Level of detail: while the camera moves (``lod`` on), tubes give way to lines and
        the volume is sampled more coarsely."""
        self._interacting = bool(interacting)
        self._update_visibility()
        if not interacting:
            self._update_tube_lod()
        self._volume_quality()

    #: Volume ray casting: (ray spacing in pixels, step along a ray in voxels), still and
    #: while interacting (level of detail).
    VOLUME_STILL = (1.0, 0.5)
    VOLUME_MOVING = (5.0, 2.5)

    def _volume_quality(self) -> None:
        vol = self.image_props.get("volume")
        if vol is None:
            return
        image_step, ray_step = self.VOLUME_MOVING if (self.lod and self._interacting) else self.VOLUME_STILL
        mapper = vol.GetMapper()
        mapper.SetImageSampleDistance(image_step)
        mapper.SetSampleDistance(ray_step * self._volume_spacing)

    def set_color_by(self, color_by: str | NDArray[Any], *, cmap: str | None = None) -> None:
        """``"compartment"`` or a per-node scalar (a name from :data:`SCALARS` or an array,
        used for every neuron when there is one)."""
        if cmap is not None:
            colormap(cmap, np.zeros(1))  # fail early on an unknown name, whatever the colouring
        if isinstance(color_by, str) and color_by != "compartment":
            key = color_by.lower().replace("-", "_")
            if key not in SCALARS:
                raise ViewerError(f"unknown colouring {color_by!r}", hint="use compartment, " + ", ".join(SCALARS))
        self.color_by = color_by
        if cmap is not None:
            self.cmap = cmap
        self._apply_colors()

    def _apply_colors(self) -> None:
        from vtkmodules.vtkCommonDataModel import vtkPolyData  # noqa: F401

        by_compartment = isinstance(self.color_by, str) and self.color_by == "compartment"
        values: list[NDArray[np.float64]] = []
        title = ""
        if not by_compartment:
            for layer in self.neurons:
                v, title = node_scalar(layer.morphology, self.color_by)
                values.append(v[layer.polylines.node])
        lo = min((float(np.nanmin(v)) for v in values if v.size), default=0.0)
        hi = max((float(np.nanmax(v)) for v in values if v.size), default=1.0)
        lut = lookup_table(self.cmap, lo, hi) if not by_compartment else None
        for k, layer in enumerate(self.neurons):
            rgb = layer.base_rgb.copy()
            if layer.highlighted is not None:
                mask = _tree.subtree_mask(layer.morphology.parent, layer.highlighted)[layer.polylines.node]
                rgb[mask] = (np.array(HIGHLIGHT_COLOR) * 255).round().astype(np.uint8)
            layer.arrays = {"rgb": rgb}
            if not by_compartment:
                layer.arrays["value"] = values[k]
            self._push_arrays(layer)
            for actor in (layer.tube_actor, layer.line_actor):
                mp = actor.GetMapper()
                mp.SetScalarModeToUsePointFieldData()
                mp.ScalarVisibilityOn()
                if by_compartment or layer.highlighted is not None:
                    mp.SelectColorArray("rgb")
                    mp.SetColorModeToDirectScalars()
                else:
                    mp.SelectColorArray("value")
                    mp.SetColorModeToMapScalars()
                    mp.SetLookupTable(lut)
                    mp.UseLookupTableScalarRangeOn()
        self.scalar_bar.SetVisibility(not by_compartment and bool(self.neurons))
        if lut is not None:
            self.scalar_bar.SetLookupTable(lut)
            self.scalar_bar.SetTitle(title)
        self._legend(by_compartment)

    def _legend(self, visible: bool) -> None:
        from vtkmodules.vtkFiltersSources import vtkCubeSource

        present: set[int] = set()
        for layer in self.neurons:
            present |= set(int(t) for t in np.unique(layer.morphology.types))
        types = sorted(present)
        self.legend.SetNumberOfEntries(len(types))
        h = 0.045 * len(types)
        self.legend.GetPositionCoordinate().SetValue(0.80, 0.98 - h)
        self.legend.GetPosition2Coordinate().SetValue(0.19, h)
        cube = vtkCubeSource()
        cube.Update()
        sym = cube.GetOutput()
        for i, t in enumerate(types):
            self.legend.SetEntry(i, sym, type_name(t).replace("_", " "), compartment_color(t))
        self.legend.SetVisibility(visible and bool(types))

    # ---------------------------------------------------------------- picking & measures
    def highlight_subtree(self, neuron: int, node: int | None) -> None:
        """Show the subtree under ``node`` in the highlight colour (``None`` clears)."""
        self.neurons[neuron].highlighted = None if node is None else int(node)
        self._apply_colors()

    def node_info(self, neuron: int, node: int) -> dict[str, Any]:
        """What the viewer says about a node."""
        m = self.neurons[neuron].morphology
        p = int(m.parent[node])
        soma_d = float(m.path_distance[node])
        s = m.soma_nodes
        if s.size:
            anc_mark = np.zeros(len(m), dtype=bool)
            anc_mark[s] = True
            near = _tree.nearest_marked(m.parent, anc_mark)[node]
            soma_d = float(m.path_distance[node] - m.path_distance[near]) if near >= 0 else soma_d
        return {
            "neuron": self.neurons[neuron].name,
            "id": int(m.ids[node]),
            "type": type_name(int(m.types[node])),
            "xyz": tuple(float(v) for v in m.xyz[node]),
            "radius": float(m.radius[node]),
            "parent": int(m.ids[p]) if p >= 0 else -1,
            "path_distance_to_soma": soma_d,
            "branch_order": int(m.branch_order[node]),
        }

    @staticmethod
    def format_info(info: dict[str, Any]) -> str:
        x, y, z = info["xyz"]
        return (
            f"{info['neuron']}  node {info['id']} ({info['type']})  parent {info['parent']}\n"
            f"x {x:.2f}  y {y:.2f}  z {z:.2f} µm   radius {info['radius']:.3f} µm\n"
            f"path distance to soma {info['path_distance_to_soma']:.2f} µm   branch order {info['branch_order']}"
        )

    def measure(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[float, float | None]:
        """Euclidean and path distance (along the tree; ``None`` across neurons or trees)
        between two ``(neuron, node)`` pairs, in micrometres."""
        ma, mb = self.neurons[a[0]].morphology, self.neurons[b[0]].morphology
        eu = float(np.linalg.norm(ma.xyz[a[1]] - mb.xyz[b[1]]))
        if a[0] != b[0]:
            return eu, None
        m = ma
        anc_a = np.zeros(len(m), dtype=bool)
        i = a[1]
        while i >= 0:
            anc_a[i] = True
            i = int(m.parent[i])
        j = b[1]
        while j >= 0 and not anc_a[j]:
            j = int(m.parent[j])
        if j < 0:
            return eu, None
        pd = m.path_distance
        return eu, float(pd[a[1]] + pd[b[1]] - 2 * pd[j])

    def pick(self, x: float, y: float, *, tolerance: float = 0.004) -> PickResult | None:
        """The node under the pixel ``(x, y)`` (origin top-left), or None."""
        from vtkmodules.vtkRenderingCore import vtkCellPicker

        picker = vtkCellPicker()
        picker.SetTolerance(tolerance)
        picker.PickFromListOn()
        owner: dict[str, tuple[int, str]] = {}
        for k, layer in enumerate(self.neurons):
            if not layer.visible:
                continue
            for a, kind in (
                (layer.tube_actor, "tube"),
                (layer.line_actor, "line"),
                (layer.soma_actor, "soma"),
            ):
                if a is not None and a.GetVisibility():
                    picker.AddPickList(a)
                    owner[a.GetAddressAsString("vtkActor")] = (k, kind)
        h = self.render_window.GetSize()[1]
        if not picker.Pick(float(x), float(h - 1 - y), 0.0, self.renderer):
            return None
        actor = picker.GetActor()
        hit = owner.get(actor.GetAddressAsString("vtkActor")) if actor is not None else None
        if hit is None:
            return None
        k, kind = hit
        m = self.neurons[k].morphology
        pos = np.array(picker.GetPickPosition())
        if kind == "soma":
            s = m.soma_nodes
            node = int(s[np.argmin(np.linalg.norm(m.xyz[s] - pos, axis=1))])
        else:
            ds = picker.GetDataSet()
            arr = ds.GetPointData().GetArray("node")
            pid = picker.GetPointId()
            if arr is None or pid < 0:
                return None
            node = int(arr.GetValue(pid))
            # the picked cell's nearest node: compare with the node's neighbours on the tree
            cand = [node, int(m.parent[node])] + list(m.children(node))
            cand = [c for c in cand if c >= 0]
            node = int(cand[int(np.argmin(np.linalg.norm(m.xyz[cand] - pos, axis=1)))])
        return PickResult(k, node, pos)

    # ---------------------------------------------------------------- images
    def add_stack(
        self,
        stack: Any,
        *,
        layers: Sequence[str] = ("mip",),
        polarity: str | None = None,
        window: float | None = None,
        level: float | None = None,
        gamma: float = 1.0,
        opacity: float = 1.0,
        cmap: str = "gray",
        check_overlap: bool = True,
        max_volume_voxels: int = 64_000_000,
    ) -> None:
        """Add an image stack (a :class:`morph.io.Stack`).

        Parameters
        ----------
        layers
            Which of ``"mip"`` (projection plane behind the cell), ``"slices"`` (three
            orthogonal slices) and ``"volume"`` (volume rendering) start visible; all three
            are built on demand and can be toggled with :meth:`toggle_image`.
        polarity
            ``"brightfield"`` or ``"fluorescence"`` (default: guessed from the intensities).
            Brightfield is inverted for display.
        window, level
            Display range (default: 0.5th to 99.9th percentile).
        gamma, opacity, cmap
            See :class:`ImageDisplay`.
        check_overlap
            Refuse a stack whose extent does not overlap the reconstructions.
        max_volume_voxels
            Larger stacks are subsampled (by whole strides) for volume rendering only.
        """
        layers = check_layers(layers)
        check_display(window=window, level=level, gamma=gamma, opacity=opacity, cmap=cmap)
        # a lazy (dask) stack, larger than memory, is never read whole: the projection is a
        # chunked reduction, the slices are single planes read on demand, the volume a
        # strided subsample
        lazy = hasattr(stack.data, "compute")
        data = stack.data if lazy else np.asarray(stack.data)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise ViewerError(
                f"a {data.ndim}-D image cannot be shown as a stack",
                file=stack.path,
                hint="give a single-channel 3-D stack (Z, Y, X)",
            )
        self.stack = stack
        self._data = data
        self._lazy = lazy
        pol = polarity or stack.polarity()
        if lazy:
            sample = np.asarray(stack.sample(), dtype=np.float64).reshape(-1)  # type: ignore[attr-defined]
        else:
            sample = data.reshape(-1)[:: max(1, data.size // 2_000_000)].astype(np.float64)
        lo, hi = np.percentile(sample, [0.5, 99.9])
        if hi <= lo:
            hi = lo + 1.0
        win = float(window) if window is not None else float(hi - lo)
        lev = float(level) if level is not None else float((hi + lo) / 2)
        self.display = ImageDisplay(win, lev, gamma, opacity, cmap, invert=(pol == "brightfield"))
        self.polarity = pol
        self.max_volume_voxels = max_volume_voxels
        self.image_visible = {"mip": False, "slices": False, "volume": False}
        self.image_props = {}
        z, y, x = data.shape
        self.slice_index = [x // 2, y // 2, z // 2]
        if self.neurons and check_overlap:
            self.check_overlap()
        self.y_down = True  # image convention once a stack is shown
        for name in layers:
            self.show_image(name, True)

    def stack_bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Physical box covered by the stack's voxels (voxel centres +- half a voxel)."""
        vs = np.asarray(self.stack.voxel_size, dtype=np.float64)
        z, y, x = self._data.shape
        return -0.5 * vs, (np.array([x, y, z]) - 0.5) * vs

    def check_overlap(self) -> None:
        """Raise :class:`ViewerError` when no reconstruction overlaps the stack."""
        slo, shi = self.stack_bounds()
        for layer in self.neurons:
            lo, hi = layer.morphology.bounds()
            # a flat reconstruction or stack still overlaps when it touches
            if np.all(lo <= shi) and np.all(hi >= slo):
                return
        lo = np.min([n.morphology.bounds()[0] for n in self.neurons], axis=0)
        hi = np.max([n.morphology.bounds()[1] for n in self.neurons], axis=0)
        vs = self.stack.voxel_size
        fmt = lambda a: "(" + ", ".join(f"{v:.4g}" for v in a) + ")"  # noqa: E731
        raise ViewerError(
            f"the stack does not overlap the reconstruction: the stack covers {fmt(slo)} to {fmt(shi)} µm "
            f"at voxel size {fmt(vs)} µm{'' if self.stack.voxel_size_known else ' (assumed: the file gives none)'}, "
            f"the reconstruction spans {fmt(lo)} to {fmt(hi)} µm",
            file=self.stack.path,
            hint="give the stack's voxel size with --voxel X Y Z, or --swc-units voxel if the SWC is in voxel coordinates",
        )

    def _image_data(
        self, data: NDArray[Any], spacing: Sequence[float], origin: Sequence[float] = (0, 0, 0)
    ) -> Any:
        from vtkmodules.vtkCommonDataModel import vtkImageData

        if data.dtype == np.bool_:
            data = data.astype(np.uint8)
        if data.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
            data = data.astype(np.float32)
        img = vtkImageData()
        z, y, x = data.shape
        img.SetDimensions(x, y, z)
        img.SetSpacing(*[float(s) for s in spacing])
        img.SetOrigin(*[float(o) for o in origin])
        img.GetPointData().SetScalars(_np2vtk(np.ascontiguousarray(data).reshape(-1), "intensity"))
        return img

    def _lazy_projection(self) -> NDArray[Any]:
        """The projection of a lazy stack (minimum for brightfield, maximum otherwise), read a
        slab of its chunks at a time, with a progress bar on stderr."""
        from morph import progress

        reduce = np.minimum if self.polarity == "brightfield" else np.maximum
        bounds = np.cumsum((0,) + tuple(self._data.chunks[0]))
        # whole chunks, about 16 MiB at a time
        per_chunk = max(1, int(np.prod(self._data.shape[1:])) * self._data.dtype.itemsize * int(self._data.chunks[0][0]))
        bounds = np.unique(np.r_[bounds[:: max(1, (16 * 2**20) // per_chunk)], bounds[-1]])
        proj = None
        for z0, z1 in progress.bar(list(zip(bounds[:-1], bounds[1:])), desc="projection", unit="slab"):
            part = reduce.reduce(np.asarray(self._data[int(z0) : int(z1)].compute(scheduler="synchronous")), axis=0)
            proj = part if proj is None else reduce(proj, part)
        return proj  # type: ignore[return-value]

    def _plane_image(self, axis: int, index: int) -> Any:
        """One plane of the stack across ``axis`` (0 x, 1 y, 2 z) at ``index``, as image data
        whose extent starts at ``index`` on that axis (so it sits where the whole stack's
        slice would): what a lazy stack shows instead of the whole volume."""
        vs = np.asarray(self.stack.voxel_size, dtype=np.float64)
        sl = [slice(None)] * 3
        sl[2 - axis] = slice(index, index + 1)
        plane = self._data[tuple(sl)]
        if self._lazy:
            plane = plane.compute(scheduler="synchronous")
        img = self._image_data(np.asarray(plane), vs)
        ext = [0, plane.shape[2] - 1, 0, plane.shape[1] - 1, 0, plane.shape[0] - 1]
        ext[2 * axis] = ext[2 * axis + 1] = index
        img.SetExtent(*ext)
        return img

    def _build_image(self, name: str) -> Any:
        from vtkmodules.vtkRenderingCore import vtkImageSlice, vtkImageSliceMapper

        vs = np.asarray(self.stack.voxel_size, dtype=np.float64)
        if name == "mip":
            if self._lazy:
                proj = self._lazy_projection()
            else:
                proj = self._data.min(axis=0) if self.polarity == "brightfield" else self._data.max(axis=0)
            img = self._image_data(proj[None], vs, (0, 0, self._mip_z()))
            mapper = vtkImageSliceMapper()
            mapper.SetInputData(img)
            actor = vtkImageSlice()
            actor.SetMapper(mapper)
            actor.SetPickable(False)
            return actor
        if name == "slices":
            from vtkmodules.vtkRenderingCore import vtkAssembly

            img = None if self._lazy else self._image_data(self._data, vs)
            group = vtkAssembly()
            self._slice_mappers = []
            for axis in range(3):
                mapper = vtkImageSliceMapper()
                mapper.SetInputData(img if img is not None else self._plane_image(axis, self.slice_index[axis]))
                (mapper.SetOrientationToX, mapper.SetOrientationToY, mapper.SetOrientationToZ)[axis]()
                mapper.SetSliceNumber(self.slice_index[axis])
                sl = vtkImageSlice()
                sl.SetMapper(mapper)
                sl.SetPickable(False)
                self._slice_mappers.append((mapper, sl))
                group.AddPart(sl)
            group.SetPickable(False)
            return group
        if name == "volume":
            from vtkmodules.vtkRenderingCore import vtkVolume, vtkVolumeProperty
            from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkOpenGLGPUVolumeRayCastMapper

            data = self._data
            step = 1
            while data[::step, ::step, ::step].size > self.max_volume_voxels:
                step += 1
            sub = data[::step, ::step, ::step]
            img = self._image_data(np.asarray(sub.compute(scheduler="synchronous")) if self._lazy else sub, vs * step)
            mapper = vtkOpenGLGPUVolumeRayCastMapper()
            mapper.SetInputData(img)
            mapper.SetBlendModeToComposite()
            mapper.SetAutoAdjustSampleDistances(False)
            mapper.SetLockSampleDistanceToInputSpacing(False)
            self._volume_spacing = float(np.min(vs * step))
            prop = vtkVolumeProperty()
            prop.SetInterpolationTypeToLinear()
            prop.ShadeOff()
            vol = vtkVolume()
            vol.SetMapper(mapper)
            vol.SetProperty(prop)
            vol.SetPickable(False)
            return vol
        raise ViewerError(f"unknown image layer {name!r}", hint="use mip, slices or volume")

    def _mip_z(self) -> float:
        """The projection plane sits behind everything as seen by the XY camera."""
        slo, shi = self.stack_bounds()
        zs = [slo[2], shi[2]]
        for layer in self.neurons:
            lo, hi = layer.morphology.bounds()
            zs += [lo[2], hi[2]]
        pad = 0.01 * max(float(np.ptp(zs)), 1.0)
        return (max(zs) + pad) if self.y_down else (min(zs) - pad)

    def _apply_display(self) -> None:
        d = self.display
        if d is None:
            return
        lo, hi = d.range
        for name, prop in self.image_props.items():
            if name == "volume":
                self._volume_transfer(prop, d)
                continue
            lut = lookup_table(d.cmap, lo, hi, gamma=d.gamma, invert=d.invert)
            parts = [s for _, s in self._slice_mappers] if name == "slices" else [prop]
            for p in parts:
                ip = p.GetProperty()
                ip.SetLookupTable(lut)
                ip.UseLookupTableScalarRangeOn()
                ip.SetOpacity(d.opacity)
                ip.SetInterpolationTypeToLinear()

    @staticmethod
    def _volume_transfer(vol: Any, d: ImageDisplay) -> None:
        from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
        from vtkmodules.vtkRenderingCore import vtkColorTransferFunction

        lo, hi = d.range
        xs = np.linspace(lo, hi, 32)
        t = np.linspace(0, 1, 32)
        t = (1 - t) if d.invert else t
        t = t**d.gamma
        rgba = colormap(d.cmap, t)
        ctf = vtkColorTransferFunction()
        otf = vtkPiecewiseFunction()
        for x, c, a in zip(xs, rgba, t):
            ctf.AddRGBPoint(float(x), *c[:3])
            otf.AddPoint(float(x), float(a * d.opacity * 0.5))
        vol.GetProperty().SetColor(ctf)
        vol.GetProperty().SetScalarOpacity(otf)

    def show_image(self, name: str, visible: bool = True) -> None:
        """Show or hide an image layer (``mip``, ``slices``, ``volume``)."""
        if self.stack is None:
            raise ViewerError("no stack loaded", hint="give one with --stack")
        check_layers([name])
        if visible and name not in self.image_props:
            prop = self._build_image(name)
            self.image_props[name] = prop
            if name == "volume":
                self.renderer.AddVolume(prop)
                self._volume_quality()
            else:
                self.renderer.AddViewProp(prop)
            self._apply_display()
        if name in self.image_props:
            self.image_props[name].SetVisibility(bool(visible))
        self.image_visible[name] = bool(visible)

    def toggle_image(self, name: str) -> bool:
        self.show_image(name, not self.image_visible.get(name, False))
        return self.image_visible[name]

    def set_display(self, **changes: Any) -> ImageDisplay:
        """Change window, level, gamma, opacity, cmap or invert and redraw the images."""
        if self.display is None:
            raise ViewerError("no stack loaded", hint="give one with --stack")
        for k, v in changes.items():
            if not hasattr(self.display, k):
                raise ViewerError(f"unknown display setting {k!r}")
            setattr(self.display, k, v)
        if "cmap" in changes:
            colormap(self.display.cmap, np.zeros(1))
        self.display.window = max(self.display.window, 1e-6)
        self.display.gamma = float(np.clip(self.display.gamma, 0.05, 20))
        self.display.opacity = float(np.clip(self.display.opacity, 0.0, 1.0))
        self._apply_display()
        return self.display

    def move_slice(self, axis: int, delta: int) -> int:
        """Move the slice across ``axis`` (0 x, 1 y, 2 z) by ``delta`` voxels; returns the
        new index."""
        z, y, x = self._data.shape
        n = (x, y, z)[axis]
        self.slice_index[axis] = int(np.clip(self.slice_index[axis] + delta, 0, n - 1))
        if "slices" in self.image_props:
            mapper = self._slice_mappers[axis][0]
            if self._lazy:  # read the new plane
                mapper.SetInputData(self._plane_image(axis, self.slice_index[axis]))
            mapper.SetSliceNumber(self.slice_index[axis])
        return self.slice_index[axis]

    # ---------------------------------------------------------------- meshes
    def add_mesh(
        self,
        vertices: NDArray[Any],
        faces: NDArray[Any],
        *,
        color: Sequence[float] = (0.8, 0.8, 0.7),
        opacity: float = 1.0,
        name: str | None = None,
    ) -> Any:
        """Show a triangle mesh (micrometres), e.g. from :mod:`morph.mesh`.

        Parameters
        ----------
        vertices, faces
            ``(n, 3)`` coordinates and ``(m, 3)`` vertex indices of the triangles.
        color, opacity
            How the surface is drawn.
        name
            The file the mesh comes from, named in the errors.

        Raises
        ------
        ViewerError
            When the mesh has no vertex or no triangle, or is not triangles.
        """
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        if v.size == 0 or f.size == 0:
            raise ViewerError(
                "the mesh is empty (no triangles)", file=name, hint="check the file, or export the mesh again"
            )
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
            raise ViewerError("the mesh is not made of triangles in 3-D", file=name, hint="triangulate it first")
        if f.min() < 0 or f.max() >= len(v):
            raise ViewerError("the mesh's faces use vertices it does not have", file=name,
                              hint="check the file, or export the mesh again")
        pts = vtkPoints()
        pts.SetData(_np2vtk(v))
        cells = vtkCellArray()
        cells.SetData(
            _np2vtk(np.arange(0, 3 * f.shape[0] + 1, 3), id_type=True), _np2vtk(f.reshape(-1), id_type=True)
        )
        pd = vtkPolyData()
        pd.SetPoints(pts)
        pd.SetPolys(cells)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(pd)
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        actor.GetProperty().SetOpacity(opacity)
        self.renderer.AddActor(actor)
        self.meshes.append(actor)
        return actor

    # ---------------------------------------------------------------- camera
    def bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Bounds of the visible reconstructions and meshes (and of the stack when nothing
        else is shown)."""
        los, his = [], []
        for layer in self.neurons:
            if layer.visible:
                lo, hi = layer.morphology.bounds()
                r = float(layer.morphology.radius.max(initial=0.0))
                los.append(lo - r)
                his.append(hi + r)
        for a in self.meshes:
            b = a.GetBounds()
            los.append(np.array(b[0::2]))
            his.append(np.array(b[1::2]))
        if not los and self.stack is not None:
            lo, hi = self.stack_bounds()
            los.append(lo)
            his.append(hi)
        if not los:
            return np.zeros(3), np.ones(3)
        return np.min(los, axis=0), np.max(his, axis=0)

    def set_camera(self, preset: str = "xy", *, parallel: bool | None = None) -> None:
        """Camera presets: ``xy`` (looking along z), ``xz``, ``yz``, ``iso``; the view fits
        the reconstructions. With a stack the image convention holds (y down, slice 0
        nearest the viewer); without, y points up."""
        if preset not in CAMERA_PRESETS:
            raise ViewerError(f"unknown camera {preset!r}", hint="use " + ", ".join(CAMERA_PRESETS))
        self.camera_preset = preset
        cam = self.renderer.GetActiveCamera()
        if parallel is not None:
            cam.SetParallelProjection(bool(parallel))
        lo, hi = self.bounds()
        c = (lo + hi) / 2
        s = -1.0 if self.y_down else 1.0
        direction, up = {
            "xy": ((0, 0, -s), (0, s, 0)),
            "xz": ((0, s, 0), (0, 0, 1) if not self.y_down else (0, 0, -1)),
            "yz": ((-1, 0, 0), (0, s, 0)),
            "iso": ((-1, -s, -s), (0, s, 0)),
        }[preset]
        direction = np.asarray(direction, dtype=np.float64)
        direction /= np.linalg.norm(direction)
        diag = float(np.linalg.norm(hi - lo)) or 1.0
        cam.SetFocalPoint(*c)
        cam.SetPosition(*(c - direction * diag * 2.0))
        cam.SetViewUp(*up)
        cam.OrthogonalizeViewUp()
        self.renderer.ResetCamera(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
        if cam.GetParallelProjection():
            # fit the projected box tightly, not its bounding sphere
            corners = np.array(
                [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
            )
            up_v = np.array(cam.GetViewUp())
            right = np.cross(np.array(cam.GetDirectionOfProjection()), up_v)
            w = np.ptp(corners @ right)
            h = np.ptp(corners @ up_v)
            sw, sh = self.render_window.GetSize()
            aspect = sw / max(sh, 1)
            cam.SetParallelScale(0.5 * max(h, w / aspect) * 1.08)
        self.renderer.ResetCameraClippingRange()

    def toggle_projection(self) -> bool:
        """Switch perspective / orthographic; returns True when orthographic."""
        cam = self.renderer.GetActiveCamera()
        cam.SetParallelProjection(not cam.GetParallelProjection())
        self.set_camera(self.camera_preset)
        return bool(cam.GetParallelProjection())

    def world_to_display(self, xyz: NDArray[Any]) -> NDArray[np.float64]:
        """Pixel positions ``(x, y)`` (origin top-left) of world points, vectorised."""
        from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: F401

        w, h = self.render_window.GetSize()
        cam = self.renderer.GetActiveCamera()
        mat = cam.GetCompositeProjectionTransformMatrix(w / max(h, 1), -1, 1)
        M = np.array([[mat.GetElement(i, j) for j in range(4)] for i in range(4)])
        p = np.c_[
            np.asarray(xyz, dtype=np.float64).reshape(-1, 3), np.ones(len(np.asarray(xyz).reshape(-1, 3)))
        ]
        q = p @ M.T
        ndc = q[:, :3] / q[:, 3:4]
        px = (ndc[:, 0] + 1) / 2 * w
        py = h - (ndc[:, 1] + 1) / 2 * h
        return np.c_[px, py]

    def display_ray(self, x: float, y: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The line of sight through pixel ``(x, y)`` (origin top-left): a point on it (on the
        near clipping plane) and its unit direction, away from the viewer. The inverse of
        :meth:`world_to_display`."""
        w, h = self.render_window.GetSize()
        cam = self.renderer.GetActiveCamera()
        mat = cam.GetCompositeProjectionTransformMatrix(w / max(h, 1), -1, 1)
        inv = np.linalg.inv(np.array([[mat.GetElement(i, j) for j in range(4)] for i in range(4)]))
        nx, ny = 2.0 * float(x) / w - 1.0, 2.0 * (h - float(y)) / h - 1.0
        ends = np.array([[nx, ny, -1.0, 1.0], [nx, ny, 1.0, 1.0]]) @ inv.T
        near, far = ends[:, :3] / ends[:, 3:4]
        d = far - near
        return near, d / np.linalg.norm(d)

    def pick_stack_point(self, x: float, y: float, *, smooth_um: float = 1.0) -> NDArray[np.float64] | None:
        """The point of the stack under pixel ``(x, y)`` (origin top-left), in micrometres:
        along the line of sight, the most stained voxel (the darkest in brightfield, the
        brightest in fluorescence: the voxel a projection shows at that pixel), the profile
        along the line averaged over ``smooth_um`` so a single noisy voxel does not decide.
        ``None`` without a stack or when the line misses it."""
        if self.stack is None:
            return None
        o, d = self.display_ray(x, y)
        vs = np.asarray(self.stack.voxel_size, dtype=np.float64)
        lo, hi = self.stack_bounds()
        t0, t1 = -np.inf, np.inf
        for a in range(3):  # the line's stretch inside the stack's box
            if abs(d[a]) < 1e-12:
                if not lo[a] <= o[a] <= hi[a]:
                    return None
                continue
            ta, tb = sorted(((lo[a] - o[a]) / d[a], (hi[a] - o[a]) / d[a]))
            t0, t1 = max(t0, ta), min(t1, tb)
        if not t1 > t0:
            return None
        step = 0.5 * float(vs.min())
        t = np.arange(t0 + 0.5 * step, t1, step)
        if not t.size:
            return None
        pts = o + t[:, None] * d
        shape = np.array(self._data.shape[::-1])
        ijk = np.clip(np.rint(pts / vs).astype(np.int64), 0, shape - 1)
        if self._lazy:
            vals = np.asarray(self._data.vindex[ijk[:, 2], ijk[:, 1], ijk[:, 0]].compute(scheduler="synchronous"))
        else:
            vals = np.asarray(self._data[ijk[:, 2], ijk[:, 1], ijk[:, 0]])
        k = max(1, int(round(float(smooth_um) / step)))
        box = np.ones(k)
        # a moving mean, over the samples there are at the line's ends
        prof = np.convolve(vals.astype(np.float64), box, mode="same") / np.convolve(np.ones(vals.size), box, mode="same")
        j = int(np.argmin(prof) if self.polarity == "brightfield" else np.argmax(prof))
        return pts[j]

    def set_markers(self, xyz: Any, *, radius_um: float | None = None,
                    color: tuple[float, float, float] = (1.0, 0.85, 0.1)) -> None:
        """Show points (micrometres) as small spheres, e.g. seeds picked for the tracer;
        an empty list hides them. Radius: 1.5 voxels of the stack (1 um without one)."""
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkPolyData
        from vtkmodules.vtkFiltersCore import vtkGlyph3D
        from vtkmodules.vtkFiltersSources import vtkSphereSource
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        pts = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        if self.marker_actor is not None:
            self.renderer.RemoveActor(self.marker_actor)
            self.marker_actor = None
        if not len(pts):
            return
        if radius_um is None:
            radius_um = 1.5 * float(min(self.stack.voxel_size)) if self.stack is not None else 1.0
        vp = vtkPoints()
        vp.SetData(_np2vtk(np.ascontiguousarray(pts)))
        poly = vtkPolyData()
        poly.SetPoints(vp)
        sphere = vtkSphereSource()
        sphere.SetRadius(float(radius_um))
        sphere.SetThetaResolution(16)
        sphere.SetPhiResolution(12)
        glyph = vtkGlyph3D()
        glyph.SetSourceConnection(sphere.GetOutputPort())
        glyph.SetInputData(poly)
        glyph.ScalingOff()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(glyph.GetOutputPort())
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        self.renderer.AddActor(actor)
        self.marker_actor = actor

    # ---------------------------------------------------------------- output
    def render(self) -> None:
        self.render_window.Render()

    def resize(self, size: tuple[int, int]) -> None:
        """Change the picture size (pixels, ``(width, height)``) and fit the camera again."""
        if tuple(self.render_window.GetSize()) != tuple(size):
            size = check_size(size)
            self.render_window.SetSize(*size)
            self.set_camera(self.camera_preset)

    def screenshot(self, size: tuple[int, int] | None = None) -> NDArray[np.uint8]:
        """The picture as an ``(H, W, 3)`` uint8 array (renders first), at ``size`` when
        given (see :meth:`resize`)."""
        if size is not None:
            self.resize(size)
        return capture(self.render_window)

    def save_screenshot(self, path: Any, *, size: tuple[int, int] | None = None, force: bool = False) -> None:
        """Render and write the picture, PNG or JPEG by the suffix of ``path`` (see
        :func:`viewers.offscreen.write_picture`)."""
        from viewers.offscreen import check_picture_path, write_picture

        check_picture_path(path, force=force)
        write_picture(self.screenshot(size), path, force=force)

    def iter_turntable(self, n_frames: int = 72, *, elevation: float = 0.0) -> Iterator[NDArray[np.uint8]]:
        """The frames of a full turn of the camera around the view-up axis, rendered one at
        a time as they are asked for (so that a movie is written without holding them all).

        Parameters
        ----------
        n_frames
            Frames per turn, at least 1.
        elevation
            Degrees to raise the camera by before the turn.

        Yields
        ------
        numpy.ndarray
            ``(H, W, 3)`` uint8 pictures.
        """
        n = int(n_frames)
        if n < 1:
            raise ViewerError(f"{n_frames} frames: a turn needs at least 1 frame")
        cam = self.renderer.GetActiveCamera()
        if elevation:
            cam.Elevation(elevation)
            cam.OrthogonalizeViewUp()
        for _ in range(n):
            yield capture(self.render_window)
            cam.Azimuth(360.0 / n)
            self.renderer.ResetCameraClippingRange()

    def turntable(self, n_frames: int = 72, *, elevation: float = 0.0) -> list[NDArray[np.uint8]]:
        """All the frames of :meth:`iter_turntable` in a list (they are all held in memory)."""
        return list(self.iter_turntable(n_frames, elevation=elevation))

    def close(self) -> None:
        """Release the OpenGL resources."""
        self.render_window.Finalize()
