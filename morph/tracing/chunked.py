"""Tracing stacks larger than memory: the local stages chunk by chunk, under a memory bound.

The tracer's stages are of two kinds. *Local* stages (background flattening, denoising,
tubularity, thresholding) compute each voxel from a small neighbourhood: they run on chunks
of the stack, each read with a halo (an overlap of a few smoothing widths) so that the result
inside the chunk is exactly what the whole-stack computation gives. *Global* stages (soma
detection, the shortest-path tree, pruning, labelling) only touch the candidate foreground, a
sparse list of voxels (typically 1% of the stack), which is the reduced representation kept
in memory.

:func:`map_local` is the engine: chunks sized by :func:`plan_chunks` from ``max_memory``,
each read with its halo from the input (a numpy array, memory map, zarr or dask array: only
that region is read), clipped at the stack's faces (no artificial padding, so the function
applies its own border rule exactly as on the whole stack), and its inside written to an
on-disk array (a memory map in a scratch folder), by at most ``n_parallel`` threads at a
time. (With ``dask.array.map_overlap`` and ``dask.array.store`` instead, the peak grew by
32 bytes per voxel of a chunk with its halo, measured on the ``bench/batch.py trace`` stack;
with this loop and the Gaussian in place, by 12.) :func:`sparse_above` reduces a chunked image to
the coordinates and values of the voxels above a threshold. :func:`preprocess` runs the
tracer's flattening and denoising (:mod:`morph.tracing.preprocess`) this way, and
:func:`trace` runs the whole tracer (:func:`morph.tracing.trace`) with these chunked dense
stages (:func:`prepare`) and its own global stages, giving the same reconstruction.

Memory model. A chunk of ``c`` voxels with its halo holds ``c_h`` voxels; the function's
working set is about ``bytes_per_voxel * c_h`` (input copy, float32 intermediates and output;
:data:`PREPROCESS_BYTES_PER_VOXEL` for flatten + denoise); :func:`plan_chunks` picks the
largest chunk such that ``n_parallel * bytes_per_voxel * c_h`` plus the input chunks and a
fixed :data:`FIXED_OVERHEAD` stay under ``max_memory``. Memory-mapped input and output pages are
file cache, which the operating system reclaims; they are not counted against the bound (as
in any out-of-core tool). The global stages on the sparse foreground hold it whole
(:data:`SPARSE_BYTES_PER_VOXEL` per foreground voxel): their estimate is checked against the
bound before they start (:func:`check_tree_memory`: a warning, or an error with
``strict_memory``).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import TracingError
from morph.tracing.memory import release_memory

#: Working-set bytes per voxel of the flatten + denoise stage (the float32 flattened block,
#: scipy's copy of it in the Gaussian, the background's per-slice buffers), measured: the peak
#: of :func:`preprocess` grows by 12 bytes per voxel of a chunk with its halo
#: (``bench/batch.py trace`` stack, bounds of 96 to 192 MiB); the input counts on top.
PREPROCESS_BYTES_PER_VOXEL = 12
#: Memory of the machinery itself, reserved from the bound: the buffers of dask's and zarr's
#: readers, and what the allocator keeps of the stages before (measured: 25 MiB held when
#: the candidate stage starts, on the ``bench/batch.py trace`` stack at a 96 MiB bound).
FIXED_OVERHEAD = 28 * 1024**2
#: Memory of the tracer's global stages per foreground voxel (graph to 26 neighbours, costs,
#: local radius, shortest-path tree), measured by ``bench/batch.py trace`` (peak memory of
#: these stages over the number of foreground voxels: 480 bytes; 410 on a synthetic
#: brightfield stack in ``bench/trace.py``; rounded up to keep the estimate on the safe side).
#: These stages hold the whole
#: foreground at once: :func:`prepare` checks this estimate against ``max_memory`` before
#: they start.
SPARSE_BYTES_PER_VOXEL = 600
#: Working-set bytes per voxel of the tubularity stage (float32 slab with its halo, its
#: smoothed copy, scipy's buffers).
TUBE_BYTES_PER_VOXEL = 12
#: Bytes per candidate voxel held during the tubularity stage (coordinates, values, responses).
CANDIDATE_BYTES_PER_VOXEL = 48
#: Bytes per kept foreground voxel held from one z-range to the next (flat index and value).
KEPT_BYTES_PER_VOXEL = 12
#: Bytes per voxel of the whole foreground held while the tree stages choose their pieces
#: (index, value, coordinates, local radius, strong flag, piece label).
FOREGROUND_BYTES_PER_VOXEL = 40


@dataclass(frozen=True)
class ChunkPlan:
    """How a stack is cut: ``chunks`` (z, y, x) voxels, ``halo`` (z, y, x) voxels on each side,
    ``n_parallel`` chunks computed at once, and the estimated peak bytes."""

    chunks: tuple[int, int, int]
    halo: tuple[int, int, int]
    n_parallel: int
    peak_bytes: int


def format_size(nbytes: float) -> str:
    """A memory bound as a user reads it: MiB, or KiB / bytes below one MiB (not "0 MiB")."""
    if nbytes >= 2**20:
        return f"{nbytes / 2**20:.0f} MiB"
    return f"{nbytes / 2**10:.0f} KiB" if nbytes >= 2**10 else f"{int(nbytes)} bytes"


def preprocess_bytes_per_voxel(fine_block_um: float = 0.0) -> float:
    """Working set of the background flattening and denoising per voxel of a chunk: the
    second background estimate holds one more float32 array of it."""
    return PREPROCESS_BYTES_PER_VOXEL + (4 if fine_block_um > 0 else 0)


def one_slice_bytes(shape: Sequence[int], halo_z: int, bytes_per_voxel: float, in_itemsize: int) -> float:
    """Memory of the smallest whole-slice chunk :func:`plan_chunks` can make: one slice with
    its halo (the working set plus the input read)."""
    nz, ny, nx = (int(s) for s in shape)
    return (float(bytes_per_voxel) + 2.0 * in_itemsize) * min(nz, 1 + 2 * int(halo_z)) * ny * nx


def plan_chunks(
    shape: Sequence[int],
    max_memory: int,
    *,
    halo: Sequence[int] = (0, 0, 0),
    bytes_per_voxel: float = PREPROCESS_BYTES_PER_VOXEL,
    in_itemsize: int = 2,
    whole_slices: bool = True,
    n_parallel: int = 1,
) -> ChunkPlan:
    """Largest chunks whose computation stays under ``max_memory`` bytes.

    Parameters
    ----------
    shape
        ``(Z, Y, X)`` of the stack.
    max_memory
        Bound on the memory of the computation, bytes.
    halo
        Voxels of context needed on each side, per axis.
    bytes_per_voxel
        Working set of the local function per voxel of a chunk with its halo.
    in_itemsize
        Bytes per voxel of the input as stored.
    whole_slices
        Cut along z only (for stages that need whole slices, such as the background
        estimate); otherwise cut in z, y and x (square tiles).
    n_parallel
        Chunks computed at once.

    Raises
    ------
    TracingError
        When even the smallest chunk does not fit.
    """
    nz, ny, nx = (int(s) for s in shape)
    hz, hy, hx = (int(h) for h in halo)
    per = float(bytes_per_voxel) + 2.0 * in_itemsize  # working set + the input chunk and its neighbours' slices
    budget = (float(max_memory) - FIXED_OVERHEAD) / max(1, n_parallel)

    def cost(cz: int, cy: int, cx: int) -> float:
        ez = min(nz, cz + 2 * hz)
        ey = min(ny, cy + 2 * hy)
        ex = min(nx, cx + 2 * hx)
        return per * ez * ey * ex

    if whole_slices:
        one = one_slice_bytes(shape, hz, bytes_per_voxel, in_itemsize)
        if budget <= 0 or one > budget:
            raise TracingError(
                f"one slice with its halo needs about {(one + FIXED_OVERHEAD) / 2**20:.0f} MiB, over the "
                f"{format_size(max_memory)} bound",
                hint="raise --max-memory",
            )
        lo, hi = 1, nz
        while lo < hi:  # largest cz with cost <= budget
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cost(mid, ny, nx) <= budget else (lo, mid - 1)
        chunks = (lo, ny, nx)
    else:
        side = min(ny, nx)
        cz = nz
        while cz > 1 and cost(cz, 1, 1) * side * side > budget:
            cz = max(1, cz // 2)
        lo, hi = 8, max(8, max(ny, nx))
        if budget <= 0 or cost(min(cz, nz), 8, 8) > budget:
            raise TracingError(f"no chunk fits in {format_size(max_memory)}", hint="raise --max-memory")
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cost(cz, min(mid, ny), min(mid, nx)) <= budget else (lo, mid - 1)
        chunks = (cz, min(lo, ny), min(lo, nx))
    peak = int(cost(*chunks) * max(1, n_parallel) + FIXED_OVERHEAD)
    return ChunkPlan(chunks, (hz, hy, hx), max(1, n_parallel), peak)


@contextmanager
def scratch(folder: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A temporary folder for on-disk intermediates, removed on exit (Ctrl-C included)."""
    d = Path(tempfile.mkdtemp(prefix="morph-chunked-", dir=folder))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def reserve_scratch(fd: int, nbytes: int, folder: str | os.PathLike[str]) -> None:
    """Take ``nbytes`` of disk for the open scratch file ``fd`` in ``folder`` now, so that a
    disk too small stops the run here with a clear error, not later, part way, with the
    process killed (writing a memory map past the disk's end raises no Python error). The
    space is allocated where the file system can (``posix_fallocate``); elsewhere the
    folder's free space is checked."""
    gib = float(1 << 30)

    def refuse(free: float) -> TracingError:
        return TracingError(
            f"the scratch folder {folder} has {free / gib:.1f} GiB free, and the chunked tracing needs "
            f"{nbytes / gib:.1f} GiB there for its working image (4 bytes a voxel)",
            hint="set TMPDIR to a folder on a larger disk (or free space there), or trace a part of the stack "
                 "(--roi)",
        )

    if nbytes <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
        return
    except AttributeError:  # no posix_fallocate on this system
        pass
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise refuse(float(shutil.disk_usage(folder).free)) from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise refuse(float(free))


