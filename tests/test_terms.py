"""Loss terms (`tfnst.terms`, the statistics of `tfnst.losses`) against numpy written by
hand, their composition in `tfnst.objective.Objective`, the Keras losses as adapters
over the same terms, and each extension doing what its paper says (histogram,
Laplacian, blends, the discriminator), measured at small size."""

import numpy as np
import pytest
import tensorflow as tf

import tfnst
from tests.conftest import STYLE_LAYERS, TEST_OPTIONS, distance, fitted, small
from tfnst import losses, terms
from tfnst.config import StyleConfig
from tfnst.features import VGG19
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


def test_each_term_is_about_1_for_a_random_image(vgg, content64, style64):
    # README: with the normalisation each term is about 1 for a random image (measured
    # 0.27-2.3 at 64 and 256 px; TV is 1/3 exactly for uniform noise), while Gatys' raw
    # E_l differ by 4e5-1e6 between block1_conv1 and block4_conv1.
    engine = tfnst.Stylizer(**TEST_OPTIONS, hist_weight=1.0, lap_weight=1.0, lap_pool=(4,)).engine(
        tfnst.StyleConfig(**TEST_OPTIONS, hist_weight=1.0, lap_weight=1.0, lap_pool=(4,)), True
    )
    targets = engine.targets(engine.inputs(content64, [style64]), content64.shape[:2])
    noise = np.random.default_rng(0).uniform(size=content64.shape).astype(np.float32)
    terms = engine.objective(tf.constant(noise), targets)[1]
    assert set(terms) == {"content", "style", "tv", "hist", "lap"}
    for name, value in terms.items():
        assert 0.1 < float(value) < 10, (name, float(value))
    assert float(terms["tv"]) == pytest.approx(1 / 3, rel=0.05)
    f, s = vgg(noise[None]), vgg(fitted(style64, 64)[None])
    # Gatys' raw eq. 4 (not relative): 1/4 of the mean squared difference of normalised Grams.
    raw = {
        n: 0.25 * float(tf.reduce_mean(tf.square(losses.gram_matrix(f[n]) - losses.gram_matrix(s[n]))))
        for n in STYLE_LAYERS
    }
    assert raw["block4_conv1"] / raw["block1_conv1"] > 1e5


@pytest.mark.slow
@pytest.mark.parametrize("stat", ["gram", "mean", "meancov"])
def test_each_statistic_reduces_its_own_distance(vgg, style64, stat):
    stylizer = tfnst.Stylizer(**TEST_OPTIONS, style_statistic=stat)
    out = stylizer.synthesize_texture(style64, (48, 40), iterations=60, seed=2, learning_rate=0.05)
    statistic = losses.style_statistic(stat)
    noise = np.random.default_rng(2).uniform(size=(40, 48, 3)).astype(np.float32)
    target = fitted(style64, 48)
    assert distance(vgg, statistic, out, target) < 0.3 * distance(vgg, statistic, noise, target)


@pytest.mark.slow
def test_histogram_loss_brings_feature_histograms_closer(stylizer, style64):
    layers = tfnst.StyleConfig().hist_layers
    model = VGG19(layers)
    target = model(fitted(style64, 48)[None])

    def histogram_distance(image):  # the remap distance of Risser et al.
        f = model(image[None])
        return sum(float(losses.histogram_loss(f[n], losses.histogram_target(target[n]))[0]) for n in layers)

    options = dict(iterations=60, seed=4, learning_rate=0.05)
    gram_only = stylizer.synthesize_texture(style64, (48, 40), **options)
    with_hist = stylizer.synthesize_texture(style64, (48, 40), hist_weight=5.0, **options)
    assert histogram_distance(with_hist) < 0.8 * histogram_distance(gram_only)


@pytest.mark.slow
def test_laplacian_loss_keeps_the_content_edges(content64, style64):
    target = {4: losses.laplacian(tf.constant(content64[None]), 4)}

    def lap_distance(image):
        return float(losses.laplacian_loss(tf.constant(image[None]), target)[0])

    stylizer = tfnst.Stylizer(**TEST_OPTIONS, lap_pool=(4,))
    # Measured (2026-12-02): the Laplacian distance with the term is 0.007x the plain
    # run's after 20 iterations (0.001x after 60).
    options = dict(size=64, iterations=20, style_weight=50.0)
    plain = stylizer.stylize(content64, style64, **options)
    with_lap = stylizer.stylize(content64, style64, lap_weight=20.0, **options)
    assert lap_distance(with_lap) < 0.7 * lap_distance(plain)
    with pytest.raises(tfnst.TfnstError, match="lap_pool 16"):
        tfnst.Stylizer(**TEST_OPTIONS).stylize(content64, style64, size=32, iterations=1, lap_weight=1.0)
    with pytest.raises(tfnst.TfnstError, match="content image"):
        stylizer.synthesize_texture(style64, 48, iterations=1, lap_weight=1.0)


