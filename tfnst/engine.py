"""The stylization engine: images → features → objective → optimizer → image.

`Engine` holds the graph-safe pieces of a stylization: colour preservation, fitting
the styles, the initial image, the targets, the optimizer's state and `step`.
`run_plan` is the one coarse-to-fine loop: it walks the scales of `tfnst.plan.plan`,
starting each from the one before, and hands each scale to an ``iterate`` function.
`tfnst.Stylizer` gives it one that steps from Python, one iteration at a time, for its
callbacks and checkpoints; `Engine.run` one that is a `tf.while_loop`, which is what
`tfnst.export` saves for TF Serving. Same plan, same starts, same steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tfnst import color
from tfnst import objective as objectives
from tfnst.config import LBFGS_HISTORY, StyleConfig
from tfnst.objective import Objective
from tfnst.optimizers import build_optimizer, done, failed
from tfnst.plan import plan
from tfnst.resize import fit_size, fit_size_tensor, resize
from tfnst.tiling import Tiled
from tfnst.vgg_layers import MIN_SIDE


def make_optimizer(config: StyleConfig, objective, history: int = LBFGS_HISTORY):
    """The optimizer ``config`` asks for, over ``objective`` (`tfnst.optimizers.build_optimizer`)."""
    return build_optimizer(config, objective, history)


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
        temporal: the runs carry a temporal target (`Inputs.temporal`, a video frame
            after the first): Ruder et al.'s term is on (`tfnst.terms.Temporal`).
        strategy: a `tf.distribute.Strategy` whose replicas share the tiles
            (`tfnst.tiling.Tiled`); None = one device. Untiled engines ignore it.
        history: an L-BFGS's correction pairs (`tfnst.memory.layout` chooses fewer
            where memory is short).
    """

    def __init__(
        self,
        config: StyleConfig,
        features,
        *,
        has_content: bool = True,
        regions: int = 0,
        tile: int | None = None,
        temporal: bool = False,
        strategy=None,
        history: int = LBFGS_HISTORY,
    ):
        self.config = config
        self.has_content = has_content
        objective = Objective(config, features, has_content=has_content, regions=regions, temporal=temporal)
        self.objective = objective if tile is None else Tiled(objective, tile, strategy)
        self.optimizer = make_optimizer(config, self.objective, history)

    # -------------------------------------------------------------- inputs
    def inputs(
        self, content, styles: Sequence, *, masks=None, style_masks=None, init=None, seed: int = 0, temporal=None
    ) -> Inputs:
        """A run's `Inputs`, with colour preservation applied before the optimization
        (Gatys et al. 2016b): the styles recoloured to the content's palette, or, for
        luminance-only transfer, the content's and the styles' luminance (and an init
        image's). Graph-safe."""
        mode = self.config.preserve_color
        init = (self.config.init or "content") if init is None else init
        original = content
        styles = list(styles)
        if mode == "histogram":
            styles = [color.match_colors(s, content) for s in styles]
        elif mode == "luminance":
            content, styles = color.luminance(content), [color.match_luminance(s, original) for s in styles]
            if not isinstance(init, str):
                init = color.luminance(init)
            if temporal is not None:  # the earlier results as the optimization saw them
                temporal = temporal._replace(warped=color.luminance(temporal.warped))
        return Inputs(content, original, styles, masks, style_masks, init, seed, temporal)

    def restore_colors(self, image, content):
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

    def initial_image(self, inputs: Inputs, hw):
        """The starting image at ``hw``: the content, uniform noise (stateless, from the
        seed: the same in the library and a served graph), the style, or a given image."""
        init = inputs.init
        if isinstance(init, str) and init == "content":
            return resize(inputs.content, hw)
        if isinstance(init, str) and init == "noise":
            shape = tf.concat([tf.cast(hw, tf.int32), [3]], 0)
            return tf.random.stateless_uniform(shape, seed=[inputs.seed, 0])
        if isinstance(init, str) and init == "style":
            return resize(inputs.styles[0], hw)
        return resize(init, hw)

    @staticmethod
    def warm_start(result, content, hw):
        """Where the scale of ``hw`` (H, W) starts in coarse-to-fine: the coarser scale's
        ``result`` upsampled, plus, with a content image (full size), the content's
        detail that the coarser scale could not hold: the content at ``hw`` less the
        content at the coarser size brought back up, the band between two levels of a
        Laplacian pyramid (Burt & Adelson 1983). So the finer scale begins with the
        photo's edges instead of a blurred copy of them (docs/speed.md measures what
        that gains); a texture (no content) starts from the upsampled result. Graph-safe.
        """
        image = resize(result, hw, clip=False)
        if content is not None:
            coarse = resize(content, tf.shape(result)[:2])  # as the coarser scale's targets saw it
            image += resize(content, hw, clip=False) - resize(coarse, hw, clip=False)
        return tf.clip_by_value(image, 0.0, 1.0)

    def targets(self, inputs: Inputs, hw, term_weights=None):
        """Content and style targets at ``hw``: the content resized, each style fitted;
        with spatial control the masks resized to ``hw`` and each style mask fitted
        with its style."""
        content = None if inputs.content is None else resize(inputs.content, hw)
        fitted = [self.fit_style(s, hw) for s in inputs.styles]
        style_masks = inputs.style_masks
        if style_masks is not None:
            style_masks = [resize(m[..., None], tf.shape(f)[:2])[..., 0] for m, f in zip(style_masks, fitted)]
        masks = None if inputs.masks is None else [resize(m[..., None], hw)[..., 0] for m in inputs.masks]
        temporal = inputs.temporal
        if temporal is not None:  # the warped earlier results and their reliability at this size
            temporal = (resize(temporal.warped, hw), resize(temporal.reliability[..., None], hw)[..., 0])
        return self.objective.targets(
            content,
            fitted,
            self.config.style_blend,
            objectives.config_term_weights(self.config) if term_weights is None else term_weights,
            masks=masks,
            style_masks=style_masks,
            temporal=temporal,
        )

    def start(self, image, targets, learning_rate=None, tolerance=None):
        """The optimizer's state at ``image``."""
        cfg = self.config
        return self.optimizer.init_state(
            image,
            targets,
            cfg.learning_rate if learning_rate is None else learning_rate,
            cfg.tolerance if tolerance is None else tolerance,
        )

    # -------------------------------------------------------------- in one graph
    def iterate(self, state, targets, iterations):
        """Up to ``iterations`` steps in a `tf.while_loop`, ending early when done."""

        def cond(i, s):
            return (i < iterations) & ~done(s)

        def body(i, s):
            return i + 1, self.optimizer.step(s, targets)

        return tf.while_loop(cond, body, (tf.constant(0), state))[1]

    def run(self, content, styles: Sequence, cap=None, term_weights=None, seed: int = 0):
        """The whole stylization of one [H, W, 3] content image, in graph ops: `run_plan`
        with a `tf.while_loop` per scale.

        Args:
            content: [H, W, 3] in [0, 1] (already at the size to produce).
            styles: style images [H_i, W_i, 3] in [0, 1].
            cap: the most iterations any scale runs (a scalar tensor, `tfnst.plan`), or
                None: the config's counts.
            term_weights: the loss terms' weights (`tfnst.objective.TERMS` order), or None.
            seed: of the noise initialisation.

        Returns:
            The stylized [H, W, 3] image.
        """
        inputs = self.inputs(content, styles, seed=seed)
        scales = plan(self.config, tf.shape(inputs.content)[:2], cap)
        _, state = run_plan(
            scales,
            lambda scale: self,
            inputs,
            lambda engine, scale, state, targets, count: engine.iterate(state, targets, count),
            term_weights=term_weights,
        )
        return self.restore_colors(self.optimizer.result_image(state), inputs.original)


