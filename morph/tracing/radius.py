"""Radii of a traced tree measured on the image, corrected for the blur.

The width of a neurite's image is its own width widened by every blur it went through: the
optics (``psf_sigma_um``), the voxels' footprint, the tracer's denoising (``sigma_um``,
about 0.8 um, larger than most dendrites' radii) and the trilinear interpolation that samples
the image between voxels. Reading the radius off the image's half width, as
:func:`morph.tracing.prune.estimate_radii` does for the pruning (where the extent of the blur
is what matters), gives about 1.3 um for any neurite thinner than that. This module takes the
blur out.

Model
-----
Across a cylinder of radius ``r`` the image is its projected thickness ``2 sqrt(r**2 - x**2)``
convolved with a Gaussian of the total blur ``s`` (the variances of the blurs above add up;
trilinear interpolation adds ``v**2 / 6`` for a voxel size ``v``). Its half width at half
maximum is ``s * h(r / s)`` with ``h`` increasing from ``sqrt(2 ln 2) = 1.18`` (a line) to
``r * sqrt(3) / 2`` (no blur); ``h`` is tabulated once and inverted.

Measurement, per node
---------------------
* Profiles along straight lines through the node, in the horizontal plane at
  ``n_directions`` angles within 67.5 degrees of the perpendicular to the tree's direction
  (the narrowest is the one across the neurite, whatever error the traced direction has; a
  profile that never falls to half its height runs along the neurite and has no width),
  plus one along the most vertical direction perpendicular to the neurite.
* Each profile's peak is found within ``peak_um`` of the node (the traced centre line may be
  off the neurite's by a fraction of a micrometre, which would widen a width measured from
  the node's own value), and its baseline is the mean of the lowest values on each side
  within 2.5 half widths (the haze of nearby structure lifts the background under a thin
  neurite, which widens the half width measured from zero).
* The half width at half maximum above that baseline, interpolated between samples, is
  *resolved* when it gives ``r / s >= 1.3``, the peak stands ``snr`` noise units above the
  baseline and the profile is clean (its two sides within 25 % of each other, baselines
  within 15 % of the peak of each other: no neighbour, branch or soma in the way).

Thin neurites (amplitude)
-------------------------
Below ``r / s`` of about 1 the half width barely changes with ``r`` (a 3 % error in it is
0.4 um of radius), but the amount of stain does: the integral of the image over the plane
across the neurite is ``k * pi * r**2``. It is measured as ``peak * 2 pi s_h s_v`` (the two
Gaussian widths, horizontal and vertical) and ``k`` is calibrated on the cell itself. Of the
clean, bright nodes away from the soma (two soma radii) and from branch points (two blurs),
the tenth holding the most stain (at least ``min_calibration // 3``) are the thickest; the
radius their median half width gives, ``r_c``, and their median integral fix ``k``. They are
selected by stain, not by width: among neurites all thinner than the blur, the nodes whose
width resolves them are those noise or a neighbour widened (selected that way, such cells'
radii came out twice the gold's). With at least ``min_calibration`` clean, bright nodes and
``r_c`` at least 0.6 blur, every node that is not resolved gets ``sqrt(integral / (k pi))``;
otherwise (too few, or a cell whose neurites are all thinner than the blur) the soma's core
calibrates ``k`` when the caller gives it (``stain_reference``, :func:`soma_stain`): inside a
stained body much larger than the blur the image holds the stain per unit volume, which is
``k``. The neurites of a cell are seldom stained darker than its soma, but a soma can be
stained darker than its neurites, or saturated (dark to the camera's floor), which makes
these radii overestimates. With neither, every node keeps the width's radius, which swings
between the floor and the blur's size for neurites much thinner than the blur.

The radii are smoothed along the tree (median over a node and two nodes either way);
nodes with no measurable profile take the median of their section, or ``min_radius_um``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from morph.morphology import Morphology

_LINE_HWHM = float(np.sqrt(2.0 * np.log(2.0)))  # half width at half maximum of a unit Gaussian


@lru_cache(maxsize=1)
def _hwhm_table() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(rho, h)``: half width at half maximum ``h`` (in units of the blur) of a cylinder of
    radius ``rho`` (same units) seen through a unit Gaussian blur."""
    rho = np.concatenate([[0.0], np.geomspace(0.01, 40.0, 160)])
    # the profile P(x) = integral of 2 sqrt(rho**2 - t**2) phi(x - t) dt, with t = rho sin(a)
    a = (np.arange(256) + 0.5) / 256 * np.pi - np.pi / 2
    wts = 2.0 * np.cos(a) ** 2 * (np.pi / 256)

    def prof(x: NDArray[np.float64]) -> NDArray[np.float64]:
        t = rho[:, None] * np.sin(a)[None, :]
        return (rho[:, None] ** 2 * wts[None, :] * np.exp(-0.5 * (x[:, None] - t) ** 2)).sum(1)

    half = 0.5 * prof(np.zeros_like(rho))
    lo, hi = np.zeros_like(rho), rho + 4.0
    for _ in range(32):  # bisection: P falls monotonically for x >= 0
        mid = 0.5 * (lo + hi)
        above = prof(mid) > half
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    h = 0.5 * (lo + hi)
    h[0] = _LINE_HWHM
    return rho, h


