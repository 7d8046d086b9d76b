"""The soma's outline that ``morph trace`` measures and writes to the SWC header.

SWC has no standard contour soma (NeuroM and MorphIO read a ring of soma nodes as a stack of
cylinders), so a traced cell keeps one soma node (the Allen convention, which the features
read) and its outline in the x-y plane through the soma's centre travels in one header line
(``# soma outline: ...``). :func:`outline_from_header` reads that line back;
:func:`traced_outline` also checks that it still belongs to the cell's soma. Measuring it is
the tracer's (:func:`morph.tracing.soma.measure_soma_outline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from morph.morphology import Morphology

_OUTLINE_TAG = "soma outline:"


@dataclass
class SomaOutline:
    """The soma's outline in the x-y plane through its centre: the distance from the centre
    to the soma's edge (where the image falls half way from the soma's core to the
    background) along ``angles`` (radians from +x, towards +y).

    Attributes
    ----------
    centre
        ``(x, y, z)`` micrometres.
    angles, radii
        Directions and edge distances (um), ``n`` each.
    replaced
        Directions whose own crossing was not used (a stem leaving there, or no crossing):
        their radius is the median of their neighbours'.
    """

    centre: NDArray[np.float64]
    angles: NDArray[np.float64]
    radii: NDArray[np.float64]
    replaced: NDArray[np.bool_]

    @property
    def points(self) -> NDArray[np.float64]:
        """The outline's vertices ``(n, 3)`` in micrometres (z the centre's)."""
        e = np.stack([np.cos(self.angles), np.sin(self.angles), np.zeros_like(self.angles)], axis=1)
        return self.centre[None, :] + self.radii[:, None] * e

    @property
    def area(self) -> float:
        """Area enclosed (um^2; shoelace formula over the vertices)."""
        p = self.points[:, :2]
        q = np.roll(p, -1, axis=0)
        return float(0.5 * abs(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1])))

    @property
    def perimeter(self) -> float:
        """Length of the closed outline (um)."""
        p = self.points[:, :2]
        return float(np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1).sum())

    @property
    def equivalent_radius(self) -> float:
        """Radius of the disc of the same area (um)."""
        return float(np.sqrt(self.area / np.pi))

    def radius_at(self, angles: NDArray[np.float64]) -> NDArray[np.float64]:
        """The outline's distance from the centre along x-y directions ``angles`` (radians
        from +x towards +y), interpolated linearly between its directions, around the circle."""
        a = np.r_[self.angles, self.angles[0] + 2.0 * np.pi]
        r = np.r_[self.radii, self.radii[0]]
        return np.interp(np.mod(np.asarray(angles, dtype=np.float64) - self.angles[0], 2.0 * np.pi) + self.angles[0], a, r)

    def axes(self) -> tuple[float, float, float]:
        """Semi-axes (major, minor, um) of the ellipse with the enclosed region's area and
        second moments, and the major axis's direction (degrees from +x towards +y, in
        [0, 180))."""
        p = self.points[:, :2] - self.centre[None, :2]
        q = np.roll(p, -1, axis=0)
        cross = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]  # twice the signed area of each fan triangle
        a2 = cross.sum()
        if abs(a2) < 1e-12:
            return 0.0, 0.0, 0.0
        cx = np.sum((p[:, 0] + q[:, 0]) * cross) / (3.0 * a2)
        cy = np.sum((p[:, 1] + q[:, 1]) * cross) / (3.0 * a2)
        # second moments of the polygon about the origin, then about its centroid
        ixx = np.sum((p[:, 0] ** 2 + p[:, 0] * q[:, 0] + q[:, 0] ** 2) * cross) / 12.0
        iyy = np.sum((p[:, 1] ** 2 + p[:, 1] * q[:, 1] + q[:, 1] ** 2) * cross) / 12.0
        ixy = np.sum((p[:, 0] * q[:, 1] + 2 * p[:, 0] * p[:, 1] + 2 * q[:, 0] * q[:, 1] + q[:, 0] * p[:, 1]) * cross) / 24.0
        area = 0.5 * a2
        cov = np.array([[ixx / area - cx * cx, ixy / area - cx * cy], [ixy / area - cx * cy, iyy / area - cy * cy]])
        w, v = np.linalg.eigh(cov)
        w = np.clip(w, 0.0, None)
        major, minor = 2.0 * np.sqrt(w[1]), 2.0 * np.sqrt(w[0])  # an ellipse's variance is a^2 / 4
        ang = float(np.degrees(np.arctan2(v[1, 1], v[0, 1])) % 180.0)
        return float(major), float(minor), ang

    def header_line(self) -> str:
        """One SWC header line holding the outline (read back by :func:`outline_from_header`)."""
        major, minor, ang = self.axes()
        step = float(np.degrees(self.angles[1] - self.angles[0])) if self.angles.size > 1 else 0.0
        c = self.centre
        return (
            f"{_OUTLINE_TAG} centre {c[0]:.2f} {c[1]:.2f} {c[2]:.2f} um; x-y plane through it, where the image "
            f"falls half way from the soma's core to the background; area {self.area:.1f} um^2, perimeter "
            f"{self.perimeter:.1f} um, equivalent radius {self.equivalent_radius:.2f} um, axes {major:.2f} x "
            f"{minor:.2f} um (major at {ang:.0f} deg from +x); {int(self.replaced.sum())} of {self.radii.size} "
            f"directions replaced by their neighbours (stems, marked *); radii (um) every {step:g} deg from +x "
            f"towards +y: " + " ".join(f"{r:.2f}{'*' if b else ''}" for r, b in zip(self.radii, self.replaced))
        )


def outline_from_header(header: list[str]) -> SomaOutline | None:
    """The :class:`SomaOutline` a traced SWC's header holds (``morph trace`` writes it when
    it found a soma), or None."""
    for h in header:
        h = h.lstrip("# ").strip()
        if not h.startswith(_OUTLINE_TAG):
            continue
        try:
            c = np.array([float(v) for v in h.split("centre", 1)[1].split("um", 1)[0].split()])
            tail = h.rsplit("radii (um) every", 1)[1]
            step = float(tail.split("deg", 1)[0])
            words = tail.split(":", 1)[1].split()
            radii = np.array([float(v.rstrip("*")) for v in words])
        except (IndexError, ValueError):
            return None
        if c.size != 3 or radii.size < 3:
            return None
        a = np.deg2rad(step) * np.arange(radii.size)
        return SomaOutline(c, a, radii, np.array([v.endswith("*") for v in words]))
    return None


def traced_outline(m: Morphology) -> SomaOutline | None:
    """The outline in ``m``'s header when it still belongs to ``m``'s soma: None when there
    is none, or when its centre is more than a micrometre (or a quarter of the soma radius)
    from the soma's centre (a cell moved or edited since keeps a stale header)."""
    if not any(_OUTLINE_TAG in h for h in m.header):
        return None
    o = outline_from_header(list(m.header))
    if o is None or not m.soma_nodes.size:
        return None
    r = float(m.soma_radius)
    if not np.isfinite(r) or np.linalg.norm(o.centre - m.soma_center) > max(1.0, 0.25 * r):
        return None
    return o
