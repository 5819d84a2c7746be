"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in
Neural Artistic Style Transfer"), in TensorFlow ops so that the served graph runs
exactly what the library runs. Images are [H, W, 3] RGB in [0, 1]."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# NTSC YIQ (the paper's choice): Y is luminance, I and Q carry the colour.
RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], np.float64
)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def _apply(matrix: np.ndarray, image) -> tf.Tensor:
    image = tf.convert_to_tensor(image, tf.float32)
    return tf.tensordot(image, tf.constant(matrix.T, tf.float32), axes=1)


def rgb_to_yiq(image) -> tf.Tensor:
    return _apply(RGB_TO_YIQ, image)


def yiq_to_rgb(image) -> tf.Tensor:
    return _apply(YIQ_TO_RGB, image)


def luminance(image) -> tf.Tensor:
    """Y, as a 3-channel gray image (what VGG sees for luminance-only transfer)."""
    return tf.repeat(rgb_to_yiq(image)[..., :1], 3, axis=-1)


def match_luminance(style, content) -> tf.Tensor:
    """The style's luminance, shifted and scaled to the content's mean and deviation
    (paper, sec. 2.2: L_s' = σ_c/σ_s (L_s − μ_s) + μ_c), as a 3-channel gray image."""
    ys, yc = rgb_to_yiq(style)[..., 0], rgb_to_yiq(content)[..., 0]
    matched = (ys - tf.reduce_mean(ys)) * (tf.math.reduce_std(yc) / (tf.math.reduce_std(ys) + 1e-8)) + tf.reduce_mean(
        yc
    )
    return tf.repeat(tf.clip_by_value(matched, 0.0, 1.0)[..., None], 3, axis=-1)


def with_content_colors(result, content) -> tf.Tensor:
    """The result's luminance with the content's I and Q channels, back in RGB."""
    yiq = tf.concat([rgb_to_yiq(result)[..., :1], rgb_to_yiq(content)[..., 1:]], axis=-1)
    return tf.clip_by_value(yiq_to_rgb(yiq), 0.0, 1.0)


def _pixel_moments(image):
    pixels = tf.reshape(tf.cast(image, tf.float64), [-1, 3])
    mean = tf.reduce_mean(pixels, axis=0)
    centred = pixels - mean
    cov = tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(pixels)[0], tf.float64)
    return pixels, mean, cov + 1e-6 * tf.eye(3, dtype=tf.float64)


def _sqrt_psd(matrix, power):
    values, vectors = tf.linalg.eigh(matrix)
    values = tf.maximum(values, 1e-8) ** power
    return tf.matmul(vectors * values[None, :], vectors, transpose_b=True)


def match_colors(style, content) -> tf.Tensor:
    """The style image recoloured so that its pixels' mean and covariance are the
    content's (paper, sec. 2.1, eq. 1 with the symmetric "image analogies" matrix
    A = Σ_c^½ Σ_s^-½), in float64, then clipped to [0, 1]."""
    pixels, mu_s, cov_s = _pixel_moments(style)
    _, mu_c, cov_c = _pixel_moments(content)
    a = tf.matmul(_sqrt_psd(cov_c, 0.5), _sqrt_psd(cov_s, -0.5))
    matched = tf.matmul(pixels - mu_s, a, transpose_b=True) + mu_c
    return tf.reshape(tf.cast(tf.clip_by_value(matched, 0.0, 1.0), tf.float32), tf.shape(style))
