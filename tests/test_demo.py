"""The README's main job, end to end: trace the sample stack, score, measure, render."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from morph.cli.main import main
from morph.io import read_swc
from morph.morphology import APICAL, AXON

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "sample_stacks" / "pyramidal_brightfield.tif"
GOLD = ROOT / "sample_stacks" / "pyramidal_brightfield.gold.swc"


def test_readme_opens_with_the_two_setup_commands() -> None:
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.strip()]
    assert lines[1] == "```sh"
    assert lines[2].startswith("python3 tasks.py demo")
    assert lines[3].startswith("python3 tasks.py test")
    assert lines[4] == "```"


def test_demo_pipeline(tmp_path: Path, capsys) -> None:
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    cell = tmp_path / "pyramidal.swc"
    assert main(["trace", str(STACK), "-o", str(cell)]) == 0
    # the automatic trace labels no axon here (confidence 0.54): the user is told how to
    err = capsys.readouterr().err
    assert "give a point on it: --axon X,Y,Z" in err and f"morph edit {cell} --axon X,Y,Z -o OUT" in err
    # ... and labelling this trace at the demo's axon click puts the axon on the gold's
    fixed = tmp_path / "fixed.swc"
    assert main(["edit", str(cell), "--axon", "27.4,136,40", "-o", str(fixed), "-q"]) == 0
    e = read_swc(fixed)
    gold_ax = read_swc(GOLD).resample(0.5)
    d, j = cKDTree(gold_ax.xyz).query(e.xyz[e.types == AXON])
    assert (e.types == AXON).sum() > 50 and np.mean((d <= 2.0) & (gold_ax.types[j] == AXON)) > 0.9
    assert main(["validate", str(cell)]) == 0
    assert main(["compare", str(cell), str(GOLD), "--json", "--plot", str(tmp_path / "cmp.png")]) == 0
    assert main(["features", str(cell), "-o", str(tmp_path / "f.csv"), "-q"]) == 0
    assert main(["view", str(cell), "--stack", str(STACK), "--screenshot", str(tmp_path / "v.png"), "--size", "400", "300", "-q"]) == 0
    assert main(["plot", str(cell), "-o", str(tmp_path / "s.png"), "-q"]) == 0
    m = read_swc(cell)
    assert m.soma_nodes.size == 1 and m.total_length() > 300
    # the upward trunk, the thickest, is labelled apical, on the gold's apical dendrite
    gold = read_swc(GOLD).resample(0.5)
    ap = m.types == APICAL
    d, j = cKDTree(gold.xyz).query(m.xyz[ap])
    assert ap.sum() > 40 and np.mean((d <= 2.0) & (gold.types[j] == APICAL)) > 0.8
    df = pd.read_csv(tmp_path / "f.csv")
    assert df["all_neurites.total_length"].iloc[0] > 300
    for f in ("cmp.png", "v.png", "s.png"):
        assert (tmp_path / f).stat().st_size > 10_000


def test_demo_axon_click_gives_the_ais_features(tmp_path: Path) -> None:
    """The demo's steered trace: one click on the axon labels it (on the gold's axon), and the
    features hold the ais compartment: an axon-carrying dendrite, as in the gold."""
    cell = tmp_path / "axon.swc"
    assert main(["trace", str(STACK), "-o", str(cell), "-q", "--axon", "27.4,136,40"]) == 0
    assert main(["features", str(cell), "--compartments", "ais", "-o", str(tmp_path / "ais.csv"), "-q"]) == 0
    m = read_swc(cell)
    gold = read_swc(GOLD).resample(0.5)
    ax = m.types == AXON
    d, j = cKDTree(gold.xyz).query(m.xyz[ax])
    assert ax.sum() > 50 and np.mean((d <= 2.0) & (gold.types[j] == AXON)) > 0.9
    f = pd.read_csv(tmp_path / "ais.csv").iloc[0]
    assert f["ais.num_axon_roots"] == 1 and f["ais.from_dendrite"] == 1  # the gold: from a dendrite, 9 um out
    assert 0.3 < f["ais.diameter_mean_10"] < 1.2  # the gold's 0.6; the trace reads 1.05
