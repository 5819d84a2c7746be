"""The exporter: a fixed-iteration stylization graph as a TF-Serving SavedModel.

The graph runs the library's own loss (`StyleTransferObjective`) and Adam update
(`adam_update`) for N steps inside one `tf.function`; the image and Adam's moments
are loop values, not variables, so concurrent requests of different sizes do not
interfere. Signatures:

- ``serving_default``: ``content``, ``style``: string [None] (encoded JPEG/PNG, as TF
  Serving's REST API sends ``{"b64": …}``) → ``stylized``: PNG string [None]. Images in
  a batch may differ in size; each is stylized on its own.
- ``stylize_float``: ``content``, ``style``: float32 [1, H, W, 3] in [0, 1] →
  ``stylized``: float32 [1, H', W', 3].

Images whose longest side exceeds ``max_size`` are resized to it inside the graph.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.features import MIN_SIDE, VGG19Module
from tfnst.objective import StyleTransferObjective
from tfnst.optimizers import adam_update, ema_debiased, ema_update

log = logging.getLogger(__name__)


def _fit_longest(image: tf.Tensor, longest: tf.Tensor) -> tf.Tensor:
    """Resize [H, W, 3] so that its longest side is ``longest`` (as `image_io.fit_size`)."""
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(longest, tf.float32) / tf.reduce_max(hw)
    size = tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), 1)
    resized = tf.image.resize(image, size, method="bilinear", antialias=True)
    # Same size: keep the pixels exactly (the library does not resample then either).
    return tf.cond(tf.reduce_all(tf.equal(size, tf.shape(image)[:2])), lambda: image,
                   lambda: tf.clip_by_value(resized, 0.0, 1.0))


def _check_image(image: tf.Tensor, name: str) -> tf.Tensor:
    """InvalidArgument for images too small to stylize, rather than a NaN result."""
    shape = tf.shape(image)
    with tf.control_dependencies([tf.debugging.assert_greater_equal(
            tf.reduce_min(shape[:2]), MIN_SIDE,
            message=f"{name} image must be at least {MIN_SIDE}x{MIN_SIDE} pixels")]):
        return tf.identity(image)


class StylizationGraph(tf.Module):
    """What gets saved: the truncated VGG19 variables and the stylization functions."""

    def __init__(self, config: StyleConfig, iterations: int, max_size: int):
        super().__init__(name="tfnst_stylize")
        if config.optimizer != "adam":
            raise TfnstError("the exported graph uses Adam; L-BFGS is not exported")
        unsupported = [name for name, on in (("scales", config.scales > 1),
                                             ("style_blend", config.style_blend is not None),
                                             ("preserve_color", config.preserve_color is not None),
                                             ("discriminator", config.style_statistic == "discriminator"),
                                             ("normalize_vgg", config.normalize_vgg is not None))
                       if on]
        if unsupported:
            raise TfnstError(f"not supported in the exported graph yet: {', '.join(unsupported)}")
        if max_size < MIN_SIDE:
            raise TfnstError(f"max_size must be at least {MIN_SIDE}, not {max_size}")
        self.config = config
        self.iterations = int(iterations)
        self.max_size = int(max_size)
        layers = config.style_layers + (config.content_layers if config.content_weight > 0 else ())
        self.vgg = VGG19Module(layers, pooling=config.pooling, weights=config.weights,
                               precision=config.precision)
        self._objective = StyleTransferObjective(config, feature_model=self.vgg)
        self.loss_weights = self._objective.loss_weights  # tracked, so it is saved

    def stylize_image(self, content: tf.Tensor, style: tf.Tensor) -> tf.Tensor:
        """[H, W, 3] content and style in [0, 1] → the stylized [H', W', 3]."""
        content = _check_image(content, "content")
        style = _check_image(style, "style")
        content = tf.cond(tf.reduce_max(tf.shape(content)[:2]) > self.max_size,
                          lambda: _fit_longest(content, self.max_size), lambda: content)
        longest = tf.maximum(MIN_SIDE, tf.cast(tf.round(
            self.config.style_scale * tf.cast(tf.reduce_max(tf.shape(content)[:2]), tf.float32)), tf.int32))
        style = _fit_longest(style, longest)
        targets = self._objective.targets(content, style)
        decay = self.config.ema_decay
        x, m, v = content, tf.zeros_like(content), tf.zeros_like(content)
        average = tf.zeros_like(content)
        for i in tf.range(self.iterations):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total, _ = self._objective(x, targets)
            t = tf.cast(i + 1, tf.float32)
            x, m, v = adam_update(x, tape.gradient(total, x), m, v, t, self.config.learning_rate)
            if decay > 0:
                average = ema_update(average, x, decay)
        return ema_debiased(average, float(self.iterations), decay) if decay > 0 else x

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="content"),
                                  tf.TensorSpec([1, None, None, 3], tf.float32, name="style")])
    def stylize_float(self, content, style):
        return {"stylized": self.stylize_image(tf.clip_by_value(content[0], 0.0, 1.0),
                                               tf.clip_by_value(style[0], 0.0, 1.0))[None]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="content"),
                                  tf.TensorSpec([None], tf.string, name="style")])
    def serve_encoded(self, content, style):
        def one(pair):
            c, s = (tf.image.convert_image_dtype(
                tf.io.decode_image(b, channels=3, expand_animations=False), tf.float32) for b in pair)
            out = self.stylize_image(c, s)
            return tf.io.encode_png(tf.image.convert_image_dtype(out, tf.uint8, saturate=True))

        with tf.control_dependencies([tf.debugging.assert_equal(
                tf.shape(content), tf.shape(style), message="content and style batches differ in size")]):
            pngs = tf.map_fn(one, (content, style), fn_output_signature=tf.TensorSpec([], tf.string))
        return {"stylized": pngs}


def next_version(out: Path) -> int:
    """One more than the highest integer version folder in ``out`` (TF Serving's layout)."""
    versions = [int(p.name) for p in out.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)] \
        if out.is_dir() else []
    return max(versions, default=0) + 1


def export_savedmodel(out, *, iterations: int, max_size: int, version: int | None = None,
                      config: StyleConfig | None = None) -> Path:
    """Write ``out/<version>/`` (saved_model.pb + variables/) and return that path.

    The version folder appears whole or not at all (saved next to it, then renamed),
    since TF Serving loads any new version folder it sees.
    """
    config = (config or StyleConfig()).replace(iterations=iterations)
    out = Path(out)
    if version is None:
        version = next_version(out)
    if version < 0:
        raise TfnstError(f"version must be >= 0, not {version}")
    target = out / str(version)
    if target.exists():
        raise TfnstError(f"{target} already exists; pick another --version")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TfnstError(f"cannot create {out}: {e.strerror}") from None
    graph = StylizationGraph(config, iterations, max_size)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{version}.tmp"))
    try:
        tf.saved_model.save(graph, str(tmp), signatures={
            "serving_default": graph.serve_encoded, "stylize_float": graph.stylize_float})
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("tfnst: exported %s (%.1f MB)", target, directory_size(target) / 1e6)
    return target


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
