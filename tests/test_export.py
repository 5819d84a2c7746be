"""The TF-Serving export: load without tfnst, both signatures, bad requests, saved_model_cli,
and agreement with the library's own Adam result."""

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfnst
from tfnst.errors import TfnstError
from tfnst.export import export_savedmodel, next_version
from tests.conftest import small

ITERATIONS, MAX_SIZE = 6, 48


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tfnst_stylize"
    path = export_savedmodel(out, iterations=ITERATIONS, max_size=MAX_SIZE)
    assert path == out / "1"
    return path


def _png(array_uint8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array_uint8).save(buf, format="PNG")
    return buf.getvalue()


# Runs in a fresh interpreter that imports TensorFlow only, as a server would.
CLIENT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    model_dir, content_path, style_path, big_path, tiny_path, out_path = sys.argv[1:]
    m = tf.saved_model.load(model_dir)
    serve, floats = m.signatures["serving_default"], m.signatures["stylize_float"]
    read = lambda p: open(p, "rb").read()
    c, s, big, tiny = read(content_path), read(style_path), read(big_path), read(tiny_path)
    report = {"tfnst_imported": "tfnst" in sys.modules}
    out = serve(content=tf.constant([c, big]), style=tf.constant([s, s]))["stylized"]
    report["serve_dtype"], report["serve_shape"] = out.dtype.name, out.shape.as_list()
    report["decoded"] = [tf.io.decode_png(p).shape.as_list() for p in out.numpy()]
    image = tf.image.convert_image_dtype(tf.io.decode_image(c, channels=3), tf.float32)[None]
    style = tf.image.convert_image_dtype(tf.io.decode_image(s, channels=3), tf.float32)[None]
    f = floats(content=image, style=style)["stylized"]
    report["float_dtype"], report["float_shape"] = f.dtype.name, f.shape.as_list()
    np.save(out_path, f.numpy())
    errors = {}
    for name, call in {
        "not an image": lambda: serve(content=tf.constant([b"hello"]), style=tf.constant([s])),
        "empty bytes": lambda: serve(content=tf.constant([b""]), style=tf.constant([s])),
        "too small": lambda: serve(content=tf.constant([tiny]), style=tf.constant([s])),
        "batch mismatch": lambda: serve(content=tf.constant([c, c]), style=tf.constant([s])),
        "zero-size float": lambda: floats(content=tf.zeros([1, 0, 0, 3]), style=style),
    }.items():
        try:
            call()
            errors[name] = "no error"
        except tf.errors.InvalidArgumentError:
            errors[name] = "InvalidArgument"
    try:
        floats(content=tf.zeros([32, 32, 3]), style=style)
        errors["wrong rank"] = "no error"
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
        errors["wrong rank"] = "rejected"
    report["errors"] = errors
    report["still_serving"] = serve(content=tf.constant([c]), style=tf.constant([s]))["stylized"].shape.as_list()
    print(json.dumps(report))
