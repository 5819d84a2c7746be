"""The loss of one image: the weighted sum of loss terms (`tfnst.terms`), Gatys et al.
eq. 7 (α·content + β·style) plus total variation and the extensions' terms.

Pure: `Objective.__call__(image, targets, state) -> (total, terms, state)`. The terms'
weights travel with the targets (`Targets`) and a term's state (the discriminator's)
is an argument, so the same traced graph serves any weights and concurrent requests.

In two steps, so that a wrapper can evaluate it in tiles (`tfnst.tiling.Tiled`):
`partial` sums what the feature terms need over a set of positions, and `finish` turns
the sums of all positions into the terms (the pixel terms, TV and the Laplacian, read
the whole image there). The untiled loss is ``finish(partial(features(image)))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import tensorflow as tf

from tfnst.config import StyleConfig
from tfnst.terms import (
    Content,
    Histogram,
    Laplacian,
    Masked,
    MaskedTarget,
    Style,
    Temporal,
    Term,
    TotalVariation,
)

TERMS = ("content", "style", "tv", "hist", "lap", "temporal")  # the order of `Targets.term_weights`


class Targets(NamedTuple):
    """What an objective compares an image with, computed once per size."""

    terms: dict  # term name -> that term's target
    term_weights: tf.Tensor  # the terms' weights, float32 [len(TERMS)], in `TERMS` order


def blend_shares(count: int, blend: Sequence[float] | None) -> list[float]:
    """The shares of ``count`` styles in a blend, ``blend`` normalised to sum to 1 (equal
    when None)."""
    shares = [1.0] * count if blend is None else [float(w) for w in blend]
    return [w / sum(shares) for w in shares]


def build_terms(
    config: StyleConfig, has_content: bool = True, regions: int = 0, temporal: bool = False
) -> dict[str, Term]:
    """The terms ``config`` turns on, by name (a term whose weight is 0 is left out: it
    would cost a pass and add nothing). ``temporal``: the run has a temporal target (a
    video frame after the first, `tfnst.video`), so Ruder et al.'s term is on."""
    style = Style(config.style_layers, config.style_statistic, config.style_layer_weights)
    terms = {"style": Masked(style, regions) if regions else style, "tv": TotalVariation()}
    if has_content and config.content_weight > 0:
        terms["content"] = Content(config.content_layers)
    if config.hist_weight > 0:
        terms["hist"] = Histogram(config.hist_layers)
    if has_content and config.lap_weight > 0:
        terms["lap"] = Laplacian(config.lap_pool)
    if temporal and config.temporal_weight > 0:
        terms["temporal"] = Temporal()
    return {name: terms[name] for name in TERMS if name in terms}


def feature_layers(config: StyleConfig, has_content: bool = True) -> tuple[str, ...]:
    """Every VGG19 layer an objective of ``config`` reads (style, content, histogram)."""
    return tuple(dict.fromkeys(n for t in build_terms(config, has_content).values() for n in t.layers))


def config_term_weights(config: StyleConfig) -> tf.Tensor:
    """The terms' weights, in `TERMS` order."""
    return tf.constant(
        [
            config.content_weight,
            config.style_weight,
            config.tv_weight,
            config.hist_weight,
            config.lap_weight,
            config.temporal_weight,
        ],
        tf.float32,
    )


def value_and_gradient_by_autodiff(objective, image, targets, state):
    """(total, terms, new state, d total / d image) of ``objective`` by one forward and
    backward pass: what an untiled objective's `value_and_gradient` is."""
    with tf.GradientTape() as tape:
        tape.watch(image)
        total, terms, new_state = objective(image, targets, state)
    return total, terms, new_state, tape.gradient(total, image)


