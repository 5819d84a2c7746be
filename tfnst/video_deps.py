"""The optional packages behind video (the ``video`` extra): PyAV and OpenCV.

They are imported on first use, never when tfnst itself is imported, and a missing one
gives a one-line `TfnstError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tfnst.errors import TfnstError

INSTALL_HINT = "pip install 'tfnst[video]'"


def _require(module: str, package: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise TfnstError(f"{what} needs {package} ({e.name or module} is missing): {INSTALL_HINT}") from None


def require_av() -> ModuleType:
    """PyAV (FFmpeg's libraries), which reads and writes video files."""
    return _require("av", "PyAV", "video reading and writing")


def require_cv2() -> ModuleType:
    """OpenCV (``opencv-python-headless``), which computes optical flow."""
    return _require("cv2", "opencv-python-headless", "optical flow")
