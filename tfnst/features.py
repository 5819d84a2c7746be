"""The VGG19 feature extractor: RGB images in [0, 1] in, named layer activations out."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tfnst.errors import TfnstError
from tfnst.weights import load_vgg19_weights

# (block, number of convolutions, channels) of VGG19 (Simonyan & Zisserman 2015, config E).
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
CONV_LAYERS = tuple(f"block{b}_conv{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))
LAYER_CHANNELS = {f"block{b}_conv{i}": c for b, n, c in VGG19_BLOCKS for i in range(1, n + 1)}
POOLING = ("max", "avg")

# Caffe's per-channel BGR means, subtracted by the original VGG (keras' "caffe" mode).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def layer_depth(name: str) -> int:
    """How many VGG19 layers must run to produce layer ``name`` (its 1-based position)."""
    if name not in CONV_LAYERS:
        raise TfnstError(f"unknown VGG19 layer {name!r}; use Keras names such as block4_conv2")
    return CONV_LAYERS.index(name) + 1


def layer_stride(name: str) -> int:
    """Downsampling factor of a layer's output relative to the input (poolings before it)."""
    return 2 ** (int(name[len("block")]) - 1)


@keras.saving.register_keras_serializable(package="tfnst")
class CaffePreprocess(keras.layers.Layer):
    """[0, 1] RGB to the VGG's input: 0-255 BGR with the ImageNet mean removed.

    Inside the model so callers (and gradients) deal only in [0, 1] RGB.
    """

    def call(self, images):
        bgr = keras.ops.flip(images, axis=-1) * 255.0
        return bgr - keras.ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=bgr.dtype)


def build_feature_model(
    layers: Sequence[str], *, pooling: str = "max", weights: str = "imagenet"
) -> keras.Model:
    """A Keras model over VGG19 whose outputs are ``{layer name: activation}``.

    The network is truncated after the deepest requested layer, so no work is spent on
    layers nobody reads. ``blockN_convM`` outputs include the ReLU, as in Keras.
    ``pooling="avg"`` swaps max for average pooling, which Gatys et al. (2016, sec. 2)
    found gives slightly more appealing results; the weights stay the max-pool ones.
    """
    layers = tuple(dict.fromkeys(layers))
    if not layers:
        raise TfnstError("at least one VGG19 layer is needed")
    if pooling not in POOLING:
        raise TfnstError(f"pooling must be one of {', '.join(POOLING)}, not {pooling!r}")
    depth = max(layer_depth(n) for n in layers)
    pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    arrays = load_vgg19_weights(weights)

    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = CaffePreprocess(name="caffe_preprocess")(inputs)
    outputs, built = {}, 0
    for block, n_convs, channels in VGG19_BLOCKS:
        for i in range(1, n_convs + 1):
            name = f"block{block}_conv{i}"
            conv = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=name)
            x = conv(x)
            kernel, bias = arrays[name]
            conv.set_weights([np.asarray(kernel), np.asarray(bias)])
            built += 1
            if name in layers:
                outputs[name] = x
            if built == depth:
                return keras.Model(inputs, outputs, name=f"vgg19_features_{pooling}")
        x = pool(2, strides=2, name=f"block{block}_pool")(x)
    raise AssertionError("unreachable: depth is at most the number of conv layers")
