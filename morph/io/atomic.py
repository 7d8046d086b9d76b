"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from morph.errors import MorphError, OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse an existing output unless ``force``; refuse a missing parent folder."""
    p = Path(path)
    if p.is_dir():  # first: --force cannot help
        raise MorphError("output is a folder", file=p, hint="give a file name")
    if p.exists() and not force:
        raise OutputExistsError("output exists", file=p, hint="use --force to overwrite it")
    if not p.parent.exists():
        raise MorphError("output folder does not exist", file=p.parent, hint="create it first")
    return p


def remove_stale_parts(folder: str | os.PathLike[str], *, min_age_s: float = 60.0) -> int:
    """Remove the temporary files :func:`atomic_path` leaves in ``folder`` (and below) when
    its process is killed between writing and renaming (SIGKILL, power loss): hidden
    ``.NAME.XXXX.part.EXT`` files older than ``min_age_s`` seconds (a live write renames
    its file within milliseconds). Returns how many were removed."""
    import time

    root = Path(folder)
    if not root.is_dir():
        return 0
    now, removed = time.time(), 0
    for f in root.rglob(".*.part*"):
        try:
            if f.is_file() and now - f.stat().st_mtime > min_age_s:
                f.unlink()
                removed += 1
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is left
    untouched.
    """
    p = check_output(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part" + p.suffix, dir=p.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, p)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, *, force: bool = False) -> Path:
    with atomic_path(path, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_with(
    path: str | os.PathLike[str], writer: Callable[[Path], object], *, force: bool = False
) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path, force=force) as tmp:
        writer(tmp)
    return Path(path)
