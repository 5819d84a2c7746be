"""Feed-forward stylization networks, trained the Keras way with tfnst's perceptual loss.

The transformer of Johnson, Alahi & Fei-Fei ("Perceptual Losses for Real-Time Style
Transfer and Super-Resolution", ECCV 2016: a 9x9 convolution, two stride-2
convolutions, residual blocks, two upsamplings, a 9x9 convolution), with instance
normalization (Ulyanov, Vedaldi & Lempitsky 2016; `keras.layers.GroupNormalization`
with one group per channel) and resize-convolution upsampling (nearest-neighbour
upsampling, then a convolution: Odena, Dumoulin & Olah 2016, no checkerboard
artifacts), reflection padding throughout. Trained once per style with `model.fit` on
`tfnst.PerceptualLoss`; then one forward pass stylizes any image.

Training may add a stability term (`stability_loss`), so that the network's output moves
with its input instead of flickering when applied to a video frame by frame: the output
on a second view of each training crop, moved by a known translation and slightly noisy,
should be the first output moved the same way. It follows the temporal loss of Huang et
al. ("Real-Time Neural Style Transfer for Videos", CVPR 2017) with synthetic motion of
the crops instead of video frames and optical flow (docs/video.md says where it departs).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfnst.atomic import atomic_path
from tfnst.config import UPSAMPLINGS, TrainConfig
from tfnst.errors import TfnstError
from tfnst.vgg_layers import MIN_SIDE


@keras.saving.register_keras_serializable(package="tfnst")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by ``padding`` pixels, mirroring the image (no border edge)."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, shape):
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tfnst")
class Upsampling2x(keras.layers.Layer):
    """Doubles height and width by ``tf.image.resize`` with ``method``: "bilinear" (half-pixel
    centres: TFLite's RESIZE_BILINEAR) or "nearest" (TFLite's RESIZE_NEAREST_NEIGHBOR, the
    values of Keras' ``UpSampling2D``, whose repeat's dynamic reshapes TFLite cannot convert:
    `tfnst.litert` swaps it for this).

    Not Keras' ``UpSampling2D(interpolation="bilinear")``: the same values, but a repeat of
    reshapes that LiteRT's converter loses the channel count of.
    """

    def __init__(self, method: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.method = method

    def call(self, x):
        shape = tf.shape(x)
        return tf.image.resize(x, tf.stack([2 * shape[1], 2 * shape[2]]), method=self.method)

    def compute_output_shape(self, shape):
        twice = lambda d: None if d is None else 2 * d  # noqa: E731
        return (shape[0], twice(shape[1]), twice(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "method": self.method}


def _transformer_core(width: int, depth: int, seed: int, upsampling: str = "bilinear") -> keras.Model:
    """The network on float [0, 1] images whose sides are multiples of 4."""
    counter = iter(range(10_000))

    def conv(x, filters, kernel, strides=1, norm=True, relu=True, name=""):
        x = ReflectionPadding2D(kernel // 2, name=f"{name}_pad")(x)
        x = keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="valid",
            name=f"{name}_conv",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + next(counter)),
        )(x)
        if norm:  # instance normalization: statistics per image and channel
            x = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=f"{name}_in")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input((None, None, 3), name="image")
    x = conv(inputs, width, 9, name="c1")
    x = conv(x, 2 * width, 3, strides=2, name="d1")
    x = conv(x, 4 * width, 3, strides=2, name="d2")
    for i in range(depth):
        y = conv(x, 4 * width, 3, name=f"r{i + 1}a")
        y = conv(y, 4 * width, 3, relu=False, name=f"r{i + 1}b")
        x = keras.layers.Add(name=f"r{i + 1}")([x, y])
    for i, filters in enumerate((2 * width, width)):
        if upsampling == "nearest":
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"u{i + 1}_up")(x)
        else:
            x = Upsampling2x("bilinear", name=f"u{i + 1}_up")(x)
        x = conv(x, filters, 3, name=f"u{i + 1}")
    x = conv(x, 3, 9, norm=False, relu=False, name="out")
    outputs = keras.layers.Activation("sigmoid", name="rgb")(x)
    return keras.Model(inputs, outputs, name="transformer_core")


@keras.saving.register_keras_serializable(package="tfnst")
class StyleTransformer(keras.Model):
    """A feed-forward stylization network: images in, stylized images of the same size out.

    Takes [B, H, W, 3] images of any size (at least 16 pixels a side), uint8 (0-255) or
    float in [0, 1]; returns float32 in [0, 1]. Sides are padded (mirrored) to a multiple
    of 4 for the two stride-2 convolutions and cropped back. ``model.save("x.keras")``
    and ``keras.saving.load_model("x.keras")`` round-trip without ``custom_objects``.

    Args:
        width: filters of the first layer (the network has 2x and 4x that deeper);
            Johnson et al.: 32. 16 makes a network about 4x cheaper, for CPUs.
        depth: residual blocks (Johnson et al.: 5).
        seed: of the initial weights.
        upsampling: ``"bilinear"`` (the default) or ``"nearest"``, the interpolation of
            the two 2x upsamplings before their convolutions. Nearest-neighbour copies
            each value into a 2x2 block, a staircase that printed a grid of period 2 and
            4 pixels on flat areas (docs/networks.md, "The grid"); bilinear does not.
    """

    def __init__(self, width: int = 32, depth: int = 5, seed: int = 0, upsampling: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TfnstError(f"{name} must be a positive whole number, not {value!r}")
        if upsampling not in UPSAMPLINGS:
            raise TfnstError(f"upsampling must be one of {', '.join(UPSAMPLINGS)}, not {upsampling!r}")
        self.width, self.depth, self.seed, self.upsampling = width, depth, int(seed), upsampling
        self.core = _transformer_core(width, depth, self.seed, upsampling)
        # Training only (`compute_loss`): not part of the configuration, so a saved
        # network is the plain network whatever it was trained with.
        self.stability_weight = 0.0
        self.loss_jitter = 0
        self.built = True

    def call(self, images, training=False):
        images = tf.convert_to_tensor(images)
        if images.dtype.is_integer:
            x = tf.cast(images, tf.float32) / 255.0
        else:
            x = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        x = tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="SYMMETRIC")
        return self.core(x, training=training)[:, :h, :w, :]

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {
            "name": self.name,
            "width": self.width,
            "depth": self.depth,
            "seed": self.seed,
            "upsampling": self.upsampling,
        }

    @classmethod
    def from_config(cls, config):
        # Networks saved before the option existed upsampled by nearest neighbour: their
        # weights were trained for it, so they load with it.
        return cls(**{"upsampling": "nearest", **config})

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss, plus ``stability_weight`` times `stability_loss` when ``y``
        carries second views (`tfnst.datasets.training_dataset` with ``shift``): ``y`` is
        then ``{"content": x, "moved": second views, "shift": [B, 2] (dy, dx)}`` and the
        compiled loss sees ``y["content"]``. Keras' ``fit`` calls this inside its gradient
        tape, on each replica's share of the batch under a `tf.distribute` strategy, so
        the second views go through the network (and the gradient) with the first."""
        if not isinstance(y, dict):
            return super().compute_loss(x, *self._jittered(y, y_pred), sample_weight, training=training)
        loss = super().compute_loss(x, *self._jittered(y["content"], y_pred), sample_weight, training=training)
        if self.stability_weight > 0:
            moved = self(y["moved"], training=training)
            # Keras scales each compiled loss by 1 / replicas in a replica's step (the sum
            # over the replicas, which their gradients are, is then the mean): the same here,
            # or N replicas would weigh the term N times (measured: a 29% higher loss on two).
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss = loss + (self.stability_weight / replicas) * stability_loss(y_pred, moved, y["shift"])
        return loss

    def _jittered(self, content, output):
        """``content`` and ``output`` as the compiled loss sees them: with ``loss_jitter``
        J > 0, both cut to a window J pixels narrower and shorter, at an offset in
        [0, J) along each axis drawn from (seed, Adam's step): the same on every replica
        and after a resume, another at every step.

        The loss network's max-pooling sends each gradient to one pixel of every 2x2
        window (periods 2, 4, ... in the gradient), and the network's strides repeat every
        4 pixels: with the crops' origins aligned, the two grids keep one phase and the
        network learns a pattern locked to it (docs/networks.md, "The grid"). The offset
        changes that phase every step."""
        jitter = int(self.loss_jitter)
        if not jitter:
            return content, output
        step = tf.cast(self.optimizer.iterations, tf.int64)
        offset = tf.random.stateless_uniform(
            [2], seed=tf.stack([tf.constant(self.seed, tf.int64), step]), maxval=jitter, dtype=tf.int32
        )
        h, w = tf.shape(output)[1] - jitter, tf.shape(output)[2] - jitter
        cut = lambda t: t[:, offset[0] : offset[0] + h, offset[1] : offset[1] + w]  # noqa: E731
        return cut(content), cut(output)


