"""Render a reconstruction into a synthetic 3-D image stack with known ground truth.

Image model
-----------
1. **Stain density.** Every edge of the tree is a tube of radius ``r`` (mean of its two
   nodes; the child's radius for edges leaving the soma) carrying a stain factor. What the
   microscope sees at a focal plane is computed *analytically* per segment: in focus, the
   tube's cross-section ``pi r**2`` spread by the lateral blur, i.e. a Gaussian line of
   peak ``pi r**2 / (sqrt(2 pi) s_xy)`` (the projected thickness a transmitted beam
   crosses); out of focus it fades with a Gaussian profile along the optical axis. The
   widths are ``s**2 = r**2 / 4 + psf**2 + v**2 / 12`` per axis (``psf_sigma_xy``
   across, ``psf_sigma_z`` along the optical axis, so blur is much wider in z;
   ``v**2 / 12`` is the voxel footprint, so coarse voxels integrate rather than miss thin
   tubes), measured in the segment's own orientation (a segment seen end-on is darker,
   as it is through a microscope). Nothing aliases between z planes. The soma and debris
   are balls whose density is their projected thickness ``2 R`` (anti-aliased, blurred by
   the PSF in a local box). Segments are rendered one at a time into their local bounding
   box (max-combined), so memory is one ``uint16`` density volume plus the output.
2. **Staining.** Each section gets a log-normal stain factor (``stain_cv``); thin
   branches fade (factor ``min(1, (r / thin_radius) ** thin_fade)``); neurites thinner
   than ``bead_radius`` carry varicosities (stain bumps of ``bead_amplitude`` every
   ``bead_spacing`` um or so); short staining gaps
   (``gap_rate`` per um, ``gap_length`` long, ``gap_depth`` deep) interrupt the stain.
3. **Clutter that must not be traced**: dark debris (blurred balls, ``debris_density``
   per 10^6 um^3) and fragments of other cells (tortuous stained tubes,
   ``fragment_density`` per 10^6 um^3), all kept ``clutter_clearance`` um away from the
   neuron.
4. **Optics.** Brightfield: ``I = B * exp(-OD)``, Beer-Lambert, with optical density
   ``OD = absorbance * ((1 - haze) * density + haze * wide_blur(density))`` (per um of
   stained path; the
   wide blur, ``haze_sigma_xy`` / ``haze_sigma_z``, is the out-of-focus haze from
   structures above and below; computed on a coarse grid), saturating softly at
   ``max_od``. The background ``B`` is ``background`` plus a slow uneven illumination
   (``illumination``, correlation ``illumination_scale`` um) and a fine tissue texture
   (``texture`` grey levels, correlation ``texture_sigma`` um in x/y and
   ``texture_sigma_z`` in z). The defaults match the background of a real Allen-style
   brightfield crop (mean about 190, standard deviation about 2, neighbour correlation
   about 0.7 in x/y and 0.35 in z). Fluorescence: ``I = fluo_offset + texture / 3 +
   fluo_gain * OD`` (bright on dark, same structure and saturation).
5. **Camera**: Gaussian read noise (``read_noise``) plus shot noise (``shot_noise``
   times the square root of the signal), rounded to ``uint8``.

Frame of the output
-------------------
Voxel ``(k, j, i)`` (z, y, x) of the stack is centred at micrometre coordinates
``(i * vx, j * vy, k * vz)``: the gold SWC is written in exactly that frame, in
micrometres, with the voxel size in its header and in the TIFF (ImageJ) metadata. With
``crop`` the stack covers at most a box of that size centred on the soma (exactly that box
with ``pad_to_crop``) and the gold is clipped at the box faces (a branch leaving the box ends there; one re-entering starts a
new root).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import MorphError
from morph.morphology import Morphology
from morph.synth._check import POSITIVE, Limit, check_fields

#: Bumped whenever the same cell and parameters render a different stack (caches of renders
#: key on it).
RENDER_VERSION = 2

_SCALE = 4000.0  # uint16 fixed point of the density volume (2.5e-4 resolution, max 16.4)


@dataclass
class RenderParams:
    """Every knob of :func:`render_stack` (lengths in micrometres, intensities in grey
    levels of the ``uint8`` output)."""

    modality: str = "brightfield"
    voxel_size: tuple[float, float, float] = (0.25, 0.25, 0.75)
    margin: float = 6.0
    crop: tuple[float, float, float] | None = None
    pad_to_crop: bool = False
    # optics
    psf_sigma_xy: float = 0.25
    psf_sigma_z: float = 1.2
    haze: float = 0.25
    haze_sigma_xy: float = 3.0
    haze_sigma_z: float = 6.0
    absorbance: float = 0.55
    max_od: float = 1.2
    soma_density: float = 1.0
    # background
    background: float = 190.0
    illumination: float = 3.0
    illumination_scale: float = 40.0
    texture: float = 1.8
    texture_sigma: float = 0.45
    texture_sigma_z: float = 0.8
    # fluorescence
    fluo_offset: float = 12.0
    fluo_gain: float = 250.0
    # staining
    stain_cv: float = 0.2
    thin_radius: float = 0.35
    thin_fade: float = 0.7
    gap_rate: float = 0.01
    gap_length: tuple[float, float] = (0.8, 2.5)
    gap_depth: float = 0.85
    bead_amplitude: float = 0.8
    bead_spacing: float = 4.0
    bead_radius: float = 0.5
    # clutter
    debris_density: float = 15.0
    debris_radius: tuple[float, float] = (0.3, 1.3)
    debris_stain: tuple[float, float] = (0.3, 1.2)
    fragment_density: float = 3.0
    fragment_length: tuple[float, float] = (15.0, 60.0)
    fragment_radius: tuple[float, float] = (0.2, 0.7)
    clutter_clearance: float = 3.0
    # camera
    read_noise: float = 0.7
    shot_noise: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.modality not in ("brightfield", "fluorescence"):
            raise MorphError(
                f"unknown modality {self.modality!r}", hint="use 'brightfield' or 'fluorescence'"
            )
        check_fields(self, RENDER_LIMITS)
        self.voxel_size = tuple(float(v) for v in self.voxel_size)  # type: ignore[assignment]


#: The range of each numeric field of :class:`RenderParams` that is not just "0 or more".
RENDER_LIMITS: dict[str, Limit] = {
    **{name: POSITIVE for name in ("voxel_size", "crop", "psf_sigma_xy", "psf_sigma_z", "haze_sigma_xy",
                                   "haze_sigma_z", "max_od", "thin_radius", "bead_spacing")},
    "haze": Limit(0, 1, hi_open=True),
    "gap_depth": Limit(0, 1),
}


#: Difficulty presets: overrides of :class:`RenderParams`.
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {
        "haze": 0.12,
        "illumination": 2.0,
        "texture": 0.8,
        "stain_cv": 0.05,
        "thin_fade": 0.0,
        "bead_amplitude": 0.0,
        "gap_rate": 0.0,
        "debris_density": 0.0,
        "fragment_density": 0.0,
        "read_noise": 0.6,
        "shot_noise": 0.03,
        "absorbance": 0.65,
    },
    "realistic": {},
    "hard": {
        "haze": 0.35,
        "illumination": 10.0,
        "texture": 3.0,
        "stain_cv": 0.35,
        "thin_fade": 1.2,
        "gap_rate": 0.03,
        "gap_length": (1.0, 3.5),
        "gap_depth": 0.95,
        "debris_density": 45.0,
        "fragment_density": 8.0,
        "read_noise": 2.0,
        "shot_noise": 0.15,
        "psf_sigma_z": 1.6,
    },
}


def render_params(preset: str = "realistic", **overrides: Any) -> RenderParams:
    """:class:`RenderParams` of a difficulty preset (``easy``, ``realistic``, ``hard``)
    with ``overrides``."""
    if preset not in PRESETS:
        raise MorphError(f"unknown preset {preset!r}", hint="use one of: " + ", ".join(PRESETS))
    known = {f.name for f in fields(RenderParams)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise MorphError(f"unknown render parameter(s): {', '.join(bad)}")
    return RenderParams(**{**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass
class SyntheticStack:
    """A rendered stack and its ground truth.

    Attributes
    ----------
    data
        ``(Z, Y, X)`` ``uint8`` voxels.
    voxel_size
        ``(x, y, z)`` in micrometres.
    gold
        The ground truth in the stack's frame (micrometres; voxel ``(k, j, i)`` centred at
        ``(i*vx, j*vy, k*vz)``).
    origin
        Position of voxel ``(0, 0, 0)`` in the input cell's coordinates (micrometres).
    params
        The parameters used.
    clutter
        How many debris balls and fragment segments were drawn.
    clutter_model
        What the image holds besides the neuron, in the same frame as ``gold``: each
        fragment of another cell an unbranched chain of SWC type 0 (the radius it was drawn
        with), each debris ball a single node of type 0 (its radius). What a tracer must
        leave out: :func:`morph.compare.compare` with ``clutter=`` measures how much of a
        trace lies on it.
    """

    data: NDArray[np.uint8]
    voxel_size: tuple[float, float, float]
    gold: Morphology
    origin: NDArray[np.float64]
    params: RenderParams
    clutter: dict[str, int] = field(default_factory=dict)
    clutter_model: Morphology | None = None

    def save(self, prefix: str | Path, *, force: bool = False) -> tuple[Path, Path]:
        """Write ``<prefix>.tif`` (zlib-compressed ImageJ TIFF with the voxel size),
        ``<prefix>.gold.swc`` and, when the stack holds clutter, ``<prefix>.clutter.swc``
        (:attr:`clutter_model`); refuses to overwrite any without ``force`` (with it, a
        ``<prefix>.clutter.swc`` left by an earlier render is removed when this one has no
        clutter). Returns the stack's and the gold's paths."""
        from morph.io import check_output, write_stack, write_swc

        prefix = Path(prefix)
        tif = prefix.with_name(prefix.name + ".tif")
        swc = prefix.with_name(prefix.name + ".gold.swc")
        cl = clutter_path(prefix)
        check_output(tif, force=force)
        check_output(swc, force=force)
        check_output(cl, force=force)
        write_stack(tif, self.data, self.voxel_size, force=force)
        p = self.params
        extra = [
            f"synthetic stack {tif.name}: {p.modality}, shape (z, y, x) {self.data.shape}, "
            f"voxel (x y z) {' '.join(f'{v:g}' for v in self.voxel_size)} um",
            "frame: voxel (k, j, i) is centred at (i*vx, j*vy, k*vz) um",
            "origin of the stack in the source cell's coordinates (um): "
            + " ".join(f"{v:.3f}" for v in self.origin),
        ]
        write_swc(self.gold, swc, force=force, extra_header=extra)
        if self.clutter_model is not None and len(self.clutter_model):
            c = self.clutter_model
            roots = c.parent < 0
            single = roots & (np.bincount(c.parent[~roots], minlength=len(c)) == 0)
            write_swc(c, cl, force=force, extra_header=extra[1:] + [
                f"clutter of {tif.name}: {int(roots.sum() - single.sum())} fragments of other cells (unbranched "
                f"chains) and {int(single.sum())} debris balls (single nodes), SWC type 0, radius as drawn; "
                "not part of the gold"])
        elif cl.exists() and force:
            cl.unlink()
        return tif, swc


def clutter_path(prefix: str | Path) -> Path:
    """Where :meth:`SyntheticStack.save` writes the clutter of ``<prefix>.tif``."""
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + ".clutter.swc")


# ---------------------------------------------------------------------------- geometry
def clip_to_box(m: Morphology, lo: NDArray, hi: NDArray) -> Morphology:
    """Clip a tree to the box ``[lo, hi]``: nodes outside are dropped, an edge crossing a
    face ends (or starts, as a new root) at the crossing point. Edges with both ends
    outside are dropped even if they pass through the box."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    inside = np.all((m.xyz >= lo) & (m.xyz <= hi), axis=1)
    if inside.all():
        return m
    n = len(m)
    par = m.parent
    has = par >= 0
    child = np.flatnonzero(has)
    pin = np.zeros(n, dtype=bool)
    pin[child] = inside[par[child]]
    enter = child[inside[child] & ~pin[child]]  # child in, parent out: new root at the face
    leave = child[~inside[child] & pin[child]]  # child out, parent in: new tip at the face

    def crossing(a: NDArray, b: NDArray) -> NDArray:
        """Point where the segment from inside point a to outside point b leaves the box."""
        d = b - a
        with np.errstate(divide="ignore", invalid="ignore"):
            t_hi = np.where(d > 0, (hi - a) / d, np.inf)
            t_lo = np.where(d < 0, (lo - a) / d, np.inf)
        t = np.clip(np.minimum(t_hi, t_lo).min(axis=1), 0.0, 1.0)
        return a + t[:, None] * d

    kept = np.flatnonzero(inside)
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[kept] = np.arange(kept.size)
    k = kept.size
    xyz = [m.xyz[kept]]
    radius = [m.radius[kept]]
    types = [m.types[kept]]
    parent = np.where(par[kept] >= 0, new_index[np.maximum(par[kept], 0)], -1)
    # entering edges: a root at the face, the kept child hangs from it
    e_idx = k + np.arange(enter.size)
    xyz.append(crossing(m.xyz[enter], m.xyz[par[enter]]))
    radius.append(m.radius[enter])
    types.append(m.types[enter])
    parent[new_index[enter]] = e_idx
    parents = [parent, np.full(enter.size, -1, dtype=np.int64)]
    # leaving edges: a tip at the face
    xyz.append(crossing(m.xyz[par[leave]], m.xyz[leave]))
    radius.append(m.radius[leave])
    types.append(m.types[leave])
    parents.append(new_index[par[leave]])
    return m._derive(
        xyz=np.vstack(xyz),
        radius=np.concatenate(radius),
        types=np.concatenate(types),
        parent=np.concatenate(parents),
        ids=None,
    )


