"""Loss terms (`tfnst.terms`) against numpy written by hand, their composition in
`tfnst.objective.Objective`, and the Keras losses as adapters over the same terms."""

import numpy as np
import pytest
import tensorflow as tf

import tfnst
from tfnst import terms
from tfnst.config import StyleConfig
from tfnst.objective import TERMS, Objective, config_term_weights

rng = np.random.default_rng(1)


def np_gram(f, w=None):
    """Σ w f fᵀ / Σ w over the positions of f [h, w, c] (w: [h, w] position weights)."""
    flat = f.reshape(-1, f.shape[-1])
    w = np.ones(len(flat)) if w is None else w.reshape(-1)
    return (flat * w[:, None]).T @ flat / w.sum()


def test_content_term_is_relative_squared_error():
    f, p = rng.normal(size=(1, 3, 4, 5)), rng.normal(size=(1, 3, 4, 5))
    term = terms.Content(["block1_conv1"])
    got = term.loss({"block1_conv1": tf.constant(f)}, term.target({"block1_conv1": tf.constant(p)}))
    assert got.numpy()[0] == pytest.approx(np.sum((f - p) ** 2) / np.sum(p**2), rel=1e-6)


def test_masked_style_is_gatys_guided_gram_with_regions_weighted_equally():
    # Gatys et al.'s code multiplies the features by the guide T (normalised by its
    # energy), so a region's Gram is Σ T² f fᵀ / Σ T²; the regions weigh equally.
    layer = "block1_conv1"  # stride 1: the guide is the mask itself
    f = rng.normal(size=(6, 6, 3))
    masks = [rng.random((6, 6)), rng.random((6, 6))]
    style_targets = [np_gram(rng.normal(size=(5, 5, 3))) for _ in masks]
    inner = terms.Style([layer])
    term = terms.Masked(inner, 2)
    target = terms.MaskedTarget(
        [{layer: tf.constant(t[None])} for t in style_targets],
        [terms.Masked.guides(tf.constant(m), [layer], (6, 6)) for m in masks],
    )
    got = term.loss({layer: tf.constant(f[None])}, target).numpy()[0]

    def relative(g, a):
        return np.mean((g - a) ** 2) / np.mean(a**2)

    want = np.mean([relative(np_gram(f, m**2), a) for m, a in zip(masks, style_targets)])
    assert got == pytest.approx(want, rel=1e-5)
    # Not the area-weighted, linear-in-the-mask variant tfnst had before:
    linear = sum(m.sum() * relative(np_gram(f, m), a) for m, a in zip(masks, style_targets)) / sum(
        m.sum() for m in masks
    )
    assert abs(got - linear) > 1e-3 * abs(linear)


def test_objective_is_the_weighted_sum_of_its_terms():
    features = tfnst.features.VGG19(["block1_conv1", "block2_conv1", "block4_conv2"], precision="float32")
    config = StyleConfig(
        style_layers=("block1_conv1", "block2_conv1"),
        content_weight=2.0,
        style_weight=3.0,
        tv_weight=5.0,
        precision="float32",
    )
    objective = Objective(config, features)
    content, style, image = (tf.constant(rng.random((32, 32, 3)), tf.float32) for _ in range(3))
    targets = objective.targets(content, [style])
    total, values, _ = objective(image, targets)
    assert set(values) == {"content", "style", "tv"}
    weights = dict(zip(TERMS, config_term_weights(config).numpy()))
    assert float(total) == pytest.approx(sum(weights[k] * float(v) for k, v in values.items()), rel=1e-6)
    # Each term is its own object's value, computed independently of the objective:
    feats = features(image[None])
    content_term = terms.Content(["block4_conv2"])
    want = content_term.loss(feats, content_term.target(features(content[None])))
    assert float(values["content"]) == pytest.approx(float(want[0]), rel=1e-6)
    tv = np.asarray(image)
    want_tv = np.mean((tv[1:] - tv[:-1]) ** 2) + np.mean((tv[:, 1:] - tv[:, :-1]) ** 2)
    assert float(values["tv"]) == pytest.approx(want_tv, rel=1e-5)


def test_keras_losses_are_the_terms():
    layers = ["block1_conv2", "block2_conv2"]
    model = tfnst.build_feature_model([*layers, "block3_conv3"])
    style = rng.random((24, 24, 3)).astype(np.float32)
    y_true, y_pred = (rng.random((2, 24, 24, 3)).astype(np.float32) for _ in range(2))
    perceptual = tfnst.PerceptualLoss(
        model,
        style,
        content_layers=["block3_conv3"],
        style_layers=layers,
        content_weight=2.0,
        style_weight=3.0,
        tv_weight=5.0,
    )
    pred, true = model(y_pred), model(y_true)
    content = terms.Content(["block3_conv3"])
    style_term = terms.Style(layers)
    style_target = style_term.target(model(style[None]))
    want = (
        2.0 * content.loss(pred, content.target(true))
        + 3.0 * style_term.loss(pred, style_target)
        + 5.0 * terms.TotalVariation().loss({}, None, tf.constant(y_pred))
    )
    np.testing.assert_allclose(perceptual.call(y_true, y_pred), want, rtol=1e-5)
