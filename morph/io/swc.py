"""SWC reading, validation, repair and writing.

Reading is tolerant of what real files contain (header comments, inline comments, blank
lines, tabs, commas, leading white space, unsorted or non-contiguous ids, several roots,
custom types, scientific notation, UTF-16 text) and strict about what is broken (wrong
column count, non-numeric or non-finite fields, a decimal comma, ids, types or parents that
are not whole numbers in range, a parent below -1, coordinates or radii beyond
:data:`MAX_COORDINATE`, negative radius, duplicate id, missing parent, a node that is its
own parent, cycles, empty or binary files, and files of other formats: Neurolucida ASC,
HDF5, NeuronJ, XML, JSON, gzip). Every error names the file, the line, what is wrong and
what to do. Several trees in one file, or no soma, are legal and reported as warnings by
:func:`validate_swc`.

The fast path hands the whole file to pandas' C tokenizer; any irregularity sends the file
to a line-by-line parser that finds and reports every problem precisely.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from morph import _tree
from morph.errors import Problem, SWCError, ValidationReport
from morph.morphology import Morphology

PathLike = str | os.PathLike[str]
_COMMENT_STR = re.compile(r"#[^\n]*")
_MAX_SHOWN = 20

#: Largest absolute coordinate or radius accepted: 1e7, about 10 m in micrometres. No
#: reconstruction in micrometres or voxels comes near it; a file past it is in other units
#: (nanometres of a large volume) or holds a corrupted number, and reading it on would
#: overflow lengths and areas to infinity.
MAX_COORDINATE = 1e7
#: Largest id, type or parent accepted: 2**53, the largest whole number a 64-bit float
#: holds exactly.
MAX_ID = 2**53
_COLUMNS = ("id", "type", "x", "y", "z", "radius", "parent")
_UNIT_HINT = (
    "coordinates and radii are read as micrometres or voxels, so a unit mix-up is the likely cause: "
    "divide x, y, z and radius of a file in nanometres by 1000 first; otherwise fix the number"
)


@dataclass
class SWCReport(ValidationReport):
    """A :class:`~morph.errors.ValidationReport` with the file's warnings: things that are
    legal but often unintended (several trees, no soma). Warnings do not make the report
    fail."""

    warnings: list[Problem] = field(default_factory=list)


@dataclass
class _Table:
    """Raw SWC columns plus the 1-based line number of each row."""

    ids: NDArray[np.int64]
    types: NDArray[np.int64]
    xyz: NDArray[np.float64]
    radius: NDArray[np.float64]
    parent_ids: NDArray[np.int64]
    lines: NDArray[np.int64] | None
    header: list[str]
    raw: bytes | None = None
    rejected_ids: frozenset[int] = frozenset()

    def line_numbers(self) -> NDArray[np.int64]:
        """1-based file line of every row (computed on first need: only errors need it)."""
        if self.lines is None:
            self.lines = _data_line_numbers(self.raw or b"")
        return self.lines


def _read_bytes(path: PathLike) -> bytes:
    p = Path(path)
    if not p.exists():
        raise SWCError("file not found", file=path, hint="check the path")
    if p.is_dir():
        raise SWCError("is a folder, not an SWC file", file=path, hint="give an .swc file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SWCError(f"cannot read: {e.strerror}", file=path) from e
    # a UTF-8 byte-order mark (Windows editors, Excel) is not part of the first line
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def _header_lines(data: bytes) -> list[str]:
    """The comment lines before the first data line (reads only that far)."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line = data[pos:end].strip()
        pos = end + 1
        if line.startswith(b"#"):
            out.append(line[1:].strip().decode("utf-8", "replace"))
        elif line:
            break
    return out


def _binary_problem(data: bytes, path: PathLike | None = None) -> Problem | None:
    """A NUL byte, or many control characters, in the first block: not a text file (named
    when it is an image: a TIFF, or a microscope vendor's format by its suffix)."""
    head = data[:65536]
    controls = sum(head[:4096].count(c) for c in [*range(1, 9), *range(14, 32)])
    if b"\x00" in head or controls > 8:
        from morph.io.stack import _TIFF_MAGIC, microscope_format

        fmt = "TIFF" if head[:4] in _TIFF_MAGIC else None
        fmt = fmt or (microscope_format(path) if path is not None else None)
        if fmt is not None:
            return Problem(None, f"file is a {fmt} image, not an SWC reconstruction",
                           "an SWC file is plain text with 7 columns; trace the image with morph trace, "
                           "or show it with --stack")
        return Problem(None, "file is binary, not SWC text", "an SWC file is plain text with 7 columns")
    return None


