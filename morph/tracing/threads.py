"""The threads the tracer's local filters use: the Gaussian filters of the denoising and of
the tubularity, and the Hessian's eigenvalues at the candidate voxels.

numpy's and scipy.ndimage's loops release the GIL, so plain threads share the work without
copies: each 1-D pass of a separable Gaussian is split along another axis (the lines along
the filtered axis are independent), giving exactly the numbers of
:func:`scipy.ndimage.gaussian_filter`, with no extra memory. How many: ``MORPH_THREADS`` if
set, otherwise the cores this process may run on (at most 8). ``morph batch``'s local cluster
runs a worker process per core and gives each ``MORPH_THREADS`` = cores per worker (1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from morph.errors import MorphError

T = TypeVar("T")

#: Below this many voxels a filter runs in the calling thread (the threads' start-up costs
#: more than they share).
MIN_THREADED_VOXELS = 1 << 20


def n_threads() -> int:
    """Threads for the local filters: ``MORPH_THREADS`` or the cores available (1 to 8)."""
    env = os.environ.get("MORPH_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise MorphError(f"MORPH_THREADS must be a whole number of at least 1, got {env!r}",
                             hint="unset it to use every core, or set MORPH_THREADS=1")
        return n
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def map_threads(fn: Callable[[Any], T], items: Iterable[Any], threads: int | None = None) -> list[T]:
    """``[fn(x) for x in items]``, on ``threads`` threads (default :func:`n_threads`)."""
    items = list(items)
    n = min(threads or n_threads(), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(fn, items))


def gaussian_filter(
    a: NDArray[Any], sigma: Sequence[float], output: NDArray[np.float32], *, mode: str = "nearest",
    truncate: float = 3.0, threads: int | None = None,
) -> NDArray[np.float32]:
    """:func:`scipy.ndimage.gaussian_filter` of ``a`` (per-axis ``sigma``) into ``output``
    (which may be ``a`` itself), each 1-D pass shared by ``threads`` threads: the same numbers."""
    n = threads or n_threads()
    if n <= 1 or a.size < MIN_THREADED_VOXELS:
        return ndi.gaussian_filter(a, sigma, output=output, mode=mode, truncate=truncate)
    axes = [ax for ax in range(a.ndim) if sigma[ax] > 1e-15]  # as scipy: no pass for sigma 0
    if not axes:
        output[...] = a
        return output
    src = a
    for ax in axes:
        split = 0 if ax != 0 else 1  # the outermost other axis: contiguous blocks
        edges = np.linspace(0, a.shape[split], min(n, a.shape[split]) + 1).astype(int)

        def run(k: int, src: NDArray[Any] = src, ax: int = ax, split: int = split, edges: NDArray[Any] = edges) -> None:
            part = [slice(None)] * a.ndim
            part[split] = slice(int(edges[k]), int(edges[k + 1]))
            ndi.gaussian_filter1d(src[tuple(part)], sigma[ax], axis=ax, output=output[tuple(part)], mode=mode,
                                  truncate=truncate)

        map_threads(run, range(edges.size - 1), n)
        src = output
    return output
