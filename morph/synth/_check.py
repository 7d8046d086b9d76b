"""Checks of the parameter dataclasses of :mod:`morph.synth`.

Every field must have the type its annotation says (a number, a whole number, ``True`` or
``False``, text, or a fixed number of numbers such as a ``(lo, hi)`` range) and lie in its
range (by default 0 or more: lengths, radii, rates, densities and grey levels are never
negative). A bad value is refused with a :class:`~morph.errors.MorphError` naming the
parameter, what it must be and the value given.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from dataclasses import dataclass, fields
from typing import Any

from morph.errors import MorphError


@dataclass(frozen=True)
class Limit:
    """The range of a parameter's numbers.

    Parameters
    ----------
    lo, hi
        Bounds (``None``: unbounded on that side).
    lo_open, hi_open
        Whether the bound itself is excluded.
    """

    lo: float | None = 0.0
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: float) -> bool:
        """Whether ``v`` lies in the range (and is finite)."""
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def text(self) -> str:
        """The range in words, e.g. ``more than 0`` or ``in [0, 1)``."""
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"more than {self.lo:g}" if self.lo_open else f"{self.lo:g} or more"
        if self.hi is not None:
            return f"less than {self.hi:g}" if self.hi_open else f"{self.hi:g} or less"
        return "finite"


POSITIVE = Limit(0.0, lo_open=True)
NON_NEGATIVE = Limit(0.0)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _parts(tp: Any) -> tuple[Any, bool]:
    """The annotation without ``| None``, and whether ``None`` is allowed."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), len(args) < len(typing.get_args(tp))
    return tp, False


def _describe(tp: Any) -> str:
    if tp is bool:
        what = "True or False"
    elif tp is int:
        what = "a whole number"
    elif tp is float:
        what = "a number"
    elif tp is str:
        what = "text"
    elif typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        kind = "whole numbers" if args[0] is int else "numbers"
        words = {2: "two", 3: "three"}.get(len(args), str(len(args)))
        names = "LO,HI (LO <= HI)" if len(args) == 2 else "X,Y,Z" if len(args) == 3 else ""
        what = f"{words} {kind} {names}".rstrip()
    else:  # pragma: no cover - every field has one of the types above
        what = str(tp)
    return what


def _type_ok(tp: Any, v: Any) -> bool:
    if tp is bool:
        return isinstance(v, (bool, numbers.Integral)) and v in (0, 1)
    if tp is int:
        return _is_int(v)
    if tp is float:
        return _is_number(v)
    if tp is str:
        return isinstance(v, str)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        try:
            items = list(v)
        except TypeError:
            return False
        if isinstance(v, (str, bytes)) or len(items) != len(args):
            return False
        return all(_type_ok(a, x) for a, x in zip(args, items))
    return True  # pragma: no cover


def _numbers(tp: Any, v: Any) -> list[float]:
    if tp in (int, float):
        return [float(v)]
    if typing.get_origin(tp) is tuple:
        return [float(x) for x in v]
    return []


def check_field(cls: type, name: str, value: Any, limits: dict[str, Limit] | None = None) -> None:
    """Refuse a value of the dataclass field ``cls.name`` of the wrong type or out of range.

    Parameters
    ----------
    cls
        A parameter dataclass (:class:`~morph.synth.NeuronParams`,
        :class:`~morph.synth.RenderParams`).
    name
        The field.
    value
        The value to check.
    limits
        The range of each numeric field (default :data:`NON_NEGATIVE`).

    Raises
    ------
    MorphError
        Naming the parameter, what it must be and the value given.
    """
    hints = typing.get_type_hints(cls)
    if name not in hints:
        raise MorphError(f"unknown parameter {name!r}")
    tp, allow_none = _parts(hints[name])
    if value is None and allow_none:
        return
    limit = (limits or {}).get(name, NON_NEGATIVE)
    what = _describe(tp)
    if typing.get_origin(tp) is tuple:
        what += f", each {limit.text()}"
    elif tp in (int, float):
        what += f" {limit.text()}"
    if allow_none:
        what += ", or None"
    bad = MorphError(f"{name} must be {what}; got {value!r}")
    if not _type_ok(tp, value):
        raise bad
    nums = _numbers(tp, value)
    if not all(limit.ok(x) for x in nums):
        raise bad
    if len(nums) == 2 and nums[0] > nums[1]:
        raise bad


def check_fields(obj: Any, limits: dict[str, Limit] | None = None) -> None:
    """:func:`check_field` on every field of the dataclass instance ``obj``."""
    for f in fields(obj):
        check_field(type(obj), f.name, getattr(obj, f.name), limits)
