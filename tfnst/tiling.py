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

import functools
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


def layout(hw: tuple[int, int], tile: int, margin_px: int) -> list[Tile]:
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
            crop = (
                max(0, top - margin_px),
                min(h, bottom + margin_px),
                max(0, left - margin_px),
                min(w, right + margin_px),
            )
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


def strategy_for(devices: int):
    """A `tf.distribute.MirroredStrategy` over the first ``devices`` GPUs (else logical
    CPUs), for `Tiled`; None for one device.

    Raises:
        TfnstError: when there are fewer devices than that.
    """
    from tfnst.errors import TfnstError

    if devices <= 1:
        return None
    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(found) < devices:
        kind = found[0].device_type if found else "CPU"
        raise TfnstError(
            f"devices {devices}: this machine has {len(found)} {kind} device{'s' if len(found) != 1 else ''}"
        )
    return tf.distribute.MirroredStrategy([d.name for d in found[:devices]])


def _assemble(parts) -> tf.Tensor:
    """One layer's features of a whole image from its tiles' interiors ([(tile, part)],
    in row-major tile order): rows of tiles concatenated, then the rows."""
    rows, current, top = [], [], None
    for tile, part in parts:
        if top is not None and tile.interior[0] != top:
            rows.append(tf.concat(current, axis=2))
            current = []
        top = tile.interior[0]
        current.append(part)
    rows.append(tf.concat(current, axis=2))
    return tf.concat(rows, axis=1)


