"""The feature extractor: named layers, truncation, pooling, preprocessing inside."""

import numpy as np
import pytest
import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.features import CAFFE_BGR_MEAN, build_feature_model
from tfnst.weights import load_vgg19_weights


def test_outputs_named_layers_and_truncates():
    model = build_feature_model(["block2_conv1", "block1_conv1"])
    out = model(tf.random.uniform((1, 32, 40, 3)))
    assert set(out) == {"block1_conv1", "block2_conv1"}
    assert out["block2_conv1"].shape == (1, 16, 20, 128)
    names = [layer.name for layer in model.layers]
    assert names[-1] == "block2_conv1"  # nothing deeper is built
    assert "block2_conv2" not in names


def test_preprocessing_is_caffe_inside_the_model():
    image = np.random.default_rng(1).random((1, 8, 8, 3)).astype(np.float32)
    out = build_feature_model(["block1_conv1"])(image)["block1_conv1"].numpy()
    kernel, bias = load_vgg19_weights()["block1_conv1"]
    bgr = image[..., ::-1] * 255.0 - np.array(CAFFE_BGR_MEAN, np.float32)
    manual = tf.nn.relu(tf.nn.conv2d(bgr, kernel, 1, "SAME") + bias).numpy()
    np.testing.assert_allclose(out, manual, rtol=1e-4, atol=1e-3)


def test_average_pooling_differs_from_max():
    image = tf.random.uniform((1, 32, 32, 3), seed=3)
    a = build_feature_model(["block2_conv1"], pooling="max")(image)["block2_conv1"]
    b = build_feature_model(["block2_conv1"], pooling="avg")(image)["block2_conv1"]
    assert not np.allclose(a, b)
    avg = build_feature_model(["block2_conv1"], pooling="avg")
    assert any(type(layer).__name__ == "AveragePooling2D" for layer in avg.layers)


@pytest.mark.parametrize("layers,pooling", [(["block9_conv1"], "max"), ([], "max"), (["block1_conv1"], "min")])
def test_bad_arguments(layers, pooling):
    with pytest.raises(TfnstError):
        build_feature_model(layers, pooling=pooling)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_plain_tf_module_matches_keras_model(pooling):
    from tfnst.features import VGG19Module

    layers = ["block1_conv2", "block3_conv1", "block5_conv1"]
    image = tf.random.uniform((1, 37, 53, 3), seed=5)  # odd sizes: pooling floors alike
    keras_out = build_feature_model(layers, pooling=pooling)(image)
    module = VGG19Module(layers, pooling=pooling)
    module_out = module(image)
    assert len(module.kernels) == 13  # truncated at block5_conv1
    for name in layers:
        np.testing.assert_allclose(module_out[name], keras_out[name], rtol=1e-4, atol=1e-2)


def test_normalized_vgg_has_unit_mean_activations():
    from tests.conftest import small
    from tfnst.features import normalization_scales, normalize_weights

    images = [small("tubingen.jpg", 64), small("starry_night.jpg", 64)]
    arrays = load_vgg19_weights()
    before = normalization_scales(arrays, images)
    after = normalization_scales(normalize_weights(arrays, images), images)
    for name in ("block1_conv1", "block3_conv1", "block5_conv1"):
        alive = before[name] > 1e-6
        np.testing.assert_allclose(after[name][alive], 1.0, rtol=1e-3)
        assert not np.allclose(before[name][alive], 1.0)  # it did change something
    model = build_feature_model(["block2_conv1"], normalize=[])  # the bundled examples
    assert model(images[0][None])["block2_conv1"].shape[-1] == 128


def test_bfloat16_convolutions_give_float32_features_close_to_float32():
    from tfnst.features import VGG19Module

    layers = ["block1_conv1", "block3_conv1", "block5_conv1"]
    image = tf.random.uniform((1, 48, 64, 3), seed=2)
    full = build_feature_model(layers)(image)
    model = build_feature_model(layers, precision="bfloat16")
    half = model(image)
    assert {str(v.dtype) for v in model.weights} == {"bfloat16"}
    module = VGG19Module(layers, precision="bfloat16")
    for name in layers:
        assert half[name].dtype == tf.float32
        # bfloat16 keeps 8 significant bits; measured 0.3-0.6% after 1-13 layers.
        error = tf.norm(half[name] - full[name]) / tf.norm(full[name])
        assert 0 < float(error) < 0.03, (name, float(error))
        np.testing.assert_allclose(module(image)[name], half[name], rtol=0.05, atol=0.5)
    with pytest.raises(TfnstError, match="precision"):
        build_feature_model(layers, precision="float16")
