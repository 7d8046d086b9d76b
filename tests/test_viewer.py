"""The viewer, seen through off-screen pictures (EGL or OSMesa; no golden images)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from morph.io import read_stack, read_swc
from morph.morphology import APICAL, AXON, BASAL

pytest.importorskip("vtkmodules")

from viewers.offscreen import GLUnavailableError, ViewerError, select_backend  # noqa: E402
from viewers.scene import (  # noqa: E402
    BACKGROUNDS,
    COMPARTMENT_COLORS,
    HIGHLIGHT_COLOR,
    Scene,
    section_polylines,
    strahler_order,
)

ROOT = Path(__file__).resolve().parents[1]
W, H = 480, 400


def _gl_or_skip() -> None:
    try:
        select_backend(offscreen=True)
    except GLUnavailableError as e:  # pragma: no cover - CI installs the packages
        if os.environ.get("CI"):
            pytest.fail(f"CI must render: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def rbp4(data):
    return read_swc(next((data / "swc" / "allen").glob("bmtk_Rbp4*.swc")))


@pytest.fixture(scope="module")
def cell_scene(rbp4):
    _gl_or_skip()
    s = Scene((W, H))
    s.add_morphology(rbp4)
    s.legend.SetVisibility(False)
    s.set_camera("xy", parallel=True)
    img = s.screenshot()
    yield s, img
    s.close()


@pytest.fixture(scope="module")
def spine(data):
    d = data / "images" / "snt_misc_spotspine"
    return read_swc(d / "SpotSpine_ImageStack_Test.swc"), read_stack(d / "SpotSpine_ImageStack_Test.tif")


def _foreground(img: np.ndarray, background: str = "dark") -> np.ndarray:
    bg = np.array(BACKGROUNDS[background]) * 255
    return np.abs(img.astype(float) - bg).sum(axis=-1) > 40


def _chroma(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=float)
    return rgb / np.maximum(rgb.sum(axis=-1, keepdims=True), 1e-9)


def _isolated(px: np.ndarray, others: np.ndarray, radius: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    if len(others) == 0:
        return np.ones(len(px), dtype=bool)
    d, _ = cKDTree(others).query(px, k=1)
    return d > radius


# ------------------------------------------------------------------ geometry, no GL needed
def test_section_polylines_cover_every_neurite_edge(rbp4):
    pl = section_polylines(rbp4)
    # every non-soma edge appears once as consecutive points of one polyline
    starts = np.r_[0, np.cumsum(pl.counts)[:-1]]
    same_line = np.ones(len(pl.node), dtype=bool)
    same_line[starts] = False
    child = pl.node[1:][same_line[1:]]
    parent = pl.node[:-1][same_line[1:]]
    assert np.all(rbp4.parent[child] == parent)
    neurite = np.flatnonzero(~rbp4.soma_mask & (rbp4.parent >= 0))
    assert np.array_equal(np.sort(child), np.sort(neurite))
    assert pl.n_segments == neurite.size


def test_strahler_order_small_tree():
    from morph.morphology import Morphology

    # soma -> a ; a forks into b and c ; b forks into d and e ; c is a tip
    m = Morphology(
        [[0, 0, 0], [0, 10, 0], [5, 20, 0], [-5, 20, 0], [5, 30, 0], [10, 30, 0]],
        [5, 1, 1, 1, 1, 1],
        [1, 3, 3, 3, 3, 3],
        [-1, 0, 1, 1, 2, 2],
    )
    s = strahler_order(m)
    assert s[4] == 1 and s[5] == 1 and s[3] == 1
    assert s[2] == 2  # two order-1 children
    assert s[1] == 2  # children of order 2 and 1: stays 2


# ------------------------------------------------------------------ pictures
def test_picture_has_the_cell_and_not_much_else(cell_scene):
    _, img = cell_scene
    assert img.shape == (H, W, 3)
    frac = _foreground(img).mean()
    assert 0.005 < frac < 0.5, frac


def test_projected_bounding_box_where_the_camera_puts_it(cell_scene, rbp4):
    s, img = cell_scene
    fg = np.argwhere(_foreground(img))
    (y0, x0), (y1, x1) = fg.min(axis=0), fg.max(axis=0)
    px = s.world_to_display(rbp4.xyz)
    pad = rbp4.radius.max() / s.um_per_pixel() + 3
    assert abs(x0 - px[:, 0].min()) <= pad and abs(x1 - px[:, 0].max()) <= pad
    assert abs(y0 - px[:, 1].min()) <= pad and abs(y1 - px[:, 1].max()) <= pad
    # the xy preset fits the cell, centred, y up (no stack): the apical tuft (low y) is at the bottom
    assert abs((x0 + x1) / 2 - W / 2) < 0.05 * W and abs((y0 + y1) / 2 - H / 2) < 0.05 * H
    assert max((x1 - x0) / W, (y1 - y0) / H) > 0.85
    low_y = rbp4.xyz[:, 1].argmin()
    assert px[low_y, 1] > H * 0.8


def test_axon_pixels_axon_coloured_dendrite_pixels_dendrite_coloured(cell_scene, rbp4):
    s, img = cell_scene
    px = s.world_to_display(rbp4.xyz)
    refs = {t: _chroma(np.array(COMPARTMENT_COLORS[t])) for t in (AXON, BASAL, APICAL)}
    keys = list(refs)
    ref = np.array([refs[k] for k in keys])
    fg = _foreground(img)
    for t in (AXON, BASAL, APICAL):
        mine = np.flatnonzero(rbp4.types == t)
        others = px[(rbp4.types != t)]
        ok = mine[_isolated(px[mine], others, 6.0)]
        xy = np.round(px[ok]).astype(int)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
        xy = xy[inside]
        xy = xy[fg[xy[:, 1], xy[:, 0]]]
        assert len(xy) >= 10, (t, len(xy))
        c = _chroma(img[xy[:, 1], xy[:, 0]])
        nearest = np.array(keys)[np.argmin(((c[:, None, :] - ref[None]) ** 2).sum(-1), axis=1)]
        assert (nearest == t).mean() > 0.9, (t, (nearest == t).mean())


def test_colour_by_path_distance_uses_the_colour_map(rbp4):
    _gl_or_skip()
    s = Scene((W, H))
    s.add_morphology(rbp4, mode="line")
    s.set_color_by("path_distance", cmap="viridis")
    s.legend.SetVisibility(False)
    s.scalar_bar.SetVisibility(False)
    s.set_camera("xy", parallel=True)
    img = s.screenshot()
    px = np.round(s.world_to_display(rbp4.xyz)).astype(int)
    fg = _foreground(img)
    pd = rbp4.path_distance
    near = np.flatnonzero((pd < np.percentile(pd, 10)) & ~rbp4.soma_mask)
    far = np.flatnonzero(pd > np.percentile(pd, 95))
    near = near[fg[px[near, 1], px[near, 0]]]
    far = far[fg[px[far, 1], px[far, 0]]]
    # viridis: dark purple at the start (blue > green), yellow at the end (red and green high)
    cn = img[px[near, 1], px[near, 0]].astype(float).mean(axis=0)
    cf = img[px[far, 1], px[far, 0]].astype(float).mean(axis=0)
    assert cn[2] > cn[1] and cf[1] > cf[2] and cf[0] > cn[0]
    assert s.scalar_bar.GetLookupTable() is not None
    s.close()


def test_pick_a_node_screen_position_returns_that_node(rbp4):
    """Zoomed in on a node (nodes a few pixels apart), clicking where it projects picks it."""
    _gl_or_skip()
    m = rbp4
    s = Scene((W, H))
    s.add_morphology(m)
    s.set_camera("xy", parallel=True)
    cam = s.renderer.GetActiveCamera()
    rng = np.random.default_rng(0)
    cand = rng.choice(np.flatnonzero(~m.soma_mask & (m.parent >= 0) & (m.radius < 2)), 60, replace=False)
    tested = found = 0
    for i in cand:
        # no node of another branch within 6 um in the projection
        path_near = np.abs(m.path_distance - m.path_distance[i]) < 6
        d2 = np.linalg.norm(m.xyz[:, :2] - m.xyz[i, :2], axis=1)
        same = _tree_near(m, int(i))
        if np.any((d2 < 6) & ~(same & path_near)):
            continue
        cam.SetFocalPoint(*m.xyz[i])
        cam.SetPosition(*(m.xyz[i] + [0, 0, 500]))
        cam.SetViewUp(0, 1, 0)
        cam.SetParallelScale(6.0)
        s.renderer.ResetCameraClippingRange()
        s.render()
        x, y = s.world_to_display(m.xyz[[i]])[0]
        hit = s.pick(x, y)
        tested += 1
        found += hit is not None and hit.node == i
        if tested == 12:
            break
    s.close()
    assert tested >= 8
    assert found == tested, (found, tested)


def _tree_near(m, i: int, hops: int = 12) -> np.ndarray:
    """Nodes within ``hops`` edges of ``i`` on the tree."""
    near = np.zeros(len(m), dtype=bool)
    near[i] = True
    for _ in range(hops):
        up = m.parent[near]
        near[up[up >= 0]] = True
        near |= (m.parent >= 0) & near[np.maximum(m.parent, 0)]
    return near


def test_node_info_and_measure(cell_scene, rbp4):
    s, _ = cell_scene
    m = rbp4
    tip = int(m.tips[0])
    info = s.node_info(0, tip)
    assert info["id"] == int(m.ids[tip]) and info["type"] in ("axon", "basal_dendrite", "apical_dendrite")
    assert np.allclose(info["xyz"], m.xyz[tip]) and info["radius"] == pytest.approx(m.radius[tip])
    assert info["branch_order"] == int(m.branch_order[tip])
    assert info["path_distance_to_soma"] == pytest.approx(
        m.path_distance[tip] - m.path_distance[m.soma_nodes[0]]
    )
    # two tips: path goes through their lowest common ancestor
    a, b = int(m.tips[0]), int(m.tips[-1])
    eu, path = s.measure((0, a), (0, b))
    assert eu == pytest.approx(np.linalg.norm(m.xyz[a] - m.xyz[b]))
    anc = set()
    i = a
    while i >= 0:
        anc.add(i)
        i = int(m.parent[i])
    j = b
    while j not in anc:
        j = int(m.parent[j])
    assert path == pytest.approx(m.path_distance[a] + m.path_distance[b] - 2 * m.path_distance[j])
    assert path >= eu - 1e-9


def test_highlight_subtree_recolours_it(rbp4):
    _gl_or_skip()
    m = rbp4
    s = Scene((W, H))
    s.add_morphology(m, mode="line")
    s.legend.SetVisibility(False)
    s.set_camera("xy", parallel=True)
    # the apical trunk's first node: its subtree is the whole apical dendrite
    first_apical = int(np.flatnonzero((m.types == APICAL) & m.parent_is_soma)[0])
    s.highlight_subtree(0, first_apical)
    img = s.screenshot()
    px = np.round(s.world_to_display(m.xyz)).astype(int)
    tuft = np.flatnonzero(
        (m.types == APICAL) & (m.xyz[:, 1] < np.percentile(m.xyz[m.types == APICAL, 1], 30))
    )
    c = _chroma(img[px[tuft, 1], px[tuft, 0]][_foreground(img)[px[tuft, 1], px[tuft, 0]]])
    hl = _chroma(np.array(HIGHLIGHT_COLOR))
    ap = _chroma(np.array(COMPARTMENT_COLORS[APICAL]))
    closer = np.linalg.norm(c - hl, axis=1) < np.linalg.norm(c - ap, axis=1)
    assert len(c) > 10 and closer.mean() > 0.9
    s.highlight_subtree(0, None)
    img2 = s.screenshot()
    c2 = _chroma(img2[px[tuft, 1], px[tuft, 0]][_foreground(img2)[px[tuft, 1], px[tuft, 0]]])
    assert (np.linalg.norm(c2 - hl, axis=1) < np.linalg.norm(c2 - ap, axis=1)).mean() < 0.1
    s.close()


def test_stack_is_placed_under_the_reconstruction(spine):
    """With the neuron hidden, the projection is bright where the trace runs: the voxel size
    (0.06 x 0.06 x 0.21 um) places the image in micrometres."""
    _gl_or_skip()
    m, st = spine
    s = Scene((300, 400))
    s.add_morphology(m)
    s.add_stack(st, layers=("mip",))
    s.legend.SetVisibility(False)
    s.set_camera("xy", parallel=True)
    s.set_neuron_visible(0, False)
    img = s.screenshot().astype(float).mean(axis=-1)
    px = np.round(s.world_to_display(m.xyz[~m.soma_mask])).astype(int)
    on = img[px[:, 1], px[:, 0]]
    lo, hi = s.stack_bounds()
    corners = np.round(s.world_to_display(np.array([lo, hi]))).astype(int)
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    region = img[max(y0, 0) : y1, max(x0, 0) : x1]
    assert np.median(on) > np.percentile(region, 75)
    # the same positions with the stack scaled wrongly (voxel 2x) are mostly background
    s.close()


def test_image_layers_change_the_picture_when_toggled(spine):
    _gl_or_skip()
    m, st = spine
    s = Scene((300, 400))
    s.add_morphology(m)
    s.add_stack(st, layers=())
    s.legend.SetVisibility(False)
    s.set_camera("iso", parallel=True)
    base = s.screenshot().astype(int)
    for name in ("mip", "slices", "volume"):
        s.show_image(name, True)
        on = s.screenshot().astype(int)
        changed = (np.abs(on - base).sum(-1) > 30).mean()
        assert changed > 0.02, (name, changed)
        s.show_image(name, False)
        off = s.screenshot().astype(int)
        assert (np.abs(off - base).sum(-1) > 30).mean() < 0.002, name
    # window/level and gamma change the displayed image
    s.show_image("mip", True)
    a = s.screenshot().astype(int)
    s.set_display(gamma=3.0)
    b = s.screenshot().astype(int)
    assert b.sum() < a.sum()
    s.set_display(gamma=1.0, window=s.display.window * 4)
    c = s.screenshot().astype(int)
    # a wider window: less contrast inside the image (the MIP plane, seen from the iso camera)
    s.show_image("mip", False)
    inside = np.abs(s.screenshot().astype(int) - c).sum(-1) > 0
    assert inside.mean() > 0.05
    assert c[inside].std() < 0.8 * a[inside].std()
    s.close()


def test_brightfield_is_inverted_for_display(data):
    _gl_or_skip()
    st = read_stack(data / "images" / "patchseq_brightfield" / "Example_Input_Stack_2112.tif")
    s = Scene((200, 200))
    s.add_stack(st, layers=("mip",))
    assert s.polarity == "brightfield" and s.display.invert
    s.legend.SetVisibility(False)
    s.set_camera("xy", parallel=True)
    img = s.screenshot().astype(float).mean(axis=-1)
    # the bright background of a brightfield image shows dark; dark neurites show bright
    mip = np.asarray(st.data).min(axis=0).astype(float)
    bright_bg = np.median(mip)
    assert np.median(img[40:160, 40:160]) < 128 and bright_bg > 150
    s.close()


def test_anisotropic_voxels_and_voxel_unit_swc(data):
    """DIADEM OP_1: SWC in voxels, z slices 3.03 voxels apart; both scaled to um."""
    _gl_or_skip()
    from viewers.app import build_scene

    d = data / "images" / "diadem_OP"
    s = build_scene(
        [d / "OP_1.gold.swc"],
        stack=d / "OP_1.tif",
        voxel=(0.5, 0.5, 1.515),
        swc_units="voxel",
        size=(300, 300),
        layers=("slices",),
        scale_bar=False,
        axes=False,
    )
    m = s.neurons[0].morphology
    raw = read_swc(d / "OP_1.gold.swc")
    assert np.allclose(m.xyz, raw.xyz * [0.5, 0.5, 1.515])
    b = s.image_props["slices"].GetBounds()
    lo, hi = s.stack_bounds()
    assert np.allclose(b[0::2], lo + [0.25, 0.25, 0.7575], atol=1e-6)
    assert np.allclose(b[1::2], hi - [0.25, 0.25, 0.7575], atol=1e-6)
    assert hi[2] - lo[2] == pytest.approx(np.asarray(read_stack(d / "OP_1.tif").data).shape[0] * 1.515)
    s.close()


def test_lod_and_line_mode(rbp4):
    _gl_or_skip()
    s = Scene((200, 200))
    layer = s.add_morphology(rbp4)
    assert layer.tube_actor.GetVisibility() and layer.mode == "tube"
    s.lod = True
    s.set_interacting(True)
    assert not layer.tube_actor.GetVisibility() and layer.line_actor.GetVisibility()
    s.set_interacting(False)
    assert layer.tube_actor.GetVisibility()
    s.set_mode("line")
    assert not layer.tube_actor.GetVisibility()
    s.close()


def test_scale_bar_length_matches_the_view(rbp4):
    _gl_or_skip()
    s = Scene((W, H))
    s.add_morphology(rbp4)
    s.set_camera("xy", parallel=True)
    s.show_scale_bar(True)
    s.render()
    x0, x1 = s.scale_bar_px
    assert (x1 - x0) * s.um_per_pixel() == pytest.approx(s.scale_bar_um, rel=1e-6)
    # um per pixel agrees with two projected points 100 um apart
    p = s.world_to_display(np.array([[0, 0, 0], [100, 0, 0]]))
    assert 100 / abs(p[1, 0] - p[0, 0]) == pytest.approx(s.um_per_pixel(), rel=1e-3)
    s.close()


# ------------------------------------------------------------------ interaction through VTK events
def test_keys_and_click_through_the_interactor(rbp4, spine):
    _gl_or_skip()
    from viewers.app import Viewer

    m, st = spine
    s = Scene((300, 400))
    s.add_morphology(m)
    s.add_stack(st, layers=("mip",))
    s.set_camera("xy", parallel=True)
    v = Viewer(s)
    iren = v.interactor

    def key(sym: str, shift: bool = False) -> None:
        iren.SetKeySym(sym)
        iren.SetShiftKey(int(shift))
        iren.InvokeEvent("KeyPressEvent")

    key("m")
    assert not s.image_visible["mip"]
    key("s")
    assert s.image_visible["slices"]
    z0 = s.slice_index[2]
    key("z", shift=True)
    assert s.slice_index[2] == z0 + 1
    key("l")
    assert s.neurons[0].mode == "line"
    key("h")
    assert s.help_text.GetVisibility()
    key("3")
    assert s.camera_preset == "yz"
    key("b")
    assert s.background == "light"
    key("c")
    assert s.color_by == "branch_order" and s.scalar_bar.GetVisibility()
    key("F1")
    assert not s.neurons[0].visible
    key("F1")
    key("1")
    # a click (press and release at one place) on a node picks it
    i = int(np.flatnonzero(~m.soma_mask)[len(m) // 2])
    x, y = s.world_to_display(m.xyz[[i]])[0]
    s.render()
    iren.SetEventPosition(int(round(x)), int(round(s.render_window.GetSize()[1] - 1 - y)))
    iren.InvokeEvent("LeftButtonPressEvent")
    iren.InvokeEvent("LeftButtonReleaseEvent")
    assert v.picks and v.picks[-1][0] == 0
    assert abs(int(v.picks[-1][1]) - i) <= 1
    assert f"node {int(m.ids[v.picks[-1][1]])}" in v.message
    key("u")
    assert s.neurons[0].highlighted == v.picks[-1][1]
    v.picks.append((0, int(m.tips[0])))
    key("d")
    assert "Euclidean" in v.message and "path" in v.message
    s.close()


def test_turntable_movie(rbp4, tmp_path):
    _gl_or_skip()
    from viewers.app import write_movie

    s = Scene((160, 120))
    s.add_morphology(rbp4, mode="line")
    s.set_camera("xy")
    frames = s.turntable(4)
    assert len(frames) == 4 and not np.array_equal(frames[0], frames[1])
    out = write_movie(frames, tmp_path / "turn.gif", fps=4)
    import imageio.v3 as iio

    back = iio.imread(out)
    assert back.shape[0] == 4
    mp4 = write_movie(frames, tmp_path / "turn.mp4", fps=4)
    assert iio.imread(mp4).shape[0] == 4
    folder = write_movie(frames, tmp_path / "frames")
    assert len(list(folder.glob("frame_*.png"))) == 4
    with pytest.raises(Exception, match="exists"):
        write_movie(frames, tmp_path / "turn.gif")
    s.close()


# ------------------------------------------------------------------ bad input
def test_stack_not_overlapping_says_so_and_offers_voxel(data, rbp4):
    _gl_or_skip()
    st = read_stack(data / "images" / "snt_misc_spotspine" / "SpotSpine_ImageStack_Test.tif")
    s = Scene((100, 100))
    s.add_morphology(rbp4)
    with pytest.raises(ViewerError, match="does not overlap") as e:
        s.add_stack(st)
    assert "--voxel" in str(e.value)
    s.close()


def _morph(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "morph.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_cli_screenshot_and_errors(data, tmp_path):
    _gl_or_skip()
    swc = next((data / "swc" / "allen").glob("bmtk_Rbp4*.swc"))
    out = tmp_path / "shot.png"
    r = _morph("view", str(swc), "--screenshot", str(out), "--size", "320", "240", "--camera", "xz", "-q")
    assert r.returncode == 0, r.stderr
    import imageio.v3 as iio

    img = iio.imread(out)
    assert img.shape[:2] == (240, 320) and 0.003 < _foreground(img[..., :3]).mean() < 0.6
    r = _morph("view", str(swc), "--screenshot", str(out), "-q")
    assert r.returncode == 2 and "exists" in r.stderr
    # a stack that does not overlap
    d = data / "images" / "diadem_OP"
    r = _morph(
        "view",
        str(d / "OP_1.gold.swc"),
        "--stack",
        str(d / "OP_1.tif"),
        "--voxel",
        "0.1",
        "0.1",
        "0.1",
        "--screenshot",
        str(tmp_path / "x.png"),
        "-q",
    )
    assert (
        r.returncode == 2
        and "does not overlap" in r.stderr
        and "--voxel" in r.stderr
        and "Traceback" not in r.stderr
    )
    # an empty SWC
    empty = tmp_path / "empty.swc"
    empty.write_text("")
    r = _morph("view", str(empty), "--screenshot", str(tmp_path / "y.png"), "-q")
    assert r.returncode == 2 and "empty" in r.stderr and "Traceback" not in r.stderr


def test_missing_gl_gives_a_clear_message(data, tmp_path):
    """No display, no EGL vendor library, an unloadable libOSMesa: the message names the
    Debian packages instead of crashing in the first render."""
    fake = tmp_path / "nogl"
    fake.mkdir()
    for name in ("libOSMesa.so", "libOSMesa.so.8", "libOSMesa.so.6", "libEGL.so.1", "libEGL.so"):
        (fake / name).write_text("not a library")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")
    }
    env["LD_LIBRARY_PATH"] = str(fake)
    env["__EGL_VENDOR_LIBRARY_FILENAMES"] = str(fake / "none.json")
    swc = next((data / "swc" / "allen").glob("bmtk_Rbp4*.swc"))
    r = _morph("view", str(swc), "--screenshot", str(tmp_path / "z.png"), "-q", env=env)
    assert r.returncode == 2, r.stderr
    assert "libegl1" in r.stderr and "libosmesa6" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "z.png").exists()


def test_contour_soma_is_drawn_filled():
    _gl_or_skip()
    from morph.morphology import Morphology

    # a flat square soma contour (4 nodes) and one dendrite
    m = Morphology(
        [[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0], [5, 10, 0], [5, 60, 0]],
        [0.5, 0.5, 0.5, 0.5, 1, 1],
        [1, 1, 1, 1, 3, 3],
        [-1, 0, 1, 2, 3, 4],
    )
    s = Scene((200, 200))
    layer = s.add_morphology(m)
    assert layer.soma_actor is not None
    s.legend.SetVisibility(False)
    s.set_camera("xy", parallel=True)
    img = s.screenshot()
    x, y = np.round(s.world_to_display(np.array([[5.0, 5.0, 0.0]]))[0]).astype(int)
    c = img[y, x].astype(float)
    assert c.min() > 60 and np.ptp(c) < 30  # grey soma fill at the contour's centre
    s.close()


def test_movie_format_checked_before_rendering(data, tmp_path):
    swc = next((data / "swc" / "allen").glob("bmtk_Rbp4*.swc"))
    r = _morph("view", str(swc), "--movie", str(tmp_path / "t.webp"), "-q")
    assert r.returncode == 2 and "unknown movie format" in r.stderr


def test_lazy_stack_shows_the_same_pictures_as_in_memory(spine, tmp_path):
    """An OME-Zarr store is opened lazily (never read whole): its projection, slices (read
    plane by plane, also after moving one) and volume look exactly like the in-memory stack's."""
    _gl_or_skip()
    from morph.io.chunked import ChunkedStack, write_zarr
    from viewers.app import open_stack

    m, st = spine
    store = tmp_path / "spine.ome.zarr"
    write_zarr(store, np.asarray(st.data), st.voxel_size, chunks=(4, 64, 64))
    lazy = open_stack(store)
    assert isinstance(lazy, ChunkedStack) and hasattr(lazy.data, "compute")

    def pictures(stack):
        s = Scene((240, 320))
        s.add_morphology(m)
        s.add_stack(stack, layers=(), polarity="fluorescence")
        s.set_neuron_visible(0, False)
        s.legend.SetVisibility(False)
        s.set_camera("iso", parallel=True)
        out = []
        for name in ("mip", "slices", "volume"):
            s.show_image(name, True)
            out.append(s.screenshot().astype(int))
            if name == "slices":
                s.move_slice(2, -3)
                s.move_slice(0, 5)
                out.append(s.screenshot().astype(int))
            s.show_image(name, False)
        s.close()
        return out

    pa, pb = pictures(st), pictures(lazy)
    for name, a, b in zip(("mip", "slices", "moved slices", "volume"), pa, pb):
        assert np.abs(a - b).max() <= 1, name
    assert (np.abs(pb[1] - pb[2]).sum(-1) > 30).mean() > 0.01  # the moved planes were read anew


