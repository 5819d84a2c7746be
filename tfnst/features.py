"""The VGG19 feature extractor: RGB images in [0, 1] in, named layer activations out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.weights import load_vgg19_weights

# (block, number of convolutions, channels) of VGG19 (Simonyan & Zisserman 2015, config E).
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
CONV_LAYERS = tuple(f"block{b}_conv{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))
LAYER_CHANNELS = {f"block{b}_conv{i}": c for b, n, c in VGG19_BLOCKS for i in range(1, n + 1)}
POOLING = ("max", "avg")
# Compute precision of the convolutions. bfloat16 keeps float32's exponent range (no loss
# scaling) and halves the conv time where the hardware has it (NVIDIA Ampere and newer,
# TPUs, CPUs with AVX512_BF16 or AMX); elsewhere it is emulated and many times slower.
PRECISIONS = ("float32", "bfloat16")
# Smallest image side VGG19 can take: after four 2x2 poolings block5 would be empty
# (and the losses NaN) below this.
MIN_SIDE = 16

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


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def normalization_scales(arrays, images, pooling: str = "max") -> dict[str, np.ndarray]:
    """Each conv filter's mean ReLU activation over ``images`` and positions."""
    model = _keras_vgg19(CONV_LAYERS, pooling, arrays)
    sums = {n: 0.0 for n in CONV_LAYERS}
    for image in images:
        out = model(np.asarray(image, np.float32)[None])
        for n in CONV_LAYERS:
            sums[n] = sums[n] + np.mean(out[n].numpy(), axis=(0, 1, 2))
    return {n: sums[n] / len(images) for n in CONV_LAYERS}


def normalize_weights(arrays, images, pooling: str = "max"):
    """Gatys et al. (2016, sec. 2): rescale the weights so that each filter's mean
    activation over ``images`` and positions is 1. ReLU and pooling are positively
    homogeneous, so dividing a filter by its mean m and multiplying the next layer's
    input weights by m normalises it and leaves the later layers' inputs as before;
    one pass of the original network gives every m. Dead filters (m = 0) are kept."""
    means = normalization_scales(arrays, images, pooling)
    normalized, previous = {}, None
    for name in CONV_LAYERS:
        kernel, bias = (np.array(a, np.float32) for a in arrays[name])
        m = np.where(means[name] > 1e-8, means[name], 1.0).astype(np.float32)
        kernel, bias = kernel / m, bias / m
        if previous is not None:
            kernel = kernel * previous[None, None, :, None]
        normalized[name], previous = (kernel, bias), m
    return normalized


def _normalization_images(paths) -> list[np.ndarray]:
    from tfnst.image_io import fit_size, read_image, resize

    paths = list(paths) or sorted(EXAMPLES_DIR.glob("*.jpg"))
    if not paths:
        raise TfnstError("normalize_vgg needs images: pass some, or run from a checkout with examples/")
    images = [read_image(p) for p in paths]
    return [resize(im, fit_size(im.shape[:2], 256)) for im in images]


def _checked_layers(layers: Sequence[str], pooling: str, precision: str = "float32") -> tuple[str, ...]:
    """The requested layers without repeats, or a `TfnstError` for bad layers, pooling
    or precision."""
    layers = tuple(dict.fromkeys(layers))
    if not layers:
        raise TfnstError("at least one VGG19 layer is needed")
    if pooling not in POOLING:
        raise TfnstError(f"pooling must be one of {', '.join(POOLING)}, not {pooling!r}")
    if precision not in PRECISIONS:
        raise TfnstError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    for name in layers:
        layer_depth(name)  # raises for unknown names
    return layers


