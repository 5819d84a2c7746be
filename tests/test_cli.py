"""The command line: end to end through a subprocess, and every bad input (exit 2, one line)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import EXAMPLES
from tfnst import cli

CONTENT, STYLE = str(EXAMPLES / "tubingen.jpg"), str(EXAMPLES / "starry_night.jpg")


def tfnst_process(*args):
    return subprocess.run(
        [sys.executable, "-m", "tfnst", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_stylize_end_to_end(tmp_path):
    out = tmp_path / "out dir ü" / "result.png"  # spaces and non-ASCII in the path
    out.parent.mkdir()
    r = tfnst_process(
        "stylize", CONTENT, STYLE, "-o", str(out), "--size", "48", "--iterations", "4", "--save-every", "2"
    )
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (48, 36)
    # The defaults run two scales (4 iterations at each here): snapshots name their scale.
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "result.png",
        "result_s1_2.png",
        "result_s1_4.png",
        "result_s2_2.png",
        "result_s2_4.png",
    ]
    assert "4/4" in r.stderr and "loss=" in r.stderr and "it/s" in r.stderr  # the progress bar
    assert "Traceback" not in r.stderr and "cuda" not in r.stderr.lower()


def test_texture_end_to_end(tmp_path):
    out = tmp_path / "texture.jpg"
    r = tfnst_process(
        "texture", STYLE, "-o", str(out), "--size", "40x32", "--iterations", "3", "--optimizer", "lbfgs", "-q"
    )
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (40, 32)


def test_bad_input_through_a_real_process(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = tmp_path / "out.png"
    r = tfnst_process("stylize", str(bad), STYLE, "-o", str(out), "--iterations", "1")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("tfnst: error:")
    assert not out.exists()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    rgb = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(d / "good.png")
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("hello")
    Image.fromarray(rgb).save(d / "full.jpg")
    (d / "truncated.jpg").write_bytes((d / "full.jpg").read_bytes()[:300])
    Image.fromarray(rgb).convert("L").save(d / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(d / "rgba.png")
    Image.fromarray(rgb).convert("P").save(d / "palette.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(d / "deep16.png")
    return d


def run_cli(capsys, *args):
    code = cli.main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["stylize", "{d}/missing.png", STYLE], "no such file"),
        (["stylize", "{d}/empty.jpg", STYLE], "not a readable image"),
        (["stylize", "{d}/text.jpg", STYLE], "not a readable image"),
        (["stylize", "{d}/truncated.jpg", STYLE], "truncated"),
        (["stylize", "{d}", STYLE], "directory"),
        (["stylize", CONTENT, "{d}/text.jpg"], "not a readable image"),
        (["stylize", CONTENT, STYLE, "--size", "0"], "size must be >= 16, received 0"),
        (["stylize", CONTENT, STYLE, "--size", "8"], "size must be >= 16, received 8"),
        # Options that would change nothing are refused with what they need:
        (["stylize", CONTENT, STYLE, "--patience", "5"], "patience needs a tolerance above 0"),
        # --max-memory holds with --tile: a tile that does not fit is refused with the estimate
        (["stylize", CONTENT, STYLE, "--max-memory", "500MB", "--tile", "64"], "GB in tiles of 64 px"),
        (["stylize", CONTENT, STYLE, "--scales", "1", "--coarse-iterations", "3"], "coarse_iterations needs scales"),
        (["stylize", CONTENT, STYLE, "--seed", "3"], "seed makes the noise of init noise reproducible"),
        (["stylize", CONTENT, STYLE, "--hist-layers", "block1_conv1"], "hist_layers needs hist_weight above 0"),
        (["stylize", CONTENT, STYLE, "--style-blend", "1"], "with one it changes nothing"),
        (["stylize", CONTENT, STYLE, "--style-stat", "discriminator", "--optimizer", "lbfgs"], "runs with Adam"),
        (["stylize", CONTENT, STYLE, "--iterations", "0"], "iterations must be > 0, received 0"),
        (["stylize", CONTENT, STYLE, "--iterations", "many"], "whole number"),
        (["stylize", CONTENT, STYLE, "--style-weight", "-1"], "style_weight must be >= 0, received -1.0"),
        (["stylize", CONTENT, STYLE, "--tv-weight", "inf"], "tv_weight must be a number"),
        (["stylize", CONTENT, STYLE, "--content-weight", "abc"], "expected a number"),
        (["stylize", CONTENT, STYLE, "--learning-rate", "0"], "learning_rate must be > 0"),
        (["stylize", CONTENT, STYLE, "--style-scale", "-2"], "style_scale must be > 0"),
        (["stylize", CONTENT, STYLE, "--optimizer", "sgd"], "invalid choice"),
        (["stylize", CONTENT, STYLE, "--precision", "float16"], "invalid choice"),
        (["stylize", CONTENT, STYLE, "--ema-decay", "1"], "ema_decay must be < 1, received 1.0"),
        (["stylize", CONTENT, STYLE, "--ema-decay", "0.9", "--optimizer", "lbfgs"], "ema_decay needs optimizer adam"),
        (["stylize", CONTENT, STYLE, "--style-layers", "block7_conv1"], "unknown VGG19 layer"),
        (["stylize", CONTENT, STYLE, "--style-layer-weights", "1,2"], "one per style layer"),
        (["stylize", CONTENT, STYLE, "--init", "{d}/missing.png"], "or an image file, received"),
        (["stylize", CONTENT, STYLE, "--init", "contnet"], "init must be one of content, noise, style"),
        (["stylize", CONTENT, STYLE, "--init", "{d}/text.jpg"], "not a readable image"),
        (["texture", STYLE, "--init", "content"], "needs a content image"),
        (
            ["stylize", CONTENT, STYLE, "--learning-rate", "0.1", "--optimizer", "lbfgs"],
            "learning_rate needs optimizer adam",
        ),
        (
            ["stylize", CONTENT, STYLE, "--style-layers", "block1_conv1,", "--style-layer-weights", "1,2"],
            "needs 1 values, one per style layer, received 2",
        ),
        (["stylize", CONTENT, STYLE, "--vgg-weights", "{d}/missing.h5"], "vgg_weights must be"),
        (["texture", STYLE, "--size", "0x10"], "positive sizes"),
        (["texture", STYLE, "--size", "axb"], "expected WxH"),
        (["stylize", CONTENT], "required"),
        (["bogus"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, inputs, tmp_path, monkeypatch, args, message):
    # Bad input is refused before the VGG19 weights are read (on a new machine: fetched,
    # with a line of its own on stderr) and before any output is written.
    import tfnst.features

    def no_weights(*args, **kwargs):
        raise AssertionError("the VGG19 weights were read before the input was checked")

    monkeypatch.setattr(tfnst.features, "load_vgg19_weights", no_weights)
    out = tmp_path / "out.png"
    argv = [a.format(d=inputs) for a in args] + ["-o", str(out), "--iterations", "1", "-q"]
    if "--iterations" in args:  # keep the bad value, not our default
        argv = [a.format(d=inputs) for a in args] + ["-o", str(out), "-q"]
    code, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert err.startswith("tfnst: error:") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize(
    "out,message",
    [
        ("{t}/missing/out.png", "does not exist"),
        ("{t}/out.xyz", "unsupported output format"),
        ("{t}", "unsupported output format"),
    ],
)
def test_bad_output_paths(capsys, tmp_path, out, message):
    code, err = run_cli(capsys, "stylize", CONTENT, STYLE, "-o", out.format(t=tmp_path), "-q")
    assert code == 2 and message in err


@pytest.mark.parametrize("name", ["gray.png", "rgba.png", "palette.png", "deep16.png"])
def test_unusual_but_valid_images_work(capsys, inputs, tmp_path, name):
    out = tmp_path / "out.png"
    code, err = run_cli(
        capsys,
        "stylize",
        str(inputs / name),
        str(inputs / name),
        "-o",
        str(out),
        "--size",
        "32",
        "--iterations",
        "1",
        "-q",
    )
    assert code == 0, err
    assert Image.open(out).size == (32, 32)


def test_snapshots_of_each_scale_are_kept(tmp_path):
    # Each coarse-to-fine scale counts its iterations from 1: snapshots name their scale
    # rather than overwrite each other.
    out = tmp_path / "r.png"
    code = cli.main(
        [
            "stylize",
            CONTENT,
            STYLE,
            "-o",
            str(out),
            "--size",
            "64",
            "--iterations",
            "2",
            "--scales",
            "2",
            "--coarse-iterations",
            "2",
            "--save-every",
            "2",
            "--tolerance",
            "0",
            "-q",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png", "r_s1_2.png", "r_s2_2.png"]
    assert Image.open(tmp_path / "r_s1_2.png").size[0] < Image.open(tmp_path / "r_s2_2.png").size[0]


def test_texture_takes_an_init(tmp_path):
    out = tmp_path / "t.png"
    assert (
        cli.main(["texture", STYLE, "-o", str(out), "--size", "32x24", "--iterations", "1", "--init", CONTENT, "-q"])
        == 0
    )
    assert Image.open(out).size == (32, 24)


def test_readme_option_table_shows_the_real_defaults():
    """Each default in the README's option table is `StyleConfig`'s (or Adam's, for the
    options that are unset until the optimizer is known)."""
    import dataclasses
    import re

    import tfnst
    from tfnst.config import ADAM_DEFAULTS, COARSE_ITERATIONS

    UNSET_DEFAULTS = {**ADAM_DEFAULTS, "coarse_iterations": COARSE_ITERATIONS}  # what "unset" means

    text = (EXAMPLES.parent / "README.md").read_text()
    defaults = {f.name: f.default for f in dataclasses.fields(tfnst.StyleConfig)}
    checked = 0
    for flags, shown in re.findall(r"^\| (`--[^|]*?) \| ([^|]*?) \|", text, re.M):
        if not shown.strip():
            continue
        names = [n.replace("-", "_") for n in re.findall(r"`--([\w-]+)`", flags)]
        values = [v.strip() for v in shown.split(",")]
        assert len(names) == len(values), (flags, shown)
        for name, value in zip(names, values):
            real = defaults[name] if defaults[name] is not None else UNSET_DEFAULTS[name]
            assert value == cli._shown(real), (name, value, real)
            checked += 1
    assert checked >= 10


def test_the_discriminator_runs_from_the_command_line_without_naming_adam(capsys, tmp_path):
    # optimizer="auto" follows what the discriminator needs (Adam) instead of refusing.
    out = tmp_path / "d.png"
    code, err = run_cli(
        capsys,
        "stylize",
        CONTENT,
        STYLE,
        "-o",
        str(out),
        "--size",
        "32",
        "--iterations",
        "2",
        "--scales",
        "1",
        "--style-loss",
        "discriminator",
        "-q",
    )
    assert code == 0, err
    assert Image.open(out).size == (32, 24)


def test_a_checkpoint_path_alone_writes_a_checkpoint_that_resumes(capsys, tmp_path):
    out, ckpt = tmp_path / "c.png", tmp_path / "state.npz"
    common = [CONTENT, STYLE, "-o", str(out), "--size", "32", "--scales", "1", "--checkpoint", str(ckpt), "-q"]
    code, err = run_cli(capsys, "stylize", *common, "--iterations", "2")
    assert code == 0, err
    assert ckpt.is_file()
    from tfnst.checkpoint import load_checkpoint

    assert load_checkpoint(ckpt).iteration == 2
    code, err = run_cli(capsys, "stylize", *common, "--iterations", "3", "--resume")
    assert code == 0, err
    assert load_checkpoint(ckpt).iteration == 3
