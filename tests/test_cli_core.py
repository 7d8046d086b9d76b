"""The CLI's foundation: version, info, validate, convert; messages and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from test_swc import BROKEN

from morph import __version__
from morph.cli.main import main
from morph.io import read_swc


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_version_via_console_script() -> None:
    r = subprocess.run([sys.executable, "-m", "morph.cli.main", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"morph {__version__}"


def test_info_swc_and_stack(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["info", "--json", str(data / "swc/allen/bmtk_Rorb_325404214_m.swc")], capsys)
    assert rc == 0
    d = json.loads(out)
    m = read_swc(data / "swc/allen/bmtk_Rorb_325404214_m.swc")
    assert d["nodes"] == len(m)
    assert d["length_per_compartment"]["apical_dendrite"] == pytest.approx(m.total_length(4), abs=1e-3)
    assert d["soma"]["kind"] == "single_point"
    rc, out, _ = run(["info", str(data / "images/patchseq_brightfield/Example_Input_Stack_2112.tif")], capsys)
    assert rc == 0 and "polarity_guess: brightfield" in out and "shape_zyx: [32, 192, 192]" in out


def test_info_of_a_stack_with_nan_voxels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = np.full((4, 30, 30), 190.0, np.float32)
    a[:, 15, 5:25] = 60.0  # a dark neurite
    a[0, :5, :5] = np.nan
    f = tmp_path / "holes.tif"
    tifffile.imwrite(f, a, imagej=True, metadata={"axes": "ZYX"})
    rc, out, _ = run(["info", "--json", str(f)], capsys)
    d = json.loads(out)
    assert rc == 0 and d["intensity"] == {"min": 60.0, "median": 190.0, "max": 190.0}
    assert d["polarity_guess"] == "brightfield" and d["non_finite_voxels"] == "25 NaN or infinite of 3600 read"


def test_info_of_a_folder_summarises_each_stack_or_reconstruction(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder of stacks is listed stack by stack, a folder of SWC files file by file; a
    folder of 2-D slices stays one stack."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for k, nz in ((2, 5), (10, 3)):  # natural order: cell_2 before cell_10
        tifffile.imwrite(stacks / f"cell_{k}.tif", np.full((nz, 6, 7), 9 * k, np.uint8), imagej=True,
                         metadata={"axes": "ZYX"})
    (stacks / "cell_2.gold.swc").write_text("1 1 0 0 0 1 -1\n")  # beside stacks: not summarised
    rc, out, _ = run(["info", "--json", str(stacks)], capsys)
    d = json.loads(out)
    assert rc == 0 and [Path(x["file"]).name for x in d] == ["cell_2.tif", "cell_10.tif"]
    assert [x["shape_zyx"] for x in d] == [[5, 6, 7], [3, 6, 7]] and d[1]["intensity"]["max"] == 90.0
    swcs = tmp_path / "cells"
    swcs.mkdir()
    src = data / "swc/small/neurom_simple.swc"
    for name in ("b.swc", "a.swc"):
        (swcs / name).write_bytes(src.read_bytes())
    rc, out, _ = run(["info", "--json", str(swcs)], capsys)
    d = json.loads(out)
    assert rc == 0 and [Path(x["file"]).name for x in d] == ["a.swc", "b.swc"]
    assert d[0]["nodes"] == len(read_swc(src))
    slices = tmp_path / "slices"
    slices.mkdir()
    for k in range(4):
        tifffile.imwrite(slices / f"z{k}.tif", np.full((6, 7), 100 + k, np.uint8))
    rc, out, _ = run(["info", "--json", str(slices)], capsys)
    d = json.loads(out)
    assert rc == 0 and d["shape_zyx"] == [4, 6, 7]


def test_info_shows_a_traced_somas_outline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The outline ``morph trace`` writes to the header survives the SWC and shows in
    ``morph info`` (an ellipse of semi-axes 6 and 3 um, major axis at 30 degrees); a file
    whose soma was moved since shows none."""
    from morph.io import write_swc
    from morph.morphology import Morphology
    from morph.soma_outline import SomaOutline

    a = np.arange(72) * (2 * np.pi / 72)
    r = 1.0 / np.sqrt((np.cos(a - np.pi / 6) / 6.0) ** 2 + (np.sin(a - np.pi / 6) / 3.0) ** 2)
    o = SomaOutline(np.array([10.0, 20.0, 5.0]), a, r, np.zeros(72, dtype=bool))
    m = Morphology([[10, 20, 5], [10, 26, 5], [10, 40, 5]], [4.0, 1, 1], [1, 3, 3], [-1, 0, 1], header=[o.header_line()])
    f = tmp_path / "t.swc"
    write_swc(m, f)
    rc, out, _ = run(["info", "--json", str(f)], capsys)
    ol = json.loads(out)["soma"]["outline"]
    assert rc == 0 and ol["area_um2"] == pytest.approx(np.pi * 18, rel=0.01)
    assert ol["semi_axes_um"] == pytest.approx([6.0, 3.0], rel=0.01) and ol["major_axis_deg_from_x"] == pytest.approx(30, abs=1)
    write_swc(m.translate([5.0, 0, 0]), f, force=True)
    rc, out, _ = run(["info", "--json", str(f)], capsys)
    assert rc == 0 and "outline" not in json.loads(out)["soma"]


