"""One exception hierarchy for morph.

Every error carries the file it concerns, the line (when there is one), what is wrong and
what the user can do about it, so that the CLI can print a single clear message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike


class MorphError(Exception):
    """Base class of every error morph raises on purpose.

    Parameters
    ----------
    message
        What is wrong, in one sentence.
    file
        The file concerned, if any.
    line
        1-based line number in ``file``, if any.
    hint
        What to do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | PathLike[str] | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class SWCError(MorphError):
    """A reconstruction file that cannot be read as a valid tree."""


class StackError(MorphError):
    """An image stack that cannot be read or used."""


class MorphologyError(MorphError):
    """An operation on a morphology that cannot be done (bad node, empty tree...)."""


class TracingError(MorphError):
    """Tracing could not produce a reconstruction from the given input."""


class NoNeuronError(TracingError):
    """Nothing in the traced region looks like a neuron.

    Parameters
    ----------
    what
        Why, after "no neuron found: "; ``{where}`` in it names the region traced.
    where
        The region traced ("stack", or "roi" when only a box of the stack is traced).
    hint
        What to do about it.
    """

    def __init__(self, what: str, *, where: str = "stack", hint: str | None = None) -> None:
        self.what = what
        self.where = where
        super().__init__("no neuron found: " + what.replace("{where}", where), hint=hint)


class OutputExistsError(MorphError):
    """An output file exists and ``--force`` was not given."""


@dataclass
class Problem:
    """One problem found while validating a file (see :func:`morph.io.swc.validate_swc`)."""

    line: int | None
    message: str
    hint: str = ""
    fixable: bool = False

    def format(self, file: str | None = None) -> str:
        where = f"{file}:" if file else ""
        where += f"{self.line}: " if self.line is not None else (" " if file else "")
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


@dataclass
class ValidationReport:
    """All problems found in one file."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems
