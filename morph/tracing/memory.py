"""The tracer's memory: handing what the process freed back to the system (shared by the
in-memory tracer's stages and the chunked runner), and planning whether a stack fits in the
available memory to be traced whole, or is traced chunk by chunk (:func:`plan_stack`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_LIBC: Any = None


def release_memory() -> None:
    """Return the memory freed by the process to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Between chunks, and between the in-memory tracer's stages, the blocks just
    freed would otherwise stay in the allocator's heap, fragmented by the next arrays of other
    sizes, and the resident memory would grow well past what is live (measured: 130 MiB
    retained after the image stages of a stack traced under a 64 MiB bound, none with this
    call after each chunk; 15-20 MiB over the live arrays of the in-memory tree stage on a
    5 M voxel stack without it). A call costs about 1-3 ms."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            _LIBC = lib if hasattr(lib, "malloc_trim") else False
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


#: Peak memory of the in-memory tracer per voxel of the stack, beyond the stack's own values:
#: ``bench/trace.py`` measures 5.0-11.8 bytes per voxel of the input on the DIADEM stacks, the
#: synthetic brightfield stacks and the 63x render at the default working voxel size, peak
#: included. Rounded up, it plans whether a stack fits (:func:`memory_plan`).
IN_MEMORY_BYTES_PER_VOXEL = 12
#: What the interpreter and the libraries hold before any stack is read (about 110 MiB
#: measured after importing the tracer), rounded up.
BASE_MEMORY = 256 << 20
#: Share of the available memory a run planned chunk by chunk takes as its bound: its image
#: stages stay under the bound, while the tree stages hold the sparse foreground whole and
#: may go above it (:func:`morph.tracing.chunked.check_tree_memory`).
CHUNKED_SHARE = 0.5


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes of memory this process may still take: the system's available memory (Linux's
    ``MemAvailable``), bounded by the control group's limit less its usage (a container's or
    a job scheduler's limit, cgroup v2 or v1). ``None`` when none of these can be read."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # v1 writes "no limit" as about 2**63
            found.append(max(limit - usage, 0))
    return min(found) if found else None


def memory_plan(voxels: int, itemsize: int, *, traced_voxels: int | None = None,
                available: int | None = None) -> tuple[int, int, int] | None:
    """Whether a stack fits in memory to be traced, and if not, the bound to trace it under.

    Parameters
    ----------
    voxels, itemsize
        The stack's number of voxels and bytes per value (read whole by the in-memory tracer).
    traced_voxels
        The voxels traced (those of a region of interest; default all).
    available
        Bytes available (default :func:`available_memory`).

    Returns
    -------
    tuple of int or None
        ``None`` when the in-memory tracer's estimated peak (the stack, plus
        :data:`IN_MEMORY_BYTES_PER_VOXEL` per traced voxel, plus :data:`BASE_MEMORY`) fits in
        the available memory, or when that is unknown; else ``(need, available, bound)``:
        that estimate, the memory available and a bound of :data:`CHUNKED_SHARE` of it for
        :func:`morph.tracing.chunked.trace`.
    """
    if available is None:
        available = available_memory()
    if available is None:
        return None
    traced = voxels if traced_voxels is None else min(traced_voxels, voxels)
    need = voxels * itemsize + traced * IN_MEMORY_BYTES_PER_VOXEL + BASE_MEMORY
    if need <= available:
        return None
    return need, available, int(available * CHUNKED_SHARE)


def _fits_by_its_header(path: Any, series: int | None, available: int) -> bool:
    """True when a TIFF file's header shows it fits in memory to be traced even if every
    value were a voxel traced (its values' bytes plus :data:`IN_MEMORY_BYTES_PER_VOXEL` a
    value, plus :data:`BASE_MEMORY`). False when that cannot be said (no TIFF, no header):
    the stack is then opened lazily and measured."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file() or p.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        import tifffile

        with tifffile.TiffFile(p) as tf:
            s = tf.series[series or 0]
            values, itemsize = int(np.prod(s.shape)), int(np.dtype(s.dtype).itemsize)
    except Exception:  # an unreadable header is the reader's to report
        return False
    return values * (itemsize + IN_MEMORY_BYTES_PER_VOXEL) + BASE_MEMORY <= available


def plan_stack(path: Any, *, voxel_size: Any = None, channel: int | str | None = None, series: int | None = None,
               roi_voxels: Callable[[Any], int] | None = None,
               available: int | None = None) -> tuple[Any, int, int, int] | None:
    """:func:`memory_plan` for a stack on disk, before it is read.

    A TIFF whose header shows it fits is not opened further; otherwise the stack is opened
    lazily (:func:`morph.io.chunked.open_chunked`, which loads the chunked readers: about 1 s
    the first time) for its shape and pixel type. ``roi_voxels(lazy)``: the voxels traced,
    when only a region is. ``available``: default :func:`available_memory`.

    Returns ``None`` when the stack fits (or the memory is unknown, or the stack cannot be
    opened lazily: it is then read whole, and the reader reports what is wrong), else
    ``(lazy stack, need, available, bound)``.
    """
    from morph.errors import MorphError
    from morph.io.chunked import open_chunked

    if available is None:
        available = available_memory()
    if available is None or _fits_by_its_header(path, series, available):
        return None
    try:
        lazy = open_chunked(path, voxel_size=voxel_size, channel=channel, series=series)
    except (MorphError, OSError, ValueError):
        return None
    voxels = int(np.prod(lazy.shape[-3:]))
    traced = roi_voxels(lazy) if roi_voxels is not None else None
    plan = memory_plan(voxels, int(np.dtype(lazy.dtype).itemsize), traced_voxels=traced, available=available)
    return None if plan is None else (lazy, *plan)
