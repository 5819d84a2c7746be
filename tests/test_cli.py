"""The command line: end to end through a subprocess, every bad input (exit 2, one
line), signals, numerical faults, permissions and fuzzed arguments."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import tfnst
from tests.conftest import EXAMPLES, RGB, run_cli, run_quiet
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ----------------------------------------------------------------- signals
@pytest.mark.slow
@pytest.mark.parametrize(
    "signum,code,word,options,snapshot,what",
    [
        (signal.SIGINT, 130, "interrupted", [], "out_s1_3.png", "the best image so far"),  # the defaults
        (
            signal.SIGTERM,
            143,
            "terminated",
            ["--optimizer", "adam", "--scales", "1"],
            "out_3.png",
            "the average of the iterates so far",
        ),
    ],
)
def test_signal_writes_best_image_so_far(tmp_path, signum, code, word, options, snapshot, what):
    out = tmp_path / "out.png"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfnst",
            "stylize",
            CONTENT,
            STYLE,
            "-o",
            str(out),
            "--size",
            "48",
            "--iterations",
            "100000",
            "--save-every",
            "3",
            "-q",
            "--tolerance",
            "0",
            *options,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    snapshot = tmp_path / snapshot
    deadline = time.time() + 120
    while not snapshot.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert snapshot.exists(), proc.stderr.read() if proc.poll() is not None else "no snapshot"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"tfnst: {word} at iteration" in err and f"wrote {what}" in err
    assert "Traceback" not in err
    assert Image.open(out).size == (48, 36)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_dropped_inside_a_finalizer_still_ends_the_run(signum):
    # Python drops an exception raised in a finalizer; a Ctrl-C landing there once left
    # a run going. The next iteration's callback must raise it again.
    from tfnst.cli import _signals_as_interrupt, _Terminated

    class SignalledWhileFinalized:
        def __del__(self):
            os.kill(os.getpid(), signum)

    expected = _Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    with _signals_as_interrupt() as reraise:
        reraise(None)  # nothing pending: nothing raised
    with pytest.raises(expected):
        with _signals_as_interrupt() as reraise:
            try:
                SignalledWhileFinalized()  # the handler's exception is dropped here
            except BaseException:
                pytest.fail("the finalizer's exception was expected to be dropped")
            reraise(None)


# ----------------------------------------------------------------- numerical faults
def test_overflowing_weights_through_the_cli(capsys, tmp_path):
    out = tmp_path / "o.png"
    # Every evaluation overflows, the start's included: nothing to go back to; the run
    # gives up after 8 and still writes an image.
    code, err = run_quiet(
        capsys,
        "stylize",
        CONTENT,
        STYLE,
        "-o",
        out,
        "--size",
        "32",
        "--iterations",
        "20",
        "--style-weight",
        "1e39",
        "--precision",
        "float32",
    )
    assert code == 1
    assert "stopped early" in err and "best image so far" in err and "8 non-finite in a row" in err
    assert Image.open(out).size == (32, 24)


FLAGS = [
    "--size",
    "--iterations",
    "--optimizer",
    "--learning-rate",
    "--content-weight",
    "--style-weight",
    "--tv-weight",
    "--init",
    "--seed",
    "--pooling",
    "--style-scale",
    "--style-layers",
    "--style-layer-weights",
    "--content-layers",
    "--weights",
    "--max-pixels",
    "--save-every",
    "--checkpoint-every",
    "--style-stat",
    "--hist-weight",
    "--hist-layers",
    "--lap-weight",
    "--lap-pool",
    "--preserve-color",
    "--scales",
    "--style-blend",
    "--ema-decay",
    "--tolerance",
    "--patience",
]


VALUES = [
    "0",
    "-1",
    "1",
    "3",
    "1e309",
    "nan",
    "abc",
    "",
    "max",
    "avg",
    "lbfgs",
    "block1_conv1",
    "block9_conv1,",
    "1,2,3",
    "noise",
    "style",
    "content",
    "/nonexistent",
    "16",
    "x",
    "--",
    "gram",
    "mean",
    "meancov",
    "discriminator",
    "luminance",
    "histogram",
    "0.5",
    "2",
    "1,1",
    "4",
]


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.sampled_from(["stylize", "texture", "export", "bogus"]),
    pairs=st.lists(st.tuples(st.sampled_from(FLAGS), st.sampled_from(VALUES)), max_size=4),
    positional=st.lists(st.sampled_from([CONTENT, STYLE, "/nope.png", ""]), max_size=3),
)
def test_fuzz_cli_arguments(monkeypatch, tmp_path, capsys, command, pairs, positional):
    # Real runs (tiny: 24 px, one iteration, unless the fuzzed flags say otherwise): every
    # combination ends in exit 0, 1 (a numerical stop, still writing an image) or a
    # one-line error with exit 2. Only the export's saving is stubbed (it traces for
    # seconds); its options are checked the same way before it starts.
    def reached(*args, **kwargs):
        raise _Reached()

    monkeypatch.setattr("tfnst.export.export_savedmodel", reached)
    run_flags = ["--size", "24", "--iterations", "1", "-q"] if command in ("stylize", "texture") else []
    if command == "texture":
        run_flags[1] = "24x20"
    argv = [command, *positional, *run_flags, *[x for pair in pairs for x in pair], "-o", str(tmp_path / "o.png")]
    try:
        code = cli.main(argv)
    except _Reached:
        return
    err = capsys.readouterr().err
    assert code in (0, 1, 2), (argv, code, err)
    if code == 2:
        assert err.startswith("tfnst: error:") and err.count("\n") == 1, (argv, err)
    else:
        assert (tmp_path / "o.png").exists(), (argv, err)


class _Reached(Exception):
    pass


# ----------------------------------------------------------------- permissions
def test_unreadable_input_and_read_only_output_dir(tmp_path):
    """As an unprivileged user (root reads and writes anywhere, so drop to nobody)."""
    import tempfile

    if os.geteuid() == 0:
        user = 65534  # nobody
    elif os.access("/", os.W_OK):
        pytest.skip("cannot test permissions as a user who can write anywhere")
    else:
        user = None
    if user is not None:
        try:
            subprocess.run([sys.executable, "-c", "pass"], user=user, check=True, timeout=60)
        except (PermissionError, subprocess.CalledProcessError):
            pytest.skip("this Python cannot be run as nobody (e.g. it lives under /root)")
    work = tempfile.mkdtemp()
    try:
        os.chmod(work, 0o755)
        secret = os.path.join(work, "secret.png")
        Image.fromarray(RGB).save(secret)
        os.chmod(secret, 0o000)
        readonly = os.path.join(work, "readonly")
        os.mkdir(readonly, 0o555)
        writable = os.path.join(work, "writable")
        os.mkdir(writable, 0o777)
        cases = [
            ([secret, STYLE, "-o", os.path.join(writable, "o.png")], "permission denied"),
            ([CONTENT, STYLE, "-o", os.path.join(readonly, "o.png")], "not writable"),
        ]
        for args, message in cases:
            r = subprocess.run(
                [sys.executable, "-m", "tfnst", "stylize", *args, "-q"],
                capture_output=True,
                text=True,
                timeout=120,
                user=user,
                env={**os.environ, "HOME": work},
            )
            assert r.returncode == 2, r.stderr
            assert r.stderr.startswith("tfnst: error:") and message in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1
        assert os.listdir(readonly) == [] and os.listdir(writable) == []
    finally:
        os.chmod(os.path.join(work, "readonly"), 0o755)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def test_permission_errors_are_one_line(capsys, tmp_path, monkeypatch):
    """The same refusals, simulated, so they are tested wherever the suite runs."""
    secret = tmp_path / "secret.png"
    Image.fromarray(RGB).save(secret)
    real_open = Image.open

    def deny(path, *args, **kwargs):
        if str(path) == str(secret):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", deny)
    code, err = run_quiet(capsys, "stylize", secret, STYLE, "-o", tmp_path / "o.png")
    assert code == 2 and "permission denied" in err and err.count("\n") == 1
    readonly = tmp_path / "ro"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(readonly) else real_access(p, mode))
    code, err = run_quiet(capsys, "stylize", CONTENT, STYLE, "-o", readonly / "o.png")
    assert code == 2 and "not writable" in err
    assert not list(readonly.iterdir())
