"""Choosing an OpenGL backend for VTK, headless rendering and reading the picture back.

VTK (9.4 and later, as shipped on PyPI) picks its window class at run time: an X window when
a display is reachable, then EGL, then OSMesa. On a machine without a display the first try
prints warnings, and when none of the three is usable VTK crashes on the first render instead
of raising. :func:`select_backend` therefore probes the system libraries itself (with
``ctypes``, no window is created) and sets ``VTK_DEFAULT_OPENGL_WINDOW`` before VTK makes its
first window:

* an on-screen window needs ``DISPLAY`` (or ``WAYLAND_DISPLAY``) and uses VTK's X window;
* off-screen, a value already set in ``VTK_DEFAULT_OPENGL_WINDOW`` is respected (tests and CI
  set it), and with a display VTK's X window renders off-screen;
* otherwise EGL when an EGL device is found (``libegl1`` + ``libegl-mesa0`` + ``libgbm1``;
  Mesa's ``llvmpipe`` software renderer comes from ``libgl1-mesa-dri``), else OSMesa
  (``libosmesa6``), else :class:`GLUnavailableError` naming the Debian packages to install.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from morph.errors import MorphError

EGL_WINDOW = "vtkEGLRenderWindow"
OSMESA_WINDOW = "vtkOSOpenGLRenderWindow"
X_WINDOW = "vtkXOpenGLRenderWindow"
#: Debian/Ubuntu packages that provide headless OpenGL for VTK.
GL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 (EGL), or libosmesa6 (OSMesa)"
_ENV = "VTK_DEFAULT_OPENGL_WINDOW"


class GLUnavailableError(MorphError):
    """No OpenGL implementation VTK can render with was found."""


class ViewerError(MorphError):
    """The viewer cannot show what was asked (bad placement, no display...)."""


def _load(names: list[str]) -> Any | None:
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    found = ctypes.util.find_library(names[0].split(".so")[0].removeprefix("lib"))
    if found:
        try:
            return ctypes.CDLL(found)
        except OSError:
            return None
    return None


def egl_device_count() -> int:
    """Number of EGL devices (0 when libEGL or a vendor library such as Mesa is missing).

    This is the check VTK's EGL window needs to pass: ``EGL_EXT_device_base`` and at least
    one device from ``eglQueryDevicesEXT``.
    """
    lib = _load(["libEGL.so.1", "libEGL.so"])
    if lib is None:
        return 0
    try:
        get_proc = lib.eglGetProcAddress
    except AttributeError:
        return 0
    get_proc.restype = ctypes.c_void_p
    get_proc.argtypes = [ctypes.c_char_p]
    addr = get_proc(b"eglQueryDevicesEXT")
    if not addr:
        return 0
    proto = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int))
    query = proto(addr)
    count = ctypes.c_int(0)
    ok = query(0, None, ctypes.byref(count))
    return int(count.value) if ok else 0


def osmesa_available() -> bool:
    """True when ``libOSMesa`` (software off-screen OpenGL) can be loaded."""
    lib = _load(["libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"])
    return lib is not None and hasattr(lib, "OSMesaCreateContextExt")


def display_available() -> bool:
    """True when an X (or Wayland) display is named in the environment."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def select_backend(*, offscreen: bool = True) -> str:
    """Choose VTK's OpenGL window class and put it in ``VTK_DEFAULT_OPENGL_WINDOW``.

    Parameters
    ----------
    offscreen
        True for headless rendering (screenshots, movies, tests); False for an on-screen
        interactive window, which needs a display.

    Returns
    -------
    str
        The window class name VTK will create.

    Raises
    ------
    GLUnavailableError
        When no usable OpenGL is found, naming the packages to install.
    ViewerError
        When an on-screen window is asked for without a display.
    """
    wanted = os.environ.get(_ENV, "").strip()
    if not offscreen:
        if not display_available():
            raise ViewerError(
                "no display to open a window on (DISPLAY is not set)",
                hint="use --screenshot out.png to render without a display, or run under xvfb-run",
            )
        if wanted and wanted != X_WINDOW:  # a headless choice (CI) must not hide the window
            os.environ[_ENV] = X_WINDOW
        return X_WINDOW
    if wanted:
        if wanted == EGL_WINDOW and egl_device_count() == 0:
            raise GLUnavailableError(
                f"{_ENV}={wanted} but no EGL device was found",
                hint=f"install {GL_PACKAGES}, or unset {_ENV}",
            )
        if wanted == OSMESA_WINDOW and not osmesa_available():
            raise GLUnavailableError(
                f"{_ENV}={wanted} but libOSMesa could not be loaded",
                hint=f"install libosmesa6, or unset {_ENV}",
            )
        return wanted
    if display_available():
        return X_WINDOW
    if egl_device_count() > 0:
        os.environ[_ENV] = EGL_WINDOW
        return EGL_WINDOW
    if osmesa_available():
        os.environ[_ENV] = OSMESA_WINDOW
        return OSMESA_WINDOW
    raise GLUnavailableError(
        "no OpenGL found for off-screen rendering (no display, no EGL device, no OSMesa)",
        hint=f"install the Debian packages {GL_PACKAGES}, e.g. "
        "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libosmesa6",
    )


