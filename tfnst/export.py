"""The exporter: the library's stylization engine, traced into a TF-Serving SavedModel.

`StylizationModule.stylize_image` calls `tfnst.engine.Engine.run`, the same colour
handling, resizing, targets and optimizer `step` that `tfnst.Stylizer` runs, in one
graph (see that module). The image and the optimizer state are loop values, not
variables, so concurrent requests of different sizes and options do not interfere.

Signatures (TF Serving's REST API encodes a string output as ``{"b64": …}`` only when
its name ends in ``_bytes``, and needs every input of a signature in each request):

- ``serving_default``: ``content``, ``style`` (``style_2`` … for a blend): string [N],
  encoded JPEG/PNG/GIF/BMP → ``stylized_bytes``: PNG string [N]. Each pair on its own.
- ``stylize_options``: the same plus ``content_weight``, ``style_weight`` (float [N])
  and ``iterations`` (int32 [N]: the most iterations any scale runs, a latency knob;
  at most the exported plan's largest count, which is the default).
- ``stylize_float``: ``content`` float32 [N, H, W, 3] in [0, 1], ``style`` [N or 1,
  H', W', 3] → ``stylized`` float32 [N, H, W, 3] (TF Hub's ``model(content, style)``
  convention; the loaded object is callable the same way).

Images whose longest side exceeds ``max_size`` are resized to it inside the graph.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tfnst.config import INITS, StyleConfig, check_layers_used, check_request
from tfnst.engine import Engine
from tfnst.errors import TfnstError
from tfnst.features import VGG19
from tfnst.objective import TERMS, config_term_weights, feature_layers
from tfnst.plan import most_iterations
from tfnst.serving import check_size, clamp, decode, directory_size, encode_png, next_version, save_servable
from tfnst.vgg_layers import MIN_SIDE

# next_version, save_servable and directory_size were defined here before tfnst.serving.
__all__ = [
    "StylizationModule",
    "directory_size",
    "export_savedmodel",
    "exportable",
    "next_version",
    "save_servable",
    "style_inputs",
]


def style_inputs(count: int) -> list[str]:
    """The style inputs' names: ``style``, ``style_2``, … ``style_<count>``."""
    return ["style"] + [f"style_{i}" for i in range(2, count + 1)]


def exportable(config: StyleConfig) -> StyleConfig:
    """``config``, or a `TfnstError` saying why it cannot be served.

    Everything of `StyleConfig` exports except an init image file (a served graph has
    only its request's inputs)."""
    if config.init is not None and config.init not in INITS:
        raise TfnstError(
            "init from an image file is not exported (a served graph has only the "
            f"request's images); use one of {', '.join(INITS)}"
        )
    # The request-level rules, as a request will bring its images: a content image and
    # one style per style input.
    check_request(config, has_content=True, styles=len(config.style_blend) if config.style_blend else 1)
    check_layers_used(config)
    return config


