"""Exact tiling: an image of any size in bounded memory, with the untiled result.

Every term of the objective is a sum over feature positions of something that depends
on a position's own features, or a function of such sums (Gram, mean and covariance
statistics, the content loss; `tfnst.objective.Objective.partial`). VGG19's features
at a position depend only on the pixels within its receptive field, so a tile cut with
a margin of that radius (`margin`), its offsets aligned to the deepest pooling stride
(16), has interior features equal to the whole image's. Hence, per iteration:

1. for each tile, the sums over its interior (no gradient); they add up to the sums of
   the whole image, and `finish` turns them into the loss;
2. the loss's gradient with respect to the sums (small: C x C per layer), then for each
   tile the gradient of ⟨that, the tile's sums⟩ with respect to the tile's pixels:
   its exact share of the image's gradient, added in where the tile lies.

Memory is that of one tile's forward and backward pass plus whole-image buffers of a
few floats per pixel; compute is about 1.3x the untiled (the first pass) plus the
margins' overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from tfnst.vgg_layers import CONV_LAYERS, layer_depth, layer_stride

ALIGN = 16  # VGG19's deepest pooling stride: tile offsets are multiples of it


def receptive_radius(layer: str) -> int:
    """How far (in pixels) the features at ``layer`` see: each 3x3 convolution adds its
    stride, each 2x2 pooling its input stride."""
    radius, stride = 0, 1
    for name in CONV_LAYERS[: layer_depth(layer)]:
        if stride != layer_stride(name):  # a pooling came before this block
            radius += stride
            stride = layer_stride(name)
        radius += stride
    return radius


def margin(layers) -> int:
    """The margin around a tile's interior, for the deepest of ``layers``, in pixels,
    rounded up to `ALIGN` (block5_conv1: a radius of 85, a margin of 96)."""
    deepest = max(layers, key=layer_depth)
    return ALIGN * math.ceil(receptive_radius(deepest) / ALIGN)


@dataclass(frozen=True)
class Tile:
    """A tile: the crop of the image it reads, and the interior whose features it owns
    (both in image pixels, [start, end))."""

    crop: tuple[int, int, int, int]  # top, bottom, left, right
    interior: tuple[int, int, int, int]

    def window(self) -> tf.Tensor:
        """What `tfnst.objective` slices features with: the interior relative to the
        crop, and the crop's origin in the image (int32 [6])."""
        (ct, _, cl, _), (it, ib, il, ir) = self.crop, self.interior
        return tf.constant([it - ct, ib - ct, il - cl, ir - cl, ct, cl], tf.int32)


def plan(hw: tuple[int, int], tile: int, margin_px: int) -> list[Tile]:
    """Tiles covering an image of ``hw`` (H, W): interiors of ``tile`` pixels (a multiple
    of `ALIGN`; the last row and column take what is left), crops ``margin_px`` wider on
    every side that is not the image's edge."""
    if tile % ALIGN or tile <= 0:
        raise ValueError(f"tile must be a positive multiple of {ALIGN}, not {tile}")
    h, w = hw
    tiles = []
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(h, top + tile), min(w, left + tile)
            crop = (max(0, top - margin_px), min(h, bottom + margin_px),
                    max(0, left - margin_px), min(w, right + margin_px))
            tiles.append(Tile(crop, (top, bottom, left, right)))
    return tiles


def slices(window: tf.Tensor, stride: int, full_image: bool):
    """Row and column slices of a layer (of ``stride``) for a tile's interior: in the
    crop's features, or with ``full_image`` in the whole image's (a target's)."""
    rows, cols = (window[0], window[1]), (window[2], window[3])
    if full_image:
        rows, cols = (window[4] + rows[0], window[4] + rows[1]), (window[5] + cols[0], window[5] + cols[1])
    return slice(rows[0] // stride, rows[1] // stride), slice(cols[0] // stride, cols[1] // stride)


def add_at(total: tf.Tensor, part: tf.Tensor, tile: Tile) -> tf.Tensor:
    """``total`` ([H, W, C]) with ``part`` (the crop's shape) added where the crop lies."""
    top, bottom, left, right = tile.crop
    h, w = total.shape[0], total.shape[1]
    return total + tf.pad(part, [[top, h - bottom], [left, w - right], [0, 0]])
