"""Checks of the feature options and of the Sholl arguments, done before any measuring.

A bad value is refused with a :class:`~morph.errors.MorphError` naming the option, the
value and what is accepted, instead of surfacing later as a numpy warning, an unrelated
exception or a NaN with a misleading reason.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import MorphError


def _show(value: Any) -> str:
    """A short rendering of a value for a message (floats in %.3g)."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(name: str, value: Any, *, positive: bool = True, hint: str | None = None) -> float:
    """``value`` as a float: a real number (not a string or a bool), finite, and ``> 0``
    when ``positive`` (else ``>= 0``).

    Raises
    ------
    MorphError
        Naming ``name`` and the value.
    """
    what = "a positive" if positive else "a non-negative"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise MorphError(f"{name} must be {what} number, got {_show(value)} ({type(value).__name__})", hint=hint)
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise MorphError(f"{name} must be {what} finite number, got {_show(value)}", hint=hint)
    return v


def vector3(name: str, value: Any, *, nonzero: bool = False, hint: str | None = None) -> NDArray[np.float64]:
    """``value`` as three finite numbers (not all zero when ``nonzero``).

    Raises
    ------
    MorphError
        Naming ``name`` and the value.
    """
    if isinstance(value, (str, bytes)):
        raise MorphError(f"{name} must be three numbers (x, y, z), got {_show(value)}", hint=hint)
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise MorphError(f"{name} must be three numbers (x, y, z), got {_show(value)}", hint=hint) from None
    if v.shape != (3,):
        raise MorphError(f"{name} must be three numbers (x, y, z), got {_show(value)}", hint=hint)
    if not np.all(np.isfinite(v)):
        raise MorphError(f"{name} must be three finite numbers, got {_show(value)}", hint=hint)
    if nonzero and not np.any(v != 0):
        raise MorphError(f"{name} must not be the zero vector: it gives no direction", hint=hint)
    return v


def check_options(options: Mapping[str, Any]) -> None:
    """Check the values of the feature options (names already known).

    Raises
    ------
    MorphError
        The first option with a bad value, named.
    """
    for name, value in options.items():
        if name in ("sholl_step", "overlap_bin_width", "direction_length"):
            number(name, value, hint="give a length in micrometres")
        elif name == "z_scale":
            number(name, value, positive=False, hint="the factor on z before stem exit angles (Allen: 3)")
        elif name == "pia_direction" and value is not None:
            vector3(name, value, nonzero=True, hint="the direction towards the pia, e.g. (0, 1, 0) for upright cells")
