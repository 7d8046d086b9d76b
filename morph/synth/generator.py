"""Procedural, seeded neuron morphologies (ground truth for synthetic stacks).

The generator grows a cell section by section from a single-point soma:

* **basal dendrites** (3-9 by default) leave the soma surface in random directions (their
  z component, and that of every random turn, damped by ``flatten_z``, so that cells are
  flatter in z as in a tissue slice), wander with a persistent random walk
  (``tortuosity``) with a mild outward bias, and bifurcate at the end of each section until
  a per-stem path-length budget (``basal_extent``) or ``max_branch_order`` is reached.
  Section lengths are gamma-distributed and grow with branch order (short proximal
  sections, long terminal ones), as in real dendrites.
* an optional **apical dendrite** (``pyramidal`` cells) runs towards the pia, which is at
  **-y** (the top of an image of an upright slice, where row 0 is at the top; rotate the
  result for the "+y is pia" convention of upright Allen files), thick and straight, gives off thinner oblique branches along the way
  and ends in a branching **tuft**.
* the **axon** leaves the soma (downwards) or, with probability ``axon_on_dendrite``, a
  basal dendrite 5-25 um from the soma (an axon-carrying dendrite). Its first
  ``ais_length`` um (the axon initial segment) are thin (``ais_radius``); the main axon
  then runs ``axon_length`` um with a few collaterals.
* **radii** taper exponentially along each section (``taper`` per um) and drop at every
  bifurcation to ``daughter_ratio`` of the parent's (with jitter; 0.63 would be Rall's 3/2
  power rule for equal daughters, real dendrites are usually closer to 0.7-0.8); they
  never get thinner than ``min_radius``; terminal sections thin linearly to a tip of
  1-1.3 x ``min_radius``, so distal dendrites end under 0.5 um in diameter.

Everything is in micrometres, soma at the origin, nodes about ``step`` um apart. The same
seed and parameters always give the same cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from morph.errors import MorphError
from morph.morphology import APICAL, AXON, BASAL, SOMA, Morphology
from morph.synth._check import POSITIVE, Limit, check_fields


@dataclass
class NeuronParams:
    """Every knob of :func:`generate_neuron` (lengths in micrometres, angles in degrees).

    ``cell_type`` selects the defaults of :data:`CELL_TYPES`; any field given explicitly
    overrides them.
    """

    cell_type: str = "pyramidal"
    scale: float = 1.0
    soma_radius: tuple[float, float] = (5.0, 7.5)
    n_basal: tuple[int, int] = (3, 9)
    basal_radius: tuple[float, float] = (0.7, 1.1)
    basal_extent: float = 140.0
    section_length: float = 22.0
    section_length_growth: float = 1.35
    branch_angle: float = 38.0
    branch_angle_sd: float = 12.0
    max_branch_order: int = 6
    apical: bool = True
    apical_length: float = 220.0
    apical_radius: tuple[float, float] = (1.5, 2.0)
    oblique_interval: float = 28.0
    oblique_extent: float = 80.0
    tuft_extent: float = 110.0
    tuft_branches: tuple[int, int] = (2, 3)
    axon: bool = True
    axon_on_dendrite: float = 0.4
    axon_length: float = 450.0
    axon_radius: float = 0.35
    ais_length: float = 30.0
    ais_radius: float = 0.3
    axon_collaterals: tuple[int, int] = (2, 5)
    collateral_extent: float = 120.0
    step: float = 1.0
    tortuosity: float = 0.22
    outward_bias: float = 0.08
    flatten_z: float = 0.4
    taper: float = 0.004
    min_radius: float = 0.18
    daughter_ratio: float = 0.72
    radius_jitter: float = 0.12

    def __post_init__(self) -> None:
        if self.cell_type not in CELL_TYPES:
            raise MorphError(
                f"unknown cell type {self.cell_type!r}", hint="use one of: " + ", ".join(CELL_TYPES)
            )
        check_fields(self, NEURON_LIMITS)


#: The range of each numeric field of :class:`NeuronParams` that is not just "0 or more".
NEURON_LIMITS: dict[str, Limit] = {
    **{name: POSITIVE for name in ("scale", "step", "basal_extent", "section_length", "axon_length")},
    "n_basal": Limit(1),
    "axon_on_dendrite": Limit(0, 1),
}


#: Per cell type defaults (fields of :class:`NeuronParams`).
CELL_TYPES: dict[str, dict[str, Any]] = {
    "pyramidal": {},
    "aspiny": {
        "apical": False,
        "n_basal": (4, 8),
        "soma_radius": (4.5, 6.5),
        "basal_radius": (0.6, 0.9),
        "basal_extent": 120.0,
        "section_length": 18.0,
        "tortuosity": 0.3,
        "flatten_z": 0.5,
        "axon_on_dendrite": 0.3,
        "axon_length": 350.0,
        "axon_collaterals": (4, 8),
        "collateral_extent": 90.0,
    },
}


def neuron_params(cell_type: str = "pyramidal", **overrides: Any) -> NeuronParams:
    """:class:`NeuronParams` with the defaults of ``cell_type`` and ``overrides``."""
    if cell_type not in CELL_TYPES:
        raise MorphError(f"unknown cell type {cell_type!r}", hint="use one of: " + ", ".join(CELL_TYPES))
    fields = {**CELL_TYPES[cell_type], **overrides}
    return NeuronParams(cell_type=cell_type, **fields)


@dataclass
class _Builder:
    rng: np.random.Generator
    p: NeuronParams
    xyz: list[np.ndarray] = field(default_factory=list)
    radius: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)

    def add(self, pos: np.ndarray, r: float, t: int, par: int) -> int:
        self.xyz.append(np.asarray(pos, dtype=np.float64))
        self.radius.append(float(r))
        self.types.append(int(t))
        self.parent.append(int(par))
        return len(self.xyz) - 1

    # ---------------------------------------------------------------- geometry
    def unit(self, v: np.ndarray) -> np.ndarray:
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else np.array([1.0, 0.0, 0.0])

    def flatten(self, d: np.ndarray) -> np.ndarray:
        return self.unit(d * np.array([1.0, 1.0, self.p.flatten_z]))

    def perpendicular(self, d: np.ndarray) -> np.ndarray:
        v = self.rng.normal(size=3)
        v -= v.dot(d) * d
        return self.unit(v)

    def turn(self, d: np.ndarray, angle_deg: float, axis: np.ndarray) -> np.ndarray:
        a = math.radians(angle_deg)
        return self.unit(math.cos(a) * d + math.sin(a) * axis)

    # ---------------------------------------------------------------- growth
    def section(
        self,
        start: int,
        direction: np.ndarray,
        r: float,
        t: int,
        length: float,
        *,
        bias: np.ndarray | None = None,
        bias_weight: float = 0.0,
        tortuosity: float | None = None,
        min_r: float | None = None,
    ) -> tuple[int, np.ndarray, float]:
        """Grow one unbranched section from node ``start``; returns (last node, last
        direction, last radius)."""
        p = self.p
        step = p.step
        n = max(1, int(round(length / step)))
        tort = p.tortuosity if tortuosity is None else tortuosity
        min_r = p.min_radius if min_r is None else min_r
        noise = self.rng.normal(size=(n, 3)) * tort * math.sqrt(step)
        noise[:, 2] *= p.flatten_z
        decay = math.exp(-p.taper * step)
        d = self.unit(direction)
        pos = self.xyz[start].copy()
        node = start
        for i in range(n):
            d = d + noise[i]
            if bias is not None:
                d = d + bias_weight * bias
            d = self.unit(d)
            pos = pos + d * step
            r = max(min_r, r * decay)
            node = self.add(pos, r, t, node)
        return node, d, r

    def taper_tip(self, first: int, last: int, min_r: float | None) -> None:
        """Thin a terminal section linearly down to a tip radius of 1-1.3 x the minimum."""
        floor = self.p.min_radius if min_r is None else min_r
        tip = min(self.radius[last], floor * float(self.rng.uniform(1.0, 1.3)))
        n = last - first + 1
        for k, i in enumerate(range(first, last + 1)):
            f = (k + 1) / n
            self.radius[i] = (1 - f) * self.radius[i] + f * tip

    def tree(
        self,
        start: int,
        direction: np.ndarray,
        r: float,
        t: int,
        extent: float,
        *,
        max_order: int,
        bias: np.ndarray | None = None,
        section_length: float | None = None,
        tortuosity: float | None = None,
        min_r: float | None = None,
    ) -> None:
        """Grow a branching tree until its path-length budget ``extent`` is spent."""
        p = self.p
        base = (section_length or p.section_length) * p.scale
        pending = [(start, self.unit(direction), r, 0, 0.0)]
        while pending:
            node, d, rr, order, path = pending.pop()
            mean = base * p.section_length_growth**order
            length = float(self.rng.gamma(2.5, mean / 2.5))
            length = max(2.0 * p.step, min(length, extent - path))
            first = len(self.xyz)
            end, d_end, r_end = self.section(
                node,
                d,
                rr,
                t,
                length,
                bias=bias,
                bias_weight=p.outward_bias,
                tortuosity=tortuosity,
                min_r=min_r,
            )
            path += length
            if order >= max_order or extent - path < 3.0 * p.step:
                self.taper_tip(first, end, min_r)
                continue
            # bifurcate: two daughters in a random plane through the parent direction
            axis = self.perpendicular(d_end)
            spread = max(10.0, self.rng.normal(p.branch_angle, p.branch_angle_sd))
            share = self.rng.uniform(0.3, 0.7)
            for sign, frac in ((1.0, share), (-1.0, 1.0 - share)):
                nd = self.turn(d_end, sign * spread * 2 * frac, axis)
                nr = r_end * p.daughter_ratio * (1 + p.radius_jitter * self.rng.normal())
                nr = max(min_r or p.min_radius, nr)
                pending.append((end, nd, nr, order + 1, path))


def generate_neuron(seed: int | None = 0, params: NeuronParams | None = None, **overrides: Any) -> Morphology:
    """A procedural neuron (micrometres, soma at the origin, pia towards -y).

    Parameters
    ----------
    seed
        Random seed; the same seed and parameters give the same cell.
    params
        A :class:`NeuronParams` (default: :func:`neuron_params` of ``cell_type``).
    **overrides
        Fields of :class:`NeuronParams` (``cell_type="aspiny"``, ``n_basal=(5, 5)``,
        ``axon_on_dendrite=1.0``, ``scale=0.5``...).

    Returns
    -------
    Morphology
        SWC types 1 (one soma node), 2 axon, 3 basal, 4 apical. The header records the seed
        and the parameters.

    Examples
    --------
    >>> m = generate_neuron(1, cell_type="aspiny")
    >>> m.type_counts()[1]
    1
    """
    if params is None:
        params = neuron_params(overrides.pop("cell_type", "pyramidal"), **overrides)
    elif overrides:
        params = replace(params, **overrides)
    p = params
    rng = np.random.default_rng(seed)
    b = _Builder(rng, p)
    s = p.scale
    soma_r = float(rng.uniform(*p.soma_radius)) * max(s, 0.5)
    soma = b.add(np.zeros(3), soma_r, SOMA, -1)
    up = np.array([0.0, -1.0, 0.0])  # towards the pia: the top rows of an image

    # -- basal dendrites: directions spread around the soma, away from the apical pole
    n_basal = int(rng.integers(p.n_basal[0], p.n_basal[1] + 1))
    dirs = []
    for _ in range(n_basal):
        for _try in range(50):
            d = b.flatten(rng.normal(size=3))
            if p.apical and d.dot(up) > 0.6:
                continue
            if all(d.dot(o) < 0.8 for o in dirs):
                break
        dirs.append(d)
    stems: list[tuple[int, np.ndarray]] = []
    for d in dirs:
        first = b.add(d * soma_r, float(rng.uniform(*p.basal_radius)), BASAL, soma)
        stems.append((first, d))
        extent = p.basal_extent * s * float(rng.uniform(0.6, 1.1))
        b.tree(first, d, b.radius[first], BASAL, extent, max_order=p.max_branch_order, bias=d)

    # -- apical dendrite with obliques and a tuft
    if p.apical:
        d0 = b.flatten(up + 0.15 * rng.normal(size=3))
        r0 = float(rng.uniform(*p.apical_radius))
        node = b.add(d0 * soma_r, r0, APICAL, soma)
        length = p.apical_length * s * float(rng.uniform(0.85, 1.15))
        grown, d, r = 0.0, d0, r0
        interval = p.oblique_interval * s
        while grown < length:
            seg = min(interval * float(rng.uniform(0.7, 1.3)), length - grown)
            node, d, r = b.section(
                node, d, r, APICAL, seg, bias=up, bias_weight=0.25, tortuosity=p.tortuosity * 0.5
            )
            grown += seg
            if grown < length * 0.9:
                side = b.turn(d, float(rng.uniform(50, 80)), b.perpendicular(d))
                ro = max(p.min_radius, r * float(rng.uniform(0.35, 0.5)))
                b.tree(
                    node,
                    side,
                    ro,
                    APICAL,
                    p.oblique_extent * s * float(rng.uniform(0.6, 1.1)),
                    max_order=3,
                    bias=side,
                )
        n_tuft = int(rng.integers(p.tuft_branches[0], p.tuft_branches[1] + 1))
        axis = b.perpendicular(d)
        for k in range(n_tuft):
            ang = -35.0 + 70.0 * (k + 0.5) / n_tuft + float(rng.normal(0, 8))
            td = b.turn(d, ang, axis)
            rt = max(p.min_radius, r * 2 ** (-2 / 3))
            b.tree(
                node, td, rt, APICAL, p.tuft_extent * s * float(rng.uniform(0.8, 1.2)), max_order=4, bias=up
            )

    # -- axon: from the soma or from a basal dendrite (axon-carrying dendrite)
    if p.axon:
        down = -up
        on_dendrite = rng.uniform() < p.axon_on_dendrite
        if on_dendrite:
            # the stem pointing most downwards carries the axon
            k = int(np.argmax([d.dot(down) for _, d in stems]))
            first, dstem = stems[k]
            # walk 5-25 um along the stem's first section
            target = float(rng.uniform(5.0, 25.0)) * max(s, 0.5)
            node, walked = first, 0.0
            kids = _children_lists(b.parent)
            while walked < target and len(kids[node]) == 1:
                nxt = kids[node][0]
                walked += float(np.linalg.norm(b.xyz[nxt] - b.xyz[node]))
                node = nxt
            start = node
            d = b.flatten(0.5 * down + 0.5 * dstem + 0.2 * rng.normal(size=3))
            origin_note = f"axon from a basal dendrite, {walked:.1f} um from the soma"
        else:
            d = b.flatten(down + 0.25 * rng.normal(size=3))
            start = b.add(d * soma_r, p.ais_radius, AXON, soma)
            origin_note = "axon from soma"
        # initial segment: thin, fairly straight
        ais_len = p.ais_length * max(s, 0.5)
        node, d, _ = b.section(
            start,
            d,
            p.ais_radius,
            AXON,
            ais_len,
            bias=down,
            bias_weight=0.1,
            tortuosity=p.tortuosity * 0.5,
            min_r=p.ais_radius,
        )
        remaining = p.axon_length * s
        n_col = int(rng.integers(p.axon_collaterals[0], p.axon_collaterals[1] + 1))
        pieces = max(1, n_col + 1)
        for i in range(pieces):
            seg = remaining / pieces
            node, d, _ = b.section(
                node,
                d,
                p.axon_radius,
                AXON,
                seg,
                bias=down,
                bias_weight=0.05,
                tortuosity=p.tortuosity * 0.6,
                min_r=p.axon_radius * 0.8,
            )
            if i < pieces - 1:
                side = b.turn(d, float(rng.uniform(45, 90)), b.perpendicular(d))
                b.tree(
                    node,
                    side,
                    p.axon_radius * 0.8,
                    AXON,
                    p.collateral_extent * s * float(rng.uniform(0.6, 1.2)),
                    max_order=3,
                    bias=side,
                    min_r=p.axon_radius * 0.6,
                )
    else:
        origin_note = "no axon"

    header = [
        f"synthetic neuron: morph.synth.generate_neuron(seed={seed}, cell_type={p.cell_type!r})",
        origin_note,
        "parameters: " + ", ".join(f"{k}={v}" for k, v in p.__dict__.items()),
    ]
    return Morphology(
        np.array(b.xyz),
        np.array(b.radius),
        np.array(b.types),
        np.array(b.parent),
        name=f"synth_{p.cell_type}_{seed}",
        units="um",
        header=header,
    )


def _children_lists(parent: list[int]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parent]
    for i, pa in enumerate(parent):
        if pa >= 0:
            kids[pa].append(i)
    return kids


__all__ = ["CELL_TYPES", "NeuronParams", "generate_neuron", "neuron_params"]