class Inputs(NamedTuple):
    """One run's images at full size, after colour preservation (`Engine.inputs`)."""

    content: object  # [H, W, 3], or None for a texture
    original: object  # the content before colour preservation (for `Engine.finish`)
    styles: list
    masks: list | None = None  # [H, W] per style: where it applies
    style_masks: list | None = None  # [H_i, W_i] per style: which part of it to take
    init: object = "content"  # "content", "noise", "style", or an image
    seed: int = 0
    temporal: object = None  # a `tfnst.terms.TemporalTarget` at full size: a video frame's earlier results


class Resume(NamedTuple):
    """Where a resumed run picks up: a scale, and a function of that scale's engine and
    targets giving the saved state."""

    index: int
    state: Callable


def run_plan(
    scales, engine_at: Callable, inputs: Inputs, iterate: Callable, *, term_weights=None, resume: Resume | None = None
):
    """The coarse-to-fine loop, the one both the library and the served graph run.

    Args:
        scales: `tfnst.plan.plan`'s scales.
        engine_at: ``engine_at(scale) -> Engine`` (the library picks a tiled one where
            memory asks for it; the graph always the same).
        inputs: the run's `Inputs`.
        iterate: ``iterate(engine, scale, state, targets, count) -> state``: run
            ``count`` iterations of the scale.
        term_weights: the loss terms' weights, or None for the config's.
        resume: skip to a saved scale and state.

    After a numerical failure at one scale the later ones run no iterations: the best
    image so far is carried to full size as a later scale would start from it.

    Returns:
        (the last scale's engine, its final state).
    """
    engine, state, halted = None, None, tf.constant(False)
    for scale in scales:
        if resume is not None and scale.index < resume.index:
            continue  # finished before the checkpoint was written
        previous, engine = engine, engine_at(scale)
        targets = engine.targets(inputs, scale.hw, term_weights)
        if resume is not None and scale.index == resume.index:
            state = resume.state(engine, targets)
        elif state is None:
            state = engine.start(engine.initial_image(inputs, scale.hw), targets)
        else:
            halted = halted | failed(state)
            image = engine.warm_start(previous.optimizer.result_image(state), inputs.content, scale.hw)
            state = engine.optimizer.rescale_state(state, image, targets)
        state = iterate(engine, scale, state, targets, tf.where(halted, 0, scale.iterations))
    return engine, state
