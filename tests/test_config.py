"""Every option of every command does something: changed from its default (alone, and
beside the options it works with) it changes what happens — the output, the files
written, the log, or what reaches the library — or it is refused with one line and
exit status 2.

The options are read from the command line's own parser, so a new option fails
`test_every_option_is_walked` until it is given a way to be observed here.
"""

import argparse
import importlib.util
import re

import numpy as np
import pytest
from PIL import Image

import tfnst
from tests.conftest import EXAMPLES
from tfnst import cli

C, S, S2 = str(EXAMPLES / "tubingen.jpg"), str(EXAMPLES / "starry_night.jpg"), str(EXAMPLES / "the_scream.jpg")
# The base run of the walk: tiny, deterministic (content init, float32, one scale).
BASE = ["--size", "32", "--iterations", "3", "--scales", "1", "--precision", "float32", "-q"]
MASK, HALF = "{d}/mask.png", "{d}/half.png"
REFUSED = "refused"
BEAM = importlib.util.find_spec("apache_beam") is not None
VIDEO = importlib.util.find_spec("av") is not None and importlib.util.find_spec("cv2") is not None

# stylize: flag -> variants. A variant is (args, reference args, styles): it must differ
# from the run with the reference args (the base when None), or be REFUSED when its
# reference is REFUSED. The first variant of each flag is the option alone.
STYLIZE = {
    "--size": [(["--size", "40"], None)],
    "--iterations": [(["--iterations", "4"], None)],
    "--optimizer": [(["--optimizer", "adam"], None), (["--optimizer", "tfp-lbfgs"], None)],
    "--learning-rate": [
        (["--learning-rate", "0.05"], None),
        (["--learning-rate", "0.05"], ["--optimizer", "adam"]),
        (["--learning-rate", "0.05", "--optimizer", "lbfgs"], REFUSED),
    ],
    "--ema-decay": [
        (["--ema-decay", "0.5"], None),
        (["--ema-decay", "0.5"], ["--optimizer", "adam"]),
        (["--ema-decay", "0.5", "--optimizer", "lbfgs"], REFUSED),
    ],
    "--tolerance": [(["--tolerance", "0.5", "--patience", "1"], ["--patience", "1", "--tolerance", "1e-9"])],
    "--patience": [(["--patience", "1"], REFUSED), (["--patience", "1", "--tolerance", "0.5"], ["--tolerance", "0.5"])],
    "--content-weight": [(["--content-weight", "0"], None)],
    "--style-weight": [(["--style-weight", "0"], None)],
    "--tv-weight": [(["--tv-weight", "0"], None)],
    "--content-layers": [
        (["--content-layers", "block3_conv1"], None),
        (["--content-layers", "block3_conv1", "--content-weight", "0"], REFUSED),
    ],
    "--style-layers": [(["--style-layers", "block1_conv1,block2_conv1"], None)],
    "--style-layer-weights": [(["--style-layer-weights", "1,0,0,0,1"], None)],
    "--style-stat": [
        (["--style-stat", "mean"], None),
        (["--style-loss", "meancov"], None),
        (["--style-stat", "discriminator"], None),
    ],
    "--hist-weight": [(["--hist-weight", "1"], None)],
    "--hist-layers": [
        (["--hist-layers", "block2_conv1"], REFUSED),
        (["--hist-weight", "1", "--hist-layers", "block2_conv1"], ["--hist-weight", "1"]),
    ],
    "--lap-weight": [
        (["--lap-weight", "1"], REFUSED),  # the default pools need 48 px a side
        (["--lap-weight", "1", "--lap-pool", "2,4"], None),
    ],
    "--lap-pool": [
        (["--lap-pool", "2"], REFUSED),
        (["--lap-weight", "1", "--lap-pool", "2"], ["--lap-weight", "1", "--lap-pool", "2,4"]),
    ],
    "--style-blend": [(["--style-blend", "1"], REFUSED), (["--style-blend", "1,3"], [], [S, S2])],
    "--preserve-color": [(["--preserve-color", "luminance"], None), (["--preserve-color", "histogram"], None)],
    "--normalize-vgg": [(["--normalize-vgg"], None)],
    "--scales": [(["--scales", "2"], None)],
    "--scale-factor": [
        (["--scale-factor", "1.5"], REFUSED),
        (["--scales", "2", "--scale-factor", "1.5"], ["--scales", "2"]),
    ],
    "--coarse-iterations": [
        (["--coarse-iterations", "1"], REFUSED),
        (["--scales", "2", "--coarse-iterations", "1"], ["--scales", "2"]),
    ],
    "--pooling": [(["--pooling", "avg"], None)],
    "--precision": [(["--precision", "bfloat16"], None)],
    "--vgg-weights": [(["--vgg-weights", "{d}/missing.h5"], REFUSED)],
    "--init": [(["--init", "noise"], None), (["--init", "style"], None), (["--init", S2], None)],
    "--seed": [(["--seed", "3"], REFUSED), (["--init", "noise", "--seed", "3"], ["--init", "noise", "--seed", "4"])],
    "--style-scale": [(["--style-scale", "0.5"], None)],
    "--max-pixels": [(["--max-pixels", "1000"], REFUSED)],
    "--max-memory": [(["--max-memory", "1MB"], REFUSED), (["--max-memory", "1MB", "--tile", "16"], REFUSED)],
    "--tile": [(["--tile", "16", "-v"], ["-v"])],  # the same image (exact tiling); the log says tiles
    # Needs tiles; with them, the same image over two devices (tests/test_tiling.py, on two
    # logical CPUs): here, one device, refused.
    "--devices": [(["--devices", "2"], REFUSED), (["--devices", "2", "--tile", "16"], REFUSED)],
    "--masks": [(["--masks", HALF], None), (["--masks", HALF, MASK], [], [S, S2])],
    "--style-masks": [
        (["--style-masks", HALF], REFUSED),
        (["--masks", HALF, "--style-masks", HALF], ["--masks", HALF]),
    ],
    "--save-every": [(["--save-every", "1"], None)],
    "--checkpoint": [(["--checkpoint", "{o}/run.ckpt.npz"], None)],  # {o}: the run's own folder
    "--checkpoint-every": [(["--checkpoint-every", "1"], None)],
    "--resume": [(["--resume"], REFUSED)],  # nothing to resume from; test_cli resumes a real one
    "--verbose": [(["-v", "--tile", "16"], ["--tile", "16"])],  # the details a run logs (here: its tiles)
    "--quiet": [([], "without -q")],  # the base is quiet: the progress bar is what -q removes
}
RUN_ONLY = {"--output", "--help"}  # the output path itself; argparse's help


