"""What both served graphs share: the optimization (`tfnst.export`) and a trained
network (`tfnst.networks.export_network`).

In the graph: `decode` (encoded bytes → float32 [H, W, 3] in [0, 1]), `check_size`
(InvalidArgument for an image too small, rather than a NaN result), `clamp` (resize to
a longest side of ``max_size``, with `tfnst.resize.fit_longest`, so a served image is
resized exactly as the library resizes it) and `encode_png`. On disk: `save_servable`
(TF Serving's ``out/<version>/`` layout, each version folder appearing whole),
`next_version` and `directory_size`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.resize import fit_longest
from tfnst.vgg_layers import MIN_SIDE

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ in the graph
def decode(data: tf.Tensor) -> tf.Tensor:
    """An encoded JPEG/PNG/GIF/BMP string → float32 [H, W, 3] in [0, 1] (a GIF's first frame)."""
    return tf.image.convert_image_dtype(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)


def check_size(image: tf.Tensor, what: str) -> tf.Tensor:
    """``image`` [H, W, C], or InvalidArgument "<what> must be at least 16x16 pixels" when
    a side is shorter than VGG19 can take (its result would be NaN)."""
    with tf.control_dependencies(
        [
            tf.debugging.assert_greater_equal(
                tf.reduce_min(tf.shape(image)[:2]),
                MIN_SIDE,
                message=f"{what} must be at least {MIN_SIDE}x{MIN_SIDE} pixels",
            )
        ]
    ):
        return tf.identity(image)


def clamp(image: tf.Tensor, max_size: int | None) -> tf.Tensor:
    """``image`` [H, W, C] resized to the longest side ``max_size`` when it is larger
    (unchanged otherwise, and always with ``max_size`` None or 0)."""
    if not max_size:
        return image
    return tf.cond(tf.reduce_max(tf.shape(image)[:2]) > max_size, lambda: fit_longest(image, max_size), lambda: image)


def encode_png(image: tf.Tensor) -> tf.Tensor:
    """float [H, W, 3] in [0, 1] → a PNG string (8 bits, out-of-range values saturated)."""
    return tf.io.encode_png(tf.image.convert_image_dtype(image, tf.uint8, saturate=True))


# ------------------------------------------------------------------ on disk
def next_version(out: Path) -> int:
    """One more than the highest integer version folder in ``out`` (TF Serving's layout)."""
    versions = (
        [int(p.name) for p in out.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)] if out.is_dir() else []
    )
    return max(versions, default=0) + 1


def save_servable(write, out, version: int | None = None) -> Path:
    """``write(folder)`` a SavedModel as ``out/<version>/`` (saved_model.pb + variables/)
    and return that folder.

    The version folder appears whole or not at all (saved next to it, then renamed),
    since TF Serving loads any new version folder it sees.

    Raises:
        TfnstError: for a version that exists or a folder that cannot be made.
    """
    out = Path(out)
    if version is None:
        version = next_version(out)
    if version < 0:
        raise TfnstError(f"version must be >= 0, not {version}")
    target = out / str(version)
    if target.exists():
        raise TfnstError(f"{target} already exists; pick another --version")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TfnstError(f"cannot create {out}: {e.strerror}") from None
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{version}.tmp"))
    try:
        write(str(tmp))
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("tfnst: exported %s (%.1f MB)", target, directory_size(target) / 1e6)
    return target


def directory_size(path: Path) -> int:
    """The bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
