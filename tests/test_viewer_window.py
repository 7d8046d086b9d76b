"""The real interactive window and VTK's event loop, on a virtual X display (xvfb-run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from viewers.app import Viewer, build_scene

    scene = build_scene([sys.argv[1]], offscreen=False, size=(400, 300))
    v = Viewer(scene)
    iren = v.interactor
    print("window", scene.render_window.GetClassName(), flush=True)
    m = scene.neurons[0].morphology
    state = {}

    def tick(*_):
        # keys and a click delivered as X would deliver them, inside the running loop
        iren.SetKeySym("l"); iren.SetShiftKey(0); iren.InvokeEvent("KeyPressEvent")
        state["mode"] = scene.neurons[0].mode
        i = int(np.flatnonzero(~m.soma_mask)[len(m) // 3])
        x, y = scene.world_to_display(m.xyz[[i]])[0]
        iren.SetEventPosition(int(round(x)), int(round(scene.render_window.GetSize()[1] - 1 - y)))
        iren.InvokeEvent("LeftButtonPressEvent")
        iren.InvokeEvent("LeftButtonReleaseEvent")
        state["picked"] = v.picks[-1][1] if v.picks else None
        state["target"] = i
        iren.SetKeySym("q"); iren.InvokeEvent("KeyPressEvent")

    iren.AddObserver("TimerEvent", tick)
    iren.Initialize()
    iren.CreateOneShotTimer(300)
    v.start()
    print("mode", state.get("mode"), "picked", state.get("picked"), "target", state.get("target"), flush=True)
    """
)


@pytest.mark.skipif(
    shutil.which("xvfb-run") is None and not os.environ.get("CI"), reason="xvfb-run not installed (apt-get install xvfb)"
)
def test_window_opens_runs_the_event_loop_and_quits(data, tmp_path):
    swc = next((data / "swc" / "allen").glob("bmtk_Pvalb_469628681_m.swc"))
    script = tmp_path / "win.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MORPH_QUIET="1")
    env.pop("DISPLAY", None)
    r = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 640x480x24", sys.executable, str(script), str(swc)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "window vtkXOpenGLRenderWindow" in r.stdout
    line = [s for s in r.stdout.splitlines() if s.startswith("mode")][0].split()
    assert line[1] == "line"
    assert line[3] != "None" and abs(int(line[3]) - int(line[5])) <= 1


def test_no_display_for_a_window_is_a_clear_error(data):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    swc = next((data / "swc" / "allen").glob("bmtk_Pvalb_469628681_m.swc"))
    r = subprocess.run(
        [sys.executable, "-m", "morph.cli.main", "view", str(swc), "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 2
    assert "no display" in r.stderr and "--screenshot" in r.stderr and "Traceback" not in r.stderr
