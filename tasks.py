#!/usr/bin/env python3
"""Set-up and everyday tasks, needing nothing but Python 3.10+.

    python3 tasks.py demo    # install everything into .venv, run morph's main job on sample_stacks/
    python3 tasks.py test    # install the test dependencies into .venv, run the whole test suite

Creates ``.venv`` when missing. On Debian, as root, installs the system libraries that
offscreen rendering needs (EGL/OSMesa) when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
DEBIAN_PACKAGES = [
    "libegl1",
    "libegl-mesa0",
    "libgl1-mesa-dri",
    "libgbm1",
    "libosmesa6",
    "libglu1-mesa",
    "libxrender1",
    "libxext6",
    "libsm6",
    "xvfb",  # xvfb-run: the viewer's window test runs VTK's event loop on a virtual display
    "xauth",
]
GL_LIBS = ["libEGL.so.1", "libOSMesa.so", "libGLU.so.1", "libXrender.so.1"]


def sh(*cmd: str | Path, check: bool = True, env: dict | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    rc = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)
    if check and rc != 0:
        sys.exit(rc)
    return rc


def have_lib(name: str) -> bool:
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return True  # cannot tell; assume present
    return name in out


def ensure_system_libs() -> None:
    missing = [lib for lib in GL_LIBS if not have_lib(lib)]
    if not shutil.which("xvfb-run"):
        missing.append("xvfb-run")
    if not missing:
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh("apt-get", "update", "-qq", env=env)
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEBIAN_PACKAGES, env=env)
    else:
        print(
            f"note: offscreen rendering needs {', '.join(missing)}; on Debian/Ubuntu run\n"
            f"  sudo apt-get install {' '.join(DEBIAN_PACKAGES)}",
            file=sys.stderr,
        )


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        rc = subprocess.call([sys.executable, "-m", "venv", str(VENV)])
        if rc != 0:
            if shutil.which("apt-get") and os.geteuid() == 0:
                v = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
                sh("apt-get", "update", "-qq")
                sh("apt-get", "install", "-y", "-qq", v)
                shutil.rmtree(VENV, ignore_errors=True)
                sh(sys.executable, "-m", "venv", VENV)
            else:
                sys.exit("error: cannot create .venv; on Debian/Ubuntu: sudo apt-get install python3-venv")
    stamp = VENV / f".installed-{extras.replace(',', '-')}"
    newest = max((ROOT / "pyproject.toml").stat().st_mtime, (ROOT / "tasks.py").stat().st_mtime)
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        return
    sh(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PY, "-m", "pip", "install", "-q", "-e", f".[{extras}]")
    stamp.touch()


def offscreen_env() -> dict:
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    return env


def demo() -> None:
    """Trace the sample pyramidal cell, score it against its gold standard, measure it, and
    render it over its stack (outputs in out/demo/)."""
    ensure_system_libs()
    ensure_venv("all")
    morph = BIN / "morph"
    out = ROOT / "out" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    stack = ROOT / "sample_stacks" / "pyramidal_brightfield.tif"
    gold = ROOT / "sample_stacks" / "pyramidal_brightfield.gold.swc"
    cell = out / "pyramidal.swc"
    axon_cell = out / "pyramidal_axon.swc"
    env = offscreen_env()
    steps = [
        [morph, "info", stack],
        [morph, "trace", stack, "-o", cell, "--force"],
        [morph, "validate", cell],
        [morph, "compare", cell, gold, "--plot", out / "compare.png", "--force"],
        [morph, "features", cell, "-o", out / "features.csv", "--force"],
        [morph, "view", cell, "--stack", stack, "--screenshot", out / "view.png", "--size", "1200", "900", "--force"],
        [morph, "plot", cell, "-o", out / "summary.png", "--force"],
        # steered by one click on the axon (micrometres): the axon and its initial segment
        # are labelled, so the features include the ais compartment
        [morph, "trace", stack, "-o", axon_cell, "--axon", "27.4,136,40", "--force"],
        [morph, "features", axon_cell, "--compartments", "ais", "-o", out / "features_ais.csv", "--force"],
    ]
    for cmd in steps:
        sh(*cmd, env=env)
    print(f"\ndemo outputs in {out}: pyramidal.swc, compare.png, features.csv, view.png, summary.png, "
          "pyramidal_axon.swc, features_ais.csv")


def test() -> None:
    ensure_system_libs()
    ensure_venv("all,bench")  # bench: NeuroM and friends, for the tests that compare with them
    env = offscreen_env()
    rc = sh(PY, "-m", "pytest", "-q", *sys.argv[2:], check=False, env=env)
    if rc == 5:
        sys.exit("error: no test ran")
    sys.exit(rc)


if __name__ == "__main__":
    tasks = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(tasks)}}}")
    tasks[sys.argv[1]]()
