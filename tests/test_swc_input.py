"""Bad SWC input and bad options through ``morph validate`` and ``morph convert``: clear
messages, the right exit code, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from morph.cli.main import main
from morph.io import read_swc

G = "1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n4 3 5 30 0 1 3\n5 3 -5 30 0 1 3\n6 2 0 -10 0 1 1\n7 2 0 -20 0 1 6\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def g(tmp_path: Path) -> Path:
    p = tmp_path / "g.swc"
    p.write_text(G)
    return p


def test_huge_coordinate_is_refused_by_every_reader(
    g: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.swc"
    big.write_text(G.replace("4 3 5 30", "4 3 1e300 30"))
    rc, out, _ = run(["validate", str(big)], capsys)
    assert rc == 1 and f"{big}:4: x 1e+300 beyond 1e+07" in out and "unit mix-up" in out
    rc, out, err = run(["info", "--json", str(big)], capsys)
    assert rc == 2 and out == "" and "Infinity" not in err and f"{big}:4:" in err
    rc, _, err = run(["convert", str(big), "-o", str(tmp_path / "c.swc")], capsys)
    assert rc == 2 and not (tmp_path / "c.swc").exists()


def test_out_of_range_ids_and_parents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "ids.swc"
    p.write_text(G.replace("4 3 5 30 0 1 3", "4 3 5 30 0 1 1e20"))
    rc, out, err = run(["validate", str(p)], capsys)
    assert rc == 1 and f"{p}:4: parent 1e20 out of range" in out and "Warning" not in err
    q = tmp_path / "ids2.swc"
    q.write_text("1e20 1 0 0 0 5 -1\n2e20 3 0 10 0 1 1e20\n")
    rc, out, _ = run(["validate", str(q)], capsys)
    assert (
        rc == 1 and "-9223372036854775808" not in out and f"{q}:2: id 2e20, parent 1e20 out of range" in out
    )


def test_validate_checks_every_file_and_exits_with_the_worst(
    g: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dup = tmp_path / "dupid.swc"
    dup.write_text(G + "3 3 9 9 9 1 2\n")
    missing = tmp_path / "nonexist.swc"
    rc, out, err = run(["validate", str(g), str(missing), str(dup)], capsys)
    assert rc == 2
    assert f"{g}: ok" in out and f"{missing}: file not found" in out and f"{dup}:8: duplicate id 3" in out
    assert "2 of 3 file(s) have problems" in err
    rc, out, _ = run(["validate", str(dup), str(g)], capsys)
    assert rc == 1 and f"{g}: ok" in out


def test_validate_warns_about_several_trees_and_no_soma(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "multi.swc"
    p.write_text(G + "8 3 100 100 0 1 -1\n9 3 100 110 0 1 8\n")
    rc, out, _ = run(["validate", str(p)], capsys)
    assert (
        rc == 0 and f"{p}: warning: 2 separate trees" in out and out.strip().endswith(f"{p}: ok, 1 warning")
    )
    q = tmp_path / "axon.swc"
    q.write_text("1 2 0 0 0 1 -1\n2 2 0 10 0 1 1\n")
    rc, out, _ = run(["validate", str(q)], capsys)
    assert rc == 0 and f"{q}: warning: no soma" in out


@pytest.mark.parametrize(
    ("old", "new", "msg"),
    [
        ("4 3 5 30 0 1 3", "4 3 5 30 0 1 -2", "parent -2 is not a node id"),
        ("4 3 5", "4 -3 5", "negative type -3"),
    ],
)
def test_bad_parent_and_type_are_errors(
    old: str, new: str, msg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "bad.swc"
    p.write_text(G.replace(old, new))
    rc, out, _ = run(["validate", str(p)], capsys)
    assert rc == 1 and f"{p}:4: {msg}" in out
    rc, _, err = run(["info", str(p)], capsys)
    assert rc == 2 and msg in err and "custom_-3" not in err


def test_no_orphan_cascade_after_a_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.swc"
    p.write_text(G.replace("3 3 0 20 0 1 2", "3 3 0 nan 0 1 2"))
    rc, out, _ = run(["validate", str(p)], capsys)
    assert rc == 1 and out.splitlines() == [
        f"{p}:3: non-finite value in y (replace NaN/inf by a real number)"
    ]


def test_neurolucida_file_is_named(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asc = data / "swc/other/neurom_bio_neuron-001.asc"
    rc, _, err = run(["convert", str(asc), "-o", str(tmp_path / "a.swc")], capsys)
    assert rc == 2 and "Neurolucida ASC format, not SWC" in err and "morph-tool convert" in err
    assert "columns" not in err and not (tmp_path / "a.swc").exists()


def test_encoding_and_decimal_comma(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    u16 = tmp_path / "u16.swc"
    u16.write_bytes(G.encode("utf-16"))
    rc, out, _ = run(["info", "--json", str(u16)], capsys)
    assert rc == 0 and json.loads(out)["nodes"] == 7
    comma = tmp_path / "comma.swc"
    comma.write_text(G.replace("1 1 0 0 0 5 -1", "1 1 0 0 0 5,5 -1"))
    rc, out, _ = run(["validate", str(comma)], capsys)
    assert rc == 1 and f"{comma}:1: decimal comma in '5,5'" in out and "found 8" not in out


@pytest.mark.parametrize(
    ("option", "msg"),
    [
        (["--precision", "-3"], "argument --precision: expected 0 to 15 decimals"),
        (["--precision", "x"], "argument --precision: expected a whole number"),
        (["--resample", "0"], "argument --resample: expected a positive number, got '0'"),
        (["--resample", "-1"], "argument --resample: expected a positive number, got '-1'"),
        (["--resample", "1e-9"], "--resample 1e-09 would create about 6.24e+10 nodes"),
    ],
)
def test_convert_refuses_bad_options(
    option: list[str], msg: str, g: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.swc"
    rc, _, err = run(["convert", str(g), "-o", str(out), *option], capsys)
    assert rc == 2 and msg in err and "internal error" not in err and not out.exists()


def test_convert_resamples_a_soma_only_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = tmp_path / "s.swc"
    s.write_text("1 1 0 0 0 5 -1\n")
    rc, _, err = run(["convert", str(s), "-o", str(tmp_path / "o.swc"), "--resample", "1"], capsys)
    assert rc == 0, err
    assert len(read_swc(tmp_path / "o.swc")) == 1


def test_convert_refuses_to_convert_units_twice(
    g: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    um = tmp_path / "tu.swc"
    rc, _, _ = run(["convert", str(g), "-o", str(um), "--to-um", "--voxel", "0.5", "0.5", "2"], capsys)
    assert rc == 0 and "# units: um" in um.read_text()
    rc, _, err = run(["convert", str(um), "-o", str(tmp_path / "tu2.swc"), "--to-um"], capsys)
    assert rc == 2 and "already in micrometres" in err and not (tmp_path / "tu2.swc").exists()
    vox = tmp_path / "tv.swc"
    rc, _, _ = run(["convert", str(um), "-o", str(vox), "--to-voxel"], capsys)
    assert rc == 0 and read_swc(vox).units == "voxel"
    rc, _, err = run(["convert", str(vox), "-o", str(tmp_path / "tv2.swc"), "--to-voxel"], capsys)
    assert rc == 2 and "already in voxels" in err


def test_round_trips_keep_one_column_header(
    g: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = g
    for k in range(3):
        dst = tmp_path / f"r{k}.swc"
        assert run(["convert", str(src), "-o", str(dst)], capsys)[0] == 0
        src = dst
    assert src.read_text().count("# id type x y z radius parent") == 1


def test_validate_output_needs_fix(g: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "y.swc"
    rc, _, err = run(["validate", str(g), "-o", str(out)], capsys)
    assert rc == 2 and "-o needs --fix" in err and not out.exists()


def test_fix_records_the_repair_and_checks_the_output_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "orphan.swc"
    src.write_text(G.replace("5 3 -5 30 0 1 3", "5 3 -5 30 0 1 99"))
    out = tmp_path / "fixed.swc"
    rc, _, err = run(["validate", "--fix", str(src), "-o", str(out)], capsys)
    assert rc == 0
    assert "# repaired: line 5: node 5 has parent 99, which does not exist: made a root" in out.read_text()
    assert "set it to -1" not in out.read_text()
    rc, stdout, err = run(["validate", "--fix", str(src), "-o", str(out)], capsys)
    assert rc == 2 and "output exists" in err and "repaired" not in err + stdout


def test_converting_units_drops_the_stale_coordinates_line(tmp_path: Path) -> None:
    src = tmp_path / "traced.swc"
    src.write_text("# coordinates: micrometres, x = column, y = row, z = slice\n# units: um\n"
                   "1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n")
    out = tmp_path / "vox.swc"
    assert main(["convert", str(src), "-o", str(out), "--to-voxel", "--voxel", "0.5", "0.5", "2"]) == 0
    text = out.read_text()
    assert "coordinates: micrometres" not in text and "# units: voxel" in text
