"""Resizing: the one resampling op of the library and the served graph.

Both paths call `resize`, and both compute target sizes with the same arithmetic
(`fit_size` in Python, `fit_size_tensor` in a graph: float64, round half to even), so a
SavedModel resizes an image exactly as `tfnst.Stylizer` does.
"""

from __future__ import annotations

import tensorflow as tf

# Lanczos-3, antialiased when shrinking: the filter PIL and most image tools use for
# photographs (sharp, little aliasing). It overshoots at edges, so images are clipped.
METHOD = "lanczos3"


def fit_size(shape: tuple[int, int], longest: int, shortest: int = 0) -> tuple[int, int]:
    """(H, W) scaled so that the longest side is ``longest``, keeping the aspect ratio,
    or larger where that would leave the shortest side under ``shortest``.

    Args:
        shape: the (H, W) of the image.
        longest: the longest side wanted, in pixels.
        shortest: the least the shortest side may have (0: no such bound).

    Returns:
        (H, W), each at least 1.
    """
    h, w = (int(d) for d in shape)
    scale = max(longest / max(h, w), shortest / min(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def fit_size_tensor(shape: tf.Tensor, longest, shortest: int = 0) -> tf.Tensor:
    """`fit_size` in graph ops, with the same float64 arithmetic and rounding.

    Args:
        shape: int32 [2] (H, W).
        longest: the longest side wanted (int or scalar tensor).
        shortest: the least the shortest side may have (0: no such bound).

    Returns:
        int32 [2].
    """
    hw = tf.cast(shape, tf.float64)
    scale = tf.maximum(
        tf.cast(longest, tf.float64) / tf.reduce_max(hw), tf.cast(shortest, tf.float64) / tf.reduce_min(hw)
    )
    return tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), 1)


def resize(image, hw, clip: bool = True) -> tf.Tensor:
    """Resample ``image`` ([H, W, C] or [B, H, W, C]) to ``hw`` (H, W).

    Args:
        image: an array or tensor; float values (images in [0, 1]).
        hw: (H, W) as ints or an int32 tensor.
        clip: clip to [0, 1] (images); False for other fields (e.g. Adam's moments).

    Returns:
        A float32 tensor. An image already of that size comes back unchanged, bit for bit.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    hw = tf.convert_to_tensor(hw, tf.int32)
    if image.shape.rank is not None and image.shape[-3:-1].is_fully_defined() and tf.get_static_value(hw) is not None:
        if tuple(image.shape[-3:-1]) == tuple(tf.get_static_value(hw)):
            return image
        return _resample(image, hw, clip)
    same = tf.reduce_all(tf.equal(tf.shape(image)[-3:-1], hw))
    return tf.cond(same, lambda: image, lambda: _resample(image, hw, clip))


def _resample(image, size, clip):
    out = tf.image.resize(image, size, method=METHOD, antialias=True)
    return tf.clip_by_value(out, 0.0, 1.0) if clip else out


def fit_longest(image, longest) -> tf.Tensor:
    """``image`` [H, W, C] resized so that its longest side is ``longest`` (graph-safe)."""
    image = tf.convert_to_tensor(image, tf.float32)
    return resize(image, fit_size_tensor(tf.shape(image)[:2], longest))