def test_traced_soma_takes_the_outline_in_the_header():
    """A traced cell's soma is drawn with the x-y section of the outline ``morph trace``
    writes to the header (here twice as long along x as along y), the soma radius along z;
    a cell moved since (the header's centre no longer on its soma) gets the plain sphere."""
    _gl_or_skip()
    from morph.morphology import Morphology
    from morph.soma_outline import SomaOutline

    a = np.arange(72) * (2 * np.pi / 72)
    r = 1.0 / np.sqrt((np.cos(a) / 10.0) ** 2 + (np.sin(a) / 5.0) ** 2)
    o = SomaOutline(np.array([50.0, 50.0, 10.0]), a, r, np.zeros(72, dtype=bool))
    m = Morphology([[50, 50, 10], [50, 56, 10], [50, 90, 10]], [7.0, 1, 1], [1, 3, 3], [-1, 0, 1],
                   header=["# " + o.header_line()])
    s = Scene((200, 200))
    b = s.add_morphology(m).soma_actor.GetBounds()
    assert (b[1] - b[0]) / 2 == pytest.approx(10.0, rel=0.02)
    assert (b[3] - b[2]) / 2 == pytest.approx(5.0, rel=0.02)
    assert (b[5] - b[4]) / 2 == pytest.approx(7.0, rel=0.02)
    b = s.add_morphology(m.translate([30.0, 0, 0])).soma_actor.GetBounds()
    assert (b[1] - b[0]) / 2 == pytest.approx(7.0, rel=0.02) and (b[3] - b[2]) / 2 == pytest.approx(7.0, rel=0.02)
    s.close()