def options_of(command: str) -> set[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {max(a.option_strings, key=len) for a in sub._actions if a.option_strings}


def test_every_option_is_walked():
    # The canonical flag is the longest: --style-stat and its alias --style-loss are one option.
    assert options_of("stylize") - RUN_ONLY - {"--style-loss"} <= set(STYLIZE) | {"--style-stat"}, sorted(
        options_of("stylize") - RUN_ONLY - set(STYLIZE)
    )
    missing = {c: sorted(options_of(c) - RUN_ONLY - set(WALKED[c])) for c in WALKED}
    assert not any(missing.values()), missing


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    d = tmp_path_factory.mktemp("masks")
    half = np.zeros((24, 32), np.uint8)
    half[:, :16] = 255
    Image.fromarray(half).save(d / "half.png")
    Image.fromarray(255 - half).save(d / "mask.png")
    return d


def differs(a, b) -> bool:
    if len(a) != len(b):
        return True
    return a[0] != b[0] or a[1].shape != b[1].shape or np.abs(a[1] - b[1]).max() > 0 or a[2:] != b[2:]


_STYLIZERS: dict = {}  # per worker: one Stylizer per network, as a long-lived process keeps
_BASES: dict = {}  # per worker: the reference runs, observed once


@pytest.fixture
def shared_stylizers(monkeypatch):
    """The command line's `Stylizer` reused across runs with the same network options (its
    VGG19 and compiled steps; the engine cache keys on everything that shapes a graph),
    so the walk pays for tracing once per network rather than once per run. The call
    options reach it as a fresh Stylizer's would: through its config."""
    real = tfnst.api.Stylizer

    def stylizer(config=None, **options):
        config = (config or tfnst.StyleConfig()).replace(**options)
        key = tuple(getattr(config, name) for name in real.NETWORK_OPTIONS)
        if key not in _STYLIZERS:
            _STYLIZERS[key] = real(config)
        shared = _STYLIZERS[key]
        shared.config = config
        return shared

    monkeypatch.setattr(tfnst.api, "Stylizer", stylizer)


@pytest.mark.slow
@pytest.mark.parametrize("flag", sorted(STYLIZE))
def test_every_stylize_option_changes_the_run_or_is_refused(capsys, tmp_path_factory, masks, shared_stylizers, flag):
    tmp_path = tmp_path_factory.mktemp("walk")
    # Masks and the missing-weights path live in the masks folder (observe's "{d}").
    base_args = [a for a in BASE]
    for variant in STYLIZE[flag]:
        args, reference = variant[0], variant[1]
        styles = variant[2] if len(variant) > 2 else [S]
        args = [a.replace("{d}", str(masks)) for a in args]
        if reference == "without -q":
            code, err = (
                cli.main(["stylize", C, S, "-o", str(tmp_path / "q.png"), *[a for a in BASE if a != "-q"]]),
                capsys.readouterr().err,
            )
            assert code == 0 and ("it/s" in err or "s/it" in err), err
            continue
        got = observe_in(capsys, tmp_path, base_args + args, styles)
        if reference == REFUSED:
            assert got[0] == 2, (flag, args, got[:1])
            assert got[1].startswith("tfnst: error:") and got[1].count("\n") == 1, got[1]
            continue
        assert got[0] == 0, (flag, args, got[1] if len(got) == 2 else "")
        ref_args = [a.replace("{d}", str(masks)) for a in (reference or [])]
        key = (tuple(ref_args), tuple(styles))
        if key not in _BASES:
            _BASES[key] = observe_in(capsys, tmp_path, base_args + ref_args, styles)
        base = _BASES[key]
        assert base[0] == 0, base
        assert differs(got, base), (flag, args, "changes nothing against", ref_args)


def observe_in(capsys, tmp_path, args, styles):
    out_dir = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    out_dir.mkdir()
    args = [a.replace("{o}", str(out_dir)) for a in args]
    code = cli.main(["stylize", C, *styles, "-o", str(out_dir / "out.png"), *args])
    err = capsys.readouterr().err
    if code != 0:
        return code, err
    pixels = np.asarray(Image.open(out_dir / "out.png"), np.int16)
    files = sorted(p.name for p in out_dir.iterdir())
    log = sorted(
        {
            re.sub(r"[\d.]+", "#", line)
            for line in err.splitlines()
            if line.strip() and "it/s" not in line and "s/it" not in line
        }
    )
    return code, pixels, files, log


# ------------------------------------------------------------------ the other commands
# What reaches the library: each command's call is captured (nothing is built), and
# each option must change it or be refused. flag -> variants (args, reference args or
# REFUSED); the base args of the command are in BASES.
BASES = {
    "texture": ["texture", S, "-o", "{t}/t.png"],
    "export": ["export", "--out", "{t}/m", "--max-size", "32"],
    "train": ["train", S, "--images", str(EXAMPLES.parent / "data" / "photos"), "-o", "{t}/n.keras"],
    "apply": ["apply", "{t}/net.keras", C, "-o", "{t}/a.png"],
    "batch": ["batch", "--model", "{model}", "--input", str(EXAMPLES / "*.jpg"), "--output", "{t}/out"],
    "video": ["video", str(EXAMPLES.parent / "data" / "video" / "bigbuckbunny_2s_128.mp4"), S, "-o", "{t}/v.mp4"],
}
WALKED = {
    "texture": {
        "--size": [(["--size", "40x24"], None)],
        "--iterations": [(["--iterations", "3"], None)],
        "--optimizer": [(["--optimizer", "adam"], None)],
        "--learning-rate": [(["--learning-rate", "0.1"], None)],
        "--ema-decay": [(["--ema-decay", "0.5"], None)],
        "--tolerance": [(["--tolerance", "0.1"], None)],
        "--patience": [
            (["--patience", "2"], REFUSED),
            (["--patience", "2", "--tolerance", "0.1"], ["--tolerance", "0.1"]),
        ],
        "--style-weight": [(["--style-weight", "2"], None)],
        "--tv-weight": [(["--tv-weight", "2"], None)],
        "--style-layers": [(["--style-layers", "block1_conv1"], None)],
        "--style-layer-weights": [(["--style-layer-weights", "1,2,3,4,5"], None)],
        "--style-stat": [(["--style-stat", "mean"], None)],
        "--hist-weight": [(["--hist-weight", "1"], None)],
        "--hist-layers": [
            (["--hist-layers", "block2_conv1"], REFUSED),
            (["--hist-weight", "1", "--hist-layers", "block2_conv1"], ["--hist-weight", "1"]),
        ],
        "--style-blend": [(["--style-blend", "1"], REFUSED)],
        "--normalize-vgg": [(["--normalize-vgg"], None)],
        "--scales": [(["--scales", "1"], None)],
        "--scale-factor": [(["--scale-factor", "3"], None)],
        "--coarse-iterations": [(["--coarse-iterations", "3"], None)],
        "--pooling": [(["--pooling", "avg"], None)],
        "--precision": [(["--precision", "float32"], None)],
        "--vgg-weights": [(["--vgg-weights", "/nonexistent.h5"], REFUSED)],
        "--init": [(["--init", "style"], None), (["--init", "content"], REFUSED)],
        "--seed": [(["--seed", "3"], None), (["--seed", "3", "--init", "style"], REFUSED)],
        "--style-scale": [(["--style-scale", "0.5"], None)],
        "--max-pixels": [(["--max-pixels", "1000"], REFUSED)],
        "--max-memory": [(["--max-memory", "4GB"], None)],
        "--tile": [(["--tile", "32"], None)],
        "--devices": [(["--devices", "2"], REFUSED), (["--devices", "2", "--tile", "32"], ["--tile", "32"])],
        "--save-every": [(["--save-every", "1"], None)],
        "--checkpoint": [(["--checkpoint", "{t}/c.npz"], None)],
        "--checkpoint-every": [(["--checkpoint-every", "2"], None)],
        "--resume": [(["--resume"], None)],
        "--quiet": [(["-q"], None)],
        "--verbose": [(["-v"], None)],
    },
    "export": {
        "--out": [(["--out", "{t}/other"], None)],
        "--max-size": [(["--max-size", "64"], None)],
        "--version": [(["--version", "7"], None)],
        "--network": [(["--network", "{t}/missing.keras"], REFUSED)],
        "--format": [(["--format", "tflite"], REFUSED)],  # a TFLite file is of a network (--network)
        "--quantize": [(["--quantize", "int8"], REFUSED)],
        "--images": [(["--images", "{t}"], REFUSED)],
        "--iterations": [(["--iterations", "3"], None)],
        "--optimizer": [(["--optimizer", "adam"], None)],
        "--learning-rate": [(["--learning-rate", "0.1"], None)],
        "--ema-decay": [(["--ema-decay", "0.5"], None)],
        "--tolerance": [(["--tolerance", "0.1"], None)],
        "--patience": [
            (["--patience", "2"], REFUSED),
            (["--patience", "2", "--tolerance", "0.1"], ["--tolerance", "0.1"]),
        ],
        "--content-weight": [(["--content-weight", "2"], None)],
        "--style-weight": [(["--style-weight", "2"], None)],
        "--tv-weight": [(["--tv-weight", "2"], None)],
        "--content-layers": [(["--content-layers", "block3_conv1"], None)],
        "--style-layers": [(["--style-layers", "block1_conv1"], None)],
        "--style-layer-weights": [(["--style-layer-weights", "1,2,3,4,5"], None)],
        "--style-stat": [(["--style-stat", "mean"], None)],
        "--hist-weight": [(["--hist-weight", "1"], None)],
        "--hist-layers": [(["--hist-layers", "block2_conv1"], REFUSED)],
        "--lap-weight": [(["--lap-weight", "1"], None)],
        "--lap-pool": [(["--lap-pool", "2"], REFUSED)],
        "--style-blend": [(["--style-blend", "1,2"], None)],
        "--preserve-color": [(["--preserve-color", "luminance"], None)],
        "--normalize-vgg": [(["--normalize-vgg"], None)],
        "--scales": [(["--scales", "1"], None)],
        "--scale-factor": [(["--scale-factor", "3"], None)],
        "--coarse-iterations": [(["--coarse-iterations", "3"], None)],
        "--pooling": [(["--pooling", "avg"], None)],
        "--precision": [(["--precision", "float32"], None)],
        "--vgg-weights": [(["--vgg-weights", "/nonexistent.h5"], REFUSED)],
        "--init": [(["--init", "noise"], None), (["--init", C], REFUSED)],
        "--seed": [(["--seed", "3"], REFUSED), (["--seed", "3", "--init", "noise"], ["--init", "noise"])],
        "--style-scale": [(["--style-scale", "0.5"], None)],
        "--verbose": [(["-v"], None)],
    },
    "train": {
        "--size": [(["--size", "64"], None)],
        "--steps": [(["--steps", "3"], None)],
        "--batch-size": [(["--batch-size", "2"], None)],
        "--learning-rate": [(["--learning-rate", "0.01"], None)],
        "--content-weight": [(["--content-weight", "2"], None)],
        "--style-weight": [(["--style-weight", "2"], None)],
        "--tv-weight": [(["--tv-weight", "2"], None)],
        "--width": [(["--width", "8"], None)],
        "--depth": [(["--depth", "2"], None)],
        "--content-layers": [(["--content-layers", "block2_conv2"], None)],
        "--style-layers": [(["--style-layers", "block1_conv2"], None)],
        "--crops": [(["--crops", "2"], None)],
        "--precision": [(["--precision", "float32"], None)],
        "--seed": [(["--seed", "3"], None)],
        "--learning-rate-decay": [(["--learning-rate-decay", "cosine"], None)],
        "--upsampling": [(["--upsampling", "nearest"], None)],
        "--crop-size": [(["--crop-size", "32"], None), (["--crop-size", "300"], REFUSED)],
        "--loss-jitter": [(["--loss-jitter", "0"], None), (["--loss-jitter", "250"], REFUSED)],
        "--stability-weight": [(["--stability-weight", "100"], None)],
        "--stability-shift": [
            (["--stability-shift", "2"], REFUSED),
            (["--stability-weight", "100", "--stability-shift", "2"], ["--stability-weight", "100"]),
        ],
        "--images": [(["--images", "{t}/missing"], REFUSED)],
        "--preview": [(["--preview", C], None)],
        "--preview-every": [
            (["--preview-every", "5"], REFUSED),
            (["--preview", C, "--preview-every", "5"], ["--preview", C]),
        ],
        "--backup": [(["--backup", "{t}/b"], None)],
        "--tensorboard": [(["--tensorboard", "{t}/tb"], None)],
        "--quiet": [(["-q"], None)],
        "--verbose": [(["-v"], None)],
    },
    "apply": {"--size": [(["--size", "64"], None)], "--verbose": [(["-v"], None)]},
    "video": {
        "--size": [(["--size", "64"], None)],
        "--iterations": [(["--iterations", "3"], None)],
        "--optimizer": [(["--optimizer", "adam"], None)],
        "--learning-rate": [(["--learning-rate", "0.1"], None)],
        "--ema-decay": [(["--ema-decay", "0.5"], None)],
        "--tolerance": [(["--tolerance", "0.1"], None)],
        "--patience": [
            (["--patience", "2"], REFUSED),
            (["--patience", "2", "--tolerance", "0.1"], ["--tolerance", "0.1"]),
        ],
        "--content-weight": [(["--content-weight", "2"], None)],
        "--style-weight": [(["--style-weight", "2"], None)],
        "--tv-weight": [(["--tv-weight", "2"], None)],
        "--content-layers": [(["--content-layers", "block3_conv1"], None)],
        "--style-layers": [(["--style-layers", "block1_conv1"], None)],
        "--style-layer-weights": [(["--style-layer-weights", "1,2,3,4,5"], None)],
        "--style-stat": [(["--style-stat", "mean"], None)],
        "--hist-weight": [(["--hist-weight", "1"], None)],
        "--hist-layers": [(["--hist-layers", "block2_conv1"], REFUSED)],
        "--lap-weight": [(["--lap-weight", "1"], None)],
        "--lap-pool": [(["--lap-pool", "2"], REFUSED)],
        "--style-blend": [(["--style-blend", "1,2"], REFUSED)],
        "--preserve-color": [(["--preserve-color", "luminance"], None)],
        "--normalize-vgg": [(["--normalize-vgg"], None)],
        "--scales": [(["--scales", "1"], None)],
        "--scale-factor": [(["--scale-factor", "3"], None)],
        "--coarse-iterations": [(["--coarse-iterations", "3"], None)],
        "--pooling": [(["--pooling", "avg"], None)],
        "--precision": [(["--precision", "float32"], None)],
        "--vgg-weights": [(["--vgg-weights", "/nonexistent.h5"], REFUSED)],
        "--init": [(["--init", "noise"], None)],
        "--seed": [(["--seed", "3"], REFUSED), (["--seed", "3", "--init", "noise"], ["--init", "noise"])],
        "--style-scale": [(["--style-scale", "0.5"], None)],
        "--max-pixels": [(["--max-pixels", "1000"], None)],
        "--max-memory": [(["--max-memory", "4GB"], None)],
        "--tile": [(["--tile", "32"], None)],
        "--devices": [(["--devices", "2"], REFUSED)],
        "--temporal-weight": [(["--temporal-weight", "0"], None)],
        "--frame-iterations": [(["--frame-iterations", "3"], None)],
        "--temporal-frames": [(["--temporal-frames", "1,2"], None)],
        "--flow": [(["--flow", "farneback"], None)],
        "--restart": [(["--restart"], None)],
        "--quiet": [(["-q"], None)],
        "--verbose": [(["-v"], None)],
    },
    "batch": {
        "--model": [(["--model", "{t}/missing"], REFUSED)],
        "--input": [(["--input", str(EXAMPLES / "t*.jpg")], None)],
        "--output": [(["--output", "{t}/elsewhere"], None)],
        "--style": [(["--style", S], REFUSED)],  # a network has its style built in
        "--batch-size": [(["--batch-size", "2"], None)],
        "--keep-extension": [(["--keep-extension"], None)],
        "--max-pixels": [(["--max-pixels", "1000"], None)],
        "--verbose": [(["-v"], None)],
    },
}


class Captured(Exception):
    """Raised by the stand-ins below: what reached the library, instead of running it."""


def describe(value):
    """A value as text that two equal calls share: objects by their type and their plain
    attributes (a callback's folder, a period), never their address."""
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in sorted(value.items())}
    if isinstance(value, (str, int, float, bool, type(None))) or hasattr(value, "__dataclass_fields__"):
        return repr(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # an image: its shape and a digest
        return f"array{tuple(value.shape)}:{float(np.asarray(value, np.float64).sum()):.6g}"
    plain = (
        {k: v for k, v in sorted(vars(value).items()) if isinstance(v, (str, int, float, bool, tuple))}
        if hasattr(value, "__dict__")
        else {}
    )
    return f"{type(value).__name__}{plain}"


@pytest.fixture
def capture(monkeypatch):
    """Replace the library calls each command ends in by recorders (nothing is built)."""
    import logging

    import tfnst.api
    import tfnst.batch
    import tfnst.export
    import tfnst.networks

    def record(what):
        def stand_in(*args, **kwargs):
            raise Captured(
                repr(
                    (
                        what,
                        describe(args),
                        describe(kwargs),
                        logging.getLogger("tfnst").level,
                        logging.getLogger().level,
                    )
                )
            )

        return stand_in

    def stylizer_init(self, config=None, **options):  # everything but VGG19
        self.config, self.features, self._engines, self.strategy = config, None, {}, None

    # The library's own checks and loading run (tfnst.api.Stylizer.run, _load); what
    # reaches the optimization (_run) is recorded.
    monkeypatch.setattr(tfnst.api.Stylizer, "__init__", stylizer_init)
    monkeypatch.setattr(tfnst.api.Stylizer, "_run", lambda self, *args: record("stylize")(*args))
    monkeypatch.setattr(tfnst.export, "export_savedmodel", record("export"))
    monkeypatch.setattr(tfnst.networks, "train", record("train"))
    monkeypatch.setattr(tfnst.networks, "load_network", lambda path: "network")
    monkeypatch.setattr(tfnst.networks, "stylize_with", record("apply"))
    if BEAM:
        monkeypatch.setattr(tfnst.batch, "build_pipeline", record("batch"))
    if VIDEO:
        import tfnst.video

        monkeypatch.setattr(tfnst.video, "stylize_video", record("video"))


@pytest.fixture(scope="module")
def network_model(tmp_path_factory):
    """A tiny network's SavedModel (what tfnst batch runs)."""
    from tfnst.networks import StyleTransformer, export_network

    return str(export_network(StyleTransformer(width=4, depth=1), tmp_path_factory.mktemp("net") / "m"))


def reached(capsys, command, args, tmp_path, model=""):
    argv = [a.replace("{t}", str(tmp_path)).replace("{model}", model) for a in BASES[command] + args]
    try:
        code = cli.main(argv)
    except Captured as e:
        capsys.readouterr()
        return 0, str(e).replace(str(tmp_path), "T")
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("command", sorted(WALKED))
def test_every_option_of_the_other_commands_reaches_the_library_or_is_refused(
    capsys, tmp_path, capture, command, request
):
    if (command == "batch" and not BEAM) or (command == "video" and not VIDEO):
        pytest.skip(f"needs the {command} extra")
    model = request.getfixturevalue("network_model") if command == "batch" else ""

    def call(args):
        return reached(capsys, command, args, tmp_path, model)

    base = call([])
    assert base[0] == 0, base
    for flag, variants in WALKED[command].items():
        for args, reference in variants:
            got = call(args)
            if reference == REFUSED:
                assert got[0] == 2 and got[1].startswith("tfnst: error:") and got[1].count("\n") == 1, (
                    command,
                    args,
                    got,
                )
                continue
            assert got[0] == 0, (command, args, got)
            ref = base if reference is None else call(reference)
            assert got[1] != ref[1], (command, flag, args, "reaches the library unchanged")
