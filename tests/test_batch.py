"""Batch processing on a real Dask LocalCluster (2 worker processes): same results as the serial
path, failures recorded without stopping the rest, restart after a kill, Ctrl-C safety, CLI."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from morph import batch
from morph.cli.main import main
from morph.io import read_stack, read_swc
from morph.morphology import Morphology

from conftest import real_swcs

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


# ---- stand-in per-file functions (module level: the worker processes import them) ----------


def standin(m: Morphology) -> dict:
    """Node counts and cable lengths, the shape of a features row."""
    return {
        "all.nodes": len(m),
        "all.total_length": m.total_length(),
        "all.tips": int(m.tips.size),
        "axon.total_length": m.total_length("axon") if (m.types == 2).any() else np.nan,
        "all.max_path_distance": float(np.max(m.path_distance)),
    }


def recording_standin(m: Morphology, *, calls: str, delay: float = 0.0) -> dict:
    """``standin`` that appends the file it measured to ``calls`` (and can be slow)."""
    with open(calls, "a") as fh:
        fh.write(f"{m.source}\n")
    if delay:
        time.sleep(delay)
    return standin(m)


def standin_trace(stack, *, threshold: float = 0.5, **_) -> Morphology:
    """A two-node 'tracing': the brightest voxel joined to the farthest voxel above threshold."""
    d = np.asarray(stack.data, dtype=np.float64)
    if stack.polarity() == "brightfield":
        d = d.max() - d
    zyx0 = np.array(np.unravel_index(np.argmax(d), d.shape))
    fg = np.argwhere(d >= d.min() + threshold * (d.max() - d.min()))
    far = fg[np.argmax(((fg - zyx0) ** 2).sum(1))]
    xyz = np.array([zyx0[::-1], far[::-1]], dtype=float) * np.asarray(stack.voxel_size)
    return Morphology(xyz, np.ones(2), np.array([1, 3]), np.array([-1, 0]), name=Path(stack.path).stem)


def recording_trace(stack, *, calls: str, **options) -> Morphology:
    """``standin_trace`` that appends the stack it traced to ``calls``."""
    with open(calls, "a") as fh:
        fh.write(f"{stack.path}\n")
    return standin_trace(stack, **options)


def points_trace(stack, *, soma=None, axon=None, seeds=None, **_) -> Morphology:
    """A 'tracing' that draws the points it was given: soma -> axon -> each seed (micrometres),
    from the stack's origin when no soma was given."""
    pts = [soma if soma is not None else [0.0, 0.0, 0.0]]
    pts += ([axon] if axon is not None else []) + list(seeds or [])
    if len(pts) == 1:
        pts.append(np.asarray(stack.voxel_size, dtype=float))
    n = len(pts)
    return Morphology(np.asarray(pts, dtype=float), np.ones(n), np.array([1] + [3] * (n - 1)), np.arange(n) - 1)


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture()
def cells(tmp_path: Path) -> Path:
    """Seven small real SWCs copied into a temporary folder (two of them one level down)."""
    d = tmp_path / "cells"
    (d / "sub").mkdir(parents=True)
    swcs = real_swcs()
    small = sorted(swcs, key=lambda p: p.stat().st_size)[:7]
    for k, f in enumerate(small):
        shutil.copy(f, (d / "sub" if k < 2 else d) / f.name)
    return d


def _serial_reference(paths: list[Path]) -> pd.DataFrame:
    rows = [{"file": str(p), **{k: (v.item() if hasattr(v, "item") else v) for k, v in standin(read_swc(p)).items()}} for p in paths]
    return pd.DataFrame.from_records(rows)


# ---- features --------------------------------------------------------------------------------


def test_expand_paths_recursive_and_errors(cells: Path):
    flat = batch.expand_paths(str(cells / "*.swc"))
    deep = batch.expand_paths(str(cells / "**" / "*.swc"))
    assert len(flat) == 5 and len(deep) == 7
    assert deep == sorted(deep, key=str)
    # duplicates removed, plain paths kept
    assert batch.expand_paths([str(cells / "**/*.swc"), deep[0]]) == deep
    with pytest.raises(batch.MorphError, match="no file matches"):
        batch.expand_paths(str(cells / "*.nothing"))
    with pytest.raises(batch.MorphError, match="not found"):
        batch.expand_paths(str(cells / "missing.swc"))


def test_expand_paths_names_the_microscope_files_it_leaves_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    for name in ("a.czi", "b.czi", "c.nd2", "notes.txt"):
        (tmp_path / name).write_bytes(bytes(64))
    with pytest.raises(batch.MorphError, match="only 1 Nikon ND2 file, 2 Zeiss CZI files") as e:
        batch.expand_paths(str(tmp_path / "*"), suffixes=batch.STACK_SUFFIXES)
    assert "Save As > Tiff" in str(e.value)
    (tmp_path / "s.tif").write_bytes(bytes(64))
    assert batch.expand_paths(str(tmp_path / "*"), suffixes=batch.STACK_SUFFIXES) == [tmp_path / "s.tif"]
    err = capsys.readouterr().err
    assert "also matches 1 Nikon ND2 file, 2 Zeiss CZI files, which morph does not read: left out" in err
    # without a suffix filter (the SWC commands), nothing is said
    assert len(batch.expand_paths(str(tmp_path / "*"))) == 5 and not capsys.readouterr().err


def test_cluster_matches_serial(client, cells: Path, tmp_path: Path):
    pattern = str(cells / "**" / "*.swc")
    serial = batch.features(pattern, scheduler="serial", func=standin, quiet=True)
    dist = batch.features(pattern, client, func=standin, output=tmp_path / "f.parquet", quiet=True)
    pd.testing.assert_frame_equal(serial, dist)
    ref = _serial_reference(batch.expand_paths(pattern))
    pd.testing.assert_frame_equal(dist, ref)
    written = pd.read_parquet(tmp_path / "f.parquet")
    pd.testing.assert_frame_equal(written, dist)
    s = dist.attrs["summary"]
    assert (s.total, s.computed, s.skipped, s.failed, s.workers) == (7, 7, 0, 0, 2)
    # CSV output holds the same numbers
    batch.features(pattern, client, func=standin, output=tmp_path / "f.csv", quiet=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "f.csv"), dist, check_exact=False, rtol=1e-12)