def _split_edges(a: NDArray, b: NDArray, r: NDArray, s: NDArray, max_len: float):
    """Cut segments longer than ``max_len`` into equal pieces (tight bounding boxes)."""
    length = np.linalg.norm(b - a, axis=1)
    k = np.maximum(1, np.ceil(length / max_len).astype(np.int64))
    if (k == 1).all():
        return a, b, r, s
    e = np.repeat(np.arange(a.shape[0]), k)
    j = np.arange(e.size) - np.repeat(np.cumsum(k) - k, k)
    t0 = (j / k[e])[:, None]
    t1 = ((j + 1) / k[e])[:, None]
    d = b[e] - a[e]
    return a[e] + t0 * d, a[e] + t1 * d, r[e], s[e]


def _render_segments(
    dens: NDArray[np.uint16],
    a: NDArray,
    b: NDArray,
    r: NDArray,
    stain: NDArray,
    vs: NDArray,
    psf: tuple[float, float],
    *,
    desc: str = "segments",
    trunc: float = 3.5,
) -> None:
    """Max-combine PSF-blurred tubes into ``dens`` (see the module docstring)."""
    from morph.progress import bar

    nz, ny, nx = dens.shape
    shape_xyz = np.array([nx, ny, nz])
    # tube cross-section variance + PSF + the voxel footprint (box of width v: v^2 / 12),
    # so that sampling at voxel centres approximates integrating over each voxel
    sxy = np.sqrt(r**2 / 4 + psf[0] ** 2 + float(vs[0] * vs[1]) / 12)
    sz = np.sqrt(r**2 / 4 + psf[1] ** 2 + float(vs[2]) ** 2 / 12)
    d = b - a
    length = np.linalg.norm(d, axis=1)
    u = np.divide(d, length[:, None], out=np.zeros_like(d), where=length[:, None] > 0)
    # cross-section integral of the Gaussian line (2 pi sxy^2 sz sqrt(u' M u))
    integ = 2 * np.pi * sxy**2 * sz * np.sqrt((u[:, 0] ** 2 + u[:, 1] ** 2) / sxy**2 + u[:, 2] ** 2 / sz**2)
    # in-focus optical density of a horizontal tube: its cross-section spread by the lateral
    # blur (pi r^2 / (sqrt(2 pi) sxy)); the z profile (sz) is how fast it leaves focus
    amp = np.pi * r**2 * stain * math.sqrt(2 * math.pi) * sz / integ
    ext = np.stack([trunc * sxy, trunc * sxy, trunc * sz], axis=1)
    lo_v = np.floor((np.minimum(a, b) - ext) / vs).astype(np.int64)
    hi_v = np.ceil((np.maximum(a, b) + ext) / vs).astype(np.int64) + 1
    lo_v = np.maximum(lo_v, 0)
    hi_v = np.minimum(hi_v, shape_xyz)
    ok = np.all(hi_v > lo_v, axis=1) & (amp > 1e-5)
    t2 = trunc * trunc
    for i in bar(np.flatnonzero(ok), total=int(ok.sum()), desc=desc, unit="seg"):
        x0, y0, z0 = lo_v[i]
        x1, y1, z1 = hi_v[i]
        s = np.array([sxy[i], sxy[i], sz[i]])
        ai = a[i] / s
        ab = d[i] / s
        gx = (np.arange(x0, x1) * vs[0] / s[0] - ai[0])[None, None, :]
        gy = (np.arange(y0, y1) * vs[1] / s[1] - ai[1])[None, :, None]
        gz = (np.arange(z0, z1) * vs[2] / s[2] - ai[2])[:, None, None]
        l2 = float(ab @ ab)
        if l2 > 0:
            t = np.clip((gx * ab[0] + gy * ab[1] + gz * ab[2]) / l2, 0.0, 1.0)
            q = (gx - t * ab[0]) ** 2 + (gy - t * ab[1]) ** 2 + (gz - t * ab[2]) ** 2
        else:
            q = gx**2 + gy**2 + gz**2
        v = amp[i] * np.exp(-0.5 * q)
        v[q > t2] = 0.0
        box = dens[z0:z1, y0:y1, x0:x1]
        np.maximum(box, np.minimum(v * _SCALE, 65535.0).astype(np.uint16), out=box)


