"""The feature extractor: one VGG19 forward pass, checked against Keras' own VGG19;
truncation, pooling, preprocessing, precision, normalization, the Keras layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.features import (
    CAFFE_BGR_MEAN,
    CONV_LAYERS,
    VGG19,
    VGG19Features,
    build_feature_model,
    native_bfloat16,
    resolve_precision,
)
from tfnst.weights import load_vgg19_weights


@pytest.fixture(scope="module")
def keras_vgg19():
    """keras.applications.VGG19 (Keras' implementation) with the same weights: an
    independent reference for tfnst's forward pass."""
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    arrays = load_vgg19_weights()
    for name in CONV_LAYERS:
        model.get_layer(name).set_weights([np.asarray(a) for a in arrays[name]])
    return keras.Model(model.input, {n: model.get_layer(n).output for n in CONV_LAYERS})


def test_forward_pass_matches_keras_applications_vgg19(keras_vgg19):
    image = tf.random.uniform((1, 37, 53, 3), seed=5)  # odd sizes: pooling floors alike
    ours = VGG19(CONV_LAYERS)(image)
    # Keras' model takes Caffe-preprocessed input (keras.applications.vgg19.preprocess_input).
    theirs = keras_vgg19(keras.applications.vgg19.preprocess_input(image.numpy() * 255.0))
    for name in CONV_LAYERS:
        scale = float(tf.reduce_max(tf.abs(theirs[name]))) + 1e-6
        np.testing.assert_allclose(ours[name] / scale, theirs[name] / scale, atol=2e-5, err_msg=name)


def test_outputs_named_layers_and_truncates():
    module = VGG19(["block2_conv1", "block1_conv1"])
    out = module(tf.random.uniform((1, 32, 40, 3)))
    assert set(out) == {"block1_conv1", "block2_conv1"}
    assert out["block2_conv1"].shape == (1, 16, 20, 128)
    assert len(module.kernels) == 3  # block1_conv1, block1_conv2, block2_conv1: nothing deeper
    model = build_feature_model(["block2_conv1", "block1_conv1"])
    np.testing.assert_array_equal(
        model(np.ones((1, 32, 40, 3), np.float32))["block2_conv1"],
        module(np.ones((1, 32, 40, 3), np.float32))["block2_conv1"],
    )


def test_preprocessing_is_caffe_inside_the_model():
    image = np.random.default_rng(1).random((1, 8, 8, 3)).astype(np.float32)
    out = VGG19(["block1_conv1"])(image)["block1_conv1"].numpy()
    kernel, bias = load_vgg19_weights()["block1_conv1"]
    bgr = image[..., ::-1] * 255.0 - np.array(CAFFE_BGR_MEAN, np.float32)
    manual = tf.nn.relu(tf.nn.conv2d(bgr, kernel, 1, "SAME") + bias).numpy()
    np.testing.assert_allclose(out, manual, rtol=1e-4, atol=1e-3)


def test_average_pooling_is_average_pooling():
    image = tf.random.uniform((1, 32, 32, 3), seed=3)
    conv = VGG19(["block1_conv2"])(image)["block1_conv2"]
    a = VGG19(["block2_conv1"], pooling="max")(image)["block2_conv1"]
    b = VGG19(["block2_conv1"], pooling="avg")(image)["block2_conv1"]
    kernel, bias = load_vgg19_weights()["block2_conv1"]
    manual = tf.nn.relu(tf.nn.conv2d(tf.nn.avg_pool2d(conv, 2, 2, "VALID"), kernel, 1, "SAME") + bias)
    np.testing.assert_allclose(b, manual, rtol=1e-4, atol=1e-3)
    assert not np.allclose(a, b)


@pytest.mark.parametrize(
    "layers,pooling", [(["block9_conv1"], "max"), ([], "max"), (["block1_conv1"], "min"), ("block1_conv1", "max")]
)
def test_bad_arguments(layers, pooling):
    with pytest.raises(TfnstError):
        build_feature_model(layers, pooling=pooling)


def test_keras_layer_saves_by_configuration(tmp_path):
    model = build_feature_model(["block1_conv2", "block3_conv1"], pooling="avg")
    image = np.random.default_rng(2).random((1, 24, 32, 3)).astype(np.float32)
    model.save(tmp_path / "features.keras")
    loaded = keras.saving.load_model(tmp_path / "features.keras")  # no custom_objects
    assert isinstance(loaded.get_layer("vgg19_features"), VGG19Features)
    for name in ("block1_conv2", "block3_conv1"):
        np.testing.assert_array_equal(loaded(image)[name], model(image)[name])
    assert (tmp_path / "features.keras").stat().st_size < 100_000  # the weights are not in the file
    assert model.trainable_weights == []


def test_normalized_vgg_has_unit_mean_activations_at_every_layer():
    from tests.conftest import small
    from tfnst.features import normalization_scales, normalize_weights

    images = [small("tubingen.jpg", 64), small("starry_night.jpg", 64)]
    arrays = load_vgg19_weights()
    before = normalization_scales(arrays, images)
    after = normalization_scales(normalize_weights(arrays, images), images)
    assert set(after) == set(CONV_LAYERS) and len(CONV_LAYERS) == 16
    for name in CONV_LAYERS:
        alive = before[name] > 1e-8
        assert alive.mean() > 0.4, name  # measured: 46% (block5_conv4) to 100% alive
        # Measured: within 4e-5 except filters alive at a few positions (mean ~0.007 at
        # block5, where float32 rounding flips a ReLU or two): up to 1.1e-3.
        np.testing.assert_allclose(after[name][alive], 1.0, rtol=2e-3, err_msg=name)
        assert not np.allclose(before[name][alive], 1.0, rtol=0.1)  # it did change something
    model = build_feature_model(["block2_conv1"], normalize=[])  # the bundled examples
    assert model(images[0][None])["block2_conv1"].shape[-1] == 128


def test_normalized_vgg_is_the_same_network_rescaled_also_where_filters_were_dead():
    # Gatys et al.'s rescaling leaves every later layer's input as it was: on an image
    # that was not among the normalization images, each filter's features are the
    # original network's over its mean there, and a filter dead on those images (mean 0)
    # is kept as trained, not divided by ~0. Measured: 4 to 58 filters per layer of
    # block4_conv4-block5_conv4 dead on the two images fire on The Scream or on noise;
    # all within 6e-7 of the layer's largest value. Fails if dead filters are rescaled
    # or a layer's inputs are not compensated.
    from tests.conftest import small
    from tfnst.features import normalization_scales, normalize_weights

    images = [small("tubingen.jpg", 64), small("starry_night.jpg", 64)]
    arrays = load_vgg19_weights()
    means = normalization_scales(arrays, images)
    original = VGG19(CONV_LAYERS, arrays=arrays)
    normalized = VGG19(CONV_LAYERS, arrays=normalize_weights(arrays, images))
    fired = 0
    for image in (small("the_scream.jpg", 64), np.random.default_rng(0).random((48, 64, 3)).astype(np.float32)):
        before, after = original(image[None]), normalized(image[None])
        for name in CONV_LAYERS:
            alive = means[name] > 1e-8
            a, b = before[name].numpy(), after[name].numpy()
            fired += int((a[..., ~alive] > 0).any(axis=(0, 1, 2)).sum())
            scale = np.where(alive, means[name], 1.0)
            np.testing.assert_allclose(b * scale / np.abs(a).max(), a / np.abs(a).max(), atol=1e-5, err_msg=name)
    assert fired > 10  # the dead filters were seen at work


def test_bfloat16_convolutions_give_float32_features_close_to_float32():
    layers = ["block1_conv1", "block3_conv1", "block5_conv1"]
    image = tf.random.uniform((1, 48, 64, 3), seed=2)
    full = VGG19(layers, precision="float32")(image)
    module = VGG19(layers, precision="bfloat16")
    half = module(image)
    assert {v.dtype for v in module.kernels} == {tf.bfloat16}
    for name in layers:
        assert half[name].dtype == tf.float32
        # bfloat16 keeps 8 significant bits; measured 0.3-0.6% after 1-13 layers.
        error = tf.norm(half[name] - full[name]) / tf.norm(full[name])
        assert 0 < float(error) < 0.03, (name, float(error))
    with pytest.raises(TfnstError, match="precision"):
        build_feature_model(layers, precision="float16")


@pytest.mark.parametrize(
    "flags,gpus,tpus,native",
    [
        ({"avx2", "fma"}, [], [], False),  # AMD EPYC with AVX2 only
        ({"avx512f", "avx512_bf16"}, [], [], True),  # AMD EPYC / Intel with AVX512_BF16
        ({"avx512f", "amx_bf16", "amx_tile"}, [], [], True),  # Intel with AMX
        ({"avx2"}, [(7, 5)], [], False),  # a T4 (Turing)
        ({"avx2"}, [(8, 0)], [], True),  # an A100 (Ampere)
        ({"avx2"}, [(9, 0), (7, 0)], [], False),  # one card without it: not on every device
        ({"avx2"}, [], ["TPU:0"], True),
    ],
)
def test_auto_precision_is_bfloat16_where_it_is_native(flags, gpus, tpus, native):
    assert native_bfloat16(flags, gpus, tpus) is native


def test_resolve_precision(monkeypatch):
    assert resolve_precision("float32") == "float32" and resolve_precision("bfloat16") == "bfloat16"
    monkeypatch.setenv("TFNST_PRECISION", "float32")
    assert resolve_precision("auto") == "float32"
    monkeypatch.delenv("TFNST_PRECISION")
    assert resolve_precision("auto") == ("bfloat16" if native_bfloat16() else "float32")
