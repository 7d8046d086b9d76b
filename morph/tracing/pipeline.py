"""The tracing pipeline: a 3-D stack in, a labelled :class:`~morph.morphology.Morphology` in
micrometres out.

Stages, and whether each is local (runs on chunks of the stack with a halo) or global:

======================  =======================================================  ==========
stage                   module                                                   locality
======================  =======================================================  ==========
polarity                :mod:`morph.tracing.polarity` (subsampled percentiles)   local (any chunk with structure)
background, denoise     :mod:`morph.tracing.preprocess`                          local, halo 3 sigma in z
noise level             :func:`morph.tracing.preprocess.noise_level`             global statistic of a subsample
tubularity              :mod:`morph.tracing.tubularity` (at candidate voxels)    local, halo 3 scales in z
foreground graph        :func:`morph.tracing.tree.build_graph`                   local, halo 1 slice
local radius            :func:`morph.tracing.tree.local_radius`                  global on the sparse foreground
soma                    :mod:`morph.tracing.soma`                                global on the sparse foreground
tree growth, bridging   :func:`morph.tracing.tree.grow`                          global on the sparse foreground
centring, radii         :mod:`morph.tracing.prune`                               local per node, halo ``radius_max_um``
spurs, smoothing,       :mod:`morph.tracing.prune`, :mod:`morph.tracing.label`   global on the tree (small)
resampling, labels
======================  =======================================================  ==========

Only the sparse foreground (about 1% of the voxels: index, value, local radius, graph edges)
is ever global; the dense stages hold one float32 copy of the stack (the flattened, denoised
image), computed slab by slab (``chunk_slices``), which is what a chunked runner replaces by
a chunked array.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

import morph
from morph import progress as _progress
from morph.errors import NoNeuronError, TracingError
from morph.io.stack import MEAN, Stack, series_note
from morph.morphology import AXON, BASAL, SOMA, Morphology
from morph.soma_outline import SomaOutline
from morph.tracing import faint as _faint
from morph.tracing import label as _label
from morph.tracing import preprocess as _pre
from morph.tracing import prune as _prune
from morph.tracing import radius as _radius
from morph.tracing import seeds as _seeds
from morph.tracing import soma as _soma
from morph.tracing import tree as _tree
from morph.tracing.memory import release_memory
from morph.tracing.params import TraceParams
from morph.tracing.polarity import polarity_and_hint, resolve_polarity
from morph.tracing.tubularity import tube_scale, tubularity_at

STAGES = ["polarity", "preprocess", "tubularity", "graph", "soma", "tree", "refine", "label", "faint"]

#: How the SWC header gives a stack's grey level when it is not 1 (the unit of ``min_noise``,
#: :func:`morph.tracing.preprocess.grey_level`); the value and its source follow.
GREY_LEVEL_NOTE = "grey level (the unit of min_noise): "

#: With no soma found and no point given, the strongest foreground voxel must stand this many
#: noise units out for the stack to hold a neuron (see :func:`trace`): pure noise peaks at
#: 4.6-6.1 (20 x 128 x 128 voxels). In fluorescence ``threshold_high`` (10) is higher, and a
#: voxel above it already stands clear of noise.
NO_SOMA_MIN_PEAK = 8.75


@dataclass
class Prepared:
    """Everything the tree stages need, computed once per stack (or ROI)."""

    image: NDArray[np.float32] | None  # None while packed_image holds it
    voxel_size: tuple[float, float, float]
    polarity: str
    noise: float
    fg: _tree.Foreground
    graph: _tree.Graph
    radius: NDArray[np.float64]
    strong: NDArray[np.bool_]
    offset_um: NDArray[np.float64]
    stretch: float = 1.0
    params: TraceParams | None = None
    notes: list[str] = field(default_factory=list)
    #: The soma's outline measured by :func:`refine` (the refined tree's frame), if any.
    soma_outline: SomaOutline | None = None
    #: Flat indices of the voxels above ``threshold_low`` in pieces with no strong voxel
    #: (``faint_reach_um`` > 0 only): where faint neurites may lie, see :func:`_join_faint`.
    faint: NDArray[np.int64] | None = None

    def to_trace_space(self, xyz_um: Any) -> NDArray[np.float64]:
        """Physical points to the tracing space (z divided by the z elongation)."""
        return np.asarray(xyz_um, dtype=np.float64) * np.array([1.0, 1.0, 1.0 / self.stretch])

    def to_physical(self, xyz_t: Any) -> NDArray[np.float64]:
        return np.asarray(xyz_t, dtype=np.float64) * np.array([1.0, 1.0, self.stretch])
    timings: dict[str, float] = field(default_factory=dict)
    #: The image as 16-bit codes while the sparse stages run (``image`` is then ``None``):
    #: :meth:`restore_image` gives it back before the stages that read it.
    packed_image: _pre.PackedImage | None = None
    #: Bounded mode (:mod:`morph.tracing.chunked`): the local radii are computed a batch of
    #: pieces of at most this many voxels at a time, and the graph (``graph`` None until then)
    #: is built by :meth:`focus` for the pieces the tree can reach only. ``None``: the graph of
    #: the whole foreground is built at once.
    batch_voxels: int | None = None
    #: The whole foreground's cost statistics in bounded mode: ``(ref, rounds, cost_max)``.
    cost_stats: tuple[float, int, float] | None = None
    #: Called with the number of voxels of a graph about to be built, the number of foreground
    #: voxels held meanwhile and what the graph's voxels are (bounded mode: the memory check).
    check_memory: Callable[[int, int, str], Any] | None = None

    def restore_image(self) -> None:
        """Make ``image`` available again (from its 16-bit codes)."""
        if self.image is None and self.packed_image is not None:
            self.image, self.packed_image = self.packed_image.unpack(), None

    def set_foreground(self, fg: _tree.Foreground, strong: NDArray[np.bool_], params: TraceParams) -> None:
        """Use ``fg`` (and its ``strong`` voxels): its graph, radii and costs at once, or in
        bounded mode its radii and cost statistics batch by batch (the graph waits for
        :meth:`focus`)."""
        self.fg, self.strong = fg, strong
        self.graph = self.radius = None  # type: ignore[assignment]  # freed before the new ones are built
        if self.batch_voxels is None:
            self.graph, self.radius = _graph_and_cost(fg, strong, params)
        else:
            self.radius, self.cost_stats = _batched_radius_and_cost(fg, strong, params, self.batch_voxels,
                                                                    check_memory=self.check_memory)

    def focus(self, sources: NDArray[np.int64], params: TraceParams) -> NDArray[np.int64]:
        """Bounded mode: keep only the pieces of foreground the tree can reach from the
        foreground voxels ``sources`` (:func:`morph.tracing.tree.reachable_from`) and build
        their graph, with the costs the whole foreground's graph would give them. Returns the
        new position of each old voxel (-1: dropped). Without bounded mode, or when the graph
        exists, nothing changes (identity)."""
        if self.graph is not None:
            return np.arange(self.fg.n, dtype=np.int64)
        keep = _tree.reachable_from(self.fg, sources, self.strong, gap_um=float(params.gap_um or 0.0))
        pos = np.full(self.fg.n, -1, dtype=np.int64)
        pos[keep] = np.arange(int(keep.sum()))
        fg = _tree.Foreground(self.fg.shape, self.fg.voxel_size, self.fg.index[keep], self.fg.value[keep])
        self.notes.append(f"tree stages on {fg.n} of {self.fg.n} foreground voxels: the pieces within reach "
                          "of the root (gap bridging distance)")
        self.fg, self.strong, self.radius = fg, self.strong[keep], self.radius[keep]  # the rest is freed
        del keep
        if self.check_memory is not None:
            self.check_memory(fg.n, fg.n, "foreground voxels within reach of the root")
        ref, rounds, cmax = self.cost_stats  # type: ignore[misc]
        self.graph, _r = _graph_and_cost(fg, self.strong, params, ref=ref, rounds=rounds, radius=self.radius)
        self.graph.cost_max = cmax
        return pos


#: Voxel sizes (um) a light microscope gives: across (x, y) and along z. Outside them the
#: size is most likely in other units (nanometres: 100 for 0.1 um).
VOXEL_RANGE_UM = ((0.01, 10.0), (0.01, 50.0))


def _check_voxel_size(vs: Sequence[float], where: str) -> None:
    (lo, hi), (zlo, zhi) = VOXEL_RANGE_UM
    if not (all(lo <= v <= hi for v in vs[:2]) and zlo <= vs[2] <= zhi):
        raise TracingError(
            f"the voxel size {vs[0]:g} x {vs[1]:g} x {vs[2]:g} um ({where}) lies outside what light microscopes "
            f"give ({lo:g} to {hi:g} um across, {zlo:g} to {zhi:g} um along z)",
            hint="give it in micrometres (--voxel X Y Z; 100 nm is 0.1); morph info STACK shows the file's",
        )


def _as_stack(stack_or_array: Any, voxel_size: Sequence[float] | None) -> tuple[Any, tuple[float, float, float], bool, str | None]:
    if isinstance(stack_or_array, Stack):
        s = stack_or_array
        if voxel_size is not None:
            vs = tuple(float(v) for v in voxel_size)
            _check_voxel_size(vs, "given")
            return s.data, vs, True, s.path  # type: ignore[return-value]
        if s.voxel_size_known:
            _check_voxel_size(tuple(s.voxel_size), str(s.metadata.get("voxel_size_origin", "from the file")))
        return s.data, tuple(s.voxel_size), bool(s.voxel_size_known), s.path  # type: ignore[return-value]
    data = np.asarray(stack_or_array) if not hasattr(stack_or_array, "shape") else stack_or_array
    if voxel_size is None:
        return data, (1.0, 1.0, 1.0), False, None
    vs = tuple(float(v) for v in voxel_size)
    if len(vs) != 3 or not all(np.isfinite(v) and v > 0 for v in vs):
        raise TracingError(f"voxel size must be 3 positive numbers (x, y, z) in um, got {voxel_size}")
    _check_voxel_size(vs, "given")
    return data, vs, True, None  # type: ignore[return-value]


def working_bin(voxel_size: Sequence[float], working_voxel_um: float | None) -> int:
    """The integer factor by which x-y voxels of ``voxel_size`` are grouped to come nearest
    to, without exceeding, ``working_voxel_um`` (1: trace at the stack's own size)."""
    if not working_voxel_um:
        return 1
    v = float(max(voxel_size[0], voxel_size[1]))
    return max(1, int(np.floor(float(working_voxel_um) / v + 1e-9)))


class BinnedStack:
    """A ``(Z, Y, X)`` stack's means over ``k`` x ``k`` blocks of voxels in x-y (float32),
    computed when read: indexing bins only the slices asked for (a slab of
    :func:`morph.tracing.preprocess.preprocess` at a time), so the working copy of a fine
    stack (4 bytes per working voxel) is never held whole; ``np.asarray`` bins it all."""

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, data: Any, k: int) -> None:
        z, y, x = data.shape
        self.data, self.k = data, int(k)
        self.shape = (int(z), int(y) // self.k, int(x) // self.k)
        self.size = int(np.prod(self.shape, dtype=np.int64))

    def _slices(self, zs: Sequence[int]) -> NDArray[np.float32]:
        k, (_, ny, nx) = self.k, self.shape
        out = np.zeros((len(zs), ny, nx), dtype=np.float32)
        for j, i in enumerate(zs):
            plane = np.asarray(self.data[i, : ny * k, : nx * k], dtype=np.float32)
            for dy in range(k):  # strided sums: a reshaped mean is several times slower
                for dx in range(k):
                    out[j] += plane[dy::k, dx::k]
            out[j] /= k * k
        return out

    def __getitem__(self, key: Any) -> Any:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            return self._slices([range(self.shape[0])[first]])[(0, *rest)]
        if isinstance(first, slice):
            return self._slices(range(self.shape[0])[first])[(slice(None), *rest)]
        return np.asarray(self)[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        out = self._slices(range(self.shape[0]))
        return out if dtype is None else out.astype(dtype, copy=False)


def bin_xy(data: Any, k: int) -> Any:
    """Mean over ``k`` x ``k`` blocks of voxels in x-y, float32 (the last rows and columns
    that do not fill a block are left out). A NumPy array (or memory map) is binned as it is
    read (:class:`BinnedStack`), a Dask array (a stack read in chunks) lazily, chunk by
    chunk."""
    z, y, x = data.shape
    ny, nx = y // k, x // k
    if ny < 1 or nx < 1:
        raise TracingError(f"stack of shape {tuple(data.shape)} is too small for {k} x {k} working voxels",
                           hint="set working_voxel_um to 0 to trace at the stack's own voxel size")
    if not isinstance(data, np.ndarray) and hasattr(data, "map_blocks"):
        import dask.array as da

        return da.coarsen(np.mean, data[:, : ny * k, : nx * k].astype(np.float32), {1: k, 2: k}).astype(np.float32)
    return BinnedStack(data, k)


def _check_data(data: Any) -> None:
    if data.ndim != 3:
        raise TracingError(
            f"tracing needs a 3-D stack, got a {data.ndim}-D array of shape {tuple(data.shape)}",
            hint="give a z-stack (Z, Y, X)",
        )
    if min(data.shape) < 1 or data.shape[1] < 3 or data.shape[2] < 3:
        raise TracingError(f"stack of shape {tuple(data.shape)} is too small to trace")
    if data.shape[0] == 1:
        # traced as a stack, one slice gives no soma and a tree along its texture (the middle
        # slice of sample_stacks/pyramidal_brightfield.tif: F1 in x-y 0.19; its projection 0.17)
        raise TracingError(
            f"a single slice ({data.shape[1]} x {data.shape[2]}) where a 3-D stack is required",
            hint="give the whole z-stack (or a folder of its slices): a single section or a projection "
            "(MIP) has no depth for the tracer to follow",
        )
    if data.dtype.kind not in "uif":
        hint = ("a mask of the neuron: give it as 8-bit (0 and 255)" if data.dtype.kind == "b"
                else "give grey levels as integers or floating point")
        raise TracingError(f"unsupported pixel type {data.dtype}", hint=hint)


def _finite_point(p: Any, what: str) -> NDArray[np.float64]:
    """A user's point as 3 floats, refused (:class:`TracingError`) unless 3 finite numbers."""
    q = np.asarray(p, dtype=np.float64).reshape(-1)
    if q.size != 3:
        raise TracingError(f"the {what} point needs 3 numbers x, y, z, got {q.size}", hint="micrometres, or voxels "
                           "with --units voxel")
    if not np.all(np.isfinite(q)):
        raise TracingError(f"the {what} point ({q[0]:g}, {q[1]:g}, {q[2]:g}) holds a number that is not finite",
                           hint="give X, Y and Z as numbers")
    return q


def _roi_slices(roi: Sequence[float] | None, shape: tuple[int, ...], vs: Sequence[float]) -> tuple[tuple[slice, ...], NDArray[np.float64]]:
    if roi is None:
        return (slice(None),) * 3, np.zeros(3)
    r = np.asarray(roi, dtype=np.float64).reshape(-1)
    if r.size != 6:
        raise TracingError(f"the ROI needs 6 numbers X0,Y0,Z0,X1,Y1,Z1, got {r.size}")
    text = "(" + ", ".join(f"{v:g}" for v in r) + ")"
    if not np.all(np.isfinite(r)):
        raise TracingError(f"the ROI {text} holds a number that is not finite", hint="ROI is X0,Y0,Z0,X1,Y1,Z1")
    flat = [a for a, k in zip("xyz", range(3)) if r[k] == r[k + 3]]
    if flat:
        raise TracingError(f"the ROI {text} has no extent along {' and '.join(flat)}",
                           hint="give two opposite corners of a box: X0,Y0,Z0,X1,Y1,Z1 with X0 != X1, Y0 != Y1, Z0 != Z1")
    lo = np.floor(np.minimum(r[:3], r[3:]) / np.asarray(vs)).astype(int)
    hi = np.ceil(np.maximum(r[:3], r[3:]) / np.asarray(vs)).astype(int) + 1
    size = np.array(shape[::-1])
    lo, hi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    if np.any(hi - lo < 1):
        raise TracingError(f"the ROI {text} um does not overlap the stack", hint="ROI is X0,Y0,Z0,X1,Y1,Z1")
    sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    return sl, lo * np.asarray(vs, dtype=np.float64)


def prepare(
    data: Any,
    voxel_size: Sequence[float],
    params: TraceParams,
    *,
    offset_um: NDArray[np.float64] | None = None,
    stages: Any = None,
    keep_um: NDArray[np.float64] | None = None,
    keep_radius_um: float = 0.0,
    grey_level: float = 1.0,
) -> Prepared:
    """Polarity, background, denoising, tubularity and the foreground graph of a stack.

    ``keep_um`` (micrometres in ``data``) and ``keep_radius_um``: the user's points, near which
    pieces of foreground are kept even when faint (:func:`reachable_foreground`).
    ``grey_level``: the stack's grey level in the units of ``data``
    (:func:`morph.tracing.preprocess.grey_level` of the stack as given, before any binning),
    the unit of the noise floor ``min_noise``."""
    vs = tuple(float(v) for v in voxel_size)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    pol, hint = polarity_and_hint(data, params)
    params = params.resolved(pol)
    t["polarity"] = time.perf_counter() - t0
    if stages:
        stages.step("polarity")
        stages.start("preprocess")
    t0 = time.perf_counter()
    image = _pre.preprocess(
        data, vs, polarity=pol, sigma_um=params.denoise_sigma_um, block_um=params.background_block_um,
        percentile=params.background_percentile, chunk_slices=params.chunk_slices,
        fine_block_um=params.background_fine_um, mask_k=params.background_mask,
    )
    noise = _pre.noise_level(image, floor=params.min_noise * grey_level)
    t["preprocess"] = time.perf_counter() - t0
    if stages:
        stages.step("preprocess")
        stages.start("tubularity")
    t0 = time.perf_counter()
    # candidates: a loose threshold on intensity; the enhanced value is then measured in
    # noise units (intensity and tubularity each divided by their own background noise, the
    # latter measured on a fixed random probe of voxels). Slab by slab: the tubularity of a
    # slab's candidates and of the probe voxels in it in one pass of the filters (a separate
    # pass for the probe filtered the whole stack again: 2.1 -> 1.3 s on OP_6); the
    # candidates (several % of the stack, 8 bytes each) wait for the probe's statistics.
    plane = int(image.shape[1] * image.shape[2])
    use_tube = params.tube_weight > 0
    probe = np.zeros(0, dtype=np.int64)
    if use_tube:
        rng = np.random.default_rng(0)
        probe = np.unique(rng.integers(0, image.size, size=min(image.size, 50_000)))
    # per slab: the candidates' offsets in the slab (4 bytes) and their tubularity (4 bytes);
    # their intensity is read again from the image once the probe's statistics are known
    cands: list[tuple[int, NDArray[Any], NDArray[np.float32] | None]] = []
    tprobe_parts: list[NDArray[np.float32]] = []
    thr_cand = params.candidate_threshold * noise
    for z0 in range(0, image.shape[0], params.chunk_slices):
        z1 = min(image.shape[0], z0 + params.chunk_slices)
        rel = np.flatnonzero(image[z0:z1].reshape(-1) > thr_cand)
        rel = rel.astype(np.uint32) if (z1 - z0) * plane < 2**32 else rel
        tube = None
        if use_tube:
            pre = rel + np.int64(z0 * plane)
            pin = probe[(probe >= z0 * plane) & (probe < z1 * plane)]
            both = np.concatenate([pre, pin])
            both.sort()  # two sorted runs (np.union1d's hashing took 1.8 s on 2.4 M candidates)
            both = both[np.r_[True, both[1:] != both[:-1]]] if both.size else both
            if both.size:
                zyx = np.stack(np.unravel_index(both, image.shape), axis=1)
                tb = tubularity_at(image, zyx, vs, scales_um=params.tube_scales_um, chunk_slices=params.chunk_slices)
                del zyx
                tube = tb[np.searchsorted(both, pre)]
                tprobe_parts.append(tb[np.searchsorted(both, pin)])
                del tb
            del both, pre
        cands.append((z0, rel, tube))
    tmed, tnoise = 0.0, 1.0
    if use_tube and tprobe_parts:
        tmed, tnoise = tube_scale(np.concatenate(tprobe_parts), noise=noise, floor=params.min_noise * grey_level)
    keep_idx, keep_val = [], []
    while cands:
        z0, rel, tube = cands.pop(0)
        z1 = min(image.shape[0], z0 + params.chunk_slices)
        val = image[z0:z1].reshape(-1)[rel] / noise
        if tube is not None:
            val = (1 - params.tube_weight) * val + params.tube_weight * (tube - tmed) / tnoise
        ok = val > params.threshold_low
        keep_idx.append(rel[ok].astype(np.int64) + z0 * plane)
        keep_val.append(val[ok].astype(np.float32))
        del rel, val, tube, ok
    shape = tuple(int(s) for s in image.shape)
    idx, val = np.concatenate(keep_idx), np.concatenate(keep_val)
    del keep_idx, keep_val
    # the stages up to refine never read the image: it waits as 16-bit codes written over its
    # own buffer, shrunk to half (each value within 1/131070 of the image's range;
    # Prepared.restore_image)
    release_memory()
    packed = _pre.pack_image(image, chunk_slices=params.chunk_slices, in_place=True)
    del image  # in place: now the codes' storage
    idx, val, note, weak = reachable_foreground(shape, vs, idx, val, params, keep_um=keep_um,
                                                keep_radius_um=keep_radius_um)
    faint = weak if params.faint_reach_um > 0 else None
    del weak
    fg, graph, radius, strong, stretch, _stats = foreground_graph(
        shape, vs, idx, val, noise, params, stages=stages, timings=t, t0=t0,  # type: ignore[arg-type]
        grey_level=grey_level,
    )
    return Prepared(None, vs, pol, noise, fg, graph, radius, strong,  # type: ignore[arg-type]
                    np.zeros(3) if offset_um is None else offset_um, stretch=stretch, params=params, timings=t,
                    packed_image=packed, notes=[note] + ([hint] if hint else []), faint=faint)


def reachable_foreground(
    shape: tuple[int, int, int],
    voxel_size: Sequence[float],
    index: NDArray[np.int64],
    value: NDArray[Any],
    params: TraceParams,
    *,
    keep_um: NDArray[np.float64] | None = None,
    keep_radius_um: float = 0.0,
    slab_bytes: int = 4 * 1024**2,
) -> tuple[NDArray[np.int64], NDArray[np.float32], str, NDArray[np.int64]]:
    """The kept candidate voxels (flat ``index``, ``value`` in noise units) without the pieces
    of foreground the tree can never reach: those with no voxel above ``threshold_high`` and
    none within ``keep_radius_um`` of the user's points ``keep_um`` (micrometres in the stack
    given), see :func:`morph.tracing.tree.reachable_pieces`: specks of noise above the low
    threshold (0 to 10% of the foreground on the stacks measured), whose graph would only
    take memory.

    The pieces are labelled a z-range at a time in about ``slab_bytes`` of working memory
    (:func:`morph.tracing.tree.piece_labels`). Returns ``(index, value, note, weak)``, sorted
    by index, the note for the SWC header; ``weak``: the flat indices of the voxels in pieces
    with no voxel above ``threshold_high`` (the faint pieces :func:`_join_faint` may join:
    those left out, and those kept near the user's points, which the tree never bridges to
    either).
    """
    vs = tuple(float(v) for v in voxel_size)
    index = np.asarray(index, dtype=np.int64)
    value = np.asarray(value, dtype=np.float32)
    if index.size > 1 and np.any(index[1:] < index[:-1]):
        order = np.argsort(index, kind="stable")
        index, value = index[order], value[order]
    reach, weak = _tree.reachable_pieces(shape, vs, index, value > params.threshold_high,  # type: ignore[arg-type]
                                         keep_xyz_um=keep_um, keep_radius_um=keep_radius_um, slab_bytes=slab_bytes)
    n_all = int(index.size)
    weak_index = index[weak]
    del weak
    if not reach.all():
        index, value = index[reach], value[reach]
    note = (f"foreground: {n_all} voxels above threshold_low, of which {n_all - index.size} in pieces with no "
            "voxel above threshold_high (never reached, dropped before the graph)")
    return index, value, note, weak_index


def foreground_graph(
    shape: tuple[int, int, int],
    voxel_size: Sequence[float],
    index: NDArray[np.int64],
    value: NDArray[Any],
    noise: float,
    params: TraceParams,
    *,
    stages: Any = None,
    timings: dict[str, float],
    t0: float,
    batch_voxels: int | None = None,
    check_memory: Callable[[int, int, str], Any] | None = None,
    grey_level: float = 1.0,
) -> tuple[_tree.Foreground, _tree.Graph | None, NDArray[np.float64], NDArray[np.bool_], float,
           tuple[float, int, float] | None]:
    """The global part of :func:`prepare`, shared with the chunked runner: from the kept
    candidate voxels (flat ``index`` and enhanced ``value`` in noise units) to the foreground
    in tracing space (z compressed by the measured blur), its graph, local radii and costs.
    ``grey_level``: the stack's (:func:`morph.tracing.preprocess.grey_level`), which the
    error for a stack where nothing stands out gives when the noise is at its floor.

    With ``batch_voxels`` (bounded mode) no graph is returned: the radii and the cost
    statistics are computed a batch of pieces at a time (see :meth:`Prepared.focus`).

    Returns ``(foreground, graph, radius, strong, stretch, cost statistics)``; records the
    ``tubularity`` (since ``t0``) and ``graph`` timings.
    """
    vs = tuple(float(v) for v in voxel_size)
    fg = _tree.Foreground(shape, vs, index, np.asarray(value, dtype=np.float32))  # type: ignore[arg-type]
    strong = fg.value > params.threshold_high
    stretch = _tree.z_elongation(fg, strong) if params.z_blur_correction else 1.0
    if stretch != 1.0:
        # tracing space: z compressed by the measured elongation of the structure
        fg = _tree.Foreground(shape, (vs[0], vs[1], vs[2] / stretch), fg.index, fg.value)
    timings["tubularity"] = time.perf_counter() - t0
    if stages:
        stages.step("tubularity")
        stages.start("graph")
    t0 = time.perf_counter()
    if not strong.any():
        floor = params.min_noise * grey_level
        at_floor = floor > 0 and noise <= floor * (1 + 1e-6)
        raise NoNeuronError(
            "nothing in the {where} stands out from the background "
            f"(noise {noise:.3g} in the stack's values"
            + (f", its floor of min_noise grey levels, the grey level being {grey_level:.4g}" if at_floor else "")
            + f"; nothing above {params.threshold_high:g} x noise)",
            hint="check the polarity (--polarity), the file and the channel, or lower threshold_high"
            + ("; the image's own noise is below that floor: if its values sit on an offset much larger than "
               "their span (floating point with fractions is counted from 0), subtract the offset first or "
               "lower min_noise (--param min_noise=VALUE)" if at_floor else ""),
        )
    graph: _tree.Graph | None = None
    stats = None
    if batch_voxels is None:
        graph, radius = _graph_and_cost(fg, strong, params)
    else:
        radius, stats = _batched_radius_and_cost(fg, strong, params, batch_voxels, check_memory=check_memory)
    timings["graph"] = time.perf_counter() - t0
    if stages:
        stages.step("graph")
    return fg, graph, radius, strong, stretch, stats


def _cost_ref(fg: _tree.Foreground, strong: NDArray[np.bool_]) -> float:
    """The enhanced value scaled to 1 by the cost: the 90th percentile of the strong voxels."""
    return float(np.percentile(fg.value[strong], 90)) if strong.any() else float(fg.value.max(initial=1.0))


def _medial_rounds(fg: _tree.Foreground, strong: NDArray[np.bool_], radius: NDArray[np.float64]) -> int:
    """Graph steps over which the medialness looks for the largest radius nearby."""
    rs = radius[strong] if strong.any() else radius
    return int(np.clip(np.ceil(np.percentile(rs, 95) / min(fg.voxel_size)), 1, 6))


def _graph_and_cost(
    fg: _tree.Foreground, strong: NDArray[np.bool_], params: TraceParams, *, ref: float | None = None,
    rounds: int | None = None, radius: NDArray[np.float64] | None = None,
) -> tuple[_tree.Graph, NDArray[np.float64]]:
    """Foreground graph, local radius and the gray-weighted, medial cost of each voxel.

    ``ref`` and ``rounds`` (the cost's statistics) and ``radius`` default to those of ``fg``
    itself; :meth:`Prepared.focus` passes the whole foreground's for a part of it.
    """
    graph = _tree.build_graph(fg)
    if radius is None:
        radius = _tree.local_radius(fg, graph)
    if ref is None:
        ref = _cost_ref(fg, strong)
    f = np.clip(fg.value / max(ref, 1e-12), 0, 1)
    if params.medial_weight > 0 and fg.n:
        # medialness: local radius relative to the largest radius nearby (1 on the centreline)
        if rounds is None:
            rounds = _medial_rounds(fg, strong, radius)
        med = radius / graph.neighbourhood_max(radius, rounds)
        f = f * (1.0 - params.medial_weight + params.medial_weight * med)
    graph.set_cost(np.exp(params.cost_power * (1.0 - f) ** 2))
    return graph, radius


def _batched_radius_and_cost(
    fg: _tree.Foreground, strong: NDArray[np.bool_], params: TraceParams, batch_voxels: int, *,
    check_memory: Callable[[int, int, str], Any] | None = None,
) -> tuple[NDArray[np.float64], tuple[float, int, float]]:
    """Local radii of the whole foreground and its cost statistics ``(ref, rounds,
    cost_max)``, equal to :func:`_graph_and_cost`'s, with the graph built for a batch of whole
    pieces (26-connected) of at most ``batch_voxels`` voxels at a time (a larger piece alone):
    a voxel's radius and medialness only depend on its own piece. ``check_memory`` is called
    with the largest batch before any graph is built."""
    labels, n = _tree.piece_labels(fg.shape, fg.index)
    order = np.argsort(labels, kind="stable")
    ends = np.cumsum(np.bincount(labels, minlength=n))
    del labels
    batches: list[NDArray[np.int64]] = []
    a = 0
    while a < n:
        lo = int(ends[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(ends, lo + batch_voxels, side="right")))
        batches.append(np.sort(order[lo : int(ends[b - 1])]))
        a = b
    del order
    if check_memory is not None and batches:
        check_memory(max(x.size for x in batches), fg.n, "voxels in the largest piece of foreground (or batch of pieces)")
    radius = np.empty(fg.n, dtype=np.float64)
    for sel in batches:
        sub = _tree.Foreground(fg.shape, fg.voxel_size, fg.index[sel], fg.value[sel])
        radius[sel] = _tree.local_radius(sub, _tree.build_graph(sub))
    ref = _cost_ref(fg, strong)
    rounds = _medial_rounds(fg, strong, radius)
    cmax = 1.0 if fg.n == 0 else -np.inf
    for sel in batches:
        sub = _tree.Foreground(fg.shape, fg.voxel_size, fg.index[sel], fg.value[sel])
        g, _r = _graph_and_cost(sub, strong[sel], params, ref=ref, rounds=rounds, radius=radius[sel])
        cmax = max(cmax, g.cost_max)
    return radius, (ref, rounds, float(cmax))


def restrict_to_signal(
    prep: Prepared, root_xyz_t: NDArray[np.float64], params: TraceParams, *, soma_radius: float = 0.0
) -> float:
    """Raise the foreground threshold to ``relative_threshold`` times the brightness of the
    structure at the root (90th percentile of the enhanced values within ``max(10 um, 3 voxels)``
    of the root, or of the soma's surface, outside the soma: the proximal neurites), when that
    is higher than ``threshold_low``; rebuilds the graph in place. Returns the threshold used.
    Around a soma (``soma_radius`` > 0) only with ``relative_at_soma``.

    Faint contacts between the traced cell and brighter neighbouring structures then no longer
    join them, while a dim cell keeps the noise-based threshold.
    """
    fg = prep.fg
    thr = float(params.threshold_low)
    if params.relative_threshold <= 0 or fg.n == 0 or (soma_radius > 0 and not params.relative_at_soma):
        return thr
    d = fg.distances_to(root_xyz_t)
    near = np.flatnonzero((d <= soma_radius + max(10.0, 3 * max(prep.voxel_size))) & (d >= soma_radius))
    del d
    if near.size == 0:
        return thr
    ref = float(np.percentile(fg.value[near], 90))
    new = params.relative_threshold * ref
    if new <= thr:
        return thr
    keep = fg.value >= new
    if keep.sum() < 2:
        return thr
    fg2 = _tree.Foreground(fg.shape, fg.voxel_size, fg.index[keep], fg.value[keep])
    del near, keep, fg
    prep.fg = None  # type: ignore[assignment]
    prep.set_foreground(fg2, fg2.value > max(float(params.threshold_high), new), params)
    return new


def _tree_to_morphology(
    prep: Prepared, grown: _tree.GrownTree, soma: _soma.Soma | None, *, root_is_endpoint: bool = False,
    join_roots: bool = True,
) -> Morphology:
    fg = prep.fg
    xyz = prep.to_physical(fg.xyz_um(grown.node))
    parent = grown.parent.copy()
    n = xyz.shape[0]
    rad = prep.radius[grown.node]
    if soma is not None and soma.is_soma:
        inside = np.linalg.norm(xyz - soma.centre, axis=1) < soma.radius
        keep_mark = ~inside
        # nearest kept ancestor for each node's parent
        anc = _nearest_marked(parent, keep_mark)
        new_parent = np.where(parent >= 0, anc[np.maximum(parent, 0)], -1)
        kept = np.flatnonzero(keep_mark)
        pos = np.full(n, -1, dtype=np.int64)
        pos[kept] = np.arange(kept.size) + 1
        p = new_parent[kept]
        p = np.where(p >= 0, pos[np.maximum(p, 0)], 0)
        xyz_all = np.vstack([soma.centre[None], xyz[kept]])
        r_all = np.concatenate([[soma.radius], rad[kept]])
        types = np.r_[SOMA, np.full(kept.size, BASAL)]
        par = np.r_[-1, p]
        return Morphology(xyz_all, r_all, types, par, units="um", voxel_size=prep.voxel_size)
    roots = np.flatnonzero(parent < 0)
    if join_roots and roots.size > 1:  # several kept sources of the same root: join them to the first
        parent[roots[1:]] = roots[0]
    m = Morphology(xyz, rad, np.full(n, BASAL), parent, units="um", voxel_size=prep.voxel_size)
    if root_is_endpoint and soma is not None and len(m) > 2:
        m = _keep_main_stem(m, 3.0 * float(prep.radius[grown.node[0]]) * prep.stretch + 10.0)
    return m


def _keep_main_stem(m: Morphology, reach_um: float) -> Morphology:
    """For a tree rooted at a plain point: keep only one direction from the root.

    The root is where the neurite starts (as in an SWC of an axon). A seed placed in the
    middle of a neurite makes the tree grow both ways: at the first branch point within
    ``reach_um`` of the root, only the child subtree holding the most cable is kept.
    """
    from morph import _tree as t

    pd = m.path_distance
    forks = np.flatnonzero((m.n_children >= 2) & (pd <= reach_um))
    if not forks.size:
        return m
    f = int(forks[np.argmin(pd[forks])])
    kids = np.flatnonzero(m.parent == f)
    mark = np.zeros(len(m), dtype=bool)
    mark[kids] = True
    owner = t.nearest_marked(m.parent, mark)
    el = m.edge_length
    cable = np.bincount(np.maximum(owner, 0), weights=np.where(owner >= 0, el, 0.0), minlength=len(m))[kids]
    best = kids[int(np.argmax(cable))]
    keep = (owner < 0) | (owner == best)
    return m.take(keep)


def _nearest_marked(parent: NDArray[np.int64], mark: NDArray[np.bool_]) -> NDArray[np.int64]:
    from morph._tree import nearest_marked

    return nearest_marked(parent, mark)


def _nearest_nodes(m: Morphology, pts: NDArray[np.float64] | None) -> NDArray[np.bool_] | None:
    """The nodes of ``m`` nearest to each of ``pts`` (``None`` when there are no points)."""
    if pts is None or not len(pts):
        return None
    _d, j = cKDTree(m.xyz).query(np.asarray(pts, dtype=np.float64).reshape(-1, 3))
    mask = np.zeros(len(m), dtype=bool)
    mask[j] = True
    return mask


def _note_cut(prep: Prepared, before: Morphology, after: Morphology, what: str) -> Morphology:
    """``after`` (``before`` pruned); when it lost nodes, the header says how much cable went
    and ``what`` took it."""
    if len(after) < len(before):
        prep.notes.append(f"{what}: {before.total_length() - after.total_length():.1f} um of cable")
    return after


def _prune_flat_terminals(m: Morphology, prep: Prepared, params: TraceParams,
                          held: NDArray[np.bool_] | None, traced: NDArray[np.float64] | None = None) -> Morphology:
    """:func:`morph.tracing.prune.prune_flat_terminals` with the run's parameters (micrometres
    of the prepared stack, ``held`` nodes kept; ``traced``: points along the cable traced
    before the tip walks, on which a branch is judged); the header says how much cable went."""
    if not params.terminal_ridge:
        return m
    out = _prune.prune_flat_terminals(m, prep.image, prep.voxel_size, params.terminal_ridge * prep.noise,
                                      margin_um=params.terminal_ridge_margin_um, protect=held, judge_xyz=traced)
    return _note_cut(prep, m, out, "terminal branches removed as not standing out from the image beside them "
                     "(terminal_ridge)")


def _prune_steep_terminals(m: Morphology, prep: Prepared, params: TraceParams,
                           keep_pts: NDArray[np.float64] | None) -> Morphology:
    """:func:`morph.tracing.prune.prune_steep_terminals` with the run's parameters (the
    branches holding the nodes nearest to ``keep_pts``, the user's seeds and axon click, are
    kept); the header says how much cable went."""
    if not params.steep_terminal_ridge or len(m) < 3:
        return m
    out = _prune.prune_steep_terminals(m, prep.image, prep.voxel_size, params.steep_terminal_ridge * prep.noise,
                                       min_steepness=params.steep_terminal_z,
                                       margin_um=params.terminal_ridge_margin_um, protect=_nearest_nodes(m, keep_pts))
    return _note_cut(prep, m, out, "terminal branches running steeply along z removed as weak ridges "
                     "(steep_terminal_ridge)")


def _prune_edge_terminals(m: Morphology, prep: Prepared, params: TraceParams,
                          keep_pts: NDArray[np.float64] | None) -> Morphology:
    """:func:`morph.tracing.prune.prune_edge_terminals` on the traced image's x-y border
    (within a working voxel or 1 um of it, whichever is more; the branches holding the nodes
    nearest to ``keep_pts`` are kept); the header says how much cable went."""
    if not params.edge_terminal_fraction or len(m) < 3:
        return m
    vs = np.asarray(prep.voxel_size, dtype=np.float64)
    extent = (np.asarray(prep.image.shape[::-1], dtype=np.float64) - 1) * vs
    out = _prune.prune_edge_terminals(m, extent[:2], margin_um=max(1.0, float(vs[:2].max())),
                                      fraction=params.edge_terminal_fraction, protect=_nearest_nodes(m, keep_pts))
    return _note_cut(prep, m, out, "terminal branches running along the image's x-y border removed "
                     "(edge_terminal_fraction)")


def _prune_z_stems(m: Morphology, prep: Prepared, params: TraceParams,
                   keep_pts: NDArray[np.float64] | None) -> Morphology:
    """:func:`morph.tracing.prune.prune_z_stems` with the run's parameters (the stems holding
    the nodes nearest to ``keep_pts`` are kept); the header says how much cable went."""
    if not params.z_stem_deg:
        return m
    out = _prune.prune_z_stems(m, max_angle_deg=params.z_stem_deg, protect=_nearest_nodes(m, keep_pts))
    return _note_cut(prep, m, out, "stems of the soma running along z removed as its blur (z_stem_deg)")


def _half_widths(m: Morphology, prep: Prepared, params: TraceParams) -> NDArray[np.float64]:
    """Each neurite node's half width on the image (the extent of its blurred image, which
    decides the halo-spur pruning); soma nodes keep their radius."""
    r = _prune.estimate_radii(m, prep.image, prep.voxel_size, radius_max_um=params.radius_max_um)
    return np.where(m.soma_mask, m.radius, r)


def _prune_halo_spurs(m: Morphology, prep: Prepared, params: TraceParams,
                      protect: NDArray[np.bool_] | None = None) -> Morphology:
    """:func:`morph.tracing.prune.prune_thick_spurs` with the run's parameters (``m.radius``
    the half widths of :func:`_half_widths`; with ``spur_ridge``, a spur standing out as a
    ridge stays); nothing when ``thick_spur_factor`` is 0."""
    if params.thick_spur_factor <= 0:
        return m
    ridge = {} if not params.spur_ridge else dict(
        image=prep.image, voxel_size=prep.voxel_size, ridge_min=params.spur_ridge * prep.noise,
        ridge_factor=params.spur_ridge_factor)
    return _prune.prune_thick_spurs(m, params.min_branch_um, params.thick_spur_factor, protect=protect, **ridge)


def refine(m: Morphology, prep: Prepared, params: TraceParams, *, protect_xyz: NDArray[np.float64] | None = None,
           flat_terminals: bool = True, traced_cable: list[NDArray[np.float64]] | None = None) -> Morphology:
    """Centre on the image, smooth, prune spurs, resample and measure radii; with
    ``flat_terminals``, last remove the terminal branches that are not ridges of the image
    (judged on the cable traced before the tip walks, which ``traced_cable``, a list, receives
    as points every 0.5 um)."""
    if len(m) == 0:
        return m
    if params.route_soma_bridges > 0:
        m = _prune.route_long_edges(m, prep.image, prep.voxel_size, cost_power=params.cost_power,
                                    floor=params.threshold_low * prep.noise, near_soma=params.route_soma_bridges)
    if params.gap_long_um > params.gap_um > 0:
        m = _prune.route_long_edges(m, prep.image, prep.voxel_size, min_um=params.gap_um, cost_power=params.cost_power,
                                    floor=params.threshold_low * prep.noise)
    neur = ~m.soma_mask
    xyz = m.xyz.copy()
    xyz[neur] = _prune.centre_on_image(xyz[neur], prep.image, prep.voxel_size, window_um=max(1.5, 1.5 * min(prep.voxel_size)))
    m = m._derive(xyz=xyz)
    m = _prune.smooth(m, iterations=params.smooth_iterations)
    protect = _nearest_nodes(m, protect_xyz)
    keep_pts = None if protect is None else m.xyz[protect]
    m = _prune.prune_spurs(m, params.min_branch_um, protect=protect)
    if prep.stretch > 1.3:
        m = _prune.prune_z_spurs(m, params.min_branch_um, protect=_nearest_nodes(m, keep_pts),
                                 z_blur=prep.stretch if params.z_spur_bounded else None)
    m = _prune_z_stems(m, prep, params, keep_pts)
    m = _prune.trim_tips(m, prep.image, prep.voxel_size, fraction=params.tip_fraction)
    if params.side_branch_um:
        m = _prune.find_side_branches(m, prep.image, prep.voxel_size, noise=prep.noise, max_um=params.side_branch_um,
                                      threshold=params.tip_extend_threshold, contrast=params.tip_extend_contrast)
    # the cable traced before the tip walks: terminal branches are judged as ridges on it
    traced = m.resample(0.5).xyz if params.tip_extend_um and len(m) > 1 else None
    if traced_cable is not None and traced is not None:
        traced_cable.append(traced)
    if params.tip_extend_um:
        m = _prune.extend_tips(m, prep.image, prep.voxel_size, noise=prep.noise, max_um=params.tip_extend_um,
                               threshold=params.tip_extend_threshold, contrast=params.tip_extend_contrast,
                               recentre_um=params.tip_recentre_um)
    m = m.resample(params.resample_um)
    m = _prune.smooth(m, iterations=params.smooth_iterations)
    m = m._derive(radius=_half_widths(m, prep, params))
    m = _prune_halo_spurs(m, prep, params)
    # the half widths above decide the pruning (the blur's extent is what makes spurs); the
    # radii written out are the neurites' own, the blur taken out
    ref = None  # the soma's core: the stain's reference when the neurites cannot calibrate it
    if m.soma_nodes.size == 1:
        s = int(m.soma_nodes[0])
        ref = _radius.soma_stain(prep.image, m.xyz[s], prep.voxel_size, radius_um=float(m.radius[s]),
                                 blur_um=_radius.total_blur(prep.voxel_size, sigma_um=params.denoise_sigma_um,
                                                            psf_sigma_um=params.psf_sigma_um))
    r, report = _radius.measure_radii(m, prep.image, prep.voxel_size, noise=prep.noise,
                                      sigma_um=params.denoise_sigma_um, psf_sigma_um=params.psf_sigma_um,
                                      radius_max_um=params.radius_max_um, extent_um=m.radius,
                                      stain_reference=ref)
    prep.notes.append(report.note())
    r = np.where(m.soma_mask, m.radius, r)
    if m.soma_nodes.size == 1:  # a detected or given soma (the tracer writes one node)
        s = int(m.soma_nodes[0])
        rs = _radius.measure_soma_radius(prep.image, m.xyz[s], prep.voxel_size, radius_hint=float(m.radius[s]))
        if np.isfinite(rs) and rs > 0:
            prep.notes.append(f"soma radius: {rs:.2f} um where the image falls half way from the soma's core to the "
                              f"background ({m.radius[s]:.2f} um to the edge of the foreground)")
            r[s] = rs
            prep.soma_outline = _soma.measure_soma_outline(prep.image, m.xyz[s], prep.voxel_size,
                                                           radius_hint=float(m.radius[s]))
            # the stems' first micrometres lie in the soma's blurred edge
            r = _radius.cap_in_soma_blur(m, r, soma_radius=rs, blur_um=report.blur_um)
    # a branch's first micrometres: the profiles also cross the branch point's other neurites
    r = _radius.cap_at_branch_points(m, r, blur_um=report.blur_um)
    m = m._derive(radius=r)
    if flat_terminals:
        # with the neurites' own radii: the sides are sampled just outside each neurite
        m = _prune_flat_terminals(m, prep, params, _nearest_nodes(m, keep_pts), traced)
    return m


def _path_branch(path: NDArray[np.float64], prep: Prepared, path_params: TraceParams) -> Morphology:
    """A path through the image (micrometres, from its first point outwards) as a branch
    refined like the tree (:func:`refine`: centred, smoothed, resampled, radii measured),
    typed basal; the refinement's note on the radii is left to the tree's."""
    n = len(path)
    pm = Morphology(path, np.ones(n), np.full(n, BASAL), np.arange(n) - 1, units="um", voxel_size=prep.voxel_size)
    n_notes = len(prep.notes)
    pm = refine(pm, prep, path_params, flat_terminals=False)
    del prep.notes[n_notes:]
    return pm


def _join_faint(m: Morphology, prep: Prepared, params: TraceParams, *, avoid_axon: bool = True) -> Morphology:
    """The faint pieces of foreground that minimal paths join to the labelled tree as neurites
    (:func:`morph.tracing.faint.join_paths`), each path centred, smoothed, resampled and given
    radii like the tree, hanging from the tree's node nearest to its first point and typed
    like it (basal dendrite from the soma). With ``avoid_axon`` (the axon the user clicked),
    no path ends on the axon or hangs from it: a dendrite passing near the axon is not a
    branch of it. A guessed axon (the heuristic's) is not avoided: the guess is often a
    dendrite, and where it is the axon its faint collaterals are its own."""
    if prep.faint is None or not prep.faint.size or len(m) < 2:
        return m
    pieces = _faint.FaintPieces.from_index(prep.faint, prep.fg.shape, prep.voxel_size,
                                           min_extent_um=params.faint_min_um)
    prep.faint = None
    ref = _path_ref(params, prep.image, prep.voxel_size, prep.noise, [m.xyz[0]])
    cable = m.resample(0.5 * min(prep.voxel_size))
    paths = _faint.join_paths(prep.image, prep.voxel_size, cable.xyz, pieces, noise=prep.noise, ref=ref,
                              cost_power=params.path_cost_power, reach_um=params.faint_reach_um,
                              min_contrast=params.faint_contrast, avoid=(cable.types == AXON) if avoid_axon else None,
                              aligned_contrast=params.faint_aligned_contrast or None)
    if not paths:
        return m
    # refined as a seed's path, and walked on from its far end as the tree's tips are
    path_params = params.replace(min_branch_um=0.0, route_soma_bridges=0.0, side_branch_um=0.0, tip_fraction=0.0,
                                 thick_spur_factor=0.0)
    before = m.total_length()
    for path in paths:
        pm = _path_branch(path, prep, path_params)
        cand = np.flatnonzero(m.types != AXON) if avoid_axon else np.arange(len(m))
        j = int(cand[cKDTree(m.xyz[cand]).query(pm.xyz[0])[1]])
        t = int(m.types[j])
        m = m.merge(pm._derive(types=np.full(len(pm), BASAL if t == SOMA else t)), attach_to=j)
    prep.notes.append(f"faint neurites: {len(paths)} minimal paths through the image joined pieces of foreground with "
                      f"no voxel above threshold_high to the tree ({m.total_length() - before:.1f} um of cable)")
    return m


def _extend_tip_paths(m: Morphology, prep: Prepared, params: TraceParams, *, avoid_axon: bool = True) -> Morphology:
    """The tips continued along faint neurites by minimal paths judged over their length
    (:func:`morph.tracing.faint.tip_paths`), each path refined like a faint path and hanging
    from its tip, typed like it; with ``avoid_axon``, not the axon's tips (as in
    :func:`_join_faint`)."""
    if params.tip_path_um <= 0 or len(m) < 2:
        return m
    par = m.parent
    nch = np.bincount(par[par >= 0], minlength=len(m))
    tips = np.flatnonzero((nch == 0) & (par >= 0) & ~m.soma_mask & ~((m.types == AXON) & avoid_axon))
    if not tips.size:
        return m
    anc = tips.copy()
    for _ in range(8):  # the direction over the tip's last nodes (about 4 um)
        p = par[anc]
        step = (p >= 0) & ~m.soma_mask[np.maximum(p, 0)]
        anc = np.where(step, p, anc)
    dirs = m.xyz[tips] - m.xyz[anc]
    use = np.linalg.norm(dirs, axis=1) >= 2.0
    tips, dirs = tips[use], dirs[use]
    if not tips.size:
        return m
    ref = _path_ref(params, prep.image, prep.voxel_size, prep.noise, [m.xyz[0]])
    cable = m.resample(0.5 * min(prep.voxel_size))
    paths = _faint.tip_paths(prep.image, prep.voxel_size, m.xyz[tips], dirs, cable.xyz, noise=prep.noise, ref=ref,
                             cost_power=params.path_cost_power, reach_um=params.tip_path_um,
                             min_contrast=params.tip_path_contrast, min_aligned=params.tip_path_aligned)
    if not paths:
        return m
    m, added = _hang_paths(m, paths, tips, prep, params, from_node=True)
    prep.notes.append(f"tip paths: {len(paths)} minimal paths continued tips along faint neurites "
                      f"({added:.1f} um of cable)")
    return m


def _hang_paths(m: Morphology, paths: list[tuple[int, NDArray[np.float64]]], starts: NDArray[np.int64],
                prep: Prepared, params: TraceParams, *, from_node: bool) -> tuple[Morphology, float]:
    """The paths of :func:`morph.tracing.faint.tip_paths` hung from the tree: a path whose
    ``from`` is ``k >= 0`` from node ``starts[k]`` (its first point that node's own position
    when ``from_node``, else a point off it, kept), one continuing the ``j``-th path from that
    path's end (its first point that end). Each is refined like a faint path
    (:func:`_path_branch`) and typed like the node it hangs from. Returns the tree and the
    cable added (um)."""
    path_params = params.replace(min_branch_um=0.0, route_soma_bridges=0.0, side_branch_um=0.0, tip_fraction=0.0,
                                 thick_spur_factor=0.0, tip_extend_um=0.0)
    before = m.total_length()
    ends: list[int] = []  # the node each path ends on
    for src, path in paths:
        j = int(starts[src]) if src >= 0 else ends[-1 - src]
        pm = _path_branch(path if src >= 0 and not from_node else path[1:], prep, path_params)
        n0 = len(m)
        m = m.merge(pm._derive(types=np.full(len(pm), int(m.types[j]))), attach_to=j)
        ends.append(n0 + int(np.argmin(np.linalg.norm(pm.xyz - path[-1], axis=1))))
    return m, m.total_length() - before


#: The side paths' screen (:func:`morph.tracing.prune.side_candidates`): a ray's mean and
#: its rise above the darker of its sides, in noise units.
SIDE_PATH_SCREEN = (1.5, 0.9)
#: A side path starts at most once per this many micrometres of the tree (and direction), and
#: its ray's far end and the path beyond that distance from its start lie this far clear of
#: the tree.
SIDE_PATH_SPACING_UM = 4.0
SIDE_PATH_CLEAR_UM = 4.0
#: Each side path is searched in the box of its cone's shell this far around, coarse to fine
#: above this many voxels (:func:`morph.tracing.prune.min_cost_path`): 2 um and 30 000 voxels
#: cost 1.3 s more on ``BF_512`` (513 x 513 x 101); 5 um and 250 000, 4.3 s for the same traces
#: but for a few paths.
SIDE_PATH_MARGIN_UM = 2.0
SIDE_PATH_MAX_VOXELS = 30_000.0


def _extend_side_paths(m: Morphology, prep: Prepared, params: TraceParams, *, avoid_axon: bool = True) -> Morphology:
    """Side branches started along faint neurites by minimal paths judged over their length
    (``side_path_um``): from the tree's unbranched nodes whose screen ray
    (:func:`morph.tracing.prune.side_candidates`) stands out and whose far end lies clear of
    the tree, the one standing out most per ``SIDE_PATH_SPACING_UM`` of the tree and
    direction, searched and judged as tip paths are (:func:`morph.tracing.faint.tip_paths`);
    each kept path is refined like a faint path and typed like the node it leaves; with
    ``avoid_axon``, none from the axon (as in :func:`_join_faint`)."""
    if params.side_path_um <= 0 or len(m) < 3:
        return m
    threshold, contrast = SIDE_PATH_SCREEN
    org, rise, d0, p0 = _prune.side_candidates(m, prep.image, prep.voxel_size, noise=prep.noise,
                                               threshold=threshold, contrast=contrast)
    if avoid_axon and org.size:
        ok = m.types[org] != AXON
        org, rise, d0, p0 = org[ok], rise[ok], d0[ok], p0[ok]
    if not org.size:
        return m
    cable = m.resample(0.5 * min(prep.voxel_size))
    # the ray's far end (6 um out) clear of the tree: not a ray across to a neighbouring neurite
    far = cKDTree(cable.xyz).query(p0 + 6.0 * d0)[0] > SIDE_PATH_CLEAR_UM
    org, rise, d0, p0 = org[far], rise[far], d0[far], p0[far]
    if not org.size:
        return m
    # one start per place and direction, the one rising most (a greedy pass over a few hundred
    # candidates, each against its neighbours only)
    kd = cKDTree(m.xyz[org])
    taken = np.zeros(org.size, dtype=bool)
    acc: list[int] = []
    for i in np.argsort(-rise):
        if taken[i]:
            continue
        acc.append(int(i))
        nb = np.asarray(kd.query_ball_point(m.xyz[org[i]], r=SIDE_PATH_SPACING_UM), dtype=np.int64)
        taken[nb[d0[nb] @ d0[i] > 0.5]] = True
    sel = np.asarray(acc, dtype=np.int64)
    org, d0, p0 = org[sel], d0[sel], p0[sel]
    ref = _path_ref(params, prep.image, prep.voxel_size, prep.noise, [m.xyz[0]])
    paths = _faint.tip_paths(prep.image, prep.voxel_size, p0, d0, cable.xyz, noise=prep.noise, ref=ref,
                             cost_power=params.path_cost_power, reach_um=params.side_path_um,
                             min_contrast=params.side_path_contrast, min_aligned=params.side_path_aligned,
                             clear_um=SIDE_PATH_CLEAR_UM, margin_um=SIDE_PATH_MARGIN_UM,
                             max_voxels=SIDE_PATH_MAX_VOXELS)
    if not paths:
        return m
    m, added = _hang_paths(m, paths, org, prep, params, from_node=False)  # a path starts off its node
    prep.notes.append(f"side paths: {len(paths)} minimal paths started side branches along faint neurites "
                      f"({added:.1f} um of cable; {org.size} searched)")
    return m


def _path_ref(params: TraceParams, image: Any, voxel_size: Sequence[float], noise: float,
              ends_um: list[NDArray[np.float64]]) -> float:
    """The brightness at which a user's path (seed or trace-path) costs the least:
    ``path_ref`` noise units, or when 0 the brightest voxel within 1 um of the fainter of
    the user's points (at least one noise unit): the brightness of the neurite clicked on."""
    if params.path_ref:
        return float(params.path_ref) * noise
    return max(min(_seeds.peak_near(image, voxel_size, e) for e in ends_um), noise)


def _seed_voxels(prep: Prepared, seed_pts: NDArray[np.float64], params: TraceParams, *, snap_um: float,
                 root_is_seed: bool) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The foreground voxel each seed snaps to (the nearest within ``snap_um``), and the
    seeds the tree is joined to after refining (every seed but a root one, which must lie on
    the foreground).

    A seed with no foreground voxel within ``snap_um`` is taken as a click on a neurite too
    faint for the foreground (it is then only joined by a path) when the image within 1 um of
    it reaches ``seed_contrast`` noise units; otherwise it lies on background:
    :class:`TracingError`."""
    kw = dict(min_radius_um=params.soma_min_radius_um, max_radius_um=params.soma_max_radius_um)
    vox: list[int] = []
    for k, p in enumerate(seed_pts):
        try:
            vox.append(int(_soma.soma_at(prep.fg, prep.radius, prep.to_trace_space(p), snap_um=snap_um,
                                         as_soma=False, what="seed", **kw).voxels[0]))
        except TracingError:
            if k == 0 and root_is_seed:
                raise
            img = prep.image if prep.image is not None else prep.packed_image
            c = _seeds.peak_near(img, prep.voxel_size, p) / prep.noise
            if params.seed_contrast > 0 and c < params.seed_contrast:
                q = p + prep.offset_um
                raise TracingError(
                    f"the seed point ({q[0]:.2f}, {q[1]:.2f}, {q[2]:.2f}) um lies on background: no stained voxel "
                    f"within {snap_um:g} um, and the image within 1 um of it reaches only {c:.2f} x noise (a faint "
                    f"neurite reaches seed_contrast = {params.seed_contrast:g})",
                    hint="click on the neuron, or lower seed_contrast (--param seed_contrast=VALUE; 0 accepts every "
                         "point) to join a seed on the faintest neurites; coordinates are micrometres unless --units "
                         "voxel is given",
                ) from None
    join = seed_pts[1:] if root_is_seed else seed_pts
    return np.asarray(vox, dtype=np.int64), np.asarray(join, dtype=np.float64).reshape(-1, 3)


def _join_seeds(m: Morphology, prep: Prepared, params: TraceParams, seeds: NDArray[np.float64],
                names: Sequence[str] | None = None) -> Morphology:
    """Each seed (micrometres, ``m``'s frame) the refined tree does not reach, within
    ``seed_reach_um``, joined to it by the minimal-cost path through the image
    (:func:`morph.tracing.seeds.path_to_tree`), nearest seeds first (so a seed can join the
    path of another); each path is centred, smoothed, resampled and given radii like the
    tree, and hangs from the tree's node nearest to its first point. ``names``: what each
    point is, for the header's notes (default ``seed``)."""
    if not len(seeds) or len(m) == 0:
        return m
    names = list(names) if names is not None else ["seed"] * len(seeds)
    path_params = params.replace(min_branch_um=0.0, route_soma_bridges=0.0, side_branch_um=0.0, tip_extend_um=0.0,
                                 tip_fraction=0.0, thick_spur_factor=0.0)
    todo = np.asarray(seeds, dtype=np.float64).reshape(-1, 3)
    step = 0.5 * min(prep.voxel_size)
    cable = m.resample(step).xyz if len(m) > 1 else m.xyz  # the ends of the paths, growing with them
    dist = cKDTree(cable).query(todo)[0]  # each seed's distance to the tree and the paths so far
    nodes = [(cKDTree(m.xyz), 0)]  # node indexes: the tree's, then each path's (merge appends)
    while len(todo):
        k = int(np.argmin(dist))
        s, d_k, name = todo[k], float(dist[k]), names.pop(k)
        todo, dist = np.delete(todo, k, axis=0), np.delete(dist, k)
        if d_k <= params.seed_reach_um:
            continue
        ref = _path_ref(params, prep.image, prep.voxel_size, prep.noise, [s])
        path = _seeds.path_to_tree(prep.image, prep.voxel_size, s, cable, ref=ref, cost_power=params.path_cost_power,
                                   margin_um=params.seed_margin_um, max_voxels=params.path_max_mvox * 1e6)
        q = s + prep.offset_um
        if path is None or len(path) < 2:
            prep.notes.append(f"{name} at {q[0]:.2f} {q[1]:.2f} {q[2]:.2f} um: no path to the tree within "
                              f"{params.seed_margin_um:g} um beyond its nearest point")
            continue
        n = len(path)
        pm = Morphology(path, np.ones(n), np.full(n, BASAL), np.arange(n) - 1, units="um", voxel_size=prep.voxel_size)
        n_notes = len(prep.notes)
        pm = refine(pm, prep, path_params, flat_terminals=False)
        del prep.notes[n_notes:]  # the radii's note is the tree's
        near = [kd.query(pm.xyz[0]) for kd, _off in nodes]
        b = int(np.argmin([d for d, _i in near]))
        j = int(near[b][1]) + nodes[b][1]
        t = int(m.types[j])
        pm = pm._derive(types=np.full(len(pm), BASAL if t == SOMA else t))
        val = float(np.median(_prune._sample(prep.image, pm.xyz, prep.voxel_size))) / prep.noise
        side = np.maximum(1.5, pm.radius + params.terminal_ridge_margin_um)
        ridge = float(np.median(_prune.ridge_contrast(pm, prep.image, prep.voxel_size, offset_um=side))) / prep.noise
        prep.notes.append(f"{name} at {q[0]:.2f} {q[1]:.2f} {q[2]:.2f} um joined by a path of {pm.total_length():.1f} um "
                          f"through the image (median {val:.2f} x noise along it, {ridge:.2f} above its sides)")
        nodes.append((cKDTree(pm.xyz), len(m)))
        m = m.merge(pm, attach_to=j)
        path_cable = pm.resample(step).xyz if len(pm) > 1 else pm.xyz
        cable = np.vstack([cable, path_cable])
        if len(todo):
            dist = np.minimum(dist, cKDTree(path_cable).query(todo)[0])
    return m


def _unknown_why(stack_or_array: Any) -> str:
    """Why a stack's file gave no voxel size, when its metadata says (an unknown unit)."""
    origin = str(getattr(stack_or_array, "metadata", {}).get("voxel_size_origin") or "")
    return origin[len("assumed 1 um"):] if origin.startswith("assumed 1 um (") else ""


def _warn_series(stack_or_array: Any) -> None:
    """Warn when the stack is the first of several image series of its file and none was
    chosen (the header's ``input:`` line says which was read)."""
    meta = stack_or_array.metadata if isinstance(stack_or_array, Stack) else {}
    if meta.get("other_series") and meta.get("series") is None:  # read without being chosen
        warnings.warn(series_note(meta["other_series"]), stacklevel=3)


def _z_assumed(stack_or_array: Any, voxel_size: Any, vs: Sequence[float]) -> str | None:
    """When the file gave x and y but not z (its voxel size's origin says so, see
    :func:`morph.io.stack._meta_voxel`) and none was given: warn, and return the header's
    note."""
    if voxel_size is not None or not (isinstance(stack_or_array, Stack) and stack_or_array.z_assumed):
        return None
    origin = stack_or_array.metadata["voxel_size_origin"]
    warnings.warn(f"the stack's metadata gives no z voxel size: assuming z = x = {vs[0]:g} um "
                  "(give it with --voxel X Y Z)", stacklevel=3)
    return f"voxel size: z ASSUMED equal to x ({origin})"


def _points_given(soma: Any, axon: Any, seeds: Any) -> list[str]:
    """Header lines recording the user's points as given (micrometres, the stack's frame), so
    that the run can be repeated."""

    def xyz(p: Any) -> str:
        return " ".join(f"{float(v):.3f}" for v in np.asarray(p, dtype=np.float64).reshape(3))

    out = []
    if soma is not None:
        out.append(f"soma point given (um): {xyz(soma)}")
    if axon is not None:
        out.append(f"axon point given (um): {xyz(axon)}")
    if seeds is not None and len(seeds):
        out.append(f"seeds given (um): {len(seeds)}: " + "; ".join(xyz(s) for s in seeds))
    return out


def _input_line(stack_or_array: Any, source: str | None) -> str:
    """The header's ``input:`` line: the file, the channel read from it when it has several,
    and which image series when it holds several."""
    meta = stack_or_array.metadata if isinstance(stack_or_array, Stack) else {}
    ch = meta.get("channel")
    what = "" if ch is None else (" (the mean of its channels)" if ch == MEAN else f" (channel {ch})")
    if meta.get("other_series"):
        what += f" (image series {meta.get('series') or 0} of its {len(meta['other_series']) + 1})"
    # the absolute path: the header must name the file whatever folder the run started in
    where = os.path.abspath(source) if source and not source.startswith("<") else (source or "<array>")
    return f"input: {where}{what}"


def _header(prep: Prepared, params: TraceParams, input_line: str, known: bool, extra: list[str],
            voxel_size: Sequence[float] | None = None) -> list[str]:
    vs = prep.voxel_size if voxel_size is None else voxel_size  # the stack's (not the working one)
    lines = [
        f"traced by morph {morph.__version__} (morph trace)",
        input_line,
        f"voxel size (x, y, z): {vs[0]:g} {vs[1]:g} {vs[2]:g} um"
        + ("" if known else " (ASSUMED: the stack carries no voxel size; coordinates are voxels scaled by 1 um)"),
        "coordinates: micrometres, x = column, y = row, z = slice, origin at the first voxel's centre",
        f"polarity: {prep.polarity}; background noise {prep.noise:.4g}; foreground voxels {prep.fg.n}",
    ]
    return lines + extra + params.header_lines() + prep.notes


def _outside_stack(what: str, q: NDArray[np.float64], shape_zyx: Sequence[int], vs: Sequence[float]) -> TracingError:
    """The error for a point ``q`` (micrometres) outside a stack of ``shape_zyx`` voxels of
    ``vs`` (x, y, z) um: the point and the stack's extent, in micrometres and in voxels."""
    v = np.asarray(vs, dtype=np.float64)
    n = np.asarray(shape_zyx[::-1], dtype=np.float64)
    hi = (n - 0.5) * v
    qv = q / v
    return TracingError(
        f"the {what} point ({q[0]:g}, {q[1]:g}, {q[2]:g}) um, voxel ({qv[0]:.4g}, {qv[1]:.4g}, {qv[2]:.4g}), lies "
        f"outside the stack (0..{hi[0]:g}, 0..{hi[1]:g}, 0..{hi[2]:g} um: {int(n[0])} x {int(n[1])} x {int(n[2])} "
        f"voxels of {v[0]:g} x {v[1]:g} x {v[2]:g} um)",
        hint="coordinates are micrometres unless --units voxel is given; voxels count from 0",
    )


def _said_of_the_roi(fn: Callable[..., Morphology]) -> Callable[..., Morphology]:
    """With a roi, "no neuron found" is said of the roi, which may simply miss the neuron."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Morphology:
        try:
            return fn(*args, **kw)
        except NoNeuronError as e:
            roi = kw.get("roi")
            if roi is None:
                raise
            box = ", ".join(f"{float(a):g}..{float(b):g}" for a, b in zip(roi[:3], roi[3:], strict=True))
            raise NoNeuronError(f"{e.what} (roi {box} um)", where="roi",
                                hint="only the roi is traced: check that it holds the neuron (its corners are "
                                "micrometres unless --units voxel is given), or widen it; " + (e.hint or "")) from e

    return wrapper


@_said_of_the_roi
def trace(
    stack_or_array: Any,
    *,
    voxel_size: Sequence[float] | None = None,
    soma: Sequence[float] | None = None,
    axon: Sequence[float] | None = None,
    seeds: Any = None,
    roi: Sequence[float] | None = None,
    params: TraceParams | None = None,
    progress: bool = True,
    extend: Morphology | None = None,
    timings: dict[str, float] | None = None,
    prepare_fn: Callable[..., Prepared] | None = None,
) -> Morphology:
    """Trace the neuron in a 3-D stack.

    Parameters
    ----------
    stack_or_array
        A :class:`~morph.io.stack.Stack` or a (Z, Y, X) array (a memory map is fine).
    voxel_size
        ``(x, y, z)`` micrometres; overrides the stack's. For an array without one, 1 um is
        assumed with a warning and a note in the header.
    soma
        Soma position ``(x, y, z)`` in micrometres (default: detected as the thickest
        strongly stained body).
    axon
        A point on the axon (micrometres): labels the axon from its start on the way to that
        point as axon (type 2). The tree must reach it, as a seed: a thin axon the automatic
        tree leaves out is joined to it by the minimal-cost path through the image.
    seeds
        ``(k, 3)`` points (micrometres) the tree must reach. Without ``soma``, the first seed is
        the root of the tree (a plain point, not a soma: use it for neurites leaving the
        field of view, as in DIADEM's stacks).
    roi
        ``(x0, y0, z0, x1, y1, z1)`` micrometres: trace only inside this box (coordinates of
        the result stay those of the whole stack).
    params
        :class:`~morph.tracing.params.TraceParams` (defaults when ``None``).
    progress
        Show a progress bar per stage on stderr.
    extend
        An existing reconstruction (micrometres): trace only what it does not cover yet, and
        return it with the new branches attached at their nearest nodes.
    timings
        A dict filled with the seconds spent per stage.
    prepare_fn
        The preparation stages (polarity to foreground graph) with :func:`prepare`'s
        signature; default :func:`prepare` in memory. :func:`morph.tracing.chunked.trace`
        passes its bounded-memory version.

    Returns
    -------
    Morphology
        Micrometres; soma 1, axon 2, dendrite 3, apical 4; the header records the morph
        version, the input, the voxel size, every parameter and the axon confidence.

    Raises
    ------
    TracingError
        2-D or constant input, no neuron found, a point on background or outside the stack.
    """
    params = params or TraceParams()
    data, vs, known, source = _as_stack(stack_or_array, voxel_size)
    _check_data(data)
    notes: list[str] = []
    if not known:
        warnings.warn(f"voxel size unknown{_unknown_why(stack_or_array)}: assuming 1 x 1 x 1 um (give it with --voxel "
                      "X Y Z)", stacklevel=2)
    _warn_series(stack_or_array)
    z_note = _z_assumed(stack_or_array, voxel_size, vs)
    if z_note:
        notes.append(z_note)
    sl, off = _roi_slices(roi, data.shape, vs)
    sub = data[sl]
    grey, scale = _pre.grey_scale(data)
    if grey != 1.0:
        notes.append(f"{GREY_LEVEL_NOTE}{grey:.4g}, 1/255 of the stack's full scale ({scale})")
    shape_um = np.array(data.shape[::-1]) * np.asarray(vs)
    half = 0.5 * np.asarray(vs)
    # the part of the stack traced (all of it, or the roi's voxels), in micrometres
    box_lo = off - half
    box_hi = off + (np.array(sub.shape[::-1]) - 0.5) * np.asarray(vs)
    stack_vs = vs
    k = working_bin(vs, params.working_voxel_um)
    if k > 1:
        # traced on k x k blocks of voxels, whose centres lie (k - 1) / 2 voxels in
        notes.append(f"traced at a working voxel size of {k * vs[0]:.4g} x {k * vs[1]:.4g} x {vs[2]:.4g} um: the "
                     f"stack's {vs[0]:.4g} x {vs[1]:.4g} um in x-y averaged over {k} x {k} voxels "
                     f"(working_voxel_um = {params.working_voxel_um:g}; 0 traces at the stack's own)")
        sub = bin_xy(sub, k)
        off = off + np.array([0.5 * (k - 1) * vs[0], 0.5 * (k - 1) * vs[1], 0.0])
        vs = (k * vs[0], k * vs[1], vs[2])

    def _check_point(p: Any, what: str) -> NDArray[np.float64]:
        q = _finite_point(p, what)
        if np.any(q < -half) or np.any(q > shape_um - half):
            raise _outside_stack(what, q, data.shape, stack_vs)
        if roi is not None and (np.any(q < box_lo) or np.any(q > box_hi)):
            raise TracingError(
                f"the {what} point ({q[0]:g}, {q[1]:g}, {q[2]:g}) um lies outside the roi ("
                + ", ".join(f"{a:g}..{b:g}" for a, b in zip(box_lo + half, box_hi - half, strict=True)) + " um)",
                hint="only the roi is traced: widen it with --roi or leave the point out",
            )
        return q - off

    if soma is not None and extend is not None:
        raise TracingError("a soma point does not apply when extending a reconstruction: its own soma (or root) "
                           "is kept", hint="leave out --soma, or trace from scratch with it")
    soma_pt = _check_point(soma, "soma") if soma is not None else None
    axon_pt = _check_point(axon, "axon") if axon is not None else None
    seed_pts = np.zeros((0, 3))
    if seeds is not None and len(np.asarray(seeds).reshape(-1)):
        sa = np.asarray(seeds, dtype=np.float64)
        if sa.shape[-1] != 3 or sa.ndim > 2:
            raise TracingError(f"seeds must be points of 3 numbers x, y, z, got an array of shape {sa.shape}")
        seed_pts = np.vstack([_check_point(s, "seed") for s in sa.reshape(-1, 3)])
    tm: dict[str, float] = {} if timings is None else timings
    snap = max(5.0, 3 * max(vs[:2]))
    # faint pieces of foreground are kept near the user's points (the soma, within its snap
    # distance and largest radius; seeds; the reconstruction to extend)
    keep = ([soma_pt] if soma_pt is not None else []) + list(seed_pts) + ([axon_pt] if axon_pt is not None else [])
    keep_r = max(snap, 10.0) + float(params.soma_max_radius_um) if soma_pt is not None else snap
    if extend is not None:  # in micrometres, and its points every half voxel
        ex = extend if extend.units == "um" else extend.to_micrometres(stack_vs)
        far = max(5.0, 2 * max(stack_vs))
        lo_um, hi_um = -half - far, shape_um - half + far
        out = np.any((ex.xyz < lo_um) | (ex.xyz > hi_um), axis=1)
        if len(ex) and out.mean() > 0.1:
            top = ex.xyz.max(axis=0)
            msg = (f"{out.mean():.0%} of the nodes of the reconstruction to extend lie more than {far:g} um outside the "
                   f"stack (they reach {top[0]:.4g}, {top[1]:.4g}, {top[2]:.4g} um; the stack ends at "
                   f"{shape_um[0] - half[0]:.4g}, {shape_um[1] - half[1]:.4g}, {shape_um[2] - half[2]:.4g} um): check "
                   "that it belongs to this stack and that its units are micrometres (an SWC in voxels says "
                   "'# units: voxel' in its header)")
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
        ex_r = ex.resample(0.5 * min(vs)) if len(ex) > 1 else ex
        keep += list(ex_r.xyz - off)
        keep_r = max(keep_r, 1.5 * max(vs), 1.0)
    keep_um = np.asarray(keep, dtype=np.float64).reshape(-1, 3)
    with _progress.stages(STAGES, desc="trace", quiet=not progress) as st:
        st.start("polarity")
        prep = (prepare_fn or prepare)(sub, vs, params, offset_um=off, stages=st, keep_um=keep_um,
                                       keep_radius_um=keep_r, grey_level=grey)
        params = prep.params or params
        tm.update(prep.timings)
        prep.notes.extend(notes)
        st.start("soma")
        t0 = time.perf_counter()
        fg = prep.fg
        kw = dict(min_radius_um=params.soma_min_radius_um, max_radius_um=params.soma_max_radius_um)
        if extend is None:
            if soma_pt is not None:
                s0 = _soma.soma_at(fg, prep.radius, prep.to_trace_space(soma_pt), snap_um=max(snap, 10.0), **kw)
                rp, rr = s0.centre, (s0.radius if s0.is_soma else 0.0)
            elif len(seed_pts):
                rp, rr = prep.to_trace_space(seed_pts[0]), 0.0
            else:
                s0 = _soma.detect_soma(fg, prep.radius, strong=prep.strong, **kw)
                rp, rr = s0.centre, (s0.radius if s0.is_soma else 0.0)
        else:  # the reconstruction's soma (or first root) sets the threshold, as a soma found here would
            rp, rr = prep.to_trace_space(ex.xyz[ex.roots[0]] - off), 0.0
            if ex.soma_nodes.size:
                try:
                    s0 = _soma.soma_at(fg, prep.radius, prep.to_trace_space(ex.soma_center - off), snap_um=max(snap, 10.0), **kw)
                    rp, rr = s0.centre, (s0.radius if s0.is_soma else 0.0)
                except TracingError:  # no stained body there: the check below says so
                    pass
        thr_used = restrict_to_signal(prep, rp, params, soma_radius=rr)
        fg = prep.fg
        prep.notes.append(f"foreground threshold used: {thr_used:.3g} x noise")
        seeds_fg, join_pts = _seed_voxels(prep, seed_pts, params, snap_um=snap, root_is_seed=soma_pt is None and extend is None)
        join_names = ["seed"] * len(join_pts)
        if axon_pt is not None and extend is None and rr > 0:
            inside = float(np.linalg.norm(prep.to_trace_space(axon_pt) - rp))
            if inside < rr:
                q = axon_pt + prep.offset_um
                raise TracingError(
                    f"the axon point ({q[0]:.2f}, {q[1]:.2f}, {q[2]:.2f}) um lies inside the soma ({inside:.1f} um from "
                    f"its centre, radius {rr:.1f} um)",
                    hint="click on the axon beyond the soma's edge; coordinates are micrometres unless --units voxel "
                         "is given",
                )
        if axon_pt is not None and extend is None:
            # the axon click is also a point the tree must reach: a thin axon the automatic
            # tree left out is joined to it like a seed (never the root: that is the soma's
            # or the first seed's). A click too faint for a seed is left to the labelling,
            # which takes the traced node nearest to it (within 10 um) or says why not
            try:
                ax_fg, ax_join = _seed_voxels(prep, axon_pt[None], params, snap_um=snap, root_is_seed=False)
            except TracingError:
                ax_fg, ax_join = np.zeros(0, dtype=np.int64), np.zeros((0, 3))
            seeds_fg, join_pts = np.concatenate([seeds_fg, ax_fg]), np.vstack([join_pts, ax_join])
            join_names += ["axon point"] * len(ax_join)
        cover_xyz = cover_r = anchors = None
        min_anchors = 1
        if extend is not None:
            pts_ex = prep.to_trace_space(ex_r.xyz - off)
            r_ex = np.asarray(ex_r.radius, dtype=np.float64)
            d, _j = cKDTree(pts_ex).query(fg.xyz_um(), distance_upper_bound=max(1.5 * max(vs), 1.0))
            src = np.flatnonzero(np.isfinite(d))
            if src.size == 0:
                raise TracingError("the reconstruction to extend does not touch any stained voxel of the stack",
                                   hint="check that it belongs to this stack and that its units are right")
            # the voxel each of its points lies nearest to: only the pieces of foreground its
            # cable runs through for min_branch_um (at least two points) are grown from
            by_d = src[np.argsort(d[src], kind="stable")]
            anchors = by_d[np.unique(_j[by_d], return_index=True)[1]]
            min_anchors = max(2, int(np.ceil(params.min_branch_um / (0.5 * min(vs)))))
            # what the reconstruction covers is what the image shows of it, as when tracing
            # from scratch (the tree's own nodes cover as far as the foreground is deep where
            # they lie): each point covers at least the depth of the foreground beside it,
            # whatever radius the file gives it; and a soma covers its whole body in the
            # foreground, not just its centre point
            deep = np.zeros(len(pts_ex))
            np.maximum.at(deep, _j[src], prep.radius[src])
            cover_xyz, cover_r = pts_ex, np.maximum(r_ex, deep)
            s_ex = None
            if ex.soma_nodes.size:
                try:
                    s_ex = _soma.soma_at(fg, prep.radius, prep.to_trace_space(ex.soma_center - off),
                                         snap_um=max(snap, 10.0), **kw)
                except TracingError:  # its soma lies on no stained body of this stack
                    s_ex = None
                if s_ex is not None and s_ex.is_soma:
                    src = np.union1d(src, s_ex.voxels)
                    core = s_ex.voxels[np.argmin(np.linalg.norm(fg.xyz_um(s_ex.voxels) - s_ex.centre, axis=1))]
                    anchors = np.concatenate([anchors, np.full(min_anchors, core)])
                    cover_xyz = np.vstack([cover_xyz, fg.xyz_um(s_ex.voxels)])
                    cover_r = np.concatenate([cover_r, prep.radius[s_ex.voxels]])
            root = None
        elif soma_pt is not None:
            root = _soma.soma_at(fg, prep.radius, prep.to_trace_space(soma_pt), snap_um=max(snap, 10.0), **kw)
            src = root.voxels
        elif len(seed_pts):
            root = _soma.Soma(fg.xyz_um(seeds_fg[:1])[0], float(prep.radius[seeds_fg[0]]), seeds_fg[:1], False, "seed")
            src = root.voxels
        else:
            root = _soma.detect_soma(fg, prep.radius, strong=prep.strong, **kw)
            src = root.voxels
            if not root.is_soma:
                # nothing but noise: a few voxels of a large empty stack pass threshold_high by
                # chance (pure noise peaks at 4.6-6.1 noise units on 20 x 128 x 128 stacks),
                # while a neuron's soma or thick neurites stand tens of noise units out
                peak = float(fg.value.max())
                need = NO_SOMA_MIN_PEAK
                if peak < need:
                    raise NoNeuronError(
                        f"no soma, and the strongest structure stands {peak:.1f} noise units "
                        f"above the background (noise {prep.noise:.3g} in the stack's values), below the {need:g} expected "
                        "of a neuron's soma or thick neurites: what stands out looks like noise",
                        hint="check the polarity (--polarity), the file and the channel; if the neuron is faint, "
                        "give its soma (--soma) or points on it (--seeds)",
                    )
                at = prep.to_physical(root.centre) + off
                prep.notes.append(f"hint: no soma found: the tree is rooted at the thickest stained place, "
                                  f"{at[0]:.1f} {at[1]:.1f} {at[2]:.1f} um; if the stack holds the cell's soma, give "
                                  "it (--soma X,Y,Z), or the root of what is to be traced (--seeds)")
        if root is not None and root.is_soma:
            # a soma cut by the x-y edge of what is traced: its centre and radius are the part inside
            c_um = prep.to_physical(root.centre) + off
            tol = np.asarray(stack_vs[:2])  # its depth ends at the edge, a voxel or so from it
            if np.any(c_um[:2] - root.radius <= box_lo[:2] + tol) or np.any(c_um[:2] + root.radius >= box_hi[:2] - tol):
                edge = "the roi's" if roi is not None else "the stack's"
                msg = (f"the soma at {c_um[0]:.1f} {c_um[1]:.1f} {c_um[2]:.1f} um is cut by {edge} x-y edge: its centre "
                       "and radius are those of the part inside, and neurites leaving it outside are missing")
                prep.notes.append(msg)
                warnings.warn(msg, stacklevel=2)
        rivals = np.zeros(0, dtype=np.int64)
        if root is not None and root.is_soma and params.other_somata:
            # other filled cells: what lies nearer to their somata is theirs (tree.grow)
            others = _soma.other_somata(fg, prep.radius, root, strong=prep.strong, **kw)
            if others:
                rivals = np.unique(np.concatenate([o.voxels for o in others]))
                where = "; ".join(f"{c[0]:.1f} {c[1]:.1f} {c[2]:.1f}" for c in
                                  (prep.to_physical(o.centre) + off for o in others[:5]))
                prep.notes.append(f"other somata: {len(others)} (centres um: {where}{'; ...' if len(others) > 5 else ''}): "
                                  "the neurites nearer to them than to this soma are left to their cells")
        if prep.graph is None:
            # bounded mode: the graph of the pieces within reach of the root (and seeds) only;
            # the whole foreground is let go of before that graph is built
            fg = None  # type: ignore[assignment]
            pos = prep.focus(np.concatenate([np.asarray(src, dtype=np.int64), seeds_fg]), params)
            src, seeds_fg, fg = pos[src], pos[seeds_fg], prep.fg
            rivals = pos[rivals][pos[rivals] >= 0]
            if anchors is not None:
                anchors = pos[anchors]
        # the soma in tracing space, for the bridges to it
        soma_t = (np.array(root.centre, dtype=np.float64), float(root.radius)) if root is not None and root.is_soma else None
        if root is not None:
            root.centre = prep.to_physical(root.centre)
        tm["soma"] = time.perf_counter() - t0
        st.step("soma")
        st.start("tree")
        t0 = time.perf_counter()
        grown = _tree.grow(
            fg, prep.graph, prep.radius, src, min_branch_um=params.min_branch_um,
            branch_radius_factor=params.branch_radius_factor, gap_um=params.gap_um, gap_cost=params.gap_cost,
            gap_min_size_um=params.gap_min_size_um, gap_max_angle_deg=params.gap_max_angle_deg,
            gap_from_pieces=params.gap_from_pieces, gap_piece_um=params.gap_piece_um,
            gap_min_elongation=params.gap_min_elongation, gap_thickening=params.gap_thickening,
            gap_thickening_min_um=params.gap_thickening_min_um, gap_soma_um=params.gap_soma_um,
            gap_soma_angle_deg=params.gap_soma_angle_deg, gap_long_um=params.gap_long_um,
            gap_long_angle_deg=params.gap_long_angle_deg, gap_long_min_um=params.gap_long_min_um,
            soma=soma_t,
            strong=prep.strong, force=seeds_fg if seeds_fg.size else None,
            cover_xyz=cover_xyz, cover_radius=cover_r, coverage_z_stretch=prep.stretch ** params.coverage_z_power,
            anchors=anchors, min_anchors=min_anchors, rivals=rivals if rivals.size else None,
        )
        tm["tree"] = time.perf_counter() - t0
        st.step("tree")
        # refine reads the image (held as 16-bit codes since the candidates were taken), not
        # the graph: the graph and what the tree stage freed go first
        prep.graph = None  # type: ignore[assignment]
        release_memory()
        t0 = time.perf_counter()
        prep.restore_image()
        tm["preprocess"] = tm.get("preprocess", 0.0) + time.perf_counter() - t0
        st.start("refine")
        t0 = time.perf_counter()
        if extend is not None:
            m = _extend_result(prep, grown, ex, off, params, seeds=(join_pts + off) if len(join_pts) else None)
            if len(join_pts):
                m = _join_seeds(m.translate(-off), prep, params, join_pts).translate(off)
        else:
            m = _tree_to_morphology(prep, grown, root, root_is_endpoint=params.root_is_endpoint)
            if len(m) < 2:
                raise TracingError(
                    "no neuron traced: the tree from the soma or seed holds no neurite",
                    hint="check the soma/seed position, the polarity, or lower threshold_low",
                )
            m = refine(m, prep, params, protect_xyz=(prep.to_physical(fg.xyz_um(seeds_fg)) if seeds_fg.size else None))
            m = _join_seeds(m, prep, params, join_pts, join_names)
            m = m.translate(off)
            if prep.soma_outline is not None:
                prep.soma_outline.centre = prep.soma_outline.centre + off
                prep.notes.append(prep.soma_outline.header_line())
            # the stems start at the soma's surface, not at the soma voxels they grew from
            m = _soma.clip_to_surface(m, prep.soma_outline, min_stem_um=params.min_branch_um)
        tm["refine"] = time.perf_counter() - t0
        st.step("refine")
        st.start("label")
        t0 = time.perf_counter()
        if extend is None:
            m, rep = _label.label(m, axon_point=None if axon_pt is None else axon_pt + off,
                                  pia_direction=params.pia_direction, axon_confidence_min=params.axon_confidence_min,
                                  apical_dominance=params.apical_dominance,
                                  apical_thickness=params.apical_thickness, origin_drop=params.axon_origin_drop,
                                  origin_max_um=params.axon_origin_max_um)
            lab = rep.header_lines()
        else:
            lab = ["extend mode: new branches attached to the nearest node of the given reconstruction"]
            if axon_pt is not None:  # the clicked axon is labelled; every other node keeps its type
                ax, note = _label.axon_from_point(m, axon_pt + off, origin_drop=params.axon_origin_drop,
                                                  max_um=params.axon_origin_max_um)
                m = m._derive(types=np.where(ax, AXON, m.types))
                lab.append(f"axon: {note} (confidence 1.00)")
        tm["label"] = time.perf_counter() - t0
        st.step("label")
        st.start("faint")
        t0 = time.perf_counter()
        if extend is None:
            # faint neurites last, so that none hangs from a clicked axon (a dendrite passing near it)
            clicked = axon_pt is not None
            m = _join_faint(m.translate(-off), prep, params, avoid_axon=clicked).translate(off)
            m = _extend_tip_paths(m.translate(-off), prep, params, avoid_axon=clicked).translate(off)
            m = _extend_side_paths(m.translate(-off), prep, params, avoid_axon=clicked).translate(off)
            # the user's points (seeds, the axon click) keep their branches
            held_pts = np.vstack([np.reshape(join_pts, (-1, 3)), prep.to_physical(fg.xyz_um(seeds_fg)).reshape(-1, 3)])
            m = _prune_steep_terminals(m.translate(-off), prep, params, held_pts).translate(off)
            m = _prune_edge_terminals(m.translate(-off), prep, params, held_pts).translate(off)
            m = _soma.clip_to_surface(m, prep.soma_outline, min_stem_um=params.min_branch_um)  # a faint path may end on the soma
        tm["faint"] = time.perf_counter() - t0
        st.step("faint")
    extra = []
    if root is not None:
        c = root.centre + off
        kind = "soma" if root.is_soma else "root point"
        extra.append(f"{kind} ({root.origin}): centre {c[0]:.2f} {c[1]:.2f} {c[2]:.2f} um, radius {root.radius:.2f} um")
    extra.append(f"tree: {grown.reached} voxels reached, {grown.bridges} gaps bridged, "
                 f"z elongation of the structure {prep.stretch:.2f} (tracing space z / {prep.stretch:.2f})")
    if roi is not None:
        extra.append("roi (um): " + " ".join(f"{v:g}" for v in roi))
    extra += _points_given(soma, axon, np.asarray(seeds, dtype=np.float64).reshape(-1, 3) if len(seed_pts) else None)
    header = _header(prep, params, _input_line(stack_or_array, source), known, extra + lab, voxel_size=stack_vs)
    return m._derive(header=header, name=None, source=source)


def _uncovered(m_new: Morphology, existing: Morphology, margin_um: float = 0.0) -> Morphology:
    """The new pieces of an extend run without their nodes inside the existing reconstruction's
    tube (within its radius plus ``margin_um`` of its cable): refining the new pieces
    (smoothing, tip walks, side-branch search) knows nothing of the existing tree and can run
    along it. Cut there, a piece falls apart into pieces each rooted at its first node
    outside. A wider margin also cuts true sister branches running a micron or two beside
    the existing ones (1 um: F1 down by up to 0.006 on the brightfield sample stacks)."""
    if len(m_new) == 0 or len(existing) == 0:
        return m_new
    ex = existing.resample(0.5) if len(existing) > 1 else existing
    d, j = cKDTree(ex.xyz).query(m_new.xyz)
    keep = d > np.asarray(ex.radius)[j] + margin_um
    if keep.all():
        return m_new
    p = m_new.parent
    cut = keep & ((p < 0) | ~keep[np.maximum(p, 0)])  # kept nodes whose parent goes
    out = m_new.take(keep)
    parent = np.where(cut[keep], -1, out.parent)
    return out._derive(parent=parent)


def _extend_result(prep: Prepared, grown: _tree.GrownTree, existing: Morphology, off: NDArray[np.float64],
                   params: TraceParams, seeds: NDArray[np.float64] | None = None) -> Morphology:
    """New branches of an extend run, attached to the existing reconstruction; with
    ``seeds`` (micrometres, the stack's frame), only those reaching within
    ``seed_reach_um`` of a seed: the user says what is missing."""
    if grown.node.size == 0:
        return existing._derive()
    m_new = _tree_to_morphology(prep, grown, None, join_roots=False)
    # the new pieces' branches are judged as ridges once attached (below), not twice
    traced: list[NDArray[np.float64]] = []
    m_new = refine(m_new, prep, params, flat_terminals=False, traced_cable=traced)
    m_new = m_new.translate(off)
    m_new = _uncovered(m_new, existing)
    roots_new = np.flatnonzero(m_new.parent < 0)
    out = existing
    # attach each new piece (rooted subtree) at the existing node nearest to its root
    kd = cKDTree(existing.xyz)
    from morph import _tree as t

    root_of = t.root_of(m_new.parent)
    kd_seeds = cKDTree(seeds) if seeds is not None and len(seeds) else None
    for r in roots_new:  # one per new branch
        piece = m_new.take(root_of == r)
        if piece.total_length() < params.min_branch_um:
            continue
        if kd_seeds is not None and not np.isfinite(kd_seeds.query(piece.xyz, distance_upper_bound=params.seed_reach_um)[0]).any():
            continue
        _d, j = kd.query(piece.xyz[0])
        out = out.merge(piece._derive(types=np.where(piece.types == BASAL, existing.types[j] if existing.types[j] != SOMA else BASAL, piece.types)),
                        attach_to=int(j))
    if len(out) > len(existing):
        held = np.arange(len(out)) < len(existing)
        loc = out.translate(-off)
        if params.thick_spur_factor > 0:
            # attached, a new piece is judged as refine judges a branch of a tree traced from
            # scratch: a spur of the blur halo around the node it hangs from goes, unless it
            # stands out as a ridge
            kept = _prune_halo_spurs(loc._derive(radius=_half_widths(loc, prep, params)), prep, params, protect=held)
            keep = np.isin(loc.ids, kept.ids)
            loc, held = loc.take(keep), held[keep]
        # and must be a ridge; the given reconstruction stays as it is
        out = _prune_flat_terminals(loc, prep, params, held, traced[0] if traced else None).translate(off)
    return out


def trace_path(
    stack_or_array: Any,
    start: Sequence[float],
    end: Sequence[float],
    *,
    voxel_size: Sequence[float] | None = None,
    params: TraceParams | None = None,
    margin_um: float = 15.0,
    into: Morphology | None = None,
    join_um: float = 10.0,
    progress: bool = True,
    max_memory: int | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> Morphology:
    """Minimal-cost path between two points (micrometres), as SNT's click-to-click tracing.

    The path is found with :class:`skimage.graph.MCP_Geometric` (physical voxel spacing) on
    the gray-weighted cost of the flattened, denoised image (``path_cost_power`` and
    ``path_ref`` of the parameters) inside the box spanned by the two points plus
    ``margin_um``, then centred, smoothed, resampled and given radii measured on
    the image. With ``into``, the path is appended to that reconstruction at its node
    nearest to the path's start (or end, whichever is closer), typed like that node; that
    end must lie within ``join_um`` of the reconstruction (a path is started or ended on the
    neurite it continues), else :class:`TracingError`.

    Only the box is read (the polarity is detected on it), slab by slab (a memory map or a
    lazy stack, such as :func:`morph.io.chunked.open_chunked` gives, is never read whole),
    into its flattened, denoised image (4 bytes per voxel of the box). With ``scratch_dir``, that image is kept
    in a memory map in a temporary folder there (removed afterwards). With ``max_memory``
    (bytes; :data:`morph.tracing.chunked.FIXED_OVERHEAD` of it is left to the readers), the
    slabs are planned to fit half of what remains, the image goes to a memory map (under
    ``scratch_dir``, or the system's temporary folder) when it would take more than a
    quarter of it, and the search's box (:func:`morph.tracing.prune.min_cost_path`, about 100
    bytes per voxel) is held to half of it (``path_max_mvox`` lowered as needed).
    """
    params = params or TraceParams()
    data, vs, known, source = _as_stack(stack_or_array, voxel_size)
    _check_data(data)
    if not known:
        warnings.warn(f"voxel size unknown{_unknown_why(stack_or_array)}: assuming 1 x 1 x 1 um (give it with --voxel "
                      "X Y Z)", stacklevel=2)
    _warn_series(stack_or_array)
    z_note = _z_assumed(stack_or_array, voxel_size, vs)
    shape_um = np.array(data.shape[::-1]) * np.asarray(vs)
    a = _finite_point(start, "start")
    b = _finite_point(end, "end")
    for q, what in ((a, "start"), (b, "end")):
        if np.any(q < -0.5 * np.asarray(vs)) or np.any(q > shape_um - 0.5 * np.asarray(vs)):
            raise _outside_stack(what, q, data.shape, vs)
    if np.all(np.abs(a - b) < np.asarray(vs)):
        raise TracingError(f"the start and end points ({a[0]:g}, {a[1]:g}, {a[2]:g}) and ({b[0]:g}, {b[1]:g}, {b[2]:g}) um "
                           "lie within one voxel of each other: there is no path between them",
                           hint="give two points on the neurite, the start and the end of the stretch to trace")
    base = None if into is None else into if into.units == "um" else into.to_micrometres(vs)
    if base is not None and len(base):
        # checked before any work: one end must touch the reconstruction the path joins
        d_end = np.sqrt(np.min([((base.xyz - q) ** 2).sum(axis=1).min() for q in (a, b)]))
        if d_end > join_um:
            raise TracingError(f"neither end of the path lies within {join_um:g} um of the reconstruction to join "
                               f"(the nearer is {d_end:.1f} um from it)",
                               hint="start or end the path on the neurite it continues, and check the file given to "
                               "--into and its units")
    lo = np.minimum(a, b) - margin_um
    hi = np.maximum(a, b) + margin_um
    sl, off = _roi_slices(np.r_[lo, hi], data.shape, vs)
    sub = data[sl]  # a view, or lazy: read slab by slab by the preprocessing
    shape = tuple(int(k) for k in sub.shape)
    max_vox = params.path_max_mvox * 1e6
    on_disk = scratch_dir is not None
    if max_memory is not None:
        from morph.tracing import chunked as _chunked

        room = float(max_memory) - _chunked.FIXED_OVERHEAD
        if room <= 0:
            raise TracingError(f"a bound of {_chunked.format_size(max_memory)} leaves nothing for the path "
                               f"({_chunked.FIXED_OVERHEAD / 2**20:.0f} MiB go to the readers)", hint="raise --max-memory")
        # the preprocessing gets half of the room: its smallest slab, in the user's terms
        hz = _pre.halo_slices(params.denoise_sigma_um, vs, two_pass=params.background_fine_um > 0)
        one = _chunked.one_slice_bytes(shape, hz, _chunked.preprocess_bytes_per_voxel(params.background_fine_um),
                                       np.dtype(sub.dtype).itemsize)
        if 2 * one > room:
            raise TracingError(
                f"the box between the two points ({shape[2]} x {shape[1]} x {shape[0]} voxels) needs a bound of "
                f"at least {np.ceil((_chunked.FIXED_OVERHEAD + 2 * one) / 2**20):.0f} MiB: one slice with its halo "
                f"takes {one / 2**20:.1f} MiB, and the preprocessing gets half of what "
                f"{_chunked.FIXED_OVERHEAD / 2**20:.0f} MiB for the readers leave of the "
                f"{_chunked.format_size(max_memory)} given",
                hint="raise --max-memory",
            )
        max_vox = min(max_vox, max(1e4, 0.5 * room / 100.0))
        on_disk = on_disk or 4 * int(np.prod(shape, dtype=np.int64)) > 0.25 * room
    with contextlib.ExitStack() as cleanup, \
            _progress.stages(["preprocess", "path", "refine"], desc="trace-path", quiet=not progress) as st:
        pol = resolve_polarity(sub, params.polarity)  # from the box: the rest is never read
        params = params.resolved(pol)
        pre_kw = dict(polarity=pol, sigma_um=params.denoise_sigma_um, block_um=params.background_block_um,
                      percentile=params.background_percentile, fine_block_um=params.background_fine_um,
                      mask_k=params.background_mask)
        out: Any = None
        if on_disk:  # the box's image in a scratch folder, removed on the way out
            from morph.tracing.chunked import scratch

            d = cleanup.enter_context(scratch(scratch_dir))
            out = np.memmap(d / "path_image.f32", dtype=np.float32, mode="w+", shape=shape)
        if max_memory is None:
            img = _pre.preprocess(sub, vs, out=out, **pre_kw)  # type: ignore[arg-type]
        else:  # slabs planned to fit half of the room
            img = _chunked.preprocess(sub, vs, max_memory=int(_chunked.FIXED_OVERHEAD + room // 2),
                                      out=np.empty(shape, dtype=np.float32) if out is None else out,
                                      **pre_kw)  # type: ignore[arg-type]
        st.step("preprocess")
        flat = img.reshape(-1)
        if float(np.percentile(flat[:: flat.size // 1_000_000 + 1], 99.5)) <= 0:  # a subsample: no copy
            raise TracingError("nothing stained between the two points: the region is flat background")
        # the floor in the box's grey levels (read on the box, as its polarity), also the radii's measure of a clean profile
        noise = _pre.noise_level(img, floor=params.min_noise * _pre.grey_level(sub))
        ref = _path_ref(params, img, vs, noise, [a - off, b - off])
        ia = tuple(np.clip(np.round((a - off) / vs)[::-1].astype(int), 0, np.array(shape) - 1))
        ib = tuple(np.clip(np.round((b - off) / vs)[::-1].astype(int), 0, np.array(shape) - 1))
        box = tuple(slice(0, k) for k in img.shape)
        path = _prune.min_cost_path(img, vs, box, ia, ib, ref=ref, cost_power=params.path_cost_power,
                                    max_voxels=max_vox)
        st.step("path")
        xyz = path[:, ::-1] * np.asarray(vs)
        n = xyz.shape[0]
        m = Morphology(xyz, np.ones(n), np.full(n, BASAL), np.arange(n) - 1, units="um", voxel_size=vs)
        prep = Prepared(img, vs, pol, noise, _tree.Foreground(shape, vs, np.zeros(0, np.int64), np.zeros(0, np.float32)),
                        None, np.zeros(0), np.zeros(0, bool), off)  # type: ignore[arg-type]
        # refined as a seed's path is: nothing pruned, trimmed, walked on or branched off (the
        # path runs between the user's two points)
        m = refine(m, prep, params.replace(min_branch_um=0.0, route_soma_bridges=0.0, side_branch_um=0.0,
                                           tip_extend_um=0.0, tip_fraction=0.0, thick_spur_factor=0.0),
                   flat_terminals=False)
        m = m.translate(off)
        notes = [f"polarity: {pol}; background noise {noise:.4g}"] + prep.notes
        ends = [float(_seeds.peak_near(img, vs, e - off)) / noise for e in (a, b)]
        notes.append(f"end points: the image within 1 um of them reaches {ends[0]:.2f} and {ends[1]:.2f} x noise")
        faint = [w for w, c in zip(("--from", "--to"), ends) if params.seed_contrast > 0 and c < params.seed_contrast]
        if faint:
            warnings.warn(f"the {' and '.join(faint)} point{'s lie' if len(faint) > 1 else ' lies'} on background (the "
                          f"image within 1 um reaches less than seed_contrast = {params.seed_contrast:g} x noise): the "
                          "path may run through the background; click on the neurite", stacklevel=2)
        del prep, img, flat, out  # the memory map is closed before its folder goes
        st.step("refine")
    header = [
        f"traced by morph {morph.__version__} (morph trace-path)",
        _input_line(stack_or_array, source),
        f"voxel size (x, y, z): {vs[0]:g} {vs[1]:g} {vs[2]:g} um" + ("" if known else " (ASSUMED)"),
        f"path from {a[0]:.2f} {a[1]:.2f} {a[2]:.2f} to {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} um, "
        f"length {m.total_length():.2f} um",
    ] + ([z_note] if z_note else []) + params.header_lines() + notes
    if base is None:
        return m._derive(header=header, source=source)
    kd = cKDTree(base.xyz)
    da, ja = kd.query(m.xyz[0])
    db, jb = kd.query(m.xyz[-1])
    if db < da:  # the end touches the tree: reverse the path
        m = Morphology(m.xyz[::-1], m.radius[::-1], m.types, np.arange(len(m)) - 1, units="um", voxel_size=vs)
        ja = jb
    t = base.types[ja]
    m = m._derive(types=np.full(len(m), BASAL if t == SOMA else t))
    if t == SOMA and base.soma_nodes.size == 1:
        # from the soma: the path starts on its surface, as the tracer's stems do
        from morph.soma_outline import traced_outline

        n = len(m)
        sm = Morphology(np.vstack([base.xyz[ja], m.xyz]), np.r_[base.radius[ja], m.radius], np.r_[SOMA, m.types],
                        np.arange(n + 1) - 1, units="um", voxel_size=vs)
        sm = _soma.clip_to_surface(sm, traced_outline(base))
        m = sm.take(~sm.soma_mask)
        if len(m) < 2:
            raise TracingError("the path lies inside the soma of the reconstruction it was to be added to: nothing "
                               "to add", hint="give --from and --to on the neurite, outside the soma")
    out = base.merge(m, attach_to=int(ja))
    return out._derive(header=list(base.header) + header)


__all__ = ["trace", "trace_path", "prepare", "refine", "restrict_to_signal", "Prepared", "STAGES"]