def _keras_vgg19(layers, pooling, arrays, precision="float32") -> keras.Model:
    depth = max(layer_depth(n) for n in layers)
    pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    inputs = keras.Input(shape=(None, None, 3), name="image")
    # Preprocessing stays float32 (0-255 values would lose a level in bfloat16); the
    # convolutions and poolings run, and keep their weights, in ``precision``; the
    # outputs are float32 again, so Gram matrices and losses are float32 either way.
    x = CaffePreprocess(name="caffe_preprocess")(inputs)
    outputs, built = {}, 0
    for block, n_convs, channels in VGG19_BLOCKS:
        for i in range(1, n_convs + 1):
            name = f"block{block}_conv{i}"
            conv = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=name,
                                       dtype=precision)
            x = conv(x)
            kernel, bias = arrays[name]
            conv.set_weights([np.asarray(kernel), np.asarray(bias)])
            built += 1
            if name in layers:
                outputs[name] = keras.ops.cast(x, "float32") if precision != "float32" else x
            if built == depth:
                return keras.Model(inputs, outputs, name=f"vgg19_features_{pooling}")
        x = pool(2, strides=2, name=f"block{block}_pool", dtype=precision)(x)
    raise AssertionError("unreachable: depth is at most the number of conv layers")


def build_feature_model(
    layers: Sequence[str], *, pooling: str = "max", weights: str = "imagenet",
    normalize: Sequence | None = None, precision: str = "float32",
) -> keras.Model:
    """A Keras model over VGG19 whose outputs are ``{layer name: activation}``.

    The network is truncated after the deepest requested layer, so no work is spent on
    layers nobody reads. ``blockN_convM`` outputs include the ReLU, as in Keras.
    ``pooling="avg"`` swaps max for average pooling, which Gatys et al. (2016, sec. 2)
    found gives slightly more appealing results; the weights stay the max-pool ones.
    ``normalize`` (a list of image paths; empty for the bundled examples) rescales the
    weights as Gatys et al. did (`normalize_weights`).
    ``precision="bfloat16"`` runs the convolutions in bfloat16 (`PRECISIONS`); the
    outputs are float32 either way.
    """
    layers = _checked_layers(layers, pooling, precision)
    arrays = load_vgg19_weights(weights)
    if normalize is not None:
        arrays = normalize_weights(arrays, _normalization_images(normalize), pooling)
    return _keras_vgg19(layers, pooling, arrays, precision)


class VGG19Module(tf.Module):
    """The same truncated feature extractor in plain TensorFlow ops over its own variables.

    For SavedModels that TF Serving loads: a Keras 3 model held inside a `tf.Module`
    reloads in Python but fails in `saved_model_cli run` / TF Serving ("Could not find
    variable …"). Same layers, weights, preprocessing and outputs as `build_feature_model`.
    """

    def __init__(self, layers: Sequence[str], *, pooling: str = "max", weights: str = "imagenet",
                 precision: str = "float32"):
        super().__init__(name="vgg19_features")
        self.layers = _checked_layers(layers, pooling, precision)
        self.pooling = pooling
        self.depth = max(layer_depth(n) for n in self.layers)
        arrays = load_vgg19_weights(weights)
        used = CONV_LAYERS[: self.depth]
        # Only the layers the outputs need are kept: the SavedModel carries nothing else.
        self.kernels = [tf.Variable(tf.cast(arrays[n][0], precision), trainable=False, name=f"{n}_kernel")
                        for n in used]
        self.biases = [tf.Variable(tf.cast(arrays[n][1], precision), trainable=False, name=f"{n}_bias")
                       for n in used]

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.reverse(images, axis=[-1]) * 255.0 - tf.constant(CAFFE_BGR_MEAN, images.dtype)
        x = tf.cast(x, self.kernels[0].dtype)
        pool = tf.nn.max_pool2d if self.pooling == "max" else tf.nn.avg_pool2d
        outputs = {}
        for index, name in enumerate(CONV_LAYERS[: self.depth]):
            if index > 0 and name.endswith("_conv1"):
                x = pool(x, 2, 2, "VALID")
            x = tf.nn.relu(tf.nn.conv2d(x, self.kernels[index], 1, "SAME") + self.biases[index])
            if name in self.layers:
                outputs[name] = tf.cast(x, tf.float32)
        return outputs