def _render_balls(
    dens: NDArray[np.uint16],
    centres: NDArray,
    radii: NDArray,
    stain: NDArray,
    vs: NDArray,
    psf: tuple[float, float],
) -> None:
    """Max-combine anti-aliased balls, blurred by the PSF in their local box."""
    from scipy import ndimage as ndi

    nz, ny, nx = dens.shape
    shape_xyz = np.array([nx, ny, nz])
    for c, rad, st in zip(centres, radii, stain):
        ext = np.array([rad + 4 * psf[0], rad + 4 * psf[0], rad + 4 * psf[1]]) + vs
        lo = np.maximum(np.floor((c - ext) / vs).astype(np.int64), 0)
        hi = np.minimum(np.ceil((c + ext) / vs).astype(np.int64) + 1, shape_xyz)
        if np.any(hi <= lo):
            continue
        gx = (np.arange(lo[0], hi[0]) * vs[0] - c[0])[None, None, :]
        gy = (np.arange(lo[1], hi[1]) * vs[1] - c[1])[None, :, None]
        gz = (np.arange(lo[2], hi[2]) * vs[2] - c[2])[:, None, None]
        dist = np.sqrt(gx**2 + gy**2 + gz**2)
        occ = np.clip(0.5 + (rad - dist) / float(vs.min()), 0.0, 1.0)
        occ *= 2.0 * rad  # projected thickness through the centre (a flat-topped ball)
        v = ndi.gaussian_filter(occ, (psf[1] / vs[2], psf[0] / vs[1], psf[0] / vs[0]), mode="constant")
        v *= st
        box = dens[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
        np.maximum(box, np.minimum(v * _SCALE, 65535.0).astype(np.uint16), out=box)


# ---------------------------------------------------------------------------- staining
def _edge_stain(m: Morphology, p: RenderParams, rng: np.random.Generator) -> NDArray[np.float64]:
    """Stain factor of every node's edge to its parent (section factor x thin fade x
    gaps)."""
    n = len(m)
    sid = m.section_id
    nsec = m.sections.n
    sigma = math.sqrt(math.log(1 + p.stain_cv**2)) if p.stain_cv > 0 else 0.0
    sec_f = (
        np.exp(rng.normal(-(sigma**2) / 2, sigma, size=max(nsec, 1))) if sigma > 0 else np.ones(max(nsec, 1))
    )
    f = np.where(sid >= 0, sec_f[np.maximum(sid, 0)], 1.0)
    r = m.radius
    if p.thin_fade > 0:
        f = f * np.minimum(1.0, (np.maximum(r, 1e-3) / p.thin_radius) ** p.thin_fade)
    if p.bead_amplitude > 0 and n > 1:
        # varicosities: stain bumps every ~bead_spacing um along thin neurites
        sec_phase = rng.uniform(0, 2 * np.pi, size=max(nsec, 1))
        sec_period = p.bead_spacing * rng.uniform(0.7, 1.3, size=max(nsec, 1))
        sp = np.maximum(sid, 0)
        wave = np.sin(2 * np.pi * m.path_distance / sec_period[sp] + sec_phase[sp])
        thin = (sid >= 0) & (r < p.bead_radius)
        f = np.where(thin, f * (1 + p.bead_amplitude * np.maximum(wave, 0) ** 6), f)
    if p.gap_rate > 0 and n > 1:
        # gap centres along the cable, in path-distance terms, per section
        pd = m.path_distance
        el = m.neurite_edge_length
        total = float(el.sum())
        n_gaps = rng.poisson(p.gap_rate * total)
        if n_gaps:
            w = el / total
            centres = rng.choice(n, size=n_gaps, p=w)
            half = rng.uniform(*p.gap_length, size=n_gaps) / 2
            for c, h in zip(centres, half):
                same = (sid == sid[c]) & (np.abs(pd - pd[c]) <= h)
                f[same] *= 1.0 - p.gap_depth
    return f


# ---------------------------------------------------------------------------- clutter
def _clutter(
    gold: Morphology, shape_xyz: NDArray, vs: NDArray, p: RenderParams, rng: np.random.Generator
) -> tuple[tuple[NDArray, ...], tuple[NDArray, ...], list[NDArray]]:
    """Debris balls (centres, radii, stain), fragment segments (a, b, r, stain) and each
    fragment's points (its segments run between consecutive points)."""
    from scipy.spatial import cKDTree

    ext = shape_xyz * vs
    vol = float(np.prod(ext)) / 1e6
    pts = gold.resample(1.0).xyz if len(gold) > 1 else gold.xyz
    tree = cKDTree(pts) if len(pts) else None
    rad_gold = float(gold.radius.max(initial=1.0))

    def clear(x: NDArray, margin: float) -> NDArray[np.bool_]:
        if tree is None:
            return np.ones(len(x), dtype=bool)
        d, _ = tree.query(x)
        return d > margin + p.clutter_clearance + min(rad_gold, 8.0)

    nb = rng.poisson(p.debris_density * vol)
    c = rng.uniform(0, 1, size=(nb, 3)) * ext
    rr = rng.uniform(*p.debris_radius, size=nb)
    st = rng.uniform(*p.debris_stain, size=nb)
    keep = clear(c, 0.0) if nb else np.zeros(0, dtype=bool)
    balls = (c[keep], rr[keep], st[keep])
    nf = rng.poisson(p.fragment_density * vol)
    A, B, R, S = [], [], [], []
    chains: list[NDArray] = []
    for _ in range(nf):
        length = rng.uniform(*p.fragment_length)
        nseg = max(2, int(length))
        d = rng.normal(size=3)
        d[2] *= 0.4
        d /= np.linalg.norm(d)
        steps = np.empty((nseg, 3))
        for k in range(nseg):
            d = d + rng.normal(scale=0.2, size=3) * np.array([1, 1, 0.4])
            d /= np.linalg.norm(d)
            steps[k] = d
        start = rng.uniform(0, 1, size=3) * ext
        path = start + np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])
        ok = clear(path, 0.0)
        # keep the longest run of points clear of the neuron
        runs = np.split(np.arange(len(path)), np.flatnonzero(np.diff(ok.astype(int))) + 1)
        runs = [q for q in runs if ok[q[0]] and len(q) >= 5]
        if not runs:
            continue
        q = max(runs, key=len)
        seg = path[q]
        r0 = rng.uniform(*p.fragment_radius)
        chains.append(seg)
        A.append(seg[:-1])
        B.append(seg[1:])
        R.append(np.full(len(seg) - 1, r0))
        S.append(np.full(len(seg) - 1, rng.uniform(0.4, 1.0)))
    if A:
        segs = (np.vstack(A), np.vstack(B), np.concatenate(R), np.concatenate(S))
    else:
        z = np.zeros((0, 3))
        segs = (z, z, np.zeros(0), np.zeros(0))
    return balls, segs, chains


