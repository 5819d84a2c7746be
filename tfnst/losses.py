"""The maths of neural style transfer's losses: pure functions and style statistics.

The terms built from them are `tfnst.terms`; the Keras losses, `tfnst.keras_losses`.

Notation (Gatys, Ecker & Bethge, "Image Style Transfer Using CNNs", CVPR 2016):
F^l is a layer's [M_l = H*W positions, N_l channels] feature matrix.

Every loss is normalised by the number of terms it sums, so that one set of weights
works at any image size: Gatys' sums grow with the number of positions M_l, which is
why their weights must be retuned for every resolution.

All functions take batched tensors ([B, H, W, C]) and return one value per image ([B]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from tfnst.errors import TfnstError

_EPS = 1e-8  # keeps relative losses finite for an all-black target


# ------------------------------------------------------------------ the maths
def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """G = F^T F / M  ([B, C, C]): Gatys eq. 3, divided by the number of positions M
    so that it is a second moment, independent of the image size."""
    flat = _flat(features)
    positions = tf.cast(tf.shape(flat)[1], features.dtype)
    return tf.matmul(flat, flat, transpose_a=True) / positions


def _flat(features: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C] → [B, H*W, C]."""
    shape = tf.shape(features)
    return tf.reshape(features, [shape[0], -1, shape[3]])


def total_variation_loss(images: tf.Tensor) -> tf.Tensor:
    """Mean squared difference between neighbouring pixels (Mahendran & Vedaldi 2015,
    β = 2): smooth, so it suits L-BFGS, and a mean, so it does not grow with size."""
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy), axis=[1, 2, 3]) + tf.reduce_mean(tf.square(dx), axis=[1, 2, 3])


def _relative_error(value: tf.Tensor, target: tf.Tensor, axes) -> tf.Tensor:
    """Σ(value - target)² / Σ target²: 1 for value = 0, 0 at the target.

    Sums, not means: the same ratio, and 0 (not NaN) for empty tensors."""
    return tf.reduce_sum(tf.square(value - target), axis=axes) / (tf.reduce_sum(tf.square(target), axis=axes) + _EPS)


def channel_means(features: tf.Tensor) -> tf.Tensor:
    """μ, the per-channel mean over positions: [B, C]."""
    return tf.reduce_mean(features, axis=[1, 2])


def covariance(features: tf.Tensor) -> tf.Tensor:
    """The covariance of the channels over positions, i.e. the Gram matrix of the
    mean-centred features: [B, C, C]."""
    return gram_matrix(features - channel_means(features)[:, None, None, :])


# ------------------------------------------------------------------ style statistics
def _flat_guide(features: tf.Tensor, guide) -> tf.Tensor:
    """Per-position weights [B, M] for [B, H, W, C] features: ones, or ``guide``
    ([B, H, W], a region's guidance channel at this layer's resolution; see
    `tfnst.terms.Masked`) flattened."""
    if guide is None:
        shape = tf.shape(features)
        return tf.ones([shape[0], shape[1] * shape[2]], features.dtype)
    return tf.reshape(tf.cast(guide, features.dtype), [tf.shape(guide)[0], -1])


