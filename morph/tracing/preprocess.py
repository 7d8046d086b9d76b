"""Background flattening and denoising, slab by slab along z.

Every function here is *local*: it reads a slab of slices plus a halo of a few smoothing
widths and writes the same slab, so it runs unchanged on chunks of a stack larger than memory.
The output is always "bright structure on a dark, zero background" in float32, whatever the
polarity of the input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import TracingError
from morph.tracing.threads import gaussian_filter


def _sigma_vox(sigma_um: float, voxel_size: Sequence[float]) -> tuple[float, float, float]:
    """Physical sigma to per-axis sigmas in voxels, ZYX order."""
    vx, vy, vz = (float(v) for v in voxel_size)
    return (sigma_um / vz, sigma_um / vy, sigma_um / vx)


def background_level(
    slab: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    block_um: float = 32.0,
    percentile: float = 30.0,
    polarity: str = "fluorescence",
    exclude: NDArray[np.bool_] | None = None,
    fallback: NDArray[np.float32] | None = None,
    min_fraction: float = 0.25,
) -> NDArray[np.float32]:
    """Smooth estimate of the background of each slice of ``slab`` (Z, Y, X).

    Each slice is cut into blocks of ``block_um`` (x, y); the background of a block is a
    percentile of its voxels (a low one for fluorescence, the mirror one for brightfield,
    where the structure is dark), and the block values are interpolated back to full
    resolution. Works slice by slice (local in z, no halo needed).

    With ``exclude`` (a mask of the slab: stained structure), the percentile is taken over
    the other voxels of each block; a block with less than ``min_fraction`` of them left
    (inside a soma) takes its value in ``fallback`` (``(Z, blocks in y, blocks in x)``: a
    coarser estimate of the same slab at the blocks' centres, :func:`block_centre_values`),
    or without one the percentile of all its voxels.
    """
    slab = np.asarray(slab)
    nz, ny, nx = slab.shape
    by, bx, gy, gx = _block_grid(slab.shape, voxel_size, block_um)
    # a regular subsample of each block (at most 16 x 16 voxels) is enough for a percentile;
    # it is taken before the blocks are gathered, so no full-size copy is made. A block's
    # samples are those of its own voxels (its size need not be a multiple of the step)
    sy, sx = max(1, by // 16), max(1, bx // 16)
    sub = np.asarray(slab[:, ::sy, ::sx], dtype=np.float32)
    ry = _block_samples(ny, by, sy, gy)
    rx = _block_samples(nx, bx, sx, gx)
    qy, qx = ry.shape[1], rx.shape[1]
    q = percentile if polarity == "fluorescence" else 100.0 - percentile

    def gather(a: NDArray[Any]) -> NDArray[Any]:
        """(Z, gy, gx, qy * qx): each block's samples; a block with fewer samples than
        slots (a partial block at the stack's far edge, or one step short) repeats its last
        row or column, as the stack's edge was padded."""
        return a[:, ry][:, :, :, rx].transpose(0, 1, 3, 2, 4).reshape(nz, gy, gx, qy * qx)

    if exclude is None:
        level = np.percentile(gather(sub), q, axis=-1).astype(np.float32)
    else:
        blocks = gather(np.where(np.asarray(exclude)[:, ::sy, ::sx], np.float32(np.nan), sub))
        valid = np.isfinite(blocks).sum(axis=-1)
        # sorted, the excluded (NaN) samples go last: the percentile of the valid ones by hand
        # (np.nanpercentile is a Python loop over the blocks)
        blocks = np.sort(blocks, axis=-1)
        pos = np.clip(q / 100.0 * (valid - 1), 0, None)
        k0 = np.floor(pos).astype(np.int64)
        k1 = np.minimum(k0 + 1, np.maximum(valid - 1, 0))
        v0 = np.take_along_axis(blocks, k0[..., None], axis=-1)[..., 0]
        v1 = np.take_along_axis(blocks, k1[..., None], axis=-1)[..., 0]
        level = (v0 + (pos - k0) * (v1 - v0)).astype(np.float32)
        few = valid < min_fraction * qy * qx
        if few.any():
            if fallback is None:  # the percentile of all the block's voxels
                fallback = np.percentile(gather(sub), q, axis=-1)
            level = np.where(few, np.asarray(fallback, dtype=np.float32), level)
    # bilinear interpolation from block centres, separable (gathers, no large products)
    ylo, yhi, ty = _interp_index(ny, gy, by)
    xlo, xhi, tx = _interp_index(nx, gx, bx)
    tmp = level[:, :, xlo] * (1 - tx) + level[:, :, xhi] * tx
    out = np.empty((nz, ny, nx), dtype=np.float32)
    wy0, wy1 = (1 - ty)[:, None], ty[:, None]
    for k in range(nz):  # slice by slice: no slab-sized temporaries
        np.multiply(tmp[k, ylo, :], wy0, out=out[k])
        out[k] += tmp[k, yhi, :] * wy1
    return out[:, :ny, :nx].astype(np.float32, copy=False)


def _block_samples(n: int, b: int, s: int, g: int) -> NDArray[np.int64]:
    """Indices into a subsample taken every ``s`` voxels along an axis of ``n`` of the samples
    that fall in each of its ``g`` blocks of ``b`` voxels: ``(g, slots)``, a block's slots
    past its last sample repeating it. Every block holds the samples of its own voxels, also
    when ``b`` is not a multiple of ``s`` (blocks of whole steps drifted a step a block, and
    the last could hold none of the stack)."""
    k = np.arange(g, dtype=np.int64)
    start = -(-(k * b) // s)
    stop = np.minimum(-(-((k + 1) * b) // s), -(-n // s))
    slots = int((stop - start).max())
    idx = start[:, None] + np.arange(slots, dtype=np.int64)[None, :]
    return np.minimum(idx, stop[:, None] - 1)


def _block_grid(shape: Sequence[int], voxel_size: Sequence[float], block_um: float) -> tuple[int, int, int, int]:
    """Block size (y, x) in voxels and the number of blocks (y, x) of :func:`background_level`."""
    ny, nx = int(shape[-2]), int(shape[-1])
    by = int(np.clip(round(block_um / float(voxel_size[1])), 4, ny))
    bx = int(np.clip(round(block_um / float(voxel_size[0])), 4, nx))
    return by, bx, -(-ny // by), -(-nx // bx)


def block_centre_values(level: NDArray[Any], voxel_size: Sequence[float], block_um: float) -> NDArray[np.float32]:
    """``level`` (Z, Y, X) at the centres of the blocks :func:`background_level` uses for
    ``block_um``: ``(Z, blocks in y, blocks in x)``."""
    ny, nx = level.shape[1], level.shape[2]
    by, bx, gy, gx = _block_grid(level.shape, voxel_size, block_um)
    cy = np.minimum(np.arange(gy) * by + by // 2, ny - 1)
    cx = np.minimum(np.arange(gx) * bx + bx // 2, nx - 1)
    return np.asarray(level[:, cy][:, :, cx], dtype=np.float32)


def _interp_index(n: int, g: int, b: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
    """Indices and weights interpolating linearly between block centres (extrapolating
    linearly beyond the first and last centres, so a gradient is followed to the edges)."""
    if g == 1:
        z = np.zeros(n, dtype=np.int64)
        return z, z, np.zeros(n, dtype=np.float32)
    pos = (np.arange(n, dtype=np.float64) + 0.5) / b - 0.5  # in block units
    lo = np.clip(np.floor(pos).astype(np.int64), 0, g - 2)
    return lo, lo + 1, (pos - lo).astype(np.float32)


def structure_mask(
    flat: NDArray[np.float32], voxel_size: Sequence[float], *, k: float = 3.0, dilate_um: float = 1.5,
) -> NDArray[np.bool_]:
    """The stained structure of a flattened, denoised slab, slice by slice: the voxels more
    than ``k`` times the slice's robust noise above its median (median absolute deviation of a
    regular subsample), widened by ``dilate_um`` in x and y."""
    import scipy.ndimage as ndi

    vx, vy, _ = (float(v) for v in voxel_size)
    sub = np.asarray(flat[:, ::4, ::4], dtype=np.float32).reshape(flat.shape[0], -1)
    med = np.median(sub, axis=1)
    mad = 1.4826 * np.median(np.abs(sub - med[:, None]), axis=1)
    cut = (med + k * np.maximum(mad, 1e-12)).astype(np.float32)
    mask = np.empty(flat.shape, dtype=np.uint8)
    np.greater(flat, cut[:, None, None], out=mask, casting="unsafe")
    ry, rx = round(dilate_um / vy), round(dilate_um / vx)
    if ry > 0:
        ndi.maximum_filter1d(mask, 2 * ry + 1, axis=1, output=mask)
    if rx > 0:
        ndi.maximum_filter1d(mask, 2 * rx + 1, axis=2, output=mask)
    return mask.view(bool)


def flatten(
    slab: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    polarity: str,
    block_um: float = 32.0,
    percentile: float = 50.0,
) -> NDArray[np.float32]:
    """Structure made bright on a zero background: ``data - background`` (fluorescence) or
    ``background - data`` (brightfield). Not clipped: the background keeps its noise, centred
    on zero, which :func:`noise_level` measures. Local (slice by slice)."""
    bg = background_level(slab, voxel_size, block_um=block_um, percentile=percentile, polarity=polarity)
    return _structure_bright(bg, slab, polarity)


def _structure_bright(bg: NDArray[np.float32], slab: NDArray[Any], polarity: str) -> NDArray[np.float32]:
    """``bg - slab`` (brightfield) or ``slab - bg`` (fluorescence), written over ``bg``."""
    if polarity == "brightfield":
        np.subtract(bg, slab, out=bg)
    else:
        np.subtract(slab, bg, out=bg, casting="unsafe")
    return bg


def flatten_denoise(
    slab: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    polarity: str,
    block_um: float = 32.0,
    percentile: float = 50.0,
    sigma_um: float = 0.8,
    fine_block_um: float = 0.0,
    mask_k: float = 3.0,
) -> NDArray[np.float32]:
    """:func:`flatten`, then the Gaussian of ``sigma_um`` (:func:`denoise`, in place); with
    ``fine_block_um`` > 0 the background is then estimated again in blocks of
    ``fine_block_um`` over the voxels the first result does not show as structure
    (:func:`structure_mask`, ``mask_k`` noise units), which follows the background's
    variations between the large blocks (``block_um``: large enough that a soma does not fill
    one; a small block that is mostly structure keeps the first estimate), and the
    difference of the two estimates is taken off, smoothed along z as the image is (in x and
    y it varies over tens of micrometres). Local: slice by slice, plus the Gaussian's halo in
    z (twice it with the second estimate: :func:`halo_slices`). The second estimate holds one
    more float32 array of the slab."""
    slab = np.asarray(slab)
    n = int(slab.size - np.count_nonzero(np.isfinite(slab))) if slab.dtype.kind == "f" else 0
    if n:
        raise TracingError(f"the stack holds voxels that are NaN or infinite (at least {n})",
                           hint="replace them, e.g. by the background's level, before tracing (registration and "
                           "deconvolution leave NaN where they have no data)")
    f = background_level(slab, voxel_size, block_um=block_um, percentile=percentile, polarity=polarity)
    coarse = block_centre_values(f, voxel_size, fine_block_um) if fine_block_um > 0 else None
    corr = f.copy() if fine_block_um > 0 else None  # the coarse estimate, then the fine one less it
    f = _structure_bright(f, slab, polarity)
    if sigma_um > 0:  # in place: the separable filter buffers one line at a time
        gaussian_filter(f, _sigma_vox(sigma_um, voxel_size), f, mode="nearest", truncate=3.0)
    if coarse is not None and corr is not None:
        for k in range(slab.shape[0]):  # slice by slice: no other slab-sized temporaries
            fine = background_level(slab[k : k + 1], voxel_size, block_um=fine_block_um, percentile=percentile,
                                    polarity=polarity, exclude=structure_mask(f[k : k + 1], voxel_size, k=mask_k),
                                    fallback=coarse[k : k + 1])
            np.subtract(fine[0], corr[k], out=corr[k])
        if sigma_um > 0:
            # smoothed along z as the image is: each slice's estimate has its own sampling noise,
            # which would otherwise pass into the flattened image
            import scipy.ndimage as ndi

            ndi.gaussian_filter1d(corr, sigma_um / float(voxel_size[2]), axis=0, output=corr, mode="nearest",
                                  truncate=3.0)
        # brightfield is background - data: a higher background adds; fluorescence subtracts
        if polarity == "brightfield":
            f += corr
        else:
            f -= corr
    return f


def denoise(slab: NDArray[Any], voxel_size: Sequence[float], *, sigma_um: float = 0.8) -> NDArray[np.float32]:
    """Anisotropic Gaussian smoothing with a physical ``sigma_um``.

    Local with a halo of ``4 * sigma_um`` in z (see :func:`halo_slices`).
    """
    out = np.array(slab, dtype=np.float32, copy=True)
    if sigma_um <= 0:
        return out
    # in place: the separable filter buffers one line at a time
    gaussian_filter(out, _sigma_vox(sigma_um, voxel_size), out, mode="nearest", truncate=3.0)
    return out


def halo_slices(sigma_um: float, voxel_size: Sequence[float], *, two_pass: bool = False) -> int:
    """Slices of context a slab needs on each side for a Gaussian of ``sigma_um``; twice as
    many for :func:`flatten_denoise` with a second background estimate (its correction,
    smoothed along z, is measured on the smoothed image)."""
    return (2 if two_pass else 1) * (int(np.ceil(3.0 * sigma_um / float(voxel_size[2]))) + 1)


def slabs(nz: int, size: int, halo: int):
    """``(z0, z1, h0, h1)`` per slab: the slab ``[z0, z1)`` is computed from ``[h0, h1)``."""
    size = max(1, int(size))
    for z0 in range(0, nz, size):
        z1 = min(nz, z0 + size)
        yield z0, z1, max(0, z0 - halo), min(nz, z1 + halo)


def preprocess(
    data: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    polarity: str,
    sigma_um: float = 0.8,
    block_um: float = 32.0,
    percentile: float = 50.0,
    chunk_slices: int = 32,
    out: NDArray[np.float32] | None = None,
    fine_block_um: float = 0.0,
    mask_k: float = 3.0,
) -> NDArray[np.float32]:
    """Flatten the background and denoise the whole stack, slab by slab (background about
    zero, structure positive, noise kept so that it can be measured).

    Parameters
    ----------
    data
        Stack (Z, Y, X), any real dtype (a memory map is fine: it is read slab by slab).
    voxel_size
        ``(x, y, z)`` micrometres.
    polarity
        ``"brightfield"`` or ``"fluorescence"``.
    out
        Optional float32 array (or memory map) of the same shape to write into.

    Returns
    -------
    ndarray of float32
        Bright structure on a background of about zero.
    """
    nz = data.shape[0]
    if out is None:
        out = np.empty(data.shape, dtype=np.float32)
    halo = halo_slices(sigma_um, voxel_size, two_pass=fine_block_um > 0)
    for z0, z1, h0, h1 in slabs(nz, chunk_slices, halo):
        f = flatten_denoise(np.asarray(data[h0:h1]), voxel_size, polarity=polarity, block_um=block_um,
                            percentile=percentile, sigma_um=sigma_um, fine_block_um=fine_block_um, mask_k=mask_k)
        out[z0:z1] = f[z0 - h0 : z0 - h0 + (z1 - z0)]
        del f  # not alive while the next slab is flattened
    return out


def grey_level(data: Any, *, slices: int = 8) -> float:
    """One grey level of a stack: the unit of the noise floor (``min_noise``); see
    :func:`grey_scale`, which also says where it came from."""
    return grey_scale(data, slices=slices)[0]


#: What :func:`grey_scale` took a stack's full scale from.
SCALE_BITS = "its bit depth's"
SCALE_PERCENTILE = "the 99.99th percentile of its values'"


def grey_scale(data: Any, *, slices: int = 8) -> tuple[float, str]:
    """One grey level of a stack, the unit of the noise floor (``min_noise``), and what its
    full scale was taken from (:data:`SCALE_BITS` or :data:`SCALE_PERCENTILE`).

    The noise floor and the unit of the tubularity term are ``min_noise`` grey levels, and
    the tracing's parameters were set on 8-bit stacks, so a stack of another pixel type is
    counted in the grey levels of an 8-bit stack of the same full scale: the full scale over
    255. For an integer type the full scale is that of the bit depth its values' span needs
    (8, 10, 12, 14 or 16 bits, as cameras give: a 12-bit camera's values held in 16 bits count
    in steps of 4095 / 255 = 16.06, 8-bit values held in 16 bits in steps of 1), the span
    from the values' 0.01th percentile up, since a camera's pedestal (an offset added to every
    pixel) carries no signal: 8-bit values raised by 1000 still count in steps of 1.
    Floating-point values that are all whole numbers are a camera's integers converted
    (pedestal included) and count as those integers do. For values of more than 16 bits (no
    camera's: a processing step's, as for floating point) and for floating point with
    fractions, whose values may span [0, 1] or any range, the 99.99th percentile of their
    magnitude: such values are counted from 0. Read on up to ``slices`` slices in the middle
    of the stack, subsampled in x-y. 1 for an 8-bit stack, and when nothing finite is read.
    """
    dt = np.dtype(data.dtype)
    integer = dt.kind in "ui"
    if integer and dt.itemsize == 1:
        return 1.0, SCALE_BITS
    nz, ny, nx = (int(n) for n in data.shape[:3])
    # a run of slices in the middle of the stack (a chunked store reads a chunk's depth for
    # any slice, so evenly spaced slices could read most of it), every few voxels in x-y
    k = min(nz, max(1, slices))
    z0 = (nz - k) // 2
    step = max(1, int(np.ceil(np.sqrt(ny * nx / 125_000))))  # at most about 125 000 values a slice
    raw = np.asarray(data[z0 : z0 + k, ::step, ::step], dtype=np.float64).reshape(-1)
    raw = raw[np.isfinite(raw)]
    if not raw.size:
        return 1.0, SCALE_PERCENTILE
    vals = np.abs(raw)
    whole = integer or bool(np.all(raw == np.round(raw)))  # a camera's integers, held as floats too
    if whole and float(vals.max()) < 2.0**16:
        top = min(float(vals.max()), float(raw.max()) - float(np.percentile(raw, 0.01)))
        bits = next(b for b in (8, 10, 12, 14, 16) if top < 2.0**b)
        return (2.0**bits - 1) / 255.0, SCALE_BITS
    g = float(np.percentile(vals, 99.99)) / 255.0
    return (g if np.isfinite(g) and g > 0 else 1.0), SCALE_PERCENTILE


def noise_level(image: NDArray[Any], *, sample: int = 1_000_000, floor: float = 0.0) -> float:
    """Robust standard deviation of the background of a flattened image.

    The median absolute deviation from the median (times 1.4826): the sparse structure
    hardly moves it. ``floor`` bounds it from below (a clipped, perfectly flat background,
    as in 8-bit fluorescence, measures 0). Global statistic of a regular subsample.
    """
    flat = np.asarray(image).reshape(-1)
    if flat.size > sample:
        flat = flat[:: flat.size // sample + 1]
    flat = flat.astype(np.float32)
    med = np.median(flat)
    mad = float(np.median(np.abs(flat - med)) * 1.4826)
    return float(max(mad, floor))


class PackedImage:
    """A float32 image held as 16-bit codes while it is not read (half the memory).

    The values are mapped linearly from ``[min, max]`` to the codes 0..65535, so
    :meth:`unpack` returns each value within ``(max - min) / 131070`` of the original: for a
    flattened 8-bit stack (a range of at most 255 grey levels) within 0.002 of a grey level.
    Both directions work ``chunk_slices`` slices at a time (no whole-image temporary).

    :func:`pack_image` can write the codes over the image's own buffer instead of a new one.
    """

    def __init__(self, image: NDArray[np.float32], *, chunk_slices: int = 16, _own: bool = False) -> None:
        own = self.in_place = bool(_own)
        arr = np.asarray(image)
        del image
        self.shape: tuple[int, ...] = tuple(arr.shape)
        self.size = int(arr.size)
        self._rows = max(1, int(chunk_slices)) * int(np.prod(self.shape[1:], dtype=np.int64))
        self.lo, self.step = code_range(arr, chunk_slices=chunk_slices)
        flat = arr.reshape(-1)
        codes = flat.view(np.uint16) if own else np.empty(self.size, dtype=np.uint16)
        for a in range(0, self.size, self._rows):
            b = min(self.size, a + self._rows)
            # in place, the codes a:b overlay floats a/2:b/2, already read
            codes[a:b] = _codes(flat[a:b], self.lo, self.step)
        del flat
        if own:
            del codes
            arr.resize(((self.size + 1) // 2,), refcheck=False)  # no other reference (checked above)
            self._store: NDArray[Any] = arr
        else:
            self._store = codes

    @property
    def codes(self) -> NDArray[np.uint16]:
        """The 16-bit codes (a view of the storage), shaped like the image."""
        return self._store.view(np.uint16)[: self.size].reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self._store.nbytes)

    def __getitem__(self, key: Any) -> NDArray[np.float32]:
        """The float32 values of a part of the image (``codes[key]`` decoded), as
        :meth:`unpack` would give them."""
        return _values(self.codes[key], self.lo, self.step)

    def unpack(self) -> NDArray[np.float32]:
        """The image again, float32. In place, the pack is used up (the image is its storage
        grown back); otherwise the codes are kept."""
        if not self.in_place:
            out = np.empty(self.size, dtype=np.float32)
            for a in range(0, self.size, self._rows):
                b = min(self.size, a + self._rows)
                out[a:b] = _values(self._store[a:b], self.lo, self.step)
            return out.reshape(self.shape)
        if self._store.size == 0:
            raise RuntimeError("this packed image was unpacked already")
        arr = self._store
        self._store = np.empty(0, dtype=np.float32)
        arr.resize(self.shape, refcheck=False)  # realloc: grown in place or moved, not copied by us
        flat = arr.reshape(-1)
        codes = flat.view(np.uint16)
        # from the end: floats a:b overlay codes 2a:2b, all at or after a, already read
        for b in range(self.size, 0, -self._rows):
            a = max(0, b - self._rows)
            flat[a:b] = _values(codes[a:b], self.lo, self.step)  # a new array: codes a:b are read first
        del codes, flat
        return arr  # owns its buffer


def code_range(image: NDArray[Any], *, chunk_slices: int = 16) -> tuple[float, float]:
    """``(lo, step)`` of the 16-bit codes of ``image``: its minimum and its range / 65535
    (1 for a constant image). Slab by slab (a memory map is not read whole at once)."""
    lo, hi = np.inf, -np.inf
    for z0 in range(0, image.shape[0], max(1, int(chunk_slices))):
        part = np.asarray(image[z0 : z0 + max(1, int(chunk_slices))])
        if part.size:
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    if not np.isfinite(lo):
        return 0.0, 1.0
    return lo, ((hi - lo) / 65535.0 if hi > lo else 1.0)


def _codes(values: NDArray[Any], lo: float, step: float) -> NDArray[np.float32]:
    """The codes of ``values`` (float32 holding integers 0..65535: a new array)."""
    c = (np.asarray(values, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / step)
    np.rint(c, out=c)
    np.clip(c, 0, 65535, out=c)
    return c


def _values(codes: NDArray[Any], lo: float, step: float) -> NDArray[np.float32]:
    """The float32 values of 16-bit ``codes`` (a new array). The one place this arithmetic is
    written: :meth:`PackedImage.unpack` and :func:`quantise` must give identical values."""
    out = np.asarray(codes, dtype=np.uint16) * np.float32(step)
    out += np.float32(lo)
    return out


def quantise(image: NDArray[Any], *, chunk_slices: int = 16) -> None:
    """Replace each value of the float32 ``image`` (an array or a writable memory map) by what
    :class:`PackedImage` gives back for it: the same values in every mode of tracing (in
    memory the image waits packed; the bounded mode's memory map is quantised in place).
    Slab by slab."""
    lo, step = code_range(image, chunk_slices=chunk_slices)
    n = max(1, int(chunk_slices))
    for z0 in range(0, image.shape[0], n):
        image[z0 : z0 + n] = _values(_codes(image[z0 : z0 + n], lo, step).astype(np.uint16), lo, step)


def _refs(x: object) -> int:
    return sys.getrefcount(x)


def _sole_refs() -> int:
    a = np.empty(1)
    return _refs(a)  # one name in the calling frame, as measured by _refs from a function


_SOLE_REFS = _sole_refs()


def pack_image(image: NDArray[np.float32], *, chunk_slices: int = 16, in_place: bool = False) -> PackedImage:
    """``image`` as :class:`PackedImage` codes.

    With ``in_place``, when nothing but the caller's one name refers to ``image`` (no view,
    no other name) and it owns a contiguous float32 buffer, the codes are written over that
    buffer, which is then shrunk to half (``realloc``: the freed half goes back to the system
    at once); :meth:`PackedImage.unpack` grows it back and expands the codes into it from the
    end. Image and codes are never held side by side. The caller must drop its name right
    after (the array is now the codes' storage). Otherwise the codes go to a new array.
    """
    # references: the caller's name and this parameter, as one name and _refs's parameter
    # are for the calibration (one more for any view or other name)
    own = (in_place and type(image) is np.ndarray and _refs(image) <= _SOLE_REFS + 1
           and image.dtype == np.float32 and image.flags.owndata and image.flags.c_contiguous and image.size > 0)
    return PackedImage(image, chunk_slices=chunk_slices, _own=own)
