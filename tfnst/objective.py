"""The loss graph: α·content + β·style + γ·TV (+ histogram, Laplacian) of an image,
against targets computed once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.features import LAYER_CHANNELS, build_feature_model
from tfnst.losses import content_loss, histogram_loss, histogram_target, laplacian, laplacian_loss, \
    normalized_layer_weights, style_loss, style_statistic, total_variation_loss

Targets = Mapping[str, Mapping]  # term -> {layer or pool size: target tensor}
TERMS = ("content", "style", "tv", "hist", "lap")


def blend_weights(count: int, blend: Sequence[float] | None) -> list[float]:
    """Weights for ``count`` styles, normalised to sum to 1 (equal when ``blend`` is None)."""
    weights = [1.0] * count if blend is None else [float(w) for w in blend]
    if len(weights) != count:
        raise TfnstError(f"style_blend has {len(weights)} weights for {count} style images")
    return [w / sum(weights) for w in weights]


class StyleTransferObjective:
    """Owns the truncated VGG19 and turns (image, targets) into the total loss and its terms.

    Which terms exist is fixed at construction (they shape the graph); their weights
    live in a variable, so new weights reuse compiled steps. Targets are computed once
    per content/style images (`targets`) and passed to the loss as arguments, so a
    compiled step is reused for new images of the same size.
    """

    def __init__(self, config: StyleConfig, feature_model=None, *, has_content: bool = True):
        """``feature_model`` maps [B, H, W, 3] images to ``{layer: features}``; by default
        the Keras VGG19 of `build_feature_model` (the exporter passes a plain-TF one)."""
        self.config = config
        self.statistic = style_statistic(config.style_statistic, config.style_layers, LAYER_CHANNELS)
        self.style_weights = normalized_layer_weights(config.style_layers, config.style_layer_weights)
        self.use_content = has_content and config.content_weight > 0
        self.use_hist = config.hist_weight > 0
        self.use_lap = has_content and config.lap_weight > 0
        layers = config.style_layers + (config.content_layers if self.use_content else ()) \
            + (config.hist_layers if self.use_hist else ())
        self.feature_model = feature_model or build_feature_model(
            layers, pooling=config.pooling, weights=config.weights, normalize=config.normalize_vgg,
            precision=config.precision)
        self.loss_weights = tf.Variable(tf.zeros([len(TERMS)]), trainable=False, name="loss_weights")
        self.set_loss_weights(config)

    def set_loss_weights(self, config: StyleConfig) -> None:
        self.loss_weights.assign([config.content_weight, config.style_weight, config.tv_weight,
                                  config.hist_weight, config.lap_weight])

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Features of one [H, W, 3] image (batch of 1)."""
        return self.feature_model(tf.convert_to_tensor(image, tf.float32)[None])

    def style_targets(self, style) -> dict:
        feats = self.features(style)
        targets = {"style": {n: self.statistic.target(feats[n]) for n in self.style_weights}}
        if self.use_hist:
            targets["hist"] = {n: histogram_target(feats[n]) for n in self.config.hist_layers}
        return targets

    def targets(self, content, styles, blend: Sequence[float] | None = None) -> Targets:
        """Content features and style statistics, computed once.

        ``styles`` is one image or a list; several are blended by averaging their
        targets with the (normalised) ``blend`` weights.
        """
        if not isinstance(styles, (list, tuple)):
            styles = [styles]
        if hasattr(self.statistic, "reset"):  # a new run: a fresh discriminator
            self.statistic.reset()
        weights = blend_weights(len(styles), blend)
        per_style = [self.style_targets(s) for s in styles]
        targets = {term: {key: tf.add_n([w * t[term][key] for w, t in zip(weights, per_style)])
                          for key in per_style[0][term]}
                   for term in per_style[0]}
        if self.use_content or self.use_lap:
            if content is None:
                raise ValueError("content and Laplacian losses need a content image")
            content = tf.convert_to_tensor(content, tf.float32)
        if self.use_content:
            feats = self.features(content)
            targets["content"] = {n: feats[n] for n in self.config.content_layers}
        if self.use_lap:
            targets["lap"] = {p: laplacian(content[None], p) for p in self.config.lap_pool}
        return targets

    def __call__(self, image: tf.Tensor, targets: Targets) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """(total, {term: value}) for one [H, W, 3] image: Gatys eq. 7, plus TV,
        histogram (Risser et al. 2017) and Laplacian (Li et al. 2017) terms."""
        feats = self.features(image)
        batch = image[None]
        terms = {"style": style_loss(feats, targets["style"], self.style_weights, self.statistic)[0]}
        if self.use_content:
            terms["content"] = tf.add_n([content_loss(feats[n], p) for n, p in
                                         targets["content"].items()])[0] / len(targets["content"])
        terms["tv"] = total_variation_loss(batch)[0]
        if self.use_hist:
            terms["hist"] = tf.add_n([histogram_loss(feats[n], t) for n, t in
                                      targets["hist"].items()])[0] / len(targets["hist"])
        if self.use_lap:
            terms["lap"] = laplacian_loss(batch, targets["lap"])[0]
        weights = dict(zip(TERMS, tf.unstack(self.loss_weights)))
        total = tf.add_n([weights[name] * value for name, value in terms.items()])
        if hasattr(self.statistic, "accuracy"):  # reported, not optimized
            with tf.control_dependencies([total]):
                terms["disc_acc"] = self.statistic.accuracy()
        return total, terms
