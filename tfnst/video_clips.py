"""Synthetic clips with known motion, for tests and benchmarks of the video tools.

A virtual camera looks at a still photo (``examples/tubingen.jpg``, downscaled) and
pans or zooms; each frame is the photo sampled bilinearly (numpy, independent of
`tfnst.flow.warp`) at the camera's pixel positions, so the optical flow between frames
is known exactly:

* `pan`: frame t shows the photo at ``p + origin + t * shift``. Frame t+1 at p is
  frame t at ``p + shift``: the backward flow (t+1 → t, see `tfnst.flow`) is ``shift``
  everywhere and the forward flow ``-shift``. The band of frame t+1 with
  ``p + shift`` outside frame t has just entered the view: with ``shift = (2, 0)``
  (the camera moves right), the last two columns.
* `zoom`: frame t shows the photo at ``centre_photo + (p - centre) * k**t`` with
  ``k = 1 / factor``; frame t+1 at p is frame t at ``centre + (p - centre) * k``, so
  ``backward(p) = (p - centre) (k - 1)`` and ``forward(p) = (p - centre) (1/k - 1)``.
  Zooming in (``factor > 1``) brings nothing new into view; zooming out brings in a
  border band.

Warping frame t by the true backward flow gives frame t+1 exactly (to float rounding)
where frame t's samples lie on the photo's pixel grid (integer shifts; the first frame
of a pan whose origin is whole pixels); elsewhere bilinear-of-bilinear differs from a
direct sample by a little (measured in tests/test_flow.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from tfnst.errors import TfnstError
from tfnst.image_io import read_image

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "tubingen.jpg"


@dataclass
class SyntheticClip:
    """Frames (float32 [H, W, 3] in [0, 1]) and their exact flows.

    ``backward[t]`` is the flow from frame t+1 to frame t (on frame t+1's grid);
    ``forward[t]`` from frame t to frame t+1 (on frame t's grid); both [H, W, 2].
    ``entering[t]`` is bool [H, W]: the pixels of frame t+1 that were outside frame t.
    """

    frames: list[np.ndarray]
    backward: list[np.ndarray]
    forward: list[np.ndarray]
    entering: list[np.ndarray]
    fps: Fraction = field(default_factory=lambda: Fraction(24))


def photo(longest: int = 256, path: str | Path = PHOTO) -> np.ndarray:
    """The source photo, float32 [H, W, 3], downscaled (PIL Lanczos) to ``longest``."""
    image = read_image(path)
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pil = Image.fromarray(np.round(image * 255).astype(np.uint8)).resize(size, Image.LANCZOS)
    return np.asarray(pil, np.float32) / 255.0


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` at the positions (x, y) by bilinear interpolation (float64 weights);
    every position must lie in ``[0, W-1] x [0, H-1]``."""
    h, w = image.shape[:2]
    if x.min() < 0 or y.min() < 0 or x.max() > w - 1 or y.max() > h - 1:
        raise TfnstError(f"the camera leaves the {w}x{h} photo; use a smaller view or motion")
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    ax = (x - x0)[..., None]
    ay = (y - y0)[..., None]
    img = image.astype(np.float64)
    out = (1 - ay) * ((1 - ax) * img[y0, x0] + ax * img[y0, x0 + 1]) + ay * (
        (1 - ax) * img[y0 + 1, x0] + ax * img[y0 + 1, x0 + 1]
    )
    return out.astype(np.float32)


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    return gx, gy


def _entering(backward: np.ndarray) -> np.ndarray:
    h, w = backward.shape[:2]
    gx, gy = _grid((h, w))
    x = gx + backward[..., 0]
    y = gy + backward[..., 1]
    return (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)


def pan(
    frames: int = 8,
    size: tuple[int, int] = (96, 128),
    shift: tuple[float, float] = (2.0, 0.0),
    origin: tuple[float, float] = (8.0, 8.0),
    source: np.ndarray | None = None,
    fps: Fraction = Fraction(24),
) -> SyntheticClip:
    """A camera moving by ``shift = (dx, dy)`` pixels a frame over the photo.

    ``size`` is the frames' (H, W); ``origin`` the photo position of frame 0's top-left
    pixel. The default source is `photo()` (256 px on its longest side).
    """
    src = photo() if source is None else source
    gx, gy = _grid(size)
    sx, sy = shift
    out = [sample(src, gx + origin[0] + t * sx, gy + origin[1] + t * sy) for t in range(frames)]
    back = np.zeros((*size, 2), np.float32)
    back[..., 0], back[..., 1] = sx, sy
    fwd = -back
    entering = _entering(back)
    n = frames - 1
    return SyntheticClip(out, [back] * n, [fwd] * n, [entering] * n, fps)


def zoom(
    frames: int = 8,
    size: tuple[int, int] = (96, 128),
    factor: float = 1.05,
    source: np.ndarray | None = None,
    fps: Fraction = Fraction(24),
) -> SyntheticClip:
    """A camera zooming by ``factor`` a frame (> 1: in, < 1: out) about the centre of
    the view, which looks at the centre of the photo."""
    src = photo() if source is None else source
    h, w = size
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    cs = np.array([(src.shape[1] - 1) / 2, (src.shape[0] - 1) / 2])
    gx, gy = _grid(size)
    k = 1.0 / factor
    out = [sample(src, cs[0] + (gx - c[0]) * k**t, cs[1] + (gy - c[1]) * k**t) for t in range(frames)]
    rel = np.stack([gx - c[0], gy - c[1]], axis=-1)
    back = (rel * (k - 1)).astype(np.float32)
    fwd = (rel * (1 / k - 1)).astype(np.float32)
    entering = _entering(back)
    n = frames - 1
    return SyntheticClip(out, [back] * n, [fwd] * n, [entering] * n, fps)
