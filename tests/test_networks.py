"""Feed-forward networks: the transformer, training with model.fit, saving, resuming,
distribution, serving, the CLI. Tiny networks and images: the tests check behaviour,
not the quality of a long training (docs/networks.md has that, with its command)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfnst
from tests.conftest import EXAMPLES, SHALLOW_TRAINING, STYLE, run_cli, small
from tfnst import cli
from tfnst.config import TrainConfig
from tfnst.errors import TfnstError
from tfnst.networks import (
    Preview,
    StyleTransformer,
    Upsampling2x,
    export_network,
    load_network,
    save_network,
    train,
)

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "data" / "photos"
TINY = dict(size=32, batch_size=2, width=4, depth=1, crops=1, precision="float32", steps=10, **SHALLOW_TRAINING)


def test_output_has_the_input_size_for_any_size_and_dtype():
    model = StyleTransformer(width=4, depth=1)
    rng = np.random.default_rng(0)
    for h, w in ((17, 23), (32, 32), (50, 37), (16, 61)):
        image = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        out = model(image).numpy()
        assert out.shape == (2, h, w, 3) and 0 <= out.min() and out.max() <= 1
        # uint8 is read as 0-255, floats as 0-1: the same picture gives the same output.
        np.testing.assert_allclose(out, model(image.astype(np.float32) / 255.0).numpy(), atol=1e-6)
    with pytest.raises(TfnstError):
        StyleTransformer(width=0)


def test_the_architecture_is_johnsons(tmp_path):
    model = StyleTransformer()  # width 32, depth 5: Johnson et al.'s network
    names = [layer.name for layer in model.core.layers]
    # Instance norms: after the first convolution, the two downsamplings, both convolutions
    # of each of the 5 residual blocks, and the two upsamplings (not after the output).
    assert sum(n.endswith("_in") for n in names) == 1 + 2 + 2 * 5 + 2
    # Resize-convolution (Odena et al. 2016), bilinear: no transposed convolutions.
    assert [layer.method for layer in model.core.layers if isinstance(layer, Upsampling2x)] == ["bilinear"] * 2
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in model.core.layers)
    assert all(
        layer.groups == layer.input.shape[-1]
        for layer in model.core.layers
        if isinstance(layer, keras.layers.GroupNormalization)
    )  # one group per channel
    # Johnson et al.'s supplementary table: about 1.68 M parameters (ours adds the norms' scales/offsets).
    assert 1.6e6 < model.count_params() < 1.8e6


def test_save_and_load_round_trip_without_custom_objects(tmp_path):
    model = StyleTransformer(width=4, depth=1, seed=3)
    model.compile(
        optimizer="adam",
        loss=tfnst.PerceptualLoss(
            tfnst.build_feature_model(["block1_conv2", "block2_conv2"]),
            small("starry_night.jpg", 32),
            content_layers=["block2_conv2"],
            style_layers=["block1_conv2"],
        ),
    )
    image = np.random.default_rng(1).random((1, 24, 20, 3)).astype(np.float32)
    path = save_network(model, tmp_path / "net.keras")
    loaded = keras.saving.load_model(path)  # compiled: the loss comes back from its config
    np.testing.assert_array_equal(loaded(image).numpy(), model(image).numpy())
    assert isinstance(loaded.loss, tfnst.PerceptualLoss)
    x = tf.constant(image)
    assert float(loaded.loss(x, loaded(x))) == pytest.approx(float(model.loss(x, model(x))), rel=1e-6)
    assert load_network(path).width == 4
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(TfnstError, match="not a readable"):
        load_network(tmp_path / "junk.keras")


def test_networks_saved_before_the_upsampling_option_load_with_nearest_upsampling():
    old = {"name": "old", "width": 4, "depth": 1, "seed": 0}  # get_config before 2026-12-02
    assert StyleTransformer.from_config(old).upsampling == "nearest"
    assert StyleTransformer.from_config({**old, "upsampling": "bilinear"}).upsampling == "bilinear"
    assert sum(isinstance(layer, keras.layers.UpSampling2D) for layer in StyleTransformer.from_config(old).core.layers)
    with pytest.raises(TfnstError, match="upsampling"):
        StyleTransformer(upsampling="cubic")


def test_the_upsampling_prints_no_grid_on_a_smooth_image():
    # The grid's cause (docs/networks.md, "The grid"; benchmarks/network_spectrum.py): nearest-
    # neighbour upsampling turns a gradient into 2x2 steps, peaks at a period of 4 pixels in the
    # output's spectrum before any training. Measured (width 16, depth 3, seeds 0 and 1): 21.7
    # and 23.2 times the background with nearest, 3.4 and 3.4 with bilinear.
    from benchmarks.network_spectrum import grid_peaks, smooth_image

    image = smooth_image()
    peaks = {
        u: grid_peaks(StyleTransformer(16, 3, upsampling=u)(image[None])[0])["period4"] for u in ("bilinear", "nearest")
    }
    assert peaks["bilinear"] < 8 < 15 < peaks["nearest"], peaks


def test_loss_jitter_cuts_output_and_content_at_one_offset_a_step():
    model = StyleTransformer(width=4, depth=1)
    model.loss_jitter = 4
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    content = tf.reshape(tf.range(20 * 24 * 3, dtype=tf.float32), [1, 20, 24, 3])
    offsets = []
    for step in (0, 1, 2, 3, 4, 5, 0):
        model.optimizer.iterations.assign(step)
        cut, output = (t.numpy() for t in model._jittered(content, content + 1))
        assert cut.shape == (1, 16, 20, 3)
        np.testing.assert_array_equal(output, cut + 1)  # the same window of both
        dy, dx = divmod(int(cut[0, 0, 0, 0]) // 3, 24)
        assert 0 <= dy < 4 and 0 <= dx < 4
        offsets.append((dy, dx))
    assert offsets[-1] == offsets[0] and len(set(offsets)) > 1, offsets  # a function of the step


def test_crops_smaller_than_the_training_size():
    from tfnst.datasets import training_dataset

    dataset, steps = training_dataset(PHOTOS, 64, 5, crops=1, crop_size=32)
    x, _ = next(iter(dataset))
    assert x.shape == (5, 32, 32, 3) and steps == 2
    with pytest.raises(TfnstError, match="crop_size"):
        training_dataset(PHOTOS, 64, 5, crop_size=65)
    with pytest.raises(TfnstError, match="crop_size"):
        TrainConfig(size=64, crop_size=65)


@pytest.mark.slow
def test_training_with_fit_lowers_the_loss():
    # 60 steps at 32 px from a random network, epochs of 10 steps (10 images x 2 crops,
    # batches of 2). The mean loss of the last epoch is under 0.75x the first's. Measured
    # (2026-12-02): 0.639 (6.08 to 3.89); at 64 px, 0.590 for 1.6x the CPU.
    history = []
    model = train(
        STYLE,
        PHOTOS,
        **{**TINY, "steps": 60, "width": 8, "crops": 2},
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: history.append(logs["loss"]))],
        verbose=0,
    )
    assert len(history) == 6
    assert history[-1] < 0.75 * history[0], history
    assert isinstance(model, StyleTransformer)


# 10 images x 2 crops in batches of 4: 3 epochs of 5 steps. One training of these, shared
# (`trained`): the one-device run the mirrored test compares with, the uninterrupted run
# the resuming test compares with, the callbacks' test's, and `tiny_network`.
SHARED = {**TINY, "steps": 15, "batch_size": 4, "crops": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A `SHARED` training with Keras callbacks: (the network, the folder the callbacks
    wrote in, the per-epoch mean losses)."""
    folder, losses = tmp_path_factory.mktemp("trained"), []
    callbacks = [
        Preview(EXAMPLES / "tubingen.jpg", folder / "preview_{step}.png", every=5),
        keras.callbacks.ModelCheckpoint(str(folder / "checkpoint.keras")),
        keras.callbacks.TensorBoard(str(folder / "logs")),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: losses.append(logs["loss"])),
    ]
    return train(STYLE, PHOTOS, **SHARED, verbose=0, callbacks=callbacks), folder, losses


