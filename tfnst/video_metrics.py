"""Temporal consistency of a stylized clip: the warping error of Lai et al.

Lai, Huang, Wang, Shechtman, Yumer & Yang, "Learning Blind Video Temporal Consistency"
(ECCV 2018), their E_warp: for each pair of consecutive frames, the mean squared
difference between one stylized frame and the other warped onto it by the optical flow
of the *content* (input) frames, over the pixels the flow marks non-occluded; then the
mean over the clip's pairs::

    E_pair(t) = sum_p c(p) |O[t+1](p) - warp(O[t], ŵ)(p)|² / (3 sum_p c(p))
    E_warp    = mean over t of E_pair(t)

Here, as in Ruder et al.'s temporal loss, frame t is warped into frame t+1 by the
backward flow ``ŵ = optical_flow(I[t+1], I[t])`` of the content frames I, and ``c`` is
`tfnst.flow.consistency_weights` on frame t+1's grid. (Lai et al.'s evaluation script
warps frame t+1 back onto frame t by the forward flow instead, with the occlusion mask on
frame t's grid; the two measure the same thing on opposite grids.) The squared
difference is averaged over the colour channels as well as the pixels, on frames in
[0, 1], as their script does; a pair whose mask is empty counts every pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from tfnst.errors import TfnstError
from tfnst.flow import consistency_weights, flow_pair, warp


def pair_warping_error(stylized_prev, stylized_next, backward, weights) -> float:
    """E_pair for one pair: frames [H, W, 3], the backward flow [H, W, 2] (next → prev,
    on the next frame's grid) and the weights c [H, W] (1: compare this pixel)."""
    prev = np.asarray(stylized_prev, np.float32)
    nxt = np.asarray(stylized_next, np.float32)
    c = np.asarray(weights, np.float64)
    if prev.shape != nxt.shape or c.shape != nxt.shape[:2]:
        raise TfnstError(f"frames {prev.shape}, {nxt.shape} and weights {c.shape} do not match")
    warped = warp(prev, backward).numpy()
    sq = np.square(nxt.astype(np.float64) - warped.astype(np.float64))
    n = c.sum() * sq.shape[-1]
    if n == 0:
        return float(sq.mean())
    return float((c[..., None] * sq).sum() / n)


@dataclass
class WarpingError:
    """The clip's warping error ``mean`` and each pair's, in order (``pairs[t]`` for
    frames t and t+1), with the share of pixels compared in each pair."""

    mean: float
    pairs: list[float]
    reliable: list[float]


def warping_error(
    stylized: Iterable, content: Iterable, *, method: str = "dis", flow: Callable | None = None
) -> WarpingError:
    """Lai et al.'s warping error of a stylized clip, with the flow of its content clip.

    ``stylized`` and ``content`` are iterables of frames [H, W, 3] in [0, 1] (generators
    are fine: two frames of each are held at a time). The flow is OpenCV's (``method``)
    unless ``flow(a, b)`` is given (it returns the flow from a to b, [H, W, 2]).
    """
    pairs, reliable = [], []
    prev_s = prev_c = None
    n = 0
    for s, c in zip(stylized, content, strict=True):
        s = np.asarray(s, np.float32)
        c = np.asarray(c, np.float32)
        if s.shape[:2] != c.shape[:2]:
            raise TfnstError(f"frame {n}: stylized {s.shape[:2]} and content {c.shape[:2]} differ in size")
        if prev_s is not None:
            if flow is None:
                forward, backward = flow_pair(prev_c, c, method)
            else:
                forward, backward = flow(prev_c, c), flow(c, prev_c)
            weights = consistency_weights(forward, backward)
            pairs.append(pair_warping_error(prev_s, s, backward, weights))
            reliable.append(float(weights.mean()))
        prev_s, prev_c = s, c
        n += 1
    if not pairs:
        raise TfnstError(f"the warping error needs at least two frames, got {n}")
    return WarpingError(float(np.mean(pairs)), pairs, reliable)
