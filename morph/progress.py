"""Progress reporting on stderr (silenced by ``-q``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: Set by the CLI's ``-q``; also honoured from the environment (``MORPH_QUIET=1``).
QUIET = os.environ.get("MORPH_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    global QUIET
    QUIET = bool(quiet)


def bar(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    quiet: bool | None = None,
) -> Iterator[T]:
    """Iterate with a progress bar on stderr (tqdm), unless quiet."""
    from tqdm import tqdm

    q = QUIET if quiet is None else quiet
    yield from tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=q,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


@contextmanager
def stages(names: list[str], *, desc: str = "", quiet: bool | None = None) -> Iterator[Any]:
    """A bar that advances one step per named stage: ``with stages([...]) as s: s.step("name")``."""
    from tqdm import tqdm

    q = QUIET if quiet is None else quiet
    with tqdm(
        total=len(names), desc=desc, unit="stage", disable=q, file=sys.stderr, leave=False, dynamic_ncols=True
    ) as t:

        class _S:
            def step(self, name: str) -> None:
                t.set_postfix_str(name)
                t.update(1)

            def start(self, name: str) -> None:
                t.set_postfix_str(name)

        yield _S()


def info(msg: str, *, quiet: bool | None = None) -> None:
    """A one-line note on stderr, unless quiet."""
    if not (QUIET if quiet is None else quiet):
        print(msg, file=sys.stderr)


def warn(msg: str) -> None:
    """A warning on stderr (shown even when quiet)."""
    print(f"morph: warning: {msg}", file=sys.stderr)
