"""The coarse-to-fine plan: which sizes a run optimizes at, and how many iterations each.

`plan` is the one place that decides it, for the library (`tfnst.Stylizer`) and for
the served graph (`tfnst.export`) alike: it is written in TensorFlow ops, so the same
function runs eagerly on a known size (Python ints come back) and inside a traced
graph on a size known only at run time (tensors come back).

The rule (Gatys et al. 2017, "Controlling Perceptual Factors", sec. 5; jcjohnson's
multires recipe): ``scales`` sizes, each ``scale_factor`` times the one before, the
last being the result's; never under `MIN_SIDE` pixels a side. Each coarser scale
runs ``coarse_iterations`` (`StyleConfig.coarse_iterations_at`), the full size
``iterations``; a served request may cap them all (a latency knob).
The first scale starts from the init image; each later one from the one before,
upsampled with the content's detail (`tfnst.engine.Engine.warm_start`). A size that
the next scale repeats (small images clamped to `MIN_SIDE`) runs no iterations:
the later of the repeats runs, so a run never optimizes the same size twice.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from tfnst.config import StyleConfig
from tfnst.vgg_layers import MIN_SIDE


class Scale(NamedTuple):
    """One step of the plan."""

    hw: object  # (height, width): a tuple of ints, or an int32 tensor [2] in a graph
    iterations: object  # an int, or an int32 scalar tensor in a graph
    index: int  # 0 = the coarsest


def plan(config: StyleConfig, hw, cap=None) -> tuple[Scale, ...]:
    """The scales of a run at ``hw`` (height, width), coarsest first.

    Args:
        config: the options (``scales``, ``scale_factor``, ``iterations``,
            ``coarse_iterations``).
        hw: (height, width) of the result: ints, or a tensor in a graph.
        cap: the most iterations any scale runs (a served request's, a tensor in a
            graph), or None.

    Returns:
        One `Scale` per ``config.scales``; with Python sizes, Python ints.
    """
    concrete = not isinstance(hw, tf.Tensor) or tf.executing_eagerly()
    shape = tf.cast(tf.convert_to_tensor(hw), tf.float64)
    count = config.scales
    sizes = [
        tf.maximum(tf.cast(tf.round(shape / config.scale_factor ** (count - 1 - k)), tf.int32), MIN_SIDE)
        for k in range(count)
    ]
    scales = []
    for k, size in enumerate(sizes):
        n = tf.constant(config.iterations if k + 1 == count else config.coarse_iterations_at(k), tf.int32)
        if cap is not None:
            n = tf.minimum(n, tf.cast(cap, tf.int32))
        if k + 1 < count:
            n = tf.where(tf.reduce_all(tf.equal(size, sizes[k + 1])), 0, n)
        if concrete:
            size, n = tuple(int(d) for d in size.numpy()), int(n)
        scales.append(Scale(size, n, k))
    return tuple(scales)


def most_iterations(config: StyleConfig) -> int:
    """The most iterations any scale of ``config`` runs: what a served request may cap."""
    coarse = [config.coarse_iterations_at(k) for k in range(config.scales - 1)]
    return max([config.iterations, *coarse])