class StyleStatistic:
    """What a style is matched by, per layer: the interface every statistic follows.

    A statistic is a function of sums over positions: `sums` adds up what is needed
    (weighted by a region's mask when there is one) with their ``count``, `from_sums`
    turns them into the statistic, `loss_from_sums` compares it with a target. Sums
    of parts add up to the sums of the whole, which is what lets a large image be
    processed in tiles with the same result (`tfnst.tiling`). `target` is what a style
    image's features give (computed once); `blend` combines the targets of several
    styles. A statistic with state (the discriminator) declares it with
    `initial_state` and returns the updated state; the optimizers carry it, so it is
    checkpointed, rolled back with a rejected step, and exported.
    """

    name = ""
    stateful = False  # True: the loss changes state at every evaluation (Adam only)

    def sums(self, features: tf.Tensor, guide=None, target=None, state=None) -> dict:
        raise NotImplementedError

    def from_sums(self, sums: dict):
        raise NotImplementedError

    def loss_from_sums(self, sums: dict, target) -> tf.Tensor:
        raise NotImplementedError

    def target(self, features: tf.Tensor, guide=None):
        return self.from_sums(self.sums(features, guide))

    def blend(self, targets: Sequence, shares: Sequence[float]):
        """The target of a blend of styles (``shares`` summing to 1); by default the
        weighted average."""
        return tf.add_n([w * t for w, t in zip(shares, targets)])

    def loss(self, features: tf.Tensor, target, guide=None) -> tf.Tensor:
        return self.loss_from_sums(self.sums(features, guide), target)

    def initial_state(self, channels: int):
        return ()

    def loss_and_update_from_sums(self, sums: dict, target, state):
        """(loss [B], new state) from the sums."""
        return self.loss_from_sums(sums, target), state

    def loss_and_update(self, features: tf.Tensor, target, state, guide=None):
        """(loss [B], new state)."""
        return self.loss_and_update_from_sums(self.sums(features, guide, target, state), target, state)


class GramStatistic(StyleStatistic):
    """Style as Gram matrices (Gatys et al. 2016), fitting a zero-mean Gaussian with
    that second moment to the feature vectors."""

    name = "gram"

    def sums(self, features, guide=None, target=None, state=None):
        flat, w = _flat(features), _flat_guide(features, guide)
        return {"ff": tf.matmul(flat * w[..., None], flat, transpose_a=True), "count": tf.reduce_sum(w, axis=1)}

    def from_sums(self, sums):
        return sums["ff"] / sums["count"][:, None, None]

    def loss_from_sums(self, sums, target):
        # Eq. 4 relative to the target's own E_l (eq. 4 with G = 0). Raw E_l differ by
        # six orders of magnitude between block1 and block4 of the Keras VGG19, so equal
        # w_l would weigh block4 alone; Gatys rescaled the network for the same end.
        gram = self.from_sums(sums)
        return (
            0.25
            * tf.reduce_mean(tf.square(gram - target), axis=[1, 2])
            / (0.25 * tf.reduce_mean(tf.square(target), axis=[1, 2]) + _EPS)
        )


class MeanStatistic(StyleStatistic):
    """Style as per-channel means only: matching them fits a distribution only in its
    first moment."""

    name = "mean"

    def sums(self, features, guide=None, target=None, state=None):
        flat, w = _flat(features), _flat_guide(features, guide)
        return {"f": tf.reduce_sum(flat * w[..., None], axis=1), "count": tf.reduce_sum(w, axis=1)}

    def from_sums(self, sums):
        return sums["f"] / sums["count"][:, None]

    def loss_from_sums(self, sums, target):
        return _relative_error(self.from_sums(sums), target, axes=[1])


class MeanCovStatistic(StyleStatistic):
    """Style as mean and covariance (E[ffᵀ] − μμᵀ, the Gram of mean-centred features):
    matching them minimizes the divergence to a Gaussian with that mean and covariance
    (Li et al. 2017, "Demystifying"), whereas Gram matching fits a zero-mean Gaussian
    with that second moment. The target packs [μ; Σ] as a [B, C + 1, C] tensor.

    A blend averages the second moments E[ffᵀ] = Σ + μμᵀ (the mixture's), then
    re-centres on the mixture's mean, so it is the mixture's mean and covariance,
    not the average of the covariances."""

    name = "meancov"

    def sums(self, features, guide=None, target=None, state=None):
        flat, w = _flat(features), _flat_guide(features, guide)
        weighted = flat * w[..., None]
        return {
            "f": tf.reduce_sum(weighted, axis=1),
            "ff": tf.matmul(weighted, flat, transpose_a=True),
            "count": tf.reduce_sum(w, axis=1),
        }

    def from_sums(self, sums):
        mean = sums["f"] / sums["count"][:, None]
        cov = sums["ff"] / sums["count"][:, None, None] - mean[:, :, None] * mean[:, None, :]
        return tf.concat([mean[:, None, :], cov], axis=1)

    def blend(self, targets, shares):
        mean = tf.add_n([w * t[:, :1, :] for w, t in zip(shares, targets)])
        second = tf.add_n(
            [w * (t[:, 1:, :] + tf.matmul(t[:, :1, :], t[:, :1, :], transpose_a=True)) for w, t in zip(shares, targets)]
        )
        return tf.concat([mean, second - tf.matmul(mean, mean, transpose_a=True)], axis=1)

    def loss_from_sums(self, sums, target):
        current = self.from_sums(sums)
        return 0.5 * (
            _relative_error(current[:, :1, :], target[:, :1, :], axes=[1, 2])
            + _relative_error(current[:, 1:, :], target[:, 1:, :], axes=[1, 2])
        )


