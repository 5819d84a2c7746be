"""Optical flow, warping and Ruder et al.'s reliability weights, against exact answers:
hand-written numpy, and synthetic clips whose motion is known (tfnst.video_clips)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfnst import video_clips
from tfnst.errors import TfnstError
from tfnst.flow import (
    consistency_weights,
    disocclusions,
    flow_pair,
    long_term_weights,
    motion_boundaries,
    optical_flow,
    warp,
)
from tfnst.video_metrics import pair_warping_error, warping_error

# Warping, the weights and the metric are TF and numpy; the flow needs the video extra.
needs_cv2 = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None, reason="optical flow needs opencv-python-headless (tfnst[video])"
)
M = 8  # the interior: frames without an 8-pixel border


def interior(a):
    return a[M:-M, M:-M]


@pytest.fixture(scope="module")
def source():
    return video_clips.photo()


# --------------------------------------------------------------------------- warp


def test_warp_integer_shift_is_a_slice():
    rng = np.random.default_rng(0)
    image = rng.random((20, 24, 3), dtype=np.float32)
    flow = np.zeros((20, 24, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0  # out(x, y) = image(x + 3, y - 2)
    out = warp(image, flow).numpy()
    np.testing.assert_array_equal(out[2:, :-3], image[:-2, 3:])


def test_warp_subpixel_by_hand():
    rng = np.random.default_rng(1)
    image = rng.random((16, 18, 3), dtype=np.float32)
    ax, ay = 0.25, 0.625
    flow = np.broadcast_to(np.array([ax, ay], np.float32), (16, 18, 2))
    expect = (
        (1 - ax) * (1 - ay) * image[:-1, :-1]
        + ax * (1 - ay) * image[:-1, 1:]
        + (1 - ax) * ay * image[1:, :-1]
        + ax * ay * image[1:, 1:]
    )
    out = warp(image, flow).numpy()
    np.testing.assert_allclose(out[:-1, :-1], expect, atol=1e-6)


def test_warp_any_flow_matches_numpy_sampling():
    rng = np.random.default_rng(2)
    h, w = 24, 32
    image = rng.random((h, w, 3), dtype=np.float32)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    x = rng.uniform(0, w - 1, (h, w))
    y = rng.uniform(0, h - 1, (h, w))
    flow = np.stack([x - gx, y - gy], axis=-1).astype(np.float32)
    expect = video_clips.sample(image, gx + flow[..., 0], gy + flow[..., 1])
    np.testing.assert_allclose(warp(image, flow).numpy(), expect, atol=2e-5)


def test_warp_outside_takes_the_border_or_the_fill():
    image = np.arange(4 * 5 * 1, dtype=np.float32).reshape(4, 5, 1)
    flow = np.zeros((4, 5, 2), np.float32)
    flow[..., 0] = 10.0  # every position right of the image
    np.testing.assert_array_equal(warp(image, flow).numpy(), np.repeat(image[:, -1:], 5, axis=1))
    out = warp(image, flow, fill=-1.0).numpy()
    np.testing.assert_array_equal(out, -np.ones_like(image))
    flow[..., 0] = 0.0
    flow[..., 1] = 3.0 - np.arange(4, dtype=np.float32)[:, None]  # y + dy = 3: exactly the last row
    np.testing.assert_array_equal(warp(image, flow, fill=-1.0).numpy(), np.repeat(image[-1:], 4, axis=0))


def test_warp_in_a_graph_batched_with_gradients():
    rng = np.random.default_rng(3)
    images = tf.constant(rng.random((2, 12, 10, 3), dtype=np.float32))
    flows = tf.constant(rng.uniform(-3, 3, (2, 12, 10, 2)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, None, 2])])
    def f(image, flow):
        with tf.GradientTape() as tape:
            tape.watch([image, flow])
            total = tf.reduce_sum(warp(image, flow))
        return warp(image, flow), tape.gradient(total, [image, flow])

    out, (g_image, g_flow) = f(images, flows)
    # XLA compiles it too (static shapes).
    np.testing.assert_allclose(tf.function(warp, jit_compile=True)(images, flows).numpy(), out.numpy(), atol=1e-5)
    for b in range(2):
        np.testing.assert_allclose(out[b].numpy(), warp(images[b], flows[b]).numpy(), atol=1e-6)
    # Each output pixel's four weights sum to 1: the image gradient of the sum is the
    # number of output values per batch item.
    np.testing.assert_allclose(tf.reduce_sum(g_image, axis=[1, 2, 3]).numpy(), [12 * 10 * 3] * 2, rtol=1e-5)
    assert np.all(np.isfinite(g_flow.numpy())) and np.any(g_flow.numpy() != 0)


# --------------------------------------------------------------------------- synthetic clips


def test_true_flow_warps_the_pan_exactly(source):
    for shift in [(2.0, 0.0), (-1.0, 3.0)]:
        clip = video_clips.pan(4, shift=shift, source=source)
        for t in range(3):
            out = warp(clip.frames[t], clip.backward[t]).numpy()
            keep = ~clip.entering[t]
            np.testing.assert_allclose(out[keep], clip.frames[t + 1][keep], atol=1e-6)


def test_true_flow_warps_subpixel_pan_and_zoom(source):
    # Frame 0 lies on the photo's pixel grid, so frame 1 is exactly its bilinear warp;
    # later frames are themselves interpolated, and warping them blurs a little
    # (measured on tubingen at 256 px: mean 0.006, max 0.21 for the pan, mean 0.010,
    # max 0.15 for the zoom, in [0, 1] units).
    for clip in [video_clips.pan(4, shift=(1.5, 0.75), source=source), video_clips.zoom(4, factor=1.02, source=source)]:
        for t in range(3):
            out = warp(clip.frames[t], clip.backward[t]).numpy()
            diff = np.abs(interior(out) - interior(clip.frames[t + 1]))
            if t == 0:
                assert diff.max() < 1e-5
            else:
                assert diff.mean() < 0.02 and diff.max() < 0.3


@needs_cv2
def test_dis_flow_on_the_pan_and_zoom(source):
    # End-point error of DIS (preset medium) against the true backward flow, interior,
    # measured: integer pan mean 0.000 (max 0.006), sub-pixel pan mean 0.10-0.17
    # (99th percentile 0.46), zoom 1.04 mean 0.15 (99th percentile 0.47).
    cases = [
        (video_clips.pan(3, shift=(2.0, 0.0), source=source), 0.02, 0.05),
        (video_clips.pan(3, shift=(1.5, 0.75), source=source), 0.25, 0.6),
        (video_clips.zoom(3, factor=1.04, source=source), 0.25, 0.6),
    ]
    for clip, mean_bound, p99_bound in cases:
        for t in range(2):
            epe = np.linalg.norm(optical_flow(clip.frames[t + 1], clip.frames[t]) - clip.backward[t], axis=-1)
            assert interior(epe).mean() < mean_bound
            assert np.percentile(interior(epe), 99) < p99_bound


@needs_cv2
def test_farneback_flow_on_the_pan(source):
    # Over the town (textured; measured median 0.001) Farnebäck is right; over the
    # featureless sky of the photo's top half it finds no motion at all (median 2.2 =
    # the whole shift, where DIS has 0.10), so DIS is the default.
    clip = video_clips.pan(2, shift=(2.0, 1.0), origin=(8.0, 80.0), source=source)
    epe = np.linalg.norm(optical_flow(clip.frames[1], clip.frames[0], "farneback") - clip.backward[0], axis=-1)
    assert np.median(interior(epe)) < 0.05
    with pytest.raises(TfnstError, match="unknown optical flow method"):
        optical_flow(clip.frames[1], clip.frames[0], "raft")


@needs_cv2
def test_weights_mark_the_band_entering_the_view(source):
    clip = video_clips.pan(2, shift=(2.0, 0.0), source=source)
    entering = clip.entering[0]
    assert entering.sum() == 2 * 96 and entering[:, -2:].all()  # the last two columns
    # With the true flows: exactly that band.
    c = consistency_weights(clip.forward[0], clip.backward[0])
    np.testing.assert_array_equal(c == 0, entering)
    # With DIS flows: all of the band, and nearly all of the rest reliable (measured
    # 96.6%; the misses are on the frame's border rows and next to the band).
    forward, backward = flow_pair(clip.frames[0], clip.frames[1])
    c = consistency_weights(forward, backward)
    assert set(np.unique(c)) <= {0.0, 1.0} and c.dtype == np.float32
    assert np.all(c[entering] == 0)
    assert c[~entering].mean() > 0.95
    assert interior(c).mean() > 0.99


def test_zoom_out_brings_in_a_border_and_zoom_in_nothing(source):
    big = video_clips.photo(384)
    zin = video_clips.zoom(2, factor=1.02, source=source)
    assert not zin.entering[0].any()
    assert consistency_weights(zin.forward[0], zin.backward[0]).all()
    zout = video_clips.zoom(2, factor=0.98, source=big)
    e = zout.entering[0]
    assert e[0].all() and e[-1].all() and e[:, 0].all() and e[:, -1].all() and not interior(e).any()
    np.testing.assert_array_equal(consistency_weights(zout.forward[0], zout.backward[0]) == 0, e)


# --------------------------------------------------------------------------- the criterion


def test_disocclusion_threshold_by_hand():
    # ŵ = 0 everywhere; w = (d, 0) at one pixel q: there w̃ = (d, 0) and
    # |w̃ + ŵ|² = d² against 0.01 d² + 0.5: disoccluded iff d > sqrt(0.5 / 0.99) = 0.7107.
    backward = np.zeros((7, 7, 2), np.float32)
    for d, expect in [(0.70, False), (0.72, True), (-0.72, True)]:
        forward = np.zeros((7, 7, 2), np.float32)
        forward[3, 3, 0] = d
        got = disocclusions(forward, backward)
        assert got[3, 3] == expect and got.sum() == int(expect)
    # Consistent motion: w̃ = -ŵ exactly (w = -ŵ = (-4, 0) constant): only the entering
    # columns (x + 4 > 6) are marked, by the 'came from outside' rule.
    backward[..., 0] = 4.0
    forward = -backward
    got = disocclusions(forward, backward)
    np.testing.assert_array_equal(got, np.broadcast_to(np.arange(7) > 2, (7, 7)))


def test_motion_boundary_threshold_by_hand():
    # û steps from 0 (x < 4) to a (x >= 4). Central differences give a/2 at x = 3 and 4:
    # x = 3 (ŵ = 0) is a boundary iff a²/4 > 0.002, i.e. a > 0.0894;
    # x = 4 (ŵ = a) iff a²/4 > 0.01 a² + 0.002, i.e. a > 0.0913.
    for a, expect_3, expect_4 in [(0.089, False, False), (0.0905, True, False), (0.092, True, True)]:
        backward = np.zeros((6, 8, 2), np.float32)
        backward[:, 4:, 0] = a
        got = motion_boundaries(backward)
        assert got[:, 3].all() == expect_3 and got[:, 4].all() == expect_4
        assert got.sum() == 6 * (expect_3 + expect_4)
    # The same step in v̂ along y, and the border sample repeated: a step between rows
    # 0 and 1 gives (a/2)² at rows 0 and 1.
    backward = np.zeros((6, 8, 2), np.float32)
    backward[1:, :, 1] = 0.2
    got = motion_boundaries(backward)
    assert got[0].all() and got[1].all() and not got[2:].any()


def test_weights_combine_both_tests():
    backward = np.zeros((6, 8, 2), np.float32)
    backward[:, 4:, 0] = 0.3  # a motion boundary at x = 3, 4
    forward = np.zeros((6, 8, 2), np.float32)
    forward[:, 4:, 0] = -0.3
    forward[0, 0] = (1.0, 0.0)  # a disocclusion at (0, 0)
    c = consistency_weights(forward, backward)
    expect = np.ones((6, 8), np.float32)
    expect[:, 3:5] = 0
    expect[:, 7] = 0  # x + 0.3 is outside the frame: came from outside the view
    expect[0, 0] = 0
    np.testing.assert_array_equal(c, expect)
    with pytest.raises(TfnstError):
        consistency_weights(forward[:5], backward)


def test_long_term_weights():
    c1 = np.array([1, 0, 0, 1], np.float32)
    c2 = np.array([1, 1, 0, 0], np.float32)
    c4 = np.array([1, 1, 1, 0], np.float32)
    out = long_term_weights([c1, c2, c4])
    np.testing.assert_array_equal(out[0], c1)
    np.testing.assert_array_equal(out[1], [0, 1, 0, 0])
    np.testing.assert_array_equal(out[2], [0, 0, 1, 0])


# --------------------------------------------------------------------------- warping error


def test_pair_warping_error_by_hand():
    rng = np.random.default_rng(4)
    prev = rng.random((10, 12, 3), dtype=np.float32)
    nxt = rng.random((10, 12, 3), dtype=np.float32)
    backward = np.zeros((10, 12, 2), np.float32)
    backward[..., 0] = 2.0  # next(x) is prev(x + 2)
    c = np.ones((10, 12), np.float32)
    c[:, -2:] = 0
    c[3, 4] = 0
    warped = np.zeros_like(prev)
    warped[:, :-2] = prev[:, 2:]
    sq = (nxt - warped) ** 2
    expect = sum(sq[y, x].sum() for y in range(10) for x in range(12) if c[y, x]) / (3 * c.sum())
    assert pair_warping_error(prev, nxt, backward, c) == pytest.approx(expect, rel=1e-6)
    # No reliable pixel: every pixel counts.
    assert pair_warping_error(prev, nxt, backward, 0 * c) == pytest.approx(
        ((nxt - warp(prev, backward).numpy()) ** 2).mean(), rel=1e-6
    )


def test_warping_error_of_a_clip_by_hand(source):
    clip = video_clips.pan(4, shift=(2.0, 0.0), source=source)
    rng = np.random.default_rng(5)
    stylized = [rng.random(f.shape, dtype=np.float32) for f in clip.frames]

    def oracle(a, b):  # the true flow between two of the clip's frames (found by identity)
        i, j = _index(clip, a), _index(clip, b)
        assert abs(i - j) == 1
        return clip.forward[min(i, j)] if j == i + 1 else clip.backward[min(i, j)]

    result = warping_error(stylized, clip.frames, flow=oracle)
    keep = ~clip.entering[0]
    expect = [((stylized[t + 1][:, :-2] - stylized[t][:, 2:]) ** 2)[keep[:, :-2]].mean() for t in range(3)]
    np.testing.assert_allclose(result.pairs, expect, rtol=1e-5)
    assert result.mean == pytest.approx(np.mean(expect), rel=1e-5)
    assert result.reliable == pytest.approx([keep.mean()] * 3)


def _index(clip, frame):
    return next(i for i, f in enumerate(clip.frames) if f is frame)


@needs_cv2
def test_warping_error_is_low_for_a_consistent_clip(source):
    clip = video_clips.pan(4, shift=(1.5, 0.5), source=source)
    # A 'stylization' that moves with the content (a colour change) against one that
    # does not (independent noise per frame): DIS flow tells them apart by far.
    consistent = [1.0 - f for f in clip.frames]
    rng = np.random.default_rng(6)
    flicker = [np.clip(f + rng.normal(0, 0.1, f.shape).astype(np.float32), 0, 1) for f in clip.frames]
    e_consistent = warping_error(consistent, clip.frames).mean
    e_flicker = warping_error(flicker, clip.frames).mean
    # Measured: 0.0002 against 0.013 (two independent N(0, 0.1) noises, clipped).
    assert e_consistent < 0.001 and e_flicker > 0.01 and e_flicker > 20 * e_consistent
    with pytest.raises(TfnstError, match="at least two frames"):
        warping_error(consistent[:1], clip.frames[:1])


@needs_cv2
def test_real_clip_flow_is_mostly_reliable():
    pytest.importorskip("av")
    from tfnst.video_io import VideoReader

    clip = Path(__file__).resolve().parent.parent / "data" / "video" / "bigbuckbunny_2s_128.mp4"
    frames = list(VideoReader(clip).frames(max_frames=3))
    forward, backward = flow_pair(frames[1], frames[2])
    assert forward.shape == (72, 128, 2) and np.all(np.isfinite(forward))
    assert consistency_weights(forward, backward).mean() > 0.8
