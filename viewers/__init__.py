"""Desktop viewer of reconstructions over their imaging (VTK).

:mod:`viewers.scene` builds the picture (testable off-screen), :mod:`viewers.app` wraps it in
an interactive window, :mod:`viewers.offscreen` picks an OpenGL backend and reads pictures back.
"""

from viewers.offscreen import GLUnavailableError, ViewerError, select_backend
from viewers.scene import Scene

__all__ = ["GLUnavailableError", "Scene", "ViewerError", "select_backend"]
