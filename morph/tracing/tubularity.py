"""Multi-scale Hessian tubularity, honouring anisotropic voxels, evaluated where it is needed.

For each scale ``s`` (micrometres) the image is smoothed with a Gaussian of physical width
``s`` (so ``s / voxel_size`` voxels per axis: fewer along a coarse z), the Hessian is taken by
central differences divided by the physical spacings, and normalised by ``s**2``
(Lindeberg's scale normalisation). With eigenvalues sorted by magnitude
``|l1| <= |l2| <= |l3|``, a bright tube has ``l2, l3`` strongly negative and ``l1`` about 0;
the response is ``2.83 * s**2 * max(0, -l2)`` when ``l3 < 0`` (Sato's measure on the middle
eigenvalue), which equals the tube's contrast at the matched scale, so it is in intensity units
and can be mixed with intensity. Sheets (one negative eigenvalue) and flat background give 0.

The filter is local: :func:`tubularity_at` works slab by slab along z with a halo of three
widths (scales of two voxels or more are filtered on an x-y block-averaged copy), and only
evaluates the eigenvalues at the requested voxels (the candidate foreground,
typically 1% of the stack), which is what makes it fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.tracing.preprocess import _sigma_vox, halo_slices, slabs
from morph.tracing.threads import gaussian_filter, map_threads, n_threads

_NORM = 2.0**1.5


def hessian_at(
    smoothed: NDArray[Any], zyx: NDArray[np.int64], voxel_size: Sequence[float], *, padded: bool = False
) -> NDArray[np.float64]:
    """Hessian by central differences at integer voxels ``zyx`` (n, 3), physical units.

    Returns ``(n, 6)``: the components ``zz, yy, xx, zy, zx, yx``. Borders are handled by
    edge padding (clamped neighbours); with ``padded`` the array already carries a one-voxel
    edge-replicated border (and ``zyx`` are coordinates of the unpadded interior).
    """
    vx, vy, vz = (float(v) for v in voxel_size)
    h = np.array([vz, vy, vx])
    pad = smoothed if padded else np.pad(np.asarray(smoothed, dtype=np.float32), 1, mode="edge")
    flat = pad.reshape(-1)
    st = np.array(pad.strides) // pad.itemsize
    lin = (zyx + 1) @ st
    c = flat[lin].astype(np.float64)
    out = np.empty((zyx.shape[0], 6))
    for a in range(3):
        out[:, a] = (flat[lin + st[a]] + flat[lin - st[a]] - 2 * c) / h[a] ** 2
    for k, (a, b) in enumerate(((0, 1), (0, 2), (1, 2))):
        sa, sb = st[a], st[b]
        out[:, 3 + k] = (
            flat[lin + sa + sb].astype(np.float64) - flat[lin + sa - sb] - flat[lin - sa + sb] + flat[lin - sa - sb]
        ) / (4 * h[a] * h[b])
    return out


def tube_response(eigenvalues: NDArray[np.float64], scale_um: float) -> NDArray[np.float64]:
    """Bright-tube response from eigenvalues sorted by magnitude (n, 3)."""
    l2, l3 = eigenvalues[:, 1], eigenvalues[:, 2]
    r = np.where((l2 < 0) & (l3 < 0), -l2, 0.0)
    return _NORM * scale_um**2 * r


def sorted_eigenvalues(H: NDArray[np.float64]) -> NDArray[np.float64]:
    """Eigenvalues of symmetric 3x3 matrices given as ``(n, 6)`` components
    (``a11, a22, a33, a12, a13, a23``), closed form (trigonometric solution of the cubic),
    sorted by absolute value."""
    a11, a22, a33, a12, a13, a23 = (H[:, k] for k in range(6))
    q = (a11 + a22 + a33) / 3.0
    p1 = a12**2 + a13**2 + a23**2
    p2 = (a11 - q) ** 2 + (a22 - q) ** 2 + (a33 - q) ** 2 + 2 * p1
    p = np.sqrt(p2 / 6.0)
    ps = np.where(p > 0, p, 1.0)
    b11, b22, b33 = (a11 - q) / ps, (a22 - q) / ps, (a33 - q) / ps
    b12, b13, b23 = a12 / ps, a13 / ps, a23 / ps
    det = b11 * (b22 * b33 - b23 * b23) - b12 * (b12 * b33 - b23 * b13) + b13 * (b12 * b23 - b22 * b13)
    r = np.clip(det / 2.0, -1.0, 1.0)
    phi = np.arccos(r) / 3.0
    e1 = q + 2 * p * np.cos(phi)
    e3 = q + 2 * p * np.cos(phi + 2 * np.pi / 3)
    e2 = 3 * q - e1 - e3
    ev = np.stack([e1, e2, e3], axis=1)
    order = np.argsort(np.abs(ev), axis=1)
    return np.take_along_axis(ev, order, axis=1)


def _block_mean_xy(a: NDArray[np.float32], f: int) -> NDArray[np.float32]:
    """Mean over ``f x f`` blocks in y and x (shape divisible by ``f``): ``f**2`` strided adds,
    four times faster than a mean over the axes of a reshaped array."""
    ny, nx = a.shape[1] // f, a.shape[2] // f
    out = np.zeros((a.shape[0], ny, nx), dtype=np.float32)
    for i in range(f):
        for j in range(f):
            out += a[:, i : ny * f : f, j : nx * f : f]
    out *= np.float32(1.0 / (f * f))
    return out


def tubularity_at(
    image: NDArray[Any],
    zyx: NDArray[np.int64],
    voxel_size: Sequence[float],
    *,
    scales_um: Sequence[float] = (1.0, 2.0),
    chunk_slices: int = 32,
    batch: int = 16384,
) -> NDArray[np.float32]:
    """Maximum over scales of the tube response at voxels ``zyx`` of ``image``.

    Parameters
    ----------
    image
        Flattened image, bright structure (Z, Y, X).
    zyx
        ``(n, 3)`` integer voxel coordinates, sorted by z (as ``np.nonzero`` gives them).
    voxel_size
        ``(x, y, z)`` micrometres.
    scales_um
        Physical scales (neurite radii) of the filter.
    """
    zyx = np.asarray(zyx, dtype=np.int64).reshape(-1, 3)
    out = np.zeros(zyx.shape[0], dtype=np.float32)
    if zyx.shape[0] == 0:
        return out
    nz = image.shape[0]
    zs = zyx[:, 0]
    vx, vy, vz = (float(v) for v in voxel_size)
    # the eigenvalues in batches (bounded temporaries), ``batch`` points at a time in all threads
    nthr = n_threads()
    step = max(1024, batch // nthr)
    for s in scales_um:
        # coarse scales are computed on an x-y block-averaged image (f x f), keeping at least
        # one voxel of sigma: same response, f**2 times fewer voxels to filter
        f = int(np.clip(np.floor(s / max(vx, vy) + 1e-9), 1, 4))
        vs_f = (vx * f, vy * f, vz)
        halo = halo_slices(s, voxel_size) + 1
        for z0, z1, h0, h1 in slabs(nz, chunk_slices, halo):
            lo, hi = np.searchsorted(zs, [z0, z1])
            if hi <= lo:
                continue
            slab = np.asarray(image[h0:h1], dtype=np.float32)
            if f > 1:
                py, px = -slab.shape[1] % f, -slab.shape[2] % f
                if py or px:  # edge-replicated up to whole blocks
                    slab = np.pad(slab, ((0, 0), (0, py), (0, px)), mode="edge")
                slab = _block_mean_xy(slab, f)
            buf = np.empty(tuple(n + 2 for n in slab.shape), dtype=np.float32)
            gaussian_filter(slab, _sigma_vox(s, vs_f), buf[1:-1, 1:-1, 1:-1], mode="nearest", truncate=3.0, threads=nthr)
            for ax in range(3):  # replicate the edges into the one-voxel border
                idx = [slice(None)] * 3
                idx[ax] = 0
                src = [slice(None)] * 3
                src[ax] = 1
                buf[tuple(idx)] = buf[tuple(src)]
                idx[ax] = -1
                src[ax] = -2
                buf[tuple(idx)] = buf[tuple(src)]
            pts = zyx[lo:hi] - np.array([h0, 0, 0])
            if f > 1:
                pts = pts // np.array([1, f, f])
                pts = np.minimum(pts, np.array(slab.shape) - 1)

            def one_batch(b0: int, buf: NDArray[np.float32] = buf, pts: NDArray[np.int64] = pts, lo: int = lo,
                          vs_f: tuple[float, float, float] = vs_f, s: float = s) -> None:
                b1 = min(pts.shape[0], b0 + step)
                ev = sorted_eigenvalues(hessian_at(buf, pts[b0:b1], vs_f, padded=True))
                seg = out[lo + b0 : lo + b1]  # batches write disjoint parts of out
                np.maximum(seg, tube_response(ev, s).astype(np.float32), out=seg)

            map_threads(one_batch, range(0, pts.shape[0], step), nthr)
            del buf, slab, one_batch  # (its defaults hold buf) not alive while the next slab allocates its own
    return out


def _gauss_kernels(sigma_vox: float) -> NDArray[np.float64]:
    """Sampled Gaussian of ``sigma_vox`` voxels and its first two derivatives (rows 0, 1, 2),
    over a radius of three sigmas (at least one voxel)."""
    r = max(1, int(np.ceil(3.0 * sigma_vox)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma_vox) ** 2)
    g /= g.sum()
    return np.stack([g, -x / sigma_vox**2 * g, (x**2 / sigma_vox**4 - 1.0 / sigma_vox**2) * g])


def hessian_eigen_at(
    image: NDArray[Any], zyx: NDArray[np.int64], voxel_size: Sequence[float], *, sigma_um: float = 0.5
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Eigenvalues and eigenvectors of the Hessian of ``image`` smoothed by a Gaussian of
    ``sigma_um`` micrometres, at integer voxels ``zyx`` (n, 3), in physical units (per um^2).

    Each point's Hessian is the image's patch around it (three sigmas, clamped at the
    borders) weighed by the derivatives of the Gaussian, so only the points' neighbourhoods
    are read: a few hundred values per point, whatever the image's size.

    Returns
    -------
    eigenvalues : ndarray
        ``(n, 3)``, ascending (the most negative first: for a bright tube, the two across it).
    eigenvectors : ndarray
        ``(n, 3, 3)``, ``[:, :, k]`` the unit vector of eigenvalue ``k`` in ``(x, y, z)``.
    """
    zyx = np.asarray(zyx, dtype=np.int64).reshape(-1, 3)
    vs = np.asarray(voxel_size, dtype=np.float64)[::-1]  # z, y, x
    ker = [_gauss_kernels(float(sigma_um) / h) for h in vs]
    rad = [k.shape[1] // 2 for k in ker]
    shp = np.asarray(image.shape, dtype=np.int64)
    ax = [np.clip(zyx[:, a, None] + np.arange(-rad[a], rad[a] + 1), 0, shp[a] - 1) for a in range(3)]
    patch = np.asarray(image[ax[0][:, :, None, None], ax[1][:, None, :, None], ax[2][:, None, None, :]],
                       dtype=np.float64)
    H = np.empty((zyx.shape[0], 3, 3))
    for a in range(3):
        for b in range(a, 3):
            order = [0, 0, 0]
            order[a] += 1
            order[b] += 1
            v = np.einsum("nijk,i,j,k->n", patch, ker[0][order[0]], ker[1][order[1]], ker[2][order[2]])
            v = v / (vs[a] * vs[b])
            H[:, a, b] = H[:, b, a] = v
    w, vec = np.linalg.eigh(H)
    return w, vec[:, ::-1, :]  # rows z, y, x -> x, y, z


def tubularity(
    image: NDArray[Any],
    voxel_size: Sequence[float],
    *,
    scales_um: Sequence[float] = (1.0, 2.0),
    mask: NDArray[np.bool_] | None = None,
    chunk_slices: int = 32,
) -> NDArray[np.float32]:
    """Dense tubularity image (zero outside ``mask`` when one is given)."""
    image = np.asarray(image)
    zyx = np.argwhere(mask) if mask is not None else np.argwhere(np.ones(image.shape, dtype=bool))
    vals = tubularity_at(image, zyx, voxel_size, scales_um=scales_um, chunk_slices=chunk_slices)
    out = np.zeros(image.shape, dtype=np.float32)
    out[tuple(zyx.T)] = vals
    return out


#: The tube response's unit is at least this share of the image's noise (see :func:`tube_scale`).
TUBE_NOISE_SHARE = 0.5


def tube_scale(probe: NDArray[Any], *, noise: float, floor: float) -> tuple[float, float]:
    """``(median, unit)`` of the tube response over a random ``probe`` of the stack's voxels:
    the response is blended with intensity as ``(response - median) / unit``.

    The unit is the probe's spread (1.4826 x its median absolute deviation), at least
    ``floor`` (the noise floor in grey levels, ``min_noise``) and at least
    :data:`TUBE_NOISE_SHARE` of the image's ``noise``. The response is 0 at most background
    voxels, so the spread is 0 and the floor sets the unit on low-noise stacks. The response
    of noise itself grows with the noise (on stacks of Gaussian noise, its 90th percentile is
    0.7 times the image's noise, its 99.9th 1.7 times): with the floor alone, an empty stack
    of Gaussian noise of spread 20 grey levels (4.4 once denoised) would count its tube
    response in a unit 4.4 times smaller than its intensity's and trace 2694 nodes of it (see
    "Bad input" in ``docs/tracing.md``). With half the noise, every benchmark stack traces as
    with the floor alone (their noise is 1.0-1.8 grey levels); the whole noise would weaken
    the tube term of the sample aspiny stack (noise 1.4 grey levels). See ``min_noise`` in
    the parameter table of ``docs/tracing.md``."""
    tprobe = np.asarray(probe, dtype=np.float64)
    tmed = float(np.median(tprobe)) if tprobe.size else 0.0
    spread = float(np.median(np.abs(tprobe - tmed))) * 1.4826 if tprobe.size else 0.0
    return tmed, max(spread, float(floor), TUBE_NOISE_SHARE * float(noise))
