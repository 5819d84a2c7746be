"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in
Neural Artistic Style Transfer"): pure numpy transforms applied before and after the
optimization."""

from __future__ import annotations

import numpy as np

# NTSC YIQ (the paper's choice): Y is luminance, I and Q carry the colour.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return image @ _RGB_TO_YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    return image @ _YIQ_TO_RGB.T


def luminance(image: np.ndarray) -> np.ndarray:
    """Y, as a 3-channel gray image (what VGG sees for luminance-only transfer)."""
    y = rgb_to_yiq(image)[..., :1]
    return np.repeat(y, 3, axis=-1).astype(np.float32)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style's luminance, shifted and scaled to the content's mean and deviation
    (paper, sec. 2.2: L_s' = σ_c/σ_s (L_s − μ_s) + μ_c), as a 3-channel gray image."""
    ys, yc = luminance(style)[..., 0], luminance(content)[..., 0]
    matched = (ys - ys.mean()) * (yc.std() / (ys.std() + 1e-8)) + yc.mean()
    return np.repeat(np.clip(matched, 0.0, 1.0)[..., None], 3, axis=-1).astype(np.float32)


def with_content_colors(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance with the content's I and Q channels, back in RGB."""
    yiq = rgb_to_yiq(content)
    yiq[..., 0] = rgb_to_yiq(result)[..., 0]
    return np.clip(yiq_to_rgb(yiq), 0.0, 1.0).astype(np.float32)


def _sqrt_psd(matrix: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    values = np.maximum(values, 1e-8)
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def match_colors(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style image recoloured so that its pixels' mean and covariance are the
    content's (paper, sec. 2.1, eq. 1 with the symmetric "image analogies" matrix
    A = Σ_c^½ Σ_s^-½)."""
    s, c = style.reshape(-1, 3).astype(np.float64), content.reshape(-1, 3).astype(np.float64)
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = np.cov(s.T, bias=True) + 1e-6 * np.eye(3)
    cov_c = np.cov(c.T, bias=True) + 1e-6 * np.eye(3)
    a = _sqrt_psd(cov_c) @ _sqrt_psd(cov_s, inverse=True)
    matched = (s - mu_s) @ a.T + mu_c
    return np.clip(matched, 0.0, 1.0).reshape(style.shape).astype(np.float32)
