"""Radii measured on the image with the blur taken out (morph.tracing.radius)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from morph.morphology import Morphology
from morph.tracing import radius as rad

VS = (0.2, 0.2, 0.5)
SHAPE = (40, 200, 260)  # z, y, x: 52 x 40 x 20 um


def tubes_image(tubes: list[tuple[float, float, float]], *, blur_xy: float, blur_z: float, angle_deg: float = 0.0,
                stain: float = 40.0, noise: float = 0.5, seed: int = 0) -> np.ndarray:
    """Straight cylinders of radius r at height y0 (um) in the mid plane, running at
    ``angle_deg`` to x: the projected thickness across them, blurred by a Gaussian of
    ``blur_xy`` across and ``blur_z`` along z (what the tracer's image is after denoising)."""
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    x, y, z = xx * VS[0], yy * VS[1], zz * VS[2]
    a = np.deg2rad(angle_deg)
    img = np.zeros(SHAPE)
    z0 = SHAPE[0] * VS[2] / 2
    for y0, r, _ in tubes:
        across = -(x - 26.0) * np.sin(a) + (y - y0) * np.cos(a)
        thick = 2.0 * np.sqrt(np.clip(r * r - across**2, 0.0, None))
        img += stain * thick * np.exp(-0.5 * ((z - z0) / blur_z) ** 2)
    # the lateral blur, on a fine grid; z already carries its own
    img = ndi.gaussian_filter(img, (0, blur_xy / VS[1], blur_xy / VS[0]))
    img += np.random.default_rng(seed).normal(0, noise, SHAPE)
    return img.astype(np.float32)


def tube_tree(tubes: list[tuple[float, float, float]], *, angle_deg: float = 0.0, off_um: float = 0.0) -> Morphology:
    """One unbranched root per tube, nodes every 1 um along its middle 30 um (optionally
    off the centre line by ``off_um`` across it, as a traced line often is)."""
    a = np.deg2rad(angle_deg)
    d = np.array([np.cos(a), np.sin(a), 0.0])
    n_ = np.array([-np.sin(a), np.cos(a), 0.0])
    xyz, par = [], []
    for y0, _r, _ in tubes:
        c = np.array([26.0, y0, SHAPE[0] * VS[2] / 2])
        t = np.arange(-15, 16, 1.0)
        start = len(xyz)
        for i, ti in enumerate(t):
            xyz.append(c + ti * d + off_um * n_)
            par.append(-1 if i == 0 else start + i - 1)
    xyz = np.asarray(xyz)
    return Morphology(xyz, np.ones(len(xyz)), np.full(len(xyz), 3), np.asarray(par), units="um")


def per_tube(m: Morphology, r: np.ndarray, tubes) -> list[float]:
    k = len(m) // len(tubes)
    return [float(np.median(r[i * k:(i + 1) * k])) for i in range(len(tubes))]


def test_half_width_table_limits() -> None:
    # a line: the blur's own half width; no blur: r sqrt(3) / 2
    assert rad.radius_from_half_width(np.sqrt(2 * np.log(2)), 1.0) == pytest.approx(0.0, abs=1e-6)
    assert rad.radius_from_half_width(0.5, 1.0) == 0.0  # narrower than the blur: no radius
    assert rad.radius_from_half_width(100.0, 1.0) == pytest.approx(100 * 2 / np.sqrt(3), rel=1e-3)
    rho, h = rad._hwhm_table()
    assert np.all(np.diff(h) > 0) and h[-1] / rho[-1] == pytest.approx(np.sqrt(3) / 2, rel=0.01)


@pytest.mark.parametrize("angle,off", [(0.0, 0.0), (35.0, 0.4)])
def test_measure_radii_recovers_thick_and_thin_tubes(angle: float, off: float) -> None:
    """Tubes from 0.25 to 2.5 um seen through a 0.85 um blur (about what the tracer's
    denoising leaves): the thick ones by their width, the thin ones (whose width is the
    blur's) by their stain, calibrated on the thick. A tilted tree and a centre line 0.4 um
    off the tube's do not change the result."""
    tubes = [(6.0, 2.5, 0), (14.0, 1.5, 0), (21.0, 0.8, 0), (27.0, 0.5, 0), (33.0, 0.25, 0)]
    blur = rad.total_blur(VS, sigma_um=0.8, psf_sigma_um=0.2)
    img = tubes_image(tubes, blur_xy=np.sqrt(blur**2 - VS[0] ** 2 / 4), blur_z=1.5, angle_deg=angle)
    m = tube_tree(tubes, angle_deg=angle, off_um=off)
    r, rep = rad.measure_radii(m, img, VS, noise=0.5, sigma_um=0.8, psf_sigma_um=0.2, min_calibration=20)
    got = per_tube(m, r, tubes)
    assert rep.calibrated, rep.note()
    for (_y, true, _), g in zip(tubes, got):
        assert g == pytest.approx(true, rel=0.2), (true, g, got)
    # what the pruning's half width says: about the blur for all but the thickest
    from morph.tracing.prune import estimate_radii

    old = per_tube(m, estimate_radii(m, img, VS), tubes)
    assert min(old[2:]) > 0.9


def test_measure_radii_without_calibration_keeps_the_width() -> None:
    """A cell whose neurites are all thinner than the blur: no calibration of the stain; the
    radii come from the widths (never the blur's own size) and the report says so."""
    tubes = [(10.0, 0.3, 0), (20.0, 0.4, 0), (30.0, 0.3, 0)]
    blur = rad.total_blur(VS, sigma_um=0.8, psf_sigma_um=0.2)
    img = tubes_image(tubes, blur_xy=np.sqrt(blur**2 - VS[0] ** 2 / 4), blur_z=1.5, stain=200.0)
    m = tube_tree(tubes)
    r, rep = rad.measure_radii(m, img, VS, noise=0.5, sigma_um=0.8, psf_sigma_um=0.2, min_calibration=20)
    assert not rep.calibrated and "no calibration" in rep.note() and "overestimate" in rep.note()
    assert np.all(np.asarray(per_tube(m, r, tubes)) < 0.6)


def test_measure_radii_calibrated_on_the_soma_when_the_neurites_cannot() -> None:
    """Neurites all thinner than the blur beside a soma of the same stain: the soma's core
    (:func:`soma_stain`) gives the stain per unit volume, and the thin neurites' radii come
    from their stain; without it they come from their width (the test above)."""
    rho, s = 100.0, rad.total_blur(VS, sigma_um=0.8, psf_sigma_um=0.2)
    z0 = SHAPE[0] * VS[2] / 2
    y = np.arange(SHAPE[1]) * VS[1]
    z = np.arange(SHAPE[0]) * VS[2]
    tubes = [(8.0, 0.25), (14.0, 0.35), (20.0, 0.25)]
    img = np.zeros(SHAPE)
    disk = np.stack(np.meshgrid(np.arange(-0.5, 0.5, 0.01), np.arange(-0.5, 0.5, 0.01)), -1).reshape(-1, 2)
    for y0, r in tubes:  # a cylinder along x: its disk blurred by the 2-D Gaussian across it
        d = disk[np.linalg.norm(disk, axis=1) <= r]
        g = np.exp(-0.5 * (((y[None, :, None] - y0 - d[:, 0, None, None]) ** 2
                            + (z[None, None, :] - z0 - d[:, 1, None, None]) ** 2) / s**2)).sum(0)
        img[:, :, 20:220] += (rho * 1e-4 * g / (2 * np.pi * s**2)).T[:, :, None]
    zz, yy, xx = np.meshgrid(z, y, np.arange(SHAPE[2]) * VS[0], indexing="ij")
    centre = np.array([44.0, 30.0, z0])
    ball = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (zz - centre[2]) ** 2 <= 5.0**2
    img += ndi.gaussian_filter(ball * rho, (s / VS[2], s / VS[1], s / VS[0]))
    img = (img + np.random.default_rng(0).normal(0, 0.5, SHAPE)).astype(np.float32)
    xyz = [[x, y0, z0] for y0, _r in tubes for x in np.arange(11.0, 41.0)]
    par = [-1 if i % 30 == 0 else i - 1 for i in range(len(xyz))]
    m = Morphology(np.asarray(xyz), np.ones(len(xyz)), np.full(len(xyz), 3), np.asarray(par), units="um")
    ref = rad.soma_stain(img, centre, VS, radius_um=5.0, blur_um=s)
    assert ref == pytest.approx(rho, rel=0.03)
    r, rep = rad.measure_radii(m, img, VS, noise=0.5, sigma_um=0.8, psf_sigma_um=0.2, min_calibration=20,
                               stain_reference=ref)
    assert rep.calibrated and rep.reference == "soma" and "soma's core" in rep.note()
    for k, (_y0, true) in enumerate(tubes):
        assert np.median(r[30 * k:30 * (k + 1)]) == pytest.approx(true, rel=0.25), (true, r[30 * k:30 * (k + 1)])
    r0, rep0 = rad.measure_radii(m, img, VS, noise=0.5, sigma_um=0.8, psf_sigma_um=0.2, min_calibration=20)
    assert not rep0.calibrated
    # a soma too small for a core clear of the blur, or beyond the image: no reference
    assert np.isnan(rad.soma_stain(img, centre, VS, radius_um=2.0, blur_um=s))
    assert np.isnan(rad.soma_stain(img, [500.0, 500.0, 500.0], VS, radius_um=5.0, blur_um=s))


def test_measure_radii_no_signal_takes_the_section_median() -> None:
    """Nodes beyond a neurite's end (no profile) take their section's radius."""
    tubes = [(20.0, 1.2, 0)]
    blur = rad.total_blur(VS, sigma_um=0.8, psf_sigma_um=0.2)
    img = tubes_image(tubes, blur_xy=np.sqrt(blur**2 - VS[0] ** 2 / 4), blur_z=1.5)
    img[:, :, 180:] = np.random.default_rng(1).normal(0, 0.5, img[:, :, 180:].shape)  # the tube ends at x = 36 um
    m = tube_tree(tubes)
    r, _rep = rad.measure_radii(m, img, VS, noise=0.5, sigma_um=0.8, psf_sigma_um=0.2)
    beyond = m.xyz[:, 0] > 38.0
    assert beyond.sum() >= 2
    assert np.all(np.abs(r[beyond] - np.median(r[~beyond])) < 0.2), r[beyond]


def test_soma_radius_is_where_the_ball_falls_half_way() -> None:
    """A ball of 5 um blurred by 0.85 um across and 1.5 um along z, with two thick stems
    leaving it (as bright as the ball, so their lines never fall half way): the radius is the
    ball's, not the stems' length and not the blur's outer edge (4.73 um: the z blur dims the
    ball's section near its edge, where the ball is thin along z); NaN on a flat image."""
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    x, y, z = xx * VS[0], yy * VS[1], zz * VS[2]
    c = np.array([26.0, 20.0, 10.0])
    d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
    body = (d <= 5.0).astype(float)
    body += (np.abs(y - c[1]) <= 1.5) * (np.abs(z - c[2]) <= 1.5) * (x > c[0])  # a stem to +x
    body += (np.abs(x - c[0]) <= 1.5) * (np.abs(z - c[2]) <= 1.5) * (y > c[1])  # a stem to +y
    img = ndi.gaussian_filter(60.0 * np.minimum(body, 1.0), (1.5 / VS[2], 0.85 / VS[1], 0.85 / VS[0]))
    img += np.random.default_rng(2).normal(0, 0.5, SHAPE)
    r = rad.measure_soma_radius(img.astype(np.float32), c, VS, radius_hint=8.0)
    assert r == pytest.approx(5.0, rel=0.08)
    assert np.isnan(rad.measure_soma_radius(np.zeros(SHAPE, np.float32), c, VS, radius_hint=8.0))


def test_soma_outline_follows_an_elongated_body_and_leaves_its_stem_out() -> None:
    """An ellipsoidal body (semi-axes 8 and 4.5 um in x-y, major axis at 30 degrees from +x,
    5 um along z) blurred like the tracer's image, with a thick stem leaving it at 120
    degrees: the outline's area, axes and orientation are the body's (the stem's directions
    replaced by their neighbours), and it survives the SWC header; none on a flat image."""
    from morph.soma_outline import outline_from_header
    from morph.tracing.soma import measure_soma_outline

    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    x, y, z = xx * VS[0], yy * VS[1], zz * VS[2]
    c = np.array([26.0, 20.0, 10.0])
    t = np.deg2rad(30.0)
    u = (x - c[0]) * np.cos(t) + (y - c[1]) * np.sin(t)
    v = -(x - c[0]) * np.sin(t) + (y - c[1]) * np.cos(t)
    body = ((u / 8.0) ** 2 + (v / 4.5) ** 2 + ((z - c[2]) / 5.0) ** 2 <= 1.0).astype(float)
    s = np.deg2rad(120.0)
    along = (x - c[0]) * np.cos(s) + (y - c[1]) * np.sin(s)
    across = -(x - c[0]) * np.sin(s) + (y - c[1]) * np.cos(s)
    body += (along > 0) * (np.abs(across) <= 1.2) * (np.abs(z - c[2]) <= 1.2)  # the stem
    img = ndi.gaussian_filter(60.0 * np.minimum(body, 1.0), (1.5 / VS[2], 0.85 / VS[1], 0.85 / VS[0]))
    img = (img + np.random.default_rng(3).normal(0, 0.5, SHAPE)).astype(np.float32)

    o = measure_soma_outline(img, c, VS, radius_hint=6.0)
    assert o is not None and o.radii.size == 72
    major, minor, ang = o.axes()
    assert major == pytest.approx(8.0, rel=0.08) and minor == pytest.approx(4.5, rel=0.1)
    assert ang == pytest.approx(30.0, abs=4.0)
    assert o.area == pytest.approx(np.pi * 8.0 * 4.5, rel=0.12)
    # the stem's directions (it stays dark beyond the edge) replaced by their neighbours;
    # every direction within 12 % of the ellipse's own radius (0.94-0.96 away from the
    # stem: the blur; the stem's base widens the outline 10 degrees either side of it)
    th = o.angles - t
    want = 1.0 / np.sqrt((np.cos(th) / 8.0) ** 2 + (np.sin(th) / 4.5) ** 2)
    assert np.all(np.abs(o.radii / want - 1.0) < 0.12), np.round(o.radii / want, 2)
    stem = np.abs(np.degrees(o.angles) - 120.0) <= 5.0
    assert o.replaced[stem].all() and o.replaced.sum() == stem.sum()
    back = outline_from_header(["# " + o.header_line()])
    assert back is not None
    np.testing.assert_allclose(back.radii, o.radii, atol=0.006)
    np.testing.assert_allclose(back.centre, c, atol=0.006)
    np.testing.assert_array_equal(back.replaced, o.replaced)
    assert measure_soma_outline(np.zeros(SHAPE, np.float32), c, VS, radius_hint=6.0) is None
    assert outline_from_header(["# soma radius: 5 um"]) is None


def test_cap_in_soma_blur_takes_the_stems_own_radius() -> None:
    """Stem nodes in the soma's blurred edge (within the soma radius plus three blurs) take at
    most the radius of their stem just beyond; a stem that ends inside that zone keeps its
    radii."""
    xyz = [(0.0, 0.0, 0.0)] + [(x, 0.0, 0.0) for x in np.arange(6.0, 21.0)] + [(0.0, 6.0, 0.0), (0.0, 7.0, 0.0)]
    parent = [-1] + [0] + list(range(1, 15)) + [0, 16]
    types = [1] + [3] * 17
    m = Morphology(np.asarray(xyz), np.ones(18), np.asarray(types), np.asarray(parent), units="um")
    r = np.where(np.asarray(xyz)[:, 0] < 7.5, 3.0, 0.8)
    r[0] = 5.0
    out = rad.cap_in_soma_blur(m, r, soma_radius=5.0, blur_um=0.85)
    assert out[0] == 5.0
    assert np.allclose(out[1:16], 0.8)  # the stem along x, its first nodes capped
    assert np.allclose(out[16:], 3.0)  # the short stem along y: nothing beyond to compare


def test_cap_in_soma_blur_follows_the_decline_beyond_the_zone() -> None:
    """Where the soma's image reaches past the zone (a large, dark soma; a stem leaving along
    z), a stem's radii still fall beyond it towards the stem's own: they are capped at the
    stem's radius where the decline ends, up to the first branch point. A neurite's own
    gentle taper, and a thick trunk that branches into thinner children, keep their radii."""
    xs = np.arange(6.0, 41.0)  # one node per um along x, from the soma's edge (radius 5)
    n = xs.size

    def stem(radii, branch_at=None):
        xyz = [(0.0, 0.0, 0.0)] + [(x, 0.0, 0.0) for x in xs]
        parent = [-1, 0] + list(range(1, n))
        if branch_at is not None:  # a second child at node x = branch_at, running along +y
            k = int(np.flatnonzero(xs == branch_at)[0]) + 1
            xyz += [(branch_at, float(y), 0.0) for y in range(1, 21)]
            parent += [k] + list(range(n + 1, n + 20))
        m = Morphology(np.asarray(xyz), np.ones(len(xyz)), np.asarray([1] + [2] * (len(xyz) - 1)),
                       np.asarray(parent), units="um")
        r = np.concatenate([[5.0], radii, np.full(len(xyz) - 1 - n, 0.5)])
        return m, r

    # widened out to x = 14 (the zone ends at 5 + 3 x 0.85 = 7.55), falling to the axon's 0.3
    halo = np.interp(xs, [6, 9, 14, 15], [2.5, 2.0, 0.6, 0.3])
    m, r = stem(halo)
    out = rad.cap_in_soma_blur(m, r, soma_radius=5.0, blur_um=0.85)
    assert np.allclose(out[1:], 0.3)
    # the same with a branch point at x = 12: the decline is followed no further than that
    m, r = stem(halo, branch_at=12.0)
    out = rad.cap_in_soma_blur(m, r, soma_radius=5.0, blur_um=0.85)
    assert np.all(out[1 : n + 1][xs > 12] == halo[xs > 12])
    assert np.all(out[1 : n + 1][xs <= 12] <= halo[xs <= 12])
    # a gentle taper (an apical trunk, 2.0 -> 1.4 um over 35 um) beyond the zone is kept
    taper = np.linspace(2.0, 1.4, n)
    m, r = stem(taper)
    out = rad.cap_in_soma_blur(m, r, soma_radius=5.0, blur_um=0.85)
    assert np.all(out[1 : n + 1][xs >= 8] == taper[xs >= 8])


def test_measure_radii_degenerate_trees() -> None:
    """No nodes, a soma alone, nodes off the image: radii of the floor, no error."""
    img = np.zeros((10, 20, 20), np.float32)
    empty = Morphology(np.zeros((0, 3)), [], [], [], units="um")
    assert rad.measure_radii(empty, img, (1, 1, 1), noise=1.0)[0].size == 0
    soma = Morphology(np.array([[5.0, 5, 5]]), [1.0], [1], [-1], units="um")
    r, rep = rad.measure_radii(soma, img, (1, 1, 1), noise=1.0)
    assert r.tolist() == [0.05] and not rep.calibrated
    off = Morphology(np.array([[-50.0, 5, 5], [-49, 5, 5]]), [1.0, 1.0], [3, 3], [-1, 0], units="um")
    assert np.all(rad.measure_radii(off, img, (1, 1, 1), noise=1.0)[0] == 0.05)


def test_cap_at_branch_points_takes_the_branchs_own_radius() -> None:
    """A thin branch (0.4 um) leaving a thick neurite (1.5 um): the profiles across the
    branch's first micrometres also cross the thick neurite and read it wider; capped at the
    branch's radius just beyond, they read the branch's. The thick neurite barely changes."""
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    p = np.stack([xx * VS[0], yy * VS[1], zz * VS[2]], axis=-1)
    z0 = SHAPE[0] * VS[2] / 2
    bp = np.array([26.0, 14.0, z0])
    d = np.array([0.5, np.sqrt(3) / 2, 0.0])  # 60 degrees off the trunk

    def seg_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        return np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1)

    trunk = seg_dist(np.array([4.0, 14.0, z0]), np.array([48.0, 14.0, z0])) <= 1.5
    branch = seg_dist(bp, bp + 22 * d) <= 0.4
    blur = rad.total_blur(VS, sigma_um=0.8, psf_sigma_um=0.2)
    sig = np.sqrt(blur**2 - VS[0] ** 2 / 4)
    img = ndi.gaussian_filter((trunk | branch).astype(np.float32) * 40, (sig / VS[2], sig / VS[1], sig / VS[0]))
    img += np.random.default_rng(0).normal(0, 0.5, SHAPE).astype(np.float32)
    xs = np.arange(6.0, 47.0)
    trunk_xyz = np.c_[xs, np.full(xs.size, 14.0), np.full(xs.size, z0)]
    k = int(np.flatnonzero(xs == 26.0)[0])
    t = np.arange(1.0, 21.0)
    br_xyz = bp + t[:, None] * d
    xyz = np.vstack([trunk_xyz, br_xyz])
    parent = np.r_[-1, np.arange(xs.size - 1), k, xs.size + np.arange(t.size - 1)]
    m = Morphology(xyz, np.ones(len(xyz)), np.full(len(xyz), 3), parent, units="um")
    r, rep = rad.measure_radii(m, img, VS, noise=0.5, sigma_um=0.8, psf_sigma_um=0.2, min_calibration=20)
    first = xs.size + np.flatnonzero(t <= 2.0)
    beyond = xs.size + np.flatnonzero(t >= 6.0)
    assert np.median(r[beyond]) == pytest.approx(0.4, rel=0.35)
    assert r[first].max() > 1.3 * np.median(r[beyond])  # the junction widens the profiles
    out = rad.cap_at_branch_points(m, r, blur_um=rep.blur_um)
    assert out[first].max() <= 1.05 * np.median(r[beyond])
    # the thick neurite goes on past the branch point (a branch of it too): next to unchanged
    assert np.allclose(out[: xs.size], r[: xs.size], rtol=0.05)
    assert np.median(out[: xs.size]) == pytest.approx(1.5, rel=0.2)