def test_seed_mode_puts_seeds_on_the_stained_voxel_under_the_pointer(tmp_path):
    """p: a click on the image puts a seed on the most stained voxel along the line of sight
    (the one the projection shows), in 3-D, from any camera; P saves them for --seeds."""
    _gl_or_skip()
    from morph.cli.trace import read_points
    from morph.io.stack import Stack
    from viewers.app import Viewer

    rng = np.random.default_rng(0)
    vs = (0.5, 0.5, 2.0)
    data = rng.normal(190, 2, (20, 80, 100))
    data[13, 30, 20:80] -= 60  # a dark neurite along x at y = 15 um, z = 26 um
    data[6, 55:58, 40:43] -= 60  # a dark speck at (20.5, 28, 12) um
    st = Stack(np.clip(data, 0, 255).astype(np.uint8), vs)
    s = Scene((300, 240))
    s.add_stack(st, layers=("mip",), polarity="brightfield")
    s.set_camera("xy", parallel=True)
    v = Viewer(s, output_stem=str(tmp_path / "cell"))  # before the first render (EGL offscreen)
    s.render()
    assert "no seeds yet" in v.handle_key("P")
    v.handle_key("p")
    assert v.seed_mode
    target = np.array([25.0, 15.0, 26.0])
    msg = v.click(*s.world_to_display(target[None])[0])
    assert msg.startswith("seed 1 at") and len(v.seeds) == 1
    assert np.allclose(v.seeds[0][:2], target[:2], atol=0.5) and abs(v.seeds[0][2] - target[2]) <= 1.0
    assert s.marker_actor is not None and s.marker_actor.GetVisibility()
    # from the side (the x-z plane), a click on the speck finds its depth along y
    s.set_camera("xz", parallel=True)
    s.render()
    speck = np.array([20.5, 28.0, 12.0])
    v.click(*s.world_to_display(speck[None])[0])
    assert np.linalg.norm(v.seeds[1] - speck) < 1.5
    v.click(*s.world_to_display(speck[None])[0])
    v.handle_key("BackSpace")
    assert len(v.seeds) == 2
    msg = v.handle_key("P")
    path = tmp_path / "cell-001.seeds.txt"
    assert msg == f"2 seeds saved to {path}"
    pts, voxel_axes = read_points(path)
    assert np.allclose(pts, np.array(v.seeds), atol=1e-3) and not voxel_axes.any()
    assert "--soma X,Y,Z --seeds" in path.read_text()  # no reconstruction with a soma loaded
    # with a reconstruction loaded, the file says how to steer a new trace from its soma
    from morph.morphology import Morphology

    s.add_morphology(Morphology([[25.0, 15.0, 26.0], [30.0, 15.0, 26.0]], [2.0, 0.5], [1, 3], [-1, 0]))
    v.handle_key("P")
    again = tmp_path / "cell-002.seeds.txt"  # never overwritten
    assert "--soma 25.00,15.00,26.00 --seeds" in again.read_text()
    # off the stack (a pixel left of it), no seed
    assert v.click(*s.world_to_display(np.array([[-20.0, 15.0, 20.0]]))[0]) == "no stack under the pointer"
    assert len(v.seeds) == 2
    v.handle_key("p")
    assert not v.seed_mode
    s.close()