def test_validate_exit_codes_and_all_problems(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(["validate", str(data / "swc/small/neurom_simple.swc")], capsys)
    assert rc == 0 and out.strip().endswith(": ok")
    bad = tmp_path / "bad.swc"
    bad.write_text("1 1 0 0 0 1 -1\n2 3 0 1 0\n3 3 0 y 0 1 1\n4 3 0 1 0 1 40\n")
    rc, out, err = run(["validate", str(bad)], capsys)
    assert rc == 1
    assert f"{bad}:2: expected 7 columns" in out
    assert f"{bad}:3: non-numeric field 'y'" in out
    assert f"{bad}:4: node 4 has parent 40" in out
    assert "Traceback" not in out + err


def test_reading_errors_reach_user_as_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.swc"
    bad.write_text("1 1 0 0 0 1 -1\n2 3 0 1 0 -4 1\n")
    rc, out, err = run(["info", str(bad)], capsys)
    assert rc == 2
    assert err.strip() == f"morph: error: {bad}:2: negative radius -4 (radii must be >= 0)"
    rc, _, err = run(["info", str(tmp_path / "nope.swc")], capsys)
    assert rc == 2 and "file not found" in err
    garbage = tmp_path / "g.swc"
    garbage.write_bytes(b"\x00\xff" * 100)
    rc, _, err = run(["info", str(garbage)], capsys)
    assert rc == 2 and "binary" in err and "Traceback" not in err


def test_debug_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.swc"
    bad.write_text("")
    rc, _, err = run(["--debug", "info", str(bad)], capsys)
    assert rc == 2 and "Traceback" in err


def test_fix_and_convert(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "messy.swc"
    src.write_text("5 3 0 2 0 1 2\n2 1 0 0 0 1 -1\n5 3 0 2 0 1 2\n9 3 0 3 0 1 42\n")
    out = tmp_path / "fixed.swc"
    rc, stdout, err = run(["validate", "--fix", str(src), "-o", str(out)], capsys)
    assert rc == 0 and "2 repair(s)" in stdout
    fixed = read_swc(out)
    assert fixed.ids.tolist() == [1, 2, 3] and np.all(fixed.parent < np.arange(3))
    assert "repaired:" in out.read_text()
    # no overwrite without --force
    rc, _, err = run(["validate", "--fix", str(src), "-o", str(out)], capsys)
    assert rc == 2 and "--force" in err
    # voxel <-> um
    vox = tmp_path / "vox.swc"
    rc, _, _ = run(
        [
            "convert",
            str(data / "swc/small/neurom_simple.swc"),
            "-o",
            str(vox),
            "--to-voxel",
            "--voxel",
            "0.5",
            "0.5",
            "2",
        ],
        capsys,
    )
    assert rc == 0
    v = read_swc(vox)
    assert v.units == "voxel" and v.voxel_size == (0.5, 0.5, 2.0)
    um = tmp_path / "um.swc"
    rc, _, _ = run(["convert", str(vox), "-o", str(um), "--to-um"], capsys)
    assert rc == 0
    assert np.allclose(
        read_swc(um).renumber().xyz, read_swc(data / "swc/small/neurom_simple.swc").renumber().xyz
    )
    rc, _, err = run(
        ["convert", str(data / "swc/small/neurom_simple.swc"), "-o", str(tmp_path / "x.swc"), "--to-um"],
        capsys,
    )
    assert rc == 2 and "voxel size unknown" in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 2
    assert "the following arguments are required" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["info", "x.swc", "--voxel", "1", "2"]) == 2


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_every_broken_swc_case_through_the_cli(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, line, msg = BROKEN[case]
    p = tmp_path / f"{case}.swc"
    p.write_text(text)
    rc, out, err = run(["info", str(p)], capsys)
    assert rc == 2
    where = f"{p}:{line}: " if line else f"{p}: "
    assert err.startswith(f"morph: error: {where}") and msg in err
    assert "Traceback" not in err
    rc, out, err = run(["validate", str(p)], capsys)
    assert rc == 1 and msg in out


def test_stack_errors_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((30, 40), np.uint8))
    rc, _, err = run(["info", str(flat)], capsys)
    assert rc == 2 and "2-D image (30 x 40) where a 3-D stack is required" in err
    notiff = tmp_path / "x.tif"
    notiff.write_text("text")
    rc, _, err = run(["info", str(notiff)], capsys)
    assert rc == 2 and "not a TIFF file" in err
    lif = tmp_path / "cell.lif"  # read as a stack (not as an SWC), and named
    lif.write_bytes(bytes(range(256)) * 4)
    for cmd in (["info", str(lif)], ["trace", str(lif), "-o", str(tmp_path / "t.swc")]):
        rc, _, err = run(cmd, capsys)
        assert rc == 2 and "a Leica LIF file: morph reads TIFF stacks" in err and "bfconvert" in err, err
    rc, _, err = run(["info", str(flat), "--voxel", "0", "1", "1"], capsys)
    assert rc == 2 and "expected a positive number, got '0'" in err
    for bad in ("inf", "nan"):
        rc, _, err = run(["info", str(flat), "--voxel", bad, "1", "1"], capsys)
        assert rc == 2 and f"expected a positive number, got '{bad}'" in err


def test_quiet_and_debug_before_or_after_the_subcommand(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from morph import progress

    f = str(data / "swc/small/neurom_simple.swc")
    for argv in (["-q", "info", f], ["info", "-q", f]):
        progress.set_quiet(False)
        assert main(argv) == 0
        assert progress.QUIET
    progress.set_quiet(False)
    assert main(["info", f]) == 0 and not progress.QUIET


def test_output_checks(tmp_path: Path) -> None:
    """A folder given as the output is named as such, with or without --force; an existing
    file needs --force; a missing folder is named."""
    from morph.errors import MorphError, OutputExistsError
    from morph.io.atomic import check_output

    folder = tmp_path / "out"
    folder.mkdir()
    for force in (False, True):
        with pytest.raises(MorphError, match="output is a folder"):
            check_output(folder, force=force)
    f = tmp_path / "a.swc"
    f.write_text("")
    with pytest.raises(OutputExistsError, match="output exists"):
        check_output(f)
    assert check_output(f, force=True) == f
    with pytest.raises(MorphError, match="output folder does not exist"):
        check_output(tmp_path / "missing" / "a.swc")


def test_points_starting_with_a_negative_number_are_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--delete -5,30,0`` is a point, not an unknown option (argparse alone takes only a bare
    negative number for a value)."""
    cell = tmp_path / "c.swc"
    cell.write_text("1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n4 3 5 30 0 1 3\n5 3 -5 30 0 1 3\n")
    out = tmp_path / "e.swc"
    rc, _, err = run(["edit", str(cell), "-o", str(out), "--delete", "-5,30,0"], capsys)
    assert rc == 0, err
    assert len(read_swc(out)) == 4