def quiet_vtk() -> None:
    """Send VTK's own warnings to nowhere unless ``MORPH_VTK_DEBUG`` is set (errors still
    surface through morph's checks)."""
    if os.environ.get("MORPH_VTK_DEBUG"):
        return
    from vtkmodules.vtkCommonCore import vtkLogger, vtkObject

    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    vtkObject.GlobalWarningDisplayOff()


def make_render_window(size: tuple[int, int] = (1024, 768), *, offscreen: bool = True) -> Any:
    """A VTK render window on a usable backend (see :func:`select_backend`)."""
    backend = select_backend(offscreen=offscreen)
    quiet_vtk()
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL factories)
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    rw = vtkRenderWindow()
    rw.SetSize(int(size[0]), int(size[1]))
    if offscreen:
        rw.SetOffScreenRendering(1)
    name = rw.GetClassName()
    if backend != X_WINDOW and name != backend:
        raise GLUnavailableError(
            f"VTK could not create a {backend} (got {name})", hint=f"install {GL_PACKAGES}"
        )
    return rw


def capture(render_window: Any, *, alpha: bool = False) -> NDArray[np.uint8]:
    """Render and read the window's picture as an ``(H, W, 3)`` (or 4) uint8 array, top row
    first."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    render_window.Render()
    f = vtkWindowToImageFilter()
    f.SetInput(render_window)
    f.ShouldRerenderOff()
    f.SetInputBufferTypeToRGBA() if alpha else f.SetInputBufferTypeToRGB()
    f.ReadFrontBufferOff()
    f.Update()
    img = f.GetOutput()
    w, h, _ = img.GetDimensions()
    arr = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)
    return np.ascontiguousarray(arr[::-1])


#: Largest picture side in pixels (``--size``): the usual limit of OpenGL framebuffers.
MAX_SIDE = 16384
#: Memory one rendered pixel takes, about, in bytes: the OpenGL colour and depth buffers,
#: VTK's read-back and the copies made to write the picture (measured with Mesa's llvmpipe).
BYTES_PER_PIXEL = 50
#: Memory a render takes whatever its size, about, in bytes.
BASE_BYTES = 300 * 2**20
#: Most frames in a turntable movie (``--frames``), and most frames per second (``--fps``).
MAX_FRAMES = 3600
MAX_FPS = 120
#: Picture formats written by :func:`write_picture`, by suffix.
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


#: Address space VTK and OpenGL take once loaded (libraries, driver threads), about, in bytes:
#: it counts against an address-space limit (``ulimit -v``), not against the memory used.
GL_ADDRESS_SPACE = 2**30


def _status_bytes(key: str, path: str = "/proc/self/status") -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory(*, address_space_reserve: int = 0) -> int | None:
    """Bytes this process can still allocate, about: the system's available memory, or
    less under an address-space limit (``ulimit -v``); ``None`` when unknown.

    Parameters
    ----------
    address_space_reserve
        Address space that will be taken before the allocation (e.g. by loading OpenGL):
        subtracted from what the limit leaves.
    """
    import resource

    avail = _status_bytes("MemAvailable", "/proc/meminfo")
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        soft = resource.RLIM_INFINITY
    if soft != resource.RLIM_INFINITY:
        left = max(int(soft) - (_status_bytes("VmSize") or 0) - address_space_reserve, 0)
        avail = left if avail is None else min(avail, left)
    return avail


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def check_size(size: Sequence[int], *, what: str = "picture size") -> tuple[int, int]:
    """Refuse a picture size that cannot be rendered, before VTK tries (VTK aborts the
    process on a size it cannot allocate).

    Parameters
    ----------
    size
        ``(width, height)`` in pixels.
    what
        How the size is named in the messages (e.g. ``"--size"``).

    Returns
    -------
    tuple of int
        ``(width, height)``.

    Raises
    ------
    ViewerError
        When a side is not a whole number from 1 to :data:`MAX_SIDE`, or when the picture
        needs more memory than is available.
    """
    if len(size) != 2:
        raise ViewerError(f"{what} must be two numbers, width and height, got {len(size)}")
    w, h = size
    for v in (w, h):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIDE:
            raise ViewerError(
                f"{what} {w} {h}: each side must be a whole number of pixels from 1 to {MAX_SIDE}",
                hint="e.g. 1024 768",
            )
    import sys

    need = BASE_BYTES + BYTES_PER_PIXEL * int(w) * int(h)
    gl_loaded = "vtkmodules.vtkRenderingOpenGL2" in sys.modules
    avail = available_memory(address_space_reserve=0 if gl_loaded else GL_ADDRESS_SPACE - BASE_BYTES)
    if avail is not None and need > avail:
        raise ViewerError(
            f"a {w}x{h} picture needs about {_gb(need)} of memory to render, about {_gb(avail)} is available",
            hint=f"give a smaller {what}" if what.startswith("--") else "render a smaller picture",
        )
    return int(w), int(h)


def check_picture_path(path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Refuse a screenshot name that :func:`write_picture` cannot write (an unknown suffix,
    an existing file without ``force``, a missing folder...), before anything is rendered."""
    from morph.io import check_output

    p = os.fspath(path)
    suffix = os.path.splitext(p)[1].lower()
    if suffix not in PICTURE_SUFFIXES:
        what = f"unknown picture format {suffix!r}" if suffix else "the picture name has no suffix"
        raise ViewerError(what, file=p, hint="give a name ending in .png or .jpg")
    check_output(p, force=force)