class Tiled:
    """An objective evaluated in tiles of ``tile`` pixels a side, with the untiled
    loss and gradient (see the module's docstring): a wrapper around any
    `tfnst.objective.Objective` whose terms' sums add up.

    A tiled step runs its tiles one after another (each compiled), so that only one
    tile's activations are alive: it is not one graph (``graph_safe`` is False).

    With a ``strategy`` (a `tf.distribute.Strategy`, e.g. ``MirroredStrategy`` over
    several GPUs) the tiles are dealt round-robin to its replicas, one tile each at a
    time: the replicas' sums are added with ``strategy.reduce`` (SUM), and each
    replica's share of the gradient is added where its tile lies, as one device does
    (`spread`). The targets are read on one device.

    Raises:
        TfnstError: for a term that is not additive (the histogram loss) or stateful
            (the discriminator): they need every feature vector of a layer at once.
    """

    graph_safe = False

    def __init__(self, objective, tile: int, strategy=None):
        from tfnst.errors import TfnstError

        for name, term in objective.loss_terms.items():
            if not term.additive or term.stateful:
                what = {"hist": "the histogram loss", "style": "the discriminator"}.get(name, name)
                raise TfnstError(
                    f"{what} needs every feature vector of a layer at once; it is not "
                    "tiled (use a size that fits without tiles)"
                )
        if tile % ALIGN or tile <= 0:
            raise TfnstError(f"tile must be a positive multiple of {ALIGN}, received {tile}")
        self.inner, self.tile = objective, int(tile)
        self.strategy = strategy
        self.terms, self.loss_terms, self.regions = objective.terms, objective.loss_terms, objective.regions
        self.margin = margin([n for t in objective.loss_terms.values() for n in t.layers])
        # Tiles at the image's edges differ in shape: relaxed shapes keep that to three
        # traces per function at most (the first shape, then the height or the width
        # relaxed, then both) rather than one per shape. No autograph, as for the
        # optimizer's step (`tfnst.optimizers`): the code is graph-safe as written. Each
        # function wraps a partial: TensorFlow's "excessive retracing" warning counts
        # traces per code object, so every engine's tiles (one per scale and tile size,
        # each a graph of its own) would add up to a warning about one function.
        relaxed = dict(reduce_retracing=True, autograph=False)
        self._tile_sums = tf.function(functools.partial(self._tile_sums_impl), **relaxed)
        self._tile_gradient = tf.function(functools.partial(self._tile_gradient_impl), **relaxed)
        self._tile_features = tf.function(functools.partial(objective.features), **relaxed)

    @property
    def statistic(self):
        return self.inner.statistic

    def initial_state(self):
        return self.inner.initial_state()

    def tiles(self, hw) -> list[Tile]:
        """The tiles of an image of size ``hw``."""
        return layout(tuple(int(d) for d in hw), self.tile, self.margin)

    @staticmethod
    def _crop(image, tile: Tile):
        top, bottom, left, right = tile.crop
        return image[top:bottom, left:right]

    # -------------------------------------------------------------- reading the targets
    def whole_features(self, image, layers) -> dict[str, tf.Tensor]:
        """``layers``' features of a whole [H, W, 3] image, assembled tile by tile."""
        parts = {n: [] for n in layers}
        for tile in self.tiles(tf.shape(image)[:2]):
            feats = self._tile_features(self._crop(image, tile))
            for n in layers:
                rows, cols = slices(tile.window(), layer_stride(n), False)
                parts[n].append((tile, feats[n][:, rows, cols]))
        return {n: _assemble(parts[n]) for n in layers}

    def style_target(self, style, mask=None) -> dict:
        """The style term's target from sums over the style image's tiles."""
        from tfnst.terms import Masked

        style = tf.convert_to_tensor(style, tf.float32)
        term = self.inner.style
        hw = tf.shape(style)[:2]
        guides = None if mask is None else Masked.guides(tf.convert_to_tensor(mask, tf.float32), term.layers, hw)
        sums = None
        for tile in self.tiles(hw):
            part = term.target_sums(self._tile_features(self._crop(style, tile)), guides, tile.window())
            sums = part if sums is None else tf.nest.map_structure(tf.add, sums, part)
        return term.target_from_sums(sums)

    def targets(self, *args, **kwargs):
        return self.inner.targets(*args, reader=self, **kwargs)

    # -------------------------------------------------------------- the loss
    def __call__(self, image, targets, state=None):
        state = self.initial_state() if state is None else state
        image = tf.convert_to_tensor(image, tf.float32)
        sums = self._sums_over(image, self.tiles(tf.shape(image)[:2]), targets, state)
        return self.inner.finish(image, sums, targets, state)

    def value_and_gradient(self, image, targets, state):
        """(total, terms, new state, d total / d image) in two passes over the tiles."""
        image = tf.convert_to_tensor(image, tf.float32)
        tiles = self.tiles(tf.shape(image)[:2])
        sums = self._sums_over(image, tiles, targets, state)
        with tf.GradientTape() as tape:
            tape.watch([image, sums])
            total, terms, new_state = self.inner.finish(image, sums, targets, state)
        by_image, by_sums = tape.gradient(total, [image, sums], unconnected_gradients="zero")
        gradient = by_image
        for tile, part in self.spread(self._tile_gradient, image, tiles, targets, state, by_sums):
            gradient = add_at(gradient, part, tile)
        return total, terms, new_state, gradient

    def _sums_over(self, image, tiles, targets, state):
        sums = None
        for _, part in self.spread(self._tile_sums, image, tiles, targets, state, reduce=True):
            sums = part if sums is None else tf.nest.map_structure(tf.add, sums, part)
        return sums

    def spread(self, function, image, tiles, *args, reduce=False):
        """``function(crop, *args[:2], window, *args[2:])`` for each tile of ``image``: yields
        (tile, result) one tile at a time, or with a strategy one round of tiles at a time
        over its replicas; ``reduce``: a round's results summed by the strategy (yielded
        with the round's first tile). A last round with fewer tiles than replicas is
        filled with tiles of no interior (their sums and gradient are zero)."""
        head, tail = args[:2], args[2:]
        if self.strategy is None:
            for tile in tiles:
                yield tile, function(self._crop(image, tile), *head, tile.window(), *tail)
            return
        replicas = self.strategy.num_replicas_in_sync
        for start in range(0, len(tiles), replicas):
            round_ = tiles[start : start + replicas]
            empty = Tile(round_[0].crop, (round_[0].interior[0],) * 2 + (round_[0].interior[2],) * 2)
            dealt = round_ + [empty] * (replicas - len(round_))
            crops = self.strategy.experimental_distribute_values_from_function(
                lambda context, dealt=dealt: self._crop(image, dealt[context.replica_id_in_sync_group])
            )
            windows = self.strategy.experimental_distribute_values_from_function(
                lambda context, dealt=dealt: dealt[context.replica_id_in_sync_group].window()
            )
            results = self.strategy.run(function, args=(crops, *head, windows, *tail))
            if reduce:
                yield round_[0], self.strategy.reduce(tf.distribute.ReduceOp.SUM, results, axis=None)
            else:
                yield from zip(round_, self.strategy.experimental_local_results(results))

    def _tile_sums_impl(self, crop, targets, state, window):
        return self.inner.partial(self.inner.features(crop), targets, state, window)

    def _tile_gradient_impl(self, crop, targets, state, window, by_sums):
        """The crop's share of the gradient: of ⟨d loss / d sums, the tile's sums⟩."""
        with tf.GradientTape() as tape:
            tape.watch(crop)
            part = self.inner.partial(self.inner.features(crop), targets, state, window)
            surrogate = tf.add_n(
                [tf.reduce_sum(g * p) for g, p in zip(tf.nest.flatten(by_sums), tf.nest.flatten(part))]
            )
        return tape.gradient(surrogate, crop)
