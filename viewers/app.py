"""The interactive window: VTK's own interactor, keys, picking, measuring, export.

Mouse: left-drag rotates, middle-drag (or shift + left-drag) pans, right-drag or the wheel
zooms; a left click without dragging picks the node under the pointer and prints what is
known about it, or, in seed mode (``p``), puts a seed for the tracer on the image (``P``
saves the seeds as a text file for ``morph trace --seeds``). Proofreading keys edit the
picked reconstruction as ``morph edit`` does (``Delete``, ``e``, ``J``, ``A``), ``E`` traces
the seeds into it as ``morph trace --extend --seeds`` does; ``U`` undoes, ``S`` saves a new
SWC. Press ``h`` in the window for the key list (:data:`HELP`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.io.atomic import atomic_write_text
from morph.io.stack import STACK_SUFFIXES, is_zarr_store
from viewers.offscreen import MAX_FPS, ViewerError
from viewers.scene import SCALARS, Scene

HELP = """\
mouse  left-drag rotate, middle-drag pan, wheel/right-drag zoom,
       left click: pick a node (id, type, xyz, radius, parent, path distance, order)
h      this help                    q/Esc  quit
1 2 3 4  camera XY / XZ / YZ / iso    r  reset view     o  ortho/perspective
l      tubes / lines                L  lines while moving (level of detail)
c      colour: compartment, branch order, Strahler, path distance, radius
u      highlight subtree of the picked node (again: clear)
d      Euclidean + path distance between the last two picked nodes
b      dark / light background      a  axes      k  scale bar
m      projection plane   s  three slices   v  volume rendering
x X y Y z Z   move the x / y / z slice down / up
[ ]    window narrower / wider      - =  level down / up
g G    gamma down / up              t T  image opacity down / up
n      next colour map              i  invert image
F1..F12  show / hide neuron 1..12
w      screenshot (PNG)             M  turntable movie (GIF)
p      seed mode: a left click puts a seed on the most stained voxel under the pointer
       (BackSpace removes the last)  P  save the seeds for morph trace --seeds
