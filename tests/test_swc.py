"""SWC reading, writing, validation and repair, on real files and on broken ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morph.errors import SWCError
from morph.io import fix_swc, format_swc, read_swc, validate_swc, write_swc
from morph.morphology import Morphology

from conftest import real_swcs


def independent_parse(path: Path) -> dict[int, tuple[int, float, float, float, float, int]]:
    """A deliberately simple, separate reading of an SWC file (no numpy, no morph)."""
    nodes = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#")[0].replace(",", " ").strip()
        if not line:
            continue
        f = line.split()
        nodes[int(float(f[0]))] = (
            int(float(f[1])),
            float(f[2]),
            float(f[3]),
            float(f[4]),
            float(f[5]),
            int(float(f[6])),
        )
    return nodes


def independent_lengths(nodes: dict) -> dict[int, float]:
    """Cable length per type, leaving out soma nodes and soma-to-first-node edges."""
    out: dict[int, float] = {}
    for t, x, y, z, _r, p in nodes.values():
        if t == 1 or p not in nodes:
            continue
        pt, px, py, pz, _pr, _pp = nodes[p]
        if pt == 1:
            continue
        out[t] = out.get(t, 0.0) + math.dist((x, y, z), (px, py, pz))
    return out


@pytest.mark.parametrize("path", real_swcs(), ids=lambda p: p.name)
def test_every_real_swc_loads_and_matches_independent_count(path: Path) -> None:
    m = read_swc(path)
    ref = independent_parse(path)
    assert len(m) == len(ref)
    counts: dict[int, int] = {}
    for t, *_ in ref.values():
        counts[t] = counts.get(t, 0) + 1
    assert m.type_counts() == counts
    for t, length in independent_lengths(ref).items():
        assert m.total_length(t) == pytest.approx(length, rel=1e-9, abs=1e-9)
    # every parent before its child
    assert np.all(m.parent < np.arange(len(m)))


@pytest.mark.parametrize("path", real_swcs(), ids=lambda p: p.name)
def test_every_real_swc_round_trips(path: Path, tmp_path: Path) -> None:
    m = read_swc(path)
    out = write_swc(m, tmp_path / "out.swc")
    back = read_swc(out)
    r = m.renumber()
    assert np.array_equal(back.types, r.types)
    assert np.array_equal(back.parent, r.parent)
    assert np.allclose(back.xyz, r.xyz, atol=5e-7, rtol=0)
    assert np.allclose(back.radius, r.radius, atol=5e-7, rtol=0)
    # written file is standard: ids 1..N, parents first; a second round trip is exact
    again = tmp_path / "again.swc"
    write_swc(back, again)
    assert read_swc(again).xyz.tobytes() == back.xyz.tobytes()
    assert np.array_equal(back.ids, np.arange(1, len(m) + 1))


def test_write_refuses_to_overwrite(tmp_path: Path, data: Path) -> None:
    m = read_swc(data / "swc/small/neurom_simple.swc")
    p = tmp_path / "a.swc"
    write_swc(m, p)
    before = p.read_bytes()
    with pytest.raises(Exception, match="exists"):
        write_swc(m.translate([1, 0, 0]), p)
    assert p.read_bytes() == before
    write_swc(m.translate([1, 0, 0]), p, force=True)
    assert p.read_bytes() != before
    assert not list(tmp_path.glob(".*part*"))


def test_header_records_version_source_units(tmp_path: Path, data: Path) -> None:
    m = read_swc(data / "swc/small/neurom_simple.swc")
    text = format_swc(m._derive(voxel_size=(0.1, 0.1, 0.5)))
    assert text.startswith("# written by morph ")
    assert "# source: " in text and "# units: um" in text
    assert "# voxel_size (x y z, um): 0.1 0.1 0.5" in text
    p = tmp_path / "v.swc"
    p.write_text(text)
    assert read_swc(p).voxel_size == (0.1, 0.1, 0.5)


# ---------------------------------------------------------------- what real files contain
MESSY = """# a header
#   with comments

  1\t1  0 0 0  5 -1
3,3,0,1e1,0,1.5E-1,1     # inline comment
2 3 0 5 0 1 1

