"""The loss of one image against targets computed once: α·content + β·style + γ·TV
(+ histogram, Laplacian), Gatys et al. eq. 7 with the extensions' terms.

Pure: `Objective.__call__(image, targets, state) -> (total, terms, state)`. The loss
weights travel with the targets and the style statistic's state (the discriminator's)
is an argument, so the same traced graph serves any weights and concurrent requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.vgg_layers import LAYER_CHANNELS
from tfnst.losses import content_loss, histogram_loss, histogram_target, laplacian, laplacian_loss, \
    normalized_layer_weights, style_loss, style_statistic, total_variation_loss

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


class Objective:
    """The loss of one image against its targets, over a feature extractor.

    Which terms exist is fixed at construction (they shape the graph); their weights
    are part of the targets, so new weights reuse compiled steps.

    Args:
        config: the options (layers, statistic, which terms are on).
        features: maps [B, H, W, 3] images to ``{layer: features}`` (a `VGG19`) and has
            at least `feature_layers(config, has_content)`.
        has_content: False for texture synthesis (no content or Laplacian terms).
    """

    def __init__(self, config: StyleConfig, features, *, has_content: bool = True):
        self.config = config
        self.features_of = features
        self.statistic = style_statistic(config.style_statistic)
        self.style_weights = normalized_layer_weights(config.style_layers, config.style_layer_weights)
        self.use_content = has_content and config.content_weight > 0
        self.use_hist = config.hist_weight > 0
        self.use_lap = has_content and config.lap_weight > 0
        self.terms = tuple(t for t, on in zip(TERMS, (self.use_content, True, True, self.use_hist,
                                                        self.use_lap)) if on)
        if self.statistic.stateful:
            self.terms += ("disc_acc",)

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Features of one [H, W, 3] image (batch of 1)."""
        return self.features_of(tf.convert_to_tensor(image, tf.float32)[None])

    def style_targets(self, style) -> dict:
        feats = self.features(style)
        targets = {"style": {n: self.statistic.target(feats[n]) for n in self.style_weights}}
        if self.use_hist:
            targets["hist"] = {n: histogram_target(feats[n]) for n in self.config.hist_layers}
        return targets

    def targets(self, content, styles: Sequence, blend: Sequence[float] | None = None,
                weights: tf.Tensor | None = None) -> Targets:
        """Content features, style statistics and loss weights, computed once (graph-safe).

        Args:
            content: [H, W, 3] in [0, 1], or None for a texture.
            styles: style images [H_i, W_i, 3]; several are blended with ``blend``
                (normalised; equal when None) by their statistic's `blend`.
            weights: the terms' weights in `TERMS` order; the config's when None.
        """
        per_style = [self.style_targets(s) for s in styles]
        shares = blend_weights(len(per_style), blend)
        targets = {"style": {n: self.statistic.blend([t["style"][n] for t in per_style], shares)
                             for n in self.style_weights}}
        if self.use_hist:  # quantile functions: their average is the Wasserstein barycentre
            targets["hist"] = {n: tf.add_n([w * t["hist"][n] for w, t in zip(shares, per_style)])
                               for n in self.config.hist_layers}
        if (self.use_content or self.use_lap) and content is None:
            raise TfnstError("content and Laplacian losses need a content image")
        if self.use_content:
            feats = self.features(content)
            targets["content"] = {n: feats[n] for n in self.config.content_layers}
        if self.use_lap:
            content = tf.convert_to_tensor(content, tf.float32)
            targets["lap"] = {p: laplacian(content[None], p) for p in self.config.lap_pool}
        targets["weights"] = loss_weights(self.config) if weights is None else weights
        return targets

    def initial_state(self) -> dict:
        """The style statistic's state per layer (empty unless it is stateful)."""
        return {n: self.statistic.initial_state(LAYER_CHANNELS[n]) for n in self.style_weights}

    def __call__(self, image: tf.Tensor, targets: Targets, state: Mapping | None = None):
        """(total, {term: value}, new state) for one [H, W, 3] image: Gatys eq. 7 plus TV,
        histogram (Risser et al. 2017) and Laplacian (Li et al. 2017) terms."""
        feats = self.features(image)
        batch = image[None]
        style, new_state = style_loss(feats, targets["style"], self.style_weights, self.statistic,
                                      self.initial_state() if state is None else state)
        terms = {"style": style[0]}
        if self.use_content:
            terms["content"] = tf.add_n([content_loss(feats[n], p) for n, p in
                                         targets["content"].items()])[0] / len(targets["content"])
        terms["tv"] = total_variation_loss(batch)[0]
        if self.use_hist:
            terms["hist"] = tf.add_n([histogram_loss(feats[n], t) for n, t in
                                      targets["hist"].items()])[0] / len(targets["hist"])
        if self.use_lap:
            terms["lap"] = laplacian_loss(batch, targets["lap"])[0]
        weights = dict(zip(TERMS, tf.unstack(targets["weights"])))
        total = tf.add_n([weights[name] * value for name, value in terms.items()])
        if self.statistic.stateful:  # reported, not optimized
            terms["disc_acc"] = tf.add_n([s["accuracy"] for s in new_state.values()]) / len(new_state)
        return total, terms, new_state