def test_open_stack_reads_a_folder_of_slices_and_picks_channels(tmp_path):
    """The viewer reads what the tracer reads: a folder of TIFF slices (it was taken for a zarr
    store and refused) and one channel, or the mean, of an RGB stack."""
    import tifffile

    from morph.errors import StackError
    from morph.io import Stack
    from viewers.app import open_stack

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(4, 16, 12, 3), dtype=np.uint8)
    folder = tmp_path / "slices"
    folder.mkdir()
    for k in range(rgb.shape[0]):
        tifffile.imwrite(folder / f"z{k}.tif", rgb[k, :, :, 1])
    st = open_stack(folder)
    assert isinstance(st, Stack) and st.shape == (4, 16, 12)
    np.testing.assert_array_equal(st.data, rgb[..., 1])
    f = tmp_path / "rgb.tif"
    tifffile.imwrite(f, rgb, photometric="rgb")
    with pytest.raises(StackError, match="--channel"):
        open_stack(f)
    np.testing.assert_array_equal(open_stack(f, channel=2).data, rgb[..., 2])
    assert open_stack(f, channel="mean").metadata["channel"] == "mean"


def test_proofreading_edits_in_the_viewer(tmp_path):
    """Delete, cut, join and axon at picked nodes (morph.edit), undo, save to a new SWC with
    the edits in its header, and a first q over unsaved edits that warns."""
    _gl_or_skip()
    from test_edit import cell

    from viewers.app import UNSAVED, Viewer

    m = cell()
    s = Scene((400, 400))
    s.add_morphology(m)
    s.set_camera("xy", parallel=True)
    v = Viewer(s, output_stem=str(tmp_path / "cell"))
    s.render()

    def pick(xyz) -> None:
        v.click(*s.world_to_display(np.asarray([xyz], float))[0])

    def has(xyz) -> bool:
        return bool(np.any(np.all(np.isclose(s.neurons[0].morphology.xyz, xyz), axis=1)))

    assert v.handle_key("Delete") == "pick a node first (left click)"
    assert v.handle_key("S").startswith("no edits to save")
    pick((20, 10, 0))  # the spur's tip
    msg = v.handle_key("Delete")
    assert msg.startswith("deleted the branch at (20.0, ") and "(U undoes, S saves)" in msg
    assert not has((20, 10, 0)) and not has((20, 5, 0)) and len(s.neurons[0].morphology) == len(m) - 2
    assert v.handle_key("U").startswith("edit undone") and len(s.neurons[0].morphology) == len(m)
    pick((0, 0, 0))
    assert v.handle_key("e") == "pick a neurite node, not the soma"
    pick((45, 0, 0))
    assert v.handle_key("e").startswith("cut at (45.0, 0.0, 0.0)") and not has((50, 0, 0)) and has((40, 0, 0))
    pick((20, 10, 0))
    pick((0, 15, 0))
    assert v.handle_key("J").startswith("the branch at (20.0, 10.0, 0.0) um (2 nodes) joined")
    e = s.neurons[0].morphology
    assert np.allclose(e.xyz[e.parent[np.flatnonzero(np.all(e.xyz == (20, 10, 0), axis=1))[0]]], (0, 15, 0))
    pick((0, 20, 0))
    assert v.handle_key("A").startswith("axon set at (0.0, 20.0, 0.0) um, from the soma")
    assert v.handle_key("q") == UNSAVED  # not closed: the edits are not saved
    msg = v.handle_key("S")
    saved = read_swc(tmp_path / "cell-001.swc")
    assert msg == f"saved {tmp_path / 'cell-001.swc'}"
    assert [h.split(" at ")[0] for h in saved.header if h.startswith("edit:")] == [
        "edit: cut", "edit: the branch", "edit: axon set"]
    assert (saved.types == AXON).sum() == 10 and not v.edited  # C and the spur joined to it
    # a save that fails keeps the edits as unsaved, and says why
    pick((30, 0, 0))
    v.handle_key("e")
    v.output_stem = str(tmp_path / "missing" / "cell")
    assert v.handle_key("S").startswith("not saved: ") and v.edited
    s.close()


