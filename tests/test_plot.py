"""Figures: projections, Sholl curve, dendrogram, summary page; files with content."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

from morph import plot as P
from morph.errors import MorphError
from morph.io import read_stack, read_swc
from morph.morphology import APICAL, AXON, BASAL, Morphology

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rbp4(data):
    return read_swc(next((data / "swc" / "allen").glob("bmtk_Rbp4*.swc")))


def _pixels(fig) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def _count_color(img: np.ndarray, color: str, tol: int = 30) -> int:
    ref = np.array(to_rgb(color)) * 255
    return int((np.abs(img - ref).max(axis=-1) <= tol).sum())


@pytest.mark.parametrize("plane", ["xy", "xz", "yz"])
def test_projection_colours_and_extent(rbp4, plane):
    ax = P.plot_projection(rbp4, plane, legend=False)
    img = _pixels(ax.figure)
    for t in (AXON, BASAL, APICAL):
        assert _count_color(img, P.type_color(t)) > 20, (plane, t)
    i, j = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}[plane]
    lo, hi = rbp4.bounds()
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    assert x0 < lo[i] and x1 > hi[i] and min(y0, y1) < lo[j] and max(y0, y1) > hi[j]
    assert ax.get_aspect() == 1.0
    # one line per neurite edge, coloured by its compartment
    lc = ax.collections[0]
    neurite = ~rbp4.soma_mask & (rbp4.parent >= 0)
    assert len(lc.get_segments()) == int(neurite.sum())


def test_scale_bar_is_round_and_fits():
    assert P.nice_length(730) == 500 and P.nice_length(199) == 100 and P.nice_length(0.3) == 0.2
    m = Morphology([[0, 0, 0], [0, 0, 0.1], [1000, 0, 0]], [5, 1, 1], [1, 3, 3], [-1, 0, 1])
    ax = P.plot_projection(m)
    texts = [t.get_text() for t in ax.figure.findobj(lambda a: hasattr(a, "get_text"))]
    assert "200 µm" in texts


def test_projection_over_the_stack(data):
    d = data / "images" / "snt_misc_spotspine"
    m = read_swc(d / "SpotSpine_ImageStack_Test.swc")
    st = read_stack(d / "SpotSpine_ImageStack_Test.tif")
    ax = P.plot_projection(m, "xy", stack=st, legend=False, scale_bar=False)
    im = ax.get_images()[0]
    x0, x1, y0, y1 = im.get_extent()
    ext = st.extent_um
    assert x1 - x0 == pytest.approx(ext[0]) and y0 - y1 == pytest.approx(ext[1])
    assert ax.yaxis_inverted()
    proj = np.asarray(im.get_array())
    # bright where the trace runs: the MIP at the trace's voxels is above the image's median
    vox = np.round(m.xyz[~m.soma_mask] / np.asarray(st.voxel_size)).astype(int)
    assert np.median(proj[vox[:, 1], vox[:, 0]]) > np.median(proj)


def test_sholl_curve_matches_features(rbp4):
    features = pytest.importorskip("morph.features")
    ax = P.plot_sholl(rbp4, step=20)
    res = features.sholl(rbp4, step=20, compartments=("axon", "basal_dendrite", "apical_dendrite"))
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"axon", "basal dendrite", "apical dendrite"}
    for name in ("axon", "basal_dendrite", "apical_dendrite"):
        ln = lines[name.replace("_", " ")]
        assert np.array_equal(ln.get_xdata(), res.radii)
        assert np.array_equal(ln.get_ydata(), res.crossings[name])


def test_dendrogram_layout(rbp4):
    x0, x1, y = P.dendrogram_layout(rbp4)
    sec = rbp4.sections
    assert len(y) == sec.n and np.all(x1 >= x0)
    kids = np.bincount(sec.parent[sec.parent >= 0], minlength=sec.n)
    term = kids == 0
    assert sorted(y[term]) == list(range(int(term.sum())))
    # children start where their parent ends; parents sit at their children's mean height
    child = np.flatnonzero(sec.parent >= 0)
    assert np.allclose(x0[child], x1[sec.parent[child]])
    for p in np.unique(sec.parent[child])[:20]:
        assert y[p] == pytest.approx(y[child[sec.parent[child] == p]].mean())
    # the farthest section end is the largest path distance from the soma
    pd = rbp4.path_distance - rbp4.path_distance[rbp4.soma_nodes[0]]
    assert x1.max() == pytest.approx(pd.max())
    ax = P.plot_dendrogram(rbp4)
    assert len(ax.collections[0].get_segments()) == sec.n


def test_summary_page_files(rbp4, tmp_path):
    pytest.importorskip("morph.features")
    fig = P.cell_summary(rbp4, sholl_step=20)
    rows = dict(P.summary_numbers(rbp4))
    assert rows["total length"] == f"{rbp4.total_length():.0f} µm"
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        out = tmp_path / f"sum{suffix}"
        P.save_figure(fig, out, dpi=60)
        data = out.read_bytes()
        assert data.startswith(magic) and len(data) > 10_000
    import imageio.v3 as iio

    img = iio.imread(tmp_path / "sum.png")[..., :3].astype(int)
    assert (np.abs(img - 255).sum(-1) > 30).mean() > 0.03  # not a blank page
    assert b"Sholl" in (tmp_path / "sum.svg").read_bytes()
    with pytest.raises(MorphError, match="exists"):
        P.save_figure(fig, tmp_path / "sum.png")
    with pytest.raises(MorphError, match="unknown figure format"):
        P.save_figure(fig, tmp_path / "sum.jpg2")


def _morph(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "morph.cli.main", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_cli_plot(data, tmp_path):
    swc = next((data / "swc" / "allen").glob("bmtk_Pvalb_469628681_m.swc"))
    out = tmp_path / "p.svg"
    r = _morph("plot", str(swc), "-o", str(out), "--kind", "projection", "--plane", "xz", "-q")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().count(b"<path") > 10
    r = _morph("plot", str(swc), "-o", str(out), "--kind", "dendrogram", "-q")
    assert r.returncode == 2 and "exists" in r.stderr
    d = data / "images" / "diadem_OP"
    r = _morph(
        "plot",
        str(d / "OP_1.gold.swc"),
        "-o",
        str(tmp_path / "op.png"),
        "--kind",
        "projection",
        "--stack",
        str(d / "OP_1.tif"),
        "--swc-units",
        "voxel",
        "--voxel",
        "1",
        "1",
        "3.03",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    empty = tmp_path / "e.swc"
    empty.write_text("")
    r = _morph("plot", str(empty), "-o", str(tmp_path / "e.png"), "-q")
    assert r.returncode == 2 and "empty" in r.stderr and "Traceback" not in r.stderr


def _g(tmp_path: Path) -> Path:
    """A small cell: soma, a basal dendrite along +y forking at y = 20, an axon along -y."""
    src = tmp_path / "g.swc"
    src.write_text("1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n4 3 5 30 0 1 3\n5 3 -5 30 0 1 3\n"
                   "6 2 0 -10 0 1 1\n7 2 0 -20 0 1 6\n")
    return src


@pytest.mark.parametrize("dpi", ["0", "-100", "29", "1201", "100000", "1.5"])
def test_cli_plot_refuses_a_bad_dpi(tmp_path, capsys, dpi):
    from morph.cli.main import main

    out = tmp_path / "p.png"
    assert main(["plot", str(_g(tmp_path)), "-o", str(out), "--kind", "dendrogram", "--dpi", dpi, "-q"]) == 2
    err = capsys.readouterr().err
    assert "argument --dpi" in err and "internal error" not in err and not out.exists()
    if dpi != "1.5":
        assert "from 30 to 1200 dots per inch" in err
    fig = P.plot_dendrogram(read_swc(_g(tmp_path))).figure
    with pytest.raises(MorphError, match="from 30 to 1200"):
        P.save_figure(fig, out, dpi=0)
    P.save_figure(fig, out, dpi=30)  # the bounds themselves are fine
    assert out.exists()


def test_cli_plot_refuses_a_sholl_step_too_small_for_the_cell(tmp_path, capsys):
    from morph.cli.main import main

    src, out = _g(tmp_path), tmp_path / "p.png"
    for kind in ("sholl", "summary"):
        assert main(["plot", str(src), "-o", str(out), "--kind", kind, "--step", "1e-7", "-q"]) == 2
        err = capsys.readouterr().err
        assert "--step 1e-07 um would make 304,138,127 Sholl radii" in err and "at most 100,000" in err
        assert "give a larger --step, e.g. 0.00031 um or more" in err
        assert "memory" not in err and "--sholl-step" not in err and not out.exists()
    # the step only matters for the Sholl curve
    assert main(["plot", str(src), "-o", str(out), "--kind", "dendrogram", "--step", "1e-7", "-q"]) == 0
    m = read_swc(src)
    assert P.sholl_radius_count(m, 10.0) == 4  # the farthest node is 30.4 um from the soma
    with pytest.raises(MorphError, match="step 1e-07 um would make 304,138,127 Sholl radii"):
        P.plot_sholl(m, step=1e-7)


def test_the_figures_sholl_count_uses_the_features_centre():
    """A connected soma of several nodes: features centre on its root node, not on the
    nodes' centroid; the figure's bound on the number of radii counts from the same place."""
    import morph.features as mf
    from morph.morphology import Morphology
    from morph.plot import sholl_radius_count

    m = Morphology([[0, 0, 0], [0, 30, 0], [0, 60, 0], [0, -95, 0]], [5, 5, 5, 1], [1, 1, 1, 3], [-1, 0, 1, 0])
    assert sholl_radius_count(m, 10.0) == len(mf.sholl(m, step=10.0).radii) == 10
