"""Polarity of a stack: brightfield (dark structure on bright) or fluorescence (bright on dark)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import TracingError
from morph.io.stack import polarity_of_values

POLARITIES = ("brightfield", "fluorescence")


def detect_polarity(data: NDArray[Any], *, sample: int = 1_000_000) -> str:
    """Guess the polarity of ``data`` (any dimensionality).

    :func:`morph.io.stack.polarity_of_values` (the tail of the intensity distribution that
    reaches further from the median: dark, brightfield; bright, fluorescence) of a regular
    subsample of large arrays (local: a chunk gives the same answer as long as it holds some
    structure). When the subsample is one value, an array in memory is searched whole for
    the few voxels that differ (a neuron on a background set to one value).

    Raises
    ------
    TracingError
        When the array is constant (no structure at all).
    """
    if isinstance(data, np.ndarray) or np.ndim(data) != 3:
        flat = np.asarray(data).reshape(-1)
        if flat.size > sample:
            flat = flat[:: flat.size // sample + 1]
    else:  # a lazy stack (Dask, binned as read): the same subsample, gathered slab by slab
        from morph.tracing.chunked import strided_sample

        flat = strided_sample(data, sample)
    pol = polarity_of_values(flat)
    finite = flat[np.isfinite(flat)]
    if pol is None and finite.size and isinstance(data, np.ndarray) and flat.size < data.size:
        # the subsample is one value: so is the stack unless its few other voxels fell between
        # the samples (an array in memory is checked whole; a lazy stack is not read again)
        bulk = float(finite[0])
        lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
        if hi > lo:
            pol = "brightfield" if bulk - lo > hi - bulk else "fluorescence"
    if pol is None:
        what = f"every voxel is {float(finite[0]):g}" if finite.size else "no voxel is a finite number"
        raise TracingError(
            f"the stack is constant ({what}): there is nothing to trace",
            hint="check that the right file or channel was given",
        )
    return pol


def resolve_polarity(data: NDArray[Any], polarity: str = "auto") -> str:
    """``polarity`` checked, or detected when ``"auto"``."""
    p = str(polarity).lower()
    if p == "auto":
        return detect_polarity(data)
    if p not in POLARITIES:
        raise TracingError(f"unknown polarity {polarity!r}", hint="use auto, brightfield or fluorescence")
    return p