@pytest.mark.slow
def test_backup_and_restore_resumes_to_the_uninterrupted_result(trained, tmp_path):
    options = SHARED  # 3 epochs of 5 steps
    whole = trained[0]  # the same options, uninterrupted (its callbacks only read the model)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise RuntimeError("power cut")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="power cut"):
        train(STYLE, PHOTOS, **options, callbacks=[backup, Crash()], verbose=0)
    epochs = []
    resumed = train(
        STYLE,
        PHOTOS,
        **options,
        verbose=0,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
            keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e)),
        ],
    )
    assert epochs == [1, 2]  # the first epoch, saved before the crash, did not run again
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_keras_callbacks_work(trained):
    folder = trained[1]  # Preview every 5 steps, ModelCheckpoint, TensorBoard over 15 steps
    assert sorted(p.name for p in folder.glob("preview_*.png")) == ["preview_10.png", "preview_15.png", "preview_5.png"]
    assert Image.open(folder / "preview_5.png").size == (512, 384)
    assert isinstance(keras.saving.load_model(folder / "checkpoint.keras"), StyleTransformer)
    assert list((folder / "logs").rglob("events.out.tfevents.*"))


def test_a_keras_callback_in_the_image_optimizer_is_refused_with_a_reason(content64, style64):
    with pytest.raises(TfnstError, match="Keras callback.*optimizes an image"):
        tfnst.Stylizer().stylize(content64, style64, size=32, iterations=1, callbacks=[keras.callbacks.EarlyStopping()])