class StylizationModule(tf.Module):
    """What gets saved: the truncated VGG19's variables and the stylization functions.

    Args:
        config: the options of the stylization (validated; see `exportable`).
        iterations: the iterations at full size (the config's ``iterations``); a request
            may cap every scale's count (`tfnst.plan.plan`) at or below the plan's largest.
        max_size: larger images are resized to this longest side.
    """

    def __init__(self, config: StyleConfig, iterations: int, max_size: int):
        super().__init__(name="tfnst_stylize")
        if max_size < MIN_SIDE:
            raise TfnstError(f"max_size must be at least {MIN_SIDE}, not {max_size}")
        self.config = exportable(config.replace(iterations=int(iterations)))
        self.iterations, self.max_size = most_iterations(self.config), int(max_size)
        self.style_count = len(config.style_blend) if config.style_blend else 1
        self.vgg = VGG19(
            feature_layers(config),
            pooling=config.pooling,
            vgg_weights=config.vgg_weights,
            precision=config.precision,
            normalize=config.normalize_vgg,
        )
        self.engine = Engine(self.config, self.vgg)
        # One traced stylization that every signature calls: the SavedModel holds the
        # engine's graph once, not once per signature (3x less to trace, save and load).
        self._stylize_one = tf.function(
            self.stylize_image,
            autograph=False,  # graph-safe as written (tf.while_loop, tf.cond): no conversion to pay for
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.float32),
                [tf.TensorSpec([None, None, 3], tf.float32)] * self.style_count,
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([len(TERMS)], tf.float32),
            ],
        )
        names = style_inputs(self.style_count)
        self.serving_default = self._signature(self._serve_bytes, names, options=False)
        self.stylize_options = self._signature(self._serve_bytes, names, options=True)
        float_spec = [tf.TensorSpec([None, None, None, 3], tf.float32, name=n) for n in ["content", *names]]
        self.stylize_float = tf.function(self._serve_float, input_signature=float_spec, autograph=False)
        self.__call__ = self.stylize_float  # model(content, style), as TF Hub's stylization modules

    def stylize_image(self, content, styles, iterations, weights_of_terms) -> tf.Tensor:
        """[H, W, 3] content and styles in [0, 1] → the stylized [H', W', 3] (graph)."""
        content = clamp(check_size(content, "content image"), self.max_size)
        styles = [check_size(s, "style image") for s in styles]
        cap = tf.clip_by_value(tf.cast(iterations, tf.int32), 0, self.iterations)
        return self.engine.run(content, styles, cap, weights_of_terms, seed=self.config.seed or 0)

    def _term_weights(self, content_weight, style_weight):
        default = config_term_weights(self.config)
        return tf.tensor_scatter_nd_update(
            default, [[TERMS.index("content")], [TERMS.index("style")]], tf.stack([content_weight, style_weight])
        )

    def _signature(self, fn, names, options: bool):
        specs = [tf.TensorSpec([None], tf.string, name=n) for n in ["content", *names]]
        if options:
            specs += [
                tf.TensorSpec([None], tf.float32, name="content_weight"),
                tf.TensorSpec([None], tf.float32, name="style_weight"),
                tf.TensorSpec([None], tf.int32, name="iterations"),
            ]
        count = len(names)

        def serve(*args):
            images = args[: count + 1]
            if options:
                extra = args[count + 1 :]
            else:
                n = tf.shape(images[0])[:1]
                extra = (
                    tf.fill(n, self.config.content_weight),
                    tf.fill(n, self.config.style_weight),
                    tf.fill(n, self.iterations),
                )
            return fn(images, *extra)

        return tf.function(serve, input_signature=specs, autograph=False)

    def _serve_bytes(self, images, content_weight, style_weight, iterations):
        checks = [
            tf.debugging.assert_equal(
                tf.shape(x)[0], tf.shape(images[0])[0], message="every input needs one value per image"
            )
            for x in (*images[1:], content_weight, style_weight, iterations)
        ]

        def one(args):
            *encoded, cw, sw, n = args
            content, *styles = (decode(e) for e in encoded)
            return encode_png(self._stylize_one(content, styles, n, self._term_weights(cw, sw)))

        with tf.control_dependencies(checks):
            pngs = tf.map_fn(
                one,
                (*images, content_weight, style_weight, iterations),
                fn_output_signature=tf.TensorSpec([], tf.string),
            )
        return {"stylized_bytes": pngs}

    def _serve_float(self, content, *styles):
        n = tf.shape(content)[0]
        checks = [
            tf.debugging.assert_equal(
                (tf.shape(s)[0] == n) | (tf.shape(s)[0] == 1),
                True,
                message="a style batch must have one image, or one per content image",
            )
            for s in styles
        ]
        with tf.control_dependencies(checks):
            styles = [tf.cond(tf.shape(s)[0] == 1, lambda s=s: tf.repeat(s, n, axis=0), lambda s=s: s) for s in styles]
        default = config_term_weights(self.config)

        def one(args):
            c, *s = (tf.clip_by_value(a, 0.0, 1.0) for a in args)
            return self._stylize_one(c, s, tf.constant(self.iterations, tf.int32), default)

        out = tf.map_fn(one, (content, *styles), fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))
        return {"stylized": out}

    def signatures(self) -> dict:
        return {
            "serving_default": self.serving_default,
            "stylize_options": self.stylize_options,
            "stylize_float": self.stylize_float,
        }

    def write(self, folder: str) -> None:
        """Save this module and its signatures as a SavedModel in ``folder``."""
        tf.saved_model.save(self, folder, signatures=self.signatures())


def export_savedmodel(
    out, *, iterations: int, max_size: int, version: int | None = None, config: StyleConfig | None = None
) -> Path:
    """Export a stylization of ``config`` as a TF-Serving SavedModel ``out/<version>/``.

    Args:
        out: the model folder (TF Serving's ``model_base_path``).
        iterations: the iterations at full size (coarser scales: the config's
            ``coarse_iterations``); a request may cap them all.
        max_size: larger images are resized to this longest side inside the graph.
        version: the version folder; one more than the highest present when None.
        config: the options; `StyleConfig` defaults when None.

    Returns:
        The version folder.

    Raises:
        TfnstError: for options that cannot be served, or bad arguments.
    """
    config = (config or StyleConfig()).replace(iterations=iterations)
    if max_size < MIN_SIDE:
        raise TfnstError(f"max_size must be at least {MIN_SIDE}, not {max_size}")
    exportable(config)
    module = StylizationModule(config, iterations, max_size)
    return save_servable(module.write, out, version)