class Objective:
    """The weighted sum of the terms of ``config`` over a feature extractor.

    Which terms exist is fixed at construction (they shape the graph); their weights
    are part of the targets, so new weights reuse compiled steps.

    Args:
        config: the options (layers, statistic, which terms are on).
        features: maps [B, H, W, 3] images to ``{layer: features}`` (a `VGG19`) and has
            at least `feature_layers(config, has_content)`.
        has_content: False for texture synthesis (no content or Laplacian terms).
        regions: spatial control (`tfnst.terms.Masked`): the number of masked regions,
            style i matched in region i; 0 = none.
        temporal: the targets carry a temporal target (`tfnst.terms.Temporal`: a video
            frame tied to earlier results).
    """

    graph_safe = True  # a step may be compiled into one graph (`tfnst.tiling.Tiled` is not)

    def __init__(
        self, config: StyleConfig, features, *, has_content: bool = True, regions: int = 0, temporal: bool = False
    ):
        self.config = config
        self.features_of = features
        self.regions = int(regions)
        self.loss_terms = build_terms(config, has_content, regions, temporal)
        # The names reported per iteration: the terms, and the discriminator's accuracy.
        self.terms = tuple(self.loss_terms) + (("disc_acc",) if self.statistic.stateful else ())

    @property
    def style(self) -> Style:
        """The style term (inside its `Masked` wrapper with regions)."""
        term = self.loss_terms["style"]
        return term.inner if isinstance(term, Masked) else term

    @property
    def statistic(self):
        return self.style.statistic

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Features of one [H, W, 3] image (batch of 1)."""
        return self.features_of(tf.convert_to_tensor(image, tf.float32)[None])

    def whole_features(self, image, layers) -> dict[str, tf.Tensor]:
        """``layers``' features of a whole [H, W, 3] image."""
        feats = self.features(image)
        return {n: feats[n] for n in layers}

    def style_target(self, style, mask=None) -> dict:
        """A style image's target for the style term; ``mask`` ([H, W]) selects the part
        of it to take (its guidance channel, `tfnst.terms.Masked`)."""
        style = tf.convert_to_tensor(style, tf.float32)
        guides = (
            None
            if mask is None
            else Masked.guides(tf.convert_to_tensor(mask, tf.float32), self.style.layers, tf.shape(style)[:2])
        )
        return self.style.target(self.features(style), guides)

    def targets(
        self,
        content,
        styles: Sequence,
        blend: Sequence[float] | None = None,
        term_weights: tf.Tensor | None = None,
        masks: Sequence | None = None,
        style_masks: Sequence | None = None,
        reader=None,
        temporal=None,
    ) -> Targets:
        """Every term's target and the terms' weights, computed once (graph-safe).

        Args:
            content: [H, W, 3] in [0, 1], or None for a texture.
            styles: style images [H_i, W_i, 3]; without masks several are blended with
                ``blend`` (normalised; equal when None) by their statistic's `blend`.
            term_weights: the terms' weights in `TERMS` order; the config's when None.
            masks: with regions, one [H, W] mask in [0, 1] per style, at the result's
                size: where that style applies.
            style_masks: with regions, optionally one [H_i, W_i] mask per style image:
                which part of it to take.
            reader: what reads the images' features (`whole_features`, `style_target`):
                this objective, or a wrapper that reads them in tiles.
            temporal: the `tfnst.terms.TemporalTarget` at this size (warped earlier
                results and their reliability), when the temporal term is on.
        """
        reader = reader or self
        style_masks = list(style_masks) if style_masks is not None else [None] * len(styles)
        per_style = [reader.style_target(s, m) for s, m in zip(styles, style_masks)]
        out = {}
        if self.regions:
            hw = tf.shape(masks[0])[:2]
            out["style"] = MaskedTarget(
                per_style, [Masked.guides(tf.convert_to_tensor(m, tf.float32), self.style.layers, hw) for m in masks]
            )
        else:
            out["style"] = self.style.blend(per_style, blend_shares(len(per_style), blend))
        if "hist" in self.loss_terms:  # not tiled (`tfnst.tiling.Tiled` refuses it)
            term = self.loss_terms["hist"]
            out["hist"] = term.blend([term.target(self.features(s)) for s in styles], blend_shares(len(styles), blend))
        if "content" in self.loss_terms:
            term = self.loss_terms["content"]
            out["content"] = term.target(reader.whole_features(content, term.layers))
        if "lap" in self.loss_terms:
            out["lap"] = self.loss_terms["lap"].target(tf.convert_to_tensor(content, tf.float32)[None])
        if "temporal" in self.loss_terms:
            out["temporal"] = self.loss_terms["temporal"].target(*temporal)
        return Targets(out, config_term_weights(self.config) if term_weights is None else term_weights)

    def initial_state(self) -> dict:
        """The stateful terms' states, by name (empty unless the discriminator is on)."""
        return {name: t.initial_state() for name, t in self.loss_terms.items() if t.stateful}

    # -------------------------------------------------------------- in two steps
    def partial(self, feats: Mapping[str, tf.Tensor], targets: Targets, state, window=None) -> dict:
        """Sums over the positions of ``feats`` (within ``window``, a tile's interior;
        all when None) of what every feature term needs."""
        return {
            name: t.sums(feats, targets.terms[name], state.get(name, ()), window)
            for name, t in self.loss_terms.items()
            if t.layers
        }

    def finish(self, image: tf.Tensor, sums: Mapping, targets: Targets, state):
        """(total, {term: value}, new state) from the sums over every position, plus the
        pixel terms of the whole [H, W, 3] image."""
        batch = tf.convert_to_tensor(image, tf.float32)[None]
        terms, new_state = {}, {}
        for name, t in self.loss_terms.items():
            value, updated = t.value(sums.get(name, {}), targets.terms.get(name), state.get(name, ()), batch)
            terms[name] = value[0]
            if t.stateful:
                new_state[name] = updated
        weight_of = dict(zip(TERMS, tf.unstack(targets.term_weights)))
        total = tf.add_n([weight_of[name] * value for name, value in terms.items()])
        if "disc_acc" in self.terms:  # reported, not optimized
            style = new_state["style"]
            states = [s for region in (style if self.regions else [style]) for s in region.values()]
            terms["disc_acc"] = tf.add_n([s["accuracy"] for s in states]) / len(states)
        return total, terms, new_state

    def __call__(self, image: tf.Tensor, targets: Targets, state: Mapping | None = None):
        """(total, {term: value}, new state) for one [H, W, 3] image."""
        state = self.initial_state() if state is None else state
        return self.finish(image, self.partial(self.features(image), targets, state), targets, state)

    def value_and_gradient(self, image: tf.Tensor, targets: Targets, state):
        """(total, terms, new state, d total / d image): one forward and backward pass."""
        return value_and_gradient_by_autodiff(self, image, targets, state)
