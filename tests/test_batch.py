"""tfnst batch: the Beam pipeline on the DirectRunner over a folder with broken files."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("apache_beam", reason="the beam extra (pip install 'tfnst[beam]')")

import tensorflow as tf

from tests.conftest import SHALLOW_TRAINING
from tfnst import batch
from tfnst.cli import main
from tfnst.image_io import read_image
from tfnst.networks import StyleTransformer, export_network

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = sorted((ROOT / "data" / "photos").glob("*.jpg"))
# name -> why it must be in the manifest (a piece of the reason)
BROKEN = {
    "truncated.jpg": "truncated",
    "text.jpg": "not an image",
    "empty.jpg": "empty file",
    "tiny.png": "under the 16x16",
}


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A tiny network's SavedModel (tfnst export --network's layout: OUT/1/)."""
    out = tmp_path_factory.mktemp("model") / "net"
    export_network(StyleTransformer(width=4, depth=1), out, max_size=128)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Ten photos at 32-64 px (JPEG and PNG, one in a subfolder, shapes that differ) and
    four broken files."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "sub").mkdir()
    good = []
    for i, photo in enumerate(PHOTOS[:10]):
        image = Image.open(photo).convert("RGB")
        image.thumbnail((32 + 4 * i, 32 + 4 * i))
        name = ("sub/" if i == 0 else "") + photo.stem + (".png" if i % 3 == 0 else ".jpg")
        image.save(root / name, quality=90)
        good.append(root / name)
    jpeg = (root / good[1].name).read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "text.jpg").write_text("this is not a picture\n")
    (root / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "tiny.png")
    return root, good


def expected(model, path) -> np.ndarray:
    """The SavedModel called directly on the image as tfnst reads it, quantized as its
    PNG signature does."""
    out = model.signatures["stylize_float"](images=tf.constant(read_image(path)[None]))["stylized"][0]
    return tf.image.convert_image_dtype(out, tf.uint8, saturate=True).numpy()


@pytest.fixture(scope="module")
def ran(network, folder, tmp_path_factory):
    root, _ = folder
    out = tmp_path_factory.mktemp("out") / "stylized"
    code = main(
        ["batch", "--model", str(network), "--input", f"{root}/**", "--output", str(out), "--runner", "DirectRunner"]
    )
    assert code == 0
    return out


@pytest.mark.slow
def test_every_good_image_equals_the_savedmodel_called_directly(network, folder, ran):
    root, good = folder
    model = tf.saved_model.load(str(network / "1"))
    for path in good:
        target = ran / path.relative_to(root).with_suffix(".png")
        got = np.asarray(Image.open(target))
        want = expected(model, path)
        assert got.shape == want.shape == (*read_image(path).shape[:2], 3), path.name
        assert np.array_equal(got, want), path.name


@pytest.mark.slow
def test_png_inputs_match_the_served_png_signature(network, folder, ran):
    """For lossless inputs (PIL and TF decode them alike) the result is the PNG the
    SavedModel's serving_default returns for the file's bytes."""
    root, good = folder
    model = tf.saved_model.load(str(network / "1"))
    pngs = [p for p in good if p.suffix == ".png"]
    assert len(pngs) >= 3
    for path in pngs:
        served = model.signatures["serving_default"](images=tf.constant([path.read_bytes()]))["stylized_bytes"][0]
        want = tf.io.decode_png(served).numpy()
        got = np.asarray(Image.open(ran / path.relative_to(root).with_suffix(".png")))
        assert np.abs(got.astype(int) - want).max() <= 1, path.name  # x/255 vs x*(1/255) in float32
        assert np.mean(got == want) > 0.999, path.name


@pytest.mark.slow
def test_the_manifest_lists_exactly_the_broken_files(folder, ran):
    root, good = folder
    lines = (ran / batch.FAILURES).read_text().splitlines()
    failures = {Path(f["path"]).name: f["reason"] for f in map(json.loads, lines)}
    assert set(failures) == set(BROKEN)
    for name, why in BROKEN.items():
        assert why in failures[name], (name, failures[name])
    written = {p.relative_to(ran).as_posix() for p in ran.rglob("*.png")}
    assert written == {p.relative_to(root).with_suffix(".png").as_posix() for p in good}


def test_mixed_sizes_in_one_batch_are_called_per_shape(network, folder):
    """--batch-size above 1: a batch is split by shape, results in the batch's order."""
    _, good = folder
    model = tf.saved_model.load(str(network / "1"))
    images = [read_image(p) for p in good[:4]] + [read_image(good[0])]
    assert len({i.shape for i in images}) == 4
    results = batch.CallSignature("images")(model, images, {}, "m")
    assert [r.example is i for r, i in zip(results, images)] == [True] * 5
    for image, result in zip(images, results):
        alone = model.signatures["stylize_float"](images=tf.constant(image[None]))["stylized"][0].numpy()
        np.testing.assert_allclose(result.inference, alone, atol=1e-6)


