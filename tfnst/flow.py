"""Optical flow, warping, and the reliability weights of Ruder et al.'s temporal loss.

Conventions (all of this module, and `tfnst.video_metrics`):

* A flow is float32 ``[H, W, 2]`` holding ``(dx, dy)`` in pixels, x to the right and y
  down, on the pixel grid of its *first* frame: ``optical_flow(a, b)[y, x] = (dx, dy)``
  says that the pixel ``(x, y)`` of ``a`` shows what ``b`` shows at ``(x + dx, y + dy)``,
  i.e. ``a(p) ≈ b(p + flow(p))``. This is OpenCV's convention for ``calc(a, b)``.
* ``warp(image, flow)(p) = image(p + flow(p))``, by bilinear sampling (backward
  warping), so ``warp(b, optical_flow(a, b)) ≈ a``.
* For a clip, the *backward* flow ``ŵ = optical_flow(frame[t+1], frame[t])`` lives on
  frame t+1's grid, and ``warp(x[t], ŵ)`` is frame t's (stylized) picture moved into
  frame t+1: the target of Ruder et al.'s temporal loss for frame t+1, and its
  initialization. The *forward* flow is ``w = optical_flow(frame[t], frame[t+1])``.
  (Ruder et al.'s ``backward_{t+1}_{t}.flo`` files are ŵ, and their ``reliable_{t+1}_{t}``
  weights are `consistency_weights(w, ŵ)`.)

Reliability weights (Ruder, Dosovitskiy & Brox, "Artistic Style Transfer for Videos",
GCPR 2016, section "Temporal consistency loss"; IJCV 2018 the same): with
``w̃(p) = w(p + ŵ(p))``, the forward flow warped to frame t+1, a pixel p of frame t+1 is

* disoccluded (newly visible) where ``|w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5``,
* on a motion boundary where ``|∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002`` (``ŵ = (û, v̂)``),

and its weight ``c`` is 0 there and 1 elsewhere. As in the authors' consistencyChecker
(github.com/manuelruder/artistic-videos): gradients are central differences
``(f[i+1] - f[i-1]) / 2`` with the border sample repeated; a pixel whose ``p + ŵ(p)``
falls outside frame t (it came from outside the view) also gets 0. Two differences from
that program: its ``>=`` in the first test is the paper's ``>`` here, and a position on
the last row or column counts as inside (the program's ``x + 1 >= width`` marks the last
column of a still clip unreliable); and it blurs the weights (Gaussian, sigma 0.8) into
[0, 1] for its PGM files, where these stay the paper's {0, 1}.

OpenCV (flow) comes from the ``video`` extra; warping is TensorFlow (gather-based, graph-
safe, differentiable in the image and the flow); the weights are numpy.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.video_deps import require_cv2

FLOW_METHODS = ("dis", "farneback")


# --------------------------------------------------------------------------- flow


def _gray8(frame) -> np.ndarray:
    a = np.asarray(frame.numpy() if hasattr(frame, "numpy") else frame)
    if a.ndim == 3 and a.shape[-1] == 3:
        if a.dtype != np.uint8:
            a = np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0
        # ITU-R BT.601 luma, as cv2.cvtColor(..., COLOR_RGB2GRAY).
        a = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif a.ndim == 2:
        a = a.astype(np.float32) * (255.0 if a.dtype != np.uint8 else 1.0)
    else:
        raise TfnstError(f"optical flow needs [H, W, 3] or [H, W] frames, got {a.shape}")
    return np.round(np.clip(a, 0, 255)).astype(np.uint8)


_DIS = {}


def optical_flow(a, b, method: str = "dis") -> np.ndarray:
    """The flow from frame ``a`` to frame ``b``: float32 [H, W, 2], ``a(p) ≈ b(p + flow(p))``.

    ``a`` and ``b`` are RGB float [H, W, 3] in [0, 1] (or uint8, or grayscale [H, W]).
    ``method``: ``"dis"`` (OpenCV's DIS flow, preset MEDIUM: Kroeger et al., ECCV 2016)
    or ``"farneback"`` (Farnebäck 2003, pyramid of 5 levels at 0.5, window 15).
    """
    cv2 = require_cv2()
    g0, g1 = _gray8(a), _gray8(b)
    if g0.shape != g1.shape:
        raise TfnstError(f"optical flow needs two frames of one size, got {g0.shape} and {g1.shape}")
    if method == "dis":
        dis = _DIS.get("medium")
        if dis is None:
            dis = _DIS["medium"] = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(g0, g1, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(
            g0, g1, None, pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
        )
    else:
        raise TfnstError(f"unknown optical flow method {method!r}; use one of {', '.join(FLOW_METHODS)}")
    return np.asarray(flow, np.float32)


def flow_pair(a, b, method: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    """``(forward, backward)`` = ``(optical_flow(a, b), optical_flow(b, a))``."""
    return optical_flow(a, b, method), optical_flow(b, a, method)


# --------------------------------------------------------------------------- warping


def warp(image, flow, fill: float | None = None) -> tf.Tensor:
    """``out(p) = image(p + flow(p))`` by bilinear interpolation, in TensorFlow.

    ``image`` is [H, W, C] or [B, H, W, C]; ``flow`` is [H, W, 2] or [B, H, W, 2] of
    ``(dx, dy)`` (see the module notes), on the output's grid, which has the flow's
    height and width (usually the image's). A position outside the image takes the
    nearest border pixel (``fill=None``) or the value ``fill`` (exactly outside
    ``[0, W-1] x [0, H-1]``; inside, the four neighbours are always in the image).
    Plain TF ops (floor, gather, arithmetic): runs in graphs, on any device, and has
    gradients with respect to the image and the flow.
    """
    image = tf.convert_to_tensor(image)
    dtype = image.dtype if image.dtype.is_floating else tf.float32
    image = tf.cast(image, dtype)
    flow = tf.cast(tf.convert_to_tensor(flow), dtype)
    single = image.shape.rank == 3
    if single:
        image = image[None]
    if flow.shape.rank == 3:
        flow = flow[None]
    shape = tf.shape(image)
    batch, h, w, c = shape[0], shape[1], shape[2], shape[3]
    flow = tf.broadcast_to(flow, tf.stack([batch, tf.shape(flow)[1], tf.shape(flow)[2], 2]))
    out_h, out_w = tf.shape(flow)[1], tf.shape(flow)[2]

    gy, gx = tf.meshgrid(tf.range(out_h), tf.range(out_w), indexing="ij")
    x = tf.cast(gx, dtype)[None] + flow[..., 0]
    y = tf.cast(gy, dtype)[None] + flow[..., 1]
    wmax = tf.cast(w - 1, dtype)
    hmax = tf.cast(h - 1, dtype)
    xc = tf.clip_by_value(x, 0.0, wmax)
    yc = tf.clip_by_value(y, 0.0, hmax)
    x0 = tf.floor(xc)
    y0 = tf.floor(yc)
    ax = (xc - x0)[..., None]  # weight of the right neighbour
    ay = (yc - y0)[..., None]  # weight of the lower one
    x0i = tf.cast(x0, tf.int32)
    y0i = tf.cast(y0, tf.int32)
    x1i = tf.minimum(x0i + 1, w - 1)
    y1i = tf.minimum(y0i + 1, h - 1)

    flat = tf.reshape(image, tf.stack([batch * h * w, c]))
    base = (tf.range(batch) * h * w)[:, None, None]

    def at(yi, xi):
        return tf.gather(flat, base + yi * w + xi)

    top = at(y0i, x0i) * (1.0 - ax) + at(y0i, x1i) * ax
    bottom = at(y1i, x0i) * (1.0 - ax) + at(y1i, x1i) * ax
    out = top * (1.0 - ay) + bottom * ay
    if fill is not None:
        inside = (x >= 0.0) & (x <= wmax) & (y >= 0.0) & (y <= hmax)
        out = tf.where(inside[..., None], out, tf.cast(fill, dtype))
    return out[0] if single else out


# --------------------------------------------------------------------------- reliability


def _bilinear_np(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample ``field`` [H, W, C] at positions inside the image (clipped), bilinearly."""
    h, w = field.shape[:2]
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    ax = (x - x0)[..., None]
    ay = (y - y0)[..., None]
    top = field[y0, x0] * (1 - ax) + field[y0, x1] * ax
    bottom = field[y1, x0] * (1 - ax) + field[y1, x1] * ax
    return top * (1 - ay) + bottom * ay


def _central_gradients(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d/dx and d/dy of [H, W] by ``(f[i+1] - f[i-1]) / 2``, the border sample repeated."""
    p = np.pad(f, 1, mode="edge")
    return (p[1:-1, 2:] - p[1:-1, :-2]) / 2.0, (p[2:, 1:-1] - p[:-2, 1:-1]) / 2.0


def disocclusions(forward, backward) -> np.ndarray:
    """Bool [H, W] on frame t+1's grid: Ruder et al.'s forward-backward test fails, or
    the pixel came from outside frame t. ``forward`` = w (t → t+1, on frame t's grid),
    ``backward`` = ŵ (t+1 → t, on frame t+1's grid)."""
    w = np.asarray(forward, np.float64)
    wb = np.asarray(backward, np.float64)
    if w.shape != wb.shape or w.ndim != 3 or w.shape[-1] != 2:
        raise TfnstError(f"forward and backward flows must both be [H, W, 2], got {w.shape} and {wb.shape}")
    h, width = wb.shape[:2]
    gy, gx = np.mgrid[0:h, 0:width].astype(np.float64)
    x = gx + wb[..., 0]
    y = gy + wb[..., 1]
    outside = (x < 0) | (x > width - 1) | (y < 0) | (y > h - 1)
    w_tilde = _bilinear_np(w, x, y)
    lhs = np.sum((w_tilde + wb) ** 2, axis=-1)
    rhs = 0.01 * (np.sum(w_tilde**2, axis=-1) + np.sum(wb**2, axis=-1)) + 0.5
    return outside | (lhs > rhs)


def motion_boundaries(backward) -> np.ndarray:
    """Bool [H, W]: ``|∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002`` for the backward flow ŵ = (û, v̂)."""
    wb = np.asarray(backward, np.float64)
    ux, uy = _central_gradients(wb[..., 0])
    vx, vy = _central_gradients(wb[..., 1])
    return ux**2 + uy**2 + vx**2 + vy**2 > 0.01 * np.sum(wb**2, axis=-1) + 0.002


def consistency_weights(forward, backward) -> np.ndarray:
    """Ruder et al.'s per-pixel weights ``c`` for frame t+1: float32 [H, W] in {0, 1},
    0 at disocclusions (and pixels from outside the view) and motion boundaries."""
    bad = disocclusions(forward, backward) | motion_boundaries(backward)
    return (~bad).astype(np.float32)


def long_term_weights(weights: list) -> list[np.ndarray]:
    """Ruder et al.'s long-term weights (GCPR 2016, "Long-term consistency"): given the
    short-term weights ``c[j]`` of frame i against the frames i - j (closest first),
    ``c_long[j] = max(c[j] - sum(c[k] for closer frames k), 0)``: each pixel is tied to
    the closest earlier frame where it is visible, and to no other."""
    out, seen = [], None
    for c in weights:
        c = np.asarray(c, np.float32)
        out.append(c if seen is None else np.maximum(c - seen, 0.0))
        seen = c.copy() if seen is None else seen + c
    return out
