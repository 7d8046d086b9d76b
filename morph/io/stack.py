"""Image stacks: TIFF (ImageJ, OME), folders of 2-D slices; voxel sizes in micrometres.

Voxels are always ``(Z, Y, X)``; voxel sizes are always ``(x, y, z)`` in micrometres (the
order people say them in). Large uncompressed files are memory-mapped, not read whole.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import StackError

PathLike = str | os.PathLike[str]
#: Files larger than this (bytes) are memory-mapped when their layout allows it.
MMAP_THRESHOLD = 256 * 1024**2
_VOXEL_MIN_UM, _VOXEL_MAX_UM = 1e-3, 1000.0
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_UNIT_TO_UM = {
    "um": 1.0,
    "µm": 1.0,
    "\\u00b5m": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "nanometre": 1e-3,
    "millimetre": 1e3,
    "meter": 1e6,
    "metre": 1e6,
    "m": 1e6,
    "angstrom": 1e-4,
    "\u00e5": 1e-4,  # Å, OME's angstrom
    "\u03bcm": 1.0,  # Greek mu (the micro sign's compatibility form)
    "cm": 1e4,
    "centimeter": 1e4,
    "centimetre": 1e4,
    "pm": 1e-6,
    "in": 25400.0,
    "inch": 25400.0,
}


@dataclass
class Stack:
    """A 3-D image with its voxel size.

    Attributes
    ----------
    data
        Voxels ``(Z, Y, X)`` (a numpy array or a read-only memory map).
    voxel_size
        ``(x, y, z)`` in micrometres.
    voxel_size_known
        False when the file carried no usable voxel size and 1 um was assumed.
    z_assumed
        (Property) True when the file gave x and y but not z, which was taken equal to x.
    path
        Where the stack came from.
    """

    data: NDArray[Any]
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    voxel_size_known: bool = True
    path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def z_assumed(self) -> bool:
        return Z_ASSUMED in str(self.metadata.get("voxel_size_origin", ""))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def extent_um(self) -> NDArray[np.float64]:
        """Physical size ``(x, y, z)`` in micrometres."""
        z, y, x = self.shape
        return np.array([x, y, z], dtype=np.float64) * np.asarray(self.voxel_size)

    def to_um(self, xyz_voxel: Any) -> NDArray[np.float64]:
        """Voxel coordinates ``(x, y, z)`` (column, row, slice) to micrometres."""
        return np.asarray(xyz_voxel, dtype=np.float64) * np.asarray(self.voxel_size)

    def to_voxel(self, xyz_um: Any) -> NDArray[np.float64]:
        """Micrometres to voxel coordinates ``(x, y, z)``."""
        return np.asarray(xyz_um, dtype=np.float64) / np.asarray(self.voxel_size)

    def polarity(self) -> str:
        """Guess ``"brightfield"`` (dark structure on bright) or ``"fluorescence"``."""
        return guess_polarity(self.data)


def polarity_of_values(values: NDArray[Any]) -> str | None:
    """The polarity the intensity distribution of ``values`` shows, or ``None`` when they are
    constant: the background is the bulk of the voxels (the median), the structure the tail
    of the distribution that reaches further from it (0.05th and 99.95th percentiles; dark
    tail: ``"brightfield"``, bright tail: ``"fluorescence"``; the minimum and the maximum when
    those percentiles equal the median: sparse structure on a background of one value).
    Non-finite values (NaN where registration or deconvolution had no data) are left out.
    The one rule behind :func:`guess_polarity` and the tracer's
    :func:`morph.tracing.polarity.detect_polarity`, so ``morph info``, the viewer and the
    tracer agree."""
    flat = np.asarray(values).reshape(-1).astype(np.float64)
    flat = flat[np.isfinite(flat)]
    if not flat.size:
        return None
    lo, med, hi = np.percentile(flat, [0.05, 50, 99.95])
    if hi <= lo:
        # fewer than 0.05 % of the voxels differ from the bulk (a thin neurite on a background
        # set to one value: a background-subtracted and clipped or a masked stack): the
        # extremes tell
        lo, hi = float(flat.min()), float(flat.max())
        if hi <= lo:
            return None
    return "brightfield" if (med - lo) > (hi - med) else "fluorescence"


def guess_polarity(data: NDArray[Any], *, sample: int = 2_000_000) -> str:
    """Guess whether the structure is darker (brightfield) or brighter (fluorescence)
    than the background (:func:`polarity_of_values` of a regular subsample of at most
    ``sample`` voxels; ``"fluorescence"`` for a constant stack)."""
    flat = np.asarray(data).reshape(-1)
    if flat.size > sample:
        flat = flat[:: flat.size // sample + 1]
    return polarity_of_values(flat) or "fluorescence"


def _natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _check_voxel(vs: Sequence[float], where: str, file: PathLike | None) -> tuple[float, float, float]:
    if len(vs) != 3:
        raise StackError(f"voxel size needs 3 values (x y z), got {len(vs)}", file=file)
    out = tuple(float(v) for v in vs)
    for name, v in zip("xyz", out):
        if not np.isfinite(v) or not (_VOXEL_MIN_UM <= v <= _VOXEL_MAX_UM):
            raise StackError(
                f"absurd voxel size {name}={v:g} um ({where})",
                file=file,
                hint=f"voxel sizes must be between {_VOXEL_MIN_UM:g} and {_VOXEL_MAX_UM:g} um; "
                "give the right one with --voxel X Y Z",
            )
    return out  # type: ignore[return-value]


#: File suffixes of the stacks morph reads (TIFF, OME-TIFF, Zeiss LSM, zarr / OME-Zarr), as
#: :attr:`pathlib.Path.suffix` gives them; a folder of TIFF slices is a stack too.
STACK_SUFFIXES = (".tif", ".tiff", ".lsm", ".zarr")

#: Microscope vendors' file formats that are not TIFF, by suffix: morph names them when it is
#: given one and says how to convert it, rather than taking it for a broken TIFF or an SWC.
MICROSCOPE_FORMATS = {
    ".czi": "Zeiss CZI", ".zvi": "Zeiss ZVI", ".nd2": "Nikon ND2", ".lif": "Leica LIF",
    ".lof": "Leica LOF", ".oib": "Olympus OIB", ".oif": "Olympus OIF", ".oir": "Olympus OIR",
    ".vsi": "Olympus VSI", ".ims": "Imaris IMS", ".dv": "DeltaVision", ".r3d": "DeltaVision",
    ".sld": "SlideBook", ".ics": "ICS", ".ids": "ICS", ".nrrd": "NRRD", ".mrc": "MRC",
    ".v3draw": "Vaa3D raw", ".v3dpbd": "Vaa3D PBD",
}  # fmt: skip

#: How to turn such a file into one morph reads.
CONVERT_HINT = (
    "open the file in Fiji, which reads it with Bio-Formats, and save it with File > Save As > "
    "Tiff, which keeps the voxel size; or convert it with Bio-Formats' bfconvert IN OUT.ome.tif"
)


def microscope_format(path: PathLike) -> str | None:
    """The name of the vendor format of ``path`` (by its suffix) that morph does not read, or
    ``None``."""
    return MICROSCOPE_FORMATS.get(Path(path).suffix.lower())

#: The end of a voxel-size origin whose z was not in the file (see :func:`_meta_voxel`).
Z_ASSUMED = "z size missing, assumed equal to x"


def _meta_voxel(tf: Any, series: int = 0) -> tuple[tuple[float, float, float] | None, str]:
    """Voxel size (x, y, z) in um from OME or ImageJ metadata, with its origin (of image
    ``series`` in an OME file of several images).

    ImageJ leaves ``spacing`` out of a stack's description when the slices are 1 unit apart
    (its default), so a stack calibrated in x and y without it has 1-unit slices, as Fiji
    shows it. OME has no such default: a file with a physical x and y size but none in z is
    given z = x, and the origin says so (``Z_ASSUMED``). A Zeiss LSM file gives its voxel
    size in metres in its CZ_LSMINFO tag (z 0 for a single plane: then z = x likewise)."""
    if tf.is_ome and tf.ome_metadata:
        try:
            import xml.etree.ElementTree as ET

            root = ET.fromstring(tf.ome_metadata)
            pixels = [el for el in root.iter() if el.tag.endswith("Pixels")]
            pix = pixels[series] if series < len(pixels) else pixels[0]
            vals = []
            for ax in "XYZ":
                v = pix.get(f"PhysicalSize{ax}")
                u = pix.get(f"PhysicalSize{ax}Unit", "µm")
                if v is None:
                    vals.append(None)
                    continue
                f = _UNIT_TO_UM.get(u.strip().lower())
                vals.append(float(v) * f if f is not None else None)  # "pixel", "reference frame": no size
            if all(v is not None for v in vals[:2]):
                if vals[2] is None:
                    return (vals[0], vals[1], vals[0]), f"OME metadata; {Z_ASSUMED}"
                return (vals[0], vals[1], vals[2]), "OME metadata"
        except (IndexError, ValueError, ET.ParseError):
            pass
    lsm = tf.lsm_metadata if getattr(tf, "is_lsm", False) else None
    if lsm:
        x, y, z = (float(lsm.get(f"VoxelSize{a}", 0.0) or 0.0) * 1e6 for a in "XYZ")
        if x > 0 and y > 0:
            return (x, y, z) if z > 0 else (x, y, x), "LSM metadata" if z > 0 else f"LSM metadata; {Z_ASSUMED}"
    ij = tf.imagej_metadata or {}
    unit = str(ij.get("unit", "")).strip().lower()
    if tf.is_imagej and unit in _UNIT_TO_UM:
        page = tf.pages[0]
        scale = _UNIT_TO_UM[unit]
        xr = page.tags.get("XResolution")
        yr = page.tags.get("YResolution")

        def inv(tag: Any) -> float | None:
            if tag is None:
                return None
            num, den = tag.value
            return den / num * scale if num else None

        x, y = inv(xr), inv(yr)
        z = ij.get("spacing", 1.0)  # ImageJ writes no spacing for 1-unit slices
        if x is not None and y is not None:
            return (x, y, float(z) * scale), "ImageJ metadata"
    if tf.is_imagej and unit and unit not in ("pixel", "pixels", "px"):
        return None, f"unknown (the ImageJ unit {unit!r} is not a length morph knows)"
    return None, "unknown"


def read_stack(
    path: PathLike,
    *,
    voxel_size: Sequence[float] | None = None,
    channel: int | str | None = None,
    mmap: bool | None = None,
    allow_2d: bool = False,
    series: int | None = None,
) -> Stack:
    """Read a 3-D stack.

    Parameters
    ----------
    path
        A TIFF file (ImageJ, OME or Zeiss LSM metadata honoured), a folder of 2-D TIFF slices (read in
        natural order: ``s2`` before ``s10``), or an OME-Zarr / zarr store (read whole into
        memory; for stacks larger than memory open them lazily with
        :func:`morph.io.chunked.open_chunked`).
    voxel_size
        ``(x, y, z)`` in micrometres, overriding the file's metadata.
    channel
        For multi-channel or RGB stacks, the channel to keep (0-based), or ``"mean"`` for the
        mean of the channels (rounded to the stack's integer type: an RGB brightfield image
        from a colour camera becomes the grey image Fiji's 8-bit conversion makes). Without
        it such a stack is refused with the channel count (:func:`stack_channels` tells it
        beforehand).
    mmap
        Memory-map an uncompressed file instead of reading it (default: when larger than
        :data:`MMAP_THRESHOLD`).
    allow_2d
        Accept a single 2-D image (returned with one slice).
    series
        Of a TIFF holding several image series (positions, tiles, acquisitions), the one to
        read (0-based; default the first, with the others listed in the metadata's
        ``other_series``).

    Returns
    -------
    Stack
    """
    p = Path(path)
    if not p.exists():
        raise StackError("file not found", file=p, hint="check the path")
    if is_zarr_store(p):
        from morph.io.chunked import open_chunked

        return open_chunked(p, voxel_size=voxel_size, channel=channel, series=series).to_stack()
    others: list[str] = []
    if p.is_dir():
        check_series(series, 1, p)
        data, meta_vs, origin = _read_folder(p, channel)
    else:
        data, meta_vs, origin, others = _read_tiff(p, channel, mmap, series)
    if data.ndim == 2:
        if not allow_2d:
            hint = "give a z-stack, or a folder of its slices"
            nch, kind = stack_channels(p, series) if not p.is_dir() else (1, "")
            if nch > 1 and kind == "multi-channel":  # one channel of a file whose planes are labelled channels
                hint = (f"each of its {nch} channels is one plane: if they are the z-slices of one stack labelled as "
                        "channels (the file has no z axis), save it again with axes ZYX (in Fiji: Image > Properties, "
                        "or tifffile's metadata={'axes': 'ZYX'})")
            raise StackError(
                f"2-D image ({data.shape[0]} x {data.shape[1]}) where a 3-D stack is required",
                file=p,
                hint=hint,
            )
        data = data[None]
    if data.ndim != 3:
        raise StackError(f"expected a 3-D stack, got {data.ndim} dimensions {data.shape}", file=p)
    if data.size == 0:
        raise StackError("stack has no voxels", file=p)
    if data.dtype.kind not in "uif" or data.dtype.kind == "c":
        raise StackError(f"unsupported pixel type {data.dtype}", file=p, hint="use 8/16-bit or float")
    known = True
    if voxel_size is not None:
        vs = _check_voxel(voxel_size, "given", p)
        origin = "given"
    elif meta_vs is not None:
        vs = _check_voxel(meta_vs, origin, p)
    else:
        vs, known = (1.0, 1.0, 1.0), False
    why = origin[len("unknown"):] if origin.startswith("unknown (") else ""
    meta = {"voxel_size_origin": origin if known else f"assumed 1 um{why}"}
    if channel is not None:
        meta["channel"] = channel
    if series is not None:
        meta["series"] = int(series)
    if others:
        meta["other_series"] = others
    return Stack(data, vs, known, str(p), meta)


def other_series(tf: Any, read: int = 0) -> list[str]:
    """The image series of an open ``tifffile.TiffFile`` besides the one read (``read``), as
    ``"1: 7x128x128 ZYX 'Image1'"`` (index, shape, axes, name): a file holding several
    positions, tiles or acquisitions. Thumbnails (reduced images, or at most a quarter of the
    read series' width or height) are not counted."""
    series = tf.series
    if len(series) < 2:
        return []
    first = series[read]
    fy, fx = (first.shape[first.axes.upper().index(a)] if a in first.axes.upper() else 1 for a in "YX")
    out = []
    for k, ser in enumerate(series):
        if k == read:
            continue
        ax = ser.axes.upper()
        y = ser.shape[ax.index("Y")] if "Y" in ax else 1
        x = ser.shape[ax.index("X")] if "X" in ax else 1
        if getattr(ser, "is_reduced", False) or y * 4 <= fy or x * 4 <= fx:
            continue
        name = f" {ser.name!r}" if getattr(ser, "name", "") else ""
        out.append(f"{k}: " + "x".join(str(n) for n in ser.shape) + f" {ax}{name}")
    return out


def series_note(others: Sequence[str], read: int = 0) -> str:
    """What to tell a user whose file holds other image series than the one read."""
    which = f"the other ({others[0]}) is" if len(others) == 1 else f"the others ({'; '.join(others)}) are"
    return (f"the file holds {len(others) + 1} image series: series {read} is read, {which} not (choose one "
            "with --series N)")


def _check_index(value: Any, n: int, p: Path, *, what: str, single: str, also: str = "",
                 hint: str | None = None) -> int:
    """``value`` as a 0-based index below ``n`` (a channel, an image series), or a
    :class:`StackError` saying what is wrong (``single``: how the file holds only one;
    ``also``: what else the option takes)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise StackError(f"{what} must be a 0-based index{also}, got {value!r}", file=p)
    if not 0 <= int(value) < n:
        if n == 1:
            raise StackError(f"{what} {value} given, but {single}", file=p, hint=f"leave out --{what}")
        raise StackError(f"{what} {value} out of range (0..{n - 1})", file=p, hint=hint)
    return int(value)


def check_series(series: Any, n: int, p: Path) -> int:
    """The series to read (0 when ``series`` is None), refused when the file has no such one."""
    if series is None:
        return 0
    return _check_index(series, n, p, what="series", single="the file holds a single image series",
                        hint="morph info lists the series")


def stack_channels(path: PathLike, series: int | None = None) -> tuple[int, str]:
    """How many channels a stack file holds, and their kind (``"RGB"`` for a colour image's
    samples, ``"multi-channel"`` otherwise), from its metadata alone: ``(1, "")`` for a
    single-channel stack. A folder of slices answers for its first slice; a zarr store for
    its ``c`` axis (OME-Zarr); a TIFF for its image ``series`` (default the first)."""
    p = Path(path)
    if is_zarr_store(p):
        from morph.io.chunked import zarr_channels

        return zarr_channels(p)
    if p.is_dir():
        files = _slice_files(p)
        if not files:
            return 1, ""
        p = files[0]
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            ser = tf.series[series or 0]
            axes, shape = ser.axes.upper(), ser.shape
    except Exception:  # not a TIFF, broken, or no such series: reading it says what is wrong
        return 1, ""
    for ch_ax, kind in (("S", "RGB"), ("C", "multi-channel")):
        if ch_ax in axes and shape[axes.index(ch_ax)] > 1:
            return int(shape[axes.index(ch_ax)]), kind
    return 1, ""


def is_zarr_store(p: Path) -> bool:
    """A zarr store: a folder named ``*.zarr`` or holding zarr's metadata files."""
    return p.is_dir() and (
        p.suffix.lower() == ".zarr" or any((p / f).exists() for f in (".zarray", ".zgroup", "zarr.json"))
    )


def _read_tiff(p: Path, channel: int | str | None, mmap: bool | None,
               series: int | None = None) -> tuple[NDArray[Any], Any, str, list[str]]:
    """An image series of a TIFF (``series``, default the first; one channel, or their mean,
    with ``channel``), its voxel size and where that came from, and the file's other image
    series (:func:`other_series`)."""
    import tifffile

    with open(p, "rb") as fh:
        magic = fh.read(4)
    if not magic:
        raise StackError("file is empty", file=p, hint="the copy or export was interrupted: write it again")
    if magic not in _TIFF_MAGIC:
        fmt = microscope_format(p)
        if fmt is not None:
            raise StackError(
                f"a {fmt} file: morph reads TIFF stacks (ImageJ, OME, Zeiss LSM), OME-Zarr and folders of "
                "TIFF slices", file=p, hint=CONVERT_HINT,
            )
        raise StackError(
            "not a TIFF file", file=p, hint="morph reads TIFF stacks (ImageJ, OME) or folders of TIFF slices"
        )
    complaints = _TiffComplaints()
    logger = logging.getLogger("tifffile")
    logger.addHandler(complaints)
    try:
        with tifffile.TiffFile(p) as tf:
            k = check_series(series, len(tf.series), p)
            ser = tf.series[k]
            axes = ser.axes
            others = other_series(tf, k)
            meta_vs, origin = _meta_voxel(tf, k)
            size = int(np.prod(ser.shape)) * ser.dtype.itemsize
            use_mmap = (size > MMAP_THRESHOLD) if mmap is None else mmap
            data = None
            if use_mmap and ser.dataoffset is not None:
                data = tifffile.memmap(p, series=k, mode="r")
            if data is None:
                data = ser.asarray()
            size_on_disk = p.stat().st_size
            for page in tf.pages[: len(tf.pages)]:
                ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
                if ends and max(ends) > size_on_disk:
                    raise ValueError("image data runs past the end of the file")
        if complaints.messages:
            raise ValueError(complaints.messages[0])
    except StackError:
        raise
    except Exception as e:  # tifffile raises many types on broken files
        raise StackError(
            f"truncated or corrupt TIFF ({type(e).__name__}: {e})",
            file=p,
            hint="re-export the stack from the acquisition software",
        ) from e
    finally:
        logger.removeHandler(complaints)
    data = _pick_axes(data, axes, channel, p)
    return data, meta_vs, origin, others


class _TiffComplaints(logging.Handler):
    """Collects the errors tifffile logs (it recovers silently from broken files)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


#: ``channel="mean"``: the mean of the channels (rounded to the stack's integer type).
MEAN = "mean"


def channel_hint(nch: int, kind: str = "multi-channel") -> str:
    """What to tell a user whose stack has ``nch`` channels."""
    hint = f"pick one with --channel N (0..{nch - 1})"
    if kind == "RGB":
        hint += ", or --channel mean for their mean (a colour camera's brightfield image, as Fiji's 8-bit conversion makes it)"
    else:
        hint += " (morph info shows each channel's intensity and polarity), or --channel mean for their mean"
    return hint


def check_channel(channel: Any, nch: int, p: Path) -> None:
    """Refuse a channel the stack does not have."""
    if channel == MEAN:
        return
    _check_index(channel, nch, p, what="channel", single="the stack has a single channel", also=f" or {MEAN!r}")


def select_channel(data: Any, k: int, channel: int | str) -> Any:
    """``data`` with axis ``k`` (channels) reduced to one channel or to the channels' mean.

    A channel is taken by basic indexing, so a memory-mapped stack stays memory-mapped. The
    mean of integer channels is rounded back to their type (8-bit RGB gives 8-bit grey, as
    Fiji's conversion does); a dask array stays lazy; a numpy array is averaged slab by slab
    along its first other axis, so that the temporaries stay small."""
    if channel != MEAN:
        return data[(slice(None),) * k + (int(channel),)]
    dtype = data.dtype

    def finish(m: Any) -> Any:
        if dtype.kind in "ui":
            info = np.iinfo(dtype)
            return m.round().clip(info.min, info.max).astype(dtype)
        return m.astype(dtype)

    if not isinstance(data, np.ndarray):  # dask
        return finish(data.mean(axis=k, dtype=np.float64 if dtype.itemsize > 2 else np.float32))
    out_shape = data.shape[:k] + data.shape[k + 1 :]
    out = np.empty(out_shape, dtype=dtype)
    a = 1 if k == 0 else 0  # the axis to go along (axis a of the output too when a < k)
    n = data.shape[a]
    step = max(1, int(2**24 // max(1, int(np.prod(data.shape)) // max(n, 1))))
    for i in range(0, n, step):
        sl = (slice(None),) * a + (slice(i, i + step),)
        part = np.asarray(data[sl]).mean(axis=k, dtype=np.float64 if dtype.itemsize > 2 else np.float32)
        out[(slice(None),) * (a if a < k else a - 1) + (slice(i, i + step),)] = finish(part)
    return out


def _pick_axes(data: NDArray[Any], axes: str, channel: int | str | None, p: Path) -> NDArray[Any]:
    axes = axes.upper()
    if channel not in (None, 0, MEAN) and not any(a in axes and data.shape[axes.index(a)] > 1 for a in "SC"):
        check_channel(channel, 1, p)  # a channel the single-channel stack does not have
    for ch_ax in ("S", "C"):
        if ch_ax in axes:
            k = axes.index(ch_ax)
            nch = data.shape[k]
            if nch == 1:
                data = data[(slice(None),) * k + (0,)]
            elif channel is None:
                kind = "RGB" if ch_ax == "S" else "multi-channel"
                hint = channel_hint(nch, kind)
                if ch_ax == "C" and "Z" not in axes:
                    # an ImageJ TIFF of a 3-D array written without its axes (tifffile's
                    # imagej=True does this) labels the slices as channels
                    hint += (f"; or, if the {nch} planes are the z-slices of one stack labelled as channels (the file "
                             "has no z axis), save it again with axes ZYX (in Fiji: Image > Properties, or tifffile's "
                             "metadata={'axes': 'ZYX'})")
                raise StackError(f"{kind} image with {nch} channels where one channel is needed", file=p, hint=hint)
            else:
                check_channel(channel, nch, p)
                data = select_channel(data, k, channel)
            axes = axes[:k] + axes[k + 1 :]
    if "Z" not in axes and "T" in axes and data.shape[axes.index("T")] > 1:
        # a time series of 2-D images (or z-slices saved as time points): tracing it as a
        # z-stack would join structures across time
        raise StackError(
            f"a time series of {data.shape[axes.index('T')]} 2-D images (axes {axes}), not a z-stack",
            file=p,
            hint="if the planes are the z-slices of one stack saved as time points, save it again with axes ZYX "
                 "(in Fiji: Image > Properties, or tifffile's metadata={'axes': 'ZYX'}); a time series needs one "
                 "time point exported as a stack",
        )
    # drop singleton non-spatial axes (time, etc.)
    for k in range(len(axes) - 1, -1, -1):
        if axes[k] not in "ZYXQI" and data.shape[k] == 1:
            data = np.take(data, 0, axis=k)
            axes = axes[:k] + axes[k + 1 :]
    if data.ndim > 3:
        raise StackError(
            f"{data.ndim}-D image (axes {axes}) where a 3-D stack is needed",
            file=p,
            hint="export a single time point and channel",
        )
    return data


def _slice_files(p: Path) -> list[Path]:
    """The TIFF slices of a folder, in natural order (``s2`` before ``s10``)."""
    return sorted(
        (f for f in p.iterdir() if f.suffix.lower() in (".tif", ".tiff") and not f.name.startswith(".")),
        key=lambda f: _natural_key(f.name),
    )


def folder_stacks(path: PathLike) -> list[Path]:
    """The TIFF files of a folder when they are stacks rather than the 2-D slices of one
    stack (their first holds more than one plane, from its metadata alone); empty when they
    are slices, when the folder holds no TIFF, or when ``path`` is not a plain folder."""
    import tifffile

    p = Path(path)
    if not p.is_dir() or is_zarr_store(p):
        return []
    files = _slice_files(p)
    if not files:
        return []
    try:
        with tifffile.TiffFile(files[0]) as tf:
            ser = tf.series[0]
            axes, shape = ser.axes.upper(), ser.shape
    except Exception:  # not a TIFF or broken: reading the folder says what is wrong
        return []
    planes = [n for a, n in zip(axes, shape) if a not in "SC" and n > 1]
    return files if len(planes) > 2 else []


def _read_folder(p: Path, channel: int | str | None) -> tuple[NDArray[Any], Any, str]:
    import tifffile

    files = _slice_files(p)
    if not files:
        raise StackError(
            "folder holds no .tif slices", file=p, hint="give a TIFF stack or a folder of TIFF slices"
        )
    first, meta_vs, origin, _ = _read_tiff(files[0], channel, False)
    if first.ndim != 2:
        what = f"{first.ndim}-D ({' x '.join(str(v) for v in first.shape)})"
        hint = "a folder is read as one stack, one 2-D slice per file"
        if first.ndim == 3:
            what = f"a stack of {first.shape[0]} slices of {first.shape[1]} x {first.shape[2]}"
            hint = (f"the folder holds stacks, not slices: give one of them ({files[0]}); "
                    f"morph batch trace '{p}/*.tif' -o OUTDIR traces each; morph info {p} lists them")
        raise StackError(f"slices in a folder must be 2-D images, but this one is {what}", file=files[0], hint=hint)
    out = np.empty((len(files),) + first.shape, dtype=first.dtype)
    out[0] = first
    for k, f in enumerate(files[1:], start=1):
        img, _, _, _ = _read_tiff(f, channel, False)
        if img.shape != first.shape:
            raise StackError(
                f"slice shape {img.shape} differs from {first.shape}", file=f, hint="all slices must match"
            )
        if img.dtype != first.dtype:
            raise StackError(
                f"slice pixel type {img.dtype} differs from the first slice's {first.dtype} ({files[0].name})",
                file=f, hint="all slices must have one pixel type: export them again together",
            )
        out[k] = img
    del tifffile
    return out, meta_vs, origin


def write_stack(
    path: PathLike,
    data: NDArray[Any],
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    force: bool = False,
    compression: str | None = "zlib",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``data`` (Z, Y, X) as an ImageJ-compatible TIFF carrying the voxel size.

    Written atomically; refuses to overwrite without ``force``. ``uint8``, ``uint16`` and
    ``float32`` keep their type; other types are converted to ``float32``.
    """
    import tifffile

    from morph.io.atomic import atomic_write_with

    data = np.asarray(data)
    if data.ndim != 3:
        raise StackError(f"write_stack needs a 3-D array, got shape {data.shape}", file=path)
    if data.dtype not in (np.uint8, np.uint16, np.float32):
        data = data.astype(np.float32)
    vx, vy, vz = _check_voxel(voxel_size, "given", path)
    meta = {"spacing": vz, "unit": "um", "axes": "ZYX"}
    if metadata:
        meta.update({k: v for k, v in metadata.items() if k not in meta})

    def writer(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tifffile.imwrite(
                tmp,
                data,
                imagej=True,
                resolution=(1.0 / vx, 1.0 / vy),
                metadata=meta,
                compression=compression,
            )

    return atomic_write_with(path, writer, force=force)