@pytest.mark.slow
def test_colliding_names_are_failures_or_kept_apart(network, tmp_path):
    """x.jpg and x.png in one folder would both be x.png: both are recorded, neither
    written; --keep-extension writes x.jpg.png and x.png.png."""
    image = Image.open(PHOTOS[0]).convert("RGB").resize((24, 20))
    image.save(tmp_path / "x.jpg")
    image.save(tmp_path / "x.png")
    image.save(tmp_path / "y.png")
    pattern = str(tmp_path / "*.*")
    out = tmp_path / "out"
    assert main(["batch", "--model", str(network), "--input", pattern, "--output", str(out)]) == 0
    failures = [json.loads(line) for line in (out / batch.FAILURES).read_text().splitlines()]
    assert sorted(Path(f["path"]).name for f in failures) == ["x.jpg", "x.png"]
    assert all("collides" in f["reason"] for f in failures)
    assert sorted(p.name for p in out.glob("*.png")) == ["y.png"]
    kept = tmp_path / "kept"
    assert (
        main(
            [
                "batch",
                "--model",
                str(network),
                "--input",
                pattern,
                "--output",
                str(kept),
                "--keep-extension",
                "--batch-size",
                "3",
            ]
        )
        == 0
    )
    assert (kept / batch.FAILURES).read_text() == ""
    assert sorted(p.name for p in kept.glob("*.png")) == ["x.jpg.png", "x.png.png", "y.png.png"]


def test_an_inference_error_is_recorded_and_the_job_goes_on(tmp_path):
    """RunInference's dead letters: a SavedModel whose stylize_float raises for one image
    (here: any 37 px wide) gives a manifest line for it; the others are written."""

    class Picky(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
        def stylize_float(self, images):
            check = tf.debugging.assert_none_equal(tf.shape(images)[2], 37, message="37 px wide refused")
            with tf.control_dependencies([check]):
                return {"stylized": 1.0 - images}

    picky = Picky()
    tf.saved_model.save(picky, str(tmp_path / "model"), signatures={"stylize_float": picky.stylize_float})
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo = Image.open(PHOTOS[0]).convert("RGB")
    for name, width in (("a", 36), ("b", 37), ("c", 38)):
        photo.resize((width, 20)).save(inputs / f"{name}.png")
    out = tmp_path / "out"
    assert (
        main(["batch", "--model", str(tmp_path / "model"), "--input", str(inputs / "*.png"), "--output", str(out)]) == 0
    )
    failures = [json.loads(line) for line in (out / batch.FAILURES).read_text().splitlines()]
    assert [Path(f["path"]).name for f in failures] == ["b.png"]
    assert failures[0]["reason"].startswith("inference failed: ") and "37 px wide refused" in failures[0]["reason"]
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "c.png"]
    a = np.asarray(Image.open(out / "a.png"))
    want = tf.image.convert_image_dtype(1.0 - read_image(inputs / "a.png"), tf.uint8, saturate=True).numpy()
    assert np.array_equal(a, want)


def test_names():
    assert batch.pattern_base("gs://b/photos/**/*.jpg") == "gs://b/photos/"
    assert batch.pattern_base("s3://b/a/x?.jpg") == "s3://b/a/"
    assert batch.pattern_base("/data/in/*.jpg") == "/data/in/"
    assert batch.pattern_base("rel/*.jpg") == os.path.join(os.getcwd(), "rel", "")
    assert batch.output_name("gs://b/photos/2024/a.b.JPG", "gs://b/photos/") == "2024/a.b.png"
    assert batch.output_name("gs://b/photos/2024/a.b.JPG", "gs://b/photos/", True) == "2024/a.b.JPG.png"
    assert batch.output_name("/in/.hidden", "/in/") == ".hidden.png"
    assert batch.output_name("/in/noext", "/in/") == "noext.png"


def test_local_paths_on_a_remote_runner_are_warned_about():
    local = ["/models/m/1", "/photos/*.jpg", "out"]
    assert batch.remote_path_warning([], local) is None
    assert batch.remote_path_warning(["--runner", "DirectRunner"], local) is None
    assert batch.remote_path_warning(["--runner=PrismRunner"], local) is None
    assert batch.remote_path_warning(["--runner", "FlinkRunner", "--environment_type", "LOOPBACK"], local) is None
    warning = batch.remote_path_warning(["--runner", "DataflowRunner", "--project", "p"], local)
    assert warning.startswith("DataflowRunner's workers") and "/photos/*.jpg" in warning
    assert batch.remote_path_warning(["--runner", "DataflowRunner"], ["gs://b/m", "gs://b/*.jpg", "s3://o"]) is None


