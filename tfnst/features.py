"""The VGG19 feature extractor: RGB images in [0, 1] in, named layer activations out.

One forward pass, `VGG19.__call__`, over variables the module owns: the library, the
Keras losses and the exported SavedModel all run it. `VGG19Features` is the thin Keras
layer over it, and `build_feature_model` a Keras model of that layer.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.vgg_layers import CONV_LAYERS, LAYER_CHANNELS, POOLING, PRECISIONS, layer_depth, layer_stride
from tfnst.weights import load_vgg19_weights

# Caffe's per-channel BGR means, subtracted by the original VGG (keras' "caffe" mode).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
# The images `normalize_vgg=()` uses: the bundled content photo and paintings.
NORMALIZATION_EXAMPLES = ("starry_night.jpg", "the_scream.jpg", "tubingen.jpg")


# ------------------------------------------------------------------ precision
def _cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16(cpu_flags: set[str] | None = None, gpus=None, tpus=None) -> bool:
    """Whether bfloat16 convolutions are native here: a TPU, an NVIDIA GPU of compute
    capability 8.0 or more (Ampere and newer), or a CPU with AVX512_BF16 or AMX-BF16.

    The arguments stand in for the machine in tests.
    """
    tpus = tf.config.list_logical_devices("TPU") if tpus is None else tpus
    if tpus:
        return True
    gpus = tf.config.list_physical_devices("GPU") if gpus is None else gpus
    if gpus:
        capabilities = [
            tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0))
            if not isinstance(g, tuple)
            else g
            for g in gpus
        ]
        return all(tuple(c) >= (8, 0) for c in capabilities)
    flags = _cpu_flags() if cpu_flags is None else cpu_flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@functools.cache
def _machine_has_native_bfloat16() -> bool:
    return native_bfloat16()


def resolve_precision(precision: str) -> str:
    """ "auto" → "bfloat16" where it is native (`native_bfloat16`), else "float32".

    ``TFNST_PRECISION`` in the environment overrides "auto" (e.g. to compare machines).
    """
    if precision == "auto":
        forced = os.environ.get("TFNST_PRECISION")
        if forced in ("float32", "bfloat16"):
            return forced
        return "bfloat16" if _machine_has_native_bfloat16() else "float32"
    return precision


def _checked_layers(layers: Sequence[str], pooling: str, precision: str = "float32") -> tuple[str, ...]:
    """The requested layers without repeats, or a `TfnstError` for bad layers, pooling
    or precision."""
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise TfnstError(f"layers must be a list of VGG19 layer names, not {layers!r}")
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


# ------------------------------------------------------------------ the network
class VGG19(tf.Module):
    """VGG19's convolutional layers, truncated after the deepest requested one.

    Owns its weights as `tf.Variable`s (non-trainable), so a SavedModel carries them and
    TF Serving finds them. Preprocessing (RGB [0, 1] → Caffe's 0-255 BGR minus the
    ImageNet mean) is inside; outputs include the ReLU (Keras' ``blockN_convM``) and are
    float32 whatever the compute precision.

    Args:
        layers: names of the layers to return, e.g. ``["block1_conv1", "block4_conv2"]``.
        pooling: ``"max"`` (the network as trained) or ``"avg"`` (Gatys et al. 2016, sec. 2:
            "slightly more appealing results"; the weights stay the max-pool ones).
        vgg_weights: ``"imagenet"`` (offline, see `tfnst.weights`) or a Keras VGG19 notop file.
        precision: ``"float32"``, ``"bfloat16"`` or ``"auto"`` (`resolve_precision`).
        normalize: image paths (empty: the bundled examples) over which each filter's mean
            activation is made 1 (`normalize_weights`); None leaves the weights as trained.
        arrays: weights already loaded (``{layer: (kernel, bias)}``), instead of ``vgg_weights``.

    Raises:
        TfnstError: for unknown layers, pooling or precision, or unreadable weights.
    """

    def __init__(
        self,
        layers: Sequence[str],
        *,
        pooling: str = "max",
        vgg_weights: str = "imagenet",
        precision: str = "float32",
        normalize: Sequence | None = None,
        arrays=None,
    ):
        super().__init__(name="vgg19_features")
        self.layers = _checked_layers(layers, pooling, precision)
        self.pooling = pooling
        self.precision = resolve_precision(precision)
        self.depth = max(layer_depth(n) for n in self.layers)
        arrays = load_vgg19_weights(vgg_weights) if arrays is None else arrays
        if normalize is not None:
            arrays = normalize_weights(arrays, _normalization_images(normalize), pooling)
        # Only the layers the outputs need: the SavedModel carries nothing else.
        used = CONV_LAYERS[: self.depth]
        self.kernels = [
            tf.Variable(tf.cast(arrays[n][0], self.precision), trainable=False, name=f"{n}_kernel") for n in used
        ]
        self.biases = [
            tf.Variable(tf.cast(arrays[n][1], self.precision), trainable=False, name=f"{n}_bias") for n in used
        ]

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """[B, H, W, 3] RGB in [0, 1] → ``{layer: [B, H/s, W/s, C] float32}``."""
        images = tf.convert_to_tensor(images, tf.float32)
        # Preprocessing stays float32: 0-255 values would lose a level in bfloat16.
        x = tf.reverse(images, axis=[-1]) * 255.0 - tf.constant(CAFFE_BGR_MEAN, tf.float32)
        x = tf.cast(x, self.kernels[0].dtype)
        pool = tf.nn.max_pool2d if self.pooling == "max" else tf.nn.avg_pool2d
        outputs = {}
        for index, name in enumerate(CONV_LAYERS[: self.depth]):
            if index > 0 and name.endswith("_conv1"):
                x = pool(x, 2, 2, "VALID")
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, self.kernels[index], 1, "SAME"), self.biases[index]))
            if name in self.layers:
                outputs[name] = tf.cast(x, tf.float32)
        return outputs


@keras.saving.register_keras_serializable(package="tfnst")
class VGG19Features(keras.layers.Layer):
    """The Keras layer over `VGG19`: images in, ``{layer: activation}`` out.

    Its configuration names the weights' source, not the weights, so a model that
    contains it saves small and rebuilds the same network offline on load. The VGG19
    variables are frozen and not among the layer's Keras weights.

    Args:
        layers, pooling, vgg_weights, precision, normalize: as for `VGG19`.
    """

    def __init__(
        self,
        layers: Sequence[str],
        pooling: str = "max",
        vgg_weights: str = "imagenet",
        precision: str = "float32",
        normalize: Sequence | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vgg = VGG19(layers, pooling=pooling, vgg_weights=vgg_weights, precision=precision, normalize=normalize)
        self.config_ = dict(
            layers=list(self.vgg.layers),
            pooling=pooling,
            vgg_weights=vgg_weights,
            precision=precision,
            normalize=None if normalize is None else list(normalize),
        )

    def call(self, images):
        return self.vgg(images)

    def compute_output_spec(self, images):
        batch, h, w = images.shape[0], images.shape[1], images.shape[2]
        out = {}
        for name in self.vgg.layers:
            s = layer_stride(name)
            out[name] = keras.KerasTensor(
                (batch, None if h is None else h // s, None if w is None else w // s, LAYER_CHANNELS[name])
            )
        return out

    def get_config(self):
        return {**super().get_config(), **self.config_}


def build_feature_model(
    layers: Sequence[str],
    *,
    pooling: str = "max",
    vgg_weights: str = "imagenet",
    normalize: Sequence | None = None,
    precision: str = "float32",
) -> keras.Model:
    """A Keras model whose outputs are ``{layer name: activation}`` (`VGG19Features`).

    Args:
        layers: VGG19 layer names (Keras' ``blockN_convM``); the network is truncated
            after the deepest, so no work is spent on layers nobody reads.
        pooling, vgg_weights, normalize, precision: as for `VGG19`.

    Returns:
        A `keras.Model` taking [B, H, W, 3] RGB in [0, 1].

    Raises:
        TfnstError: for unknown layers, pooling or precision.
    """
    layer = VGG19Features(
        layers,
        pooling=pooling,
        vgg_weights=vgg_weights,
        precision=precision,
        normalize=normalize,
        name="vgg19_features",
    )
    inputs = keras.Input(shape=(None, None, 3), name="image")
    return keras.Model(inputs, layer(inputs), name=f"vgg19_features_{pooling}")


# ------------------------------------------------------------------ normalized VGG
def normalization_scales(arrays, images, pooling: str = "max") -> dict[str, np.ndarray]:
    """Each conv filter's mean ReLU activation over ``images`` and positions."""
    model = VGG19(CONV_LAYERS, pooling=pooling, arrays=arrays)
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
    from tfnst.image_io import read_image
    from tfnst.resize import fit_size, resize

    paths = list(paths) or [EXAMPLES_DIR / n for n in NORMALIZATION_EXAMPLES if (EXAMPLES_DIR / n).is_file()]
    if not paths:
        raise TfnstError("normalize_vgg needs images: pass some, or run from a checkout with examples/")
    images = [read_image(p) for p in paths]
    return [resize(im, fit_size(im.shape[:2], 256)).numpy() for im in images]
