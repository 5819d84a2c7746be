"""The loss graph: α·content + β·style + γ·TV of an image, against cached targets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from tfnst.config import StyleConfig
from tfnst.features import build_feature_model
from tfnst.losses import content_loss, normalized_layer_weights, style_loss, style_statistic, \
    total_variation_loss

Targets = Mapping[str, Mapping[str, tf.Tensor]]  # {"content": {layer: P}, "style": {layer: A}}


class StyleTransferObjective:
    """Owns the truncated VGG19 and turns (image, targets) into the total loss and its terms.

    Targets are computed once per content/style image (`targets`) and passed to the
    loss as arguments, so a compiled step is reused for new images of the same size.
    """

    def __init__(self, config: StyleConfig, feature_model=None):
        """``feature_model`` maps [B, H, W, 3] images to ``{layer: features}``; by default
        the Keras VGG19 of `build_feature_model` (the exporter passes a plain-TF one)."""
        self.config = config
        self.statistic = style_statistic(config.style_statistic)
        self.style_weights = normalized_layer_weights(config.style_layers, config.style_layer_weights)
        self.use_content = config.content_weight > 0
        layers = config.style_layers + (config.content_layers if self.use_content else ())
        self.layers = layers
        self.feature_model = feature_model or build_feature_model(
            layers, pooling=config.pooling, weights=config.weights)
        # α, β, γ live in a variable so that new weights reuse compiled steps.
        self.loss_weights = tf.Variable(
            [config.content_weight, config.style_weight, config.tv_weight], dtype=tf.float32,
            trainable=False, name="loss_weights")

    def set_loss_weights(self, content_weight: float, style_weight: float, tv_weight: float) -> None:
        self.loss_weights.assign([content_weight, style_weight, tv_weight])

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Features of one [H, W, 3] image (batch of 1)."""
        return self.feature_model(image[None])

    def targets(self, content: np.ndarray | None, style: np.ndarray) -> Targets:
        """Content features P and style statistics A, computed once."""
        feats = self.features(tf.convert_to_tensor(style, tf.float32))
        targets = {"style": {n: self.statistic.target(feats[n]) for n in self.style_weights}}
        if self.use_content:
            if content is None:
                raise ValueError("content_weight > 0 needs a content image")
            feats = self.features(tf.convert_to_tensor(content, tf.float32))
            targets["content"] = {n: feats[n] for n in self.config.content_layers}
        return targets

    def __call__(self, image: tf.Tensor, targets: Targets) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """(total, {"content": …, "style": …, "tv": …}) for one [H, W, 3] image; Gatys eq. 7 plus TV."""
        feats = self.features(image)
        terms = {"style": style_loss(feats, targets["style"], self.style_weights, self.statistic)[0]}
        if self.use_content:
            terms["content"] = tf.add_n([content_loss(feats[n], p) for n, p in
                                         targets["content"].items()])[0] / len(targets["content"])
        terms["tv"] = total_variation_loss(image[None])[0]
        alpha, beta, gamma = tf.unstack(self.loss_weights)
        total = beta * terms["style"] + gamma * terms["tv"]
        if self.use_content:
            total += alpha * terms["content"]
        return total, terms