def stability_loss(first, second, shift) -> tf.Tensor:
    """The stability term: how far a network's output on a moved view is from its output on
    the original view, moved the same way.

    ``first`` and ``second`` are the outputs [B, H, W, C] on a view and on the view moved by
    ``shift`` [B, 2] = (dy, dx) whole pixels (the second view's pixel (i, j) is the first
    view's (i + dy, j + dx)). The term is the mean squared difference (over the channels
    and the pixels both views see, then over the batch) between ``second[i, j]`` and
    ``first[i + dy, j + dx]``: 0 for a network that commutes with the translation on the
    overlap, such as the identity; in [0, 1] pixel units, as Ruder et al.'s temporal loss
    (`tfnst.terms.Temporal`) and Lai et al.'s warping error are.
    """
    first = tf.convert_to_tensor(first, tf.float32)
    second = tf.convert_to_tensor(second, tf.float32)
    shift = tf.cast(shift, tf.int32)
    h, w = tf.shape(second)[1], tf.shape(second)[2]
    rows = tf.range(h)[None, :] + shift[:, :1]  # [B, H]: the first view's row of each second-view row
    cols = tf.range(w)[None, :] + shift[:, 1:]  # [B, W]
    moved = tf.gather(first, tf.clip_by_value(rows, 0, h - 1), axis=1, batch_dims=1)
    moved = tf.gather(moved, tf.clip_by_value(cols, 0, w - 1), axis=2, batch_dims=1)
    inside = lambda i, n: tf.cast((i >= 0) & (i < n), tf.float32)  # noqa: E731
    seen = (inside(rows, h)[:, :, None] * inside(cols, w)[:, None, :])[..., None]  # [B, H, W, 1]
    sums = tf.reduce_sum(seen * tf.square(second - moved), axis=[1, 2, 3])
    pixels = tf.reduce_sum(seen, axis=[1, 2, 3]) * tf.cast(tf.shape(second)[3], tf.float32)
    return tf.reduce_mean(tf.math.divide_no_nan(sums, pixels))