def _fast_table(data: bytes) -> _Table | None:
    """Parse a clean file in one pass of compiled code; ``None`` when anything looks off
    (the line parser then finds and explains the problem)."""
    if len(data) < 24_000:  # small files: tokenising in Python beats starting pandas
        return _checked(_tokens_array(data), data)
    import pandas as pd

    body = data.replace(b",", b" ") if b"," in data else data
    try:
        df = pd.read_csv(
            io.BytesIO(body),
            sep=r"\s+",
            comment="#",
            header=None,
            dtype=np.float64,
            engine="c",
            skip_blank_lines=True,
        )
    except Exception:  # any tokenizer complaint: let the precise parser explain it
        return None
    return _checked(df.to_numpy(), data)


def _tokens_array(data: bytes) -> NDArray[np.float64] | None:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    if "#" in text:
        text = _COMMENT_STR.sub("", text)
    if "," in text:
        text = text.replace(",", " ")
    tokens = text.split()
    rows = sum(1 for line in text.splitlines() if line and not line.isspace())
    if not tokens or len(tokens) != 7 * rows:
        return None
    try:
        return np.array(tokens, dtype=np.float64).reshape(rows, 7)
    except ValueError:
        return None


def _checked(a: NDArray[np.float64] | None, data: bytes) -> _Table | None:
    """The table of a parsed array, or ``None`` unless every value is acceptable."""
    if a is None or a.ndim != 2 or a.shape[1] != 7 or a.shape[0] == 0 or not np.isfinite(a).all():
        return None
    ints = a[:, [0, 1, 6]]
    if not np.array_equal(ints, np.round(ints)) or (a[:, 5] < 0).any():
        return None
    if (ints[:, :2] < 0).any() or (ints[:, 2] < -1).any() or (ints > MAX_ID).any():
        return None
    if (np.abs(a[:, 2:6]) > MAX_COORDINATE).any():
        return None
    return _Table(
        ids=a[:, 0].astype(np.int64),
        types=a[:, 1].astype(np.int64),
        xyz=np.ascontiguousarray(a[:, 2:5]),
        radius=a[:, 5].copy(),
        parent_ids=a[:, 6].astype(np.int64),
        lines=None,
        header=_header_lines(data),
        raw=data,
    )


def _data_line_numbers(data: bytes) -> NDArray[np.int64]:
    """1-based numbers of the lines holding data (not blank, not comment-only)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.r_[0, nl + 1]
    ends = np.r_[nl, arr.size]
    keep = starts < ends
    starts, ends = starts[keep], ends[keep]
    lineno = np.flatnonzero(keep) + 1
    # first non-blank character of each line
    nonblank = np.flatnonzero(arr > 32)
    k = np.searchsorted(nonblank, starts)
    has = k < nonblank.size
    first = np.full(starts.size, -1)
    first[has] = nonblank[k[has]]
    valid = has & (first < ends)
    first_char = np.zeros(starts.size, dtype=np.uint8)
    first_char[valid] = arr[first[valid]]
    return lineno[valid & (first_char != ord("#"))].astype(np.int64)


def _slow_table(data: bytes, problems: list[Problem]) -> _Table:
    """Line-by-line parse that records every problem (rows with problems are dropped; the
    ids of dropped rows are kept so that their children are not reported as orphans)."""
    ids, types, xyz, radius, pids, lines = [], [], [], [], [], []
    rejected: set[int] = set()
    text = data.decode("utf-8", "replace")
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").split()
        row, problem = _parse_row(line, fields)
        if problem is not None:
            problems.append(Problem(lineno, *problem))
            rid = _whole(fields[0]) if fields else None
            if rid is not None:
                rejected.add(rid)
            continue
        assert row is not None
        ids.append(row[0])
        types.append(row[1])
        xyz.append(row[2:5])
        radius.append(row[5])
        pids.append(row[6])
        lines.append(lineno)
    return _Table(
        ids=np.array(ids, dtype=np.int64),
        types=np.array(types, dtype=np.int64),
        xyz=np.array(xyz, dtype=np.float64).reshape(-1, 3),
        radius=np.array(radius, dtype=np.float64),
        parent_ids=np.array(pids, dtype=np.int64),
        lines=np.array(lines, dtype=np.int64),
        header=_header_lines(data),
        rejected_ids=frozenset(rejected),
    )


def _whole(text: str) -> int | None:
    """``text`` as a whole number (``12``, ``12.0``, ``1.2e1``), or ``None``."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        v = float(text)
    except ValueError:
        return None
    return int(v) if math.isfinite(v) and v == round(v) else None


_DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")


def _parse_row(line: str, fields: list[str]) -> tuple[list | None, tuple[str, str] | None]:
    """The values of one data line, or the (message, hint) of its first problem."""
    if len(fields) != 7:
        spaced = line.split()
        commas = [f for f in spaced if _DECIMAL_COMMA.match(f)]
        if len(spaced) == 7 and commas:
            return None, (
                f"decimal comma in {commas[0]!r}: SWC numbers use a decimal point",
                "write the file again with '.' as decimal separator, or replace the decimal commas by points",
            )
        return None, (
            f"expected 7 columns (id type x y z radius parent), found {len(fields)}",
            "each data line needs exactly 7 fields",
        )
    bad = next((f for f in fields if not _is_float(f)), None)
    if bad is not None:
        return None, (f"non-numeric field {bad!r}", "every field must be a number")
    vals: list = [float(f) for f in fields]
    nonfinite = [_COLUMNS[i] for i, v in enumerate(vals) if not math.isfinite(v)]
    if nonfinite:
        return None, (f"non-finite value in {', '.join(nonfinite)}", "replace NaN/inf by a real number")
    nonint = [_COLUMNS[i] for i in (0, 1, 6) if _whole(fields[i]) is None]
    if nonint:
        return None, (f"{', '.join(nonint)} must be an integer", "ids, types and parents are whole numbers")
    for i in (0, 1, 6):
        vals[i] = _whole(fields[i])
    huge = [f"{_COLUMNS[i]} {fields[i]}" for i in (0, 1, 6) if abs(vals[i]) > MAX_ID]
    if huge:
        return None, (
            f"{', '.join(huge)} out of range (ids, types and parents must be at most {MAX_ID})",
            "ids and parents number the nodes, usually 1, 2, 3...: fix the number",
        )
    if vals[0] < 0:
        return None, (f"negative id {vals[0]}", "ids are whole numbers >= 0 (usually 1, 2, 3...)")
    if vals[1] < 0:
        return None, (
            f"negative type {vals[1]}",
            "types are whole numbers >= 0: 0 undefined, 1 soma, 2 axon, 3 basal dendrite, "
            "4 apical dendrite, 5 and above custom",
        )
    if vals[6] < -1:
        return None, (
            f"parent {vals[6]} is not a node id",
            "a parent is the id of another node, or -1 for a root",
        )
    far = [f"{_COLUMNS[i]} {vals[i]:g}" for i in range(2, 6) if abs(vals[i]) > MAX_COORDINATE]
    if far:
        return None, (
            f"{', '.join(far)} beyond {MAX_COORDINATE:g} (about 10 m in micrometres)",
            _UNIT_HINT,
        )
    if vals[5] < 0:
        return None, (f"negative radius {vals[5]:g}", "radii must be >= 0")
    return vals, None


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _structure(t: _Table, problems: list[Problem]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Map parent ids to indices and check the tree structure.

    Returns the parent index array (``-1`` for roots and for unresolved parents) and a
    mask of rows to keep (duplicates after the first, cycle members are dropped).
    """
    n = t.ids.size
    keep = np.ones(n, dtype=bool)
    order = np.argsort(t.ids, kind="stable")
    sids = t.ids[order]
    dup = np.r_[False, sids[1:] == sids[:-1]]
    if dup.any():
        for k in np.flatnonzero(dup)[:_MAX_SHOWN]:
            row, firstrow = order[k], order[np.searchsorted(sids, sids[k])]
            same = (
                t.types[row] == t.types[firstrow]
                and np.array_equal(t.xyz[row], t.xyz[firstrow])
                and t.radius[row] == t.radius[firstrow]
                and t.parent_ids[row] == t.parent_ids[firstrow]
            )
            problems.append(
                Problem(
                    int(t.line_numbers()[row]),
                    f"duplicate id {int(sids[k])} (first on line {int(t.line_numbers()[firstrow])})"
                    + (", an exact repeat" if same else ""),
                    "remove the repeated line" if same else "give every node its own id",
                    fixable=same,
                )
            )
        keep[order[dup]] = False
    is_root = t.parent_ids < 0
    pos = np.searchsorted(sids, t.parent_ids)
    pos = np.minimum(pos, max(n - 1, 0))
    found = (sids[pos] == t.parent_ids) if n else np.zeros(0, dtype=bool)
    parent = np.where(is_root | ~found, -1, order[pos])
    missing = ~is_root & ~found
    if t.rejected_ids:  # the parent's own line was rejected and reported: no cascade
        missing &= ~np.isin(t.parent_ids, np.fromiter(t.rejected_ids, dtype=np.int64))
    for row in np.flatnonzero(missing)[:_MAX_SHOWN]:
        problems.append(
            Problem(
                int(t.line_numbers()[row]),
                f"node {int(t.ids[row])} has parent {int(t.parent_ids[row])}, which does not exist",
                "fix the parent id, or set it to -1 to make the node a root",
                fixable=True,
            )
        )
    _more(problems, int(missing.sum()), "missing parents")
    selfp = ~is_root & (t.parent_ids == t.ids)
    for row in np.flatnonzero(selfp)[:_MAX_SHOWN]:
        problems.append(
            Problem(
                int(t.line_numbers()[row]),
                f"node {int(t.ids[row])} is its own parent",
                "set its parent to the node it hangs from, or -1 for a root",
                fixable=True,
            )
        )
    _more(problems, int(selfp.sum()), "self-parents")
    parent[selfp] = -1
    # duplicates point nowhere
    parent[~keep] = -1
    refs_dropped = (parent >= 0) & ~keep[np.maximum(parent, 0)]
    parent[refs_dropped] = -1
    cyc = _tree.nodes_in_cycles(parent)
    if cyc.any():
        rows = np.flatnonzero(cyc)
        problems.append(
            Problem(
                int(t.line_numbers()[rows].min()),
                f"the parent links of {rows.size} node(s) form a cycle "
                f"(ids {', '.join(str(int(i)) for i in t.ids[rows][:8])}{'...' if rows.size > 8 else ''})",
                "every chain of parents must end at a root with parent -1",
            )
        )
        keep &= ~cyc
    return parent, keep


def _more(problems: list[Problem], count: int, what: str) -> None:
    if count > _MAX_SHOWN:
        problems.append(Problem(None, f"... and {count - _MAX_SHOWN} more {what}"))


_CONVERT_HINT = (
    "morph reads SWC only: convert the file to SWC first, e.g. with MorphIO's converter: "
    "pip install morph-tool, then morph-tool convert file IN OUT.swc"
)


def _utf16(data: bytes) -> bytes | None:
    """UTF-16 text (with a byte-order mark, or ASCII text with every other byte NUL) as
    UTF-8, or ``None`` when ``data`` is not UTF-16."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        enc = "utf-16"
    else:
        head = data[:512]
        if len(head) < 8 or len(head) % 2:
            return None

        def ascii_text(b: bytes) -> bool:
            return all(9 <= c < 127 for c in b)

        if head[1::2].count(0) == len(head) // 2 and ascii_text(head[0::2]):
            enc = "utf-16-le"
        elif head[0::2].count(0) == len(head) // 2 and ascii_text(head[1::2]):
            enc = "utf-16-be"
        else:
            return None
    try:
        return data.decode(enc).lstrip("\ufeff").encode("utf-8")
    except UnicodeDecodeError:
        return None


def _foreign_format(data: bytes) -> Problem | None:
    """Another reconstruction (or container) format, recognised from its first bytes."""
    if data.startswith(b"\x89HDF\r\n\x1a\n"):
        return Problem(None, "file is HDF5, not SWC text: an .h5 morphology?", _CONVERT_HINT)
    if data.startswith(b"\x1f\x8b"):
        return Problem(
            None,
            "file is gzip-compressed, not SWC text",
            "decompress it with gunzip and give the result; an SNT .traces file is compressed XML: "
            "export SWC from SNT instead",
        )
    first = next((ln.strip() for ln in data[:65536].splitlines() if ln.strip()), b"")
    if first.startswith((b";", b"(")):
        return Problem(None, "file is in Neurolucida ASC format, not SWC", _CONVERT_HINT)
    if first.startswith(b"// NeuronJ"):
        return Problem(
            None,
            "file is a NeuronJ tracing (.ndf), not SWC",
            "open it in Fiji's SNT, which imports NeuronJ tracings, and save it as SWC",
        )
    if first.startswith(b"<"):
        return Problem(
            None,
            "file is XML, not SWC text: NeuroML, a Knossos .nml or an SNT .traces file?",
            "export the reconstruction as SWC from the program that made it",
        )
    if first.startswith((b"{", b"[")):
        return Problem(
            None, "file is JSON, not SWC text", "export the reconstruction as SWC from the program that made it"
        )
    return None


def _analyse(path: PathLike) -> tuple[_Table, list[Problem], bytes]:
    data = _read_bytes(path)
    problems: list[Problem] = []
    if not data or data.isspace():
        problems.append(Problem(None, "file is empty", "an SWC file needs at least one node line"))
        return _slow_table(b"", []), problems, data
    data = _utf16(data) or data
    foreign = _foreign_format(data)
    if foreign is not None:
        problems.append(foreign)
        return _slow_table(b"", []), problems, data
    b = _binary_problem(data, path)
    if b is not None:
        problems.append(b)
        return _slow_table(b"", []), problems, data
    table = _fast_table(data)
    if table is None:
        table = _slow_table(data, problems)
    if table.ids.size == 0 and not problems:
        problems.append(
            Problem(None, "no node lines, only comments", "an SWC file needs at least one node line")
        )
    return table, problems, data


def validate_swc(path: PathLike) -> SWCReport:
    """Check an SWC file and report every problem found (not just the first).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    SWCReport
        ``problems``: what makes the file unreadable, each with its line; ``warnings``:
        what is legal but often unintended (several separate trees, no soma node).

    Raises
    ------
    SWCError
        When the file cannot be read at all (missing, a folder, no permission).
    """
    table, problems, _ = _analyse(path)
    warnings: list[Problem] = []
    if table.ids.size:
        _, keep = _structure(table, problems)
        warnings = _warnings(table, keep)
    return SWCReport(str(path), problems, warnings)


def _warnings(t: _Table, keep: NDArray[np.bool_]) -> list[Problem]:
    """Legal but often unintended: several trees, no soma."""
    out = []
    roots = np.flatnonzero((t.parent_ids < 0) & keep)
    if roots.size > 1:
        lines = t.line_numbers()[roots]
        shown = ", ".join(str(int(x)) for x in lines[:5]) + (", ..." if roots.size > 5 else "")
        out.append(
            Problem(
                None,
                f"{roots.size} separate trees (roots, parent -1, on lines {shown})",
                "fine for fragments or several cells; for one cell, connect them with morph edit --join, "
                "since per-cell measures treat all trees as one cell",
            )
        )
    if not (t.types[keep] == 1).any():
        out.append(
            Problem(
                None,
                "no soma (no node of type 1)",
                "fine for an axon or a fragment traced alone; "
                "features measured from the soma are then not computed",
            )
        )
    return out


def _to_morphology(
    t: _Table, parent: NDArray[np.int64], keep: NDArray[np.bool_], path: PathLike
) -> Morphology:
    if not keep.all():
        idx = np.flatnonzero(keep)
        remap = np.full(keep.size, -1, dtype=np.int64)
        remap[idx] = np.arange(idx.size)
        p = parent[idx]
        parent = np.where(p >= 0, remap[np.maximum(p, 0)], -1)
        t = _Table(t.ids[idx], t.types[idx], t.xyz[idx], t.radius[idx], t.parent_ids[idx], None, t.header)
    return Morphology(
        t.xyz,
        t.radius,
        t.types,
        parent,
        t.ids,
        name=Path(path).stem,
        source=str(path),
        header=t.header,
        check=False,  # _structure has checked parents, self-parents and cycles
        **_header_meta(t.header),
    )


def _header_meta(header: Sequence[str]) -> dict:
    meta: dict = {}
    for line in header:
        low = line.lower()
        if low.startswith("units:") or low.startswith("units "):
            words = (line.split(":", 1)[-1] if ":" in line else line[5:]).split()
            if words:  # "# units:" with nothing after declares nothing
                meta["units"] = "voxel" if words[0].lower().startswith("vox") else "um"
        if low.startswith("voxel_size"):
            try:
                vals = [float(v) for v in re.findall(r"[-+0-9.eE]+", line.split(":", 1)[-1])][:3]
            except ValueError:
                continue
            if len(vals) == 3 and all(v > 0 for v in vals):
                meta["voxel_size"] = tuple(vals)
    return meta


def header_units(header: Sequence[str]) -> str | None:
    """The units a file's header declares (``"um"`` or ``"voxel"``), ``None`` when it
    declares none."""
    return _header_meta(header).get("units")


def read_swc(path: PathLike) -> Morphology:
    """Read an SWC file.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    Morphology
        Nodes in a parent-before-child order, original ids kept in ``ids``.

    Raises
    ------
    SWCError
        On the first problem found, naming the file and line. Use :func:`validate_swc` to
        list every problem.
    """
    table, problems, _ = _analyse(path)
    if problems:
        _raise(path, problems)
    parent, keep = _structure(table, problems)
    if problems:
        _raise(path, problems)
    return _to_morphology(table, parent, keep, path)


def _raise(path: PathLike, problems: list[Problem]) -> None:
    p = problems[0]
    extra = f"; {len(problems) - 1} more problem(s): run `morph validate {path}`" if len(problems) > 1 else ""
    hint = (p.hint or "") + extra
    raise SWCError(p.message, file=path, line=p.line, hint=hint.strip("; ") or None)


def fix_swc(path: PathLike) -> tuple[Morphology, list[Problem]]:
    """Read a file, repairing what can be repaired without guessing.

    Repairs: ordering and ids (renumbered parents-first on writing), exact repeats of a
    line (dropped), a node that is its own parent or whose parent does not exist (made a
    root). Anything else (bad columns, non-numeric or non-finite values, negative radii,
    conflicting duplicate ids, cycles) is left for the user: :class:`SWCError`.

    Returns
    -------
    (Morphology, list of Problem)
        The repaired cell and the problems that were repaired, each with the repair made
        as its ``hint`` ("dropped", "made a root").
    """
    table, problems, _ = _analyse(path)
    if problems:
        _raise(path, problems)
    parent, keep = _structure(table, problems)
    unfixable = [p for p in problems if not p.fixable and not p.message.startswith("... and")]
    if unfixable:
        _raise(path, unfixable)
    done = [Problem(p.line, p.message, _repair_done(p.message), p.fixable) for p in problems]
    return _to_morphology(table, parent, keep, path), done


def _repair_done(message: str) -> str:
    """What :func:`fix_swc` did about a fixable problem."""
    if message.startswith("duplicate id"):
        return "repeat dropped"
    if message.startswith("..."):
        return "each made a root" if "parent" in message else ""
    return "made a root"


def format_swc(m: Morphology, *, precision: int = 6, extra_header: Sequence[str] = ()) -> str:
    """SWC text for ``m``: depth-first, parents before children, ids ``1..n``."""
    from morph import __version__

    r = m.renumber()
    head = [f"# written by morph {__version__}"]
    if m.source:
        head.append(f"# source: {m.source}")
    head.append(f"# units: {'voxel' if m.units == 'voxel' else 'um'}")
    if m.voxel_size is not None:
        head.append("# voxel_size (x y z, um): " + " ".join(f"{v:g}" for v in m.voxel_size))
    skip = ("written by morph", "source:", "units:", "voxel_size")
    columns = "id type x y z radius parent"
    head += [f"# {h}" for h in m.header if h and not h.lower().startswith(skip) and h != columns]
    head += [f"# {h}" for h in extra_header]
    head.append(f"# {columns}")
    n = len(r)
    pid = np.where(r.parent >= 0, r.parent + 1, -1)
    fmt = f"%d %d %.{precision}f %.{precision}f %.{precision}f %.{precision}f %d"
    buf = io.StringIO()
    table = np.column_stack([np.arange(1, n + 1), r.types, r.xyz, r.radius, pid])
    np.savetxt(buf, table, fmt=fmt)
    text = buf.getvalue()
    # strip trailing zeros of the fixed-point numbers to keep files small
    text = re.sub(r"(\.\d*?)0+(?=[ \n])", r"\1", text)
    text = re.sub(r"\.(?=[ \n])", "", text)
    return "\n".join(head) + "\n" + text


def write_swc(
    m: Morphology,
    path: PathLike,
    *,
    force: bool = False,
    precision: int = 6,
    extra_header: Sequence[str] = (),
) -> Path:
    """Write ``m`` as standard SWC, atomically (temporary file + rename).

    Raises :class:`morph.errors.OutputExistsError` when ``path`` exists and ``force`` is
    false.
    """
    from morph.io.atomic import atomic_write_text

    return atomic_write_text(path, format_swc(m, precision=precision, extra_header=extra_header), force=force)
