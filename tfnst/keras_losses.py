"""Keras losses over a feature model: thin adapters over `tfnst.terms`, so a Keras
pipeline (training a feed-forward network with ``model.fit``) computes exactly the
terms the optimization does: one implementation of each loss.

Each is serializable (`get_config`, registered under ``tfnst>``), so a model compiled
with them saves and loads after ``import tfnst`` alone; the feature model is saved by
its configuration (which VGG19 weights, which layers) and rebuilt offline on load.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.terms import Content, Style, TotalVariation

JOHNSON_CONTENT_LAYERS = ("block3_conv3",)  # relu3_3
JOHNSON_STYLE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")  # relu1_2 … relu4_3


def _encode_array(array) -> dict:
    """A float array as JSON-safe text (for Keras configs): zlib + base64 of float32."""
    a = np.ascontiguousarray(np.asarray(array, np.float32))
    return {"shape": list(a.shape), "float32_zlib_b64": base64.b64encode(zlib.compress(a.tobytes())).decode()}


def _decode_array(data: dict) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(data["float32_zlib_b64"]))
    return np.frombuffer(raw, np.float32).reshape(data["shape"]).copy()


def _layer_names(layers, what: str) -> tuple[str, ...]:
    if (
        isinstance(layers, str)
        or not isinstance(layers, Sequence)
        or not layers
        or not all(isinstance(n, str) for n in layers)
    ):
        raise TfnstError(f"{what} must be a non-empty list of layer names, received {layers!r}")
    return tuple(layers)


class _FeatureLoss(keras.losses.Loss):
    """Base for losses measured on a feature model's outputs (`tfnst.build_feature_model`)."""

    def __init__(self, feature_model, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(feature_model, dict):  # from a saved config
            feature_model = keras.saving.deserialize_keras_object(feature_model)
        if not isinstance(feature_model, (keras.Model, keras.layers.Layer)):
            raise TfnstError(
                "feature_model must be a Keras model or layer (e.g. "
                f"tfnst.build_feature_model(...)), received {type(feature_model).__name__}"
            )
        self.feature_model = feature_model

    def features(self, images) -> dict:
        return self.feature_model(tf.convert_to_tensor(images, tf.float32))

    def get_config(self):
        return {**super().get_config(), "feature_model": keras.saving.serialize_keras_object(self.feature_model)}


@keras.saving.register_keras_serializable(package="tfnst")
class ContentLoss(_FeatureLoss):
    """Content loss (`tfnst.terms.Content`) between ``y_true`` (content images) and
    ``y_pred`` (generated), both RGB in [0, 1].

    Args:
        feature_model: a `tfnst.build_feature_model` with (at least) these layers.
        layers: content layers; Johnson et al. (2016) use ``block3_conv3`` (relu3_3),
            Gatys et al. ``block4_conv2``.
    """

    def __init__(self, feature_model, layers: Sequence[str] = ("block4_conv2",), name="content_loss", **kwargs):
        super().__init__(feature_model, name, **kwargs)
        self.term = Content(_layer_names(layers, "layers"))

    def loss_of(self, pred: dict, true: dict) -> tf.Tensor:
        """The loss from both sides' features (`PerceptualLoss` shares one pass)."""
        return self.term.loss(pred, self.term.target(true))

    def call(self, y_true, y_pred):
        return self.loss_of(self.features(y_pred), self.features(y_true))

    def get_config(self):
        return {**super().get_config(), "layers": list(self.term.layers)}


@keras.saving.register_keras_serializable(package="tfnst")
class StyleLoss(_FeatureLoss):
    """Style loss (`tfnst.terms.Style`) of ``y_pred`` against a fixed style image
    (``y_true`` is ignored). The style's targets are computed once; the style image is
    part of the configuration, so a compiled model saves with it.

    Args:
        feature_model: a `tfnst.build_feature_model` with these layers.
        style_image: [H, W, 3] (or [1, H, W, 3]) RGB in [0, 1].
        layers: style layers; layer_weights: one per layer (normalised), equal if None.
        statistic: ``"gram"``, ``"mean"`` or ``"meancov"``.

    Raises:
        TfnstError: for the discriminator statistic, which trains alongside one image
            (use it through `tfnst.Stylizer`), or unknown names.
    """

    def __init__(
        self,
        feature_model,
        style_image,
        layers: Sequence[str] = JOHNSON_STYLE_LAYERS,
        layer_weights: Sequence[float] | None = None,
        statistic: str = "gram",
        name="style_loss",
        **kwargs,
    ):
        super().__init__(feature_model, name, **kwargs)
        self.term = Style(_layer_names(layers, "layers"), statistic, layer_weights)
        if self.term.stateful:
            raise TfnstError(
                f"the {statistic} style statistic trains alongside the image it "
                "styles; use it through tfnst.Stylizer, not as a Keras loss"
            )
        if isinstance(style_image, dict):  # from a saved config
            style_image = _decode_array(style_image)
        style = tf.convert_to_tensor(style_image, tf.float32)
        self.style_image = style[None] if style.shape.rank == 3 else style
        self.target = self.term.target(self.features(self.style_image))

    def loss_of(self, pred: dict) -> tf.Tensor:
        return self.term.loss(pred, self.target)

    def call(self, y_true, y_pred):
        return self.loss_of(self.features(y_pred))

    def get_config(self):
        return {
            **super().get_config(),
            "style_image": _encode_array(self.style_image.numpy()),
            "layers": list(self.term.layers),
            "layer_weights": list(self.term.layer_weights.values()),
            "statistic": self.term.statistic.name,
        }


@keras.saving.register_keras_serializable(package="tfnst")
class TotalVariationLoss(keras.losses.Loss):
    """Total variation (`tfnst.terms.TotalVariation`) of ``y_pred`` (``y_true`` is ignored)."""

    def __init__(self, name="total_variation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.term = TotalVariation()

    def call(self, y_true, y_pred):
        return self.term.loss({}, None, tf.convert_to_tensor(y_pred, tf.float32))


@keras.saving.register_keras_serializable(package="tfnst")
class PerceptualLoss(_FeatureLoss):
    """α·content + β·style + γ·TV: `ContentLoss`, `StyleLoss` and `TotalVariationLoss`
    composed, with one feature pass per side.

    The loss of Johnson, Alahi & Fei-Fei (2016) for training a feed-forward network:
    ``y_true`` are the content images, ``y_pred`` the network's outputs.

    Args:
        feature_model: a `tfnst.build_feature_model` with the content and style layers.
        style_image: [H, W, 3] RGB in [0, 1].
        content_layers, style_layers: layer names (Johnson et al.'s by default).
        content_weight, style_weight, tv_weight: α, β, γ.
        statistic: the style statistic (``"gram"``, ``"mean"``, ``"meancov"``).
    """

    def __init__(
        self,
        feature_model,
        style_image,
        content_layers: Sequence[str] = JOHNSON_CONTENT_LAYERS,
        style_layers: Sequence[str] = JOHNSON_STYLE_LAYERS,
        content_weight: float = 1.0,
        style_weight: float = 10.0,
        tv_weight: float = 20.0,
        statistic: str = "gram",
        name="perceptual_loss",
        **kwargs,
    ):
        super().__init__(feature_model, name, **kwargs)
        self.content = ContentLoss(self.feature_model, content_layers)
        self.style = StyleLoss(self.feature_model, style_image, style_layers, statistic=statistic)
        self.tv = TotalVariationLoss()
        self.term_weights = (float(content_weight), float(style_weight), float(tv_weight))

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred, tf.float32)
        pred, true = self.features(y_pred), self.features(y_true)
        alpha, beta, gamma = self.term_weights
        return (
            alpha * self.content.loss_of(pred, true)
            + beta * self.style.loss_of(pred)
            + gamma * self.tv.call(None, y_pred)
        )

    def get_config(self):
        alpha, beta, gamma = self.term_weights
        return {
            **super().get_config(),
            "style_image": _encode_array(self.style.style_image.numpy()),
            "content_layers": list(self.content.term.layers),
            "style_layers": list(self.style.term.layers),
            "content_weight": alpha,
            "style_weight": beta,
            "tv_weight": gamma,
            "statistic": self.style.term.statistic.name,
        }