Delete remove the picked node's branch      e  cut: remove the picked node and beyond
J      join: the branch of the previous pick onto the last pick
A      axon: the picked neurite, from its start    U  undo the last edit
E      extend: trace the seeds into the reconstruction (morph trace --extend --seeds)
S      save the edited reconstruction (a new SWC; the edits in its header)"""

UNSAVED = "unsaved edits: S saves them, q again quits without saving"

COLORINGS = ("compartment", *[s for s in SCALARS if s != "depth"])
IMAGE_CMAPS = ("gray", "magma", "viridis", "inferno", "cividis", "hot")
#: A press and release closer than this (pixels) is a click, not a drag.
CLICK_TOLERANCE = 3


#: Movie formats by suffix; a path without suffix is a folder of PNG frames.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi")
MOVIE_SUFFIXES = (".gif", *VIDEO_SUFFIXES)
#: Video codecs work on blocks of this many pixels: video frames are padded to a multiple.
MACRO_BLOCK = 16


def video_size(size: Sequence[int]) -> tuple[int, int]:
    """``(width, height)`` rounded up to multiples of :data:`MACRO_BLOCK`, as video codecs
    need."""
    w, h = (int(v) for v in size)
    return -(-w // MACRO_BLOCK) * MACRO_BLOCK, -(-h // MACRO_BLOCK) * MACRO_BLOCK


def _check_fps(fps: float) -> float:
    import math

    try:
        v = float(fps)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and 0 < v <= MAX_FPS):
        raise ViewerError(f"{fps!r} frames per second: must be a number above 0 and at most {MAX_FPS}",
                          hint="e.g. 24")
    return v


def _same_size(frame: NDArray[np.uint8], first: NDArray[np.uint8], k: int) -> NDArray[np.uint8]:
    f = np.asarray(frame)
    if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] not in (3, 4):
        raise ViewerError(f"movie frame {k} is not an RGB picture (got {f.dtype} {f.shape})")
    if f.shape[:2] != first.shape[:2]:
        raise ViewerError(f"movie frame {k} is {f.shape[1]}x{f.shape[0]}, the first {first.shape[1]}x{first.shape[0]}")
    return f[..., :3]


def _gif_frame(frame: NDArray[np.uint8], delay_cs: int) -> bytes:
    """One frame for an animated GIF: a graphic control extension (the delay) and the image,
    with its own colour table (the picture quantised by Pillow)."""
    import io
    import struct

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="GIF")
    data = buf.getvalue()
    packed = data[10]
    pos, table = 13, b""
    if packed & 0x80:  # the global colour table becomes the frame's local one
        table = data[13 : 13 + 3 * 2 ** ((packed & 7) + 1)]
        pos += len(table)
    out = [b"\x21\xf9\x04\x04" + struct.pack("<H", delay_cs) + b"\x00\x00"]
    while pos < len(data) and data[pos] != 0x3B:
        if data[pos] == 0x21:  # an extension: skipped (its sub-blocks up to the empty one)
            q = pos + 2
            while data[q]:
                q += data[q] + 1
            pos = q + 1
        elif data[pos] == 0x2C:  # the image: descriptor, colour table, LZW sub-blocks
            desc = bytearray(data[pos : pos + 10])
            q = pos + 10
            if not desc[9] & 0x80:
                desc[9] = (desc[9] & 0x40) | 0x80 | (packed & 7)
                local = table
            else:
                local = b""
            q += 1  # LZW minimum code size
            while data[q]:
                q += data[q] + 1
            q += 1
            out.append(bytes(desc) + local + data[pos + 10 : q])
            pos = q
        else:  # pragma: no cover - Pillow writes nothing else
            raise ViewerError("could not encode a GIF frame")
    return b"".join(out)


def _write_gif(first: NDArray[np.uint8], rest: Iterator[NDArray[np.uint8]], fp: Any, fps: float) -> int:
    """An animated GIF, looping, written frame by frame (only one frame in memory)."""
    import struct

    h, w = first.shape[:2]
    delay = max(1, round(100.0 / fps))  # GIF delays are in hundredths of a second
    fp.write(b"GIF89a" + struct.pack("<HHBBB", w, h, 0x70, 0, 0))
    fp.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
    fp.write(_gif_frame(first[..., :3], delay))
    n = 1
    for f in rest:
        fp.write(_gif_frame(_same_size(f, first, n), delay))
        n += 1
    fp.write(b"\x3b")
    return n


def _pad_to_blocks(f: NDArray[np.uint8]) -> NDArray[np.uint8]:
    h, w = f.shape[:2]
    W, H = video_size((w, h))
    if (W, H) == (w, h):
        return np.ascontiguousarray(f)
    top, left = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(np.pad(f, ((top, H - h - top), (left, W - w - left), (0, 0)), mode="edge"))


def _write_video(first: NDArray[np.uint8], rest: Iterator[NDArray[np.uint8]], tmp: Path, p: Path, fps: float) -> int:
    """A video through ffmpeg (imageio-ffmpeg), fed frame by frame; frames whose sides are
    not multiples of :data:`MACRO_BLOCK` are padded (their edge pixels repeated)."""
    import imageio_ffmpeg

    h, w = first.shape[:2]
    W, H = video_size((w, h))
    writer = imageio_ffmpeg.write_frames(
        str(tmp), (W, H), fps=fps, codec="libx264", macro_block_size=MACRO_BLOCK, ffmpeg_log_level="error"
    )
    n = 0
    try:
        writer.send(None)
        writer.send(_pad_to_blocks(first[..., :3]))
        n = 1
        for f in rest:
            writer.send(_pad_to_blocks(_same_size(f, first, n)))
            n += 1
        writer.close()
    except (OSError, RuntimeError) as e:  # ffmpeg failed (BrokenPipeError is an OSError)
        writer.close()
        raise ViewerError(f"ffmpeg could not write the movie: {str(e).strip()[-300:]}", file=p,
                          hint="check the folder is writable and has space, or write a .gif") from None
    except BaseException:
        writer.close()
        raise
    return n


def _write_frames_folder(first: NDArray[np.uint8], rest: Iterator[NDArray[np.uint8]], p: Path, *, force: bool) -> int:
    """Numbered PNG files, written into a hidden folder beside ``p`` and moved into place
    at the end (with ``force``, into an existing folder one file at a time, and the frames
    of an earlier movie beyond the new last one removed)."""
    import shutil
    import tempfile

    import imageio.v3 as iio

    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent))
    except OSError as e:
        raise ViewerError(f"cannot create the frames folder: {e.strerror}", file=p,
                          hint="check the folder is writable") from None
    try:
        um = os.umask(0)
        os.umask(um)
        os.chmod(tmp, 0o777 & ~um)
        iio.imwrite(tmp / "frame_0000.png", np.ascontiguousarray(first[..., :3]), extension=".png")
        n = 1
        for f in rest:
            iio.imwrite(tmp / f"frame_{n:04d}.png", np.ascontiguousarray(_same_size(f, first, n)), extension=".png")
            n += 1
        if p.is_dir():
            if not force:
                raise ViewerError("output folder exists", file=p, hint="use --force or give a new folder")
            written = {f.name for f in tmp.iterdir()}
            for f in sorted(written):
                os.replace(tmp / f, p / f)
            tmp.rmdir()
            for old in p.glob("frame_*.png"):  # frames of an earlier, longer movie
                if old.name not in written and old.stem[6:].isdigit():
                    old.unlink()
        else:
            os.replace(tmp, p)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ViewerError(f"could not write the frames: {e.strerror or e}", file=p,
                          hint="check the folder is writable and has space") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def write_movie(
    frames: Iterable[NDArray[np.uint8]], path: str | os.PathLike[str], *, fps: float = 24, force: bool = False
) -> Path:
    """Write frames as a movie, one frame at a time as they come (a generator such as
    :meth:`Scene.iter_turntable` is never held whole in memory).

    Parameters
    ----------
    frames
        ``(H, W, 3)`` (or 4) uint8 pictures, all of one size.
    path
        ``.gif``; ``.mp4``, ``.mov``, ``.mkv`` or ``.avi`` (H.264 through the
        ``imageio-ffmpeg`` package; frames padded to multiples of 16 pixels, as video
        codecs need); or a path without suffix: a new folder of numbered PNG files.
    fps
        Frames per second, above 0 and at most :data:`~viewers.offscreen.MAX_FPS`.
    force
        Overwrite an existing file (or write into an existing folder).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ViewerError
        On an unknown suffix, a bad ``fps``, no frames, frames of different sizes, or an
        output that cannot be written.
    """
    from morph.io import atomic_path

    p = Path(path)
    fps = _check_fps(fps)
    check_movie_path(p, force=force)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ViewerError("no frames to write", file=p)
    first = np.asarray(first)
    _same_size(first, first, 0)
    suffix = p.suffix.lower()
    if suffix == "":
        _write_frames_folder(first, it, p, force=force)
    elif suffix == ".gif":
        with atomic_path(p, force=force) as tmp, open(tmp, "wb") as fp:
            _write_gif(first, it, fp, fps)
    else:
        with atomic_path(p, force=force) as tmp:
            _write_video(first, it, tmp, p, fps)
    return p


def check_movie_path(path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Refuse a movie output that cannot be written, before any frame is rendered."""
    from morph.io import check_output

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == "":
        if p.exists() and not p.is_dir():
            raise ViewerError("output exists and is not a folder", file=p,
                              hint="a name without suffix is a folder of PNG frames: give a new name")
        if p.exists() and not force:
            raise ViewerError("output folder exists", file=p, hint="use --force or give a new folder")
        if not p.parent.is_dir():
            raise ViewerError("output folder's parent does not exist", file=p.parent, hint="create it first")
        from morph.io.atomic import check_writable_folder

        check_writable_folder(p if p.is_dir() else p.parent, output=p)
        return
    if suffix not in MOVIE_SUFFIXES:
        raise ViewerError(
            f"unknown movie format {suffix!r}", file=p,
            hint="use .gif, .mp4 (.mov .mkv .avi), or a name without suffix for a folder of PNG frames",
        )
    if suffix != ".gif":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ViewerError(
                f"writing {suffix} needs the imageio-ffmpeg package",
                file=p,
                hint="pip install imageio-ffmpeg, or write a .gif or PNG frames (a path without suffix)",
            ) from None
    check_output(p, force=force)


