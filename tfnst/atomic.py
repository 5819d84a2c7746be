"""Atomic file writes: a temporary file beside the target, then a rename.

A reader never sees a half-written file, an existing file is replaced only by a
complete one, and a failed write leaves nothing behind. Used for output images,
checkpoints and the weights cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    The file is made readable by everyone (0644, not mkstemp's 0600): outputs and
    caches are meant to be shared like any other file the user writes.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