# ------------------------------------------------------------------ training
class Preview(keras.callbacks.Callback):
    """Writes the network's stylization of ``image`` every ``every`` training steps to
    ``path`` (``{step}`` in it gives one file per preview), atomically. The step is the
    optimizer's, so a resumed training goes on counting."""

    def __init__(self, image, path, every: int = 100):
        super().__init__()
        from tfnst.image_io import to_array

        self.image, self.path, self.every = to_array(image), str(path), int(every)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every == 0:
            from tfnst.image_io import save_image

            out = self.model(self.image[None], training=False)[0]
            save_image(out, Path(self.path.format(step=step)))


def perceptual_loss(style, config: TrainConfig):
    """tfnst's `PerceptualLoss` for ``config`` over one VGG19 feature model; the style
    image is fitted to the training size (its longest side ``config.size``)."""
    from tfnst.features import build_feature_model
    from tfnst.image_io import to_array
    from tfnst.keras_losses import PerceptualLoss
    from tfnst.resize import fit_size, resize

    style = to_array(style)
    style = resize(style, fit_size(style.shape[:2], config.size)).numpy()
    if min(style.shape[:2]) < MIN_SIDE:
        raise TfnstError(
            f"the style image is {style.shape[1]}x{style.shape[0]} at size {config.size}; "
            f"it needs at least {MIN_SIDE} pixels a side"
        )
    features = build_feature_model(
        tuple(dict.fromkeys(config.content_layers + config.style_layers)), precision=config.precision
    )
    return PerceptualLoss(
        features,
        style,
        config.content_layers,
        config.style_layers,
        content_weight=config.content_weight,
        style_weight=config.style_weight,
        tv_weight=config.tv_weight,
    )


