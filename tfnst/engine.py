"""The stylization engine: images → features → objective → optimizer → image.

`Engine` holds the graph-safe pieces of a stylization: colour preservation, fitting
the styles, the initial image, the coarse-to-fine sizes, the targets, the optimizer's
state and `step`. `tfnst.Stylizer` runs them from Python, one iteration at a time,
for its callbacks and checkpoints; `Engine.run` composes the very same pieces in one
graph (a `tf.while_loop` per scale), which is what `tfnst.export` saves for TF Serving.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfnst import color
from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.objective import Objective, loss_weights
from tfnst.optimizers import LBFGS, Adam
from tfnst.resize import fit_size, fit_size_tensor, resize
from tfnst.vgg_layers import MIN_SIDE


def make_optimizer(config: StyleConfig, objective):
    """The optimizer ``config`` asks for, over ``objective``."""
    if config.optimizer == "adam":
        return Adam(objective, ema_decay=config.averaging, patience=config.patience)
    if objective.statistic.stateful:
        raise TfnstError("the discriminator style loss needs optimizer='adam'")
    return LBFGS(objective, patience=config.patience)


def scale_sizes(hw, scales: int, factor: float) -> list[tuple[int, int]]:
    """(H, W) of each coarse-to-fine scale, smallest first, the last being ``hw``;
    each ``factor`` times the one before (never under `MIN_SIDE` pixels a side);
    a size equal to the one before is left out."""
    sizes = []
    for k in range(scales - 1, -1, -1):
        h, w = (max(MIN_SIDE, round(int(d) / factor**k)) for d in hw)
        if not sizes or (h, w) != sizes[-1]:
            sizes.append((h, w))
    return sizes


def scale_sizes_tensor(hw: tf.Tensor, scales: int, factor: float) -> list[tf.Tensor]:
    """`scale_sizes` in graph ops (same float64 arithmetic); repeats are kept, and
    `Engine.run` gives all but the last of them no iterations."""
    hw = tf.cast(hw, tf.float64)
    return [tf.maximum(tf.cast(tf.round(hw / factor**k), tf.int32), MIN_SIDE)
            for k in range(scales - 1, -1, -1)]


def style_side(hw, style_scale: float):
    """The longest side a style image gets for a result of size ``hw``: the result's
    longest side times ``style_scale`` (Gatys et al. resize the style to the content's
    size; the scale changes the brush strokes' size), at least `MIN_SIDE`."""
    if isinstance(hw, tf.Tensor):
        longest = tf.cast(tf.reduce_max(hw), tf.float64)
        return tf.maximum(tf.cast(tf.round(style_scale * longest), tf.int32), MIN_SIDE)
    return max(MIN_SIDE, round(style_scale * max(int(d) for d in hw)))


class Engine:
    """One stylization's graph-safe pieces, over a shared feature extractor.

    Args:
        config: the options.
        features: a `tfnst.features.VGG19` (or anything mapping images to
            ``{layer: features}``) with `tfnst.objective.feature_layers`.
        has_content: False for texture synthesis.
        regions: masked regions, one per style (spatial control); 0 = none.
        tile: evaluate the loss in tiles of this size (`tfnst.tiling`); None = whole.
            A tiled engine runs from Python only (`run` is for untiled graphs).
    """

    def __init__(self, config: StyleConfig, features, *, has_content: bool = True, regions: int = 0,
                 tile: int | None = None):
        self.config = config
        self.has_content = has_content
        self.objective = Objective(config, features, has_content=has_content, regions=regions, tile=tile)
        self.optimizer = make_optimizer(config, self.objective)

    # -------------------------------------------------------------- inputs
    def prepare(self, content, styles: Sequence):
        """Colour preservation before the optimization (Gatys et al. 2016b): the
        styles recoloured to the content's palette, or, for luminance-only transfer,
        the content's and the styles' luminance. Returns (content, styles)."""
        mode = self.config.preserve_color
        if mode == "histogram":
            return content, [color.match_colors(s, content) for s in styles]
        if mode == "luminance":
            return color.luminance(content), [color.match_luminance(s, content) for s in styles]
        return content, list(styles)

    def finish(self, image, content):
        """The result after the optimization: with luminance-only transfer, the
        result's luminance with the content's colours."""
        if self.config.preserve_color == "luminance":
            return color.with_content_colors(image, content)
        return image

    def fit_style(self, style, hw):
        """A style image resized for a result of size ``hw`` (`style_side`), or larger
        where its shortest side would be under `MIN_SIDE` (VGG19 pools 4 times): a
        small result (a coarse scale, a thumbnail) still gets a style it can read."""
        longest = style_side(hw, self.config.style_scale)
        if isinstance(longest, tf.Tensor):
            style = tf.convert_to_tensor(style, tf.float32)
            return resize(style, fit_size_tensor(tf.shape(style)[:2], longest, MIN_SIDE))
        return resize(style, fit_size(np.shape(style)[:2], longest, MIN_SIDE))

    def initial_image(self, init, content, style, hw, seed: int):
        """The starting image: the content, uniform noise (stateless, from ``seed``:
        the same in the library and a served graph), the style, or a given image."""
        if isinstance(init, str) and init == "content":
            if content is None:
                raise TfnstError("init='content' needs a content image")
            return resize(content, hw)
        if isinstance(init, str) and init == "noise":
            shape = tf.concat([tf.cast(hw, tf.int32), [3]], 0)
            return tf.random.stateless_uniform(shape, seed=[seed, 0])
        if isinstance(init, str) and init == "style":
            return resize(style, hw)
        image = resize(init, hw)
        return color.luminance(image) if self.config.preserve_color == "luminance" else image

    @staticmethod
    def warm_start(result, content, size):
        """Where the scale of ``size`` starts in coarse-to-fine: the coarser scale's
        ``result`` upsampled, plus, with a content image (full size), the content's
        detail that the coarser scale could not hold: the content at ``size`` less the
        content at the coarser size brought back up, the band between two levels of a
        Laplacian pyramid (Burt & Adelson 1983). So the finer scale begins with the
        photo's edges instead of a blurred copy of them (docs/speed.md measures what
        that gains); a texture (no content) starts from the upsampled result. Graph-safe.
        """
        image = resize(result, size, clip=False)
        if content is not None:
            coarse = resize(content, tf.shape(result)[:2])  # as the coarser scale's targets saw it
            image += resize(content, size, clip=False) - resize(coarse, size, clip=False)
        return tf.clip_by_value(image, 0.0, 1.0)

    def targets(self, content, styles, size, weights=None, masks=None, style_masks=None):
        """Content and style targets at ``size``: the content resized, each style fitted;
        with spatial control the masks resized to ``size`` and each style mask fitted
        with its style."""
        content_k = None if content is None else resize(content, size)
        fitted = [self.fit_style(s, size) for s in styles]
        if style_masks is not None:
            style_masks = [resize(m[..., None], tf.shape(f)[:2])[..., 0]
                           for m, f in zip(style_masks, fitted)]
        if masks is not None:
            masks = [resize(m[..., None], size)[..., 0] for m in masks]
        return self.objective.targets(content_k, fitted, self.config.style_blend,
                                      loss_weights(self.config) if weights is None else weights,
                                      masks=masks, style_masks=style_masks)

    def start(self, image, targets, learning_rate=None, tolerance=None):
        """The optimizer's state at ``image``."""
        cfg = self.config
        return self.optimizer.init_state(image, targets,
                                         cfg.learning_rate if learning_rate is None else learning_rate,
                                         cfg.tolerance if tolerance is None else tolerance)

    # -------------------------------------------------------------- in one graph
    def iterate(self, state, targets, iterations):
        """Up to ``iterations`` steps in a `tf.while_loop`, ending early when done."""
        def cond(i, s):
            return (i < iterations) & ~s["done"]

        def body(i, s):
            return i + 1, self.optimizer.step(s, targets)

        return tf.while_loop(cond, body, (tf.constant(0), state))[1]

    def run(self, content, styles: Sequence, iterations, weights=None, seed: int = 0):
        """The whole stylization of one [H, W, 3] content image, in graph ops.

        Args:
            content: [H, W, 3] in [0, 1] (already at the size to produce).
            styles: style images [H_i, W_i, 3] in [0, 1].
            iterations: per scale (a scalar tensor).
            weights: the loss terms' weights (`tfnst.objective.TERMS` order), or None.
            seed: of the noise initialisation.

        Returns:
            The stylized [H, W, 3] image.
        """
        cfg = self.config
        original = content
        content, styles = self.prepare(content, styles)
        state = None
        sizes = scale_sizes_tensor(tf.shape(content)[:2], cfg.scales, cfg.scale_factor)
        for scale, size in enumerate(sizes):
            targets = self.targets(content, styles, size, weights)
            if cfg.scale_iterations is not None:
                count = tf.minimum(iterations, cfg.scale_iterations[scale])
            else:  # as `StyleConfig.iterations_at`: ``iterations`` (a request's) at full size
                count = iterations if scale + 1 == len(sizes) else tf.minimum(iterations, cfg.coarse_iterations)
            if scale + 1 < len(sizes):
                # A size the next scale repeats gets no iterations: as `scale_sizes` keeps
                # one of the repeats and `StyleConfig.iterations_at` gives the sizes left
                # the last scales' counts, the later of the repeats is the one that runs.
                count = tf.where(tf.reduce_all(tf.equal(size, sizes[scale + 1])), 0, count)
            if state is None:
                image = self.initial_image(cfg.init, resize(content, size), styles[0], size, seed)
                state = self.start(image, targets)
            else:
                image = self.warm_start(self.optimizer.result_image(state), content, size)
                state = self.optimizer.rescale_state(state, image, targets)
            state = self.iterate(state, targets, count)
        return self.finish(self.optimizer.result_image(state), original)
