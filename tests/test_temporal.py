"""Ruder et al.'s temporal targets and loss (tfnst.temporal) on a pan with known motion."""

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("cv2")

from tfnst import video_clips
from tfnst.errors import TfnstError
from tfnst.temporal import temporal_loss, temporal_target, temporal_targets


@pytest.fixture(scope="module")
def clip():
    return video_clips.pan(5, shift=(2.0, 0.0))


def true_flow(clip):
    """The pan's exact flow between any two of its frames (found by identity)."""

    def flow(a, b):
        i = next(k for k, f in enumerate(clip.frames) if f is a)
        j = next(k for k, f in enumerate(clip.frames) if f is b)
        out = np.zeros_like(clip.backward[0])
        out[..., 0] = 2.0 * (i - j)  # frame i at p is frame j at p + 2 (i - j)
        return out

    return flow


def test_loss_by_hand():
    rng = np.random.default_rng(0)
    x = rng.random((6, 7, 3), dtype=np.float32)
    w = rng.random((6, 7, 3), dtype=np.float32)
    c = (rng.random((6, 7)) > 0.3).astype(np.float32)
    expect = sum(c[i, j] * (x[i, j, k] - w[i, j, k]) ** 2 for i in range(6) for j in range(7) for k in range(3)) / (
        6 * 7 * 3
    )
    assert float(temporal_loss(x, w, c)) == pytest.approx(expect, rel=1e-5)
    assert float(temporal_loss(x[None], w, c)) == pytest.approx(expect, rel=1e-5)
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = temporal_loss(xv, w, c)
    np.testing.assert_allclose(tape.gradient(loss, xv).numpy(), 2 * c[..., None] * (x - w) / x.size, atol=1e-7)


def test_short_term_target_on_the_pan(clip):
    stylized = [1.0 - f for f in clip.frames]  # any 'stylization' that moves with the content
    t = temporal_target(clip.frames[0], clip.frames[1], stylized[0], flow=true_flow(clip))
    np.testing.assert_array_equal(t.reliability == 0, clip.entering[0])
    keep = ~clip.entering[0]
    np.testing.assert_allclose(t.warped[keep], stylized[1][keep], atol=1e-6)
    assert float(temporal_loss(stylized[1], t.warped, t.reliability)) < 1e-10
    # With DIS flow: nearly the same.
    t = temporal_target(clip.frames[0], clip.frames[1], stylized[0])
    assert float(temporal_loss(stylized[1], t.warped, t.reliability)) < 1e-4
    with pytest.raises(TfnstError, match="resize"):
        temporal_target(clip.frames[0], clip.frames[1], stylized[0][:50])


def test_long_term_targets_tie_each_pixel_to_the_closest_frame(clip):
    stylized = [1.0 - f for f in clip.frames]
    earlier = [(j, clip.frames[4 - j], stylized[4 - j]) for j in (1, 2, 4)]
    targets = temporal_targets(clip.frames[4], earlier, flow=true_flow(clip))
    assert [t.offset for t in targets] == [1, 2, 4]
    # Frame 4's last 2 columns are new since frame 3, the last 4 since frame 2, the last
    # 8 since frame 0: the long-term weights give each earlier frame none of those.
    w1, w2, w4 = (t.reliability for t in targets)
    assert w1[:, :-2].all() and not w1[:, -2:].any()
    assert not w2.any()  # everything frame 2 sees, frame 3 sees too
    assert not w4.any()
    with pytest.raises(TfnstError, match="closest first"):
        temporal_targets(clip.frames[4], earlier[::-1], flow=true_flow(clip))