def test_compact_results_give_the_same_table():
    """Workers send float rows as (shared names, float64 array); the table built from them is
    the one pandas builds from the dicts, failed files left out, other types kept."""
    files = [Path(f"c{k}.swc") for k in range(5)]
    vals = [{"all.x": 1.5 * k, "all.y": np.nan, "axon.z": float(k), "all.w": -np.inf} for k in range(5)]
    rows = [batch._compact(v) for v in vals]
    assert all(isinstance(r, tuple) for r in rows) and rows[1][0] is rows[0][0]  # one names tuple
    rows[2] = None  # failed
    ref = pd.DataFrame.from_records([{"file": str(f), **v} for k, (f, v) in enumerate(zip(files, vals)) if k != 2])
    pd.testing.assert_frame_equal(batch._table(files, rows), ref)
    mixed = [batch._compact(dict(v)) if k % 2 else dict(v) for k, v in enumerate(vals)]
    mixed[2] = None
    pd.testing.assert_frame_equal(batch._table(files, mixed), ref)
    other = [{"n": 3, "name": "a"}, {"n": 4, "name": "b"}]
    assert batch._compact(other[0]) == other[0]  # not all floats: kept as they are
    got = batch._table(files[:2], [batch._compact(o) for o in other])
    assert got["n"].dtype == np.int64 and list(got["name"]) == ["a", "b"]
    assert list(batch._table(files, [None] * 5).columns) == ["file"]


def test_corrupt_file_is_reported_and_others_complete(client, cells: Path, tmp_path: Path):
    (cells / "corrupt.swc").write_text("1 1 0 0 0 5 -1\n2 3 1.0 oops 0 1 1\n")
    (cells / "cycle.swc").write_text("1 1 0 0 0 5 2\n2 3 1 0 0 1 1\n")
    out = tmp_path / "f.parquet"
    df = batch.features(str(cells / "**/*.swc"), client, func=standin, output=out, quiet=True)
    s = df.attrs["summary"]
    assert s.total == 9 and s.computed == 7 and s.failed == 2
    assert sorted(Path(f.file).name for f in s.failures) == ["corrupt.swc", "cycle.swc"]
    bad = next(f for f in s.failures if f.file.endswith("corrupt.swc"))
    assert "corrupt.swc:2" in bad.error  # file and line of the problem
    assert "Traceback" in bad.traceback
    log = Path(s.log).read_text()
    assert log == (tmp_path / "f.parquet.log").read_text()
    assert "FAILED" in log and "corrupt.swc" in log and "cycle.swc" in log and "SWCError" in log
    assert "Traceback" in log
    assert len(df) == 7 and not {Path(f).name for f in df["file"]} & {"corrupt.swc", "cycle.swc"}
    assert len(pd.read_parquet(out)) == 7
    # a failing per-file function (not only a bad input) is recorded the same way
    # several files per task: the corrupt ones still fail alone
    grouped = batch.features(str(cells / "**/*.swc"), client, func=standin, files_per_task=4, quiet=True)
    pd.testing.assert_frame_equal(grouped, df)
    assert {f.file for f in grouped.attrs["summary"].failures} == {f.file for f in s.failures}
    limit = float(np.median(df["all.total_length"]))
    df2 = batch.features(
        str(cells / "**/*.swc"), client, func=functools.partial(_fails_on_long, limit=limit), quiet=True
    )
    s2 = df2.attrs["summary"]
    too_long = set(df.loc[df["all.total_length"] > limit, "file"])
    assert {f.file for f in s2.failures} == too_long | {f.file for f in s.failures}
    assert all(f.error == "ValueError: too long" for f in s2.failures if f.file in too_long)
    assert set(df2["file"]) == set(df["file"]) - too_long


def _dies_on_cycle(m: Morphology) -> dict:
    if m.total_length() < 2.0:  # the 2-node file below: the worker process dies
        os._exit(3)
    return standin(m)


def test_worker_death_is_a_failure_of_that_file(cells: Path, tmp_path: Path):
    """The process measuring a file dies (as when the memory limit kills it): Dask restarts the
    worker and retries the file (3 times by default: files that were merely queued on the same
    worker then succeed), then reports it lost; that file is a failure, the others complete."""
    from distributed import Client, LocalCluster

    (cells / "tiny.swc").write_text("1 1 0 0 0 1 -1\n2 3 1 0 0 0.5 1\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50) as lc:
        with Client(lc) as c:
            df = batch.features(str(cells / "*.swc"), c, func=_dies_on_cycle, output=tmp_path / "f.csv", quiet=True)
    s = df.attrs["summary"]
    assert [Path(f.file).name for f in s.failures] == ["tiny.swc"]
    # on a loaded machine the nanny sometimes does not bring the worker back after a death:
    # then the file fails for want of a worker (see the test below) instead of waiting for ever
    assert "KilledWorker" in s.failures[0].error or "no Dask worker left" in s.failures[0].error
    assert len(df) == 5 and len(pd.read_csv(tmp_path / "f.csv")) == 5


def _slow_standin(m: Morphology, *, started: str) -> dict:
    Path(started).touch()
    time.sleep(1.5)
    return standin(m)


def test_no_worker_left_fails_the_waiting_files_instead_of_hanging(cells: Path, tmp_path: Path, monkeypatch):
    """All workers go away and none comes back (a local worker killed under load is sometimes
    not restarted): the files still waiting are reported as failed after the grace period,
    instead of the run waiting for ever."""
    import threading

    from distributed import Client, LocalCluster

    monkeypatch.setattr(batch, "WORKERLESS_GRACE_S", 2.0)
    started = tmp_path / "started"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50) as lc:
        with Client(lc) as c:

            def remove_workers_once_running() -> None:
                while not started.exists():
                    time.sleep(0.05)
                lc.scale(0)

            threading.Thread(target=remove_workers_once_running, daemon=True).start()
            t0 = time.monotonic()
            func = functools.partial(_slow_standin, started=str(started))
            df = batch.features(str(cells / "*.swc"), c, func=func, output=tmp_path / "f.csv", quiet=True)
            took = time.monotonic() - t0
    s = df.attrs["summary"]
    lost = [f for f in s.failures if "no Dask worker left" in f.error]
    assert lost and len(lost) == len(s.failures), [f.error for f in s.failures]
    assert len(df) + len(lost) == 5 and took < 60


def _fails_on_long(m: Morphology, *, limit: float) -> dict:
    if m.total_length() > limit:
        raise ValueError("too long")
    return standin(m)


def test_rerun_skips_done_and_redo_recomputes(client, cells: Path, tmp_path: Path):
    calls = tmp_path / "calls.txt"
    func = functools.partial(recording_standin, calls=str(calls))
    out = tmp_path / "f.parquet"
    pattern = str(cells / "**/*.swc")
    first = batch.features(pattern, client, func=func, output=out, quiet=True)
    assert len(calls.read_text().splitlines()) == 7
    again = batch.features(pattern, client, func=func, output=out, quiet=True)
    assert len(calls.read_text().splitlines()) == 7  # nothing recomputed
    assert again.attrs["summary"].skipped == 7
    pd.testing.assert_frame_equal(first, again)
    # a modified source is recomputed, the others are not
    target = sorted(cells.glob("*.swc"))[0]
    target.write_text(target.read_text() + "\n")
    batch.features(pattern, client, func=func, output=out, quiet=True)
    lines = calls.read_text().splitlines()
    assert len(lines) == 8 and Path(lines[-1]).name == target.name
    # different options are a different result: not taken from the cache
    other = functools.partial(recording_standin, calls=str(calls), delay=0.001)
    batch.features(pattern, client, func=other, output=out, quiet=True)
    assert len(calls.read_text().splitlines()) == 15
    batch.features(pattern, client, func=func, output=out, redo=True, quiet=True)
    assert len(calls.read_text().splitlines()) == 22