@pytest.mark.slow
def test_discriminator_style_loss_fools_a_fresh_discriminator(vgg, style64):
    history = tfnst.History()
    target = fitted(style64, 48)
    out = discriminator_texture(target, history=history)
    online = [r.terms["disc_acc"] for r in history.records]
    assert all(0.0 <= a <= 1.0 for a in online)
    noise = np.random.default_rng(1).uniform(size=(40, 48, 3)).astype(np.float32)
    # Measured, held out: noise 0.89/0.96/0.98 at blocks 1-3, the result 0.57/0.56/0.61.
    # (block4-5 have a handful of positions at 48x40: no verdict there.)
    low = ("block1_conv1", "block2_conv1", "block3_conv1")
    before, after = heldout_accuracy(vgg, noise, target, low), heldout_accuracy(vgg, out, target, low)
    for n in low:
        assert after[n] < 0.7 and after[n] < before[n] - 0.2, (n, before[n], after[n])
    gram = losses.GramStatistic()
    assert distance(vgg, gram, out, target) < 0.3 * distance(vgg, gram, noise, target)  # 0.555 vs 2.58


def test_reported_disc_acc_is_the_discriminators_accuracy_at_that_step(style64):
    # disc_acc of an iteration: the accuracy, averaged over the style layers, of the
    # discriminator that step used (before its own update) on style vs current vectors.
    stylizer = tfnst.Stylizer(**TEST_OPTIONS, style_statistic="discriminator")
    engine = stylizer.engine(stylizer.config.replace(content_weight=0.0), False)
    style = fitted(style64, 32)
    targets = engine.targets(engine.inputs(None, [style]), (32, 32))
    state = engine.start(tf.random.stateless_uniform([32, 32, 3], seed=[0, 0]), targets, 0.05)
    for _ in range(5):
        state = engine.optimizer.step(state, targets)
    before = state
    after = engine.optimizer.step(state, targets)
    f, s = stylizer.features(before.core.x[None]), stylizer.features(style[None])
    accuracies = []
    for n in STYLE_LAYERS:
        p = {k: v.numpy() for k, v in before.core.aux["style"][n].items()}
        sv, cv = s[n].numpy().reshape(-1, s[n].shape[-1]), f[n].numpy().reshape(-1, f[n].shape[-1])
        mu = sv.mean(0)
        sd = np.sqrt(((sv - mu) ** 2).mean()) + 1e-3
        logit = lambda v: (v @ p["w"]) + np.einsum("mc,cd,md->m", v, p["a"], v) / v.shape[1] + p["b"]
        accuracies.append(0.5 * ((logit((sv - mu) / sd) > 0).mean() + (logit((cv - mu) / sd) < 0).mean()))
    assert float(after.progress.terms["disc_acc"]) == pytest.approx(np.mean(accuracies), abs=1e-6)


@pytest.mark.slow
def test_discriminator_sees_covariance_where_a_linear_one_cannot():
    # Two zero-mean Gaussians of equal variances, one with correlated channels: a linear
    # logistic discriminator is at chance (its best weights are 0 by symmetry); with the
    # quadratic term it separates them, so the generator is pushed to match covariance.
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    style = rng.multivariate_normal([0, 0], cov, size=4000).astype(np.float32).reshape(1, 40, 100, 2)
    current = rng.normal(size=(1, 40, 100, 2)).astype(np.float32)

    def accuracy(linear_only):
        d = losses.DiscriminatorStatistic(learning_rate=0.5, l2=0.01)
        state, target = d.initial_state(2), d.target(tf.constant(style))
        step = tf.function(lambda st: d.loss_and_update(tf.constant(current), target, st)[1])
        for _ in range(300):
            state = step(state)
            if linear_only:
                state = {**state, "a": tf.zeros_like(state["a"])}
        return float(d.loss_and_update(tf.constant(current), target, state)[1]["accuracy"])

    assert accuracy(linear_only=True) < 0.55  # measured 0.50
    assert accuracy(linear_only=False) > 0.65  # measured 0.71 (Bayes optimum here: 0.73)


