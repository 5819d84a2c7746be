"""Colour preservation (`tfnst.color`): luminance-only transfer and colour matching."""

import numpy as np
import pytest

from tests.conftest import distance, fitted
from tfnst import color, losses


@pytest.mark.slow
def test_luminance_transfer_stylizes_the_luminance_and_keeps_the_colours(stylizer, vgg, content64, style64):
    # Measured (2026-12-02), 30 iterations: the luminance's style distance fell to 0.199x;
    # chroma moved 0.0000 with the option, 0.0456 without (at 60: 0.143x, 0, 0.0551).
    options = dict(size=64, iterations=30, style_weight=50.0)
    kept = stylizer.stylize(content64, style64, preserve_color="luminance", **options)
    plain = stylizer.stylize(content64, style64, **options)
    gram = losses.GramStatistic()
    # What VGG saw: the content's luminance, styled after the style's luminance (matched
    # to the content's mean and deviation). Its style distance fell.
    target = color.match_luminance(fitted(style64, 64), content64).numpy()
    before = distance(vgg, gram, color.luminance(content64).numpy(), target)
    after = distance(vgg, gram, color.luminance(kept).numpy(), target)
    assert after < 0.5 * before, (before, after)
    # The colours are the content's; without the option they move towards the style's.
    chroma = lambda image: color.rgb_to_yiq(image).numpy()[..., 1:]
    assert np.abs(chroma(kept) - chroma(content64)).mean() < 0.01  # clipping only
    assert np.abs(chroma(plain) - chroma(content64)).mean() > 0.03


@pytest.mark.slow
def test_histogram_colour_preservation_keeps_the_content_palette(stylizer, content64, style64):
    # Measured (2026-12-02), 20 iterations: 0.040 with, 0.146 without (at 60: 0.039, 0.191).
    options = dict(size=64, iterations=20, style_weight=50.0)
    plain = stylizer.stylize(content64, style64, **options)
    kept = stylizer.stylize(content64, style64, preserve_color="histogram", **options)
    assert palette_distance(kept, content64) < 0.5 * palette_distance(plain, content64)


def test_match_colors_matches_mean_and_full_covariance(content64, style64):
    # Σ_c^½ Σ_s^-½ matches the whole covariance; a per-channel mean/std transfer (wrong)
    # leaves the cross-channel covariance off by 0.0047 here. Before clipping the match
    # is exact; clipping to [0, 1] moves it by 7e-5 (measured).
    s = style64.reshape(-1, 3).astype(np.float64)
    per_channel = (s - s.mean(0)) / s.std(0) * content64.reshape(-1, 3).std(0) + content64.reshape(-1, 3).mean(0)
    cov = lambda a: np.cov(a.reshape(-1, 3).T, bias=True)
    assert np.abs(cov(np.clip(per_channel, 0, 1)) - cov(content64)).max() > 1e-3
    matched = color.match_colors(style64, content64).numpy()
    np.testing.assert_allclose(matched.reshape(-1, 3).mean(0), content64.reshape(-1, 3).mean(0), atol=2e-3)
    np.testing.assert_allclose(cov(matched), cov(content64), atol=2e-4)
    # In the middle of the range nothing clips: exact up to the 1e-6 ridge added to both
    # covariances (it keeps Σ_s^-½ finite for near-gray styles), 1.5e-3 relative on
    # these small (1e-3) covariances.
    mid_c, mid_s = 0.4 + 0.2 * content64, 0.4 + 0.2 * style64
    exact = color.match_colors(mid_s, mid_c).numpy()
    np.testing.assert_allclose(cov(exact), cov(mid_c), rtol=3e-3, atol=1e-8)
    np.testing.assert_allclose(exact.reshape(-1, 3).mean(0), mid_c.reshape(-1, 3).mean(0), atol=1e-5)


def palette_distance(image, content):
    """Globally: how far the result's colour mean and covariance are from the content's."""
    a, b = image.reshape(-1, 3), content.reshape(-1, 3)
    return float(np.abs(a.mean(0) - b.mean(0)).sum() + np.abs(np.cov(a.T) - np.cov(b.T)).sum())