def test_existing_output_not_overwritten_without_force(cells: Path, tmp_path: Path):
    out = tmp_path / "table.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(batch.OutputExistsError):
        batch.features(str(cells / "*.swc"), scheduler="serial", func=standin, output=out, quiet=True)
    assert out.read_bytes() == b"precious"
    df = batch.features(str(cells / "*.swc"), scheduler="serial", func=standin, output=out, force=True, quiet=True)
    assert len(pd.read_parquet(out)) == len(df) == 5
    with pytest.raises(batch.MorphError, match="unknown table format"):
        batch.features(str(cells / "*.swc"), scheduler="serial", func=standin, output=tmp_path / "t.xlsx")


_SCRIPT = """
import functools, signal, sys
# Ctrl-C raises KeyboardInterrupt even when this process was started with SIGINT ignored
# (as background jobs of a non-interactive shell are, e.g. a CI script run with nohup ... &)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from morph import batch
from test_batch import recording_standin
if __name__ == "__main__":  # the local cluster's worker processes re-import this file
    func = functools.partial(recording_standin, calls={calls!r}, delay={delay!r})
    df = batch.features({pattern!r}, func=func, output={out!r}, scheduler={scheduler!r}, workers=2, quiet=True)
    print("finished", len(df))
"""


def _start(tmp_path: Path, pattern: str, out: Path, calls: Path, delay: float, scheduler: str | None):
    script = tmp_path / "run.py"
    script.write_text(
        _SCRIPT.format(tests=str(TESTS), calls=str(calls), delay=delay, pattern=pattern, out=str(out), scheduler=scheduler)
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cache: Path, n: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cache.is_dir() and sum(".part" not in f.name for f in cache.glob("*.json")) >= n:  # complete entries
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for results")


def _no_partial_files(folder: Path) -> None:
    leftovers = [p.name for p in folder.rglob("*") if ".part" in p.name]
    assert not leftovers, leftovers


def _only_hidden_temporaries(folder: Path) -> list[Path]:
    """After SIGKILL: no visible partial file; a process killed between writing a cache entry
    and renaming it may leave its hidden temporary (``.NAME.XXXX.part.json``), nothing else.
    Returns those."""
    parts = [p for p in folder.rglob("*") if ".part" in p.name]
    assert all(p.name.startswith(".") and p.name.endswith(".part.json") for p in parts), parts
    return parts


def test_killed_run_restarts_with_only_the_missing_files(client, cells: Path, tmp_path: Path):
    """SIGKILL a run half-way (no chance to clean up), then restart it on the cluster."""
    pattern = str(cells / "**/*.swc")
    out, calls = tmp_path / "f.parquet", tmp_path / "calls.txt"
    cache = tmp_path / "f.parquet.cache"
    proc = _start(tmp_path, pattern, out, calls, 0.4, "serial")
    try:
        _wait_for(cache, 3, proc)
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    stale = _only_hidden_temporaries(tmp_path)
    # one such temporary, a minute old by the time of the restart, is removed by it
    stale.append(cache / ".killed.swc.json.abcd1234.part.json")
    stale[-1].write_text('{"half": ')
    for f in stale:
        os.utime(f, (time.time() - 120, time.time() - 120))
    cached = [f for f in cache.glob("*.json") if ".part" not in f.name]
    assert 3 <= len(cached) < 7
    for f in cached:
        assert json.loads(f.read_text())["result"]["all.nodes"] > 0  # complete, valid records
    done_before = {Path(json.loads(f.read_text())["source"]).name for f in cached}
    calls.write_text("")
    func = functools.partial(recording_standin, calls=str(calls), delay=0.4)
    df = batch.features(pattern, client, func=func, output=out, quiet=True)
    recomputed = {Path(line).name for line in calls.read_text().splitlines()}
    everything = {p.name for p in batch.expand_paths(pattern)}
    assert recomputed == everything - done_before
    assert df.attrs["summary"].skipped == len(done_before)
    pd.testing.assert_frame_equal(df, _serial_reference(batch.expand_paths(pattern)))
    assert not any(f.exists() for f in stale)


def test_ctrl_c_leaves_no_half_written_file(cells: Path, tmp_path: Path):
    """SIGINT a run on its own local cluster: it stops, cleans up, and a re-run completes it."""
    pattern = str(cells / "**/*.swc")
    out, calls = tmp_path / "f.parquet", tmp_path / "calls.txt"
    cache = tmp_path / "f.parquet.cache"
    proc = _start(tmp_path, pattern, out, calls, 0.6, None)
    try:
        _wait_for(cache, 2, proc, timeout=90)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert not out.exists()
    _no_partial_files(tmp_path)
    n_cached = len(list(cache.glob("*.json")))
    assert 2 <= n_cached < 7
    df = batch.features(
        pattern, scheduler="serial", func=functools.partial(recording_standin, calls=str(calls), delay=0.6),
        output=out, quiet=True,
    )
    assert df.attrs["summary"].skipped == n_cached and len(pd.read_parquet(out)) == 7


# ---- CLI -------------------------------------------------------------------------------------


def test_cli_exit_codes(client, cells: Path, tmp_path: Path, capsys):
    addr = client.scheduler.address
    out = tmp_path / "f.parquet"
    args = ["batch", "features", str(cells / "**/*.swc"), "-o", str(out), "--func", "test_batch:standin", "--scheduler", addr]
    assert main(args) == 0
    assert len(pd.read_parquet(out)) == 7
    err = capsys.readouterr().err
    assert "7 files: 7 processed" in err
    # re-run: everything already done
    assert main(args + ["-q"]) == 0
    (cells / "broken.swc").write_text("garbage\n")
    log = tmp_path / "errors.txt"
    assert main(args + ["--log", str(log)]) == 1
    err = capsys.readouterr().err
    assert "1 failed" in err and "broken.swc" in err and str(log) in err
    assert "broken.swc" in log.read_text()
    # could not run at all: exit 2 with a one-line error
    assert main(["batch", "features", str(cells / "*.nothing"), "-o", str(tmp_path / "g.parquet")]) == 2
    assert "no file matches" in capsys.readouterr().err
    precious = tmp_path / "precious.csv"
    precious.write_text("keep")
    assert main(["batch", "features", str(cells / "*.swc"), "-o", str(precious), "--func", "test_batch:standin", "--scheduler", "serial"]) == 2
    assert precious.read_text() == "keep"
    assert main(["batch", "features", str(cells / "*.swc"), "-o", str(out), "--func", "nomodule:f", "--scheduler", "serial"]) == 2
    try:  # argparse: bad argument, exit 2 (returned or raised, as argparse does)
        code = main(["batch", "features", str(cells / "*.swc"), "-o", str(out), "--workers", "0"])
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert "--workers" in capsys.readouterr().err


# ---- trace -----------------------------------------------------------------------------------


@pytest.fixture()
def stacks(tmp_path: Path, data: Path) -> Path:
    d = tmp_path / "stacks"
    (d / "b").mkdir(parents=True)
    shutil.copy(data / "images" / "rivuletpy" / "test-small.tif", d / "a.tif")
    shutil.copy(data / "images" / "patchseq_brightfield" / "Example_Input_Stack_2112.tif", d / "bf.tif")
    shutil.copy(data / "images" / "rivuletpy" / "test-small.tif", d / "b" / "a.tif")  # same name elsewhere
    return d


def test_trace_batch(client, stacks: Path, tmp_path: Path):
    (stacks / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    outdir = tmp_path / "traced"
    df = batch.trace(
        str(stacks / "**/*.tif"), outdir, client, func=standin_trace, threshold=0.6,
        features_output=tmp_path / "feat.parquet", features_func=standin, quiet=True,
    )
    s = df.attrs["summary"]
    assert (s.total, s.computed, s.skipped) == (4, 3, 0) and s.failed == 1
    assert "bad.tif" in s.failures[0].file and "TIFF" in s.failures[0].error
    ok = df[df.status == "traced"]
    assert sorted(Path(p).relative_to(outdir).as_posix() for p in ok.output) == ["a.swc", "b/a.swc", "bf.swc"]
    for src, dst in zip(ok.file, ok.output):
        expected = standin_trace(read_stack(src), threshold=0.6)
        got = read_swc(dst)
        np.testing.assert_allclose(got.xyz, expected.xyz, atol=1e-6)
        assert any(h.startswith(batch.STAMP_PREFIX) for h in got.header)
    assert "bad.tif" in (outdir / "morph-batch-trace.log").read_text()
    feats = pd.read_parquet(tmp_path / "feat.parquet")
    assert len(feats) == 3 and (feats["all.nodes"] == 2).all()
    _no_partial_files(outdir)
    # re-run: done outputs are skipped; a changed option retraces; redo retraces
    (stacks / "bad.tif").unlink()
    again = batch.trace(str(stacks / "**/*.tif"), outdir, client, func=standin_trace, threshold=0.6, quiet=True)
    assert (again.status == "done").all() and again.attrs["summary"].computed == 0
    changed = batch.trace(str(stacks / "**/*.tif"), outdir, client, func=standin_trace, threshold=0.7, quiet=True)
    assert (changed.status == "traced").all()
    redo = batch.trace(str(stacks / "*.tif"), outdir, scheduler="serial", func=standin_trace, threshold=0.7, redo=True, quiet=True)
    assert (redo.status == "traced").all() and len(redo) == 2


def test_cli_trace(client, stacks: Path, tmp_path: Path, capsys):
    out = tmp_path / "traced"
    args = ["batch", "trace", str(stacks / "**/*.tif"), "-o", str(out), "--func", "test_batch:standin_trace",
            "--param", "x=1", "--scheduler", client.scheduler.address]
    assert main(args) == 0
    assert len(list(out.rglob("*.swc"))) == 3
    (stacks / "zero.tif").write_bytes(b"")
    assert main(args) == 1
    assert "zero.tif" in capsys.readouterr().err
    assert main(args + ["--strict-memory"]) == 2  # only meaningful with --max-memory
    assert "--strict-memory applies with --max-memory" in capsys.readouterr().err
    # clicks per stack from a table; a table naming a stack not in the batch stops the run
    (stacks / "zero.tif").unlink()
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("stack,kind,x,y,z\nbf.tif,soma,2,4,1\n")
    pts = ["batch", "trace", str(stacks / "**/*.tif"), "-o", str(tmp_path / "clicked"), "--func",
           "test_batch:points_trace", "--points", str(clicks), "--units", "voxel", "--scheduler", "serial", "-q"]
    assert main(pts) == 0
    vs = np.asarray(read_stack(stacks / "bf.tif").voxel_size)
    np.testing.assert_allclose(read_swc(tmp_path / "clicked" / "bf.swc").xyz[0], np.array([2, 4, 1]) * vs)
    clicks.write_text("stack,kind,x,y,z\nbf.tiff,soma,2,4,1\n")
    assert main(pts) == 2
    err = capsys.readouterr().err
    assert "clicks.csv:2: stack 'bf.tiff' is none of the 3 stacks" in err
    assert main(pts[: pts.index("--points")] + pts[pts.index("--units"):]) == 2  # --units without a table
    assert "--units applies to the --points table" in capsys.readouterr().err


# ---- with morph's own features and tracer ------------------------------------------------------


def test_default_features_on_cluster_equal_direct_computation(client, cells: Path, tmp_path: Path):
    from morph import features as feat

    files = batch.expand_paths(str(cells / "*.swc"))[:3]
    df = batch.features(files, client, output=tmp_path / "f.parquet", quiet=True)
    assert df.attrs["summary"].ok and len(df) == 3
    for k, f in enumerate(files):
        ref = feat.compute(read_swc(f))
        row = df.iloc[k]
        assert row["file"] == str(f)
        got = np.array([row[c] for c in ref], dtype=float)
        np.testing.assert_array_equal(got, np.array(list(ref.values()), dtype=float))
    sub = batch.features(files, client, compartments=["axon"], features=["total_length"], quiet=True)
    assert list(sub.columns) == ["file", "axon.total_length"]


def test_default_tracer_in_memory_and_chunked(client, data: Path, tmp_path: Path):
    from morph.io import write_stack
    from morph.tracing import chunked, trace

    op1 = read_stack(data / "images" / "diadem_OP" / "OP_1.tif")
    crop = np.ascontiguousarray(op1.data[:, 256:, :256])
    d = tmp_path / "stacks"
    d.mkdir()
    write_stack(d / "crop.tif", crop, (1.0, 1.0, 3.03))
    ref = trace(read_stack(d / "crop.tif"), progress=False)
    a = batch.trace(str(d / "*.tif"), tmp_path / "mem", client, quiet=True)
    b = batch.trace(str(d / "*.tif"), tmp_path / "chunk", client, max_memory=chunked.FIXED_OVERHEAD + 12 * 2**20, quiet=True)
    assert a.attrs["summary"].ok and b.attrs["summary"].ok
    # a bound too small for the chunked stages: that stack fails, with the bound it needs
    tight = batch.trace(str(d / "*.tif"), tmp_path / "tight", scheduler="serial", max_memory=20 * 2**20, quiet=True)
    assert tight.status[0] == "failed" and "over the 20 MiB bound" in tight.error[0]
    assert "raise --max-memory" in tight.error[0]
    for out in (a.output[0], b.output[0]):
        np.testing.assert_allclose(read_swc(out).xyz, ref.renumber().xyz, atol=1e-5)
    # an RGB copy (three equal channels) traced through their mean: the same tree, in memory and
    # chunk by chunk, and the header says which channel was read
    import tifffile

    rgb = tmp_path / "rgb"
    rgb.mkdir()
    tifffile.imwrite(rgb / "crop.tif", np.repeat(crop[..., None], 3, axis=3), photometric="rgb")
    failed = batch.trace(str(rgb / "*.tif"), tmp_path / "rgb_none", scheduler="serial", quiet=True)
    assert failed.status[0] == "failed" and "--channel" in failed.error[0]
    for kw in ({}, {"max_memory": chunked.FIXED_OVERHEAD + 12 * 2**20}):
        c = batch.trace(str(rgb / "*.tif"), tmp_path / f"rgb{len(kw)}", scheduler="serial", voxel_size=(1.0, 1.0, 3.03),
                        channel="mean", quiet=True, **kw)
        assert c.attrs["summary"].ok, c.error[0]
        np.testing.assert_allclose(read_swc(c.output[0]).xyz, ref.renumber().xyz, atol=1e-5)
        assert "(the mean of its channels)" in Path(c.output[0]).read_text()
        assert c.warnings[0] == ""
    # what the tracer warns of is reported per stack (a column, and a line on stderr), not as
    # Python's warning lines: here the RGB file's unknown voxel size
    w = batch.trace(str(rgb / "*.tif"), tmp_path / "rgb_vs", scheduler="serial", channel="mean", quiet=True)
    assert w.status[0] == "traced" and "voxel size unknown: assuming 1 x 1 x 1 um" in w.warnings[0]
    # a click table for the default tracer, in voxels: the same tree as a trace given that point
    root = ref.xyz[ref.roots[0]]
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("stack,kind,x,y,z\n" + "crop.tif,seed," + ",".join(f"{v:.6f}" for v in root / (1.0, 1.0, 3.03)) + "\n")
    cl = batch.trace(str(d / "*.tif"), tmp_path / "clicked", scheduler="serial", points=clicks, units="voxel", quiet=True)
    assert cl.attrs["summary"].ok, cl.error[0]
    np.testing.assert_allclose(read_swc(cl.output[0]).xyz, trace(read_stack(d / "crop.tif"), seeds=[root],
                                                                  progress=False).renumber().xyz, atol=1e-5)
    assert "# seeds given (um): 1:" in Path(cl.output[0]).read_text()
    bad = batch.trace(str(d / "*.tif"), tmp_path / "bad", scheduler="serial", params={"threshold_high": 1e9}, quiet=True)
    assert bad.status[0] == "failed" and "no neuron found" in bad.error[0]
    with pytest.raises(batch.MorphError, match="unknown tracing parameter"):
        batch.trace(str(d / "*.tif"), tmp_path / "x", scheduler="serial", params={"nonsense": 1}, quiet=True)


def test_points_table_reads_clicks_per_stack(stacks: Path, tmp_path: Path):
    """--points: one click per row (stack by name, or by path, relative to the table's folder or
    absolute, where names repeat; soma, axon, seeds); every mistake is refused with its line."""
    files = batch.expand_paths(str(stacks / "**/*.tif"))  # a.tif, b/a.tif, bf.tif
    names = [f.relative_to(stacks).as_posix() for f in files]
    t = stacks / "clicks.csv"
    t.write_text("Stack,Kind,X,Y,Z\nbf.tif,soma,10,20,3\nbf.tif,seed,1,2,3\n b/a.tif , SEED ,4,5,6\n"
                 f"{stacks / 'bf.tif'},seed,7,8,9\nbf.tif,axon,11,12,4\n")
    got = batch.read_points_table(t, files)
    bf, ba = names.index("bf.tif"), names.index("b/a.tif")
    assert got == {bf: {"soma": [10.0, 20.0, 3.0], "seeds": [[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]], "axon": [11.0, 12.0, 4.0]},
                   ba: {"seeds": [[4.0, 5.0, 6.0]]}}
    tsv = tmp_path / "clicks.tsv"  # tab-separated, with Excel's byte-order mark
    tsv.write_bytes(b"\xef\xbb\xbf" + ("stack\tkind\tx\ty\tz\n" + f"{stacks / 'b' / 'a.tif'}\tsoma\t1\t2\t3\n").encode())
    assert batch.read_points_table(tsv, files) == {ba: {"soma": [1.0, 2.0, 3.0]}}
    for text, match in (
        ("stack,kind,x,y\nbf.tif,soma,1,2\n", "names no column z"),
        ("stack,kind,x,y,z\nnope.tif,soma,1,2,3\n", "stack 'nope.tif' is none of the 3 stacks"),
        ("stack,kind,x,y,z\na.tif,soma,1,2,3\n", "stack 'a.tif' names 2 stacks"),
        ("stack,kind,x,y,z\nbf.tif,dendrite,1,2,3\n", "unknown kind 'dendrite'"),
        ("stack,kind,x,y,z\nbf.tif,soma,1,2,3\nbf.tif,soma,4,5,6\n", "a second soma point for bf.tif"),
        ("stack,kind,x,y,z\nbf.tif,seed,1,two,3\n", "must be numbers"),
    ):
        bad = tmp_path / "bad.csv"  # outside the stacks' folder: 'a.tif' is a name, not a path
        bad.write_text(text)
        with pytest.raises(batch.MorphError, match=match) as e:
            batch.read_points_table(bad, files)
        assert e.value.line is not None
    with pytest.raises(batch.MorphError, match="points table not found"):
        batch.read_points_table(tmp_path / "missing.csv", files)


def test_trace_batch_with_clicks(client, stacks: Path, tmp_path: Path):
    """The clicks reach each stack's tracer (voxels converted by the stack's voxel size); they
    are part of the stamp: a re-run with the same clicks skips, a changed click retraces that
    stack only, stacks without clicks keep the stamp they had."""
    pattern, outdir = str(stacks / "**/*.tif"), tmp_path / "traced"
    first = batch.trace(pattern, outdir, client, func=points_trace, quiet=True)
    assert first.attrs["summary"].ok
    t = tmp_path / "clicks.csv"
    t.write_text("stack,kind,x,y,z\nbf.tif,soma,10,20,3\nbf.tif,seed,1,2,3\n")
    df = batch.trace(pattern, outdir, client, func=points_trace, points=t, units="voxel", quiet=True)
    assert dict(zip(df.file.map(lambda f: Path(f).name + str(Path(f).parent.name == "b")), df.status)) == {
        "a.tifFalse": "done", "a.tifTrue": "done", "bf.tifFalse": "traced"}
    bf = df.output[df.file.str.endswith("bf.tif")].iloc[0]
    vs = np.asarray(read_stack(stacks / "bf.tif").voxel_size)
    np.testing.assert_allclose(read_swc(bf).xyz, np.array([[10, 20, 3], [1, 2, 3]]) * vs)
    again = batch.trace(pattern, outdir, client, func=points_trace, points=t, units="voxel", quiet=True)
    assert (again.status == "done").all()
    t.write_text("stack,kind,x,y,z\nbf.tif,soma,10,21,3\nbf.tif,seed,1,2,3\n")
    moved = batch.trace(pattern, outdir, scheduler="serial", func=points_trace, points=t, quiet=True)
    assert sorted(moved.status) == ["done", "done", "traced"]
    np.testing.assert_allclose(read_swc(bf).xyz, [[10, 21, 3], [1, 2, 3]])  # micrometres this time
    with pytest.raises(batch.MorphError, match="units must be"):
        batch.trace(pattern, outdir, scheduler="serial", func=points_trace, points=t, units="mm", quiet=True)


def test_remove_stale_parts_takes_only_old_hidden_temporaries(tmp_path: Path):
    """The temporaries a killed writer leaves (hidden .NAME.XXXX.part.EXT) go once a minute
    old; a fresh one (a live write) and every other file stay."""
    from morph.io.atomic import atomic_write_text, remove_stale_parts

    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    old = [tmp_path / ".x.json.k2j3.part.json", sub / ".cell.swc.99zz.part.swc"]
    fresh = tmp_path / ".y.json.aa11.part.json"
    keep = [tmp_path / "x.json", sub / "cell.swc", tmp_path / "notes.part.txt"]
    for f in [*old, fresh, *keep]:
        f.write_text("{")
    for f in [*old, *keep]:
        os.utime(f, (time.time() - 600, time.time() - 600))
    assert remove_stale_parts(tmp_path) == 2
    assert not any(f.exists() for f in old) and fresh.exists() and all(f.exists() for f in keep)
    atomic_write_text(tmp_path / "z.json", "{}")  # its own temporary is renamed, none left
    assert sorted(p.name for p in tmp_path.glob(".*")) == [fresh.name]
    assert remove_stale_parts(tmp_path / "missing") == 0


# ---- bad input: refused up front, with a clear message, nothing written --------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit code and stderr of ``morph ARGS``; never an internal error."""
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, err
    return code, err


def _one_cell(tmp_path: Path) -> Path:
    d = tmp_path / "one"
    d.mkdir()
    shutil.copy(sorted(real_swcs(), key=lambda p: p.stat().st_size)[0], d / "g.swc")
    return d / "g.swc"


def test_trace_stacks_named_alike_but_for_the_suffix_get_distinct_outputs(tmp_path: Path, data: Path):
    """a.tif and a.tiff of one folder are traced to a.tif.swc and a.tiff.swc (not both to
    a.swc, the last one winning); a re-run finds both done. Inputs that would still share an
    output are refused, naming them."""
    d = tmp_path / "tr2"
    d.mkdir()
    for name in ("a.tif", "a.tiff", "b.tif"):
        shutil.copy(data / "images" / "rivuletpy" / "test-small.tif", d / name)
    out = tmp_path / "out"
    first = batch.trace(str(d / "*"), out, scheduler="serial", func=standin_trace, quiet=True)
    assert first.attrs["summary"].ok and (first.status == "traced").all()
    assert sorted(Path(p).name for p in first.output) == ["a.tif.swc", "a.tiff.swc", "b.swc"]
    assert sorted(p.name for p in out.glob("*.swc")) == ["a.tif.swc", "a.tiff.swc", "b.swc"]
    for src, dst in zip(first.file, first.output):
        assert os.path.abspath(src) in Path(dst).read_text()  # each output stamped with its own source
    again = batch.trace(str(d / "*"), out, scheduler="serial", func=standin_trace, quiet=True)
    assert (again.status == "done").all()
    # letter case does not tell outputs apart (case-insensitive file systems)
    assert [p.name for p in batch.output_paths([Path("x/A.tif"), Path("x/a.TIFF")], out)] == ["A.tif.swc", "a.TIFF.swc"]
    assert [p.name for p in batch.output_paths([Path("x/c.tif.tif"), Path("x/c.tif.tiff"), Path("x/c.tif")], out)] == [
        "c.tif.tif.swc", "c.tif.tiff.swc", "c.swc"]
    with pytest.raises(batch.MorphError, match=r"2 stacks would be traced to the same file .*a\.tif\.swc") as e:
        batch.output_paths([Path("x/a.tif.tif"), Path("x/a.tif"), Path("x/a.tiff")], out)
    assert "x/a.tif.tif, x/a.tif " in str(e.value) and "a.tiff" not in str(e.value)


def test_features_options_checked_before_any_work(tmp_path: Path, capsys):
    """Unknown --features or --compartments: refused as `morph features` refuses them (exit 2),
    before any file is read; no table, cache folder or log is written."""
    g = _one_cell(tmp_path)
    out = tmp_path / "b6.csv"
    for opt in ("--features", "--compartments"):
        code, err = _cli(capsys, "batch", "features", str(g), "-o", str(out), "--scheduler", "serial", opt, "bogus")
        assert code == 2
        assert ("unknown feature(s): bogus" if opt == "--features" else "unknown compartment 'bogus'") in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]
    with pytest.raises(batch.MorphError, match="unknown feature"):
        batch.features(str(g), scheduler="serial", features=["total_length", "bogus"], quiet=True)
    ok = batch.features(str(g), scheduler="serial", compartments=["axon"], features=["total_length"], quiet=True)
    assert list(ok.columns) == ["file", "axon.total_length"]


def test_nothing_written_when_every_file_fails(tmp_path: Path, capsys):
    """Every file fails: no table (not a header-only file), no cache folder; the summary says
    that nothing was written; the failures are in the log; exit 1."""
    (tmp_path / "dir.swc").mkdir()
    (tmp_path / "bad.swc").write_text("garbage\n")
    out = tmp_path / "b.csv"
    code, err = _cli(capsys, "batch", "features", str(tmp_path / "dir.swc"), str(tmp_path / "bad.swc"), "-o", str(out),
                     "--scheduler", "serial", "--func", "test_batch:standin")
    assert code == 1
    assert "no file could be measured: nothing written" in err
    assert not out.exists() and not (tmp_path / "b.csv.cache").exists()
    assert "dir.swc" in (tmp_path / "b.csv.log").read_text()
    code, err = _cli(capsys, "-q", "batch", "features", str(tmp_path / "dir.swc"), "-o", str(out),
                     "--scheduler", "serial", "--func", "test_batch:standin")
    assert code == 1 and "nothing written" in err  # said under -q too
    df = batch.features(str(tmp_path / "bad.swc"), scheduler="serial", func=standin, output=out, quiet=True)
    assert len(df) == 0 and df.attrs["summary"].output is None and not out.exists()
    # a table of an earlier run is left as it was
    cell = _one_cell(tmp_path)
    pattern = [str(cell), str(tmp_path / "bad.swc")]
    batch.features(pattern, scheduler="serial", func=standin, output=out, quiet=True)
    before = out.read_bytes()
    cell.write_text("garbage\n")
    s = batch.features(pattern, scheduler="serial", func=standin, output=out, quiet=True).attrs["summary"]
    assert s.failed == 2 and out.read_bytes() == before
    assert any("left as it was" in n for n in s.notes)
    # batch trace: no stack traced, the log elsewhere: no output folder, no features table
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    tr = batch.trace(str(tmp_path / "bad.tif"), tmp_path / "tr", scheduler="serial", func=standin_trace,
                     log=tmp_path / "t.log", features_output=tmp_path / "t.csv", quiet=True)
    s = tr.attrs["summary"]
    assert s.failed == 1 and s.output is None and "no stack could be traced: nothing written" in s.format()
    assert not (tmp_path / "tr").exists() and not (tmp_path / "t.csv").exists()
    assert "bad.tif" in (tmp_path / "t.log").read_text()


def test_outputs_and_log_checked_before_any_work(tmp_path: Path, capsys):
    """A --log (or table, or features table) that cannot be written is refused before any
    file is processed, with the option's file named; an existing file that is not a failure
    log is not replaced without --force."""
    g = _one_cell(tmp_path)
    calls = tmp_path / "calls.txt"
    func = functools.partial(recording_standin, calls=str(calls))
    out = tmp_path / "b.csv"
    for log, match in ((tmp_path / "nodir" / "x.log", "failure log: output folder does not exist"),
                       (tmp_path, "failure log: output is a folder"),
                       (Path("/proc/x.log"), "cannot write")):
        with pytest.raises(batch.MorphError, match=match):
            batch.features(str(g), scheduler="serial", func=func, output=out, log=log, quiet=True)
    for table, match in ((tmp_path / "nodir" / "b.csv", "output folder does not exist"),
                         (Path("/proc/b.csv"), "cannot write")):
        with pytest.raises(batch.MorphError, match=match):
            batch.features(str(g), scheduler="serial", func=func, output=table, quiet=True)
    assert not calls.exists() and not out.exists() and not (tmp_path / "b.csv.cache").exists()
    (tmp_path / "c.csv.cache").write_text("a file")
    with pytest.raises(batch.MorphError, match="cache folder's name is taken by a file"):
        batch.features(str(g), scheduler="serial", func=func, output=tmp_path / "c.csv", quiet=True)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, err = _cli(capsys, "batch", "features", str(g), str(tmp_path / "dir.swc*"), "-o", str(out),
                     "--scheduler", "serial", "--func", "test_batch:standin", "--log", str(notes))
    assert code == 2 and "no file matches" in err
    (tmp_path / "dir.swc").mkdir()
    code, err = _cli(capsys, "batch", "features", str(g), str(tmp_path / "dir.swc"), "-o", str(out),
                     "--scheduler", "serial", "--func", "test_batch:standin", "--log", str(notes))
    assert code == 2 and "not a failure log" in err and "--force" in err
    assert notes.read_text() == "my notes\n" and not out.exists()
    # the run's own log is replaced by the next run's
    code, err = _cli(capsys, "batch", "features", str(g), str(tmp_path / "dir.swc"), "-o", str(out),
                     "--scheduler", "serial", "--func", "test_batch:standin", "--log", str(tmp_path / "run.log"))
    assert code == 1 and "dir.swc" in (tmp_path / "run.log").read_text()
    code, _ = _cli(capsys, "batch", "features", str(g), str(tmp_path / "dir.swc"), "-o", str(out),
                   "--scheduler", "serial", "--func", "test_batch:standin", "--log", str(tmp_path / "run.log"))
    assert code == 1 and (tmp_path / "run.log").read_text().count("FAILED") == 1


def test_trace_options_and_outputs_checked_before_any_work(tmp_path: Path, data: Path, capsys):
    """batch trace: unknown --param, a --features table or --log that cannot be written, an
    output folder that cannot be made: refused before any stack is traced, and no empty
    output folder is left behind."""
    stack = tmp_path / "s.tif"
    shutil.copy(data / "images" / "rivuletpy" / "test-small.tif", stack)
    tr = tmp_path / "tr"
    base = ["batch", "trace", str(stack), "-o", str(tr), "--scheduler", "serial", "--voxel", "1", "1", "1"]
    code, err = _cli(capsys, *base, "--param", "bogus=1")
    assert code == 2 and "unknown tracing parameter 'bogus'" in err
    code, err = _cli(capsys, *base, "--param", "threshold_hig=1")
    assert code == 2 and "did you mean threshold_high?" in err
    assert not tr.exists()
    calls = tmp_path / "calls.txt"
    func = functools.partial(recording_trace, calls=str(calls))
    for kw, match in (({"features_output": "/proc/x.csv"}, "/proc/x.csv: cannot write"),
                      ({"features_output": tmp_path / "nodir" / "f.csv"}, "output folder does not exist"),
                      ({"features_output": tmp_path / "f.xlsx"}, "unknown table format"),
                      ({"features_output": tr / "f.xlsx"}, "unknown table format"),
                      ({"log": tmp_path / "nodir" / "t.log"}, "failure log: output folder does not exist"),
                      ({"log": "/proc/t.log"}, "cannot write")):
        with pytest.raises(batch.MorphError, match=match):
            batch.trace(str(stack), tr, scheduler="serial", func=func, quiet=True, **kw)
        assert not tr.exists() and not calls.exists()
    with pytest.raises(batch.MorphError, match="cannot write the output folder"):
        batch.trace(str(stack), "/proc/nope/traced", scheduler="serial", func=func, quiet=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(batch.MorphError, match="output must be a folder"):
        batch.trace(str(stack), tmp_path / "file", scheduler="serial", func=func, quiet=True)
    assert not calls.exists()
    # a table and a log straight inside the output folder still to be made are fine
    df = batch.trace(str(stack), tr, scheduler="serial", func=standin_trace, features_output=tr / "f.csv",
                     features_func=standin, log=tr / "t.log", quiet=True)
    assert df.attrs["summary"].ok and len(pd.read_csv(tr / "f.csv")) == 1


def test_trace_refuses_a_reconstruction(tmp_path: Path, capsys):
    """An .swc given to batch trace is a reconstruction, not a stack: said so (not 'not a TIFF
    file'), with batch features suggested, before anything is written."""
    g = _one_cell(tmp_path)
    code, err = _cli(capsys, "batch", "trace", str(g), "-o", str(tmp_path / "tr"), "--scheduler", "serial",
                     "--voxel", "1", "1", "1")
    assert code == 2
    assert "g.swc: is a reconstruction (SWC), not an image stack" in err and "morph batch features" in err
    assert "TIFF file" not in err and not (tmp_path / "tr").exists()


def test_existing_file_with_glob_characters_is_taken_literally(tmp_path: Path, capsys):
    """'cell[1].swc' names an existing file: it is that file, not a pattern matching 'cell1.swc'."""
    g = _one_cell(tmp_path)
    lit = tmp_path / "cell[1].swc"
    shutil.copy(g, lit)
    assert batch.expand_paths(str(lit)) == [lit]
    shutil.copy(g, tmp_path / "cell1.swc")  # what the pattern would match
    assert batch.expand_paths(str(lit)) == [lit]
    assert batch.expand_paths(str(tmp_path / "cell[0-9].swc")) == [tmp_path / "cell1.swc"]  # a pattern still is one
    out = tmp_path / "g.csv"
    code, _ = _cli(capsys, "batch", "features", str(lit), "-o", str(out), "--scheduler", "serial",
                   "--func", "test_batch:standin")
    assert code == 0 and list(pd.read_csv(out)["file"]) == [str(lit)]


def test_table_of_other_inputs_not_replaced_without_force(cells: Path, tmp_path: Path, capsys):
    """A re-run of the same batch (or of more files) replaces its table; a run over fewer or
    other files would drop rows of the earlier table: refused without --force, before any work."""
    out = tmp_path / "b1.csv"
    four = sorted(cells.glob("*.swc"))[:4]
    batch.features(four, scheduler="serial", func=standin, output=out, quiet=True)
    before = out.read_bytes()
    calls = tmp_path / "calls.txt"
    func = functools.partial(recording_standin, calls=str(calls))
    with pytest.raises(batch.OutputExistsError, match="rows of 3 file.* this run does not include") as e:
        batch.features(four[:1], scheduler="serial", func=func, output=out, quiet=True)
    assert "--force" in str(e.value)
    assert out.read_bytes() == before and not calls.exists()
    code, err = _cli(capsys, "batch", "features", str(four[0]), "-o", str(out), "--scheduler", "serial",
                     "--func", "test_batch:standin")
    assert code == 2 and "replacing it would lose them" in err and out.read_bytes() == before
    # the same inputs, given another way (absolute paths): the same batch
    again = batch.features([str(f.resolve()) for f in four], scheduler="serial", func=standin, output=out, quiet=True)
    assert again.attrs["summary"].skipped == 4
    more = batch.features(str(cells / "*.swc"), scheduler="serial", func=standin, output=out, quiet=True)
    assert len(pd.read_csv(out)) == len(more) == 5
    forced = batch.features(four[:1], scheduler="serial", func=standin, output=out, force=True, quiet=True)
    assert len(pd.read_csv(out)) == len(forced) == 1
    # a file that merely has a cache folder beside it, but is no batch table, is not replaced
    other = tmp_path / "other.csv"
    other.write_text("name,value\nx,1\n")
    (tmp_path / "other.csv.cache").mkdir()
    with pytest.raises(batch.OutputExistsError, match="not a table written by morph batch"):
        batch.features(four, scheduler="serial", func=standin, output=other, quiet=True)
    assert other.read_text() == "name,value\nx,1\n"


def test_trace_features_table_of_other_stacks_not_replaced(stacks: Path, tmp_path: Path):
    """The --features table of batch trace is checked against every stack of the run, before
    tracing: a table of other stacks is not replaced without force."""
    feat = tmp_path / "feat.csv"
    batch.trace(str(stacks / "**/*.tif"), tmp_path / "tr", scheduler="serial", func=standin_trace,
                features_output=feat, features_func=standin, quiet=True)
    before = feat.read_bytes()
    calls = tmp_path / "calls.txt"
    func = functools.partial(recording_trace, calls=str(calls))
    with pytest.raises(batch.OutputExistsError, match="this run does not include"):
        batch.trace(str(stacks / "bf.tif"), tmp_path / "tr", scheduler="serial", func=func, features_output=feat,
                    features_func=standin, quiet=True)
    assert feat.read_bytes() == before and not calls.exists()
    df = batch.trace(str(stacks / "**/*.tif"), tmp_path / "tr", scheduler="serial", func=standin_trace,
                     features_output=feat, features_func=standin, quiet=True)
    assert (df.status == "done").all() and len(pd.read_csv(feat)) == 3


def test_scheduler_checked_up_front_and_no_cache_left(tmp_path: Path, data: Path, capsys, monkeypatch):
    """A --scheduler that is no address is refused with the accepted forms, before anything
    is written; a scheduler that cannot be reached leaves no empty cache folder, and the
    previous run's log is kept."""
    g = _one_cell(tmp_path)
    out = tmp_path / "b.csv"
    for bad, why in (("bogus", "no port number"), ("tcp://host", "no port number"), ("tcp://:8786", "no host"),
                     ("tcp://host:port", "not a number"), ("tcp://host:70000", "out of range"),
                     ("ftp://host:1", "unknown address scheme")):
        code, err = _cli(capsys, "batch", "features", str(g), "-o", str(out), "--scheduler", bad)
        assert code == 2 and f"bad scheduler {bad!r}: " in err and why in err
        assert "tcp://HOST:PORT" in err and "'serial'" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "nowhere")
    with pytest.raises(batch.MorphError, match="bad DASK_SCHEDULER_ADDRESS 'nowhere'"):
        batch.features(str(g), output=out, func=standin, quiet=True)
    with pytest.raises(batch.MorphError, match="bad scheduler"):
        batch.trace(str(g), tmp_path / "tr", scheduler="x", func=standin_trace, quiet=True)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    for addr in ("tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://host:1", "inproc://x", "serial"):
        batch.check_scheduler(addr)

    @contextlib.contextmanager
    def unreachable(*_a, **_k):
        raise batch.MorphError("cannot reach the Dask scheduler at tcp://127.0.0.1:1")
        yield

    log = tmp_path / "b.csv.log"
    log.write_text("=== 2024-01-01 00:00:00 FAILED earlier.swc\nboom\n\n")
    monkeypatch.setattr(batch, "dask_client", unreachable)
    with pytest.raises(batch.MorphError, match="cannot reach"):
        batch.features(str(g), output=out, func=standin, scheduler="tcp://127.0.0.1:1", quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv.log", "one"]
    assert "earlier.swc" in log.read_text()
    stack = tmp_path / "one" / "s.tif"
    shutil.copy(data / "images" / "rivuletpy" / "test-small.tif", stack)
    with pytest.raises(batch.MorphError, match="cannot reach"):
        batch.trace(str(stack), tmp_path / "tr", scheduler="tcp://127.0.0.1:1", func=standin_trace, quiet=True)
    assert not (tmp_path / "tr").exists()