def test_extend_to_the_seeds_in_the_viewer(tmp_path):
    """E traces the seeds into the shown reconstruction on the shown stack (as morph trace
    --extend --seeds): a neurite left out is added, the seeds are used up, U undoes it."""
    _gl_or_skip()
    from test_tracing import render_tubes, y_cell

    from morph.io.stack import Stack
    from morph.tracing import trace
    from viewers.app import Viewer

    segs, _gold = y_cell()
    vs = (0.5, 0.5, 1.0)
    st = Stack(render_tubes(segs, (20, 200, 200), vs, soma=((40.0, 40.0, 10.0), 6.0)), vs)
    full = trace(st.data, voxel_size=vs, progress=False)
    part = full.take(full.xyz[:, 0] >= 38)  # without the left neurite, which ends at (10, 60, 8)
    s = Scene((300, 300))
    s.add_morphology(part)
    s.add_stack(st, layers=("mip",))
    s.set_camera("xy", parallel=True)
    v = Viewer(s, output_stem=str(tmp_path / "cell"))
    s.render()
    assert v.handle_key("E").startswith("no seeds yet")
    v.seeds = [np.array([12.0, 58.7, 8.0])]
    msg = v.handle_key("E")
    assert msg.startswith("extended by ") and "from 1 seeds" in msg and not v.seeds
    ext = s.neurons[0].morphology
    assert ext.total_length() > part.total_length() + 20
    assert np.linalg.norm(ext.xyz - (12.0, 58.7, 8.0), axis=1).min() < 2.0
    v.handle_key("U")
    assert s.neurons[0].morphology.total_length() == pytest.approx(part.total_length())
    s.close()