def schedule(steps: int, steps_per_epoch: int) -> tuple[int, int]:
    """(epochs, steps per epoch) for ``steps`` training steps: whole passes over the
    data while there is room, and never fewer steps than asked (the last epoch is whole)."""
    per_epoch = min(steps, steps_per_epoch)
    return math.ceil(steps / per_epoch), per_epoch


def train(
    style, images, *, config: TrainConfig | None = None, callbacks=(), strategy=None, verbose="auto", **options
) -> StyleTransformer:
    """Train a `StyleTransformer` for ``style`` on a folder of content images.

    Args:
        style: the style image (path, array, PIL image).
        images: a folder of training photos (JPEG/PNG/GIF/BMP, any layout; COCO is
            what the paper used).
        config: a `TrainConfig`; ``options`` override its fields.
        callbacks: Keras callbacks (`Preview`, `keras.callbacks.ModelCheckpoint`,
            `keras.callbacks.BackupAndRestore`, `keras.callbacks.TensorBoard`, …).
        strategy: a `tf.distribute` strategy (e.g. `tf.distribute.MirroredStrategy`,
            `tf.distribute.MultiWorkerMirroredStrategy`, `tf.distribute.TPUStrategy`);
            the model, its loss and optimizer are built in its scope and `model.fit`
            splits each batch (``batch_size`` is the global batch) across its replicas.
            Several hosts: docs/networks.md, "More than one machine".
        verbose: Keras' progress bar setting.

    Returns:
        The trained network, compiled with its loss (so it saves with it).

    Raises:
        TfnstError: for bad options, a missing or empty folder, no readable image.
    """
    from tfnst.datasets import training_dataset

    cfg = (config or TrainConfig()).replace(**options)
    shift = cfg.stability_shift if cfg.stability_weight > 0 else 0
    dataset, per_pass = training_dataset(
        images, cfg.size, cfg.batch_size, cfg.crops, cfg.seed, shift=shift, crop_size=cfg.crop_size
    )
    epochs, steps_per_epoch = schedule(cfg.steps, per_pass)
    learning_rate = cfg.learning_rate
    if cfg.learning_rate_decay == "cosine":  # a function of Adam's step count: resumes where it stopped
        learning_rate = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, epochs * steps_per_epoch)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = StyleTransformer(
            cfg.width,
            cfg.depth,
            seed=cfg.seed,
            upsampling=cfg.upsampling,
            name=f"style_transformer_w{cfg.width}_d{cfg.depth}",
        )
        model.stability_weight = float(cfg.stability_weight)
        model.loss_jitter = cfg.loss_jitter
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss=perceptual_loss(style, cfg), jit_compile=False
        )
        # Adam's moments are built here, in the scope (mirrored like the weights), not
        # outside it by BackupAndRestore's restore before the first step.
        model.optimizer.build(model.trainable_variables)
    with _reduces_structures(strategy):
        model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=list(callbacks), verbose=verbose)
    return model


