"""The loss of one image against targets computed once: α·content + β·style + γ·TV
(+ histogram, Laplacian), Gatys et al. eq. 7 with the extensions' terms.

Pure: `Objective.__call__(image, targets, state) -> (total, terms, state)`. The loss
weights travel with the targets and the style statistic's state (the discriminator's)
is an argument, so the same traced graph serves any weights and concurrent requests.

In two steps, so that an image can be processed in tiles (`tfnst.tiling`): `partial`
sums what the terms need over a set of feature positions, and `finish` turns the sums
of all positions into the terms (TV and the Laplacian, pixel-level and cheap, come from
the whole image there). The untiled loss is ``finish(partial(features(image)))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from tfnst import tiling
from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.losses import _EPS, histogram_loss, histogram_target, laplacian, laplacian_loss, \
    normalized_layer_weights, style_statistic, total_variation_loss
from tfnst.vgg_layers import LAYER_CHANNELS, layer_stride

Targets = Mapping[str, object]  # term -> {layer or pool size: target}; "weights" -> [len(TERMS)]
TERMS = ("content", "style", "tv", "hist", "lap")


def blend_weights(count: int, blend: Sequence[float] | None) -> list[float]:
    """Weights for ``count`` styles, normalised to sum to 1 (equal when ``blend`` is None).

    Raises:
        TfnstError: when the number of weights is not ``count``.
    """
    weights = [1.0] * count if blend is None else [float(w) for w in blend]
    if len(weights) != count:
        raise TfnstError(f"style_blend has {len(weights)} weights for {count} style images")
    return [w / sum(weights) for w in weights]


def feature_layers(config: StyleConfig, has_content: bool = True) -> tuple[str, ...]:
    """Every VGG19 layer an objective of ``config`` reads (style, content, histogram)."""
    layers = config.style_layers
    if has_content and config.content_weight > 0:
        layers += config.content_layers
    if config.hist_weight > 0:
        layers += config.hist_layers
    return tuple(dict.fromkeys(layers))


def loss_weights(config: StyleConfig) -> tf.Tensor:
    """The terms' weights, in `TERMS` order."""
    return tf.constant([config.content_weight, config.style_weight, config.tv_weight,
                        config.hist_weight, config.lap_weight], tf.float32)


def layer_mask(mask: tf.Tensor, layer: str, shape) -> tf.Tensor:
    """A region's mask ([H, W] in [0, 1]) at a layer's resolution: averaged over each
    position's stride x stride block (Gatys et al. 2017 propagate guidance channels to
    each layer; averaging is their simple variant), cropped to the features' [h, w].
    Returns [1, h, w]."""
    s = layer_stride(layer)
    pooled = tf.nn.avg_pool2d(mask[None, :, :, None], s, s, "VALID") if s > 1 else mask[None, :, :, None]
    return pooled[:, : shape[0], : shape[1], 0]