10 2 1 0 0 0.5 1
7 7 0 20 0 0.1 3
8 0 0 30 0 0.1 7
20 3 100 100 100 1 -1
21 3 100 110 100 1 20
30 2 0 -1e+1 0 2.5e-1 3
"""


def test_messy_but_valid_file(tmp_path: Path) -> None:
    p = tmp_path / "messy.swc"
    p.write_text(MESSY)
    m = read_swc(p)
    assert len(m) == 9
    assert m.roots.size == 2
    assert m.header[:2] == ["a header", "with comments"]
    i3 = m.index_of(3)
    assert m.xyz[i3].tolist() == [0.0, 10.0, 0.0]
    assert m.radius[i3] == pytest.approx(0.15)
    assert m.types[m.index_of(7)] == 7 and m.types[m.index_of(8)] == 0
    # an axon leaving a dendrite (node 30 hangs from dendrite node 3)
    assert m.parent[m.index_of(30)] == i3 and m.types[m.index_of(30)] == 2
    assert validate_swc(p).ok


def test_three_point_and_contour_soma(data: Path, tmp_path: Path) -> None:
    m = read_swc(data / "swc/small/neurom_three_pt_soma.swc")
    assert m.soma_kind == "three_point"
    assert m.soma_center.tolist() == [0, 0, 0] and m.soma_radius == 2.0
    contour = "\n".join(
        f"{i + 1} 1 {10 * math.cos(a):.6f} {10 * math.sin(a):.6f} 0 0.5 {i if i else -1}"
        for i, a in enumerate(np.linspace(0, 2 * math.pi, 8, endpoint=False))
    )
    contour += "\n9 3 0 20 0 1 1\n"
    p = tmp_path / "contour.swc"
    p.write_text(contour)
    c = read_swc(p)
    assert c.soma_kind == "multi_point"
    assert np.allclose(c.soma_center, 0, atol=1e-6)
    assert c.soma_radius == pytest.approx(10.0, rel=1e-6)


# ---------------------------------------------------------------- broken files
BROKEN = {
    "columns": ("1 1 0 0 0 1 -1\n2 3 0 1 0 1\n", 2, "expected 7 columns"),
    "nonnumeric": ("1 1 0 0 0 1 -1\n2 3 0 abc 0 1 1\n", 2, "non-numeric field 'abc'"),
    "nan": ("1 1 0 0 0 1 -1\n2 3 0 nan 0 1 1\n", 2, "non-finite value in y"),
    "inf": ("1 1 0 0 0 1 -1\n2 3 0 0 inf 1 1\n", 2, "non-finite value in z"),
    "negative_radius": ("1 1 0 0 0 1 -1\n2 3 0 1 0 -1 1\n", 2, "negative radius"),
    "duplicate": ("1 1 0 0 0 1 -1\n2 3 0 1 0 1 1\n2 3 0 2 0 1 1\n", 3, "duplicate id 2 (first on line 2)"),
    "missing_parent": ("1 1 0 0 0 1 -1\n2 3 0 1 0 1 9\n", 2, "parent 9, which does not exist"),
    "self_parent": ("1 1 0 0 0 1 -1\n2 3 0 1 0 1 2\n", 2, "is its own parent"),
    "cycle": ("1 1 0 0 0 1 -1\n2 3 0 1 0 1 3\n3 3 0 2 0 1 2\n", 2, "form a cycle"),
    "float_id": ("1 1 0 0 0 1 -1\n2.5 3 0 1 0 1 1\n", 2, "id must be an integer"),
    "empty": ("", None, "file is empty"),
    "only_comments": ("# nothing here\n", None, "no node lines"),
    "huge_coordinate": ("1 1 0 0 0 1 -1\n2 3 1e300 1 0 1 1\n", 2, "x 1e+300 beyond 1e+07"),
    "huge_radius": ("1 1 0 0 0 1 -1\n2 3 0 1 0 2e7 1\n", 2, "radius 2e+07 beyond 1e+07"),
    "huge_parent": ("1 1 0 0 0 1 -1\n2 3 0 1 0 1 1e20\n", 2, "parent 1e20 out of range"),
    "huge_ids": ("1e20 1 0 0 0 1 -1\n2e20 3 0 1 0 1 1e20\n", 1, "id 1e20 out of range"),
    "huge_int_id": ("99999999999999999999 1 0 0 0 1 -1\n", 1, "id 99999999999999999999 out of range"),
    "negative_id": ("1 1 0 0 0 1 -1\n-4 3 0 1 0 1 1\n", 2, "negative id -4"),
    "negative_type": ("1 1 0 0 0 1 -1\n2 -3 0 1 0 1 1\n", 2, "negative type -3"),
    "parent_below_minus_one": ("1 1 0 0 0 1 -1\n2 3 0 1 0 1 -2\n", 2, "parent -2 is not a node id"),
    "decimal_comma": ("1 1 0 0 0 5 -1\n2 3 0 1,5 0 0,5 1\n", 2, "decimal comma in '1,5'"),
    "neurolucida_asc": (
        ';\tV3 text file\n(ImageCoords)\n("CellBody"\n  (1 2 3 0.5)\n)\n',
        None,
        "file is in Neurolucida ASC format, not SWC",
    ),
    "neuronj": ("// NeuronJ Data File - DO NOT CHANGE\n1.4.3\n", None, "file is a NeuronJ tracing"),
    "xml": ('<?xml version="1.0"?>\n<neuroml>\n</neuroml>\n', None, "file is XML, not SWC text"),
    "json": ('{"nodes": []}\n', None, "file is JSON, not SWC"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_raises_precise_error(case: str, tmp_path: Path) -> None:
    text, line, msg = BROKEN[case]
    p = tmp_path / f"{case}.swc"
    p.write_text(text)
    with pytest.raises(SWCError) as ei:
        read_swc(p)
    e = ei.value
    assert msg in e.message
    assert e.file == str(p)
    assert e.line == line
    assert e.hint  # says what to do
    assert str(p) in str(e)


def test_binary_garbage(tmp_path: Path) -> None:
    p = tmp_path / "garbage.swc"
    p.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(SWCError, match="binary"):
        read_swc(p)
    # an image given where a reconstruction is expected is named as one
    tif = tmp_path / "stack.swc"
    tif.write_bytes(b"II*\x00" + bytes(200))
    with pytest.raises(SWCError, match="file is a TIFF image, not an SWC reconstruction"):
        read_swc(tif)
    nd2 = tmp_path / "cell.nd2"
    nd2.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SWCError, match="file is a Nikon ND2 image, not an SWC reconstruction"):
        read_swc(nd2)


def test_other_binary_formats_are_named(tmp_path: Path) -> None:
    h5 = tmp_path / "cell.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(SWCError, match="file is HDF5, not SWC text") as ei:
        read_swc(h5)
    assert "morph-tool convert" in ei.value.hint
    gz = tmp_path / "cell.swc.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))
    with pytest.raises(SWCError, match="gzip-compressed"):
        read_swc(gz)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(SWCError, match="file not found"):
        read_swc(tmp_path / "nope.swc")
    with pytest.raises(SWCError, match="folder"):
        read_swc(tmp_path)


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    p = tmp_path / "many.swc"
    p.write_text(
        "1 1 0 0 0 1 -1\n"
        "2 3 0 1 0 1\n"  # columns
        "3 3 0 x 0 1 1\n"  # non-numeric
        "4 3 0 1 0 -2 1\n"  # negative radius
        "5 3 0 1 0 1 77\n"  # missing parent
        "6 3 0 1 0 1 6\n"  # self parent
    )
    report = validate_swc(p)
    lines = sorted(pr.line for pr in report.problems if pr.line)
    assert lines == [2, 3, 4, 5, 6]


def test_fix_repairs_only_unambiguous(tmp_path: Path) -> None:
    p = tmp_path / "fixable.swc"
    p.write_text("5 3 0 2 0 1 2\n2 1 0 0 0 1 -1\n5 3 0 2 0 1 2\n9 3 0 3 0 1 42\n11 3 0 4 0 1 11\n")
    m, repaired = fix_swc(p)
    assert len(m) == 4
    assert len(repaired) == 3
    assert m.roots.size == 3  # soma, the orphan, the self-parent
    bad = tmp_path / "unfixable.swc"
    bad.write_text("1 1 0 0 0 1 -1\n2 3 0 1 0 -1 1\n")
    with pytest.raises(SWCError, match="negative radius"):
        fix_swc(bad)


# ---------------------------------------------------------------- property-based
@st.composite
def random_trees(draw: st.DrawFn) -> Morphology:
    n = draw(st.integers(1, 60))
    parents = [-1] + [draw(st.integers(-1 if k > 3 else 0, k - 1)) for k in range(1, n)]
    coords = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
    xyz = [[draw(coords), draw(coords), draw(coords)] for _ in range(n)]
    radius = [draw(st.floats(0, 50, allow_nan=False, width=32)) for _ in range(n)]
    types = [draw(st.sampled_from([0, 1, 2, 3, 4, 7])) for _ in range(n)]
    ids = draw(st.permutations(list(range(1, 3 * n + 1)))).__getitem__(slice(0, n))
    return Morphology(xyz, radius, types, parents, ids)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(random_trees())
def test_random_valid_trees_round_trip(tmp_path: Path, m: Morphology) -> None:
    # write in a shuffled order with the original ids, read back: same tree
    order = np.random.default_rng(0).permutation(len(m))
    pid = np.where(m.parent >= 0, m.ids[np.maximum(m.parent, 0)], -1)
    lines = [
        f"{m.ids[i]} {m.types[i]} {float(m.xyz[i, 0])!r} {float(m.xyz[i, 1])!r} {float(m.xyz[i, 2])!r} {float(m.radius[i])!r} {pid[i]}"
        for i in order
    ]
    p = tmp_path / "rand.swc"
    p.write_text("\n".join(lines) + "\n")
    back = read_swc(p)
    assert len(back) == len(m)
    a, b = m.renumber(), back.renumber()
    assert np.array_equal(a.parent, b.parent)
    assert np.array_equal(a.xyz, b.xyz)
    out = tmp_path / "w.swc"
    write_swc(back, out, force=True, precision=6)
    again = read_swc(out)
    assert np.array_equal(again.parent, b.parent)
    assert np.allclose(again.xyz, b.xyz, atol=5e-7 + 1e-12 * np.abs(b.xyz).max())


_CORRUPTIONS = st.sampled_from(
    ["drop_field", "add_field", "letter", "nan", "neg_radius", "dup", "parent", "self", "bytes"]
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=_CORRUPTIONS, which=st.integers(0, 10_000), seed=st.integers(0, 2**16))
def test_random_corruptions_of_real_file_raise_swc_error(
    tmp_path: Path, kind: str, which: int, seed: int
) -> None:
    src = real_swcs()[which % len(real_swcs())]
    lines = src.read_text().splitlines()
    data_rows = [k for k, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    k = data_rows[seed % len(data_rows)]
    f = lines[k].split()
    if kind == "drop_field":
        f = f[:-1]
    elif kind == "add_field":
        f = f + ["3"]
    elif kind == "letter":
        f[2] = "x" + f[2]
    elif kind == "nan":
        f[3] = "nan"
    elif kind == "neg_radius":
        f[5] = "-1"
    elif kind == "dup":
        lines.insert(k + 1, " ".join(f[:2] + ["999"] + f[3:]))
    elif kind == "parent":
        f[6] = "987654321"
    elif kind == "self":
        f[6] = f[0]
    elif kind == "bytes":
        lines[k] = "\x00\x01\x02garbage"
    if kind not in ("dup", "bytes"):
        lines[k] = " ".join(f)
    p = tmp_path / "corrupt.swc"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(SWCError) as ei:
        read_swc(p)
    if kind != "bytes":
        assert ei.value.line is not None


def test_written_files_get_the_usual_permissions(tmp_path: Path, data: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        p = write_swc(read_swc(data / "swc/small/neurom_simple.swc"), tmp_path / "perm.swc")
    finally:
        os.umask(mask)
    assert (p.stat().st_mode & 0o777) == 0o644


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    """Windows editors and Excel write a UTF-8 byte-order mark: the file reads as without it,
    its first comment line included, and an error still names the right line."""
    text = "# made on Windows\n1 1 0 0 0 2 -1\n2 3 5 0 0 1 1\n3 3 9 0 0 1 2\n"
    plain, bom = tmp_path / "plain.swc", tmp_path / "bom.swc"
    plain.write_text(text)
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    a, b = read_swc(plain), read_swc(bom)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.parent, b.parent)
    assert "made on Windows" in b.header
    bad = tmp_path / "bad.swc"
    bad.write_bytes(b"\xef\xbb\xbf1 1 0 0 0 2 -1\n2 3 5 0 0\n")
    with pytest.raises(SWCError, match=r"bad\.swc:2:"):
        read_swc(bad)


# ---------------------------------------------------------------- bounds, cascades, encodings, warnings
def test_coordinate_bound_is_inclusive_and_names_the_units(tmp_path: Path) -> None:
    """|value| up to :data:`MAX_COORDINATE` reads; beyond it the error names the likely
    unit mix-up and what to do."""
    from morph.io.swc import MAX_COORDINATE

    ok = tmp_path / "ok.swc"
    ok.write_text(f"1 1 0 0 0 1 -1\n2 3 {-MAX_COORDINATE:g} 0 0 1 1\n")
    assert read_swc(ok).xyz[1, 0] == -MAX_COORDINATE
    nm = tmp_path / "nm.swc"
    nm.write_text("1 1 0 0 0 1 -1\n2 3 0 0 12345678 1 1\n")
    with pytest.raises(SWCError) as ei:
        read_swc(nm)
    assert ei.value.line == 2 and "z 1.23457e+07" in ei.value.message
    assert "nanometres" in ei.value.hint and "divide" in ei.value.hint


def test_large_files_take_the_same_checks(tmp_path: Path) -> None:
    """A file past the fast path's size limit (read by pandas) is checked as strictly."""
    rows = [f"{k} 3 {k}.5 0 0 1 {k - 1 if k > 1 else -1}" for k in range(1, 3001)]
    for k, bad in (
        (1500, "1500 3 1e12 0 0 1 1499"),
        (2000, "2000 3 1.5 0 0 1 1e20"),
        (2500, "2500 -2 1.5 0 0 1 2499"),
    ):
        text = "\n".join(rows[: k - 1] + [bad] + rows[k:]) + "\n"
        assert len(text) > 24_000
        p = tmp_path / "big.swc"
        p.write_text(text)
        with pytest.raises(SWCError) as ei:
            read_swc(p)
        assert ei.value.line == k