def _next_free(stem: str, suffix: str) -> Path:
    k = 1
    while Path(f"{stem}-{k:03d}{suffix}").exists():
        k += 1
    return Path(f"{stem}-{k:03d}{suffix}")


class Viewer:
    """Keys, mouse picking and level of detail on top of a :class:`Scene`.

    The key handling works without an event loop (``handle_key``), so it can be driven
    off-screen; :meth:`start` opens the window and runs VTK's interactor.
    """

    def __init__(self, scene: Scene, *, lod: bool = True, output_stem: str = "morph-view") -> None:
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
        from vtkmodules.vtkRenderingCore import vtkRenderWindowInteractor

        self.scene = scene
        self.scene.lod = lod
        self.picks: list[tuple[int, int]] = []
        self.coloring = 0
        self.image_cmap = 0
        self.output_stem = output_stem
        self.message = ""
        self.seed_mode = False
        #: Seeds picked on the image (micrometres), for ``morph trace --seeds``.
        self.seeds: list[NDArray[np.float64]] = []
        #: Edits made (neuron index, the reconstruction before), for undo; and which neurons
        #: have unsaved edits.
        self.undo: list[tuple[int, Any]] = []
        self.edited: set[int] = set()
        self.discard = False  # q pressed twice over unsaved edits
        self._press: tuple[int, int] | None = None
        scene.set_help(HELP, visible=False)
        self.interactor = vtkRenderWindowInteractor()
        self.interactor.SetRenderWindow(scene.render_window)
        self.interactor.SetDesiredUpdateRate(10.0)
        self.interactor.SetStillUpdateRate(0.01)
        self.style = vtkInteractorStyleTrackballCamera()
        self.interactor.SetInteractorStyle(self.style)
        # replacing the style's own key bindings (w wireframe, s surface, p pick, e exit...)
        self.style.AddObserver("CharEvent", lambda *_: None)
        self.style.AddObserver("KeyPressEvent", self._on_key)
        self.style.AddObserver("StartInteractionEvent", lambda *_: self.scene.set_interacting(True))
        self.style.AddObserver("EndInteractionEvent", lambda *_: self._end_interaction())
        # observed on the style (which grabs the focus while a button is down), chaining to
        # its own rotate handling
        self.style.AddObserver("LeftButtonPressEvent", self._on_press)
        self.style.AddObserver("LeftButtonReleaseEvent", self._on_release)

    # ---------------------------------------------------------------- events
    def _end_interaction(self) -> None:
        self.scene.set_interacting(False)
        self.scene.render()

    def _on_key(self, *_: Any) -> None:
        key = self.interactor.GetKeySym() or ""
        if self.interactor.GetShiftKey() and len(key) == 1:
            key = key.upper()
        self.handle_key(key)

    def _on_press(self, *_: Any) -> None:
        self._press = tuple(self.interactor.GetEventPosition())  # type: ignore[assignment]
        self.style.OnLeftButtonDown()

    def _on_release(self, *_: Any) -> None:
        self.style.OnLeftButtonUp()
        if self._press is None:
            return
        x, y = self.interactor.GetEventPosition()
        px, py = self._press
        self._press = None
        if abs(x - px) <= CLICK_TOLERANCE and abs(y - py) <= CLICK_TOLERANCE:
            h = self.scene.render_window.GetSize()[1]
            self.click(x, h - 1 - y)

    # ---------------------------------------------------------------- actions
    def _say(self, text: str) -> str:
        self.message = text
        self.scene.set_info(text)
        return text

    def click(self, x: float, y: float) -> str:
        """Pick the node at pixel ``(x, y)`` (origin top-left) and show its description; in
        seed mode, put a seed there instead (:meth:`add_seed`)."""
        if self.seed_mode:
            return self.add_seed(x, y)
        hit = self.scene.pick(x, y)
        if hit is None:
            return self._say("")
        self.picks = (self.picks + [(hit.neuron, hit.node)])[-2:]
        text = self.scene.format_info(self.scene.node_info(hit.neuron, hit.node))
        self._say(text)
        self.scene.render()
        return text

    def add_seed(self, x: float, y: float) -> str:
        """A seed at the most stained voxel of the stack under pixel ``(x, y)``
        (:meth:`Scene.pick_stack_point`): where a projection of the image shows a neurite the
        reconstruction misses, the seed lands on it in 3-D."""
        p = self.scene.pick_stack_point(x, y)
        if p is None:
            return self._say("no stack under the pointer")
        self.seeds.append(p)
        self.scene.set_markers(self.seeds)
        self.scene.render()
        return self._say(f"seed {len(self.seeds)} at {p[0]:.2f} {p[1]:.2f} {p[2]:.2f} µm (P saves the seeds)")

    def save_seeds(self) -> str:
        """Write the seeds (micrometres, one ``X Y Z`` per line) to a new file
        ``<output stem>-NNN.seeds.txt``; returns the message shown."""
        if not self.seeds:
            return "no seeds yet (p, then left clicks on the image)"
        path = _next_free(self.output_stem, ".seeds.txt")
        # without --soma (or --extend), morph trace would take the first seed as the root
        soma = next((n.morphology.soma_center for n in self.scene.neurons if n.morphology.soma_nodes.size), None)
        steer = "--soma " + ",".join(f"{v:.2f}" for v in soma) if soma is not None else "--soma X,Y,Z"
        lines = ["# seeds picked in morph view: x y z (micrometres); use with",
                 "# morph trace STACK --extend CELL.swc --seeds THIS_FILE -o OUT.swc   (adds the seeded branches), or",
                 f"# morph trace STACK {steer} --seeds THIS_FILE -o OUT.swc   (traces again; without --soma",
                 "# the first seed would be the root)"]
        lines += [f"{p[0]:.3f} {p[1]:.3f} {p[2]:.3f}" for p in self.seeds]
        atomic_write_text(path, "\n".join(lines) + "\n")
        return f"{len(self.seeds)} seeds saved to {path}"

    def edit(self, what: str) -> str:
        """A proofreading edit (:mod:`morph.edit`) at the picked node: ``"delete"`` its branch,
        ``"cut"`` from it on, ``"axon"`` from its neurite's start, or ``"join"`` the branch of
        the previous pick onto it. Returns the message shown."""
        import morph.edit as ed
        from morph.errors import MorphError

        need = 2 if what == "join" else 1
        if len(self.picks) < need:
            return "pick two nodes first: the branch to move, then where it goes" if need == 2 \
                else "pick a node first (left click)"
        k, node = self.picks[-1]
        if what == "join" and self.picks[-2][0] != k:
            return "the two picked nodes lie on different reconstructions"
        m = self.scene.neurons[k].morphology
        if m.soma_mask[self.picks[-need][1]]:
            return "pick a neurite node, not the soma"
        try:
            if what == "join":
                new, note = ed.join(m, m.xyz[self.picks[-2][1]], m.xyz[node])
            else:
                fn = {"delete": ed.delete_branch, "cut": ed.cut_at, "axon": ed.set_axon}[what]
                new, note = fn(m, m.xyz[node])
        except MorphError as e:
            return str(e)
        self.undo.append((k, m))
        self.edited.add(k)
        self.picks = []  # node indices of the edited reconstruction no longer hold
        self.scene.replace_morphology(k, new)
        self.scene.render()
        return note.removeprefix("edit: ") + " (U undoes, S saves)"

    def extend_to_seeds(self) -> str:
        """Trace the seeds into the reconstruction (the one of the last pick, else the first):
        :func:`morph.tracing.trace` with ``extend`` and ``seeds``, as ``morph trace STACK
        --extend CELL --seeds FILE`` does, on the stack shown. Undoable like an edit."""
        import warnings

        from morph.errors import MorphError
        from morph.tracing import trace

        s = self.scene
        if s.stack is None:
            return "no stack loaded (--stack): the seeds are traced on the image"
        if not self.seeds:
            return "no seeds yet (p, then left clicks on missed neurites)"
        if s.stack_is_lazy:
            return ("this stack is opened lazily (large or zarr): save the seeds (P) and run "
                    "morph trace STACK --extend CELL --seeds FILE --max-memory ... -o OUT")
        if not s.neurons:
            return "no reconstruction to extend"
        k = self.picks[-1][0] if self.picks else 0
        m = s.neurons[k].morphology
        self._say(f"tracing {len(self.seeds)} seeds into {s.neurons[k].name} ...")
        s.render()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the voxel size and the like were said on loading
                new = trace(s.stack, seeds=np.asarray(self.seeds), extend=m, progress=True)
        except MorphError as e:
            return str(e)
        added = new.total_length() - m.total_length()
        self.undo.append((k, m))
        self.edited.add(k)
        self.picks = []
        n = len(self.seeds)
        self.seeds = []
        s.set_markers(self.seeds)
        s.replace_morphology(k, new)
        s.render()
        return f"extended by {added:.1f} um of cable from {n} seeds (U undoes, S saves)"

    def undo_edit(self) -> str:
        if not self.undo:
            return "nothing to undo"
        k, m = self.undo.pop()
        self.picks = []
        self.scene.replace_morphology(k, m)
        if not any(j == k for j, _ in self.undo):
            self.edited.discard(k)
        self.scene.render()
        return f"edit undone on {self.scene.neurons[k].name}"

    def save_edits(self) -> str:
        """Write each edited reconstruction to a new file ``<output stem>-NNN.swc`` (its edits
        are in its header); returns the message shown."""
        from morph.errors import MorphError
        from morph.io import write_swc

        if not self.edited:
            return "no edits to save (Delete, e, J, A on a picked node)"
        said = []
        for k in sorted(self.edited):
            path = _next_free(self.output_stem, ".swc")
            try:
                write_swc(self.scene.neurons[k].morphology, path)
            except (MorphError, OSError) as e:  # e.g. a folder not writable: the edits stay unsaved
                return f"not saved: {e}"
            self.edited.discard(k)
            said.append(str(path))
        return "saved " + ", ".join(said)

    def handle_key(self, key: str) -> str:
        """Do what a key press does; returns the message shown (may be empty)."""
        s = self.scene
        msg = ""
        k = key
        if k in ("q", "Escape"):
            if self.edited and self.message != UNSAVED:
                return self._say(UNSAVED)  # a second q quits
            self.discard = bool(self.edited)
            self.interactor.TerminateApp()
            return ""
        if k == "h":
            s.help_text.SetVisibility(not s.help_text.GetVisibility())
        elif k in ("1", "2", "3", "4"):
            s.set_camera(("xy", "xz", "yz", "iso")[int(k) - 1])
            msg = f"camera {s.camera_preset}"
        elif k == "r":
            s.set_camera(s.camera_preset)
        elif k == "o":
            msg = "orthographic" if s.toggle_projection() else "perspective"
        elif k == "l":
            msg = f"{s.toggle_mode()} mode"
        elif k == "L":
            s.lod = not s.lod
            msg = f"lines while moving {'on' if s.lod else 'off'}"
        elif k == "c":
            self.coloring = (self.coloring + 1) % len(COLORINGS)
            s.set_color_by(COLORINGS[self.coloring])
            msg = f"colour by {COLORINGS[self.coloring].replace('_', ' ')}"
        elif k == "u":
            if not self.picks:
                msg = "pick a node first (left click)"
            else:
                n, node = self.picks[-1]
                clear = s.neurons[n].highlighted == node
                s.highlight_subtree(n, None if clear else node)
                msg = (
                    "highlight cleared"
                    if clear
                    else f"subtree of node {int(s.neurons[n].morphology.ids[node])}"
                )
        elif k == "d":
            if len(self.picks) < 2:
                msg = "pick two nodes first (left click)"
            else:
                a, b = self.picks
                eu, path = s.measure(a, b)
                ia, ib = (int(s.neurons[p[0]].morphology.ids[p[1]]) for p in (a, b))
                msg = f"nodes {ia} - {ib}: Euclidean {eu:.2f} µm, path " + (
                    "n/a (not on one tree)" if path is None else f"{path:.2f} µm"
                )
        elif k == "b":
            s.toggle_background()
        elif k == "a":
            s.show_axes(s.axes is None or not s.axes[0].GetVisibility())
        elif k == "k":
            s.show_scale_bar(s.scale_bar is None or not s.scale_bar[0].GetVisibility())
        elif k in ("m", "s", "v"):
            if s.stack is None:
                msg = "no stack loaded (--stack)"
            else:
                name = {"m": "mip", "s": "slices", "v": "volume"}[k]
                msg = f"{name} {'on' if s.toggle_image(name) else 'off'}"
        elif k in ("x", "X", "y", "Y", "z", "Z"):
            if s.stack is not None:
                axis = "xyz".index(k.lower())
                idx = s.move_slice(axis, 1 if k.isupper() else -1)
                msg = f"{k.lower()} slice {idx}"
        elif k in (
            "bracketleft",
            "bracketright",
            "[",
            "]",
            "minus",
            "equal",
            "-",
            "=",
            "g",
            "G",
            "t",
            "T",
            "n",
            "i",
        ):
            msg = self._image_key(k)
        elif k.startswith("F") and k[1:].isdigit():
            n = int(k[1:]) - 1
            if 0 <= n < len(s.neurons):
                s.set_neuron_visible(n, not s.neurons[n].visible)
                msg = f"{s.neurons[n].name} {'shown' if s.neurons[n].visible else 'hidden'}"
        elif k == "w":
            path = _next_free(self.output_stem, ".png")
            s.save_screenshot(path)
            msg = f"screenshot {path}"
        elif k == "M":
            path = _next_free(self.output_stem, ".gif")
            write_movie(s.iter_turntable(72), path)
            msg = f"movie {path}"
        elif k == "p":
            if s.stack is None:
                msg = "no stack loaded (--stack): seeds are put on the image"
            else:
                self.seed_mode = not self.seed_mode
                msg = ("seed mode: a left click puts a seed on the image (BackSpace removes the last, P saves)"
                       if self.seed_mode else "seed mode off: a left click picks a node")
        elif k == "P":
            msg = self.save_seeds()
        elif k in ("Delete", "e", "J", "A"):
            msg = self.edit({"Delete": "delete", "e": "cut", "J": "join", "A": "axon"}[k])
        elif k == "E":
            msg = self.extend_to_seeds()
        elif k == "U":
            msg = self.undo_edit()
        elif k == "S":
            msg = self.save_edits()
        elif k == "BackSpace":
            if self.seeds:
                self.seeds.pop()
                s.set_markers(self.seeds)
                msg = f"{len(self.seeds)} seeds"
        else:
            return self.message
        if msg:
            self._say(msg)
        s.render()
        return msg

    def _image_key(self, k: str) -> str:
        s = self.scene
        if s.display is None:
            return "no stack loaded (--stack)"
        d = s.display
        if k in ("bracketleft", "["):
            s.set_display(window=d.window / 1.25)
        elif k in ("bracketright", "]"):
            s.set_display(window=d.window * 1.25)
        elif k in ("minus", "-"):
            s.set_display(level=d.level - 0.05 * d.window)
        elif k in ("equal", "="):
            s.set_display(level=d.level + 0.05 * d.window)
        elif k == "g":
            s.set_display(gamma=d.gamma / 1.2)
        elif k == "G":
            s.set_display(gamma=d.gamma * 1.2)
        elif k == "t":
            s.set_display(opacity=d.opacity - 0.1)
        elif k == "T":
            s.set_display(opacity=d.opacity + 0.1)
        elif k == "n":
            self.image_cmap = (self.image_cmap + 1) % len(IMAGE_CMAPS)
            s.set_display(cmap=IMAGE_CMAPS[self.image_cmap])
        elif k == "i":
            s.set_display(invert=not d.invert)
        d = s.display
        return f"window {d.window:.4g} level {d.level:.4g} gamma {d.gamma:.2f} opacity {d.opacity:.1f} {d.cmap}{' inverted' if d.invert else ''}"

    def start(self) -> None:
        """Open the window and run until it is closed (or ``q``)."""
        self.scene.render_window.SetWindowName("morph view")
        self.interactor.Initialize()
        self.scene.render()
        self.interactor.Start()
        if self.edited and not self.discard:  # the window closed over unsaved edits: keep them
            import sys

            print(f"morph view: unsaved edits when the window closed: {self.save_edits()}", file=sys.stderr)


