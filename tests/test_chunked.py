"""Stacks larger than memory: lazy chunked input (TIFF, zarr, OME-Zarr) and the local tracing
stages run chunk by chunk under a memory bound, equal to the in-memory computation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

from morph import batch
from morph.errors import OutputExistsError, StackError, TracingError
from morph.io import read_stack, write_stack
from morph.io.chunked import default_chunks, open_chunked, write_zarr
from morph.tracing import chunked

OP1 = "images/diadem_OP/OP_1.tif"


@pytest.fixture(scope="module")
def op1(data: Path):
    return read_stack(data / OP1)


# ---- chunked input ---------------------------------------------------------------------------


def test_tiff_pagewise_and_memmapped(data: Path, op1, tmp_path: Path):
    s = open_chunked(data / OP1, chunks=(7, 512, 512))
    assert s.metadata["format"] == "TIFF (page-wise)"  # compressed: read a slab of pages per chunk
    assert isinstance(s.data, da.Array) and s.data.chunks[0][0] == 7
    np.testing.assert_array_equal(s.data.compute(), op1.data)
    np.testing.assert_array_equal(s.data[20:30, 100:200].compute(), op1.data[20:30, 100:200])
    assert s.polarity() == op1.polarity()
    raw = tmp_path / "raw.tif"
    write_stack(raw, op1.data, (0.25, 0.25, 1.5), compression=None)
    m = open_chunked(raw)
    assert m.metadata["format"] == "TIFF (memory-mapped)"
    assert m.voxel_size == pytest.approx((0.25, 0.25, 1.5)) and m.voxel_size_known
    np.testing.assert_array_equal(m.data.compute(), op1.data)
    assert open_chunked(raw, voxel_size=(1, 1, 2)).voxel_size == (1.0, 1.0, 2.0)


def test_zarr_roundtrip_and_atomic_write(op1, tmp_path: Path):
    p = tmp_path / "op1.zarr"
    write_zarr(p, op1.data, (0.5, 0.5, 3.03), chunks=(16, 128, 128))
    z = open_chunked(p)
    assert z.metadata["format"] == "OME-Zarr" and z.voxel_size == pytest.approx((0.5, 0.5, 3.03))
    assert z.data.chunks[1][0] == 128
    np.testing.assert_array_equal(z.data.compute(), op1.data)
    with pytest.raises(OutputExistsError):
        write_zarr(p, op1.data)
    # from a dask array, chunk by chunk; replacing with force
    lazy = da.from_array(op1.data, chunks=(10, 256, 256)).astype(np.float32) * 2
    write_zarr(p, lazy, (1, 1, 2), force=True)
    np.testing.assert_array_equal(open_chunked(p).data.compute(), op1.data.astype(np.float32) * 2)
    # an interrupted write (Ctrl-C is a BaseException too) leaves nothing behind
    class Interrupted(BaseException):
        pass

    def boom(b):
        raise Interrupted

    bad = da.from_array(op1.data, chunks=(10, 512, 512)).map_blocks(boom, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))
    with pytest.raises(Interrupted):
        write_zarr(tmp_path / "bad.zarr", bad)
    assert not (tmp_path / "bad.zarr").exists()
    assert not [q for q in tmp_path.iterdir() if ".part" in q.name]
    # a batch run opens zarr stacks the same way
    st = batch.load_stack(p)
    assert st.voxel_size == (1.0, 1.0, 2.0) and st.data.shape == op1.data.shape


def test_ome_zarr_v3_with_channels_and_units(tmp_path: Path):
    import zarr

    rng = np.random.default_rng(0)
    vol = rng.integers(0, 4000, size=(1, 2, 12, 20, 24), dtype=np.uint16)  # t c z y x
    p = tmp_path / "cells.ome.zarr"
    root = zarr.open_group(str(p), mode="w", zarr_format=3)
    root.create_array("s0", shape=vol.shape, chunks=(1, 1, 6, 20, 24), dtype=vol.dtype)[:] = vol
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [
                    {"name": "t", "type": "time"},
                    {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space", "unit": "nanometer"},
                    {"name": "y", "type": "space", "unit": "nanometer"},
                    {"name": "x", "type": "space", "unit": "nanometer"},
                ],
                "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1000, 200, 100]}]}],
                "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 2, 2]}],
            }
        ],
    }
    with pytest.raises(StackError, match="2 channels"):
        open_chunked(p)
    s = open_chunked(p, channel=1)
    assert s.voxel_size == pytest.approx((0.2, 0.4, 2.0))  # nm -> um, both scales applied
    np.testing.assert_array_equal(s.data.compute(), vol[0, 1])
    # their mean, lazily, rounded to the store's type; the channel count from the metadata
    np.testing.assert_array_equal(open_chunked(p, channel="mean").data.compute(),
                                  np.round(vol[0].astype(np.float64).mean(axis=0)).astype(np.uint16))
    from morph.io import stack_channels

    assert stack_channels(p) == (2, "multi-channel")
    with pytest.raises(StackError, match="level 3"):
        open_chunked(p, channel=0, level=3)
    # a plain 3-D zarr array: voxel size unknown
    plain = tmp_path / "plain.zarr"
    zarr.open_array(str(plain), mode="w", shape=(4, 5, 6), dtype="u1", zarr_format=2)[:] = 7
    q = open_chunked(plain)
    assert not q.voxel_size_known and q.data.sum().compute() == 7 * 120


def test_bad_inputs(tmp_path: Path):
    (tmp_path / "x.tif").write_bytes(b"nope")
    with pytest.raises(StackError, match="not a TIFF"):
        open_chunked(tmp_path / "x.tif")
    with pytest.raises(StackError, match="not found"):
        open_chunked(tmp_path / "missing.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(StackError):
        open_chunked(tmp_path / "empty.zarr")
    big = default_chunks((1000, 8192, 8192), 2, 64 * 2**20)  # 128 MiB slices: square tiles
    assert big[1] < 8192 and np.prod(big) * 2 <= 64 * 2**20
    assert default_chunks((1000, 2048, 2048), 2, 64 * 2**20) == (8, 2048, 2048)  # 8 MiB slices: slabs
    assert default_chunks((100, 256, 256), 1, 64 * 2**20) == (100, 256, 256)


# ---- local stages chunk by chunk -----------------------------------------------------------


def test_map_local_equals_whole_stack_3d_tiles(tmp_path: Path):
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(40, 90, 110)).astype(np.float32)
    sigma = (1.0, 2.0, 1.5)
    halo = tuple(int(np.ceil(3 * s)) + 1 for s in sigma)
    ref = ndi.gaussian_filter(vol, sigma, mode="nearest", truncate=3.0)
    with chunked.scratch(tmp_path) as d:
        bound = chunked.FIXED_OVERHEAD + 2**20  # 1 MiB for the chunks: tiles in x and y
        plan = chunked.plan_chunks(vol.shape, bound, halo=halo, in_itemsize=4, whole_slices=False)
        assert plan.chunks[1] < 90 and plan.chunks[2] < 110  # really tiled in x and y
        out = chunked.map_local(
            ndi.gaussian_filter, vol, halo=halo, max_memory=bound, scratch_dir=d, whole_slices=False,
            sigma=sigma, mode="nearest", truncate=3.0,
        )
        np.testing.assert_array_equal(out, ref)
        # too little halo is visibly wrong: the test can fail
        bad = chunked.map_local(
            ndi.gaussian_filter, vol, halo=(1, 1, 1), max_memory=bound, scratch_dir=d, whole_slices=False,
            sigma=sigma, mode="nearest", truncate=3.0,
        )
        assert np.abs(bad - ref).max() > 1e-3
    assert not any(tmp_path.iterdir())  # scratch removed


def test_preprocess_chunked_equals_tracer_preprocess(op1, tmp_path: Path):
    from morph.tracing import preprocess as pre

    vs = (1.0, 1.0, 3.03)
    data = op1.data[:36]
    ref = pre.preprocess(data, vs, polarity="fluorescence")
    bound = 64 * 2**20
    plan = chunked.plan_chunks(data.shape, bound, halo=(pre.halo_slices(0.8, vs), 0, 0), in_itemsize=1)
    assert plan.chunks[0] < 36 // 3  # several slabs
    with chunked.scratch(tmp_path) as d:
        chunked.preprocess(data[:4], vs, polarity="fluorescence", max_memory=bound, scratch_dir=d)  # warm imports
        tracemalloc.start()
        try:
            out = chunked.preprocess(data, vs, polarity="fluorescence", max_memory=bound, scratch_dir=d)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert isinstance(out, np.memmap)
        np.testing.assert_array_equal(out, ref)
        assert peak < bound, f"peak {peak / 2**20:.1f} MiB over the {bound / 2**20:.0f} MiB bound"
        # the reduced representation: voxels above a threshold, slab by slab
        zyx, vals = chunked.sparse_above(out, 3.0, max_memory=2**20)
        np.testing.assert_array_equal(zyx, np.argwhere(ref > 3.0))
        np.testing.assert_array_equal(vals, ref[ref > 3.0])
        # and a textured brightfield stack with the background estimated twice (background_fine_um)
        import scipy.ndimage as ndi

        rng = np.random.default_rng(3)
        bf = 180.0 - 40.0 * (op1.data[:36] > 40) + 6.0 * ndi.gaussian_filter(rng.normal(0, 3.0, (36, 512, 512)), 2.0)
        bf = np.clip(bf, 0, 255).astype(np.uint8)
        small = 96 * 2**20
        plan = chunked.plan_chunks(bf.shape, small, halo=(pre.halo_slices(0.8, vs, two_pass=True), 0, 0), in_itemsize=1,
                                   bytes_per_voxel=chunked.PREPROCESS_BYTES_PER_VOXEL + 4)
        assert plan.chunks[0] < 36 // 3  # several slabs
        two = chunked.preprocess(bf, vs, polarity="brightfield", max_memory=small, scratch_dir=d, percentile=50.0,
                                 fine_block_um=20.0)
        ref2 = pre.preprocess(bf, vs, polarity="brightfield", fine_block_um=20.0)
        np.testing.assert_allclose(two, ref2, atol=1e-4)
        assert np.abs(ref2 - pre.preprocess(bf, vs, polarity="brightfield")).max() > 0.1


def test_plan_refuses_impossible_bound():
    with pytest.raises(TracingError, match="max-memory"):
        chunked.plan_chunks((10, 4096, 4096), 64 * 2**20, halo=(2, 0, 0))
    # a bound under a MiB is stated as given, not rounded to "0 MiB"
    with pytest.raises(TracingError, match="over the 1 KiB bound"):
        chunked.plan_chunks((10, 512, 512), 1024, halo=(2, 0, 0))
    with pytest.raises(TracingError, match="over the 500 bytes bound"):
        chunked.plan_chunks((10, 512, 512), 500, halo=(2, 0, 0))
    assert chunked.format_size(40 << 20) == "40 MiB"
    p = chunked.plan_chunks((1000, 512, 512), 512 * 2**20, halo=(3, 0, 0))
    assert p.peak_bytes <= 512 * 2**20 and p.chunks[0] > 10


@pytest.mark.parametrize("whole_slices", [True, False])
def test_plan_respects_the_bound_and_uses_it(whole_slices: bool):
    """Over a range of stacks, halos and bounds: the planned peak is under the bound, and one
    more slice (or a larger tile) would not be."""
    rng = np.random.default_rng(4)
    for _ in range(60):
        shape = (int(rng.integers(20, 3000)), int(rng.integers(64, 3000)), int(rng.integers(64, 3000)))
        halo = (int(rng.integers(0, 15)), 0, 0) if whole_slices else tuple(int(h) for h in rng.integers(0, 10, 3))
        bound = int(rng.integers(24, 4096)) * 2**20
        n_par = int(rng.integers(1, 4))
        try:
            p = chunked.plan_chunks(shape, bound, halo=halo, in_itemsize=2, whole_slices=whole_slices, n_parallel=n_par)
        except TracingError as e:
            assert "MiB" in str(e) and e.hint
            continue
        assert p.peak_bytes <= bound
        assert all(1 <= c <= s for c, s in zip(p.chunks, shape))
        if whole_slices:
            assert p.chunks[1:] == tuple(shape[1:])
            if p.chunks[0] < shape[0]:  # the largest slab that fits
                bigger = chunked.plan_chunks(shape, bound * 10, halo=halo, in_itemsize=2, n_parallel=n_par)
                assert bigger.chunks[0] > p.chunks[0]
                per = chunked.PREPROCESS_BYTES_PER_VOXEL + 4
                one_more = per * min(shape[0], p.chunks[0] + 1 + 2 * halo[0]) * shape[1] * shape[2]
                assert one_more * n_par + chunked.FIXED_OVERHEAD > bound


def test_tube_groups_and_tree_memory_are_checked_against_the_bound(capsys):
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 200_000, 400)
    counts[100] = 1_500_000  # one dense slice
    bound, halo, slice_voxels = 256 * 2**20, 5, 1000 * 1000
    groups = chunked.tube_groups(counts, slice_voxels, halo, bound)
    assert groups[0][0] == 0 and groups[-1][1] == 400
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(groups, groups[1:]))  # contiguous, in order

    def cost(z0, z1):
        return (chunked.FIXED_OVERHEAD + (min(400, z1 + halo) - max(0, z0 - halo)) * slice_voxels
                * chunked.TUBE_BYTES_PER_VOXEL + counts[z0:z1].sum() * chunked.CANDIDATE_BYTES_PER_VOXEL)

    assert all(cost(z0, z1) <= bound for z0, z1 in groups)
    assert all(cost(z0, z1 + 1) > bound for z0, z1 in groups[:-1])  # each as large as the bound allows
    with pytest.raises(TracingError, match="needs 11 slices .* slice 100.s 1500000 candidate voxels") as e:
        chunked.tube_groups(counts, slice_voxels, halo, 200 * 2**20)
    need = chunked.FIXED_OVERHEAD + 11 * slice_voxels * chunked.TUBE_BYTES_PER_VOXEL + 1_500_000 * 48
    assert f"raise --max-memory to at least {int(np.ceil(need / 2**20))} MiB" in str(e.value.hint)
    # the hint is the need of the widest window, not of the first slice that fails (near the
    # stack's ends the halo is clipped): the bound it names is enough for every slice
    flat = np.zeros(50, dtype=np.int64)
    bound6 = chunked.FIXED_OVERHEAD + 8 * slice_voxels * chunked.TUBE_BYTES_PER_VOXEL  # 6-8 slices fit, 11 do not
    with pytest.raises(TracingError, match="slice 3's 0 candidate voxels") as e:
        chunked.tube_groups(flat, slice_voxels, halo, bound6)
    widest = int(np.ceil((chunked.FIXED_OVERHEAD + 11 * slice_voxels * chunked.TUBE_BYTES_PER_VOXEL) / 2**20))
    assert f"at least {widest} MiB, what the widest window" in str(e.value.hint)
    assert chunked.tube_groups(flat, slice_voxels, halo, widest * 2**20)[-1][1] == 50
    assert chunked.tube_window_bytes(flat, slice_voxels, halo).max() == 11 * slice_voxels * chunked.TUBE_BYTES_PER_VOXEL
    # the foreground kept so far counts against the bound: the next range is smaller
    held = 4_000_000 * chunked.KEPT_BYTES_PER_VOXEL
    z0, z1 = chunked.next_tube_group(groups[3][0], counts, slice_voxels, halo, bound, held=held)
    assert z0 == groups[3][0] and z1 < groups[3][1] and cost(z0, z1) + held <= bound
    with pytest.raises(TracingError, match="the 4000000 foreground voxels kept so far") as e:
        chunked.next_tube_group(100, counts, slice_voxels, halo, bound, held=held)
    # the hint projects what is kept to the whole stack, at the rate of the slices before
    projected = held * counts.sum() // counts[:100].sum()
    widest = chunked.tube_window_bytes(counts, slice_voxels, halo).max()
    hint = int(np.ceil((widest + chunked.FIXED_OVERHEAD + projected) / 2**20))
    assert f"at least {hint} MiB, what the widest window of this stack needs with the foreground kept so far " \
        "projected to the whole stack" in str(e.value.hint)
    # the tree stages: an estimate before they start, a warning or (strict) an error
    assert chunked.check_tree_memory(1000, 64 * 2**20) == 1000 * chunked.SPARSE_BYTES_PER_VOXEL
    assert capsys.readouterr().err == ""
    chunked.check_tree_memory(200_000, 64 * 2**20)
    assert "200000 foreground voxels" in capsys.readouterr().err
    need_mib = 200_000 * chunked.SPARSE_BYTES_PER_VOXEL / 2**20
    with pytest.raises(TracingError, match=f"200000 foreground voxels: the tree stages need about {need_mib:.0f} MiB"):
        chunked.check_tree_memory(200_000, 64 * 2**20, strict=True)


# ---- the whole tracer -------------------------------------------------------------------------


def test_strided_sample_matches_tracer_subsample(op1):
    flat = op1.data.reshape(-1)
    step = flat.size // 100_000 + 1
    got = chunked.strided_sample(da.from_array(op1.data, chunks=(7, 512, 512)), 100_000, max_memory=2**20)
    np.testing.assert_array_equal(got, flat[::step])


def test_chunked_trace_equals_in_memory_trace(op1, tmp_path: Path):
    """A real DIADEM stack (crop around the arbor's root), traced whole in memory and chunk by
    chunk from an OME-Zarr store under a bound of about a quarter of its float32 image."""
    from morph.tracing import trace

    vs = (1.0, 1.0, 3.03)
    crop = np.ascontiguousarray(op1.data[:, 256:, :256])
    seed = [(30.979, 429.04 - 256, 0.0)]
    ref = trace(crop, voxel_size=vs, seeds=seed, progress=False)
    store = tmp_path / "crop.zarr"
    write_zarr(store, crop, vs, chunks=(8, 256, 256))
    bound = chunked.FIXED_OVERHEAD + 12 * 2**20
    assert crop.size * 4 > 1.2 * (bound - chunked.FIXED_OVERHEAD)  # the float32 image exceeds what chunks may use
    got = chunked.trace(store, max_memory=bound, seeds=seed, progress=False, scratch_dir=tmp_path)
    assert len(ref) > 100
    np.testing.assert_array_equal(got.xyz, ref.xyz)
    np.testing.assert_array_equal(got.parent, ref.parent)
    np.testing.assert_array_equal(got.types, ref.types)
    np.testing.assert_array_equal(got.radius, ref.radius)
    # the headers differ only in the input and in how much of the foreground the bounded
    # tree stages held (the pieces within reach of the root)
    same = ("input:", "polarity:", "tree stages on")
    assert [h for h in got.header if not h.startswith(same)] == [h for h in ref.header if not h.startswith(same)]
    focus = next(h for h in got.header if h.startswith("tree stages on"))
    n_focus, n_all = (int(w) for w in focus.split()[3:6:2])
    assert n_focus < n_all and f"foreground voxels {n_all}" in next(h for h in ref.header if h.startswith("polarity:"))
    assert [p.name for p in tmp_path.iterdir()] == ["crop.zarr"]  # scratch image removed


def test_chunked_trace_joins_the_same_faint_neurites():
    """A brightfield render whose faint dendrites break into weak pieces: the bounded run keeps
    those pieces aside as the in-memory run does and joins the same ones."""
    from morph import synth
    from morph.tracing import trace

    cell = synth.generate_neuron(5, cell_type="aspiny")
    s = synth.render_stack(cell, preset="realistic", voxel_size=(0.5, 0.5, 1.0), crop=(120, 120, 40), seed=7)
    ref = trace(s.data, voxel_size=s.voxel_size, progress=False)
    got = chunked.trace(s.data, voxel_size=s.voxel_size, max_memory=chunked.FIXED_OVERHEAD + 24 * 2**20,
                        progress=False)
    faint = [h for h in ref.header if h.startswith("faint neurites: ")]
    assert faint and faint == [h for h in got.header if h.startswith("faint neurites: ")]
    np.testing.assert_array_equal(got.xyz, ref.xyz)
    np.testing.assert_array_equal(got.parent, ref.parent)


def test_strict_memory_fails_before_the_tree_stages(op1, tmp_path: Path, monkeypatch):
    """With ``strict_memory``, a foreground too large for the bound is an error raised before
    the graph is built (here the per-voxel estimate is inflated so that it is)."""

    crop = np.ascontiguousarray(op1.data[:, 256:, :256])
    store = tmp_path / "crop.zarr"
    write_zarr(store, crop, (1.0, 1.0, 3.03), chunks=(8, 256, 256))

    def never(*a, **k):
        raise AssertionError("the tree stages started")

    from morph.tracing import tree

    monkeypatch.setattr(tree, "build_graph", never)
    monkeypatch.setattr(chunked, "SPARSE_BYTES_PER_VOXEL", 10_000)
    with pytest.raises(TracingError, match="voxels in the largest piece .*: the tree stages need about") as e:
        chunked.trace(store, max_memory=chunked.FIXED_OVERHEAD + 12 * 2**20, strict_memory=True, seeds=[(30.979, 173.04, 0.0)],
                      progress=False, scratch_dir=tmp_path)
    assert "raise --max-memory" in e.value.hint
    assert [p.name for p in tmp_path.iterdir()] == ["crop.zarr"]  # scratch removed


def test_memory_plan_says_when_a_stack_does_not_fit():
    import sys

    from morph.tracing import memory as mem

    available = mem.available_memory()
    if sys.platform.startswith("linux"):
        assert available is not None and available > 0
    gib = 1 << 30
    assert mem.memory_plan(10**6, 1, available=gib) is None
    need, avail, bound = mem.memory_plan(10**9, 2, available=8 * gib)
    assert need == 10**9 * (2 + mem.IN_MEMORY_BYTES_PER_VOXEL) + mem.BASE_MEMORY
    assert avail == 8 * gib and bound == int(8 * gib * mem.CHUNKED_SHARE)
    # a region traced: the stack is still read whole, but only the region's voxels are traced
    assert mem.memory_plan(10**9, 1, traced_voxels=10**7, available=2 * gib) is None
    assert mem.memory_plan(10**9, 1, traced_voxels=10**7, available=gib // 2) is not None


def test_cli_traces_a_stack_too_large_for_the_memory_chunk_by_chunk(tmp_path: Path, capsys, monkeypatch):
    """Without --max-memory, a stack that would not fit in the available memory is traced chunk
    by chunk under half of it, which is said; the reconstruction is the in-memory one."""
    from morph import synth
    from morph.cli.main import main
    from morph.io import read_swc
    from morph.tracing import memory as mem

    cell = synth.generate_neuron(5, cell_type="aspiny")
    s = synth.render_stack(cell, preset="realistic", voxel_size=(0.5, 0.5, 1.0), crop=(120, 120, 40), seed=7)
    tif = tmp_path / "cell.tif"
    write_stack(tif, s.data, s.voxel_size)
    whole, parts = tmp_path / "whole.swc", tmp_path / "parts.swc"
    import morph.io.chunked as io_chunked

    def not_opened(*_a, **_k):
        raise AssertionError("a TIFF whose header shows it fits is not opened lazily")

    with monkeypatch.context() as mp:
        mp.setattr(io_chunked, "open_chunked", not_opened)
        mp.setattr(mem, "available_memory", lambda: 1 << 40)
        assert main(["trace", str(tif), "-o", str(whole), "-q"]) == 0
    need = s.data.size * (1 + mem.IN_MEMORY_BYTES_PER_VOXEL) + mem.BASE_MEMORY
    monkeypatch.setattr(mem, "available_memory", lambda: need - 1)
    assert main(["trace", str(tif), "-o", str(parts)]) == 0
    err = capsys.readouterr().err
    bound = (need - 1) * mem.CHUNKED_SHARE / 2**30
    assert f"traced chunk by chunk under {bound:.1f} GiB" in err and "give --max-memory to choose" in err, err
    a, b = read_swc(whole), read_swc(parts)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.parent, b.parent)
    # batch trace's tasks plan the same way, with a warning in the run's summary
    with pytest.warns(UserWarning, match="traced chunk by chunk under"):
        c = batch._trace_of(str(tif))
    from morph.io import write_swc

    write_swc(c, tmp_path / "batch.swc")
    np.testing.assert_array_equal(read_swc(tmp_path / "batch.swc").xyz, a.xyz)
    # a region small enough is traced in memory, as usual
    roi = tmp_path / "roi.swc"
    monkeypatch.setattr(mem, "available_memory", lambda: s.data.size + 6 * s.data.size + mem.BASE_MEMORY)
    assert main(["trace", str(tif), "-o", str(roi), "--roi", "20,20,0,100,100,40"]) == 0
    assert "chunk by chunk" not in capsys.readouterr().err


def test_a_scratch_disk_too_small_is_an_error_before_the_work(tmp_path: Path, monkeypatch):
    import errno
    import os

    fd, name = __import__("tempfile").mkstemp(dir=tmp_path)
    chunked.reserve_scratch(fd, 1 << 20, tmp_path)  # room: the file holds the space
    assert os.fstat(fd).st_size == 1 << 20
    os.close(fd)

    def full(*_a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    data = np.zeros((6, 40, 40), np.uint8)
    with pytest.raises(TracingError, match="needs 0.0 GiB there for its working image") as e:
        chunked.map_local(ndi.gaussian_filter, data, halo=(1, 1, 1), max_memory=64 << 20, scratch_dir=tmp_path,
                          whole_slices=False, sigma=1.0)
    assert "TMPDIR" in e.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(name).name]  # the refused file removed

    def unsupported(*_a):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    class Usage:
        free = 1000

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    monkeypatch.setattr(chunked.shutil, "disk_usage", lambda _p: Usage())
    with pytest.raises(TracingError, match="has 0.0 GiB free"):
        chunked.map_local(ndi.gaussian_filter, data, halo=(1, 1, 1), max_memory=64 << 20, scratch_dir=tmp_path,
                          whole_slices=False, sigma=1.0)