@pytest.mark.slow
def test_unreadable_training_files_are_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg"):
        shutil.copy(PHOTOS / name, folder / name)
    (folder / "notes.jpg").write_text("not an image")
    (folder / "truncated.jpg").write_bytes((PHOTOS / "chelsea.jpg").read_bytes()[:2000])  # header intact
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "tiny.png")  # under 16 px a side
    with caplog.at_level("WARNING"):
        model = train(STYLE, folder, **{**TINY, "steps": 6, "crops": 2}, verbose=0)
    assert "notes.jpg" in caplog.text and "tiny.png" in caplog.text
    assert isinstance(model, StyleTransformer)  # no crash mid-epoch


def mirrored_losses(**runs) -> dict:
    """``train``'s per-epoch mean losses on a MirroredStrategy over two logical CPUs (set
    before TensorFlow starts, so in a process of its own, one for all ``runs``: a name and
    its options over `SHARED` each), and on one device in that process for the runs in
    ``one_device``: {name: {"mirrored": [...], "one": [...]}, ..., "replicas": 2}."""
    one_device = runs.pop("one_device", ())
    runs = {run: {**SHARED, **options} for run, options in runs.items()}
    script = textwrap.dedent(f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from tfnst.networks import train
        losses = {{}}
        for run, options in {runs!r}.items():
            losses[run] = {{}}
            mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
            for name, strategy in (("one", None), ("mirrored", mirrored)):
                if name == "one" and run not in {tuple(one_device)!r}:
                    continue
                seen = []
                record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(logs["loss"]))
                train({str(STYLE)!r}, {str(PHOTOS)!r}, strategy=strategy, verbose=0, callbacks=[record], **options)
                losses[run][name] = seen
        losses["replicas"] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).num_replicas_in_sync
        print(json.dumps(losses))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_strategy_on_two_devices_matches_one(trained):
    # Two logical CPUs (set before TensorFlow starts, so in a process of its own); each
    # replica gets half of every batch and the gradients are averaged, which is the same
    # step as one device's in exact arithmetic. In float32 the sums run in another order,
    # and Adam's steps amplify that: measured with the loss network to block4 (before
    # SHALLOW_TRAINING) 3.5e-6 and, on a clean clone with the suite in two workers,
    # 2.4e-5 relative on the first epoch's mean loss; 6e-4 on the third (15 steps). A
    # loss summed rather than averaged over the two replicas would be 2x. The one-device
    # run is `trained`, in this process (the same options and data; its losses equal, to
    # the bit, those of a one-device run in the mirrored process). Measured (2026-12-03,
    # the defaults, docs/networks.md): 4.6e-7 on the first epoch, 9.8e-6 on the third;
    # with the term, 9.2e-8 and 1.8e-6.
    # With the stability term (test_network_stability's claim; in the same process as the
    # plain run, to start TensorFlow once): each crop carries its own second view and
    # shift, so a strategy that splits the batch splits them with it, and two replicas
    # compute one device's step to the same float32 bounds. A term drawn per replica, or
    # views paired across the split, would not match.
    losses = mirrored_losses(plain={}, term=dict(steps=10, stability_weight=100.0), one_device=["term"])
    losses["plain"]["one"] = trained[2]
    assert losses["replicas"] == 2
    assert len(losses["plain"]["one"]) == 3 and len(losses["term"]["one"]) == 2
    # The figures of docs/networks.md: pytest tests/test_networks.py -k mirrored -s
    print(
        {
            run: [abs(m / o - 1) for m, o in zip(losses[run]["mirrored"], losses[run]["one"])]
            for run in ("plain", "term")
        }
    )
    for run in ("plain", "term"):
        np.testing.assert_allclose(losses[run]["mirrored"][0], losses[run]["one"][0], rtol=1e-4, err_msg=run)
        np.testing.assert_allclose(losses[run]["mirrored"], losses[run]["one"], rtol=2e-3, err_msg=run)


