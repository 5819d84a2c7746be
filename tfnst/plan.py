"""The coarse-to-fine plan: which sizes a run optimizes at, and how many iterations each.

`plan` is the one place that decides it, for the library (`tfnst.Stylizer`) and for
the served graph (`tfnst.export`) alike: it is written in TensorFlow ops, so the same
function runs eagerly on a known size (Python ints come back) and inside a traced
graph on a size known only at run time (tensors come back).

The rule (Gatys et al. 2017, "Controlling Perceptual Factors", sec. 5; jcjohnson's
multires recipe): ``scales`` sizes, each ``scale_factor`` times the one before, the
last being the result's; never under `MIN_SIDE` pixels a side. Each coarser scale
runs ``coarse_iterations`` (at most ``iterations``), the full size ``iterations``.
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


def plan(config: StyleConfig, hw, iterations=None) -> tuple[Scale, ...]:
    """The scales of a run at ``hw`` (height, width), coarsest first.

    Args:
        config: the options (``scales``, ``scale_factor``, ``iterations``,
            ``coarse_iterations``).
        hw: (height, width) of the result: ints, or a tensor in a graph.
        iterations: the full-size count, overriding ``config.iterations`` (a served
            request's, a tensor in a graph); coarser counts are capped by it.

    Returns:
        One `Scale` per ``config.scales``; with Python sizes, Python ints.
    """
    full = config.iterations if iterations is None else iterations
    concrete = not isinstance(hw, tf.Tensor) or tf.executing_eagerly()
    shape = tf.cast(tf.convert_to_tensor(hw), tf.float64)
    count = config.scales
    sizes = [tf.maximum(tf.cast(tf.round(shape / config.scale_factor ** (count - 1 - k)), tf.int32), MIN_SIDE)
             for k in range(count)]
    scales = []
    for k, size in enumerate(sizes):
        if k + 1 < count:
            repeated = tf.reduce_all(tf.equal(size, sizes[k + 1]))
            n = tf.where(repeated, 0, tf.minimum(tf.cast(full, tf.int32), config.coarse_iterations_at(k)))
        else:
            n = tf.cast(full, tf.int32)
        if concrete:
            size, n = tuple(int(d) for d in size.numpy()), int(n)
        scales.append(Scale(size, n, k))
    return tuple(scales)