@contextlib.contextmanager
def _reduces_structures(strategy):
    """``strategy.reduce`` taking a structure of values, for the time of a ``model.fit``.

    Keras 3's ``fit`` under `MultiWorkerMirroredStrategy` fails twice in
    ``strategy.reduce`` (keras-team/keras#20585, tensorflow/tensorflow#72388): it reduces a
    first (x, y) batch to build the metrics, and `MirroredStrategy` reduces a structure
    but this strategy one value ("Attempt to convert a value (PerReplica…)"); then it
    reduces each step's scalar logs along ``axis=0``, which a scalar does not have. Here
    each value is reduced on its own (in the same order on every worker), and a scalar
    across the replicas (``axis=None``): the mean of the workers' losses.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    reduce = strategy.reduce

    def reduce_each(op, value, axis=None):
        def one(v):
            rank = tf.nest.flatten(strategy.experimental_local_results(v))[0].shape.rank
            return reduce(op, v, axis=None if rank == 0 else axis)

        return tf.nest.map_structure(one, value)

    strategy.reduce = reduce_each
    try:
        yield
    finally:
        del strategy.reduce  # the class's method again


def save_network(model: keras.Model, path) -> Path:
    """``model.save`` to a temporary file beside ``path``, then renamed: a reader never
    sees half a model, and a failed save leaves the old file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise TfnstError(f"{path}: a network is saved as .keras")
    with atomic_path(path, suffix=".keras") as tmp:  # Keras wants the suffix
        model.save(tmp)
    return path


def load_network(path) -> keras.Model:
    """A network saved with `save_network` / ``model.save`` (no ``custom_objects``).

    Raises:
        TfnstError: when the file is missing or not a tfnst network.
    """
    path = Path(path)
    if not path.is_file():
        raise TfnstError(f"{path}: no such network file")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # a zip that is not a Keras model, a truncated file, …
        raise TfnstError(f"{path} is not a readable Keras network ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(model, StyleTransformer):
        raise TfnstError(f"{path} holds a {type(model).__name__}, not a tfnst StyleTransformer")
    return model


def stylize_with(model: keras.Model, image, size: int | None = None) -> np.ndarray:
    """One image through a network: float32 [H, W, 3] in [0, 1]; with ``size``, the
    image is first resized to that longest side."""
    from tfnst.image_io import to_array
    from tfnst.resize import fit_size, resize

    image = to_array(image)
    if size:
        image = resize(image, fit_size(image.shape[:2], size)).numpy()
    if min(image.shape[:2]) < MIN_SIDE:
        raise TfnstError(
            f"the image is {image.shape[1]}x{image.shape[0]}; the network needs at least {MIN_SIDE} pixels a side"
        )
    return model(image[None], training=False).numpy()[0]


# ------------------------------------------------------------------ serving
def export_network(model: keras.Model, out, *, max_size: int | None = None, version: int | None = None) -> Path:
    """A TF-Serving SavedModel of a trained network, ``out/<version>/``.

    Signatures: ``serving_default``: ``images``, string [N] (encoded JPEG/PNG/…) →
    ``stylized_bytes``, PNG string [N] (each image on its own; sizes may differ);
    ``stylize_float``: ``images`` float32 [N, H, W, 3] in [0, 1] → ``stylized``. Written
    with `keras.export.ExportArchive` (Keras' route to a SavedModel TF Serving loads).
    Images whose longest side exceeds ``max_size`` are resized to it in the graph.
    """
    from tfnst.serving import check_size, clamp, decode, encode_png, save_servable

    def fitted(image):  # [H, W, 3]: checked, then resized to max_size when larger
        return clamp(check_size(image, "images"), max_size)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve_bytes(images):
        def one(data):
            return encode_png(model(fitted(decode(data))[None], training=False)[0])

        return {"stylized_bytes": tf.map_fn(one, images, fn_output_signature=tf.TensorSpec([], tf.string))}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")], autograph=False)
    def serve_float(images):
        images = tf.map_fn(fitted, images, fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))
        return {"stylized": model(images, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_bytes)
    archive.add_endpoint("stylize_float", serve_float)
    return save_servable(archive.write_out, out, version)