# ------------------------------------------------------------------ bad options, files and outputs
TINY_SWC = """\
1 1 0 0 0 5 -1
2 3 0 10 0 1 1
3 3 5 20 0 1 2
4 3 -5 20 0 1 2
5 2 0 -10 0 0.5 1
6 2 0 -30 0 0.5 5
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    p = tmp_path / "g.swc"
    p.write_text(TINY_SWC)
    return p


@pytest.fixture
def view(capfd):
    """Run ``morph ARGS`` in this process; returns ``(exit code, stderr)`` (what reached
    the file descriptor too, e.g. from ffmpeg)."""
    from morph import progress
    from morph.cli.main import main

    quiet = progress.QUIET

    def run(*args: str) -> tuple[int, str]:
        capfd.readouterr()
        rc = main([str(a) for a in args])
        return rc, capfd.readouterr().err

    yield run
    progress.set_quiet(quiet)


def _clean(err: str) -> bool:
    return "Traceback" not in err and "internal error" not in err and "Warning" not in err


def test_size_must_be_positive_and_bounded(tiny, tmp_path):
    """Sizes VTK cannot allocate would abort the process (std::bad_alloc), and 0 0 would give
    VTK's default 300x300: both are refused with a clear message."""
    from viewers.offscreen import MAX_SIDE, check_size

    out = tmp_path / "v.png"
    for size in (("-5", "100"), ("100000", "100000"), ("0", "0"), ("16385", "10")):
        r = _morph("view", str(tiny), "--screenshot", str(out), "--size", *size, "-q")
        assert r.returncode == 2, (size, r.returncode, r.stderr[-500:])
        assert "--size" in r.stderr and str(MAX_SIDE) in r.stderr and "bad_alloc" not in r.stderr, r.stderr
        assert not out.exists()
    assert str(MAX_SIDE) in _morph("view", "--help").stdout
    assert check_size((MAX_SIDE, 1)) == (MAX_SIDE, 1)
    for bad in ((0, 10), (10, -1), (MAX_SIDE + 1, 10), (10.5, 10)):
        with pytest.raises(ViewerError, match="from 1 to"):
            check_size(bad)