def test_decode_gives_read_image_s_array(folder):
    _, good = folder
    for path in good[:3]:
        np.testing.assert_array_equal(batch.decode(path.read_bytes()), read_image(path))
    with pytest.raises(ValueError, match="over the limit"):
        batch.decode(good[1].read_bytes(), max_pixels=100)


def _cli(*args):
    return main(["batch", *args])


@pytest.mark.parametrize(
    "case",
    ["missing model", "empty pattern", "missing folder", "style for a network", "bad batch size", "output is a file"],
)
def test_command_line_errors(case, network, folder, tmp_path, capsys):
    root, _ = folder
    model, pattern, out, extra = str(network), f"{root}/*.jpg", str(tmp_path / "out"), []
    if case == "missing model":
        model = str(tmp_path / "nowhere")
    elif case == "empty pattern":
        pattern = f"{root}/*.webp"
    elif case == "missing folder":
        pattern = str(tmp_path / "nowhere" / "*.jpg")
    elif case == "style for a network":
        extra = ["--style", str(PHOTOS[0])]
    elif case == "bad batch size":
        extra = ["--batch-size", "0"]
    else:
        (tmp_path / "file").write_text("x")
        out = str(tmp_path / "file")
    assert _cli("--model", model, "--input", pattern, "--output", out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfnst: error: "), err
    assert not (tmp_path / "out").exists()


def test_other_commands_still_refuse_unknown_options(capsys):
    assert main(["apply", "model.keras", "a.jpg", "-o", "out", "--runner", "DirectRunner"]) == 2
    assert "unrecognized arguments: --runner DirectRunner" in capsys.readouterr().err


@pytest.mark.slow
def test_python_m_tfnst_batch_missing_model(tmp_path):
    """The module's own entry point: one line of tfnst's, exit status 2 (TensorFlow's own
    start-up lines, where the package does not hide them, are not ours to count)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfnst.batch",
            "--model",
            str(tmp_path / "m"),
            "--input",
            str(tmp_path / "*.jpg"),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    ours = [line for line in proc.stderr.splitlines() if line.startswith("tfnst")]
    message = (
        f"tfnst: error: {tmp_path / 'm'}: no SavedModel there (no saved_model.pb, nor version "
        "folders with one); export one with tfnst export"
    )
    assert ours == [message], proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ours[0]


@pytest.mark.slow
def test_optimization_graph_with_a_style(folder, tmp_path):
    """The optimization graph's SavedModel: --style is its style input; each result is
    the graph's stylize_float on the image and the style."""
    from tfnst.config import StyleConfig
    from tfnst.export import export_savedmodel

    _, good = folder
    # VGG19 to block2 (SHALLOW_TRAINING's layers): the claim is the style input's path.
    config = StyleConfig(precision="float32", tolerance=0.0, optimizer="adam", scales=1, **SHALLOW_TRAINING)
    model_dir = export_savedmodel(tmp_path / "graph", iterations=2, max_size=32, config=config)
    style = tmp_path / "style.png"
    Image.open(PHOTOS[-1]).convert("RGB").resize((40, 30)).save(style)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in good[1:3]:
        (inputs / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    assert _cli("--model", str(tmp_path / "graph"), "--input", str(inputs / "*"), "--output", str(out)) == 2
    assert (
        main(
            [
                "batch",
                "--model",
                str(model_dir),
                "--input",
                str(inputs / "*"),
                "--output",
                str(out),
                "--style",
                str(style),
            ]
        )
        == 0
    )
    model = tf.saved_model.load(str(model_dir))
    for path in good[1:3]:
        result = model.signatures["stylize_float"](
            content=tf.constant(read_image(path)[None]), style=tf.constant(read_image(style)[None])
        )["stylized"][0]
        want = tf.image.convert_image_dtype(result, tf.uint8, saturate=True).numpy()
        got = np.asarray(Image.open(out / f"{path.stem}.png"))
        assert got.shape == want.shape and max(got.shape[:2]) <= 32
        assert np.array_equal(got, want), path.name
    assert (out / batch.FAILURES).read_text() == ""


@pytest.mark.slow
def test_png_written_is_a_plain_rgb_png(ran):
    first = next(ran.rglob("*.png"))
    with Image.open(io.BytesIO(first.read_bytes())) as image:
        assert image.format == "PNG" and image.mode == "RGB"
