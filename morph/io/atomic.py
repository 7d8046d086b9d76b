"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from morph.errors import MorphError, OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# what the system says when a file cannot be created or written where asked (not bugs)
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO,
                 errno.ENOENT, errno.ENOTDIR, errno.EXDEV, errno.EBUSY, errno.ETXTBSY}


def _cannot_write(p: Path, e: OSError, what: str = "output") -> MorphError:
    """A clear error for an output (``what``) that the system refuses to create."""
    reason = e.strerror or type(e).__name__
    return MorphError(f"cannot write the {what}: {reason.lower()}", file=p,
                      hint="choose a folder you can write to")


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse an output that cannot or must not be written, before any work is done.

    Refused: a folder, or a name ending with a path separator; ``-`` (morph writes files,
    not standard output); an existing file unless ``force``; an existing device, pipe or
    socket even with ``force`` (it would be replaced by a regular file); a missing parent
    folder, or a parent that is a file; a folder in which a file cannot be created (checked
    by creating and removing a hidden temporary file there, so that permissions, read-only
    and special file systems are all caught).
    """
    text = os.fspath(path)
    p = Path(text)
    if text == "-":
        raise MorphError("output '-': morph writes files, not standard output", hint="give a file name")
    if p.is_dir() or text.endswith(("/", os.sep)):  # first: --force cannot help
        raise MorphError("output is a folder", file=p, hint="give a file name")
    if p.exists() or p.is_symlink():
        if p.exists() and not p.is_file():
            raise MorphError("output exists and is not a regular file (a device, pipe or socket)", file=p,
                             hint="give the name of a regular file")
        if not force:
            raise OutputExistsError("output exists", file=p, hint="use --force to overwrite it")
    parent = p.parent
    if not parent.exists():
        raise MorphError("output folder does not exist", file=parent, hint="create it first")
    if not parent.is_dir():
        raise MorphError("output folder is a file", file=parent, hint="give a path inside a folder")
    check_writable_folder(parent, output=p)
    return p


def check_writable_folder(folder: str | os.PathLike[str], *, output: str | os.PathLike[str] | None = None,
                          what: str = "output") -> None:
    """Refuse a folder in which no file can be created: a hidden ``.probe`` file is created
    there and removed, so permissions, read-only and immutable folders and special file
    systems (``/proc``) are all caught, which ``os.access`` misses when run as root.
    ``output``: the path the error names (default the folder); ``what``: what it calls it
    ("cannot write the output: ...")."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".morph.", suffix=".probe", dir=folder)
    except OSError as e:
        raise _cannot_write(Path(output if output is not None else folder), e, what) from None
    try:
        os.close(fd)
    finally:
        os.unlink(probe)


def check_distinct(outputs: Iterable[str | os.PathLike[str] | None],
                   inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """Refuse two outputs naming one file, and an output naming one of the inputs (with
    ``--force`` the input would be overwritten)."""
    seen: dict[Path, str] = {}
    for o in outputs:
        if o is None:
            continue
        key = Path(os.path.abspath(os.fspath(o)))
        if key in seen:
            raise MorphError(f"two outputs name the same file ({seen[key]} and {os.fspath(o)})", file=o,
                             hint="give each output its own name")
        seen[key] = os.fspath(o)
    for i in inputs:
        if i is None:
            continue
        ip = Path(os.path.abspath(os.fspath(i)))
        for key, o in seen.items():
            if key == ip or (key.exists() and ip.exists() and os.path.samefile(key, ip)):
                raise MorphError("the output is one of the inputs", file=o,
                                 hint="give the output another name: the input would be overwritten")


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
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part" + p.suffix, dir=p.parent)
    except OSError as e:
        raise _cannot_write(p, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        try:
            yield tmp_path
            os.replace(tmp_path, p)
        except OSError as e:
            if e.errno not in _WRITE_ERRNOS:
                raise
            raise _cannot_write(p, e) from None
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
