"""The pieces of Ruder et al.'s temporal consistency that do not depend on the optimizer.

Ruder, Dosovitskiy & Brox, "Artistic Style Transfer for Videos" (GCPR 2016; IJCV 2018):
frame i is optimized starting from frame i-1's result warped into it, with a loss
that ties it to that warped result where the flow is reliable::

    L_temporal(x, ω, c) = 1/D sum_k c_k (x_k - ω_k)²        (D = H W C)

``ω`` the earlier stylized frame warped into frame i by the content's backward flow,
``c`` the reliability weights (`tfnst.flow.consistency_weights`, broadcast over the
colour channels). The long-term variant sums the loss over several earlier frames
i - j (j in J, e.g. {1, 2, 4}), each with the long-term weights of
`tfnst.flow.long_term_weights`, so that a pixel is tied only to the closest earlier
frame where it was visible.

Frames are float [H, W, 3] in [0, 1] (tfnst's images), so for the same images this loss
is 255² = 65025 times smaller than in Ruder et al.'s 0-255 (Caffe) units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.flow import consistency_weights, flow_pair, long_term_weights, warp
from tfnst.terms import Temporal


@dataclass
class EarlierFrame:
    """One earlier frame's pull on frame i: its stylized result warped into frame i
    (float32 [H, W, 3]) and Ruder et al.'s per-pixel reliability c (float32 [H, W], in
    [0, 1]); ``offset`` is j for the earlier frame i - j."""

    warped: np.ndarray
    reliability: np.ndarray
    offset: int = 1


def temporal_target(
    content_prev, content, stylized_prev, *, method: str = "dis", flow: Callable | None = None, offset: int = 1
) -> EarlierFrame:
    """Warp ``stylized_prev`` (the result for the earlier content frame ``content_prev``)
    into ``content``'s frame, with Ruder et al.'s weights. The flow is OpenCV's
    (``method``), or ``flow(a, b)`` (from a to b) if given."""
    if flow is None:
        forward, backward = flow_pair(content_prev, content, method)
    else:
        forward, backward = flow(content_prev, content), flow(content, content_prev)
    stylized_prev = np.asarray(stylized_prev, np.float32)
    if stylized_prev.shape[:2] != backward.shape[:2]:
        raise TfnstError(
            f"the stylized frame is {stylized_prev.shape[:2]}, the content "
            f"{backward.shape[:2]}: resize one to the other first"
        )
    warped = warp(stylized_prev, backward).numpy()
    return EarlierFrame(warped, consistency_weights(forward, backward), offset)


def temporal_targets(
    content, earlier: Sequence[tuple[int, object, object]], *, method: str = "dis", flow: Callable | None = None
) -> list[EarlierFrame]:
    """The long-term targets of frame ``content``: ``earlier`` holds
    ``(j, content[i-j], stylized[i-j])``, closest first (j ascending); the weights
    are the long-term ones (a single earlier frame keeps its short-term weights)."""
    offsets = [j for j, _, _ in earlier]
    if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
        raise TfnstError(f"earlier frames must be closest first and distinct, got offsets {offsets}")
    targets = [temporal_target(c, content, s, method=method, flow=flow, offset=j) for j, c, s in earlier]
    for target, reliability in zip(targets, long_term_weights([t.reliability for t in targets]), strict=True):
        target.reliability = reliability
    return targets


def temporal_loss(image, warped, reliability) -> tf.Tensor:
    """``1/D sum_k c_k (x_k - ω_k)²`` (D = H W C): ``image`` [H, W, C] or [1, H, W, C],
    ``warped`` like it, ``reliability`` (c) [H, W]. Differentiable in ``image``; the one
    implementation is `tfnst.terms.Temporal`'s."""
    image = tf.convert_to_tensor(image)
    batch = image if image.shape.rank == 4 else image[None]
    warped = tf.reshape(tf.convert_to_tensor(warped, tf.float32), tf.shape(batch)[1:])
    reliability = tf.reshape(tf.convert_to_tensor(reliability, tf.float32), tf.shape(batch)[1:3])
    return Temporal().value({}, Temporal.target(warped, reliability), (), batch)[0][0]


def as_term_target(targets: Sequence[EarlierFrame]):
    """Earlier frames' targets (closest first) as the `tfnst.terms.Temporal` term's:
    ``Stylizer.run(temporal=...)`` takes it."""
    return Temporal.target(np.stack([t.warped for t in targets]), np.stack([t.reliability for t in targets]))