MESH_SUFFIXES = (".ply", ".stl", ".obj", ".glb", ".gltf", ".off")


#: Stacks larger than this (uncompressed), and every zarr store, are opened lazily by
#: :func:`open_stack`.
LAZY_STACK_BYTES = 1024**3


def open_stack(
    path: str | os.PathLike[str], *, voxel_size: Sequence[float] | None = None, channel: int | str | None = None,
    series: int | None = None,
) -> Any:
    """The stack to show: read into memory (:func:`morph.io.read_stack`: a TIFF, a folder of
    TIFF slices), or, for an OME-Zarr/zarr store or a TIFF over :data:`LAZY_STACK_BYTES`, opened lazily
    (:func:`morph.io.chunked.open_chunked`), so that the viewer reads only what it shows
    (the projection chunk by chunk, single planes, a strided subsample for the volume) and a
    stack larger than memory can be viewed. ``channel``, ``series``: see :func:`morph.io.read_stack`."""
    from morph.io import read_stack

    p = Path(path)
    if is_zarr_store(p) or (p.is_file() and p.stat().st_size > LAZY_STACK_BYTES):
        from morph.io.chunked import open_chunked

        return open_chunked(p, voxel_size=voxel_size, channel=channel, series=series)
    return read_stack(p, voxel_size=voxel_size, channel=channel, series=series)