def radius_from_half_width(hwhm: Any, blur_um: float) -> NDArray[np.float64]:
    """Radius of a cylinder whose image, blurred by a Gaussian of ``blur_um`` (sigma), has the
    half width at half maximum ``hwhm`` (0 where it is no wider than the blur alone)."""
    rho, h = _hwhm_table()
    q = np.asarray(hwhm, dtype=np.float64) / float(blur_um)
    # beyond the table the blur no longer matters: half width = r sqrt(3) / 2
    out = np.where(q > h[-1], q * (2.0 / np.sqrt(3.0)), np.interp(q, h, rho, left=0.0))
    return float(blur_um) * out


def total_blur(voxel_size: Sequence[float], *, sigma_um: float, psf_sigma_um: float) -> float:
    """Lateral Gaussian sigma of the image the radii are measured on: optics, voxel footprint
    (``v**2 / 12``), denoising and trilinear sampling (``v**2 / 6``)."""
    v = float(min(voxel_size[0], voxel_size[1]))
    return float(np.sqrt(sigma_um**2 + psf_sigma_um**2 + v * v / 12.0 + v * v / 6.0))


@dataclass
class RadiusReport:
    """How the radii were measured (written to the SWC header by the tracer)."""

    blur_um: float
    nodes: int
    resolved: int
    clean_nodes: int
    calibrated: bool
    stain_per_um2: float
    calibration_radius_um: float
    #: what calibrated the stain: ``"neurites"`` (the cell's most stained clean nodes) or
    #: ``"soma"`` (its core, when the neurites could not)
    reference: str = "neurites"

    def note(self) -> str:
        head = (f"radii: image half width less a blur of {self.blur_um:.2f} um for {self.resolved} of "
                f"{self.nodes} nodes")
        if self.resolved >= self.nodes:
            return head
        if self.calibrated and self.reference == "soma":
            return (f"{head}; the others from their stain, calibrated on the soma's core ({self.clean_nodes} "
                    "clean nodes, or their radius under 0.6 blur, could not calibrate it; a soma stained "
                    "darker than its neurites, or saturated, makes these radii overestimates)")
        if self.calibrated:
            return (f"{head}; the others from their stain, calibrated on the most stained tenth of "
                    f"{self.clean_nodes} clean nodes (radius {self.calibration_radius_um:.2f} um)")
        return (f"{head}; the others from their width too (no calibration of the stain: {self.clean_nodes} "
                "clean nodes, or their radius under 0.6 blur), an overestimate for neurites much thinner "
                "than the blur")


