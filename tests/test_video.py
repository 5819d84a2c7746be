"""tfnst video (tfnst.video) and Ruder et al.'s temporal term (tfnst.terms.Temporal):
the term against numpy, the command end to end on a short synthetic pan, less flicker
with the term, resuming after Ctrl-C, a network applied to a clip, and bad input."""

from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("av")
pytest.importorskip("cv2")

from tests.conftest import STYLE, run_cli
from tfnst import video_clips
from tfnst.config import StyleConfig
from tfnst.objective import TERMS, build_terms, config_term_weights
from tfnst.terms import Temporal
from tfnst.video import VideoInterrupted, stylize_video, work_folder
from tfnst.video_io import read_video, write_video
from tfnst.video_metrics import warping_error

FAST = dict(size=64, iterations=4, scales=1)  # frame 1 (and independent frames)
FRAME_ITERATIONS = 3


# ------------------------------------------------------------------ the term
def temporal_by_hand(x, warped, weights):
    """Ruder et al.: Σ_j 1/D Σ_k c_j,k (x_k − ω_j,k)², loops over every element."""
    h, w, ch = x.shape
    total = 0.0
    for j in range(len(warped)):
        s = 0.0
        for i in range(h):
            for k in range(w):
                for c in range(ch):
                    s += weights[j][i, k] * (x[i, k, c] - warped[j][i, k, c]) ** 2
        total += s / (h * w * ch)
    return total


def test_temporal_term_against_numpy():
    rng = np.random.default_rng(1)
    x = rng.random((5, 6, 3)).astype(np.float32)
    warped = rng.random((3, 5, 6, 3)).astype(np.float32)
    weights = (rng.random((3, 5, 6)) > 0.4).astype(np.float32)
    term = Temporal()
    target = term.target(warped, weights)
    value = term.value({}, target, (), tf.constant(x[None]))[0]
    assert value.shape == (1,)
    assert float(value[0]) == pytest.approx(temporal_by_hand(x, warped, weights), rel=1e-5)
    # one earlier frame (short-term): [H, W, 3] and [H, W] are taken as K = 1
    one = term.value({}, term.target(warped[0], weights[0]), (), tf.constant(x[None]))[0]
    assert float(one[0]) == pytest.approx(temporal_by_hand(x, warped[:1], weights[:1]), rel=1e-5)
    xv = tf.Variable(x[None])
    with tf.GradientTape() as tape:
        loss = term.value({}, target, (), xv)[0][0]
    expect = sum(2 * weights[j][..., None] * (x - warped[j]) / x.size for j in range(3))
    np.testing.assert_allclose(tape.gradient(loss, xv).numpy()[0], expect, atol=1e-6)


def test_the_term_is_on_only_with_a_temporal_target_and_a_weight():
    config = StyleConfig()
    assert "temporal" not in build_terms(config)
    assert "temporal" in build_terms(config, temporal=True)
    assert "temporal" not in build_terms(config.replace(temporal_weight=0.0), temporal=True)
    weights = dict(zip(TERMS, config_term_weights(config.replace(temporal_weight=7.0)).numpy()))
    assert len(config_term_weights(config).numpy()) == len(TERMS) and weights["temporal"] == 7.0


# ------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def pan(tmp_path_factory):
    """6 frames at 64x48, 2 px a frame to the right, as a PNG folder (lossless)."""
    clip = video_clips.pan(6, size=(48, 64), shift=(2.0, 0.0), fps=Fraction(25))
    return write_video(tmp_path_factory.mktemp("pan") / "pan", clip.frames, clip.fps), clip


@pytest.fixture(scope="module")
def stylizer():
    import tfnst

    return tfnst.Stylizer(StyleConfig(**FAST))


@pytest.fixture(scope="module")
def runs(pan, stylizer, tmp_path_factory):
    """The pan stylized with temporal weight 0 (independent frames) and the default."""
    out = {}
    for weight in (0.0, StyleConfig().temporal_weight):
        path = tmp_path_factory.mktemp("runs") / f"w{weight:g}"
        stylize_video(
            pan[0],
            STYLE,
            path,
            StyleConfig(**FAST, temporal_weight=weight),
            frame_iterations=FRAME_ITERATIONS,
            stylizer=stylizer,
        )
        out[weight] = [f for f in read_video(path)[0]]
        assert not work_folder(path).exists()  # removed once the video is written
    return out