# ------------------------------------------------------------------ the discriminator
def heldout_accuracy(vgg, image, style, layers, steps=400, seed=0):
    """Per layer of ``layers``: a fresh discriminator trained on half of the style's and the image's
    feature vectors, scored on the other half (0.5 = it cannot tell them apart). Held
    out, because with C² parameters it would separate the few vectors it trained on."""
    f, t = vgg(image[None]), vgg(style[None])
    rng = np.random.default_rng(seed)
    result = {}
    for n in layers:
        halves = []
        for vectors in (t[n].numpy().reshape(-1, t[n].shape[-1]), f[n].numpy().reshape(-1, f[n].shape[-1])):
            order = rng.permutation(len(vectors))
            halves.append((vectors[order[: len(order) // 2]], vectors[order[len(order) // 2 :]]))
        (style_train, style_test), (image_train, image_test) = halves
        d = losses.DiscriminatorStatistic()
        state, target = d.initial_state(style_train.shape[1]), d.target(tf.constant(style_train[None, :, None]))
        step = tf.function(lambda st: d.loss_and_update(tf.constant(image_train[None, :, None]), target, st)[1])
        for _ in range(steps):
            state = step(state)
        mu = style_train.mean(0)
        sd = np.sqrt(((style_train - mu) ** 2).mean()) + 1e-3
        z = lambda v: d.logits(tf.constant((v - mu) / sd, tf.float32), state).numpy()
        result[n] = 0.5 * ((z(style_test) > 0).mean() + (z(image_test) < 0).mean())
    return result


def discriminator_texture(style, history=None):
    stylizer = tfnst.Stylizer(**TEST_OPTIONS, style_statistic="discriminator")
    return stylizer.synthesize_texture(
        style, (48, 40), iterations=150, seed=1, learning_rate=0.05, callbacks=history and [history]
    )


@pytest.mark.slow
@pytest.mark.parametrize("stat", ["gram"])
def test_a_blend_lies_between_its_styles(vgg, style64, scream64, stat):
    # Textures of style A, of style B, and of the 1:1 blend: the blend's distance to each
    # style lies between the single-style textures' distances to it. With the default
    # statistic: the blend is the objective's (shares, targets) for every statistic, and
    # mean+covariance's own mixture is checked against numpy in test_losses.
    stylizer = tfnst.Stylizer(**TEST_OPTIONS, style_statistic=stat)
    # Measured (2026-12-02), 20 iterations: to A, A's texture 0.614, the blend 1.389, B's
    # 3.086, 9:1 towards A 0.692; to B, 1.202, 2.700, 5.938 (at 60 the same order).
    options = dict(iterations=20, seed=6, learning_rate=0.05)
    a, b = fitted(style64, 48), fitted(scream64, 48)
    only_a = stylizer.synthesize_texture(a, (48, 40), **options)
    only_b = stylizer.synthesize_texture(b, (48, 40), **options)
    blend = stylizer.synthesize_texture([a, b], (48, 40), style_blend=(1, 1), **options)
    statistic = losses.style_statistic(stat)
    for style in (a, b):
        d = {
            name: distance(vgg, statistic, image, style)
            for name, image in (("a", only_a), ("b", only_b), ("blend", blend))
        }
        assert min(d["a"], d["b"]) < d["blend"] < max(d["a"], d["b"]), d
    # Weights that favour one style pull the result towards it.
    mostly_a = stylizer.synthesize_texture([a, b], (48, 40), style_blend=(9, 1), **options)
    assert distance(vgg, statistic, mostly_a, a) < distance(vgg, statistic, blend, a)


@pytest.mark.slow
def test_discriminator_with_several_styles_without_blend(style64, scream64):
    # Styles of different sizes: the discriminator sees the mixture of their vectors.
    out = tfnst.Stylizer(**TEST_OPTIONS, style_statistic="discriminator").synthesize_texture(
        [style64, small("the_scream.jpg", 50)], (40, 32), iterations=3, seed=0
    )
    assert out.shape == (32, 40, 3) and np.isfinite(out).all()
    with pytest.raises(tfnst.TfnstError, match="Stylizer"):
        tfnst.StyleLoss(
            tfnst.build_feature_model(["block1_conv1"]), style64, ["block1_conv1"], statistic="discriminator"
        )
    with pytest.raises(tfnst.TfnstError, match="adam"):
        tfnst.StyleConfig(style_statistic="discriminator", optimizer="lbfgs").validated()