def test_size_that_does_not_fit_in_memory_is_refused(monkeypatch):
    import viewers.offscreen as off

    monkeypatch.setattr(off, "available_memory", lambda **_: 2**30)
    with pytest.raises(ViewerError, match=r"8000x8000 picture needs about .* GB .*--size"):
        off.check_size((8000, 8000), what="--size")
    assert off.check_size((100, 100)) == (100, 100)


def test_movie_frames_are_streamed_to_the_writer(rbp4, tmp_path):
    """write_movie takes frames one at a time: frames already written are not kept."""
    import weakref

    pytest.importorskip("imageio_ffmpeg")
    from viewers.app import write_movie

    for name in ("t.gif", "t.mp4", "frames"):
        def frames(name: str, refs: list) -> Iterator[np.ndarray]:
            for k in range(6):
                alive = [j for j, r in enumerate(refs) if r() is not None]
                assert set(alive) <= {0, k - 1}, (name, k, alive)  # the first frame gives the size
                f = np.full((32, 48, 3), 40 * k, dtype=np.uint8)
                refs.append(weakref.ref(f))
                yield f

        out = write_movie(frames(name, []), tmp_path / name, fps=6)
        import imageio.v3 as iio

        if out.is_dir():
            assert len(list(out.glob("frame_*.png"))) == 6
        else:
            assert iio.imread(out).shape[0] == 6
    _gl_or_skip()
    s = Scene((48, 32))
    s.add_morphology(rbp4, mode="line")
    gen = s.iter_turntable(3)
    assert not isinstance(gen, list) and len(list(gen)) == 3
    s.close()


def test_frames_and_fps_checked_before_rendering(tiny, tmp_path, view):
    from viewers.app import write_movie
    from viewers.offscreen import MAX_FPS, MAX_FRAMES

    out = tmp_path / "m.gif"
    for args, option, bound in (
        (("--frames", "0"), "--frames", str(MAX_FRAMES)),
        (("--frames", "100000"), "--frames", str(MAX_FRAMES)),
        (("--frames", "2.5"), "--frames", str(MAX_FRAMES)),
        (("--fps", "-1"), "--fps", str(MAX_FPS)),
        (("--fps", "0"), "--fps", str(MAX_FPS)),
        (("--fps", "inf"), "--fps", "finite"),
    ):
        rc, err = view("-q", "view", tiny, "--movie", out, *args)
        assert rc == 2 and option in err and bound in err and _clean(err), (args, err)
        assert "Exception ignored" not in err and not out.exists()
    with pytest.raises(ViewerError, match="frames per second"):
        write_movie(iter([np.zeros((8, 8, 3), np.uint8)]), out, fps=-1)
    assert not out.exists()
    _gl_or_skip()
    rc, err = view("-q", "view", tiny, "--movie", out, "--frames", "3", "--fps", "12.5", "--size", "40", "30")
    assert rc == 0 and err == "", err
    import imageio.v3 as iio

    assert iio.imread(out).shape == (3, 30, 40, 3)
    assert iio.immeta(out)["duration"] == 80  # 12.5 frames per second