''')


def test_serving_without_tfnst(exported, tmp_path, content64, style64):
    content = (small("tubingen.jpg", 40) * 255).round().astype(np.uint8)  # 40x30
    style = (small("starry_night.jpg", 40) * 255).round().astype(np.uint8)
    paths = {}
    for name, array in {"content": content, "style": style,
                        "big": (small("tubingen.jpg", 100) * 255).astype(np.uint8),
                        "tiny": np.zeros((8, 8, 3), np.uint8)}.items():
        paths[name] = tmp_path / f"{name}.png"
        paths[name].write_bytes(_png(array))
    out_npy = tmp_path / "float.npy"
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    r = subprocess.run([sys.executable, str(script), str(exported), *map(str, paths.values()), str(out_npy)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["tfnst_imported"] is False
    assert report["serve_dtype"] == "string" and report["serve_shape"] == [2]
    # Each image of the batch on its own; the 100 px one clamped to max_size.
    assert report["decoded"] == [[30, 40, 3], [36, 48, 3]]
    assert report["float_dtype"] == "float32" and report["float_shape"] == [1, 30, 40, 3]
    assert report["errors"] == {"not an image": "InvalidArgument", "empty bytes": "InvalidArgument",
                                "too small": "InvalidArgument", "batch mismatch": "InvalidArgument",
                                "zero-size float": "InvalidArgument", "wrong rank": "rejected"}
    assert report["still_serving"] == [1]

    # The library's own loss says the result is closer to the style than the content was.
    result = np.load(out_npy)[0]
    stylizer = tfnst.Stylizer()
    objective = stylizer._objective(stylizer.config, has_content=True)
    targets = objective.targets(content / 255.0, style / 255.0)
    style_of = lambda x: float(objective(tf.constant(x, tf.float32), targets)[1]["style"])
    assert style_of(result) < 0.9 * style_of(content / 255.0)


def test_graph_matches_library_adam(exported):
    # Same settings, same content/style at a size that needs no resizing, init from
    # content (deterministic): the graph and Stylizer run the same loss and Adam.
    content = small("tubingen.jpg", 40)  # 40x30
    style = small("starry_night.jpg", 40)  # 40x25: longest side already the content's
    library = tfnst.Stylizer().stylize(content, style, size=40, iterations=ITERATIONS)
    graph = tf.saved_model.load(str(exported)).signatures["stylize_float"](
        content=tf.constant(content[None]), style=tf.constant(style[None]))["stylized"].numpy()[0]
    # Measured: max |graph - library| = 4.2e-7 after 6 steps (float32 summation order).
    np.testing.assert_allclose(graph, library, atol=1e-4)
    assert np.abs(library - content).max() > 0.01  # and the steps did change the image


def test_averaging_graph_matches_library(tmp_path):
    # With ema_decay the graph returns the average of its iterates, as the library does.
    config = tfnst.StyleConfig(ema_decay=0.8, learning_rate=0.04)
    path = export_savedmodel(tmp_path / "ema", iterations=ITERATIONS, max_size=MAX_SIZE, config=config)
    content, style = small("tubingen.jpg", 40), small("starry_night.jpg", 40)
    stylizer = tfnst.Stylizer(config)
    library = stylizer.stylize(content, style, size=40, iterations=ITERATIONS)
    graph = tf.saved_model.load(str(path)).signatures["stylize_float"](
        content=tf.constant(content[None]), style=tf.constant(style[None]))["stylized"].numpy()[0]
    np.testing.assert_allclose(graph, library, atol=1e-4)
    last_iterate = stylizer.last_result.state["x"].numpy()
    assert np.abs(library - last_iterate).max() > 0.01  # an average, not the last iterate


def test_bfloat16_graph_matches_library(tmp_path):
    # The exported graph honours precision too: bfloat16 weights in the SavedModel and
    # the steps of a bfloat16 Stylizer (not bit-equal: the graph's VGG is plain tf.nn).
    config = tfnst.StyleConfig(precision="bfloat16")
    path = export_savedmodel(tmp_path / "bf16", iterations=ITERATIONS, max_size=MAX_SIZE, config=config)
    loaded = tf.saved_model.load(str(path))
    assert {v.dtype for v in loaded.vgg.kernels} == {tf.bfloat16}
    content, style = small("tubingen.jpg", 40), small("starry_night.jpg", 40)
    library = tfnst.Stylizer(config).stylize(content, style, size=40, iterations=ITERATIONS)
    graph = loaded.signatures["stylize_float"](
        content=tf.constant(content[None]), style=tf.constant(style[None]))["stylized"].numpy()[0]
    # Adam's first steps are ±lr wherever a gradient is near zero, so rounding flips a
    # few pixels' steps: compare means. Measured: mean |graph - library| 0.003, against a
    # mean change from the content of 0.078.
    assert np.abs(graph - library).mean() < 0.01
    assert np.abs(graph - content).mean() > 0.05


def test_saved_model_cli_show_and_run(exported, tmp_path):
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    assert cli, "saved_model_cli comes with tensorflow"
    show = subprocess.run([cli, "show", "--dir", str(exported), "--all"], capture_output=True,
                          text=True, timeout=120)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "serving_default" in show.stdout and "stylize_float" in show.stdout
    assert "DT_STRING" in show.stdout and "(-1)" in show.stdout

    content = (small("tubingen.jpg", 32) * 255).astype(np.uint8)
    style = (small("starry_night.jpg", 32) * 255).astype(np.uint8)
    np.save(tmp_path / "c.npy", np.array([_png(content)], dtype=bytes))
    np.save(tmp_path / "s.npy", np.array([_png(style)], dtype=bytes))
    run = subprocess.run([cli, "run", "--dir", str(exported), "--tag_set", "serve",
                          "--signature_def", "serving_default",
                          "--inputs", f"content={tmp_path / 'c.npy'};style={tmp_path / 's.npy'}",
                          "--outdir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    pngs = np.load(tmp_path / "out" / "stylized.npy", allow_pickle=True)
    assert Image.open(io.BytesIO(pngs[0])).size == (32, 24)


def test_versions_and_bad_arguments(tmp_path, exported):
    assert next_version(exported.parent) == 2
    assert next_version(tmp_path / "nothing") == 1
    with pytest.raises(TfnstError, match="already exists"):
        export_savedmodel(exported.parent, iterations=1, max_size=32, version=1)
    with pytest.raises(TfnstError, match="max_size"):
        export_savedmodel(tmp_path / "m", iterations=1, max_size=8)
    with pytest.raises(TfnstError, match="Adam"):
        export_savedmodel(tmp_path / "m", iterations=1, max_size=32,
                          config=tfnst.StyleConfig(optimizer="lbfgs"))
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