class DiscriminatorStatistic(StyleStatistic):
    """Style as "indistinguishable from the style's feature vectors": a GAN loss.

    Per layer, a pixel-level discriminator D(f) = σ(wᵀf + fᵀAf/C + b) on each position's
    standardized feature vector learns to tell the style's vectors (label 1) from the
    current image's (label 0); the image follows the non-saturating generator loss
    −log D(f). The quadratic term lets D see second moments: a linear D cannot
    separate distributions of equal mean that differ in covariance (by symmetry its
    best weights are 0, at chance), so with it the image would match means only; it is
    divided by the number of channels C, so that a step on A moves the logits as much
    as one on w.

    The state (w, A, b per layer, and the last accuracy) takes one gradient step of
    logistic regression with an L2 penalty at each evaluation, after the generator
    loss has read it: one discriminator step per image step. Hence Adam only.
    Features are centred on the style's per-channel mean and scaled by its deviation
    over the whole layer; several styles make a weighted mixture of their vectors.
    Everything about the current image is a sum over its positions (`sums`).
    """

    name = "discriminator"
    stateful = True

    def __init__(self, learning_rate: float = 0.02, l2: float = 0.1, quadratic: bool = True):
        # The L2 penalty keeps the regression bounded: on separable data (noise vs a
        # painting, early on) plain logistic regression's weights grow without limit,
        # and the generator loss explodes with them. ``quadratic=False`` keeps A at 0
        # (a linear discriminator, for comparison).
        self.learning_rate, self.l2, self.quadratic = learning_rate, l2, quadratic

    def target(self, features, guide=None):
        flat, w = _flat(features), _flat_guide(features, guide)  # the style's vectors, [1, M, C]
        return {"vectors": flat, "shares": w / tf.reduce_sum(w, axis=1, keepdims=True)}

    def blend(self, targets, shares):
        return {
            "vectors": tf.concat([t["vectors"] for t in targets], axis=1),
            "shares": tf.concat([w * t["shares"] for w, t in zip(shares, targets)], axis=1),
        }

    def initial_state(self, channels):
        return {
            "w": tf.zeros([channels]),
            "a": tf.zeros([channels, channels]),
            "b": tf.constant(0.0),
            "accuracy": tf.constant(1.0),
        }

    @staticmethod
    def logits(vectors, state):
        """wᵀf + fᵀAf / C + b for each row of [..., M, C]."""
        channels = tf.cast(tf.shape(vectors)[-1], vectors.dtype)
        quadratic = tf.reduce_sum(tf.linalg.matmul(vectors, state["a"]) * vectors, axis=-1) / channels
        return tf.linalg.matvec(vectors, state["w"]) + quadratic + state["b"]

    @staticmethod
    def _standardization(target):
        style, style_shares = target["vectors"][0], target["shares"][0]
        mu = tf.reduce_sum(style * style_shares[:, None], axis=0)
        # One scale per layer, not per channel: channels that are dead in the style
        # (deviation ~0) would otherwise turn any activation into a huge z-score.
        sd = (
            tf.sqrt(
                tf.reduce_sum(tf.square(style - mu) * style_shares[:, None]) / tf.cast(tf.shape(style)[1], tf.float32)
            )
            + 1e-3
        )
        return mu, sd

    def sums(self, features, guide=None, target=None, state=None):
        mu, sd = self._standardization(target)
        w = _flat_guide(features, guide)[0]
        current = (_flat(features)[0] - mu) / sd  # [M, C]
        z = self.logits(current, state)
        fixed = tf.stop_gradient(current)  # the discriminator's side sees the image as data
        r = tf.stop_gradient(tf.sigmoid(z)) * w
        channels = tf.cast(tf.shape(fixed)[-1], tf.float32)
        return {
            "generator": tf.reduce_sum(tf.nn.softplus(-z) * w)[None],
            "grad_w": tf.linalg.matvec(fixed, r, transpose_a=True)[None],
            "grad_a": (tf.matmul(fixed * r[:, None], fixed, transpose_a=True) / channels)[None],
            "grad_b": tf.reduce_sum(r)[None],
            "correct": tf.reduce_sum(tf.stop_gradient(tf.cast(z < 0, tf.float32)) * w)[None],
            "count": tf.reduce_sum(w)[None],
        }

    def loss_and_update_from_sums(self, sums, target, state):
        mu, sd = self._standardization(target)
        style, style_shares = (target["vectors"][0] - mu) / sd, target["shares"][0]
        count = sums["count"][0]
        # The discriminator's step: analytic gradients of its logistic loss,
        # d softplus(∓z)/dz = ∓σ(∓z), the style's side here, the image's from the sums.
        z_style = self.logits(style, state)
        r_style = -tf.sigmoid(-z_style) * style_shares
        channels = tf.cast(tf.shape(style)[-1], tf.float32)
        grad_w = tf.linalg.matvec(style, r_style, transpose_a=True) + sums["grad_w"][0] / count + self.l2 * state["w"]
        grad_a = (
            tf.matmul(style * r_style[:, None], style, transpose_a=True) / channels
            + sums["grad_a"][0] / count
            + self.l2 * state["a"]
        )
        grad_b = tf.reduce_sum(r_style) + sums["grad_b"][0] / count
        accuracy = 0.5 * (tf.reduce_sum(tf.cast(z_style > 0, tf.float32) * style_shares) + sums["correct"][0] / count)
        new_state = {
            "w": state["w"] - self.learning_rate * grad_w,
            "a": state["a"] - self.learning_rate * grad_a if self.quadratic else state["a"],
            "b": state["b"] - self.learning_rate * grad_b,
            "accuracy": accuracy,
        }
        return sums["generator"] / sums["count"], tf.nest.map_structure(tf.stop_gradient, new_state)

    def loss_from_sums(self, sums, target):
        return sums["generator"] / sums["count"]