def test_image_options_checked_always_and_up_front(tiny, tmp_path, view):
    """--opacity, --gamma, --window, --layers, --cmap, --image-cmap are checked with or without
    a stack and whatever the colouring, before anything is read."""
    from viewers.app import build_scene

    out = tmp_path / "v.png"
    for args, said in (
        (("--opacity", "5"), "--opacity"),
        (("--opacity", "-0.1"), "--opacity"),
        (("--gamma", "-1"), "--gamma"),
        (("--gamma", "0"), "--gamma"),
        (("--window", "0"), "--window"),
        (("--level", "nan"), "--level"),
        (("--layers", "bogus"), "--layers"),
        (("--layers", "mip,bogus"), "bogus"),
        (("--cmap", "bogus"), "--cmap"),
        (("--image-cmap", "bogus"), "--image-cmap"),
    ):
        rc, err = view("view", tiny, "--screenshot", out, *args)
        assert rc == 2 and said in err and _clean(err), (args, err)
        assert not out.exists()
    # the library checks them before opening the stack (which does not even exist here)
    for kw, said in (
        ({"layers": ["bogus"]}, "unknown image layer"),
        ({"gamma": -1.0}, "gamma"),
        ({"opacity": 5.0}, "opacity"),
        ({"cmap": "bogus"}, "unknown colour map"),
        ({"image_cmap": "bogus"}, "unknown colour map"),
        ({"size": (0, 10)}, "from 1 to"),
    ):
        with pytest.raises(ViewerError, match=said):
            build_scene([tiny], stack=tmp_path / "missing.tif", **kw)
    _gl_or_skip()
    s = Scene((32, 32))
    with pytest.raises(ViewerError, match="unknown colour map"):
        s.set_color_by("compartment", cmap="bogus")
    s.close()


def test_unreadable_or_empty_mesh_names_the_file(tmp_path, view):
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    rc, err = view("-q", "view", garbage, "--screenshot", tmp_path / "v.png")
    assert rc == 2 and "garbage.ply" in err and "not a readable PLY mesh" in err and _clean(err), err
    empty = tmp_path / "empty.ply"
    empty.write_text(
        "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
    )
    rc, err = view("-q", "view", empty, "--screenshot", tmp_path / "v.png")
    assert rc == 2 and "empty.ply" in err and "empty" in err and _clean(err), err
    assert not (tmp_path / "v.png").exists()
    _gl_or_skip()
    s = Scene((32, 32))
    with pytest.raises(ViewerError, match=r"cell\.ply: the mesh is empty"):
        s.add_mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=int), name="cell.ply")
    s.close()


def test_screenshot_format_follows_the_suffix(tiny, tmp_path, view):
    for name in ("x.bmp", "x", "x.png.tmp"):
        rc, err = view("-q", "view", tiny, "--screenshot", tmp_path / name)
        assert rc == 2 and name in err and ".png or .jpg" in err and _clean(err), err
        assert not (tmp_path / name).exists()
    rc, err = view("-q", "view", tiny, "--movie", tmp_path / "m.webm")
    assert rc == 2 and "unknown movie format" in err
    (tmp_path / "afile").write_text("")
    rc, err = view("-q", "view", tiny, "--movie", tmp_path / "afile", "--force")
    assert rc == 2 and "not a folder" in err and _clean(err), err
    _gl_or_skip()
    magic = {".png": b"\x89PNG", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff", ".JPG": b"\xff\xd8\xff"}
    for suffix, head in magic.items():
        out = tmp_path / f"shot{suffix}"
        rc, err = view("-q", "view", tiny, "--screenshot", out, "--size", "40", "30")
        assert rc == 0, err
        assert out.read_bytes()[: len(head)] == head, suffix
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "shot.jpg").shape == (30, 40, 3)


def test_video_frames_are_padded_without_a_library_warning(tiny, tmp_path, view, capfd):
    pytest.importorskip("imageio_ffmpeg")
    _gl_or_skip()
    import imageio.v3 as iio

    from viewers.app import write_movie

    out = tmp_path / "m.avi"
    # a separate process: pytest would catch imageio's warning (a log record) in this one
    r = _morph("-q", "view", str(tiny), "--movie", str(out), "--frames", "3", "--size", "50", "40")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert iio.imread(out).shape == (3, 48, 64, 3)
    out = tmp_path / "m.mp4"
    rc, err = view("view", tiny, "--movie", out, "--frames", "2", "--size", "50", "40")
    assert rc == 0 and "64x48" in err and "IMAGEIO" not in err and "macro_block" not in err, err
    # frames from elsewhere are padded by the writer, quietly
    frames = [np.full((30, 50, 3), 200, np.uint8)] * 2
    write_movie(frames, tmp_path / "p.mkv", fps=5)
    assert capfd.readouterr().err == ""
    assert iio.imread(tmp_path / "p.mkv").shape == (2, 32, 64, 3)


def test_folder_given_as_a_reconstruction(tmp_path, view):
    d = tmp_path / "dir.swc"
    d.mkdir()
    rc, err = view("-q", "view", d, "--screenshot", tmp_path / "v.png")
    assert rc == 2 and "dir.swc: is a folder, not an SWC file" in err and "image stack" not in err, err
    slices = tmp_path / "slices"
    slices.mkdir()
    (slices / "z000.tif").write_bytes(b"")
    rc, err = view("-q", "view", slices, "--screenshot", tmp_path / "v.png")
    assert rc == 2 and "image stack" in err and "--stack" in err, err
    (tmp_path / "s.tif").write_bytes(b"")
    rc, err = view("-q", "view", tmp_path / "s.tif", "--screenshot", tmp_path / "v.png")
    assert rc == 2 and "image stack" in err and "--stack" in err, err
