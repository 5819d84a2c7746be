"""The losses of neural style transfer, as small pure functions plus Keras Loss objects.

Notation (Gatys, Ecker & Bethge, "Image Style Transfer Using CNNs", CVPR 2016):
F^l is a layer's [M_l = H*W positions, N_l channels] feature matrix.

Every loss is normalised by the number of terms it sums, so that one set of weights
works at any image size: Gatys' sums grow with the number of positions M_l, which is
why the anchors' weights must be retuned for every resolution.

All functions take batched tensors ([B, H, W, C]) and return one value per image ([B]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from tfnst.errors import TfnstError

_EPS = 1e-8  # keeps relative losses finite for an all-black target


# ------------------------------------------------------------------ the maths
def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """G = F^T F / M  ([B, C, C]): Gatys eq. 3, divided by the number of positions M
    so that it is a second moment, independent of the image size."""
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], -1, shape[3]])
    positions = tf.cast(shape[1] * shape[2], features.dtype)
    return tf.matmul(flat, flat, transpose_a=True) / positions


def content_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Gatys eq. 1, 1/2 Σ (F - P)², relative to the target's own energy 1/2 Σ P².

    Relative, so that its scale is the same at every layer, image and size (a
    random image scores about 1, the content image itself 0).
    """
    axes = [1, 2, 3]
    return tf.reduce_sum(tf.square(features - target), axis=axes) / (
        tf.reduce_sum(tf.square(target), axis=axes) + _EPS)


def gram_loss(features: tf.Tensor, target_gram: tf.Tensor) -> tf.Tensor:
    """Gatys eq. 4, E_l = 1/(4 N² M²) Σ (G - A)², which with the normalised Gram
    above is exactly 1/4 of the mean squared difference over the N² entries."""
    return 0.25 * tf.reduce_mean(tf.square(gram_matrix(features) - target_gram), axis=[1, 2])


def total_variation_loss(images: tf.Tensor) -> tf.Tensor:
    """Mean squared difference between neighbouring pixels (Mahendran & Vedaldi 2015,
    β = 2): smooth, so it suits L-BFGS, and a mean, so it does not grow with size."""
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy), axis=[1, 2, 3]) + tf.reduce_mean(tf.square(dx), axis=[1, 2, 3])


class GramStatistic:
    """Style as Gram matrices (Gatys et al. 2016).

    The interface every style statistic follows: `target` turns the style image's
    features into what is matched (computed once and cached), `loss` compares
    current features with it. A new statistic (mean, mean+covariance, histogram)
    is a class with these two methods.
    """

    name = "gram"

    def target(self, features: tf.Tensor) -> tf.Tensor:
        return gram_matrix(features)

    def loss(self, features: tf.Tensor, target: tf.Tensor, layer: str | None = None) -> tf.Tensor:
        # Relative to the target's own E_l (eq. 4 with G = 0). Raw E_l differ by six
        # orders of magnitude between block1 and block4 of the Keras VGG19, so equal
        # w_l would weigh block4 alone; Gatys rescaled the network for the same end.
        return gram_loss(features, target) / (0.25 * tf.reduce_mean(tf.square(target), axis=[1, 2]) + _EPS)


def _relative_error(value: tf.Tensor, target: tf.Tensor, axes) -> tf.Tensor:
    """mean((value - target)²) / mean(target²): 1 for value = 0, 0 at the target."""
    return tf.reduce_mean(tf.square(value - target), axis=axes) / (
        tf.reduce_mean(tf.square(target), axis=axes) + _EPS)


def channel_means(features: tf.Tensor) -> tf.Tensor:
    """μ, the per-channel mean over positions: [B, C]."""
    return tf.reduce_mean(features, axis=[1, 2])


def covariance(features: tf.Tensor) -> tf.Tensor:
    """The covariance of the channels over positions, i.e. the Gram matrix of the
    mean-centred features: [B, C, C]."""
    return gram_matrix(features - channel_means(features)[:, None, None, :])