STYLE_STATISTICS = {s.name: s for s in (GramStatistic, MeanStatistic, MeanCovStatistic, DiscriminatorStatistic)}


def style_statistic(name: str) -> StyleStatistic:
    """A new instance of the style statistic called ``name``.

    Raises:
        TfnstError: for an unknown name.
    """
    if name not in STYLE_STATISTICS:
        raise TfnstError(f"unknown style statistic {name!r}; choose from {', '.join(STYLE_STATISTICS)}")
    return STYLE_STATISTICS[name]()


# ------------------------------------------------------------------ histogram loss
HISTOGRAM_QUANTILES = 512  # fine bins: the style's per-channel quantile function


def histogram_target(features: tf.Tensor, quantiles: int = HISTOGRAM_QUANTILES) -> tf.Tensor:
    """The per-channel quantile function of the style features, sampled at
    ``quantiles`` levels: [B, Q, C]. A fixed size, so targets of several styles
    (of any size) average: a 1-D Wasserstein barycentre."""
    flat = tf.sort(_flat(features), axis=1)
    return _resample_sorted(flat, quantiles)


def _resample_sorted(sorted_values: tf.Tensor, n) -> tf.Tensor:
    """Linear interpolation of [B, M, C] sorted values at n evenly spaced ranks."""
    m = tf.shape(sorted_values)[1]
    position = tf.linspace(0.0, tf.cast(m - 1, tf.float32), n)
    lo = tf.cast(tf.floor(position), tf.int32)
    hi = tf.minimum(lo + 1, m - 1)
    frac = (position - tf.cast(lo, tf.float32))[None, :, None]
    return tf.gather(sorted_values, lo, axis=1) * (1.0 - frac) + tf.gather(sorted_values, hi, axis=1) * frac