def map_local(
    func: Callable[..., NDArray[Any]],
    data: Any,
    *,
    halo: Sequence[int],
    max_memory: int,
    out: Any = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    dtype: Any = np.float32,
    bytes_per_voxel: float = PREPROCESS_BYTES_PER_VOXEL,
    whole_slices: bool = True,
    n_parallel: int = 1,
    **kwargs: Any,
) -> Any:
    """Apply a local function to a stack chunk by chunk, with overlap, under a memory bound.

    Parameters
    ----------
    func
        ``func(block, **kwargs) -> array`` of the block's shape; its value at a voxel must
        depend only on the input within ``halo`` voxels (a filter, a threshold...).
    data
        ``(Z, Y, X)`` numpy array, memory map, zarr array or dask array.
    halo
        Overlap, voxels per axis ``(z, y, x)`` (e.g. 3 sigma of a Gaussian plus one).
    max_memory
        Bytes the computation may use (see the module documentation).
    out
        Array to write into (numpy, memory map or zarr). Default: a float32 memory map in
        ``scratch_dir`` (required then), returned read-only.
    whole_slices, bytes_per_voxel, n_parallel
        See :func:`plan_chunks`.

    Returns
    -------
    array
        ``out`` (or the new memory map), equal to ``func(data)`` computed on the whole stack
        when ``func`` is local within ``halo``.
    """
    from concurrent.futures import ThreadPoolExecutor

    shape = tuple(int(s) for s in data.shape)
    if len(shape) != 3:
        raise TracingError(f"expected a 3-D stack, got shape {shape}")
    plan = plan_chunks(
        shape, max_memory, halo=halo, bytes_per_voxel=bytes_per_voxel,
        in_itemsize=np.dtype(data.dtype).itemsize, whole_slices=whole_slices, n_parallel=n_parallel,
    )
    if out is None:
        if scratch_dir is None:
            raise TracingError("map_local needs an output array or a scratch folder")
        fd, name = tempfile.mkstemp(suffix=".f32", dir=scratch_dir)
        try:
            reserve_scratch(fd, int(np.prod(shape)) * np.dtype(dtype).itemsize, scratch_dir)
        except BaseException:
            os.close(fd)
            os.unlink(name)
            raise
        os.close(fd)
        out = np.memmap(name, dtype=np.dtype(dtype), mode="w+", shape=shape)
    blocks = [tuple((i * c, min(n, (i + 1) * c)) for i, c, n in zip(b, plan.chunks, shape))
              for b in np.ndindex(*(-(-n // c) for n, c in zip(shape, plan.chunks)))]

    def run(block: tuple[tuple[int, int], ...]) -> None:
        # the block with its halo, clipped at the stack's faces (no artificial padding)
        src = tuple(slice(max(0, a - h), min(n, b + h)) for (a, b), h, n in zip(block, plan.halo, shape))
        res = func(np.asarray(data[src]), **kwargs)
        inner = tuple(slice(a - s.start, b - s.start) for (a, b), s in zip(block, src))
        out[tuple(slice(a, b) for a, b in block)] = res[inner]
        del res
        release_memory()

    if plan.n_parallel == 1:
        for b in blocks:
            run(b)
    else:
        with ThreadPoolExecutor(plan.n_parallel) as pool:
            for _ in pool.map(run, blocks):
                pass
    if isinstance(out, np.memmap):
        out.flush()
        return np.memmap(out.filename, dtype=out.dtype, mode="r", shape=shape)
    return out


def quantise_image(image: Any, *, max_memory: int) -> Any:
    """:func:`morph.tracing.preprocess.quantise` on the float32 intermediate image (a memory
    map is reopened for writing, quantised slab by slab, flushed and reopened read-only):
    the values refine then reads equal those of the in-memory tracer, which holds the image
    as 16-bit codes meanwhile."""
    from morph.tracing import preprocess as pre

    nz, ny, nx = (int(s) for s in image.shape)
    cz = int(max(1, min(nz, (max_memory // 8) // max(ny * nx * 12, 1))))  # a slab and two float32 temporaries
    if isinstance(image, np.memmap):
        rw = np.memmap(image.filename, dtype=image.dtype, mode="r+", shape=image.shape)
        pre.quantise(rw, chunk_slices=cz)
        rw.flush()
        del rw
        release_memory()
        return np.memmap(image.filename, dtype=image.dtype, mode="r", shape=image.shape)
    pre.quantise(image, chunk_slices=cz)
    return image


def sparse_above(
    image: Any, threshold: float, *, max_memory: int = 256 * 1024**2
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Voxels of ``image`` above ``threshold``: ``(zyx (n, 3) sorted by z, values)``.

    Reads ``image`` slab by slab (whole slices, as many as fit in ``max_memory``), so only the
    selected voxels are ever held together: the reduced representation on which the global
    stages of the tracer work.
    """
    nz, ny, nx = (int(s) for s in image.shape)
    per_slice = ny * nx * (np.dtype(image.dtype).itemsize + 1)
    cz = int(max(1, min(nz, max_memory // max(per_slice, 1))))
    coords, vals = [], []
    for z0 in range(0, nz, cz):
        slab = np.asarray(image[z0 : z0 + cz])
        m = slab > threshold
        idx = np.argwhere(m)
        idx[:, 0] += z0
        coords.append(idx)
        vals.append(slab[m].astype(np.float32))
    if not coords:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.float32)
    return np.concatenate(coords).astype(np.int64), np.concatenate(vals)


def _preprocess_block(
    block: NDArray[Any], *, voxel_size: Sequence[float], polarity: str, sigma_um: float, block_um: float, percentile: float,
    fine_block_um: float = 0.0, mask_k: float = 3.0,
) -> NDArray[np.float32]:
    from morph.tracing import preprocess as pre

    return pre.flatten_denoise(block, voxel_size, polarity=polarity, block_um=block_um, percentile=percentile,
                               sigma_um=sigma_um, fine_block_um=fine_block_um, mask_k=mask_k)


def preprocess(
    data: Any,
    voxel_size: Sequence[float],
    *,
    polarity: str,
    max_memory: int,
    sigma_um: float = 0.8,
    block_um: float = 32.0,
    percentile: float = 30.0,
    fine_block_um: float = 0.0,
    mask_k: float = 3.0,
    out: Any = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    n_parallel: int = 1,
) -> Any:
    """The tracer's background flattening and denoising
    (:func:`morph.tracing.preprocess.preprocess`) on a stack of any size.

    The background estimate works on whole slices and the Gaussian needs
    :func:`morph.tracing.preprocess.halo_slices` slices of context, so the stack is cut into
    z-slabs of whole slices with that halo; the result equals the in-memory one.
    """
    from morph.tracing.preprocess import halo_slices

    hz = halo_slices(sigma_um, voxel_size, two_pass=fine_block_um > 0)
    return map_local(
        _preprocess_block,
        data,
        halo=(hz, 0, 0),
        max_memory=max_memory,
        bytes_per_voxel=preprocess_bytes_per_voxel(fine_block_um),
        out=out,
        scratch_dir=scratch_dir,
        whole_slices=True,
        n_parallel=n_parallel,
        voxel_size=tuple(float(v) for v in voxel_size),
        polarity=polarity,
        sigma_um=sigma_um,
        block_um=block_um,
        percentile=percentile,
        fine_block_um=fine_block_um,
        mask_k=mask_k,
    )


# --------------------------------------------------------------------------------------------
# the whole tracer on a stack larger than memory


def strided_sample(data: Any, sample: int = 2_000_000, *, max_memory: int = 64 * 1024**2) -> NDArray[Any]:
    """The regular subsample ``data.reshape(-1)[::step]`` that the tracer's statistics take
    (``step = size // sample + 1``), gathered slab by slab from any array (dask, zarr,
    memory map) without reading more than a slab at a time. Returns the full flattened data
    when it has at most ``sample`` voxels."""
    nz, ny, nx = (int(s) for s in data.shape)
    size = nz * ny * nx
    per_slice = ny * nx
    cz = int(max(1, min(nz, max_memory // max(per_slice * np.dtype(data.dtype).itemsize, 1))))
    step = 1 if size <= sample else size // sample + 1
    out = []
    for z0 in range(0, nz, cz):
        z1 = min(nz, z0 + cz)
        slab = np.asarray(data[z0:z1]).reshape(-1)
        first = (-(z0 * per_slice)) % step  # first index in this slab that is a multiple of step
        out.append(slab[first::step].copy())
    return np.concatenate(out)


def next_tube_group(
    z0: int, counts: Sequence[int], slice_voxels: int, halo: int, max_memory: int, *, held: int = 0
) -> tuple[int, int]:
    """The z-range ``[z0, z1)`` the candidate and tubularity stage takes next under
    ``max_memory``, with ``held`` bytes already taken (the foreground kept so far).

    A range holds its candidate voxels (``counts`` per slice, :data:`CANDIDATE_BYTES_PER_VOXEL`
    each) and filters the slices of the range and ``halo`` slices on each side
    (:data:`TUBE_BYTES_PER_VOXEL` per voxel), on top of :data:`FIXED_OVERHEAD`. The range is
    grown greedily to the bound.

    Raises
    ------
    TracingError
        When one slice with its halo and its candidates does not fit.
    """
    counts = np.asarray(counts, dtype=np.int64)
    nz = counts.size
    per_slice = int(slice_voxels) * TUBE_BYTES_PER_VOXEL
    budget = int(max_memory) - FIXED_OVERHEAD - int(held)

    def cost(z0: int, z1: int, n: int) -> int:
        return (min(nz, z1 + halo) - max(0, z0 - halo)) * per_slice + n * CANDIDATE_BYTES_PER_VOXEL

    n = int(counts[z0])
    if cost(z0, z0 + 1, n) > budget:
        need = cost(z0, z0 + 1, n) + FIXED_OVERHEAD + int(held)
        # the hint covers every slice, not just this one: near the stack's ends the halo is
        # clipped, so the first slice to fail is often not the one that needs the most
        # and the foreground kept so far grows as the run goes on: projected to the whole stack
        # at the rate it was kept over the candidates seen so far
        done = int(counts[:z0].sum())
        projected = int(held) * int(counts.sum()) // done if done else int(held)
        worst = int(tube_window_bytes(counts, slice_voxels, halo).max()) + FIXED_OVERHEAD + projected
        kept = f" and the {int(held) // KEPT_BYTES_PER_VOXEL} foreground voxels kept so far" if held else ""
        raise TracingError(
            f"the tubularity filter needs {1 + 2 * int(halo)} slices at once (one slice and {int(halo)} of halo "
            f"on each side), slice {z0}'s {n} candidate voxels{kept}: about {need / 2**20:.0f} MiB, over the "
            f"{format_size(max_memory)} bound",
            hint=f"raise --max-memory to at least {int(np.ceil(worst / 2**20))} MiB, what the widest window of this "
            "stack needs" + (" with the foreground kept so far projected to the whole stack" if held else ""),
        )
    z1 = z0 + 1
    while z1 < nz and cost(z0, z1 + 1, n + int(counts[z1])) <= budget:
        n += int(counts[z1])
        z1 += 1
    return z0, z1


def tube_window_bytes(counts: Sequence[int], slice_voxels: int, halo: int) -> NDArray[np.int64]:
    """Bytes the candidate and tubularity stage needs for each slice taken alone (its
    candidates and its window of slices with the halo, clipped at the stack's ends), without
    :data:`FIXED_OVERHEAD`: the smallest range :func:`next_tube_group` can plan."""
    counts = np.asarray(counts, dtype=np.int64)
    z = np.arange(counts.size)
    window = np.minimum(counts.size, z + 1 + int(halo)) - np.maximum(0, z - int(halo))
    return window * int(slice_voxels) * TUBE_BYTES_PER_VOXEL + counts * CANDIDATE_BYTES_PER_VOXEL


def tube_groups(counts: Sequence[int], slice_voxels: int, halo: int, max_memory: int) -> list[tuple[int, int]]:
    """Consecutive z-ranges covering the stack, each from :func:`next_tube_group` (nothing held)."""
    groups: list[tuple[int, int]] = []
    z0 = 0
    while z0 < len(counts):
        groups.append(next_tube_group(z0, counts, slice_voxels, halo, max_memory))
        z0 = groups[-1][1]
    return groups


def foreground_voxels(
    image: Any, voxel_size: Sequence[float], noise: float, params: Any, *, max_memory: int, grey_level: float = 1.0
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The voxels the tracer keeps, as in :func:`morph.tracing.pipeline.prepare`: flat index
    and value (noise units, blended with the normalised tubularity) of the candidates (above
    ``candidate_threshold`` x noise) whose value exceeds ``threshold_low``, sorted by index.

    Works z-range by z-range (:func:`next_tube_group`): the candidates of a range are
    selected, filtered and reduced to the kept voxels before the next range is read, so only
    the kept voxels are held together (the candidates, several % of all voxels, never are);
    each range is sized with the kept voxels so far counted against the bound.
    """
    from morph.tracing import preprocess as pre
    from morph.tracing.tubularity import tube_scale, tubularity_at

    vs = tuple(float(v) for v in voxel_size)
    shape = tuple(int(s) for s in image.shape)
    nz, ny, nx = shape
    thr = params.candidate_threshold * noise
    counts = np.zeros(nz, dtype=np.int64)
    cz = int(max(1, min(nz, (max_memory // 4) // max(ny * nx * (np.dtype(image.dtype).itemsize + 1), 1))))
    for z0 in range(0, nz, cz):
        counts[z0 : z0 + cz] = (np.asarray(image[z0 : z0 + cz]) > thr).sum(axis=(1, 2))
    use_tube = params.tube_weight > 0 and counts.sum() > 0
    halo = max(pre.halo_slices(s, vs) + 1 for s in params.tube_scales_um) if use_tube else 0
    # an impossible bound fails here, before any work: the slice whose window needs the most
    next_tube_group(int(np.argmax(tube_window_bytes(counts, ny * nx, halo))), counts, ny * nx, halo, max_memory)
    if use_tube:
        # the normalisation of the tube response: a regular probe of the whole stack, filtered
        # slab by slab with slabs of the size the bound allows
        rng = np.random.default_rng(0)
        size = int(np.prod(shape))
        probe = np.sort(rng.choice(size, size=min(size, 50_000), replace=False))
        pz = np.stack(np.unravel_index(probe, shape), axis=1)
        slab = max(z1 - z0 for z0, z1 in tube_groups(np.bincount(pz[:, 0], minlength=nz), ny * nx, halo, max_memory))
        tprobe = tubularity_at(image, pz, vs, scales_um=params.tube_scales_um, chunk_slices=slab)
        tmed, tnoise = tube_scale(tprobe, noise=noise, floor=params.min_noise * grey_level)
        del probe, pz, tprobe
    idx_parts, val_parts = [], []
    held = 0
    z1 = 0
    while z1 < nz:
        z0, z1 = next_tube_group(z1, counts, ny * nx, halo, max_memory, held=held)
        if counts[z0:z1].sum() == 0:
            continue
        zyx, cand = sparse_above(image[z0:z1], thr, max_memory=max_memory // 4)
        zyx[:, 0] += z0
        val = cand / noise
        if use_tube:
            h0, h1 = max(0, z0 - halo), min(nz, z1 + halo)
            # the range with its halo as one slab: the response inside is the whole stack's
            tube = tubularity_at(image[h0:h1], zyx - np.array([h0, 0, 0]), vs, scales_um=params.tube_scales_um,
                                 chunk_slices=h1 - h0)
            val = (1 - params.tube_weight) * val + params.tube_weight * (tube - tmed) / tnoise
        ok = val > params.threshold_low
        idx_parts.append(np.ravel_multi_index(tuple(zyx[ok].T), shape))
        val_parts.append(val[ok].astype(np.float32))
        held += KEPT_BYTES_PER_VOXEL * int(idx_parts[-1].size)
        del zyx, cand, val, ok
        release_memory()
    if not idx_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(idx_parts).astype(np.int64), np.concatenate(val_parts)


def check_tree_memory(n_foreground: int, max_memory: int, *, strict: bool = False, held: int = 0,
                      what: str = "foreground voxels") -> int:
    """Estimated memory of a graph stage of the tracer on ``n_foreground`` voxels
    (:data:`SPARSE_BYTES_PER_VOXEL` each) plus ``held`` bytes already taken, checked against
    ``max_memory`` before the stage starts.

    The graph stages (graph, costs, radii, shortest-path tree, pruning) hold their voxels at
    once: the local radii a batch of whole pieces at a time, the tree the pieces within reach
    of the root (:meth:`morph.tracing.pipeline.Prepared.focus`). A single piece, or the
    reachable pieces, may need more than the bound. Over it: a warning, or with ``strict`` a
    :class:`~morph.errors.TracingError` (before any of that memory is taken). Returns the
    estimate in bytes.
    """
    need = int(n_foreground) * SPARSE_BYTES_PER_VOXEL + int(held)
    if need > max_memory:
        msg = (
            f"{int(n_foreground)} {what}: the tree stages need about {need / 2**20:.0f} MiB at once, "
            f"over the {format_size(max_memory)} bound"
        )
        if strict:
            raise TracingError(
                msg, hint=f"raise --max-memory to about {int(np.ceil(need / 2**20))} MiB, or trace a region (roi)"
            )
        from morph.progress import warn

        warn(msg + "; going on above the bound")
    return need


def prepare(
    data: Any,
    voxel_size: Sequence[float],
    params: Any,
    *,
    offset_um: NDArray[np.float64] | None = None,
    stages: Any = None,
    max_memory: int,
    scratch_dir: str | os.PathLike[str],
    n_parallel: int = 1,
    strict_memory: bool = False,
    keep_um: NDArray[np.float64] | None = None,
    keep_radius_um: float = 0.0,
    grey_level: float = 1.0,
) -> Any:
    """:func:`morph.tracing.pipeline.prepare` with bounded memory.

    The dense stages run chunk by chunk: polarity and noise from the same regular subsample,
    flattening and denoising by :func:`preprocess` into a float32 memory map in
    ``scratch_dir``, then the candidate voxels, their tubularity and the selection of the kept
    voxels z-range by z-range (:func:`foreground_voxels`). What follows
    (foreground, graph, radii, costs) works on the sparse foreground exactly as in memory;
    before it starts, :func:`check_tree_memory` compares its estimated memory with the bound
    (a warning, or a :class:`~morph.errors.TracingError` with ``strict_memory``).
    """
    import time

    from morph.tracing import preprocess as pre
    from morph.tracing.pipeline import Prepared, foreground_graph, reachable_foreground
    from morph.tracing.polarity import polarity_and_hint

    vs = tuple(float(v) for v in voxel_size)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    # slabs of a quarter of a quarter: reading a dask/zarr slab holds it about three times
    pol, hint = polarity_and_hint(data, params, sample_fn=lambda d: strided_sample(d, max_memory=max_memory // 16))
    release_memory()
    params = params.resolved(pol)
    t["polarity"] = time.perf_counter() - t0
    if stages:
        stages.step("polarity")
        stages.start("preprocess")
    t0 = time.perf_counter()
    image = preprocess(
        data, vs, polarity=pol, max_memory=max_memory, sigma_um=params.denoise_sigma_um,
        block_um=params.background_block_um, percentile=params.background_percentile,
        fine_block_um=params.background_fine_um, mask_k=params.background_mask,
        scratch_dir=scratch_dir, n_parallel=n_parallel,
    )
    noise = pre.noise_level(image, floor=params.min_noise * grey_level)
    t["preprocess"] = time.perf_counter() - t0
    if stages:
        stages.step("preprocess")
        stages.start("tubularity")
    t0 = time.perf_counter()
    shape = tuple(int(s) for s in image.shape)
    idx, val = foreground_voxels(image, vs, noise, params, max_memory=max_memory, grey_level=grey_level)
    # from here on the in-memory tracer holds the image as 16-bit codes: the same values here
    image = quantise_image(image, max_memory=max_memory)
    idx, val, note, weak = reachable_foreground(shape, vs, idx, val, params, keep_um=keep_um,
                                                keep_radius_um=keep_radius_um,
                                                slab_bytes=int(np.clip(max_memory // 8, 2**20, 16 * 2**20)))
    faint = weak if params.faint_reach_um > 0 else None
    del weak
    release_memory()
    # the radii are computed a batch of pieces at a time, in what the bound leaves beside the
    # whole foreground's arrays; the graph is built for the pieces within reach of the root
    held = FIXED_OVERHEAD + FOREGROUND_BYTES_PER_VOXEL * int(idx.size)
    batch = max(1, (int(max_memory) - held) // SPARSE_BYTES_PER_VOXEL)

    def check(n: int, n_held: int, what: str) -> None:
        # n voxels in a graph, beside the arrays of n_held foreground voxels
        check_tree_memory(n, max_memory, strict=strict_memory, what=what,
                          held=FIXED_OVERHEAD + FOREGROUND_BYTES_PER_VOXEL * int(n_held))

    fg, graph, radius, strong, stretch, stats = foreground_graph(
        shape, vs, idx, val, noise, params, stages=stages, timings=t, t0=t0, batch_voxels=batch,
        check_memory=check, grey_level=grey_level,
    )
    release_memory()
    return Prepared(image, vs, pol, noise, fg, graph, radius, strong,  # type: ignore[arg-type]
                    np.zeros(3) if offset_um is None else offset_um, stretch=stretch, params=params, timings=t,
                    notes=[note] + ([hint] if hint else []), batch_voxels=batch, cost_stats=stats, check_memory=check,
                    faint=faint)


def trace(
    stack: Any,
    *,
    max_memory: int,
    voxel_size: Sequence[float] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    n_parallel: int = 1,
    strict_memory: bool = False,
    **trace_options: Any,
) -> Any:
    """Trace a stack of any size with the dense stages under ``max_memory`` bytes.

    Parameters
    ----------
    stack
        A path (TIFF, OME-Zarr, zarr: opened lazily by :func:`morph.io.chunked.open_chunked`),
        a :class:`morph.io.chunked.ChunkedStack`, a :class:`morph.io.Stack` (its data may be a
        memory map) or a ``(Z, Y, X)`` array.
    max_memory
        Bound, in bytes, on the memory of the run. The dense (image) stages are chunked to
        fit (an impossible bound is an error before they start); the local radii of the
        sparse foreground are computed a batch of whole pieces at a time, and the tree holds
        only the pieces within reach of the root (:meth:`~morph.tracing.pipeline.Prepared.focus`),
        about :data:`SPARSE_BYTES_PER_VOXEL` bytes per voxel. A piece, or the cell's pieces,
        larger than the bound allows is found before its graph is built
        (:func:`check_tree_memory`).
    strict_memory
        Raise a :class:`~morph.errors.TracingError` when a graph stage would exceed
        ``max_memory``, instead of warning and going on above the bound.
    scratch_dir
        Where the float32 intermediate image is kept while tracing (default: the system's
        temporary folder; it needs 4 bytes per voxel of free disk), removed at the end.
    n_parallel
        Chunks preprocessed at once (the bound is shared between them).
    **trace_options
        As for :func:`morph.tracing.trace` (``soma``, ``seeds``, ``axon``, ``roi``,
        ``params``, ``progress``...).

    Returns
    -------
    Morphology
        The same reconstruction as :func:`morph.tracing.trace` on the whole stack in memory.
    """
    import functools

    from morph.io.chunked import ChunkedStack, open_chunked
    from morph.io.stack import Stack
    from morph.tracing import pipeline

    if isinstance(stack, (str, os.PathLike)):
        stack = open_chunked(stack, voxel_size=voxel_size)
    if isinstance(stack, ChunkedStack):
        stack = Stack(stack.data, stack.voxel_size, stack.voxel_size_known, stack.path, dict(stack.metadata))
    elif not isinstance(stack, Stack):
        stack = Stack(stack, (1.0, 1.0, 1.0), False) if voxel_size is None else Stack(stack, tuple(voxel_size), True)
    import dask

    # dask reads (zarr, TIFF pages) in this thread: dask's thread pool would leave each of its
    # threads an allocator arena of freed read buffers (measured: 120 MiB kept after reading
    # a 1.2 GB zarr stack with threads, 15 MiB without); chunks run in parallel through
    # n_parallel instead
    with scratch(scratch_dir) as d, dask.config.set(scheduler="synchronous"):
        prep = functools.partial(
            prepare, max_memory=int(max_memory), scratch_dir=d, n_parallel=n_parallel, strict_memory=strict_memory
        )
        return pipeline.trace(stack, voxel_size=voxel_size, prepare_fn=prep, **trace_options)
