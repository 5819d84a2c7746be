"""Loss terms as small objects with one interface, composed by `tfnst.objective.Objective`
and adapted to Keras losses by `tfnst.keras_losses`: one implementation of each loss.

A term is a function of sums over feature positions (Gatys et al.'s losses are):

- ``target(...)``: what it compares with, computed once (content features, a style's
  statistics, a histogram's quantiles, a Laplacian);
- ``sums(features, target, state, window)``: the sums over the positions of
  ``features`` (``{layer: [B, h, w, C]}``), within ``window`` (a tile's interior,
  `tfnst.tiling`; all positions when None); sums over disjoint positions add up;
- ``value(sums, target, state, image)``: the term ([B]) from the sums over every
  position, and the term's new state (the discriminator's; ``()`` for the others).

Because sums add up, a wrapper can evaluate any ``additive`` term in tiles
(`tfnst.tiling.Tiled`); `Masked` matches a style term within regions. Pixel terms
(total variation, Laplacian) read the image itself in ``value`` and have no sums.
Every value is normalised so that a term is about 1 for a random image, at any size
(`tfnst.losses`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import tensorflow as tf

from tfnst import tiling
from tfnst.losses import (
    _EPS,
    histogram_loss,
    histogram_target,
    laplacian,
    laplacian_loss,
    normalized_layer_weights,
    style_statistic,
    total_variation_loss,
)
from tfnst.vgg_layers import LAYER_CHANNELS, layer_stride


def window_of(tensor: tf.Tensor, window, layer: str, full_image: bool = False) -> tf.Tensor:
    """``tensor`` ([B, h, w, …], a layer's) cut to a tile's interior: ``window`` is a
    `tfnst.tiling.Tile.window` (None: all). ``full_image``: the tensor covers the whole
    image (a target, a mask), not the tile's crop."""
    if window is None:
        return tensor
    rows, cols = tiling.slices(window, layer_stride(layer), full_image)
    return tensor[:, rows, cols]


def layer_mask(mask: tf.Tensor, layer: str, hw) -> tf.Tensor:
    """A region's mask ([H, W] in [0, 1]) at a layer's resolution: averaged over each
    position's stride x stride block (Gatys et al. 2017 propagate guidance channels to
    each layer; averaging is their simple variant), cropped to the layer's [h, w] for an
    image of ``hw`` (each pooling floors). Returns [1, h, w]."""
    s = layer_stride(layer)
    pooled = tf.nn.avg_pool2d(mask[None, :, :, None], s, s, "VALID") if s > 1 else mask[None, :, :, None]
    return pooled[:, : hw[0] // s, : hw[1] // s, 0]


class Term:
    """The interface of a loss term (see the module's docstring)."""

    name = ""
    layers: tuple[str, ...] = ()  # the VGG19 layers it reads
    additive = True  # its sums over disjoint positions add up (it can be tiled)
    stateful = False  # its value changes a state at each evaluation

    def initial_state(self):
        return ()

    def sums(self, features: Mapping[str, tf.Tensor], target, state=(), window=None):
        return {}

    def value(self, sums, target, state=(), image=None):
        raise NotImplementedError

    def loss(self, features: Mapping[str, tf.Tensor], target, image=None) -> tf.Tensor:
        """The term ([B]) of ``features`` (all positions), without state: what a Keras
        loss computes."""
        state = self.initial_state()
        return self.value(self.sums(features, target, state), target, state, image)[0]


class ContentTarget(NamedTuple):
    features: dict  # layer -> [B, h, w, C]
    energy: dict  # layer -> [B], Σ P²


class Content(Term):
    """Gatys eq. 1, 1/2 Σ (F − P)², relative to the target's own energy 1/2 Σ P² and
    averaged over the layers: a random image scores about 1, the content itself 0."""

    name = "content"

    def __init__(self, layers: Sequence[str]):
        self.layers = tuple(layers)

    def target(self, features: Mapping[str, tf.Tensor]) -> ContentTarget:
        return ContentTarget(
            {n: features[n] for n in self.layers},
            {n: tf.reduce_sum(tf.square(features[n]), axis=[1, 2, 3]) for n in self.layers},
        )

    def sums(self, features, target, state=(), window=None):
        return {
            n: tf.reduce_sum(
                tf.square(window_of(features[n], window, n) - window_of(target.features[n], window, n, True)),
                axis=[1, 2, 3],
            )
            for n in self.layers
        }

    def value(self, sums, target, state=(), image=None):
        return tf.add_n([sums[n] / (target.energy[n] + _EPS) for n in self.layers]) / len(self.layers), state


class Style(Term):
    """Gatys eq. 5, Σ_l w_l E_l: a style statistic (`tfnst.losses.StyleStatistic`: Gram
    matrices by default) matched at each style layer, the layer weights normalised.

    Args:
        layers: the style layers.
        statistic: a statistic's name (``gram``, ``mean``, ``meancov``, ``discriminator``).
        layer_weights: w_l, one per layer (normalised); equal when None.
    """

    name = "style"

    def __init__(self, layers: Sequence[str], statistic: str = "gram", layer_weights=None):
        self.layers = tuple(layers)
        self.statistic = style_statistic(statistic)
        self.stateful = self.statistic.stateful
        self.layer_weights = normalized_layer_weights(self.layers, layer_weights)

    def initial_state(self):
        return {n: self.statistic.initial_state(LAYER_CHANNELS[n]) for n in self.layers} if self.stateful else ()

    def target_sums(self, features, guides=None, window=None) -> dict:
        """A style image's statistic sums (``guides``: per layer [B, h, w] over the
        whole image, or None), within ``window``: a style too large to process whole
        is summed tile by tile (`tfnst.tiling.Tiled`)."""
        return {
            n: self.statistic.sums(
                window_of(features[n], window, n),
                None if guides is None else window_of(guides[n][..., None], window, n, True)[..., 0],
            )
            for n in self.layers
        }

    def target_from_sums(self, sums) -> dict:
        return {n: self.statistic.from_sums(sums[n]) for n in self.layers}

    def target(self, features, guides=None) -> dict:
        """One style image's target; ``guides`` ({layer: [B, h, w]}, `Masked.guides`)
        weigh its positions."""
        return {n: self.statistic.target(features[n], None if guides is None else guides[n]) for n in self.layers}

    def blend(self, targets: Sequence[dict], shares: Sequence[float]) -> dict:
        """The target of several styles, their shares normalised (the statistic's blend)."""
        return {n: self.statistic.blend([t[n] for t in targets], shares) for n in self.layers}

    def sums(self, features, target, state=(), window=None, guides=None):
        """As `Term.sums`; ``guides`` ({layer: [B, h, w]} over the whole image) weigh the
        positions (`Masked`)."""
        return {
            n: self.statistic.sums(
                window_of(features[n], window, n),
                None if guides is None else window_of(guides[n][..., None], window, n, True)[..., 0],
                target[n],
                state[n] if self.stateful else (),
            )
            for n in self.layers
        }

    def value(self, sums, target, state=(), image=None):
        values, new_state = [], {}
        for n, w in self.layer_weights.items():
            v, new_state[n] = self.statistic.loss_and_update_from_sums(
                sums[n], target[n], state[n] if self.stateful else ()
            )
            values.append(w * v)
        return tf.add_n(values), new_state if self.stateful else state


class MaskedTarget(NamedTuple):
    regions: list  # the inner term's target per region
    guides: list  # per region, {layer: [1, h, w]}: the guidance channel at each layer, squared


class Masked(Term):
    """Spatial control (Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling
    Perceptual Factors in Neural Style Transfer", CVPR 2017, sec. 4.1): style r is
    matched within region r, the regions weighted equally.

    As their code (``gram_matrix_guided`` in leongatys/NeuralImageSynthesis), the
    features are multiplied by the guidance channel T_r before the statistic, and the
    guide is normalised by its own energy, so a region's Gram matrix is
    Σ T_r² f fᵀ / Σ T_r²: the positions weigh T_r², and a fractional boundary (where a
    layer's guide averages two regions) counts less than the region's interior.

    Args:
        inner: a `Style` term.
        regions: the number of regions (one style, and one mask, each).
    """

    def __init__(self, inner: Style, regions: int):
        self.inner, self.regions = inner, int(regions)
        self.name, self.layers, self.stateful = inner.name, inner.layers, inner.stateful

    def initial_state(self):
        return [self.inner.initial_state() for _ in range(self.regions)] if self.stateful else ()

    @staticmethod
    def guides(mask: tf.Tensor, layers, hw) -> dict:
        """A mask's guidance channel at each layer, squared (the positions' weights)."""
        return {n: tf.square(layer_mask(mask, n, hw)) for n in layers}

    def sums(self, features, target, state=(), window=None):
        return [
            self.inner.sums(
                features, target.regions[r], state[r] if self.stateful else (), window, guides=target.guides[r]
            )
            for r in range(self.regions)
        ]

    def value(self, sums, target, state=(), image=None):
        values, states = [], []
        for r in range(self.regions):
            v, s = self.inner.value(sums[r], target.regions[r], state[r] if self.stateful else ())
            values.append(v)
            states.append(s)
        return tf.add_n(values) / self.regions, states if self.stateful else state


class TotalVariation(Term):
    """Mean squared difference between neighbouring pixels (`tfnst.losses.total_variation_loss`)."""

    name = "tv"

    def value(self, sums, target, state=(), image=None):
        return total_variation_loss(image), state


class Histogram(Term):
    """Risser, Wilmot & Barnes (2017), eq. 4: each layer's per-channel histogram matched
    to the style's (sort-based), averaged over the layers. It needs every position of a
    layer at once (a rank is not a sum), so it is not ``additive``: not tiled."""

    name = "hist"
    additive = False

    def __init__(self, layers: Sequence[str]):
        self.layers = tuple(layers)

    def target(self, features) -> dict:
        return {n: histogram_target(features[n]) for n in self.layers}

    @staticmethod
    def blend(targets: Sequence[dict], shares: Sequence[float]) -> dict:
        """Quantile functions averaged: the 1-D Wasserstein barycentre of the styles'."""
        return {n: tf.add_n([w * t[n] for w, t in zip(shares, targets)]) for n in targets[0]}

    def sums(self, features, target, state=(), window=None):
        return {n: histogram_loss(features[n], target[n]) for n in self.layers}

    def value(self, sums, target, state=(), image=None):
        return tf.add_n([sums[n] for n in self.layers]) / len(self.layers), state


class Laplacian(Term):
    """Li, Xu, Nie & Chua (2017), eq. 3: the image's Laplacian at each pooling size
    matched to the content's (`tfnst.losses.laplacian_loss`)."""

    name = "lap"

    def __init__(self, pools: Sequence[int]):
        self.pools = tuple(pools)

    def target(self, content: tf.Tensor) -> dict:
        """``content``: [B, H, W, 3]."""
        return {p: laplacian(content, p) for p in self.pools}

    def value(self, sums, target, state=(), image=None):
        return laplacian_loss(image, target), state


class TemporalTarget(NamedTuple):
    """What `Temporal` compares with: earlier results warped into this frame and their
    reliability weights, closest earlier frame first."""

    warped: tf.Tensor  # [K, H, W, 3]: ω for each earlier frame i - j
    reliability: tf.Tensor  # [K, H, W]: c (short-term) or c_long (long-term), in [0, 1]


class Temporal(Term):
    """Ruder, Dosovitskiy & Brox, "Artistic Style Transfer for Videos" (GCPR 2016; IJCV
    2018), section "Temporal consistency loss" (short-term)::

        L_temporal(x, ω, c) = 1/D Σ_k c_k (x_k − ω_k)²      (D = H·W·C)

    and its long-term form (section "Long-term consistency"): the sum over the earlier
    frames i − j, j ∈ J (e.g. {1, 2, 4}), of the same loss against each warped result
    ω_{i−j}, with the weights c_long(i−j) = max(c(i−j) − Σ_{l∈J, l<j} c(i−l), 0)
    (`tfnst.flow.long_term_weights`),
    so that a pixel is tied to the closest earlier frame where it was visible. ω is an
    earlier stylized frame warped into this one by the content's backward flow
    (`tfnst.temporal`), c Ruder et al.'s reliability weights (`tfnst.flow`). A pixel
    term: it reads the image in ``value``. In tfnst's [0, 1] units (255² smaller than
    Ruder et al.'s), a random image against a random target scores about 1/6 per frame.
    """

    name = "temporal"

    @staticmethod
    def target(warped, reliability) -> TemporalTarget:
        """``warped`` [K, H, W, 3] (or [H, W, 3]), ``reliability`` [K, H, W] (or [H, W])."""
        warped = tf.convert_to_tensor(warped, tf.float32)
        reliability = tf.convert_to_tensor(reliability, tf.float32)
        if warped.shape.rank == 3:
            warped, reliability = warped[None], reliability[None]
        return TemporalTarget(warped, reliability)

    def value(self, sums, target, state=(), image=None):
        """``image`` [B, H, W, 3]: Σ_j 1/D Σ c_j (x − ω_j)², per image ([B])."""
        x = tf.convert_to_tensor(image)
        diff = x[:, None] - tf.cast(target.warped, x.dtype)[None]  # [B, K, H, W, C]
        c = tf.cast(target.reliability, x.dtype)[None, ..., None]
        per_frame = tf.reduce_mean(c * tf.square(diff), axis=[2, 3, 4])  # [B, K]
        return tf.reduce_sum(per_frame, axis=1), state
