"""Checkpoints (`tfnst.checkpoint`): resuming gives the uninterrupted result, at any scale,
with any optimizer; other runs' and damaged files are refused."""

import numpy as np
import pytest

import tfnst
from tests.conftest import CONTENT, STYLE, TEST_OPTIONS, run_quiet
from tfnst.errors import TfnstError
from tfnst.optimizers import Interrupted

# VGG19 to block2: what is checked (the state saved and restored, the scale and iteration
# a run resumes at, the refusals) does not depend on the loss network's depth, and to
# block5 tracing and running VGG19 was most of this file's cost.
SHALLOW = dict(style_layers=("block1_conv1", "block2_conv1"), content_layers=("block2_conv1",))


@pytest.fixture(scope="module")
def stylizer():
    """This module's Stylizer (the session's, with SHALLOW layers)."""
    return tfnst.Stylizer(**TEST_OPTIONS, **SHALLOW)


# ----------------------------------------------------------------- checkpoint / resume
@pytest.mark.parametrize("optimizer,extra", [("adam", {"ema_decay": 0.0}), ("lbfgs", {}), ("adam", {"ema_decay": 0.8})])
def test_resume_gives_the_uninterrupted_result(stylizer, content64, style64, tmp_path, optimizer, extra):
    options = dict(size=40, iterations=8, init="noise", seed=11, optimizer=optimizer, **extra)
    whole = stylizer.stylize(content64, style64, **options)
    ckpt = tmp_path / "run.ckpt.npz"
    stylizer.stylize(content64, style64, **{**options, "iterations": 5}, checkpoint=ckpt, checkpoint_every=5)
    assert ckpt.exists()
    resumed = stylizer.stylize(content64, style64, **options, checkpoint=ckpt, resume=True)
    np.testing.assert_allclose(resumed, whole, atol=1e-5)
    assert not np.allclose(
        whole, stylizer.stylize(content64, style64, **{**options, "iterations": 5}), atol=1e-4
    )  # the resumed part did real work


@pytest.mark.slow
def test_resume_with_the_discriminator_gives_the_uninterrupted_result(content64, style64, tmp_path):
    # The discriminator's weights are part of the optimizer state, so they are saved too:
    # a resumed run equals the uninterrupted one (it would not if it restarted them).
    stylizer = tfnst.Stylizer(**TEST_OPTIONS, **SHALLOW, style_statistic="discriminator")
    options = dict(size=40, iterations=8, init="noise", seed=3)
    whole = stylizer.stylize(content64, style64, **options)
    ckpt = tmp_path / "disc.ckpt.npz"
    stylizer.stylize(content64, style64, **{**options, "iterations": 4}, checkpoint=ckpt, checkpoint_every=4)
    assert any("aux" in k for k in np.load(ckpt).files)
    resumed = stylizer.stylize(content64, style64, **options, checkpoint=ckpt, resume=True)
    np.testing.assert_allclose(resumed, whole, atol=1e-5)


class CtrlCAt(tfnst.Callback):
    """A Ctrl-C at one scale's iteration."""

    def __init__(self, size, iteration):
        self.size, self.iteration = size, iteration

    def on_iteration_end(self, record, image):
        if record.hw == self.size and record.iteration == self.iteration:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize("optimizer,stop_scale", [("adam", 1), ("lbfgs", 0)])
def test_coarse_to_fine_resumes_at_its_scale(stylizer, content64, style64, tmp_path, optimizer, stop_scale):
    from tfnst.checkpoint import load_checkpoint
    from tfnst.plan import plan

    options = dict(
        size=64,
        iterations=6,
        scales=3,
        scale_factor=2**0.5,
        init="noise",
        seed=3,
        optimizer=optimizer,
        **({"ema_decay": 0.8} if optimizer == "adam" else {}),
    )
    whole = stylizer.stylize(content64, style64, **options)
    ckpt = tmp_path / "c2f.ckpt.npz"
    sizes = [scale.hw for scale in plan(tfnst.StyleConfig(scales=3, scale_factor=2**0.5), (48, 64))]
    with pytest.raises(Interrupted):
        stylizer.stylize(
            content64,
            style64,
            **options,
            checkpoint=ckpt,
            checkpoint_every=2,
            callbacks=[CtrlCAt(sizes[stop_scale], 5)],
        )
    saved = load_checkpoint(ckpt)
    assert (saved.scale, saved.iteration) == (stop_scale, 4)
    seen = []
    resumed = stylizer.stylize(
        content64,
        style64,
        **options,
        checkpoint=ckpt,
        resume=True,
        callbacks=[lambda r: seen.append((r.hw, r.iteration))],
    )
    assert seen[0] == (sizes[stop_scale], 5)  # no scale before the checkpoint's runs again
    np.testing.assert_allclose(resumed, whole, atol=1e-5)


def test_resume_refuses_other_runs_and_bad_files(stylizer, content64, style64, tmp_path):
    ckpt = tmp_path / "run.ckpt.npz"
    stylizer.stylize(content64, style64, size=40, iterations=2, checkpoint=ckpt, checkpoint_every=2)
    with pytest.raises(TfnstError, match="other inputs or options"):
        stylizer.stylize(content64, style64, size=40, iterations=4, style_weight=99.0, checkpoint=ckpt, resume=True)
    with pytest.raises(TfnstError, match="other inputs or options"):
        stylizer.stylize(style64, style64, size=40, iterations=4, checkpoint=ckpt, resume=True)
    ckpt.write_bytes(b"junk")
    with pytest.raises(TfnstError, match="not a readable tfnst checkpoint"):
        stylizer.stylize(content64, style64, size=40, iterations=4, checkpoint=ckpt, resume=True)
    with pytest.raises(TfnstError, match="no checkpoint"):
        stylizer.stylize(content64, style64, size=40, iterations=4, checkpoint=tmp_path / "none", resume=True)


def test_cli_checkpoint_and_resume(capsys, tmp_path):
    out = tmp_path / "o.png"
    # The defaults (L-BFGS, two scales) with VGG19 to block2 (SHALLOW).
    shallow = ("--style-layers", ",".join(SHALLOW["style_layers"]), "--content-layers", *SHALLOW["content_layers"])
    every = ("--checkpoint-every", "2")
    code, err = run_quiet(
        capsys, "stylize", CONTENT, STYLE, "-o", out, "--size", "32", "--iterations", "4", *every, *shallow
    )
    assert code == 0, err
    assert (tmp_path / "o.png.ckpt.npz").exists()
    code, err = run_quiet(
        capsys, "stylize", CONTENT, STYLE, "-o", out, "--size", "32", "--iterations", "6", "--resume", *shallow
    )
    assert code == 0, err