@pytest.mark.parametrize(
    "bad",
    [
        "3 3 0 x 0 1 2",
        "3 3 0 nan 0 1 2",
        "3 3 0 20 0 -1 2",
        "3 3 0 20 0",
        "3 3 1e30 20 0 1 2",
        "3 -1 0 20 0 1 2",
    ],
)
def test_children_of_a_rejected_line_are_not_reported_as_orphans(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "casc.swc"
    p.write_text(f"1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n{bad}\n4 3 5 30 0 1 3\n5 3 -5 30 0 1 3\n6 3 0 9 0 1 77\n")
    report = validate_swc(p)
    assert [pr.line for pr in report.problems] == [3, 6]  # the bad line, and the real orphan
    assert "parent 77" in report.problems[1].message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_is_read(tmp_path: Path, encoding: str) -> None:
    text = "# from a Windows tool\n1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n"
    p = tmp_path / "u16.swc"
    p.write_bytes(text.encode(encoding))
    m = read_swc(p)
    assert len(m) == 3 and m.header == ["from a Windows tool"]
    bad = tmp_path / "bad16.swc"
    bad.write_bytes("1 1 0 0 0 5 -1\n2 3 0 10 0\n".encode(encoding))
    with pytest.raises(SWCError, match="expected 7 columns") as ei:
        read_swc(bad)
    assert ei.value.line == 2


def test_several_trees_and_no_soma_are_warnings(tmp_path: Path) -> None:
    g = "1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n"
    multi = tmp_path / "multi.swc"
    multi.write_text(g + "8 3 100 100 0 1 -1\n9 3 100 110 0 1 8\n")
    r = validate_swc(multi)
    assert r.ok and [w.message for w in r.warnings] == ["2 separate trees (roots, parent -1, on lines 1, 4)"]
    axon = tmp_path / "axon.swc"
    axon.write_text("1 2 0 0 0 1 -1\n2 2 0 10 0 1 1\n")
    r = validate_swc(axon)
    assert r.ok and [w.message for w in r.warnings] == ["no soma (no node of type 1)"]
    assert read_swc(axon).roots.size == 1
    one = tmp_path / "one.swc"
    one.write_text(g)
    assert validate_swc(one).warnings == []


def test_real_files_stay_valid(data: Path) -> None:
    """Every real reconstruction validates without problems (warnings allowed: the Allen
    cell with 84 trees, the DIADEM axons without soma)."""
    files = real_swcs() + sorted(data.glob("images/diadem_OP/*.gold.swc"))
    assert len(files) > 30
    for f in files:
        assert validate_swc(f).problems == [], f
    assert len(validate_swc(data / "swc/allen/bmtk_485184849_reconstruction.swc").warnings) == 1


def test_fix_reports_the_repair_made(tmp_path: Path) -> None:
    p = tmp_path / "fixable.swc"
    p.write_text("1 1 0 0 0 5 -1\n2 3 0 1 0 1 1\n2 3 0 1 0 1 1\n5 3 0 2 0 1 99\n")
    _, repaired = fix_swc(p)
    assert [(r.line, r.hint) for r in repaired] == [(3, "repeat dropped"), (4, "made a root")]


def test_column_header_written_once(tmp_path: Path) -> None:
    p = tmp_path / "a.swc"
    p.write_text("1 1 0 0 0 5 -1\n2 3 0 1 0 1 1\n")
    for k in range(3):
        q = tmp_path / f"r{k}.swc"
        write_swc(read_swc(p), q)
        p = q
    assert p.read_text().count("# id type x y z radius parent") == 1


def test_empty_units_header_declares_nothing(tmp_path: Path) -> None:
    p = tmp_path / "u.swc"
    p.write_text("# units:\n1 1 0 0 0 5 -1\n")
    assert read_swc(p).units == "um"
