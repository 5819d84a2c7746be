"""TFLite / LiteRT export of a trained network: each quantization runs in LiteRT's
interpreter on several input sizes and matches the Keras model; the command line's
refusals. A tiny network trained a few steps (docs/networks.md has the README-size
network's file sizes and latencies, from `python -m benchmarks.litert`)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from tests.conftest import EXAMPLES, SHALLOW_TRAINING, small
from tfnst import cli
from tfnst.errors import TfnstError
from tfnst.litert import LiteRTNetwork, calibration_images, convert, export_litert
from tfnst.networks import StyleTransformer, load_network, save_network, train

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "data" / "photos"
STYLE = EXAMPLES / "starry_night.jpg"
# Two sizes, neither side a multiple of 4 in the first: the graph mirrors and crops back.
SIZES = ((37, 50), (64, 48))


def psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = tmp_path_factory.mktemp("litert") / "net.keras"
    options = dict(size=32, batch_size=2, width=8, depth=1, crops=1, precision="float32", steps=5)
    model = train(STYLE, PHOTOS, **options, **SHALLOW_TRAINING, verbose=0)  # the loss to block2: conversion's claims
    return save_network(model, path)


def images():
    tubingen = small("tubingen.jpg", 64)  # 64x48
    return [tubingen[:37, :50], tubingen.transpose(1, 0, 2).copy()]  # 50x37, then 48x64


def matches_keras_on_two_sizes(lite, model, bound):
    """``lite`` gives ``model``'s results to ``bound`` dB on both of `images`, and reads
    uint8 as 0-255."""
    for image in images():
        out = lite(image)
        assert out.shape == image.shape and out.dtype == np.float32
        value = psnr(out, model(image[None]).numpy()[0])
        assert value >= bound, value
    uint8 = (images()[0] * 255).round().astype(np.uint8)  # uint8 is read as 0-255, like the Keras model
    np.testing.assert_allclose(lite(uint8), lite(uint8.astype(np.float32) / 255), atol=1e-6)


# Measured on this network (2026-12-02, trained with the loss to block2): none 121-125 dB
# (float32 rounding), float16 73-74, dynamic 42.9 dB (with the loss to block4: 119-123,
# 73-74, 43.6); on the README-size one (untrained, benchmarks.litert) 100-112, 69.5 and
# 36-37 dB (all with nearest upsampling, before bilinear became the default; the bounds
# hold with it, not re-measured). The issue asks at least 30 dB. The dynamic variant is the command's test's
# (test_the_command_exports_a_model_that_runs_without_tensorflow), which converts it.
@pytest.mark.slow
@pytest.mark.parametrize("quantize,bound", [("none", 60.0), ("float16", 45.0)])
def test_each_float_variant_matches_keras_on_two_sizes(network, quantize, bound):
    model = load_network(network)
    matches_keras_on_two_sizes(LiteRTNetwork(convert(model, quantize)), model, bound)


def test_a_network_with_nearest_upsampling_converts_and_matches_keras():
    # Networks saved before bilinear upsampling became the default use Keras'
    # UpSampling2D, which `tfnst.litert` swaps for TFLite's nearest resize: the same
    # values (untrained, so no training is needed to see them differ).
    model = StyleTransformer(width=8, depth=1, upsampling="nearest")
    model(images()[0][None])
    matches_keras_on_two_sizes(LiteRTNetwork(convert(model, "none")), model, 60.0)


@pytest.mark.slow
def test_int8_is_full_integer_with_float_input_and_output(network, tmp_path):
    model = load_network(network)
    path = export_litert(model, tmp_path / "net.tflite", "int8", PHOTOS, calibration_size=32, samples=8)
    lite = LiteRTNetwork(path)
    details = lite.interpreter
    assert details.get_input_details()[0]["dtype"] == np.float32
    assert details.get_output_details()[0]["dtype"] == np.float32
    ops = details._get_ops_details()
    assert {"CONV_2D", "QUANTIZE", "DEQUANTIZE"} <= {op["op_name"] for op in ops}
    dtype = {t["index"]: t["dtype"] for t in details.get_tensor_details()}
    convolutions = [op for op in ops if op["op_name"] == "CONV_2D"]
    assert len(convolutions) == 8  # 3 + 2 per residual block (1) + 2 after the upsamplings + the output
    # Full integer: every convolution takes int8 activations and int8 weights, gives int8.
    for op in convolutions:
        assert [dtype[i] for i in (*op["inputs"][:2], *op["outputs"])] == [np.int8] * 3, op
    for image in images():
        value = psnr(lite(image), model(image[None]).numpy()[0])
        # Measured 25.8-27.7 dB on this network (24.5-27.7 trained with the loss to block4;
        # 2026-12-02), 21.0-21.5 dB on the README-size one
        # (untrained, benchmarks.litert): int8 instance normalization is coarse. Stated
        # bound: 18 dB.
        assert value >= 18.0, value


def test_calibration_images_are_training_crops():
    crops = calibration_images(PHOTOS, size=32, samples=12)
    assert len(crops) == 12 and all(c.shape == (1, 32, 32, 3) and c.dtype == np.float32 for c in crops)
    assert 0.0 <= min(c.min() for c in crops) and max(c.max() for c in crops) <= 1.0


def test_convert_refuses_bad_requests():
    model = StyleTransformer(width=4, depth=1)
    with pytest.raises(TfnstError, match="one of none, float16, dynamic, int8"):
        convert(model, "int4")
    with pytest.raises(TfnstError, match="needs a folder of calibration images"):
        convert(model, "int8")
    with pytest.raises(TfnstError, match="for int8 quantization only"):
        convert(model, "dynamic", PHOTOS)
    with pytest.raises(TfnstError, match="is not a tfnst StyleTransformer"):
        convert(object())


@pytest.mark.slow
def test_the_command_exports_a_model_that_runs_without_tensorflow(network, tmp_path, capsys):
    out = tmp_path / "net.tflite"
    assert (
        cli.main(["export", "--network", str(network), "--format", "tflite", "--quantize", "dynamic", "-o", str(out)])
        == 0
    )
    assert "exported" in capsys.readouterr().err and out.stat().st_size > 0
    image = images()[0]
    np.save(tmp_path / "in.npy", image)
    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_path=sys.argv[1])
        x = np.load(sys.argv[2])[None]
        index = it.get_input_details()[0]["index"]
        it.resize_tensor_input(index, list(x.shape))
        it.allocate_tensors()
        it.set_tensor(index, x)
        it.invoke()
        np.save(sys.argv[3], it.get_tensor(it.get_output_details()[0]["index"]))
        print(json.dumps({"tensorflow": "tensorflow" in sys.modules, "tfnst": "tfnst" in sys.modules,
                          "signature": it.get_signature_list(),
                          "shape": it.get_input_details()[0]["shape_signature"].tolist()}))
    """)
    r = subprocess.run(
        [sys.executable, "-c", script, str(out), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report == {
        "tensorflow": False,
        "tfnst": False,
        "shape": [1, -1, -1, 3],
        "signature": {"serving_default": {"inputs": ["image"], "outputs": ["stylized"]}},
    }
    model = load_network(network)
    assert psnr(np.load(tmp_path / "out.npy"), model(image[None]).numpy()) >= 30
    # The dynamic variant, as test_each_float_variant_matches_keras_on_two_sizes checks the others.
    matches_keras_on_two_sizes(LiteRTNetwork(out), model, 30.0)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--quantize", "dynamic", "--out", "{tmp}/s"], "--quantize is an option of --format tflite"),
        (["--images", "{photos}", "--out", "{tmp}/s"], "--images is an option of --format tflite"),
        (["--format", "tflite", "-o", "{tmp}/n.tflite"], "exports a trained network: give --network"),
        (
            ["--format", "tflite", "--network", "{net}", "-o", "{tmp}/n.tflite", "--quantize", "int8"],
            "--quantize int8 needs --images",
        ),
        (
            ["--format", "tflite", "--network", "{net}", "-o", "{tmp}/n.tflite", "--images", "{photos}"],
            "--images is for --quantize int8",
        ),
        (
            ["--format", "tflite", "--network", "{net}", "-o", "{tmp}/n.tflite", "--max-size", "512"],
            "--max-size is an option of the SavedModel",
        ),
        (
            ["--format", "tflite", "--network", "{net}", "-o", "{tmp}/n.tflite", "--version", "2"],
            "--version is an option of the SavedModel",
        ),
        (
            ["--format", "tflite", "--network", "{net}", "-o", "{tmp}/n.tflite", "--style-weight", "3"],
            "a trained network has its style built in",
        ),
        (["--format", "tflite", "--network", "{net}", "-o", "{tmp}/folder"], "the model file, MODEL.tflite"),
        (["--format", "tflite", "--network", "{net}", "-o", "{tmp}/missing/n.tflite"], "no such folder"),
        (["--format", "tflite", "--network", "{tmp}/none.keras", "-o", "{tmp}/n.tflite"], "no such network file"),
        (
            [
                "--format",
                "tflite",
                "--network",
                "{net}",
                "-o",
                "{tmp}/n.tflite",
                "--quantize",
                "int8",
                "--images",
                "{tmp}/nowhere",
            ],
            "no such folder",
        ),
        (["--format", "onnx", "--network", "{net}", "-o", "{tmp}/n.onnx"], "invalid choice"),
        (["--format", "tflite", "--network", "{net}", "-o", "{tmp}/n.tflite", "--quantize", "int4"], "invalid choice"),
    ],
)
def test_export_refuses_meaningless_combinations_in_one_line(capsys, tmp_path, args, message):
    net = tmp_path / "net.keras"
    net.write_bytes(b"checked for existence only; refused before it is read")
    argv = ["export", *[a.format(tmp=tmp_path, net=net, photos=PHOTOS) for a in args]]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tfnst: error:") and err.count("\n") == 1, err
    assert message in err, err
    assert not list(tmp_path.glob("*.tflite"))
