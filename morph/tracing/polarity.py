"""Polarity of a stack: brightfield (dark structure on bright) or fluorescence (bright on dark)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import TracingError
from morph.io.stack import polarity_of_values

POLARITIES = ("brightfield", "fluorescence")

#: A fluorescence background counts as clipped when at least this share of the stack's
#: voxels lie at its lowest value (see :func:`clipped_share`).
CLIPPED_SHARE = 0.01


def value_sample(data: Any, sample: int = 1_000_000) -> NDArray[Any]:
    """The regular subsample ``data.reshape(-1)[::step]`` (``step = size // sample + 1``) the
    stack's statistics are taken on; a lazy 3-D stack (Dask, binned as read) is gathered
    slab by slab (:func:`morph.tracing.chunked.strided_sample`)."""
    if isinstance(data, np.ndarray) or np.ndim(data) != 3:
        flat = np.asarray(data).reshape(-1)
        return flat[:: flat.size // sample + 1] if flat.size > sample else flat
    from morph.tracing.chunked import strided_sample

    return strided_sample(data, sample)


def clipped_share(values: NDArray[Any]) -> float:
    """The share of the finite ``values`` (a :func:`value_sample`) equal to their lowest.

    A confocal stack whose detector offset puts the background below black holds most of
    its voxels at 0: the shared data's real fluorescence stacks (the nine DIADEM
    Olfactory Projection stacks, rivuletpy's three, SNT's deconvolved dendrite) 52-99.9 %.
    A stack recorded with an offset above black (a camera's; a confocal set not to clip)
    holds almost none there (``morph synth`` fluorescence renders: 0 %). 0 when no value
    is finite."""
    v = np.asarray(values).reshape(-1)
    if v.dtype.kind == "f":
        v = v[np.isfinite(v)]
    if not v.size:
        return 0.0
    return float(np.count_nonzero(v == v.min())) / v.size


def defaults_hint(polarity: str, defaults_for: str, values: NDArray[Any] | None) -> str | None:
    """A note for a fluorescence stack traced with the fluorescence defaults (``defaults_for``
    ``auto``) whose background is not clipped (:func:`clipped_share` of ``values`` below
    :data:`CLIPPED_SHARE`): the brightfield defaults, set in noise units, then often trace a
    faint fill more completely (``docs/tracing.md``, ``defaults_for``). ``None`` otherwise,
    or when ``values`` is ``None``."""
    if polarity != "fluorescence" or str(defaults_for).lower() != "auto" or values is None:
        return None
    share = clipped_share(values)
    if share >= CLIPPED_SHARE:
        return None
    return (f"hint: traced with the fluorescence defaults, set for confocal stacks whose background is clipped to "
            f"black and which hold other labelled structures; this stack's background is not clipped ({100 * share:.2g} "
            "% of its voxels at its lowest value): a faint fill with nothing else labelled near it often traces more "
            "completely with defaults_for=brightfield (--param defaults_for=brightfield)")


def detect_polarity(data: NDArray[Any], *, sample: int = 1_000_000, values: NDArray[Any] | None = None) -> str:
    """Guess the polarity of ``data`` (any dimensionality).

    :func:`morph.io.stack.polarity_of_values` (the tail of the intensity distribution that
    reaches further from the median: dark, brightfield; bright, fluorescence) of a regular
    subsample of large arrays (local: a chunk gives the same answer as long as it holds some
    structure). When the subsample is one value, an array in memory is searched whole for
    the few voxels that differ (a neuron on a background set to one value). ``values``: that
    subsample when the caller has it (:func:`value_sample`).

    Raises
    ------
    TracingError
        When the array is constant (no structure at all).
    """
    flat = value_sample(data, sample) if values is None else np.asarray(values).reshape(-1)
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


def slice_sample(data: Any, n_slices: int = 8, sample: int = 1_000_000) -> NDArray[Any]:
    """The values of ``n_slices`` slices evenly spaced along z (all of a stack with fewer),
    subsampled to about ``sample``: a stack's background statistics from a few slices,
    without reading a lazy stack whole."""
    if np.ndim(data) != 3:
        return value_sample(data, sample)
    nz = int(data.shape[0])
    ks = np.unique(np.linspace(0, nz - 1, min(int(n_slices), nz)).round().astype(int))
    flat = np.concatenate([np.asarray(data[int(k)]).reshape(-1) for k in ks])
    return flat[:: flat.size // sample + 1] if flat.size > sample else flat


def polarity_and_hint(data: Any, params: Any, *, sample_fn: Any = value_sample) -> tuple[str, str | None]:
    """The stack's polarity (``params.polarity`` checked, or detected on ``sample_fn(data)``
    when ``"auto"``) and the fluorescence defaults' :func:`defaults_hint`, from one sample:
    the detection's when there is one, else (a polarity given as fluorescence, the defaults
    left to it) :func:`slice_sample`, so that a lazy stack is not read whole for a hint."""
    p = str(params.polarity).lower()
    if p not in (*POLARITIES, "auto"):
        raise TracingError(f"unknown polarity {params.polarity!r}", hint="use auto, brightfield or fluorescence")
    wants_hint = str(params.defaults_for).lower() == "auto"
    values = sample_fn(data) if p == "auto" else slice_sample(data) if p == "fluorescence" and wants_hint else None
    pol = detect_polarity(data, values=values) if p == "auto" else p
    return pol, defaults_hint(pol, params.defaults_for, values)


def resolve_polarity(data: NDArray[Any], polarity: str = "auto") -> str:
    """``polarity`` checked, or detected when ``"auto"``."""
    p = str(polarity).lower()
    if p == "auto":
        return detect_polarity(data)
    if p not in POLARITIES:
        raise TracingError(f"unknown polarity {polarity!r}", hint="use auto, brightfield or fluorescence")
    return p