def clutter_morphology(
    balls: tuple[NDArray, ...], segs: tuple[NDArray, ...], chains: list[NDArray], voxel_size: NDArray
) -> Morphology:
    """The clutter as a forest in the stack's frame: each fragment of another cell an
    unbranched chain of SWC type 0 with the radius it was drawn with, each debris ball a
    single node of type 0 with its radius."""
    xyz, rad, par = [], [], []
    n = 0
    r_seg = segs[2]
    k = 0
    for c in chains:
        xyz.append(c)
        rad.append(np.full(len(c), float(r_seg[k]) if r_seg.size else 0.0))
        par.append(np.r_[-1, n + np.arange(len(c) - 1)])
        n += len(c)
        k += len(c) - 1
    if len(balls[0]):
        xyz.append(balls[0])
        rad.append(balls[1])
        par.append(np.full(len(balls[0]), -1))
    if not xyz:
        z = np.zeros(0)
        return Morphology(np.zeros((0, 3)), z, z.astype(np.int64), z.astype(np.int64), units="um",
                          voxel_size=tuple(float(v) for v in voxel_size))
    x = np.vstack(xyz)
    return Morphology(x, np.concatenate(rad), np.zeros(len(x), dtype=np.int64), np.concatenate(par).astype(np.int64),
                      units="um", voxel_size=tuple(float(v) for v in voxel_size))