@pytest.fixture(scope="module")
def tiny_network(trained, tmp_path_factory):
    return save_network(trained[0], tmp_path_factory.mktemp("net") / "tiny.keras")


@pytest.mark.slow
def test_exported_network_serves_without_tfnst(tiny_network, tmp_path):
    out = export_network(load_network(tiny_network), tmp_path / "served", max_size=40)
    image = (small("tubingen.jpg", 60) * 255).astype(np.uint8)  # 60x45: clamped to 40x30
    Image.fromarray(image).save(tmp_path / "in.png")
    np.save(tmp_path / "in.npy", image.astype(np.float32)[None] / 255.0)
    np.save(tmp_path / "bytes.npy", np.array([(tmp_path / "in.png").read_bytes()], dtype=bytes))
    # One process without tfnst: the SavedModel's signatures, then TensorFlow's
    # saved_model_cli (the console script's own entry point, in the process that has
    # TensorFlow started already) runs serving_default on the PNG's bytes.
    saved_model_cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    assert (
        saved_model_cli and "tensorflow.python.tools.saved_model_cli import main" in Path(saved_model_cli).read_text()
    )
    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        import tensorflow as tf
        m = tf.saved_model.load(sys.argv[1])
        out = m.signatures["serving_default"](images=tf.constant([open(sys.argv[2], "rb").read()]))
        png = tf.io.decode_png(out["stylized_bytes"][0]).numpy()
        floats = m.signatures["stylize_float"](images=tf.constant(np.load(sys.argv[3])))["stylized"].numpy()
        with open(sys.argv[5], "w") as f:
            json.dump({"tfnst": "tfnst" in sys.modules, "png": list(png.shape), "float": list(floats.shape),
                       "inputs": sorted(m.signatures["serving_default"].structured_input_signature[1]),
                       "outputs": sorted(m.signatures["serving_default"].structured_outputs)}, f)
        np.save(sys.argv[4], floats)
        from tensorflow.python.tools.saved_model_cli import main
        sys.argv = ["saved_model_cli", "run", "--dir", sys.argv[1], "--tag_set", "serve", "--signature_def",
                    "serving_default", "--inputs", f"images={sys.argv[6]}", "--outdir", sys.argv[7]]
        main()
    """)
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(out),
            str(tmp_path / "in.png"),
            str(tmp_path / "in.npy"),
            str(tmp_path / "out.npy"),
            str(tmp_path / "report.json"),
            str(tmp_path / "bytes.npy"),
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == {
        "tfnst": False,
        "png": [30, 40, 3],
        "float": [1, 30, 40, 3],
        "inputs": ["images"],
        "outputs": ["stylized_bytes"],
    }
    library = load_network(tiny_network)(tfnst.resize.fit_longest(image.astype(np.float32) / 255.0, 40)[None])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), library.numpy(), atol=1e-5)
    assert (tmp_path / "cli" / "stylized_bytes.npy").exists()  # saved_model_cli's result


@pytest.mark.parametrize(
    "args,message",
    [
        (["--images", "{empty}"], "holds no image files"),
        (["--images", "{missing}"], "no such folder"),
        (["--images", "{junk}"], "no readable image"),
        (["--images", str(PHOTOS), "--steps", "0"], "steps must be > 0, received 0"),
        (["--images", str(PHOTOS), "--batch-size", "abc"], "whole number"),
        (["--images", str(PHOTOS), "--style-weight", "-2"], "style_weight must be >= 0, received -2.0"),
        (["--images", str(PHOTOS), "--batch-size", "64", "--crops", "1"], "fewer than one batch"),
    ],
)
def test_train_errors_are_one_line(capsys, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_text("not an image")
    argv = [
        "train",
        STYLE,
        "-o",
        tmp_path / "net.keras",
        "--size",
        "32",
        "--width",
        "4",
        "--depth",
        "1",
        "-q",
        *[a.format(empty=tmp_path / "empty", missing=tmp_path / "missing", junk=tmp_path / "junk") for a in args],
    ]
    code, err = run_cli(capsys, *argv)
    # Skipped files are warned about as they are met; the error is the one line that ends it.
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("tfnst: error:"), err
    assert all(line.startswith("tfnst: skipping") for line in lines[:-1]), err
    assert message in lines[-1]
    assert not (tmp_path / "net.keras").exists()


@pytest.mark.slow
def test_train_apply_export_end_to_end(capsys, tmp_path):
    # Training and export run in this process (the loss network to block2: the claim is
    # the commands' chain, not the style); apply runs as `python -m tfnst` in a fresh
    # process, which loads the saved network without this process' registrations.
    net = tmp_path / "net.keras"
    code = cli.main(
        [
            "train",
            str(STYLE),
            "--images",
            str(PHOTOS),
            "-o",
            str(net),
            "--size",
            "32",
            "--steps",
            "5",
            "--batch-size",
            "2",
            "--width",
            "4",
            "--depth",
            "1",
            "--crops",
            "1",
            "--precision",
            "float32",
            "--content-layers",
            ",".join(SHALLOW_TRAINING["content_layers"]),
            "--style-layers",
            ",".join(SHALLOW_TRAINING["style_layers"]),
            "--preview",
            str(EXAMPLES / "tubingen.jpg"),
            "--preview-every",
            "5",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    assert "loss" in printed.out + printed.err  # Keras' progress bar
    assert net.exists() and (tmp_path / "net_preview_5.png").exists()
    assert not (tmp_path / "net.keras.backup").exists()  # removed once training ended
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfnst",
            "apply",
            str(net),
            str(EXAMPLES / "tubingen.jpg"),
            str(EXAMPLES / "the_scream.jpg"),
            "-o",
            str(out),
            "--size",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert Image.open(out / "tubingen.png").size == (64, 48) and (out / "the_scream.png").exists()
    code = cli.main(["export", "--network", str(net), "--out", str(tmp_path / "served")])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "served" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_apply_and_export_errors(capsys, tmp_path, tiny_network):
    code, err = run_cli(
        capsys,
        "apply",
        tiny_network,
        EXAMPLES / "tubingen.jpg",
        EXAMPLES / "the_scream.jpg",
        "-o",
        tmp_path / "one.png",
    )
    assert code == 2 and "several images need an output folder" in err
    code, err = run_cli(capsys, "apply", tmp_path / "none.keras", EXAMPLES / "tubingen.jpg", "-o", tmp_path / "o.png")
    assert code == 2 and "no such network file" in err
    code, err = run_cli(capsys, "apply", tiny_network, tmp_path / "missing.jpg", "-o", tmp_path / "o.png")
    assert code == 2 and "no such file" in err
    code, err = run_cli(capsys, "export", "--network", tiny_network, "--out", tmp_path / "s", "--style-weight", "3")
    assert code == 2 and "a trained network has its style built in" in err
    code, err = run_cli(capsys, "export", "--out", tmp_path / "s")
    assert code == 2 and "--max-size" in err
