"""Image stack reading and writing: metadata, slices, memory mapping, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from morph.errors import StackError
from morph.io import read_stack, write_stack
from morph.io.stack import guess_polarity


def test_imagej_voxel_size_from_real_file(data: Path) -> None:
    s = read_stack(data / "images/snt_misc_spotspine/SpotSpine_ImageStack_Test.tif")
    assert s.shape == (41, 157, 116)
    assert s.voxel_size == pytest.approx((0.06, 0.06, 0.21), rel=1e-6)
    assert s.voxel_size_known
    assert s.polarity() == "fluorescence"


def test_unknown_voxel_size_is_flagged_and_overridable(data: Path) -> None:
    s = read_stack(data / "images/diadem_OP/OP_1.tif")
    assert s.shape == (60, 512, 512) and s.dtype == np.uint8
    assert not s.voxel_size_known and s.voxel_size == (1.0, 1.0, 1.0)
    s2 = read_stack(data / "images/diadem_OP/OP_1.tif", voxel_size=(1, 1, 3.03))
    assert s2.voxel_size_known and s2.voxel_size == (1.0, 1.0, 3.03)


def test_brightfield_polarity(data: Path) -> None:
    s = read_stack(data / "images/patchseq_brightfield/Example_Input_Stack_2112.tif")
    assert s.polarity() == "brightfield"
    assert guess_polarity(255 - np.asarray(s.data)) == "fluorescence"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_write_read_round_trip(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(1)
    a = (rng.random((5, 20, 30)) * 200).astype(dtype)
    p = write_stack(tmp_path / "s.tif", a, (0.2, 0.25, 0.8))
    s = read_stack(p)
    assert s.voxel_size == pytest.approx((0.2, 0.25, 0.8), rel=1e-5)
    assert s.dtype == dtype and np.array_equal(np.asarray(s.data), a)
    with pytest.raises(Exception, match="exists"):
        write_stack(p, a, (1, 1, 1))


def test_ome_metadata(tmp_path: Path) -> None:
    a = np.zeros((4, 10, 12), np.uint16)
    p = tmp_path / "x.ome.tif"
    tifffile.imwrite(
        p,
        a,
        ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.5},
    )
    s = read_stack(p)
    assert s.voxel_size == pytest.approx((0.1, 0.1, 0.5))


def test_z_spacing_missing_from_the_metadata(tmp_path: Path) -> None:
    """ImageJ writes no ``spacing`` for slices 1 unit apart (its default), so a stack saved by
    Fiji with 1 um slices has none: its slices are 1 unit apart, as Fiji shows them (they were
    taken to be as far apart as its pixels are wide). OME has no such default: a file with an
    x and y size but no z size gets z = x, and the origin says so (the tracer warns)."""
    from morph.io.chunked import open_chunked
    from morph.io.stack import Z_ASSUMED

    a = np.zeros((4, 10, 12), np.uint8)
    ij = tmp_path / "fiji.tif"
    tifffile.imwrite(ij, a, imagej=True, resolution=(1 / 0.2, 1 / 0.2), metadata={"unit": "micron", "axes": "ZYX"})
    with tifffile.TiffFile(ij) as tf:
        assert "spacing" not in tf.imagej_metadata
    for opener in (read_stack, open_chunked):
        s = opener(ij)
        assert s.voxel_size == pytest.approx((0.2, 0.2, 1.0)) and s.metadata["voxel_size_origin"] == "ImageJ metadata"
    nm = tmp_path / "nm.tif"
    tifffile.imwrite(nm, a, imagej=True, resolution=(1 / 200, 1 / 200), metadata={"unit": "nm", "axes": "ZYX"})
    assert read_stack(nm).voxel_size == pytest.approx((0.2, 0.2, 0.001))  # 1 nm slices: as the file says
    ome = tmp_path / "noz.ome.tif"
    tifffile.imwrite(ome, a, metadata={"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2})
    s = read_stack(ome)
    assert s.voxel_size == pytest.approx((0.2, 0.2, 0.2)) and s.voxel_size_known
    assert s.metadata["voxel_size_origin"] == f"OME metadata; {Z_ASSUMED}"
    # OME units: the Greek mu and angstroms read; "pixel" is no physical size (it was read as um)
    for unit, size, want in (("\u03bcm", 0.2, (0.2, 0.2, 1.0)), ("\u00c5", 2000.0, (0.2, 0.2, 1.0)),
                             ("pixel", 0.2, None)):
        tifffile.imwrite(ome, a, metadata={"axes": "ZYX", **{f"PhysicalSize{k}": size * (5 if k == "Z" else 1) for k in "XYZ"},
                                           **{f"PhysicalSize{k}Unit": unit for k in "XYZ"}})
        s = read_stack(ome)
        if want is None:
            assert not s.voxel_size_known and s.metadata["voxel_size_origin"] == "assumed 1 um"
        else:
            assert s.voxel_size == pytest.approx(want) and s.metadata["voxel_size_origin"] == "OME metadata"


def test_folder_of_slices_natural_order(tmp_path: Path) -> None:
    d = tmp_path / "slices"
    d.mkdir()
    for k in [1, 2, 10, 3]:
        tifffile.imwrite(d / f"slice_{k}.tif", np.full((6, 7), k, np.uint8))
    s = read_stack(d)
    assert s.shape == (4, 6, 7)
    assert [int(s.data[k, 0, 0]) for k in range(4)] == [1, 2, 3, 10]
    # a slice of another pixel type is refused (its values were cast into the first's: 300 -> 44)
    tifffile.imwrite(d / "slice_11.tif", np.full((6, 7), 300, np.uint16))
    with pytest.raises(StackError, match="slice pixel type uint16 differs from the first slice's uint8"):
        read_stack(d)


def test_a_folder_of_stacks_is_refused_with_what_to_do(tmp_path: Path) -> None:
    d = tmp_path / "stacks"
    d.mkdir()
    for k in (1, 2):
        tifffile.imwrite(d / f"cell_{k}.tif", np.zeros((5, 6, 7), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(StackError, match="but this one is a stack of 5 slices of 6 x 7") as e:
        read_stack(d)
    msg = str(e.value)
    assert "cell_1.tif" in msg and "give one of them" in msg and f"morph batch trace '{d}/*.tif'" in msg


def test_large_uncompressed_file_is_memory_mapped(tmp_path: Path) -> None:
    a = np.arange(4 * 50 * 60, dtype=np.uint16).reshape(4, 50, 60)
    p = tmp_path / "raw.tif"
    tifffile.imwrite(p, a, imagej=True, metadata={"axes": "ZYX"})
    s = read_stack(p, mmap=True)
    assert isinstance(s.data, np.memmap)
    assert np.array_equal(np.asarray(s.data), a)
    s2 = read_stack(p, mmap=False)
    assert not isinstance(s2.data, np.memmap)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="file not found"):
        read_stack(tmp_path / "missing.tif")
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(StackError, match="empty.tif: file is empty"):
        read_stack(empty)
    notiff = tmp_path / "a.tif"
    notiff.write_text("hello")
    with pytest.raises(StackError, match="not a TIFF"):
        read_stack(notiff)
    czi = tmp_path / "cell.czi"  # a vendor's format is named, with how to convert it
    czi.write_bytes(b"ZISRAWFILE" + bytes(100))
    with pytest.raises(StackError, match="a Zeiss CZI file: morph reads TIFF stacks") as e:
        read_stack(czi)
    assert "File > Save As > Tiff" in str(e.value)
    good = tmp_path / "g.tif"
    tifffile.imwrite(
        good, np.random.default_rng(0).integers(0, 255, (8, 64, 64), dtype=np.uint8), compression="zlib"
    )
    trunc = tmp_path / "t.tif"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(StackError, match="truncated or corrupt"):
        read_stack(trunc)
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((30, 40), np.uint8))
    with pytest.raises(StackError, match="2-D image") as ei:
        read_stack(flat)
    assert "z-stack" in (ei.value.hint or "")
    assert read_stack(flat, allow_2d=True).shape == (1, 30, 40)
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((3, 20, 20, 3), np.uint8), photometric="rgb")
    with pytest.raises(StackError, match="RGB") as ei:
        read_stack(rgb)
    assert "--channel" in (ei.value.hint or "")
    assert read_stack(rgb, channel=1).shape == (3, 20, 20)
    # a 3-D array written as an ImageJ TIFF without its axes: its slices are labelled channels
    unlabelled = tmp_path / "unlabelled.tif"
    tifffile.imwrite(unlabelled, np.zeros((12, 20, 20), np.uint8), imagej=True)
    with pytest.raises(StackError, match="multi-channel image with 12 channels") as ei:
        read_stack(unlabelled)
    assert "z-slices of one stack labelled as channels" in (ei.value.hint or "")
    tifffile.imwrite(unlabelled, np.zeros((12, 20, 20), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    assert read_stack(unlabelled).shape == (12, 20, 20)
    # a real channel axis beside z: the hint stays the channel choice alone
    twoch = tmp_path / "twoch.tif"
    tifffile.imwrite(twoch, np.zeros((4, 2, 20, 20), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(StackError, match="2 channels") as ei:
        read_stack(twoch)
    assert "labelled as channels" not in (ei.value.hint or "")
    with pytest.raises(StackError, match="absurd voxel size"):
        read_stack(good, voxel_size=(0, 1, 1))
    with pytest.raises(StackError, match="absurd voxel size"):
        read_stack(good, voxel_size=(1e6, 1, 1))


def test_ome_zarr_through_read_stack(tmp_path: Path) -> None:
    from morph.io.chunked import write_zarr

    a = (np.arange(6 * 20 * 30) % 251).astype(np.uint8).reshape(6, 20, 30)
    p = write_zarr(tmp_path / "s.zarr", a, voxel_size=(0.2, 0.2, 0.7))
    s = read_stack(p)
    assert s.voxel_size == pytest.approx((0.2, 0.2, 0.7))
    assert np.array_equal(np.asarray(s.data), a)


def test_channels_picked_or_averaged(tmp_path: Path) -> None:
    """A multi-channel or RGB stack: ``stack_channels`` tells its channels from the metadata;
    ``channel=N`` keeps one (a memory-mapped file stays mapped), ``channel="mean"`` averages
    them, rounded to the stack's integer type, whatever the axis order, in memory or lazily; a
    channel the stack does not have is refused, and so is any channel but 0 on a
    single-channel stack."""
    import dask.array as da

    from morph.io import stack_channels
    from morph.io.chunked import open_chunked

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(5, 24, 20, 3), dtype=np.uint8)  # z y x samples
    mean = np.round(rgb.astype(np.float64).mean(axis=3)).astype(np.uint8)
    f_rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(f_rgb, rgb, photometric="rgb")
    zc = rng.integers(0, 4000, size=(5, 2, 24, 20), dtype=np.uint16)  # ImageJ: z c y x
    f_zc = tmp_path / "zc.tif"
    tifffile.imwrite(f_zc, zc, imagej=True, metadata={"axes": "ZCYX"})
    cz = rng.integers(0, 4000, size=(3, 5, 24, 20), dtype=np.uint16)  # OME: c z y x
    f_cz = tmp_path / "cz.ome.tif"
    tifffile.imwrite(f_cz, cz, metadata={"axes": "CZYX"})
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, mean, imagej=True, metadata={"axes": "ZYX"})
    slices = tmp_path / "slices"
    slices.mkdir()
    for k in range(rgb.shape[0]):
        tifffile.imwrite(slices / f"s{k}.tif", rgb[k], photometric="rgb")

    assert stack_channels(f_rgb) == (3, "RGB") and stack_channels(slices) == (3, "RGB")
    assert stack_channels(f_zc) == (2, "multi-channel") and stack_channels(f_cz) == (3, "multi-channel")
    assert stack_channels(grey) == (1, "")
    with pytest.raises(StackError, match="RGB image with 3 channels") as ei:
        read_stack(f_rgb)
    assert "--channel mean" in (ei.value.hint or "")

    for f, arr, k in ((f_rgb, rgb, 3), (f_zc, zc, 1), (f_cz, cz, 0)):
        want = np.round(arr.astype(np.float64).mean(axis=k)).astype(arr.dtype)
        s = read_stack(f, channel="mean")
        assert s.dtype == arr.dtype and s.metadata["channel"] == "mean"
        np.testing.assert_array_equal(s.data, want)
        lazy = open_chunked(f, channel="mean")
        assert isinstance(lazy.data, da.Array)
        np.testing.assert_array_equal(lazy.data.compute(), want)
        np.testing.assert_array_equal(read_stack(f, channel=1).data, np.take(arr, 1, axis=k))
        np.testing.assert_array_equal(open_chunked(f, channel=1).data.compute(), np.take(arr, 1, axis=k))
        with pytest.raises(StackError, match=r"channel 7 out of range \(0\.\.\d\)"):
            read_stack(f, channel=7)
    np.testing.assert_array_equal(read_stack(slices, channel="mean").data, mean)
    # compressed: read lazily through tifffile's zarr view, averaged there too
    packed = tmp_path / "packed.tif"
    tifffile.imwrite(packed, rgb, photometric="rgb", compression="zlib")
    lazy = open_chunked(packed, channel="mean")
    assert lazy.metadata["format"] == "TIFF (zarr view)"
    np.testing.assert_array_equal(lazy.data.compute(), mean)
    # an uncompressed file is memory-mapped, and one channel of it stays a view of the map
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, np.zeros((4, 3, 16, 16), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    assert isinstance(read_stack(big, channel=2, mmap=True).data, np.memmap)
    # a single-channel stack: channel 0 or the mean is the stack itself; another is refused
    np.testing.assert_array_equal(read_stack(grey, channel="mean").data, mean)
    np.testing.assert_array_equal(read_stack(grey, channel=0).data, mean)
    for opener in (read_stack, open_chunked):
        with pytest.raises(StackError, match="channel 1 given, but the stack has a single channel"):
            opener(grey, channel=1)
    with pytest.raises(StackError, match="0-based index or 'mean'"):
        read_stack(f_rgb, channel="max")


def test_lsm_voxel_size_from_its_cz_lsminfo_tag() -> None:
    """Zeiss LSM files (TIFF with a CZ_LSMINFO tag, read by tifffile) give their voxel size in
    metres; no LSM file is in the test data, so the tag is given as tifffile decodes it."""
    from types import SimpleNamespace

    from morph.cli._common import is_stack_path
    from morph.io.stack import Z_ASSUMED, _meta_voxel

    def lsm(x: float, y: float, z: float) -> SimpleNamespace:
        return SimpleNamespace(is_ome=False, ome_metadata=None, is_lsm=True, is_imagej=False, imagej_metadata=None,
                               lsm_metadata={"VoxelSizeX": x, "VoxelSizeY": y, "VoxelSizeZ": z})

    vs, origin = _meta_voxel(lsm(1.3e-7, 1.3e-7, 4.2e-7))
    assert vs == pytest.approx((0.13, 0.13, 0.42)) and origin == "LSM metadata"
    vs, origin = _meta_voxel(lsm(1.3e-7, 1.3e-7, 0.0))  # a single plane
    assert vs == pytest.approx((0.13, 0.13, 0.13)) and origin == f"LSM metadata; {Z_ASSUMED}"
    assert _meta_voxel(lsm(0.0, 0.0, 0.0)) == (None, "unknown")
    assert is_stack_path(Path("cell.lsm")) and is_stack_path(Path("Cell.LSM")) and not is_stack_path(Path("c.swc"))


def test_a_file_of_several_image_series_says_which_is_read(tmp_path: Path, capsys) -> None:
    """A TIFF holding several image series (positions, tiles) is read as its first series, and
    says so: in the stack's metadata, in morph info, and in the tracer's warning and header.
    A thumbnail (a reduced image, or one under a quarter of the size) is not a series to
    mention; nor is anything in a file of one series. ``series`` (``--series``) reads
    another, with its own voxel size, in memory, lazily, in morph info, trace and batch
    trace; a series the file lacks is refused."""
    import warnings

    from morph.cli.main import main
    from morph.io.chunked import open_chunked
    from morph.tracing import trace

    rng = np.random.default_rng(0)
    first = rng.integers(150, 200, (6, 64, 64), dtype=np.uint8)
    first[:, 30:34, 5:60] = 40  # a dark neurite, so that the tracer has something to trace
    first[2:5, 26:38, 26:38] = 20
    two = tmp_path / "two.ome.tif"
    second = np.full((4, 80, 80), 180, np.uint8)
    second[:, 38:41, 4:76] = 60
    with tifffile.TiffWriter(two, ome=True) as w:
        w.write(first, metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 1.0})
        w.write(second, metadata={"axes": "ZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 2.0})
    thumb = tmp_path / "thumb.tif"
    with tifffile.TiffWriter(thumb) as w:
        w.write(first, metadata={"axes": "ZYX"})
        w.write(np.zeros((16, 16), np.uint8), subfiletype=1)
    s = read_stack(two)
    np.testing.assert_array_equal(s.data, first)
    assert s.metadata["other_series"] == ["1: 4x80x80 ZYX 'Image1'"] and s.voxel_size == (0.5, 0.5, 1.0)
    assert open_chunked(two).metadata["other_series"] == ["1: 4x80x80 ZYX 'Image1'"]
    for s2 in (read_stack(two, series=1), read_stack(two, series=1, mmap=True), open_chunked(two, series=1)):
        np.testing.assert_array_equal(np.asarray(s2.data), second)
        assert s2.voxel_size == (0.25, 0.25, 2.0) and s2.metadata["series"] == 1
        assert s2.metadata["other_series"] == ["0: 6x64x64 ZYX 'Image0'"]
    with pytest.raises(StackError, match=r"series 2 out of range \(0..1\)"):
        read_stack(two, series=2)
    write_stack(tmp_path / "single.tif", first, (1, 1, 1))
    with pytest.raises(StackError, match="series 1 given, but the file holds a single image series"):
        open_chunked(tmp_path / "single.tif", series=1)
    with pytest.raises(StackError, match="series 1 given, but the file holds a single image series"):
        read_stack(tmp_path, series=1)  # a folder of slices
    assert "other_series" not in read_stack(thumb).metadata
    write_stack(tmp_path / "one.tif", first, (1, 1, 1))
    assert "other_series" not in read_stack(tmp_path / "one.tif").metadata
    assert main(["info", str(two)]) == 0
    out = capsys.readouterr().out
    assert "the file holds 2 image series: series 0 is read, the other (1: 4x80x80 ZYX 'Image1') is not" in out
    assert main(["info", str(two), "--series", "1"]) == 0
    assert "shape_zyx: [4, 80, 80]" in capsys.readouterr().out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = trace(s, voxel_size=(0.5, 0.5, 1.0), progress=False)
    assert any("the file holds 2 image series" in str(w.message) for w in caught)
    assert any(h.endswith("two.ome.tif (image series 0 of its 2)") for h in m.header)
    with warnings.catch_warnings(record=True) as caught:  # chosen: no warning, the header says which
        warnings.simplefilter("always")
        m1 = trace(read_stack(two, series=1), progress=False)
    assert not any("image series" in str(w.message) for w in caught)
    assert any(h.endswith("two.ome.tif (image series 1 of its 2)") for h in m1.header)
    assert main(["trace", str(two), "--series", "1", "-o", str(tmp_path / "s1.swc"), "-q"]) == 0
    assert "(image series 1 of its 2)" in (tmp_path / "s1.swc").read_text()
    from morph import batch

    b = batch.trace(str(two), tmp_path / "batch", scheduler="serial", series=1, quiet=True)
    assert b.attrs["summary"].ok and "(image series 1 of its 2)" in Path(b.output[0]).read_text()
    from morph.tracing import trace_path

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = trace_path(s, (5.0, 16.0, 1.0), (25.0, 16.0, 1.0), voxel_size=(0.5, 0.5, 1.0), progress=False)
    assert any("the file holds 2 image series" in str(w.message) for w in caught)
    assert any(h.endswith("(image series 0 of its 2)") for h in p.header)


def test_a_time_series_of_2d_images_is_not_taken_for_a_z_stack(tmp_path: Path) -> None:
    a = np.zeros((5, 20, 20), np.uint8)
    a[:, 5, 5:15] = 200
    tifffile.imwrite(tmp_path / "tyx.tif", a, imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(StackError, match="a time series of 5 2-D images .axes TYX., not a z-stack"):
        read_stack(tmp_path / "tyx.tif")
    tifffile.imwrite(tmp_path / "zyx.tif", a, imagej=True, metadata={"axes": "ZYX"})
    assert read_stack(tmp_path / "zyx.tif").shape == (5, 20, 20)


def test_an_unknown_imagej_unit_is_named(tmp_path: Path) -> None:
    a = np.zeros((4, 20, 20), np.uint8)
    tifffile.imwrite(tmp_path / "f.tif", a, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "ZYX", "unit": "furlong"})
    s = read_stack(tmp_path / "f.tif")
    assert not s.voxel_size_known
    assert s.metadata["voxel_size_origin"] == "assumed 1 um (the ImageJ unit 'furlong' is not a length morph knows)"
    tifffile.imwrite(tmp_path / "p.tif", a, imagej=True, metadata={"axes": "ZYX", "unit": "pixel"})
    assert read_stack(tmp_path / "p.tif").metadata["voxel_size_origin"] == "assumed 1 um"


def test_planes_labelled_as_channels_are_explained_when_one_channel_is_read(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "cyx.tif", np.zeros((5, 30, 30), np.uint8), imagej=True, metadata={"axes": "CYX"})
    with pytest.raises(StackError, match="each of its 5 channels is one plane.*save it again with axes ZYX"):
        read_stack(tmp_path / "cyx.tif", channel=0)