def write_picture(image: NDArray[np.uint8], path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write an RGB(A) array as PNG or JPEG by the suffix of ``path`` (VTK's writers),
    atomically, refusing to overwrite without ``force``.

    Parameters
    ----------
    image
        ``(H, W, 3)`` or ``(H, W, 4)`` uint8, top row first. JPEG drops the alpha channel.
    path
        A ``.png``, ``.jpg`` or ``.jpeg`` file name.
    force
        Overwrite an existing file.

    Raises
    ------
    ViewerError
        On another suffix, or when the file cannot be written.
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOImage import vtkJPEGWriter, vtkPNGWriter

    from morph.io import atomic_path

    check_picture_path(path, force=force)
    jpeg = os.path.splitext(os.fspath(path))[1].lower() in (".jpg", ".jpeg")
    img = np.asarray(image)
    if jpeg and img.shape[-1] == 4:
        img = img[..., :3]
    img = np.ascontiguousarray(img[::-1])  # VTK images start at the bottom row
    h, w, c = img.shape
    data = vtkImageData()
    data.SetDimensions(w, h, 1)
    data.GetPointData().SetScalars(numpy_to_vtk(img.reshape(-1, c), deep=1))
    with atomic_path(path, force=force) as tmp:
        writer = vtkJPEGWriter() if jpeg else vtkPNGWriter()
        if jpeg:
            writer.SetQuality(95)
        writer.SetFileName(str(tmp))
        writer.SetInputData(data)
        writer.Write()
        if writer.GetErrorCode():
            raise ViewerError(
                f"could not write the {'JPEG' if jpeg else 'PNG'}",
                file=path,
                hint="check the folder is writable and has space",
            )


def write_png(image: NDArray[np.uint8], path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write an RGB(A) array as a picture: see :func:`write_picture` (PNG or JPEG by the
    suffix)."""
    write_picture(image, path, force=force)