class MeanStatistic:
    """Style as per-channel means only: matching them fits a distribution only in its
    first moment (a Gaussian with that mean and fixed covariance)."""

    name = "mean"

    def target(self, features):
        return channel_means(features)

    def loss(self, features, target, layer=None):
        return _relative_error(channel_means(features), target, axes=[1])


class MeanCovStatistic:
    """Style as mean and covariance (the Gram of mean-centred features): matching them
    minimizes the divergence to a Gaussian with that mean and covariance, whereas Gram
    matching fits a zero-mean Gaussian with that second moment. The target packs
    [μ; Σ] as a [B, C + 1, C] tensor, so blends average both."""

    name = "meancov"

    def target(self, features):
        return tf.concat([channel_means(features)[:, None, :], covariance(features)], axis=1)

    def loss(self, features, target, layer=None):
        mean, cov = target[:, :1, :], target[:, 1:, :]
        return 0.5 * (_relative_error(channel_means(features)[:, None, :], mean, axes=[1, 2])
                      + _relative_error(covariance(features), cov, axes=[1, 2]))


class DiscriminatorStyle:
    """Style as "indistinguishable from the style's feature vectors" (a GAN loss).

    Per layer, a pixel-level discriminator — logistic regression on each position's
    feature vector, i.e. a 1x1 convolution — learns to tell the style image's vectors
    (label 1) from the current image's (label 0); the image is pushed by the
    non-saturating generator loss −log D(f) (labels swapped). A linear discriminator
    sees only first and second moments, so it behaves like mean+covariance matching.
    Features are centred on the style's per-channel mean and scaled by its deviation
    over the whole layer.

    Stateful: the discriminator takes one gradient step (learning rate
    ``learning_rate``, L2 penalty ``l2``) each time the loss is evaluated, i.e. one discriminator step per
    image step (1:1), ordered after the generator loss reads its weights. Hence Adam
    only (L-BFGS evaluates the loss several times per step). `reset` starts afresh.
    """

    name = "discriminator"

    def __init__(self, layers, channels: Mapping[str, int], learning_rate: float = 0.02,
                 l2: float = 0.1):
        # The L2 penalty keeps the regression bounded: on separable data (noise vs a
        # painting, early on) plain logistic regression's weights grow without limit,
        # and the generator loss explodes with them.
        self.learning_rate, self.l2 = learning_rate, l2
        self.w = {n: tf.Variable(tf.zeros([channels[n]]), trainable=False, name=f"{n}_disc_w") for n in layers}
        self.b = {n: tf.Variable(0.0, trainable=False, name=f"{n}_disc_b") for n in layers}
        self.accuracy_of = {n: tf.Variable(1.0, trainable=False, name=f"{n}_disc_acc") for n in layers}

    def reset(self) -> None:
        for n in self.w:
            self.w[n].assign(tf.zeros_like(self.w[n]))
            self.b[n].assign(0.0)
            self.accuracy_of[n].assign(1.0)

    def target(self, features):
        shape = tf.shape(features)
        return tf.reshape(features, [shape[0], -1, shape[3]])  # the style's feature vectors

    def loss(self, features, target, layer=None):
        mu = tf.reduce_mean(target, axis=1, keepdims=True)
        # One scale per layer, not per channel: channels that are dead in the style
        # (deviation ~0) would otherwise turn any activation into a huge z-score.
        sd = tf.sqrt(tf.reduce_mean(tf.square(target - mu), axis=[1, 2], keepdims=True)) + 1e-3
        shape = tf.shape(features)
        current = (tf.reshape(features, [shape[0], -1, shape[3]]) - mu) / sd
        style = (target - mu) / sd
        w, b = self.w[layer], self.b[layer]
        generator = tf.reduce_mean(tf.nn.softplus(-(tf.linalg.matvec(current, w) + b)), axis=1)
        with tf.control_dependencies([generator]):
            fixed = tf.stop_gradient(current)
            with tf.GradientTape() as tape:
                tape.watch([w, b])  # not trainable: the image optimizer must not see them
                logits_style = tf.linalg.matvec(style, w) + b
                logits_current = tf.linalg.matvec(fixed, w) + b
                d_loss = (tf.reduce_mean(tf.nn.softplus(-logits_style))
                          + tf.reduce_mean(tf.nn.softplus(logits_current))
                          + 0.5 * self.l2 * tf.reduce_sum(tf.square(w)))
            gw, gb = tape.gradient(d_loss, [w, b])
            accuracy = 0.5 * (tf.reduce_mean(tf.cast(logits_style > 0, tf.float32))
                              + tf.reduce_mean(tf.cast(logits_current < 0, tf.float32)))
            updates = [w.assign_sub(self.learning_rate * gw), b.assign_sub(self.learning_rate * gb),
                       self.accuracy_of[layer].assign(accuracy)]
        with tf.control_dependencies(updates):
            return tf.identity(generator)

    def accuracy(self) -> tf.Tensor:
        """The discriminators' mean accuracy at their last step (0.5 = chance)."""
        return tf.add_n([a.read_value() for a in self.accuracy_of.values()]) / len(self.accuracy_of)


