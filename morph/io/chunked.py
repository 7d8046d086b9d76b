"""Stacks larger than memory, opened lazily as dask arrays.

:func:`open_chunked` reads

- **OME-Zarr** (NGFF 0.4 with zarr v2, or 0.5 with zarr v3): the voxel size comes from the
  ``multiscales`` metadata (``scale`` transformations of the chosen level, in the axes' units,
  converted to micrometres); channel and time axes are reduced to one 3-D volume;
- a plain **zarr** array (3-D; voxel size unknown unless given);
- **TIFF**: an uncompressed contiguous file is memory-mapped; otherwise (compressed, or
  one page per slice) it is read page by page, a slab of slices per chunk, each slab opening
  the file on its own so that the array can be sent to other processes.

Nothing is read until a chunk is computed. Voxels are ``(Z, Y, X)``; voxel sizes ``(x, y, z)``
in micrometres, as everywhere in morph. :func:`write_zarr` writes an OME-Zarr (NGFF 0.4)
from a numpy or dask array chunk by chunk, atomically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from morph.errors import OutputExistsError, StackError
from morph.io.stack import _UNIT_TO_UM, Stack, check_series, is_zarr_store

PathLike = str | os.PathLike[str]

#: Target size of one chunk when none is given (bytes of the stored type).
DEFAULT_CHUNK_BYTES = 64 * 1024**2



@dataclass
class ChunkedStack(Stack):
    """A :class:`~morph.io.Stack` whose ``data`` is a lazy ``dask.array.Array`` ``(Z, Y, X)``:
    nothing is read until a chunk is needed."""

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def sample(self, n: int = 2_000_000) -> np.ndarray:
        """About ``n`` voxels spread over the whole stack (whole slices, evenly spaced), for
        statistics such as the polarity or the noise level, without reading everything."""
        nz, ny, nx = self.shape
        per_slice = ny * nx
        k = int(np.clip(n // max(per_slice, 1), 1, nz))
        idx = np.unique(np.linspace(0, nz - 1, k).round().astype(int))
        return np.asarray(self.data[idx].compute())

    def polarity(self) -> str:
        """Guess ``"brightfield"`` or ``"fluorescence"`` from a sample (see :meth:`sample`)."""
        from morph.io.stack import guess_polarity

        return guess_polarity(self.sample())

    def to_stack(self) -> Stack:
        """Read everything into memory as a plain :class:`morph.io.Stack`."""
        return Stack(np.asarray(self.data.compute()), self.voxel_size, self.voxel_size_known, self.path, dict(self.metadata))


def default_chunks(shape: Sequence[int], itemsize: int, target_bytes: int = DEFAULT_CHUNK_BYTES) -> tuple[int, int, int]:
    """Chunks of about ``target_bytes``: whole slices stacked in z when a slice is small,
    otherwise square tiles of a few slices."""
    nz, ny, nx = (int(s) for s in shape)
    slice_bytes = ny * nx * itemsize
    if slice_bytes * 8 <= target_bytes:
        return (max(1, min(nz, target_bytes // slice_bytes)), ny, nx)
    cz = min(nz, 8)
    side = int(np.sqrt(target_bytes / (cz * itemsize)))
    return (cz, min(ny, max(side, 64)), min(nx, max(side, 64)))


def _check_voxel(vs: Sequence[float], where: str, file: PathLike) -> tuple[float, float, float]:
    from morph.io.stack import _check_voxel as check

    return check(vs, where, file)


# --------------------------------------------------------------------------------------------
# zarr / OME-Zarr


def _multiscales(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    if "multiscales" in attrs:  # NGFF 0.4 (zarr v2)
        return attrs["multiscales"]
    ome = attrs.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:  # NGFF 0.5 (zarr v3)
        return ome["multiscales"]
    return None


def _scale_of(transforms: Sequence[dict[str, Any]] | None, ndim: int) -> np.ndarray:
    s = np.ones(ndim)
    for t in transforms or ():
        if t.get("type") == "scale" and "scale" in t:
            s = s * np.asarray(t["scale"], dtype=float)
    return s


def _zarr_array(p: Path, level: int) -> tuple[Any, Any, Any, dict[str, Any]]:
    """The array of a zarr store (of resolution ``level`` of an OME-Zarr group), its axes
    and scale (``None`` for a plain array) and what the store is."""
    import zarr

    try:
        node = zarr.open(str(p), mode="r")
    except Exception as e:
        raise StackError(f"cannot open as zarr ({type(e).__name__}: {e})", file=p) from e
    meta: dict[str, Any] = {"format": "zarr"}
    if isinstance(node, zarr.Array):
        arr = node
        axes = None
        scale = None
    else:
        ms = _multiscales(dict(node.attrs))
        if not ms:
            arrays = list(node.array_keys())
            if len(arrays) != 1:
                raise StackError(
                    f"zarr group without OME multiscales metadata holds {len(arrays)} arrays",
                    file=p,
                    hint="open the array itself (path/to/store.zarr/ARRAY) or write OME-Zarr",
                )
            arr, axes, scale = node[arrays[0]], None, None
        else:
            m = ms[0]
            datasets = m.get("datasets", [])
            if not 0 <= level < len(datasets):
                raise StackError(f"resolution level {level} not in the store (0..{len(datasets) - 1})", file=p)
            ds = datasets[level]
            arr = node[ds["path"]]
            axes = m.get("axes")
            scale = _scale_of(ds.get("coordinateTransformations"), arr.ndim) * _scale_of(
                m.get("coordinateTransformations"), arr.ndim
            )
            meta.update(format="OME-Zarr", level=level, levels=len(datasets))
    return arr, axes, scale, meta


def zarr_channels(p: Path) -> tuple[int, str]:
    """Channels of a zarr store (its ``c`` axis): ``(n, "multi-channel")``, or ``(1, "")``."""
    try:
        arr, axes, _, _ = _zarr_array(p, 0)
        names = _axis_names(axes, arr.ndim, p)
    except StackError:  # opening it says what is wrong
        return 1, ""
    n = int(arr.shape[names.index("c")]) if "c" in names else 1
    return (n, "multi-channel") if n > 1 else (1, "")


def _open_zarr(p: Path, level: int, channel: int | str | None) -> tuple[Any, Any, str, dict[str, Any]]:
    import dask.array as da

    arr, axes, scale, meta = _zarr_array(p, level)
    data = da.from_zarr(arr)
    names = _axis_names(axes, arr.ndim, p)
    vs = None
    if scale is not None:
        units = _axis_units(axes, arr.ndim)
        um = {}
        for k, n in enumerate(names):
            if n in "zyx":
                f = _UNIT_TO_UM.get((units[k] or "micrometer").lower())
                if f is None:
                    raise StackError(f"unknown unit {units[k]!r} on axis {n}", file=p)
                um[n] = float(scale[k]) * f
        if all(n in um for n in "zyx"):
            vs = (um["x"], um["y"], um["z"])
    data = _reduce_axes(data, names, channel, p)
    return data, vs, "OME metadata" if vs is not None else "unknown", meta


def _axis_names(axes: Any, ndim: int, p: Path) -> list[str]:
    if axes is None:
        if ndim != 3:
            raise StackError(f"{ndim}-D zarr array without axis names", file=p, hint="give a 3-D (z, y, x) array")
        return ["z", "y", "x"]
    names = [(a["name"] if isinstance(a, dict) else str(a)).lower() for a in axes]
    if len(names) != ndim:
        raise StackError(f"{len(names)} axes named for a {ndim}-D array", file=p)
    return names


def _axis_units(axes: Any, ndim: int) -> list[str | None]:
    if axes is None:
        return [None] * ndim
    return [a.get("unit") if isinstance(a, dict) else None for a in axes]


def _reduce_axes(data: Any, names: list[str], channel: int | str | None, p: Path) -> Any:
    from morph.io.stack import MEAN, channel_hint, check_channel, select_channel

    if channel not in (None, 0, MEAN) and not ("c" in names and data.shape[names.index("c")] > 1):
        check_channel(channel, 1, p)
    for k in range(len(names) - 1, -1, -1):
        n = names[k]
        if n in "zyx":
            continue
        size = data.shape[k]
        if n == "c" and size > 1:
            if channel is None:
                raise StackError(f"{size} channels where one is needed", file=p, hint=channel_hint(size))
            check_channel(channel, size, p)
            data = select_channel(data, k, channel)
        elif size == 1:
            data = data[(slice(None),) * k + (0,)]
        else:
            raise StackError(f"axis {n!r} has {size} entries where a single 3-D volume is needed", file=p)
    kept = [n for n in names if n in "zyx"]
    if sorted(kept) != ["x", "y", "z"]:
        raise StackError(f"axes {names} do not hold a z, y, x volume", file=p)
    order = [kept.index(n) for n in "zyx"]
    return data.transpose(order) if order != [0, 1, 2] else data


# --------------------------------------------------------------------------------------------
# TIFF


def _read_pages(path: str, z0: int, z1: int, series: int = 0) -> np.ndarray:
    import tifffile

    return tifffile.imread(path, key=range(z0, z1), series=series, maxworkers=1)


def _open_tiff(p: Path, chunks: Any, channel: int | str | None,
               series: int | None = None) -> tuple[Any, Any, str, dict[str, Any]]:
    import dask
    import dask.array as da
    import tifffile

    from morph.io.stack import _TIFF_MAGIC, MEAN, _meta_voxel, _pick_axes, other_series

    with open(p, "rb") as fh:
        if fh.read(4) not in _TIFF_MAGIC:
            raise StackError("not a TIFF file", file=p, hint="morph reads TIFF stacks, OME-Zarr or zarr")
    try:
        with tifffile.TiffFile(p) as tf:
            k = check_series(series, len(tf.series), p)
            ser = tf.series[k]
            axes, shape, dtype = ser.axes.upper(), tuple(ser.shape), ser.dtype
            vs, origin = _meta_voxel(tf, k)
            others = other_series(tf, k)
            contiguous = ser.dataoffset is not None
            n_pages = len(ser.pages)
    except StackError:
        raise
    except Exception as e:
        raise StackError(f"truncated or corrupt TIFF ({type(e).__name__}: {e})", file=p) from e
    listed = {"other_series": others} if others else {}  # the file's other image series, for the metadata
    if contiguous:
        mm = tifffile.memmap(p, series=k, mode="r")
        src: Any = mm
        if channel == MEAN:  # averaged lazily, one slice and all its channels per chunk
            za = axes.index("Z") if "Z" in axes else 0
            src = da.from_array(mm, chunks=tuple(1 if k == za else n for k, n in enumerate(mm.shape)),
                                name=f"tiff-mmap-all-{p}-s{k}", lock=False)
        data = _pick_axes(src, axes, channel, p)  # one channel of the map: still a view of it
        if data.ndim != 3:
            raise StackError(f"expected a 3-D stack, got shape {data.shape}", file=p)
        ch = chunks or default_chunks(data.shape, data.dtype.itemsize)
        data = data.rechunk(ch) if src is not mm else da.from_array(data, chunks=ch, name=f"tiff-mmap-{p}-s{k}-{channel}",
                                                                     lock=False)
        return data, vs, origin, {"format": "TIFF (memory-mapped)", **listed}
    if axes == "ZYX" and n_pages == shape[0]:
        nz, ny, nx = shape
        cz = (chunks[0] if chunks else None) or default_chunks(shape, dtype.itemsize)[0]
        parts = []
        for z0 in range(0, nz, cz):
            z1 = min(nz, z0 + cz)
            d = dask.delayed(_read_pages, pure=True)(str(p), z0, z1, k)
            parts.append(da.from_delayed(d, shape=(z1 - z0, ny, nx), dtype=dtype))
        data = da.concatenate(parts, axis=0)
        if chunks:
            data = data.rechunk(chunks)
        return data, vs, origin, {"format": "TIFF (page-wise)", **listed}
    # other layouts (tiles, channels interleaved in pages...): tifffile's zarr view, read in this process
    import zarr

    store = tifffile.imread(p, aszarr=True, series=k)
    data = _pick_axes(da.from_zarr(zarr.open(store, mode="r")), axes, channel, p)
    if data.ndim != 3:
        raise StackError(f"expected a 3-D stack, got shape {data.shape}", file=p)
    return data, vs, origin, {"format": "TIFF (zarr view)", **listed}


# --------------------------------------------------------------------------------------------
# public


def open_chunked(
    path: PathLike,
    *,
    voxel_size: Sequence[float] | None = None,
    chunks: Sequence[int] | None = None,
    channel: int | str | None = None,
    level: int = 0,
    series: int | None = None,
) -> ChunkedStack:
    """Open a stack lazily: OME-Zarr, zarr or TIFF (see the module documentation).

    Parameters
    ----------
    path
        A ``.zarr`` folder (OME-Zarr group or plain array) or a TIFF file.
    voxel_size
        ``(x, y, z)`` micrometres, overriding the metadata.
    chunks
        Dask chunks ``(z, y, x)``; default: the store's chunks (zarr), slabs of about
        :data:`DEFAULT_CHUNK_BYTES` (TIFF).
    channel
        Channel to keep when the store has several (0-based), or ``"mean"`` for their mean
        (see :func:`morph.io.read_stack`).
    level
        Resolution level of an OME-Zarr pyramid (0: full resolution).
    series
        Image series of a TIFF holding several (see :func:`morph.io.read_stack`).

    Returns
    -------
    ChunkedStack
    """
    p = Path(path)
    if not p.exists():
        raise StackError("file not found", file=p, hint="check the path")
    if is_zarr_store(p):
        check_series(series, 1, p)
        data, meta_vs, origin, meta = _open_zarr(p, level, channel)
        if chunks:
            data = data.rechunk(tuple(chunks))
    elif p.is_file():
        data, meta_vs, origin, meta = _open_tiff(p, tuple(chunks) if chunks else None, channel, series)
    else:
        raise StackError("not a zarr store or a TIFF file", file=p, hint="give a .zarr folder or a .tif file")
    if data.ndim != 3:
        raise StackError(f"expected a 3-D stack, got {data.ndim} dimensions {data.shape}", file=p)
    if data.dtype.kind not in "uif":
        raise StackError(f"unsupported pixel type {data.dtype}", file=p, hint="use 8/16-bit or float")
    if any(s == 0 for s in data.shape):
        raise StackError("stack has no voxels", file=p)
    known = True
    if voxel_size is not None:
        vs, origin = _check_voxel(voxel_size, "given", p), "given"
    elif meta_vs is not None:
        vs = _check_voxel(meta_vs, origin, p)
    else:
        vs, known = (1.0, 1.0, 1.0), False
    meta["voxel_size_origin"] = origin if known else "assumed 1 um"
    if channel is not None:
        meta["channel"] = channel
    if series is not None:
        meta["series"] = int(series)
    return ChunkedStack(data, vs, known, str(p), meta)


def write_zarr(
    path: PathLike,
    data: Any,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    chunks: Sequence[int] | None = None,
    force: bool = False,
    name: str | None = None,
) -> Path:
    """Write ``data`` ``(Z, Y, X)`` as a single-level OME-Zarr (NGFF 0.4, zarr v2 format).

    ``data`` may be a numpy or a dask array (written chunk by chunk, so it need not fit in
    memory). The store is written into a temporary folder beside ``path`` and renamed into
    place when complete: an interrupted write leaves nothing at ``path``. Refuses to replace
    an existing ``path`` unless ``force``.
    """
    import dask.array as da
    import zarr

    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError("output exists", file=p, hint="use --force to overwrite it")
    if not p.parent.exists():
        raise StackError("output folder does not exist", file=p.parent, hint="create it first")
    if data.ndim != 3:
        raise StackError(f"write_zarr needs a 3-D array, got shape {data.shape}", file=p)
    vx, vy, vz = _check_voxel(voxel_size, "given", p)
    dtype = np.dtype(data.dtype)
    ch = tuple(int(c) for c in chunks) if chunks else default_chunks(data.shape, dtype.itemsize, 16 * 1024**2)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent))
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        arr = root.create_array("0", shape=tuple(int(s) for s in data.shape), chunks=ch, dtype=dtype, fill_value=0)
        src = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=ch)
        da.store(src.rechunk(ch), arr, lock=False)
        root.attrs["multiscales"] = [
            {
                "version": "0.4",
                "name": name or p.stem,
                "axes": [
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [vz, vy, vx]}]}],
            }
        ]
        if p.exists():
            old = p.with_name(f".{p.name}.old-{os.getpid()}")
            os.replace(p, old)
            os.replace(tmp, p)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        else:
            os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return p