def check_scene_options(
    paths: Sequence[str | os.PathLike[str]],
    *,
    swc_units: str = "um",
    size: tuple[int, int] = (1024, 768),
    color_by: str = "compartment",
    cmap: str = "viridis",
    mode: str = "auto",
    layers: Sequence[str] = ("mip",),
    polarity: str | None = None,
    window: float | None = None,
    level: float | None = None,
    gamma: float = 1.0,
    opacity: float = 1.0,
    image_cmap: str = "gray",
    background: str = "dark",
    camera: str = "xy",
) -> None:
    """Refuse what :func:`build_scene` cannot show, before anything is read or rendered:
    a bad option value, or a file that is not a reconstruction or a mesh (a folder, an image
    stack). The parameters are those of :func:`build_scene`.

    Raises
    ------
    ViewerError
        Naming the value or the file and what to give instead.
    """
    from viewers.offscreen import check_size
    from viewers.scene import BACKGROUNDS, CAMERA_PRESETS, check_display, check_layers, colormap

    check_size(size)
    for what, value, allowed in (
        ("colouring", color_by, ("compartment", *SCALARS)),
        ("drawing mode", mode, ("auto", "tube", "line")),
        ("camera", camera, CAMERA_PRESETS),
        ("background", background, tuple(BACKGROUNDS)),
        ("SWC units", swc_units, ("um", "voxel")),
        ("polarity", polarity, (None, "fluorescence", "brightfield")),
    ):
        if value not in allowed:
            raise ViewerError(f"unknown {what} {value!r}", hint="use " + ", ".join(str(a) for a in allowed if a))
    colormap(cmap, np.zeros(1))
    check_layers(layers)
    check_display(window=window, level=level, gamma=gamma, opacity=opacity, cmap=image_cmap)
    for p in paths:
        check_scene_file(p)