def histogram_remap(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """R(F) of Risser et al. (2017, sec. 4.2): each channel's values replaced by the
    target's values of the same rank (exact, sort-based histogram matching)."""
    shape = tf.shape(features)
    flat = _flat(features)
    ranks = tf.argsort(tf.argsort(flat, axis=1), axis=1)  # [B, M, C]
    matched = _resample_sorted(target, tf.shape(flat)[1])  # sorted target values, [B, M, C]
    # Per (batch, channel): value of the matching rank.
    remapped = tf.gather(tf.transpose(matched, [0, 2, 1]), tf.transpose(ranks, [0, 2, 1]), batch_dims=2)
    return tf.reshape(tf.transpose(remapped, [0, 2, 1]), shape)


def histogram_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Risser et al. eq. 4, ‖F − R(F)‖² with R(F) held constant, relative to the
    remapped features' energy."""
    remapped = tf.stop_gradient(histogram_remap(features, target))
    return _relative_error(features, remapped, axes=[1, 2, 3])


# ------------------------------------------------------------------ Laplacian loss
_LAPLACIAN = tf.constant([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian(images: tf.Tensor, pool: int) -> tf.Tensor:
    """D(x) of Li, Xu, Nie & Chua (2017, eq. 2), as their lap_style.lua computes it:
    the image (0-255) average-pooled by ``pool`` without padding, then the 3x3
    Laplacian of the sum of its channels, without padding: [B, H/p - 2, W/p - 2, 1].

    No padding anywhere: zero padding would make the border a large edge of its own
    (44-58% of the target's energy at 64-512 px) and pin border intensities. A pooled
    image under 3 pixels a side leaves an empty map (the term is then 0).
    """
    pooled = tf.nn.avg_pool2d(images * 255.0, pool, pool, "VALID") if pool > 1 else images * 255.0
    kernel = tf.tile(_LAPLACIAN[:, :, None, None], [1, 1, 3, 1])  # 3 channels in, their sum out
    # Explicitly: TF's CPU conv2d returns its input unchanged, not an empty map, when
    # the input is smaller than the kernel.
    fits = tf.reduce_min(tf.shape(pooled)[1:3]) >= 3
    return tf.cond(
        fits, lambda: tf.nn.conv2d(pooled, kernel, 1, "VALID"), lambda: tf.zeros([tf.shape(pooled)[0], 0, 0, 1])
    )


def laplacian_loss(images: tf.Tensor, targets: Mapping[int, tf.Tensor]) -> tf.Tensor:
    """Li et al. eq. 3, Σ_pools ‖D(x) − D(c)‖², each relative to the content's energy
    and averaged over the pools."""
    return tf.add_n(
        [_relative_error(laplacian(images, pool), target, axes=[1, 2, 3]) for pool, target in targets.items()]
    ) / len(targets)


def laplacian_min_side(pool: int) -> int:
    """The smallest image side at which a pool level still leaves a Laplacian."""
    return 3 * pool


# ------------------------------------------------------------------ combining layers
def normalized_layer_weights(layers: Sequence[str], layer_weights: Sequence[float] | None) -> dict:
    """Per-layer weights w_l, summing to 1 (equal by default, as in Gatys et al.)."""
    layer_weights = [1.0] * len(layers) if layer_weights is None else [float(w) for w in layer_weights]
    total = sum(layer_weights)
    return {name: w / total for name, w in zip(layers, layer_weights)}