def _directions(m: Morphology) -> NDArray[np.float64]:
    """Unit direction of the tree at each node (parent to node plus node to children)."""
    n = len(m)
    d = np.zeros((n, 3))
    has = m.parent >= 0
    d[has] = m.xyz[has] - m.xyz[m.parent[has]]
    kids = np.flatnonzero(has)
    np.add.at(d, m.parent[kids], m.xyz[kids] - m.xyz[m.parent[kids]])
    nrm = np.linalg.norm(d, axis=1, keepdims=True)
    return np.where(nrm > 1e-12, d / np.maximum(nrm, 1e-12), np.array([0.0, 0.0, 1.0]))


def _crossings(prof: NDArray[np.float64], x: NDArray[np.float64], j0: NDArray[np.int64],
               level: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Distances from the peak ``x[j0]`` to where each profile (rows) first falls below
    ``level`` on the right and on the left, interpolated between samples."""
    n, m = prof.shape
    rows = np.arange(n)
    idx = np.arange(m)[None, :]
    below = prof < level[:, None]
    step = x[1] - x[0]
    right = below & (idx > j0[:, None])
    kr = np.where(right.any(1), right.argmax(1), m - 1)
    a, b = prof[rows, kr - 1], prof[rows, kr]
    xr = x[kr - 1] + np.clip((a - level) / np.maximum(a - b, 1e-12), 0.0, 1.0) * step
    left = below & (idx < j0[:, None])
    kl = np.where(left.any(1), m - 1 - np.argmax(left[:, ::-1], 1), 0)
    a, b = prof[rows, kl + 1], prof[rows, kl]
    xl = x[kl + 1] - np.clip((a - level) / np.maximum(a - b, 1e-12), 0.0, 1.0) * step
    return xr - x[j0], x[j0] - xl


def _profile_widths(image: NDArray[Any], voxel_size: NDArray[np.float64], xyz: NDArray[np.float64],
                    e: NDArray[np.float64], x: NDArray[np.float64], peak_um: float
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Half width at half maximum above the baseline, peak height above it, and whether the
    profile is clean, for lines through ``xyz`` along ``e`` sampled at offsets ``x``."""
    n = xyz.shape[0]
    rows = np.arange(n)
    pts = xyz[:, None, :] + x[None, :, None] * e[:, None, :]
    v = (pts.reshape(-1, 3) / voxel_size)[:, ::-1].T
    prof = ndi.map_coordinates(image, v, order=1, mode="nearest").reshape(n, x.size)
    j0 = np.where(np.abs(x)[None, :] <= peak_um, prof, -np.inf).argmax(1)
    pk = prof[rows, j0]
    # first pass (half of the peak over zero) only sets how far the baseline is looked for
    hr, hl = _crossings(prof, x, j0, 0.5 * pk)
    reach = 2.5 * 0.5 * (hr + hl)
    near = np.abs(x[None, :] - x[j0][:, None]) <= reach[:, None]
    side = x[None, :] < x[j0][:, None]
    lo_l = np.where(near & side, prof, np.inf).min(1)
    lo_r = np.where(near & ~side & (x[None, :] > x[j0][:, None]), prof, np.inf).min(1)
    lo_l = np.where(np.isfinite(lo_l), lo_l, 0.0)
    lo_r = np.where(np.isfinite(lo_r), lo_r, 0.0)
    base = np.clip(0.5 * (lo_l + lo_r), 0.0, pk)
    amp = pk - base
    hr, hl = _crossings(prof, x, j0, base + 0.5 * amp)
    hw = 0.5 * (hr + hl)
    # a profile that does not fall to half its height above zero runs along the neurite (or
    # through a larger body): no width
    hw = np.where(amp >= 0.5 * pk, hw, np.inf)
    sym = np.minimum(hr, hl) / np.maximum(np.maximum(hr, hl), 1e-12)
    clean = (sym >= 0.75) & (np.abs(lo_l - lo_r) <= 0.15 * np.maximum(amp, 1e-12))
    return hw, amp, clean


def measure_radii(
    m: Morphology,
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    noise: float,
    sigma_um: float = 0.8,
    psf_sigma_um: float = 0.2,
    radius_max_um: float = 10.0,
    n_directions: int = 7,
    peak_um: float = 1.0,
    snr: float = 6.0,
    min_calibration: int = 30,
    min_radius_um: float = 0.05,
    extent_um: NDArray[np.float64] | None = None,
    stain_reference: float | None = None,
) -> tuple[NDArray[np.float64], RadiusReport]:
    """Radius of every node of ``m``, measured on ``image`` and corrected for the blur.

    Parameters
    ----------
    m
        The traced tree, in micrometres (soma nodes are measured too; callers keep the
        soma's own radius).
    image
        The flattened, denoised image the tree was traced on (Z, Y, X; structure positive).
    voxel_size
        ``(x, y, z)`` micrometres.
    noise
        Standard deviation of the image's background.
    sigma_um
        The denoising Gaussian the image went through.
    psf_sigma_um
        Lateral Gaussian sigma of the microscope's blur (0.2 um: about a 0.7-NA objective
        in visible light; a 1.4-NA oil objective is nearer 0.1).
    radius_max_um
        Largest radius measured.
    n_directions
        Horizontal directions per node, spread over 67.5 degrees either side of the one
        perpendicular to the traced direction (the narrowest profile is taken).
    peak_um
        How far from the node the profile's peak may lie.
    snr
        Peak height above the baseline, in noise units, for a width to count as resolved
        or as calibration.
    min_calibration
        Clean nodes needed to calibrate the stain (see the module docstring).
    min_radius_um
        Smallest radius given.
    extent_um
        Optional rough half width of each node's image (e.g.
        :func:`morph.tracing.prune.estimate_radii`): nodes are measured in batches of
        similar extent, each with profiles just long enough (quicker); default: all
        profiles ``radius_max_um`` long.
    stain_reference
        The image's value inside a stained body much larger than the blur (the soma's core:
        :func:`soma_stain`), i.e. the stain per unit of cross-section, used when the cell's
        own neurites cannot calibrate it (see the module docstring); ``None``: not used.

    Returns
    -------
    radii : ndarray
        ``(n,)`` micrometres.
    report : RadiusReport
    """
    n = len(m)
    vs = np.asarray(voxel_size, dtype=np.float64)
    blur = total_blur(vs, sigma_um=sigma_um, psf_sigma_um=psf_sigma_um)
    if n == 0:
        return np.zeros(0), RadiusReport(blur, 0, 0, 0, False, float("nan"), float("nan"))
    d = _directions(m)
    u = np.stack([-d[:, 1], d[:, 0], np.zeros(n)], axis=1)  # horizontal, across the neurite
    un = np.linalg.norm(u, axis=1, keepdims=True)
    u = np.where(un > 1e-6, u / np.maximum(un, 1e-12), np.array([1.0, 0.0, 0.0]))
    v = np.stack([-u[:, 1], u[:, 0], np.zeros(n)], axis=1)
    w = np.cross(d, u)  # across the neurite, the most vertical way
    step = max(0.25 * float(vs[:2].min()), blur / 10.0)

    hw_h = np.full(n, np.inf)
    amp_h = np.zeros(n)
    clean_h = np.zeros(n, dtype=bool)
    hw_v = np.zeros(n)
    ext = np.full(n, radius_max_um) if extent_um is None else np.minimum(np.asarray(extent_um, float), radius_max_um)
    order = np.argsort(ext, kind="stable")

    def offsets(extent: float) -> NDArray[np.float64]:
        # far enough for the baseline: 2.5 half widths beyond a peak up to peak_um off
        reach = min(radius_max_um, 2.5 * max(extent, 1.2 * blur) + peak_um)
        k = np.ceil(reach / step)
        return np.arange(-k, k + 1) * step

    done = 0
    while done < n:
        # a batch of nodes of similar extent (sorted), about 2**16 samples per direction
        size = max(1, 2**16 // offsets(float(ext[order[done]])).size)
        sel = order[done:done + size]
        x = offsets(float(ext[sel[-1]]))
        for a in np.linspace(-0.375 * np.pi, 0.375 * np.pi, n_directions):
            e = np.cos(a) * u[sel] + np.sin(a) * v[sel]
            hw, amp, clean = _profile_widths(image, vs, m.xyz[sel], e, x, peak_um)
            better = hw < hw_h[sel]
            hw_h[sel] = np.where(better, hw, hw_h[sel])
            amp_h[sel] = np.where(better, amp, amp_h[sel])
            clean_h[sel] = np.where(better, clean, clean_h[sel])
        hw_v[sel], _a, _c = _profile_widths(image, vs, m.xyz[sel], w[sel], x, peak_um)
        done += sel.size

    hw_h = np.where(np.isfinite(hw_h), hw_h, 0.0)  # no profile of a width: not measured (amp_h 0)
    hw_v = np.where(np.isfinite(hw_v), hw_v, hw_h)  # no vertical width: round
    r_w = radius_from_half_width(hw_h, blur)
    rho = r_w / blur
    strong = amp_h >= snr * noise
    integral = amp_h * 2.0 * np.pi * (hw_h / _LINE_HWHM) * (hw_v / _LINE_HWHM)
    # calibration: among the clean, bright nodes away from the soma and branch points, the
    # tenth holding the most stain (the thickest; selected on the integral, since selecting
    # on the width would pick the nodes whose noise widened them); the radius their median
    # half width gives fixes the stain per unit of cross-section
    cand = clean_h & strong & ~m.soma_mask
    if np.isfinite(m.soma_radius):
        cand &= np.linalg.norm(m.xyz - m.soma_center, axis=1) > 2.0 * m.soma_radius
    bp = m.branch_points
    if bp.size:
        from scipy.spatial import cKDTree

        cand &= cKDTree(m.xyz[bp]).query(m.xyz, distance_upper_bound=2.0 * blur)[0] > 2.0 * blur
    ncand = int(cand.sum())
    resolved = clean_h & strong & (rho >= 1.3)
    r = r_w.copy()
    k = float("nan")
    r_cal = float("nan")
    calibrated = False
    if ncand >= min_calibration:
        idx = np.flatnonzero(cand)
        top = idx[np.argsort(integral[idx])[-max(min_calibration // 3, int(np.ceil(0.1 * ncand))):]]
        r_cal = float(radius_from_half_width(np.median(hw_h[top]), blur))
        if r_cal >= 0.6 * blur:
            k = float(np.median(integral[top]) / (np.pi * r_cal**2))
            r = np.where(resolved, r_w, np.sqrt(np.clip(integral, 0.0, None) / (k * np.pi)))
            calibrated = True
    reference = "neurites"
    if not calibrated and stain_reference is not None and np.isfinite(stain_reference) and stain_reference >= snr * noise:
        k = float(stain_reference)
        r = np.where(resolved, r_w, np.sqrt(np.clip(integral, 0.0, None) / (k * np.pi)))
        calibrated, reference = True, "soma"
    # nodes without a profile (no signal): the median of their section's measured nodes
    measured = amp_h >= noise
    sec = m.section_id
    ns = int(sec.max()) + 1 if n else 0
    med = np.full(ns, np.nan)
    if measured.any():
        srt = np.lexsort((r[measured], sec[measured]))
        s_ids, s_r = sec[measured][srt], r[measured][srt]
        first = np.searchsorted(s_ids, np.arange(ns), side="left")
        last = np.searchsorted(s_ids, np.arange(ns), side="right")
        has = last > first
        med[has] = s_r[(first[has] + last[has] - 1) // 2]
    sec_med = np.full(n, np.nan)
    in_sec = sec >= 0  # soma nodes belong to no section
    sec_med[in_sec] = med[sec[in_sec]]
    r = np.where(measured, r, sec_med)
    r = np.where(np.isfinite(r), r, min_radius_um)
    # smoothing along the tree: median over the node and two nodes either way (parent,
    # grandparent; first child, its first child): a stretch of one or two nodes widened by
    # debris against the neurite or by a crossing goes, a change of radius along it stays
    # (the soma is nobody's neighbour here: its profile is the soma's)
    par = np.where((m.parent >= 0) & ~m.soma_mask[np.maximum(m.parent, 0)], m.parent, np.arange(n))
    child = np.full(n, n)
    kids = np.flatnonzero((m.parent >= 0) & ~m.soma_mask)
    np.minimum.at(child, m.parent[kids], kids)  # the first child of each node
    child = np.where(child < n, child, np.arange(n))
    r = np.median(np.stack([r, r[par], r[par[par]], r[child], r[child[child]]]), axis=0)
    r = np.clip(r, min_radius_um, radius_max_um)
    return r, RadiusReport(blur, n, int(resolved.sum()), ncand, calibrated, k, r_cal, reference)


def soma_stain(
    image: NDArray[Any],
    centre: Sequence[float],
    voxel_size: Sequence[float],
    *,
    radius_um: float,
    blur_um: float,
    core: float = 0.4,
) -> float:
    """The image's value in the soma's core: the median over points within ``core`` times
    ``radius_um`` of ``centre`` (a grid at half the smallest voxel size, at most 21 points
    across); NaN when that core is less than two blurs in radius (its value would be the
    blur's, not the stain's) or lies outside the image.

    Inside a uniformly stained body much larger than the blur the image holds the stain per
    unit volume itself, the quantity that :func:`measure_radii` calibrates on the neurites
    (the stain per unit of cross-section): the soma is the reference when they cannot give
    it. On the synthetic brightfield stacks of ``bench/trace_accuracy.py`` whose neurites do
    calibrate, the neurites' value is 0.86-1.17 times the soma core's."""
    vs = np.asarray(voxel_size, dtype=np.float64)
    rc = core * float(radius_um)
    if not np.isfinite(rc) or rc < 2.0 * blur_um:
        return float("nan")
    h = max(0.5 * float(vs.min()), rc / 10.0)
    g = np.arange(-rc, rc + 1e-9, h)
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    pts = pts[np.linalg.norm(pts, axis=1) <= rc] + np.asarray(centre, dtype=np.float64)
    inside = np.all((pts / vs >= -0.5) & (pts / vs <= np.asarray(image.shape)[::-1] - 0.5), axis=1)
    if inside.sum() < 8:
        return float("nan")
    v = ndi.map_coordinates(image, (pts[inside] / vs)[:, ::-1].T, order=1, mode="nearest")
    return float(np.median(v))


def measure_soma_radius(
    image: NDArray[Any],
    centre: Sequence[float],
    voxel_size: Sequence[float],
    *,
    radius_hint: float,
    n_directions: int = 16,
    core_um: float = 1.0,
) -> float:
    """Radius of the soma at ``centre``: where the image, along horizontal lines from the
    centre, falls half way from the soma's core to the background (median over
    ``n_directions`` directions; NaN when it cannot be measured).

    The tracer's soma radius is the depth of its foreground at the centre, whose edge lies far
    out in the blur of a body much darker than the foreground threshold (1.5-1.9 times the
    gold radius on synthetic brightfield stacks). For a ball much larger than the blur the
    half-way point is near its edge: 0.97-1.10 times the gold radius on synthetic
    brightfield stacks (the centre saturated); in a section (fluorescence) the blur along z
    dims the ball's edge, where it is thin along z, so a ball of 5 um under a z blur of
    1.5 um reads 4.7. Lines along the optical axis are left out (the blur there is two to
    four times wider). A stem leaving along a direction can keep that
    direction's line above half way; the median over directions ignores a few.

    Parameters
    ----------
    image
        Flattened, denoised image (Z, Y, X; structure positive).
    centre
        Soma centre (x, y, z) micrometres.
    voxel_size
        ``(x, y, z)`` micrometres.
    radius_hint
        The tracer's own estimate; lines run to three times it.
    n_directions
        Horizontal directions.
    core_um
        The core value is the median of the line's first ``core_um``.
    """
    a = np.arange(n_directions) * (2.0 * np.pi / n_directions)
    r, ok = soma_ray_radii(image, centre, voxel_size, a, radius_hint=radius_hint, core_um=core_um)
    if not ok.any():
        return float("nan")
    return float(np.median(r[ok]))


def soma_ray_radii(
    image: NDArray[Any],
    centre: Sequence[float],
    voxel_size: Sequence[float],
    angles: NDArray[np.float64],
    *,
    radius_hint: float,
    core_um: float = 1.0,
    common_base: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Along horizontal lines from ``centre`` at ``angles`` (radians from +x, towards +y),
    the distance (um) at which the image falls half way from the soma's core (median of the
    line's first ``core_um``) to the line's lowest value within three times ``radius_hint``
    (``common_base``: to the median of those lowest values over the lines, the background
    for all of them), and whether it does (a line along a stem may stay above half way)."""
    vs = np.asarray(voxel_size, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64)
    a = np.asarray(angles, dtype=np.float64)
    step = 0.25 * float(vs[:2].min())
    x = np.arange(0.0, 3.0 * max(float(radius_hint), 1.0) + step, step)
    e = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
    pts = c[None, None, :] + x[None, :, None] * e[:, None, :]
    prof = ndi.map_coordinates(image, (pts.reshape(-1, 3) / vs)[:, ::-1].T, order=1, mode="nearest")
    prof = prof.reshape(a.size, x.size)
    core = np.median(prof[:, : max(1, int(round(core_um / step)))], axis=1)
    base = prof.min(axis=1)
    if common_base:
        base = np.full_like(base, np.median(base))
    half = base + 0.5 * (core - base)
    ok = (prof[:, 1:] < half[:, None]).any(axis=1) & (core > base)
    r, _left = _crossings(prof, x, np.zeros(a.size, dtype=np.int64), half)
    return r, ok


def cap_in_soma_blur(m: Morphology, radii: NDArray[np.float64], *, soma_radius: float, blur_um: float,
                     zone_blurs: float = 3.0, reference_um: float = 5.0, decline: float = 1.3,
                     max_reach_um: float = 20.0) -> NDArray[np.float64]:
    """Radii of the stems' first micrometres, where the soma's blurred edge widens their
    profiles, capped at the stem's own radius just beyond.

    Nodes closer to the soma's centre than ``soma_radius + zone_blurs * blur_um`` take at most
    the median radius of their stem's nodes in the next ``reference_um``; a stem with no node
    there keeps its radii. ``radii`` of soma nodes are returned unchanged.

    The soma's image reaches further than that where the soma is large and dark, or where a
    stem leaves it along z (the blur is widest along the optical axis): the stem's radii
    still fall with distance beyond the zone, from the soma's width towards the stem's own.
    So along each stem's first section the zone is pushed out, 1 um at a time, while the
    median radius over the next 2 um exceeds ``decline`` times the median over the 5 um
    after, never beyond the section's first branch point nor ``max_reach_um`` of path past
    the zone; the nodes before it take at most the median over ``reference_um`` from there.
    A neurite's own taper is far slower (an apical trunk loses a few per cent over 5 um).
    """
    from morph import _tree

    r = np.asarray(radii, dtype=np.float64).copy()
    if m.soma_nodes.size == 0 or not np.isfinite(soma_radius):
        return r
    first = np.flatnonzero(~m.soma_mask & ((m.parent < 0) | m.parent_is_soma))
    mark = np.zeros(len(m), dtype=bool)
    mark[first] = True
    owner = _tree.nearest_marked(m.parent, mark)  # the first node of each node's stem
    d = np.linalg.norm(m.xyz - m.soma_center, axis=1)
    zone = soma_radius + zone_blurs * blur_um
    inside = ~m.soma_mask & (owner >= 0) & (d < zone)
    ref_nodes = ~m.soma_mask & (owner >= 0) & (d >= zone) & (d < zone + reference_um)
    r = _cap_at_group_median(r, owner, inside, ref_nodes)
    # the soma's reach along each stem's first section, read from the radii's decline
    sid = m.section_id
    pd = m.path_distance
    order = np.lexsort((pd, sid))  # nodes by section, then outwards
    sec_sorted = sid[order]
    for f in first:
        s_f = sid[f]
        if s_f < 0:
            continue
        lo, hi = np.searchsorted(sec_sorted, [s_f, s_f + 1])
        nodes = order[lo:hi]
        t = pd[nodes] - pd[f]
        out_zone = d[nodes] >= zone
        if not out_zone.any():
            continue
        start = float(t[int(np.argmax(out_zone))])  # where the zone above ends on this section
        reach = start
        while reach - start < max_reach_um and reach + 2.0 + reference_um <= t[-1]:
            near = r[nodes[(t >= reach) & (t < reach + 2.0)]]
            far = r[nodes[(t >= reach + 2.0) & (t < reach + 2.0 + reference_um)]]
            if not near.size or not far.size or np.median(near) <= decline * np.median(far):
                break
            reach += 1.0
        if reach > start:
            ref = r[nodes[(t >= reach) & (t < reach + reference_um)]]
            if ref.size:
                cap = nodes[t < reach]
                r[cap] = np.minimum(r[cap], float(np.median(ref)))
    return r


def _cap_at_group_median(r: NDArray[np.float64], group: NDArray[np.int64], inside: NDArray[np.bool_],
                         ref_nodes: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Cap ``r`` at ``inside`` nodes to the median radius of the ``ref_nodes`` of their
    ``group``; groups without reference nodes keep their radii. Modifies and returns ``r``."""
    if not inside.any() or not ref_nodes.any():
        return r
    o = group[ref_nodes]
    rr = r[ref_nodes]
    srt = np.lexsort((rr, o))
    o, rr = o[srt], rr[srt]
    groups, start, count = np.unique(o, return_index=True, return_counts=True)
    med = rr[start + (count - 1) // 2]
    pos = np.clip(np.searchsorted(groups, group[inside]), 0, groups.size - 1)
    has = groups[pos] == group[inside]
    idx = np.flatnonzero(inside)[has]
    r[idx] = np.minimum(r[idx], med[pos[has]])
    return r


def cap_at_branch_points(m: Morphology, radii: NDArray[np.float64], *, blur_um: float,
                         zone_blurs: float = 3.0, reference_um: float = 5.0) -> NDArray[np.float64]:
    """Radii of a branch's first micrometres, where the profiles across it also cross the
    branch point's other neurites, capped at the branch's own radius just beyond.

    Nodes of a section that leaves a branch point ``b`` (not the soma) closer to ``b``, along
    the path, than ``radii[b] + zone_blurs * blur_um`` take at most the median radius of the
    section's nodes in the next ``reference_um``; a section with no node there keeps its
    radii.
    """
    r = np.asarray(radii, dtype=np.float64).copy()
    sid = m.section_id
    ok = ~m.soma_mask & (sid >= 0)
    if not ok.any():
        return r
    start = m.sections.start[np.maximum(sid, 0)]
    b = m.parent[start]
    ok &= b >= 0
    ok &= ~m.soma_mask[np.maximum(b, 0)]
    bb = np.maximum(b, 0)
    pd = m.path_distance
    dist = pd - pd[bb]
    zone = r[bb] + zone_blurs * blur_um
    inside = ok & (dist < zone)
    ref_nodes = ok & (dist >= zone) & (dist < zone + reference_um)
    return _cap_at_group_median(r, sid.astype(np.int64), inside, ref_nodes)