STYLE_STATISTICS = {s.name: s for s in (GramStatistic(), MeanStatistic(), MeanCovStatistic())}
STYLE_LOSSES = (*STYLE_STATISTICS, DiscriminatorStyle.name)


# ------------------------------------------------------------------ histogram loss
HISTOGRAM_QUANTILES = 512  # fine bins: the style's per-channel quantile function


def histogram_target(features: tf.Tensor, quantiles: int = HISTOGRAM_QUANTILES) -> tf.Tensor:
    """The per-channel quantile function of the style features, sampled at
    ``quantiles`` levels: [B, Q, C]. A fixed size, so targets of several styles
    (of any size) average: a 1-D Wasserstein barycentre."""
    shape = tf.shape(features)
    flat = tf.sort(tf.reshape(features, [shape[0], -1, shape[3]]), axis=1)
    return _resample_sorted(flat, quantiles)


def _resample_sorted(sorted_values: tf.Tensor, n) -> tf.Tensor:
    """Linear interpolation of [B, M, C] sorted values at n evenly spaced ranks."""
    m = tf.shape(sorted_values)[1]
    position = tf.linspace(0.0, tf.cast(m - 1, tf.float32), n)
    lo = tf.cast(tf.floor(position), tf.int32)
    hi = tf.minimum(lo + 1, m - 1)
    frac = (position - tf.cast(lo, tf.float32))[None, :, None]
    return (tf.gather(sorted_values, lo, axis=1) * (1.0 - frac)
            + tf.gather(sorted_values, hi, axis=1) * frac)


def histogram_remap(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """R(F) of Risser et al. (2017, sec. 4.2): each channel's values replaced by the
    target's values of the same rank (exact, sort-based histogram matching)."""
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], -1, shape[3]])
    ranks = tf.argsort(tf.argsort(flat, axis=1), axis=1)  # [B, M, C]
    matched = _resample_sorted(target, tf.shape(flat)[1])  # sorted target values, [B, M, C]
    # Per (batch, channel): value of the matching rank.
    remapped = tf.gather(tf.transpose(matched, [0, 2, 1]), tf.transpose(ranks, [0, 2, 1]), batch_dims=2)
    return tf.reshape(tf.transpose(remapped, [0, 2, 1]), shape)


def histogram_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Risser et al. eq. 4, ‖F − R(F)‖² with R(F) held constant, relative to the
    target's energy."""
    remapped = tf.stop_gradient(histogram_remap(features, target))
    return _relative_error(features, remapped, axes=[1, 2, 3])