def _layer_size(hw, layer: str):
    """A layer's [h, w] for an image of ``hw``: each pooling floors."""
    return (hw[0] // layer_stride(layer), hw[1] // layer_stride(layer))


def _assemble(parts, stride: int) -> tf.Tensor:
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


def _window(tensor: tf.Tensor, window, layer: str, full_image: bool = False) -> tf.Tensor:
    """``tensor`` ([B, h, w, …], a layer's features) cut to a tile's interior: ``window``
    is a `tfnst.tiling.Tile.window` (None: all). ``full_image``: the tensor covers the
    whole image (a target), not the tile's crop."""
    if window is None:
        return tensor
    rows, cols = tiling.slices(window, layer_stride(layer), full_image)
    return tensor[:, rows, cols]


def value_and_gradient_by_autodiff(objective, image, targets, state):
    """(total, terms, new state, d total / d image) of ``objective`` by one forward and
    backward pass: what an untiled objective's `value_and_gradient` is."""
    with tf.GradientTape() as tape:
        tape.watch(image)
        total, terms, new_state = objective(image, targets, state)
    return total, terms, new_state, tape.gradient(total, image)


class Objective:
    """The loss of one image against its targets, over a feature extractor.

    Which terms exist is fixed at construction (they shape the graph); their weights
    are part of the targets, so new weights reuse compiled steps.

    Args:
        config: the options (layers, statistic, which terms are on).
        features: maps [B, H, W, 3] images to ``{layer: features}`` (a `VGG19`) and has
            at least `feature_layers(config, has_content)`.
        has_content: False for texture synthesis (no content or Laplacian terms).
        regions: spatial control (Gatys, Ecker, Bethge, Hertzmann & Shechtman,
            "Controlling Perceptual Factors in Neural Style Transfer", CVPR 2017): the
            number of masked regions, style i matched in region i; 0 = none.
        tile: evaluate in tiles of this many pixels a side (a multiple of 16), in
            bounded memory, with the untiled result (`tfnst.tiling`); None = whole.
    """

    def __init__(self, config: StyleConfig, features, *, has_content: bool = True, regions: int = 0,
                 tile: int | None = None):
        self.config = config
        self.features_of = features
        self.regions = int(regions)
        self.tile = tile
        # A tiled step runs its tiles one after another (compiled each), so that only one
        # tile's activations are alive; it is not one graph.
        self.graph_safe = tile is None
        self.statistic = style_statistic(config.style_statistic)
        self.style_weights = normalized_layer_weights(config.style_layers, config.style_layer_weights)
        self.use_content = has_content and config.content_weight > 0
        self.use_hist = config.hist_weight > 0
        self.use_lap = has_content and config.lap_weight > 0
        self.terms = tuple(t for t, on in zip(TERMS, (self.use_content, True, True, self.use_hist,
                                                        self.use_lap)) if on)
        if self.statistic.stateful:
            self.terms += ("disc_acc",)
        if tile is not None:
            for name, on in (("the histogram loss", self.use_hist), ("the discriminator", self.statistic.stateful)):
                if on:
                    raise TfnstError(f"{name} needs every feature vector of a layer at once; it is not "
                                     "tiled (use a size that fits without tiles)")
            self.margin = tiling.margin(feature_layers(config, has_content))
            # Tiles at the image's edges differ in shape: relaxed shapes keep that to two
            # traces per function rather than one per shape.
            relaxed = dict(reduce_retracing=True)
            self._tile_sums = tf.function(self._tile_sums_impl, **relaxed)
            self._tile_gradient = tf.function(self._tile_gradient_impl, **relaxed)
            self._tile_features = tf.function(lambda crop: self.features(crop), **relaxed)

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Features of one [H, W, 3] image (batch of 1)."""
        return self.features_of(tf.convert_to_tensor(image, tf.float32)[None])

    def tiles(self, hw) -> list:
        """The tiles of an image of size ``hw`` ([None] when untiled)."""
        return tiling.plan(tuple(int(d) for d in hw), self.tile, self.margin) if self.tile else [None]

    def _crop(self, image, tile):
        if tile is None:
            return image
        top, bottom, left, right = tile.crop
        return image[top:bottom, left:right]

    def whole_features(self, image, layers) -> dict[str, tf.Tensor]:
        """``layers``' features of a whole [H, W, 3] image, tile by tile when tiled."""
        if not self.tile:
            feats = self.features(image)
            return {n: feats[n] for n in layers}
        parts = {n: [] for n in layers}
        for tile in self.tiles(tf.shape(image)[:2]):
            feats = self._tile_features(self._crop(image, tile))
            for n in layers:
                parts[n].append((tile, _window(feats[n], tile.window(), n)))
        return {n: _assemble(parts[n], layer_stride(n)) for n in layers}

    def style_targets(self, style, mask=None) -> dict:
        """A style image's targets; ``mask`` ([H, W]) selects the part of it to take."""
        style = tf.convert_to_tensor(style, tf.float32)
        mask = None if mask is None else tf.convert_to_tensor(mask, tf.float32)
        if self.tile:  # the statistic from sums over the style's tiles
            sums = None
            for tile in self.tiles(tf.shape(style)[:2]):
                feats = self._tile_features(self._crop(style, tile))
                window = tile.window()
                part = {n: self.statistic.sums(
                    _window(feats[n], window, n),
                    None if mask is None else _window(layer_mask(mask, n, _layer_size(tf.shape(style)[:2], n))[..., None],
                                                      window, n, True)[..., 0])
                    for n in self.style_weights}
                sums = part if sums is None else tf.nest.map_structure(tf.add, sums, part)
            return {"style": {n: self.statistic.from_sums(sums[n]) for n in self.style_weights}}
        feats = self.features(style)
        weights = {n: None if mask is None else layer_mask(mask, n, tf.shape(feats[n])[1:3])
                   for n in self.style_weights}
        targets = {"style": {n: self.statistic.target(feats[n], weights[n]) for n in self.style_weights}}
        if self.use_hist:
            targets["hist"] = {n: histogram_target(feats[n]) for n in self.config.hist_layers}
        return targets

    def targets(self, content, styles: Sequence, blend: Sequence[float] | None = None,
                weights: tf.Tensor | None = None, masks: Sequence | None = None,
                style_masks: Sequence | None = None) -> Targets:
        """Content features, style statistics and loss weights, computed once (graph-safe).

        Args:
            content: [H, W, 3] in [0, 1], or None for a texture.
            styles: style images [H_i, W_i, 3]; without masks several are blended with
                ``blend`` (normalised; equal when None) by their statistic's `blend`.
            weights: the terms' weights in `TERMS` order; the config's when None.
            masks: with regions, one [H, W] mask in [0, 1] per style, at the result's
                size: where that style applies.
            style_masks: with regions, optionally one [H_i, W_i] mask per style image:
                which part of it to take.
        """
        style_masks = list(style_masks) if style_masks is not None else [None] * len(styles)
        per_style = [self.style_targets(s, m) for s, m in zip(styles, style_masks)]
        if self.regions:
            targets = {"style": {n: [t["style"][n] for t in per_style] for n in self.style_weights}}
            targets.update(self._mask_targets(masks))
        else:
            shares = blend_weights(len(per_style), blend)
            targets = {"style": {n: self.statistic.blend([t["style"][n] for t in per_style], shares)
                                 for n in self.style_weights}}
        if self.use_hist:  # quantile functions: their average is the Wasserstein barycentre
            shares = blend_weights(len(per_style), None if self.regions else blend)
            targets["hist"] = {n: tf.add_n([w * t["hist"][n] for w, t in zip(shares, per_style)])
                               for n in self.config.hist_layers}
        if (self.use_content or self.use_lap) and content is None:
            raise TfnstError("content and Laplacian losses need a content image")
        if self.use_content:
            feats = self.whole_features(content, self.config.content_layers)
            targets["content"] = {n: feats[n] for n in self.config.content_layers}
            targets["content_energy"] = {n: tf.reduce_sum(tf.square(feats[n])) for n in self.config.content_layers}
        if self.use_lap:
            content = tf.convert_to_tensor(content, tf.float32)
            targets["lap"] = {p: laplacian(content[None], p) for p in self.config.lap_pool}
        targets["weights"] = loss_weights(self.config) if weights is None else weights
        return targets

    def _mask_targets(self, masks) -> dict:
        if masks is None or len(masks) != self.regions:
            raise TfnstError(f"{self.regions} masks are needed, one per style image")
        masks = [tf.convert_to_tensor(m, tf.float32) for m in masks]
        sizes = {n: _layer_size(tf.shape(masks[0]), n) for n in self.style_weights}
        mass = tf.stack([tf.reduce_sum(m) for m in masks])
        return {"masks": {n: [layer_mask(m, n, sizes[n]) for m in masks] for n in self.style_weights},
                "shares": mass / tf.reduce_sum(mass)}

    def initial_state(self) -> dict:
        """The style statistic's state per layer (per region with masks); empty unless
        the statistic is stateful."""
        one = lambda n: self.statistic.initial_state(LAYER_CHANNELS[n])  # noqa: E731
        return {n: [one(n) for _ in range(self.regions)] if self.regions else one(n) for n in self.style_weights}

    # -------------------------------------------------------------- in two steps
    def partial(self, feats: Mapping[str, tf.Tensor], targets: Targets, state, window=None) -> dict:
        """Sums over the positions of ``feats`` (within ``window``, a tile's interior;
        all when None) of what every feature term needs."""
        sums = {"style": {}}
        for n in self.style_weights:
            f = _window(feats[n], window, n)
            if self.regions:
                sums["style"][n] = [self.statistic.sums(f, _window(m[..., None], window, n, True)[..., 0],
                                                        targets["style"][n][r], state[n][r])
                                    for r, m in enumerate(targets["masks"][n])]
            else:
                sums["style"][n] = self.statistic.sums(f, None, targets["style"][n], state[n])
        if self.use_content:
            sums["content"] = {n: tf.reduce_sum(tf.square(_window(feats[n], window, n)
                                                          - _window(p, window, n, True)), axis=[1, 2, 3])
                               for n, p in targets["content"].items()}
        if self.use_hist:  # never tiled: refused when a tiled objective is made
            sums["hist"] = {n: histogram_loss(feats[n], t) for n, t in targets["hist"].items()}
        return sums

    def finish(self, image: tf.Tensor, sums: Mapping, targets: Targets, state):
        """(total, {term: value}, new state) from the sums over every position, plus the
        pixel-level terms of the whole [H, W, 3] image."""
        new_state, style = {}, []
        for n, w in self.style_weights.items():
            if self.regions:
                losses, new_state[n] = [], []
                for r in range(self.regions):
                    value, updated = self.statistic.loss_and_update_from_sums(
                        sums["style"][n][r], targets["style"][n][r], state[n][r])
                    losses.append(targets["shares"][r] * value)
                    new_state[n].append(updated)
                style.append(w * tf.add_n(losses))
            else:
                value, new_state[n] = self.statistic.loss_and_update_from_sums(
                    sums["style"][n], targets["style"][n], state[n])
                style.append(w * value)
        terms = {"style": tf.add_n(style)[0]}
        if self.use_content:
            terms["content"] = tf.add_n([sums["content"][n] / (targets["content_energy"][n] + _EPS)
                                         for n in targets["content"]])[0] / len(targets["content"])
        batch = tf.convert_to_tensor(image, tf.float32)[None]
        terms["tv"] = total_variation_loss(batch)[0]
        if self.use_hist:
            terms["hist"] = tf.add_n(list(sums["hist"].values()))[0] / len(sums["hist"])
        if self.use_lap:
            terms["lap"] = laplacian_loss(batch, targets["lap"])[0]
        weights = dict(zip(TERMS, tf.unstack(targets["weights"])))
        total = tf.add_n([weights[name] * value for name, value in terms.items()])
        if self.statistic.stateful:  # reported, not optimized
            states = [s for v in new_state.values() for s in (v if self.regions else [v])]
            terms["disc_acc"] = tf.add_n([s["accuracy"] for s in states]) / len(states)
        return total, terms, new_state

    def __call__(self, image: tf.Tensor, targets: Targets, state: Mapping | None = None):
        """(total, {term: value}, new state) for one [H, W, 3] image: Gatys eq. 7 plus TV,
        histogram (Risser et al. 2017) and Laplacian (Li et al. 2017) terms."""
        state = self.initial_state() if state is None else state
        if self.tile:
            image = tf.convert_to_tensor(image, tf.float32)
            sums = self._sums_over(image, self.tiles(tf.shape(image)[:2]), targets, state)
            return self.finish(image, sums, targets, state)
        return self.finish(image, self.partial(self.features(image), targets, state), targets, state)

    def value_and_gradient(self, image: tf.Tensor, targets: Targets, state):
        """(total, terms, new state, d total / d image): one forward and backward pass, or
        tiled, two passes over the tiles (`tfnst.tiling`)."""
        if not self.tile:
            return value_and_gradient_by_autodiff(self, image, targets, state)
        image = tf.convert_to_tensor(image, tf.float32)
        tiles = self.tiles(tf.shape(image)[:2])
        sums = self._sums_over(image, tiles, targets, state)
        with tf.GradientTape() as tape:
            tape.watch([image, sums])
            total, terms, new_state = self.finish(image, sums, targets, state)
        by_image, by_sums = tape.gradient(total, [image, sums], unconnected_gradients="zero")
        gradient = by_image
        for tile in tiles:
            part = self._tile_gradient(self._crop(image, tile), targets, state, tile.window(), by_sums)
            gradient = tiling.add_at(gradient, part, tile)
        return total, terms, new_state, gradient

    def _sums_over(self, image, tiles, targets, state):
        sums = None
        for tile in tiles:
            part = self._tile_sums(self._crop(image, tile), targets, state, tile.window())
            sums = part if sums is None else tf.nest.map_structure(tf.add, sums, part)
        return sums

    def _tile_sums_impl(self, crop, targets, state, window):
        return self.partial(self.features(crop), targets, state, window)

    def _tile_gradient_impl(self, crop, targets, state, window, by_sums):
        """The crop's share of the gradient: of ⟨d loss / d sums, the tile's sums⟩."""
        with tf.GradientTape() as tape:
            tape.watch(crop)
            part = self.partial(self.features(crop), targets, state, window)
            surrogate = tf.add_n([tf.reduce_sum(g * p) for g, p in
                                  zip(tf.nest.flatten(by_sums), tf.nest.flatten(part))])
        return tape.gradient(surrogate, crop)
