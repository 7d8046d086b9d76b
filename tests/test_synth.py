"""Tests of morph.synth (generator, renderer), `morph synth` and the sample stacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from morph.cli.main import main
from morph.compare import compare
from morph.errors import MorphError
from morph.io import read_stack, read_swc, write_swc
from morph.morphology import APICAL, AXON, BASAL, SOMA, Morphology
from morph.synth import (
    PRESETS,
    clip_to_box,
    generate_neuron,
    neuron_params,
    render_params,
    render_stack,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet():
    from morph import progress

    old = progress.QUIET
    progress.set_quiet(True)
    yield
    progress.set_quiet(old)


# ---------------------------------------------------------------------------- generator
def test_generator_reproducible_from_seed():
    a = generate_neuron(11)
    b = generate_neuron(11)
    c = generate_neuron(12)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.radius, b.radius)
    np.testing.assert_array_equal(a.parent, b.parent)
    assert len(a) != len(c) or not np.allclose(a.xyz, c.xyz)


def _bifurcation_angles(m: Morphology) -> np.ndarray:
    """Angle between the first edges of the two daughters at every bifurcation."""
    out = []
    for bp in m.branch_points:
        kids = m.children(int(bp))
        if kids.size != 2 or m.types[kids[0]] != m.types[kids[1]]:
            continue
        v = m.xyz[kids] - m.xyz[bp]
        c = v[0] @ v[1] / (np.linalg.norm(v[0]) * np.linalg.norm(v[1]))
        out.append(np.degrees(np.arccos(np.clip(c, -1, 1))))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pyramidal_within_realistic_ranges(seed):
    m = generate_neuron(seed, cell_type="pyramidal")
    tc = m.type_counts()
    assert tc[SOMA] == 1 and tc[AXON] > 0 and tc[APICAL] > 0
    stems = m.types[m.parent_is_soma]
    assert 3 <= int((stems == BASAL).sum()) <= 9
    assert int((stems == APICAL).sum()) == 1
    assert 3.0 <= m.soma_radius <= 10.0
    basal = m.total_length("basal_dendrite")
    apical = m.total_length("apical_dendrite")
    assert 500 < basal < 15000 and 500 < apical < 10000
    assert 300 < m.total_length("axon") < 6000
    # thin distal dendrites: tips under 0.5 um in diameter, stems thicker
    dend_tips = m.tips[np.isin(m.types[m.tips], (BASAL, APICAL))]
    assert np.all(2 * m.radius[dend_tips] < 0.5)
    assert m.radius[m.types == APICAL].max() > 1.0
    assert m.radius.max() <= 10.0
    # branch lengths, angles, tortuosity
    sec = m.sections
    dend = np.isin(sec.type, (BASAL, APICAL)) & (sec.length > 0)
    assert 5 < np.median(sec.length[dend]) < 80
    ang = _bifurcation_angles(m)
    assert 25 < np.median(ang) < 110
    chord = np.linalg.norm(m.xyz[sec.end] - m.xyz[np.maximum(sec.hang, 0)], axis=1)
    ok = dend & (sec.hang >= 0) & ~m.soma_mask[np.maximum(sec.hang, 0)] & (sec.length > 10)
    contraction = chord[ok] / sec.length[ok]
    assert 0.75 < np.median(contraction) < 0.99  # tortuous, but not wildly
    # apical towards the pia (-y), axon away from it
    assert m.xyz[m.types == APICAL, 1].mean() < m.soma_center[1] < m.xyz[m.types == AXON, 1].mean()


def test_aspiny_has_no_apical():
    m = generate_neuron(5, cell_type="aspiny")
    assert APICAL not in m.type_counts() and m.type_counts()[AXON] > 0


def test_axon_origin_and_initial_segment():
    p = neuron_params("pyramidal", axon_on_dendrite=1.0, ais_radius=0.25)
    m = generate_neuron(2, p)
    first = np.flatnonzero((m.types == AXON) & (m.parent >= 0) & (m.types[np.maximum(m.parent, 0)] != AXON))
    assert first.size == 1
    assert m.types[m.parent[first[0]]] == BASAL  # an axon-carrying dendrite
    m2 = generate_neuron(2, cell_type="pyramidal", axon_on_dendrite=0.0)
    first2 = np.flatnonzero((m2.types == AXON) & m2.parent_is_soma)
    assert first2.size == 1
    # the initial segment is thin: its first ~20 um have the AIS radius
    ax = m.subtree(int(first[0]))
    near = ax.path_distance < 20
    assert np.allclose(ax.radius[near], 0.25)


def test_generator_options():
    m = generate_neuron(0, cell_type="pyramidal", n_basal=(5, 5), apical=False, axon=False)
    assert int((m.types[m.parent_is_soma] == BASAL).sum()) == 5
    assert set(m.type_counts()) == {SOMA, BASAL}
    small = generate_neuron(0, scale=0.3)
    big = generate_neuron(0, scale=1.0)
    assert small.total_length() < 0.6 * big.total_length()
    with pytest.raises(MorphError):
        generate_neuron(0, cell_type="purkinje")
    with pytest.raises(MorphError):
        neuron_params("pyramidal", n_basal=(5, 2))


# ---------------------------------------------------------------------------- renderer
def straight_cell(radius: float, length: float = 30.0) -> Morphology:
    """A straight tube along x in the plane z = 10 um, no soma."""
    xs = np.arange(0.0, length + 0.5, 1.0)
    n = xs.size
    xyz = np.column_stack([xs + 5, np.full(n, 8.0), np.full(n, 10.0)])
    return Morphology(xyz, np.full(n, radius), np.full(n, BASAL), np.arange(n) - 1)


def _line_values(s, x0=12, x1=28):
    vx, vy, vz = s.voxel_size
    g = s.gold
    j = int(round(g.xyz[0, 1] / vy))
    k = int(round(g.xyz[0, 2] / vz))
    i0 = int(round((g.xyz[0, 0] + x0 - 5) / vx))
    i1 = int(round((g.xyz[0, 0] + x1 - 5) / vx))
    return s.data[k, j, i0:i1].astype(float)


def test_brightfield_contrast_thick_and_thin():
    vs = (0.25, 0.25, 0.75)
    thick = render_stack(straight_cell(1.0), preset="easy", voxel_size=vs, margin=8, seed=1)
    thin = render_stack(straight_cell(0.2), preset="easy", voxel_size=vs, margin=8, seed=1)
    bg = np.median(thick.data)
    assert 185 <= bg <= 195
    assert 85 <= np.median(_line_values(thick)) <= 120  # thick neurites around 100
    dip = bg - np.median(_line_values(thin))
    assert 2 <= dip <= 25  # thin ones barely below background
    # realistic preset: same background level, uneven and noisier
    real = render_stack(
        straight_cell(1.0), voxel_size=vs, margin=8, seed=1, debris_density=0, fragment_density=0
    )
    assert abs(np.median(real.data) - bg) < 5
    far = real.data[:, :4, :]
    assert far.std() > thick.data[:, :4, :].std()


def test_dark_voxels_where_the_gold_is():
    m = generate_neuron(3, cell_type="aspiny", scale=0.25)
    s = render_stack(m, preset="easy", voxel_size=(0.3, 0.3, 1.0), seed=2)
    g = s.gold
    vs = np.asarray(s.voxel_size)
    assert g.voxel_size == s.voxel_size
    # gold in the stack's frame: inside the volume
    ext = (np.array(s.data.shape[::-1]) - 1) * vs
    assert np.all(g.xyz >= -1e-9) and np.all(g.xyz <= ext + 1e-9)
    # voxels on thick parts of the gold are dark; far from it, background
    thick = np.flatnonzero((g.radius > 0.5) & ~g.soma_mask)
    idx = np.rint(g.xyz[thick] / vs).astype(int)
    on = s.data[idx[:, 2], idx[:, 1], idx[:, 0]].astype(float)
    bg = np.median(s.data)
    assert np.median(on) < bg - 40
    # the soma is the darkest structure
    c = np.rint(g.soma_center / vs).astype(int)
    assert s.data[c[2], c[1], c[0]] < 100
    from scipy.spatial import cKDTree

    zz, yy, xx = np.meshgrid(*[np.arange(0, n, 7) for n in s.data.shape], indexing="ij")
    pts = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()]) * vs
    d, _ = cKDTree(g.resample(0.5).xyz).query(pts)
    far = d > 12
    vals = s.data[zz.ravel()[far], yy.ravel()[far], xx.ravel()[far]].astype(float)
    assert abs(np.median(vals) - 190) < 6 and np.percentile(vals, 1) > 165


def test_fluorescence_is_inverse():
    vs = (0.25, 0.25, 0.75)
    bf = render_stack(straight_cell(1.0), preset="easy", voxel_size=vs, margin=8, seed=1)
    fl = render_stack(
        straight_cell(1.0), preset="easy", voxel_size=vs, margin=8, seed=1, modality="fluorescence"
    )
    bg = np.median(fl.data)
    assert bg < 30
    assert np.median(_line_values(fl)) > bg + 80
    # bright where brightfield is dark
    assert np.corrcoef(bf.data.ravel().astype(float), fl.data.ravel().astype(float))[0, 1] < -0.8


def test_presets_order_difficulty():
    m = generate_neuron(4, cell_type="aspiny", scale=0.25)
    kw = {"voxel_size": (0.3, 0.3, 1.0), "seed": 5}
    easy = render_stack(m, preset="easy", **kw)
    real = render_stack(m, preset="realistic", **kw)
    hard = render_stack(m, preset="hard", **kw)
    assert easy.clutter["debris"] == 0 and easy.clutter["fragment_segments"] == 0
    assert real.clutter["debris"] < hard.clutter["debris"]

    # noise + texture measured away from the cell (first slice corners)
    def bg_sd(s):
        return float(np.std(s.data[:, :15, :15].astype(float)))

    assert bg_sd(easy) < bg_sd(real) < bg_sd(hard)
    assert set(PRESETS) == {"easy", "realistic", "hard"}
    with pytest.raises(MorphError):
        render_params("insane")
    with pytest.raises(MorphError):
        render_params("easy", no_such_knob=1)
    with pytest.raises(MorphError):
        render_params("easy", modality="xray")


def test_background_texture_does_not_repeat_along_z():
    """The texture at one x-y position is uncorrelated with itself a few slices up or down:
    a texture repeating every few slices stacks each dark grain into a column through the
    stack, which a tracer takes for a neurite running along z."""
    from morph.synth.render import _Texture

    p = render_params("realistic", voxel_size=(0.5, 0.5, 1.0))
    tex = _Texture(p, np.asarray(p.voxel_size), np.random.default_rng(0), (120, 120)).slab(0, 50)
    assert tex.shape == (50, 120, 120)
    assert 0.8 * p.texture < float(tex.std()) < 1.2 * p.texture
    near = np.corrcoef(tex[:-1].ravel(), tex[1:].ravel())[0, 1]
    assert near > 0.3  # smooth along z at its own scale
    for lag in range(4, 40):
        r = np.corrcoef(tex[:-lag].ravel(), tex[lag:].ravel())[0, 1]
        assert abs(r) < 0.1, (lag, r)


def test_clutter_stays_off_the_neuron():
    m = generate_neuron(6, cell_type="aspiny", scale=0.25)
    with_c = render_stack(m, preset="hard", voxel_size=(0.3, 0.3, 1.0), seed=3)
    assert with_c.clutter["debris"] > 0
    # the gold is the neuron only: same gold whatever the clutter
    no_c = render_stack(
        m, preset="hard", voxel_size=(0.3, 0.3, 1.0), seed=3, debris_density=0, fragment_density=0
    )
    np.testing.assert_allclose(with_c.gold.xyz, no_c.gold.xyz)
    assert (with_c.data < no_c.data - 30).sum() > 50  # dark clutter added somewhere


def test_clutter_model_is_what_was_drawn_off_the_neuron(tmp_path, capsys):
    """The render's clutter comes out as a forest in the gold's frame (fragments as chains,
    debris as single nodes), clear of the neuron, saved beside the gold; `morph compare
    --clutter` measures a trace against it."""
    from morph.synth.render import clutter_path

    m = generate_neuron(6, cell_type="aspiny", scale=0.25)
    st = render_stack(m, preset="hard", voxel_size=(0.3, 0.3, 1.0), seed=3)
    c = st.clutter_model
    roots = c.parent < 0
    single = roots & (np.bincount(c.parent[~roots], minlength=len(c)) == 0)
    assert int(single.sum()) == st.clutter["debris"] > 0
    assert int((~roots).sum()) == st.clutter["fragment_segments"] > 0  # one edge per segment drawn
    assert set(np.unique(c.types)) == {0}
    p = st.params
    lo, hi = p.fragment_radius
    assert np.all((c.radius[~single] >= lo) & (c.radius[~single] <= hi))
    # every piece of clutter lies beyond the clearance (plus the soma's radius) from the neuron
    from scipy.spatial import cKDTree

    d = cKDTree(st.gold.resample(1.0).xyz).query(c.xyz)[0]
    assert d.min() > p.clutter_clearance
    # the darkest voxels of a fragment's chain are in the image (the frame is the gold's)
    chain = c.xyz[~single][:20]
    zyx = np.rint(chain / np.asarray(st.voxel_size)).astype(int)[:, ::-1]
    inside = np.all((zyx >= 0) & (zyx < st.data.shape), axis=1)
    bg = float(np.median(st.data))
    assert np.median(st.data[tuple(zyx[inside].T)]) < bg - 10
    tif, swc = st.save(tmp_path / "h")
    back = read_swc(clutter_path(tmp_path / "h"))
    assert len(back) == len(c) and "not part of the gold" in "\n".join(back.header)
    # the easy preset draws none: no clutter file, and --force removes one left by a render before
    easy = render_stack(m, preset="easy", voxel_size=(0.3, 0.3, 1.0), seed=3)
    assert len(easy.clutter_model) == 0
    with pytest.raises(MorphError):
        easy.save(tmp_path / "h")
    easy.save(tmp_path / "h", force=True)
    assert not clutter_path(tmp_path / "h").exists()
    # the CLI names it, and compare measures a trace lying on it
    assert main(["synth", "-o", str(tmp_path / "c"), "--seed", "6", "--cell-type", "aspiny", "--scale", "0.25",
                 "--voxel", "0.3", "0.3", "1.0", "--preset", "hard", "-q"]) == 0
    assert "c.clutter.swc" in capsys.readouterr().out
    g, cl = read_swc(tmp_path / "c.gold.swc"), read_swc(tmp_path / "c.clutter.swc")
    on = compare(g.merge(cl.subtree(0)), g, clutter=cl)
    assert on.clutter_length == pytest.approx(cl.subtree(0).total_length(), rel=0.1)
    assert compare(g, g, clutter=cl).clutter_length == 0.0


def test_clip_to_box():
    # a line along x from -5 to 15, then back out and in again
    xs = np.array([-5, 0.5, 5, 9.5, 15, 9.0, 5.0])
    ys = np.array([0, 0, 0, 0, 0, 5, 5.0])
    m = Morphology(np.column_stack([xs, ys, np.zeros(7)]), np.ones(7), np.full(7, 3), np.arange(7) - 1)
    c = clip_to_box(m, [0, -1, -1], [10, 6, 1])
    assert c.roots.size == 2
    assert np.isclose(c.xyz[:, 0].min(), 0.0) and np.isclose(c.xyz[:, 0].max(), 10.0)
    assert c.total_length() == pytest.approx(10.0 + _reentry_length())


def _reentry_length() -> float:
    # from the face x = 10 on the segment (15,0)->(9,5) to (9,5), then (9,5)->(5,5)
    t = (15 - 10) / 6
    p = np.array([15, 0]) + t * (np.array([9, 5]) - np.array([15, 0]))
    return float(np.linalg.norm(np.array([9, 5]) - p) + 4.0)


def test_render_real_swc_in_voxel_units(data, tmp_path):
    m = read_swc(data / "images" / "diadem_OP" / "OP_3.gold.swc")
    m = m._derive(units="voxel", voxel_size=(0.3, 0.3, 0.9))
    s = render_stack(m, preset="easy", voxel_size=(0.6, 0.6, 1.8), seed=0, modality="fluorescence")
    assert s.gold.units == "um"
    r = compare(s.gold, m.to_micrometres().translate(-s.origin))
    assert r.f1 == pytest.approx(1.0)


# ---------------------------------------------------------------------------- CLI + samples
def test_cli_synth_writes_and_refuses_overwrite(tmp_path, capsys):
    pre = tmp_path / "cell"
    args = [
        "synth",
        "-o",
        str(pre),
        "--seed",
        "3",
        "--cell-type",
        "aspiny",
        "--scale",
        "0.2",
        "--voxel",
        "0.4",
        "0.4",
        "1.2",
        "--preset",
        "easy",
        "-q",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cell.tif" in out and "cell.gold.swc" in out
    st = read_stack(tmp_path / "cell.tif")
    assert st.voxel_size == pytest.approx((0.4, 0.4, 1.2)) and st.data.dtype == np.uint8
    g = read_swc(tmp_path / "cell.gold.swc")
    assert g.voxel_size == pytest.approx((0.4, 0.4, 1.2)) and g.units == "um"
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--force", "--set", "haze=0.3", "--set", "n_basal=4,4"]) == 0
    g2 = read_swc(tmp_path / "cell.gold.swc")
    assert int((g2.types[g2.parent_is_soma] == BASAL).sum()) == 4


def test_cli_synth_from_swc_and_bad_input(tmp_path, capsys):
    cell = straight_cell(0.8)
    src = write_swc(cell, tmp_path / "line.swc")
    assert (
        main(["synth", "-o", str(tmp_path / "l"), "--from", str(src), "--crop", "20", "20", "20", "-q"]) == 0
    )
    g = read_swc(tmp_path / "l.gold.swc")
    assert g.total_length() == pytest.approx(20.0, abs=0.6)  # clipped by the crop
    assert main(["synth", "-o", str(tmp_path / "x"), "--from", str(tmp_path / "missing.swc")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["synth", "-o", str(tmp_path / "x"), "--set", "nonsense=1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main(["synth", "-o", str(tmp_path / "x"), "--set", "haze=2"]) == 2
    assert main(["synth", "-o", str(tmp_path / "x"), "--from", str(src), "--scale", "2"]) == 2
    assert main(["synth", "-o", str(tmp_path / "nodir" / "x")]) == 2
    assert _run(["synth", "-o", str(tmp_path / "x"), "--preset", "insane"]) == 2  # usage error
    assert not list(tmp_path.glob("x*"))


SAMPLES = ["pyramidal_brightfield", "aspiny_brightfield", "aspiny_fluorescence"]


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_stacks(name):
    d = ROOT / "sample_stacks"
    st = read_stack(d / f"{name}.tif")
    g = read_swc(d / f"{name}.gold.swc")
    assert st.voxel_size == pytest.approx((0.3, 0.3, 1.0)) and st.voxel_size_known
    assert g.voxel_size == pytest.approx(st.voxel_size)
    ext = (np.array(st.shape[::-1]) - 1) * np.asarray(st.voxel_size)
    assert np.all(g.xyz >= -1e-6) and np.all(g.xyz <= ext + 1e-6)
    assert st.polarity() == ("fluorescence" if "fluo" in name else "brightfield")
    tc = g.type_counts()
    assert tc[SOMA] == 1 and tc[AXON] > 0 and tc[BASAL] > 0
    if name.startswith("pyramidal"):
        assert tc[APICAL] > 0
        first_axon = np.flatnonzero(
            (g.types == AXON) & (g.types[np.maximum(g.parent, 0)] != AXON) & (g.parent >= 0)
        )
        assert np.all(g.types[g.parent[first_axon]] == BASAL)  # axon-carrying dendrite
    else:
        assert APICAL not in tc


def test_sample_stacks_small():
    total = sum(p.stat().st_size for p in (ROOT / "sample_stacks").iterdir())
    assert total < 8e6


def _run(argv: list[str]) -> int:
    """Exit code of ``morph ARGV`` (argparse usage errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def test_cli_synth_refuses_a_bad_seed_and_a_prefix_without_a_name(tmp_path, capsys, monkeypatch):
    assert _run(["synth", "-o", str(tmp_path / "s"), "--seed", "-1", "--preset", "easy"]) == 2
    err = capsys.readouterr().err
    assert "argument --seed: expected a whole number (the random seed), got '-1'" in err
    assert "internal error" not in err
    monkeypatch.chdir(tmp_path)
    for prefix in (".", "..", "sub/", str(tmp_path) + "/", "./.tif"):
        assert _run(["synth", "-o", prefix, "--preset", "easy", "--scale", "0.3", "--crop", "40", "40", "20"]) == 2
        err = capsys.readouterr().err
        assert f"-o {prefix}: the output must be a prefix with a name" in err, err
        assert "give a prefix such as out/cell" in err and "internal error" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("haze=abc", "--set haze=abc: haze must be a number in [0, 1); got 'abc'"),
        ("haze=1", "--set haze=1: haze must be a number in [0, 1); got 1"),
        ("n_basal=-3", "--set n_basal=-3: n_basal must be two whole numbers LO,HI (LO <= HI), each 1 or more; got -3"),
        ("n_basal=5,2", "n_basal must be two whole numbers LO,HI (LO <= HI), each 1 or more; got (5, 2)"),
        ("max_branch_order=2.5", "max_branch_order must be a whole number 0 or more; got 2.5"),
        ("apical=maybe", "apical must be True or False; got 'maybe'"),
        ("read_noise=-1", "read_noise must be a number 0 or more; got -1"),
        ("read_noise=nan", "read_noise must be a number 0 or more; got 'nan'"),
        ("gap_length=3", "gap_length must be two numbers LO,HI (LO <= HI), each 0 or more; got 3"),
        ("crop=1,2", "crop must be three numbers X,Y,Z, each more than 0, or None; got (1, 2)"),
        ("seed=-1", "seed must be a whole number 0 or more; got -1"),
        ("cell_type=aspiny", "--set cell_type=aspiny: cell_type has an option of its own (give --cell-type)"),
        ("modality=fluorescence", "modality has an option of its own (give --modality)"),
        ("nonsense=1", "--set nonsense=1: unknown parameter 'nonsense'"),
    ],
)
def test_cli_synth_set_names_the_parameter_and_what_it_must_be(tmp_path, capsys, item, said):
    assert main(["synth", "-o", str(tmp_path / "s"), "--preset", "easy", "--set", item, "-q"]) == 2
    err = capsys.readouterr().err
    assert said in err, err
    assert "not supported between" not in err and "unpack" not in err and "internal error" not in err
    assert not list(tmp_path.iterdir())