# ------------------------------------------------------------------ Laplacian loss
_LAPLACIAN = tf.constant([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian(images: tf.Tensor, pool: int) -> tf.Tensor:
    """D(x) of Li et al. (2017, eq. 2): the 3x3 discrete Laplacian of the image
    average-pooled by ``pool``, per RGB channel, in 0-255 units."""
    # SAME padding: a pool larger than a small image still leaves one value.
    pooled = tf.nn.avg_pool2d(images * 255.0, pool, pool, "SAME") if pool > 1 else images * 255.0
    kernel = tf.tile(_LAPLACIAN[:, :, None, None], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(pooled, kernel, [1, 1, 1, 1], "SAME")


def laplacian_loss(images: tf.Tensor, targets: Mapping[int, tf.Tensor]) -> tf.Tensor:
    """Li et al. eq. 3, Σ_pools ‖D(x) − D(c)‖², each relative to the content's energy."""
    return tf.add_n([_relative_error(laplacian(images, pool), target, axes=[1, 2, 3])
                     for pool, target in targets.items()]) / len(targets)


def style_statistic(name: str, layers=(), channels=None):
    """The style statistic called ``name``; a fresh `DiscriminatorStyle` over ``layers``
    for "discriminator" (it has state)."""
    if name == DiscriminatorStyle.name:
        return DiscriminatorStyle(layers, channels or {})
    if name not in STYLE_STATISTICS:
        raise TfnstError(f"unknown style loss {name!r}; choose from {', '.join(STYLE_LOSSES)}")
    return STYLE_STATISTICS[name]


def style_loss(features: Mapping[str, tf.Tensor], targets: Mapping[str, tf.Tensor],
               layer_weights: Mapping[str, float], statistic=GramStatistic()) -> tf.Tensor:
    """Gatys eq. 5: L_style = Σ_l w_l E_l over the style layers."""
    return tf.add_n([w * statistic.loss(features[name], targets[name], name)
                     for name, w in layer_weights.items()])


def normalized_layer_weights(layers: Sequence[str], weights: Sequence[float] | None) -> dict:
    """Per-layer weights w_l, summing to 1 (equal by default, as in Gatys et al.)."""
    weights = [1.0] * len(layers) if weights is None else [float(w) for w in weights]
    total = sum(weights)
    return {name: w / total for name, w in zip(layers, weights)}


# ------------------------------------------------------------------ Keras losses
class _FeatureLoss(keras.losses.Loss):
    """Base for losses measured on a feature model's outputs (a `build_feature_model`)."""

    def __init__(self, feature_model: keras.Model, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.feature_model = feature_model

    def features(self, images) -> dict:
        return self.feature_model(tf.convert_to_tensor(images, tf.float32))


class ContentLoss(_FeatureLoss):
    """Content loss between ``y_true`` (content images) and ``y_pred`` (generated), both
    RGB in [0, 1], averaged over the given layers. For feed-forward training pipelines."""

    def __init__(self, feature_model, layers: Sequence[str] = ("block4_conv2",),
                 name="content_loss", **kwargs):
        super().__init__(feature_model, name, **kwargs)
        self.layers = tuple(layers)

    def call(self, y_true, y_pred):
        true, pred = self.features(y_true), self.features(y_pred)
        return tf.add_n([content_loss(pred[n], true[n]) for n in self.layers]) / len(self.layers)


class StyleLoss(_FeatureLoss):
    """Style loss of ``y_pred`` against a fixed style image (``y_true`` is ignored).

    The style targets are computed once here, not at every call.
    """

    def __init__(self, feature_model, style_image, layers: Sequence[str],
                 layer_weights: Sequence[float] | None = None, statistic: str = "gram",
                 name="style_loss", **kwargs):
        super().__init__(feature_model, name, **kwargs)
        self.statistic = style_statistic(statistic)
        self.layer_weights = normalized_layer_weights(layers, layer_weights)
        style = tf.convert_to_tensor(style_image, tf.float32)
        style = style[None] if style.shape.rank == 3 else style
        feats = self.features(style)
        self.targets = {n: self.statistic.target(feats[n]) for n in self.layer_weights}

    def call(self, y_true, y_pred):
        return style_loss(self.features(y_pred), self.targets, self.layer_weights, self.statistic)


class TotalVariationLoss(keras.losses.Loss):
    """Total variation of ``y_pred`` (``y_true`` is ignored)."""

    def __init__(self, name="total_variation_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return total_variation_loss(tf.convert_to_tensor(y_pred, tf.float32))