@pytest.mark.slow
def test_cli_writes_a_video_with_the_frames_and_rate_of_the_input(pan, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, err = run_cli(
        capsys,
        "video",
        pan[0],
        STYLE,
        "-o",
        out,
        "--size",
        64,
        "--iterations",
        3,
        "--scales",
        1,
        "--frame-iterations",
        2,
        "--temporal-frames",
        "1,2",
        "-q",
    )
    assert code == 0, err
    assert "wrote" in err and "6 frames" in err
    frames, info = read_video(out)
    assert (info.frame_count, info.fps, info.width, info.height) == (6, Fraction(25), 64, 48)
    assert len(list(frames)) == 6


@pytest.mark.slow
def test_the_temporal_term_lowers_the_warping_error(pan, runs):
    clip = pan[1]
    contents = [f for f in read_video(pan[0])[0]]
    independent = warping_error(runs[0.0], contents).mean
    consistent = warping_error(runs[StyleConfig().temporal_weight], contents).mean
    # measured on this clip (64x48, 4 + 3 iterations): see docs/video.md
    assert consistent < independent / 3, (consistent, independent)
    assert len(runs[0.0]) == len(clip.frames)


@pytest.mark.slow
def test_an_interrupted_run_resumes_at_the_first_unfinished_frame(pan, runs, stylizer, tmp_path):
    out = tmp_path / "resumed"
    config = StyleConfig(**FAST)

    def stop_after_third(index, image):
        if index == 2:
            raise KeyboardInterrupt

    with pytest.raises(VideoInterrupted) as e:
        stylize_video(
            pan[0], STYLE, out, config, frame_iterations=FRAME_ITERATIONS, stylizer=stylizer, on_frame=stop_after_third
        )
    assert e.value.done == 3 and not out.exists()
    assert sorted(p.name for p in work_folder(out).glob("*.png")) == ["000001.png", "000002.png", "000003.png"]
    seen = []
    result = stylize_video(
        pan[0],
        STYLE,
        out,
        config,
        frame_iterations=FRAME_ITERATIONS,
        stylizer=stylizer,
        on_frame=lambda index, image: seen.append(index),
    )
    assert result.resumed == 3 and seen == [3, 4, 5] and result.frames == 6
    resumed = [f for f in read_video(out)[0]]
    uninterrupted = runs[StyleConfig().temporal_weight]
    for a, b in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_allclose(a, b, atol=1.5 / 255)


def test_a_work_folder_of_another_run_is_refused(pan, tmp_path, capsys):
    out = tmp_path / "out"
    work = work_folder(out)
    work.mkdir()
    (work / "run.json").write_text("{}")
    code, err = run_cli(capsys, "video", pan[0], STYLE, "-o", out, "--size", 64, "-q")
    assert code == 2 and err.count("\n") == 1 and "another run" in err and "--restart" in err


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "case,message",
    [
        ("text.mp4", "is not a readable video"),
        ("empty", "no frames"),
        ("sizes", "frames change size"),
        ("missing.mp4", "no such file"),
        ("out.xyz", "out.xyz"),
        ("style", "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(pan, tmp_path, capsys, case, message):
    source, out, style = pan[0], tmp_path / "out.mp4", STYLE
    if case == "text.mp4":
        source = tmp_path / "text.mp4"
        source.write_text("not a video")
    elif case == "empty":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "sizes":
        source = tmp_path / "sizes"
        write_video(source, [np.zeros((48, 64, 3), np.float32)] * 2)
        from PIL import Image

        Image.new("RGB", (32, 32)).save(source / "000003.png")
    elif case == "missing.mp4":
        source = tmp_path / "missing.mp4"
    elif case == "out.xyz":
        out = tmp_path / "out.xyz"
    elif case == "style":
        style = tmp_path / "nostyle.jpg"
    code, err = run_cli(capsys, "video", source, style, "-o", out, "--size", 64, "-q")
    assert code == 2 and err.startswith("tfnst: error:") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists() and not work_folder(out).exists()


# ------------------------------------------------------------------ by a network
@pytest.mark.slow
def test_apply_a_network_to_a_video(pan, tmp_path, capsys):
    from tfnst.networks import StyleTransformer, save_network

    model = StyleTransformer(width=4, depth=1, seed=0)
    model(np.zeros((1, 32, 32, 3), np.float32))
    save_network(model, tmp_path / "net.keras")
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "apply", tmp_path / "net.keras", pan[0], "-o", out)
    assert code == 0, err
    _, info = read_video(out)
    assert (info.frame_count, info.fps, info.width, info.height) == (6, Fraction(25), 64, 48)
