"""Surface meshes: area and volume against the analytic frustum sums, watertightness, files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from morph import mesh as M
from morph.errors import MorphError
from morph.io import read_swc
from morph.morphology import Morphology

ROOT = Path(__file__).resolve().parents[1]
CELLS = ["bmtk_Rbp4-*.swc", "bmtk_Pvalb_469628681_m.swc", "skk_test_4493.swc"]


def _cell(data, pattern):
    return read_swc(next((data / "swc" / "allen").glob(pattern)))


@pytest.fixture(scope="module")
def pvalb(data):
    return _cell(data, "bmtk_Pvalb_469628681_m.swc")


def test_analytic_sums_on_a_cone_and_against_the_features(data):
    # soma, then a 10 um edge from radius 2 to 1, then a 5 um cylinder of radius 1
    m = Morphology([[0, 0, 0], [0, 5, 0], [0, 15, 0], [0, 20, 0]], [5, 2, 1, 1], [1, 3, 3, 3], [-1, 0, 1, 2])
    area, vol = M.analytic_area_volume(m)
    assert area == pytest.approx(np.pi * 3 * np.sqrt(100 + 1) + 2 * np.pi * 1 * 5)
    assert vol == pytest.approx(np.pi * 10 * (4 + 2 + 1) / 3 + np.pi * 5)
    features = pytest.importorskip("morph.features")
    for pattern in CELLS:
        c = _cell(data, pattern)
        d = features.compute(
            c, compartments=["all_neurites"], features=["total_surface_area", "total_volume"]
        )
        a, v = M.analytic_area_volume(c)
        assert d["all_neurites.total_surface_area"] == pytest.approx(a, rel=1e-9)
        assert d["all_neurites.total_volume"] == pytest.approx(v, rel=1e-9)


def test_frusta_of_a_cylinder_exact_factors():
    m = Morphology([[0, 0, 0], [0, 0, 10], [3, 4, 20]], [1, 1, 1], [3, 3, 3], [-1, 0, 1])
    for n in (6, 16, 32):
        fm = M.frusta_mesh(m, sides=n, include_soma=False)
        a, v = M.analytic_area_volume(m)
        assert M.lateral_area(fm) == pytest.approx(a, rel=1e-9)  # perimeter-true polygon
        assert fm.volume == pytest.approx(v * (np.pi / n) / np.tan(np.pi / n), rel=1e-9)
        assert fm.is_watertight and fm.volume > 0


@pytest.mark.parametrize("pattern", CELLS)
def test_frusta_mesh_agrees_with_analytic_sums(data, pattern):
    m = _cell(data, pattern)
    fm = M.frusta_mesh(m, sides=16, include_soma=False)
    a, v = M.analytic_area_volume(m)
    assert abs(M.lateral_area(fm) / a - 1) < 0.005
    assert abs(fm.volume / v - 1) < 0.015
    # every face of every frustum is outward: positive volume for each closed body
    assert fm.is_winding_consistent and fm.volume > 0
    with_soma = M.frusta_mesh(m, sides=16)
    assert with_soma.volume > fm.volume and with_soma.metadata["soma_faces"].any()


def test_union_is_one_watertight_surface_within_tolerance(pvalb):
    u = M.watertight_mesh(pvalb, method="union", sides=16, include_soma=False)
    a, v = M.analytic_area_volume(pvalb)
    assert u.is_watertight and u.is_winding_consistent and u.is_volume
    assert -0.06 < u.volume / v - 1 < 0.0
    assert abs(u.area / a - 1) < 0.10
    # with the soma: a single connected body
    whole = M.watertight_mesh(pvalb, method="union", sides=8, include_soma=True)
    assert whole.is_watertight
    assert len(whole.split(only_watertight=False)) == 1


def test_voxel_marching_cubes_is_watertight_within_tolerance(pvalb):
    w = M.watertight_mesh(pvalb, method="voxel", pitch=0.4, include_soma=False)
    a, v = M.analytic_area_volume(pvalb)
    assert w.is_watertight and w.volume > 0
    assert abs(w.area / a - 1) < 0.15 and abs(w.volume / v - 1) < 0.15
    assert w.metadata["pitch"] <= 0.45


def test_write_formats_and_refuse_overwrite(pvalb, tmp_path):
    fm = M.frusta_mesh(pvalb, sides=6)
    for suffix in (".ply", ".stl", ".obj", ".glb", ".off"):
        out = tmp_path / f"cell{suffix}"
        M.write_mesh(fm, out)
        back = trimesh.load(out, force="mesh")
        assert len(back.faces) == len(fm.faces)
        assert back.area == pytest.approx(fm.area, rel=1e-3)
    with pytest.raises(MorphError, match="exists"):
        M.write_mesh(fm, tmp_path / "cell.ply")
    with pytest.raises(MorphError, match="unknown mesh format"):
        M.write_mesh(fm, tmp_path / "cell.xyz")


def _morph(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "morph.cli.main", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_cli_mesh(data, tmp_path):
    swc = next((data / "swc" / "allen").glob("bmtk_Pvalb_469628681_m.swc"))
    out = tmp_path / "c.stl"
    r = _morph("mesh", str(swc), "-o", str(out), "--no-soma", "-q")
    assert r.returncode == 0, r.stderr
    assert "lateral area" in r.stdout and "analytic" in r.stdout
    assert len(trimesh.load(out).faces) > 1000
    r = _morph("mesh", str(swc), "-o", str(out), "-q")
    assert r.returncode == 2 and "exists" in r.stderr
    r = _morph("mesh", str(swc), "-o", str(tmp_path / "c.vox"), "-q")
    assert r.returncode == 2 and "unknown mesh format" in r.stderr
    empty = tmp_path / "e.swc"
    empty.write_text("# nothing\n")
    r = _morph("mesh", str(empty), "-o", str(tmp_path / "e.ply"), "-q")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_viewer_shows_a_mesh(pvalb):
    pytest.importorskip("vtkmodules")
    from viewers.offscreen import GLUnavailableError, select_backend
    from viewers.scene import Scene

    try:
        select_backend(offscreen=True)
    except GLUnavailableError as e:  # pragma: no cover
        pytest.skip(str(e))
    fm = M.frusta_mesh(pvalb, sides=8)
    s = Scene((240, 240))
    s.add_mesh(fm.vertices, fm.faces, color=(0.9, 0.9, 0.2))
    s.legend.SetVisibility(False)
    s.set_camera("xy", parallel=True)
    img = s.screenshot().astype(int)
    yellow = (img[..., 0] > 60) & (img[..., 1] > 60) & (img[..., 2] < 0.5 * img[..., 0])
    assert yellow.mean() > 0.005
    s.close()


def test_cli_mesh_refuses_an_empty_mesh(tmp_path, capsys):
    from morph.cli.main import main

    one = tmp_path / "one.swc"
    one.write_text("1 3 0 0 0 1 -1\n")
    for extra in ([], ["--watertight"], ["--watertight", "--method", "voxel"]):
        out = tmp_path / "one.ply"
        assert main(["mesh", str(one), "-o", str(out), "-q", *extra]) == 2
        err = capsys.readouterr().err
        assert "nothing to mesh: no segment with a length and a radius" in err and "(1 node)" in err
        assert "internal error" not in err and not out.exists()
    with pytest.raises(MorphError, match="nothing to mesh"):
        M.frusta_mesh(read_swc(one))
    soma = Morphology([[0, 0, 0]], [5], [1], [-1])
    assert len(M.frusta_mesh(soma).vertices) > 0  # a soma alone is a sphere
    with pytest.raises(MorphError, match="besides the soma") as e:
        M.frusta_mesh(soma, include_soma=False)
    assert "--no-soma" in (e.value.hint or "")


def test_cli_mesh_refuses_options_that_do_not_apply(tmp_path, capsys):
    from morph.cli.main import main

    swc = tmp_path / "g.swc"
    swc.write_text("1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n")
    out = tmp_path / "g.ply"
    cases = [
        (["--pitch", "0.5"], "--pitch only applies to a watertight mesh (--watertight)"),
        (["--method", "voxel"], "--method only applies to a watertight mesh"),
        (["--method", "union", "--pitch", "1"], "--method and --pitch only apply to a watertight mesh"),
        (["--watertight", "--pitch", "1"], "--pitch only applies to --method voxel"),
        (["--watertight", "--method", "voxel", "--sides", "8"], "--sides does not apply to --method voxel"),
        (["--sides", "2"], "argument --sides: expected a whole number of sides, 3 to 256"),
        (["--sides", "1000"], "argument --sides: expected at most 256 sides"),
    ]
    for extra, said in cases:
        assert main(["mesh", str(swc), "-o", str(out), "-q", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert said in err, (extra, err)
        assert not out.exists()
    assert main(["mesh", str(swc), "-o", str(out), "-q", "--watertight", "--method", "voxel", "--pitch", "0.5"]) == 0
    assert "watertight (voxel) mesh" in capsys.readouterr().out


def test_a_soma_of_radius_zero_is_left_out_not_an_empty_mesh():
    """A zero-radius soma sphere emptied the union; it also made the frusta mesh divide by
    zero. Such a soma is left out; with no radius anywhere there is nothing to mesh."""
    import warnings

    m = Morphology([[0, 0, 0], [0, 10, 0], [0, 20, 0]], [0, 1, 1], [1, 3, 3], [-1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("union", "voxel"):
            w = M.watertight_mesh(m, method=method)
            assert w.is_watertight and w.volume > 0.5 * np.pi * 20  # the 20 um neurite, radius 1
        assert M.frusta_mesh(m).vertices.shape[0] > 0
    flat = Morphology([[0, 0, 0], [0, 10, 0], [0, 20, 0]], [0, 0, 0], [1, 3, 3], [-1, 0, 1])
    for make in (M.watertight_mesh, M.frusta_mesh):
        with pytest.raises(MorphError, match="nothing to mesh"):
            make(flat)


def test_voxel_mesh_has_no_slivers_where_the_grid_touches_a_sphere():
    """Grid points exactly on a sphere's surface made zero-volume pieces beside the body."""
    tri = Morphology([[0, 0, 0], [0, 10, 0], [0, 20, 0], [10, 30, 0], [0, 30, 0], [-10, 30, 0]],
                     [5, 1, 1, 1, 1, 1], [1, 3, 3, 3, 3, 3], [-1, 0, 1, 2, 2, 2])
    w = M.watertight_mesh(tri, method="voxel")
    assert w.is_watertight and len(w.split(only_watertight=False)) == 1