# ---------------------------------------------------------------------------- optics
def _smooth_noise_2d(shape: tuple[int, int], sigma_px: float, rng: np.random.Generator) -> NDArray:
    """Zero-mean, unit-std smooth random field (computed coarse, upsampled)."""
    from scipy import ndimage as ndi

    f = max(1, int(sigma_px // 4))
    small = (max(2, shape[0] // f + 2), max(2, shape[1] // f + 2))
    g = ndi.gaussian_filter(rng.normal(size=small), sigma_px / f, mode="wrap")
    g = ndi.zoom(g, (shape[0] / small[0] * 1.0001, shape[1] / small[1] * 1.0001), order=1)[
        : shape[0], : shape[1]
    ]
    if g.shape != shape:
        g = np.pad(g, [(0, shape[0] - g.shape[0]), (0, shape[1] - g.shape[1])], mode="edge")
    sd = g.std()
    return (g - g.mean()) / (sd if sd > 0 else 1.0)


def _upsample_axis(lo: NDArray, n_out: int, factor: int, axis: int) -> NDArray:
    """Linear interpolation of a coarse grid (cell-centred blocks of ``factor``) to
    ``n_out`` samples along ``axis``."""
    pos = (np.arange(n_out) + 0.5) / factor - 0.5
    pos = np.clip(pos, 0, lo.shape[axis] - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, lo.shape[axis] - 1)
    w = (pos - i0).astype(np.float32)
    shape = [1] * lo.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    return np.take(lo, i0, axis=axis) * (1 - w) + np.take(lo, i1, axis=axis) * w


def render_stack(
    m: Morphology,
    params: RenderParams | None = None,
    *,
    preset: str = "realistic",
    **overrides: Any,
) -> SyntheticStack:
    """Render a reconstruction into a synthetic stack.

    Parameters
    ----------
    m
        The cell, in micrometres (a cell in voxel units is converted with its own voxel
        size).
    params
        A :class:`RenderParams`; default :func:`render_params` of ``preset``.
    preset
        ``easy``, ``realistic`` or ``hard``.
    **overrides
        Fields of :class:`RenderParams` (``modality``, ``voxel_size``, ``seed``...).

    Returns
    -------
    SyntheticStack
        The ``uint8`` stack, its voxel size and the gold tree in the stack's frame.
    """
    from scipy import ndimage as ndi

    from morph.progress import bar, stages

    if params is None:
        params = render_params(preset, **overrides)
    elif overrides:
        params = replace(params, **overrides)
    p = params
    if len(m) == 0:
        raise MorphError("cannot render an empty morphology")
    if m.units == "voxel":
        m = m.to_micrometres()
    vs = np.asarray(p.voxel_size, dtype=np.float64)
    rng = np.random.default_rng(p.seed)

    # ---- frame: bounding box (+ radius + margin), optionally cropped around the soma
    lo = (m.xyz - m.radius[:, None]).min(axis=0) - p.margin
    hi = (m.xyz + m.radius[:, None]).max(axis=0) + p.margin
    if p.crop is not None:
        centre = m.soma_center if m.soma_nodes.size else 0.5 * (lo + hi)
        half = np.asarray(p.crop, dtype=np.float64) / 2
        if p.pad_to_crop:
            lo, hi = centre - half, centre + half
        else:
            lo = np.maximum(lo, centre - half)
            hi = np.minimum(hi, centre + half)
        if np.any(hi <= lo):
            raise MorphError("the crop box does not overlap the cell")
    shape_xyz = np.maximum(1, np.round((hi - lo) / vs).astype(np.int64) + 1)
    nvox = int(np.prod(shape_xyz))
    if nvox > 4e9:
        raise MorphError(
            f"the stack would have {nvox / 1e9:.1f} G voxels ({shape_xyz[0]} x {shape_xyz[1]} x {shape_xyz[2]})",
            hint="use a coarser voxel size or a crop",
        )
    from morph.progress import info, warn

    info(f"stack {shape_xyz[0]} x {shape_xyz[1]} x {shape_xyz[2]} voxels ({nvox / 1e6:.0f} MB as uint8)")
    if nvox > 5e8:
        warn(
            f"a large stack ({nvox / 1e6:.0f} M voxels): rendering needs about {5 * nvox / 1e9:.1f} GB of memory "
            "and minutes; a crop, a smaller cell or coarser voxels make it quicker"
        )
    origin = lo
    cell = m.translate(-origin)
    ext_lo = np.zeros(3)
    ext_hi = (shape_xyz - 1) * vs
    gold = clip_to_box(cell, ext_lo, ext_hi) if p.crop is not None else cell
    gold = gold._derive(voxel_size=tuple(float(v) for v in vs), units="um")
    nx, ny, nz = (int(v) for v in shape_xyz)
    psf = (p.psf_sigma_xy, p.psf_sigma_z)

    with stages(["staining", "neuron", "soma", "clutter", "haze", "optics"], desc="synth") as st:
        st.start("staining")
        stain = _edge_stain(cell, p, rng)
        st.step("staining")
        dens = np.zeros((nz, ny, nx), dtype=np.uint16)
        child = np.flatnonzero(cell.parent >= 0)
        par = cell.parent[child]
        keep = ~(cell.soma_mask[child] | cell.soma_mask[par])
        # edges leaving the soma: drawn with the child's radius
        from_soma = ~cell.soma_mask[child] & cell.soma_mask[par]
        r_edge = np.where(
            from_soma, cell.radius[child], 0.5 * (cell.radius[child] + cell.radius[np.maximum(par, 0)])
        )
        sel = keep | from_soma
        a, b, rr, ss = _split_edges(
            cell.xyz[par[sel]], cell.xyz[child[sel]], r_edge[sel], stain[child[sel]], max_len=3.0
        )
        _render_segments(dens, a, b, rr, ss, vs, psf, desc="neuron")
        st.step("neuron")
        if cell.soma_nodes.size:
            c = cell.soma_center[None, :]
            _render_balls(dens, c, np.array([cell.soma_radius]), np.array([p.soma_density]), vs, psf)
        st.step("soma")
        balls, frags, chains = _clutter(cell, shape_xyz, vs, p, rng)
        if len(balls[0]):
            _render_balls(dens, balls[0], balls[1], balls[2], vs, psf)
        if len(frags[0]):
            _render_segments(dens, *frags, vs, psf, desc="fragments")
        st.step("clutter")

        # ---- haze: wide blur of the density on a coarse grid
        fxy = max(1, int(round(p.haze_sigma_xy / vs[0] / 3)))
        fz = max(1, int(round(p.haze_sigma_z / vs[2] / 3)))
        cz, cy, cx = -(-nz // fz), -(-ny // fxy), -(-nx // fxy)
        coarse = np.zeros((cz, cy, cx), dtype=np.float32)
        for z0 in range(0, nz, fz):
            blk = dens[z0 : z0 + fz].astype(np.float32).sum(axis=0)
            py, px = cy * fxy - ny, cx * fxy - nx
            blk = np.pad(blk, ((0, py), (0, px)))
            coarse[z0 // fz] = blk.reshape(cy, fxy, cx, fxy).sum(axis=(1, 3))
        counts = np.full(coarse.shape, float(fz * fxy * fxy), dtype=np.float32)
        coarse /= counts * _SCALE
        haze = ndi.gaussian_filter(
            coarse,
            (p.haze_sigma_z / (vs[2] * fz), p.haze_sigma_xy / (vs[1] * fxy), p.haze_sigma_xy / (vs[0] * fxy)),
            mode="nearest",
        )
        st.step("haze")

        # ---- optics + camera, slab by slab
        out = np.empty((nz, ny, nx), dtype=np.uint8)
        illum = (
            _smooth_noise_2d((ny, nx), p.illumination_scale / vs[0], rng).astype(np.float32) * p.illumination
        )
        texture = _Texture(p, vs, rng, (ny, nx))
        slab = max(1, int(4e6 // max(1, nx * ny)))
        pool = _NoisePool(rng, slab * ny * nx)
        haze_z = _upsample_axis(haze, nz, fz, 0)
        bf = p.modality == "brightfield"
        k_v = np.float32(p.absorbance * (1 - p.haze) / (_SCALE * p.max_od))
        k_h = np.float32(p.absorbance * p.haze / p.max_od)
        max_od = np.float32(p.max_od)
        starts = range(0, nz, slab)
        for z0 in bar(starts, total=len(starts), desc="optics", unit="slab"):
            z1 = min(nz, z0 + slab)
            # optical density in units of max_od, then soft saturation 1 - exp(-x)
            od = dens[z0:z1].astype(np.float32)
            od *= k_v
            hz = np.repeat(np.repeat(haze_z[z0:z1], fxy, axis=1)[:, :ny], fxy, axis=2)[:, :, :nx]
            hz *= k_h
            od += hz
            del hz
            np.negative(od, out=od)
            np.exp(od, out=od)  # exp(-x)
            base = texture.slab(z0, z1)
            base += illum[None]
            if bf:
                # transmission exp(-max_od * (1 - exp(-x)))
                od -= 1
                od *= max_od
                np.exp(od, out=od)
                base += np.float32(p.background)
                base *= od
            else:
                od -= 1
                od *= -max_od * np.float32(p.fluo_gain)
                base *= np.float32(0.3)
                base += np.float32(p.fluo_offset)
                base += od
            del od
            # camera: read noise + shot noise (sd grows with the square root of the signal)
            sd = np.maximum(base, 0)
            sd *= np.float32(p.shot_noise**2)
            sd += np.float32(p.read_noise**2)
            np.sqrt(sd, out=sd)
            sd *= pool.draw(base.shape)
            base += sd
            del sd
            np.rint(base, out=base)
            np.clip(base, 0, 255, out=base)
            out[z0:z1] = base
        st.step("optics")
    return SyntheticStack(
        data=out,
        voxel_size=tuple(float(v) for v in vs),  # type: ignore[arg-type]
        gold=gold,
        origin=origin,
        params=p,
        clutter={"debris": int(len(balls[0])), "fragment_segments": int(len(frags[0]))},
        clutter_model=clutter_morphology(balls, frags, chains, vs),
    )


class _NoisePool:
    """Unit Gaussian noise drawn as random windows of one large pre-drawn pool (drawing
    fresh normals for every voxel of a large stack would dominate the run time)."""

    def __init__(self, rng: np.random.Generator, window: int, size: int = 1 << 24) -> None:
        self.rng = rng
        self.size = max(size, 2 * window)
        self.pool = rng.standard_normal(self.size + window, dtype=np.float32)

    def draw(self, shape: tuple[int, ...]) -> NDArray[np.float32]:
        n = int(np.prod(shape))
        off = int(self.rng.integers(0, self.size))
        return self.pool[off : off + n].reshape(shape)


class _Texture:
    """Fine tissue texture (``texture`` grey levels standard deviation): the sum of two
    periodic tiles of Gaussian-filtered noise of coprime sizes, so that no repeat shows
    in x/y; along z the tiles are :data:`TEXTURE_TILE_Z` slices deep, so that the texture
    of one x-y position repeats only that many slices apart (tiles a few slices deep stack a
    dark texture grain above itself every few slices: a column through the whole stack that
    looks like a neurite running along z)."""

    def __init__(
        self, p: RenderParams, vs: NDArray, rng: np.random.Generator, plane: tuple[int, int]
    ) -> None:
        from scipy import ndimage as ndi

        ny, nx = plane
        sig = (max(0.5, p.texture_sigma_z / vs[2]), p.texture_sigma / vs[1], p.texture_sigma / vs[0])
        self.tiles: list[NDArray[np.float32]] = []
        self.index: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        for shape in ((TEXTURE_TILE_Z[0], 192, 192), (TEXTURE_TILE_Z[1], 181, 173)):
            t = ndi.gaussian_filter(rng.standard_normal(shape), sig, mode="wrap")
            sd = float(t.std())
            t *= p.texture / (sd * math.sqrt(2)) if sd > 0 else 0.0
            oy, ox = (int(v) for v in rng.integers(0, 1000, size=2))
            self.tiles.append(t.astype(np.float32))
            self.index.append(((np.arange(ny) + oy) % shape[1], (np.arange(nx) + ox) % shape[2]))

    def slab(self, z0: int, z1: int) -> NDArray[np.float32]:
        out: NDArray[np.float32] | None = None
        for t, (iy, ix) in zip(self.tiles, self.index, strict=True):
            part = t[np.arange(z0, z1) % t.shape[0]][:, iy][:, :, ix]
            out = part if out is None else out + part
        assert out is not None
        return out


#: Depth in slices of the texture's two tiles (coprime: the sum repeats every 3776 slices).
TEXTURE_TILE_Z = (64, 59)


__all__ = ["PRESETS", "RenderParams", "SyntheticStack", "clip_to_box", "render_params", "render_stack"]