def check_scene_file(path: str | os.PathLike[str]) -> None:
    """Refuse a file :func:`build_scene` cannot show as a reconstruction or a mesh: a
    folder (of image slices or not), an image stack, a path that does not exist."""
    from morph.io.stack import MICROSCOPE_FORMATS

    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        try:
            slices = any(f.suffix.lower() in (".tif", ".tiff") for f in p.iterdir())
        except OSError:
            slices = False
        if is_zarr_store(p) or slices:
            raise ViewerError(
                "this is an image stack (a folder of slices or a zarr store), not a reconstruction",
                file=p, hint="give it with --stack",
            )
        raise ViewerError(
            "is a folder, not an SWC file or a mesh", file=p,
            hint="give an .swc file or a mesh: " + " ".join(MESH_SUFFIXES),
        )
    if suffix in STACK_SUFFIXES or suffix in MICROSCOPE_FORMATS:
        raise ViewerError("this is an image stack, not a reconstruction", file=p, hint="give it with --stack")
    if not p.exists():
        raise ViewerError("file not found", file=p, hint="check the path")


def read_mesh(path: str | os.PathLike[str]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The vertices and triangles of a mesh file (trimesh; a scene of several meshes is
    merged into one).

    Raises
    ------
    ViewerError
        When the file cannot be read as a mesh of its format, or holds no triangles.
    """
    import trimesh

    p = Path(path)
    kind = p.suffix.lower().lstrip(".").upper() or "mesh"
    try:
        mesh = trimesh.load(p, force="mesh")
        vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
        faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    except MemoryError:
        raise
    except Exception as e:  # trimesh and its parsers raise many kinds of errors on bad files
        reason = str(e).strip().rstrip(".!") or type(e).__name__
        raise ViewerError(
            f"not a readable {kind} mesh ({reason})", file=p,
            hint=f"check the file is a {kind} mesh, or export it again",
        ) from None
    if vertices.size == 0 or faces.size == 0:
        raise ViewerError("the mesh is empty (no triangles)", file=p, hint="check the file, or export the mesh again")
    return vertices, faces


def build_scene(
    paths: Sequence[str | os.PathLike[str]],
    *,
    stack: str | os.PathLike[str] | None = None,
    voxel: Sequence[float] | None = None,
    channel: int | str | None = None,
    series: int | None = None,
    swc_units: str = "um",
    size: tuple[int, int] = (1024, 768),
    offscreen: bool = True,
    color_by: str = "compartment",
    cmap: str = "viridis",
    mode: str = "auto",
    layers: Sequence[str] = ("mip",),
    polarity: str | None = None,
    window: float | None = None,
    level: float | None = None,
    gamma: float = 1.0,
    opacity: float = 1.0,
    image_cmap: str = "gray",
    background: str = "dark",
    camera: str = "xy",
    perspective: bool = False,
    scale_bar: bool = True,
    axes: bool = True,
) -> Scene:
    """Read reconstructions (SWC), meshes (PLY/STL/OBJ/GLB) and an optional stack into a
    :class:`Scene` (see ``morph view``). The options and files are checked first
    (:func:`check_scene_options`)."""
    from morph import progress
    from morph.plot import load_morphology

    check_scene_options(
        paths, swc_units=swc_units, size=size, color_by=color_by, cmap=cmap, mode=mode, layers=layers,
        polarity=polarity, window=window, level=level, gamma=gamma, opacity=opacity, image_cmap=image_cmap,
        background=background, camera=camera,
    )
    st = open_stack(stack, voxel_size=voxel, channel=channel, series=series) if stack is not None else None
    vs = voxel or (st.voxel_size if st is not None else None)
    scene = Scene(size, offscreen=offscreen, background=background)
    for p in progress.bar(list(paths), desc="reading", unit="file"):
        if Path(p).suffix.lower() in MESH_SUFFIXES:
            vertices, faces = read_mesh(p)
            scene.add_mesh(vertices, faces, name=str(p))
        else:
            scene.add_morphology(load_morphology(p, swc_units=swc_units, voxel_size=vs), mode=mode)
    scene.set_color_by(color_by, cmap=cmap)
    if st is not None:
        scene.add_stack(
            st,
            layers=layers,
            polarity=polarity,
            window=window,
            level=level,
            gamma=gamma,
            opacity=opacity,
            cmap=image_cmap,
        )
    if scale_bar:
        scene.show_scale_bar(True)
    if axes:
        scene.show_axes(True)
    scene.set_camera(camera, parallel=not perspective)
    return scene