def test_parameters_are_checked_by_type_and_range():
    with pytest.raises(MorphError, match=r"n_basal must be two whole numbers .*; got -3"):
        neuron_params("pyramidal", n_basal=-3)
    with pytest.raises(MorphError, match=r"axon_on_dendrite must be a number in \[0, 1\]; got 2"):
        neuron_params("aspiny", axon_on_dendrite=2)
    with pytest.raises(MorphError, match=r"haze must be a number in \[0, 1\); got 'abc'"):
        render_params("easy", haze="abc")
    with pytest.raises(MorphError, match=r"voxel_size must be three numbers X,Y,Z, each more than 0"):
        render_params("easy", voxel_size=(0.3, 0, 1))
    with pytest.raises(MorphError, match=r"bead_spacing must be a number more than 0; got 0"):
        render_params("easy", bead_spacing=0)
    # numpy numbers, lists for ranges, 0/1 for flags and None for an optional field are fine
    p = neuron_params("pyramidal", n_basal=[np.int64(3), 4], scale=np.float32(0.5), apical=0)
    assert p.n_basal == [3, 4] and not p.apical
    rp = render_params("easy", voxel_size=np.array([0.3, 0.3, 1.0]), crop=None, seed=np.int64(2))
    assert rp.voxel_size == (0.3, 0.3, 1.0) and rp.crop is None
