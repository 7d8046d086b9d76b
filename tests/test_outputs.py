"""Outputs that cannot or must not be written are refused before any work, with a clear
message; nothing is left behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from morph.cli.main import main
from morph.errors import MorphError
from morph.io import atomic_write_with, check_distinct, check_output

CELL = "1 1 0 0 0 5 -1\n2 3 0 10 0 1 1\n3 3 0 20 0 1 2\n4 3 5 30 0 1 3\n5 3 -5 30 0 1 3\n6 2 0 -10 0 1 1\n7 2 0 -20 0 1 6\n"


@pytest.fixture
def cell(tmp_path: Path) -> Path:
    p = tmp_path / "cell.swc"
    p.write_text(CELL)
    return p


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_check_output_refuses_what_cannot_or_must_not_be_written(tmp_path: Path) -> None:
    with pytest.raises(MorphError, match="writes files, not standard output"):
        check_output("-")
    with pytest.raises(MorphError, match="output is a folder"):
        check_output(str(tmp_path / "new") + os.sep)
    fifo = tmp_path / "pipe.swc"
    os.mkfifo(fifo)
    with pytest.raises(MorphError, match="not a regular file"):
        check_output(fifo, force=True)  # --force would replace the pipe by a file
    afile = tmp_path / "a.swc"
    afile.write_text("x")
    with pytest.raises(MorphError, match="output folder is a file"):
        check_output(afile / "b.swc")
    with pytest.raises(MorphError, match="cannot write the output"):
        check_output("/proc/morph_out.swc")  # a folder in which no file can be created
    assert check_output(tmp_path / "fine.swc") == tmp_path / "fine.swc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.swc", "pipe.swc"]  # the probe is gone


def test_a_failing_write_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    def full(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(MorphError, match="cannot write the output: no space left on device"):
        atomic_write_with(tmp_path / "out.csv", full)
    assert list(tmp_path.iterdir()) == []

    def bug(tmp: Path) -> None:
        raise OSError("a bug, not the disk")  # no errno: not turned into a user error

    with pytest.raises(OSError, match="a bug"):
        atomic_write_with(tmp_path / "out.csv", bug)
    assert list(tmp_path.iterdir()) == []


def test_check_distinct(tmp_path: Path, cell: Path) -> None:
    with pytest.raises(MorphError, match="two outputs name the same file"):
        check_distinct([tmp_path / "t.csv", tmp_path / "." / "t.csv"])
    with pytest.raises(MorphError, match="the output is one of the inputs"):
        check_distinct([cell], inputs=[tmp_path / "other.swc", cell])
    link = tmp_path / "link.swc"
    link.symlink_to(cell)
    with pytest.raises(MorphError, match="the output is one of the inputs"):
        check_distinct([link], inputs=[cell])
    check_distinct([tmp_path / "t.csv", None, tmp_path / "r.csv"], inputs=[cell, None])


def test_output_names_refused_by_the_commands(tmp_path: Path, cell: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = tmp_path / "s.tif"
    tifffile.imwrite(stack, np.full((4, 20, 20), 10, np.uint8), imagej=True, metadata={"axes": "ZYX"})
    before = stack.read_bytes()
    rc, _, err = run(["trace", str(stack), "-o", str(stack), "--force"], capsys)
    assert rc == 2 and "must end with .swc, not .tif" in err and stack.read_bytes() == before
    rc, _, err = run(["trace", str(stack), "--extend", str(cell), "-o", str(cell), "--force"], capsys)
    assert rc == 2 and "the output is one of the inputs" in err and cell.read_text() == CELL
    rc, _, err = run(["trace", str(stack), "-o", str(tmp_path / "cells") + "/"], capsys)
    assert rc == 2 and "names a folder" in err and not (tmp_path / "cells").exists()
    rc, _, err = run(["trace-path", str(stack), "--from", "1,1,1", "--to", "5,5,1", "-o", str(tmp_path / "p.txt")], capsys)
    assert rc == 2 and "must end with .swc" in err
    rc, _, err = run(["compare", str(cell), str(cell), "--plot", str(tmp_path / "p.txt")], capsys)
    assert rc == 2 and "drawn as PNG" in err
    rc, _, err = run(["compare", str(cell), str(cell), "--min-terminal", "-5"], capsys)
    assert rc == 2 and "--min-terminal" in err
    rc, _, err = run(["compare", str(cell), str(cell), "--step", "1e-7"], capsys)
    assert rc == 2 and "samples of the two trees" in err and "--step" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.swc", "s.tif"]


def test_features_checks_every_output_before_measuring(
    tmp_path: Path, cell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = tmp_path / "t.csv"
    rc, _, err = run(["features", str(cell), "-o", str(t), "--reasons", str(t)], capsys)
    assert rc == 2 and "two outputs name the same file" in err and not t.exists()
    rc, _, err = run(["features", str(cell), "-o", str(t), "--reasons", str(tmp_path / "r.txt")], capsys)
    assert rc == 2 and "unknown table format '.txt'" in err and not t.exists()
    rc, _, err = run(["features", str(cell), "-o", str(t), "--sholl-step", "0"], capsys)
    assert rc == 2 and "--sholl-step must be a positive number" in err
    rc, _, err = run(["features", str(cell), "-o", str(t), "--sholl-step", "1e-6"], capsys)
    assert rc == 1 and "makes 30413813 spheres" in err and "--sholl-step" in err and not t.exists()
    rc, _, err = run(["features", str(tmp_path / "gone.swc"), str(cell), "-o", str(t)], capsys)
    assert rc == 1 and "gone.swc: file not found (check the path)" in err and t.exists()


def test_info_reads_every_file_and_says_which_failed(tmp_path: Path, cell: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(["info", str(cell), str(tmp_path / "gone.swc")], capsys)
    assert rc == 2 and "nodes: 7" in out
    assert "gone.swc: file not found" in err and "1 of 2 file(s) could not be read" in err


def test_out_of_memory_and_internal_errors_say_what_to_do(
    cell: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import morph.cli.info as info

    def oom(args: object) -> int:
        raise MemoryError

    monkeypatch.setattr(info, "run", oom)
    rc, _, err = run(["info", str(cell)], capsys)
    assert rc == 2 and "out of memory" in err and "--roi" not in err

    def bug(args: object) -> int:
        raise ValueError("oops")

    monkeypatch.setattr(info, "run", bug)
    rc, _, err = run(["info", str(cell)], capsys)
    assert rc == 2 and "internal error: ValueError: oops (rerun with --debug" in err
    rc, _, err = run(["--debug", "info", str(cell)], capsys)
    assert rc == 2 and "Traceback" in err and "(the traceback is above, and report it)" in err


def test_sigterm_leaves_no_partial_output(tmp_path: Path, cell: Path) -> None:
    """A job scheduler's SIGTERM mid-write removes the temporary file, as Ctrl-C does."""
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ)
    env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    cmd = [sys.executable, "-m", "morph.cli.main", "-q", "view", str(cell), "--movie", str(tmp_path / "m.gif"),
           "--frames", "3600", "--size", "64", "48"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".m.gif.*.part.gif")):  # the movie is being written
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.swc"]


def test_one_probe_serves_every_folder_output(tmp_path: Path, cell: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Files, batch output folders and movie frame folders are all checked by creating a file
    in the folder, which catches what ``os.access`` misses as root (``/proc``)."""
    from morph.io.atomic import check_writable_folder

    check_writable_folder(tmp_path)
    assert list(tmp_path.iterdir()) == [cell]  # nothing left behind
    with pytest.raises(MorphError, match="cannot write the output"):
        check_writable_folder("/proc", output="/proc/frames")
    from viewers.app import check_movie_path

    with pytest.raises(MorphError, match="/proc/frames: cannot write the output"):
        check_movie_path("/proc/frames")
    stack = tmp_path / "s.tif"
    tifffile.imwrite(stack, np.full((4, 20, 20), 10, np.uint8), imagej=True, metadata={"axes": "ZYX"})
    rc, _, err = run(["batch", "trace", str(stack), "-o", "/proc/traced", "--scheduler", "serial"], capsys)
    assert rc == 2 and "/proc/traced: cannot write the output folder" in err and "internal error" not in err
