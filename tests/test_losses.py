"""The maths, checked against numpy written out by hand."""

import numpy as np
import pytest
import tensorflow as tf

from tfnst import losses

rng = np.random.default_rng(0)


def np_gram(f):  # f: [H, W, C]
    m = f.reshape(-1, f.shape[-1])
    return m.T @ m / m.shape[0]


def test_gram_matrix_matches_numpy():
    f = rng.normal(size=(2, 5, 7, 4)).astype(np.float32)
    g = losses.gram_matrix(tf.constant(f)).numpy()
    assert g.shape == (2, 4, 4)
    for b in range(2):
        np.testing.assert_allclose(g[b], np_gram(f[b]), rtol=1e-5, atol=1e-6)


def test_gram_is_independent_of_image_size():
    # Tiling the same features 3x3 leaves the normalised Gram unchanged: this is what
    # lets one style weight work at 256 px and at 1024 px.
    f = rng.normal(size=(1, 6, 6, 3)).astype(np.float32)
    tiled = np.tile(f, (1, 3, 3, 1))
    np.testing.assert_allclose(losses.gram_matrix(tiled), losses.gram_matrix(f), rtol=1e-5)


def test_content_term_matches_numpy():
    from tfnst.terms import Content

    f, p = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    term = Content(["x"])
    got = term.loss({"x": tf.constant(f)}, term.target({"x": tf.constant(p)})).numpy()
    want = [np.sum((f[b] - p[b]) ** 2) / np.sum(p[b] ** 2) for b in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert term.loss({"x": tf.constant(p)}, term.target({"x": tf.constant(p)})).numpy() == pytest.approx([0, 0])


def test_gram_statistic_is_gatys_eq4_relative_to_the_targets_own():
    # E_l = 1/(4 N² M²) Σ (G − A)² with Gatys' unnormalised Gram matrices, divided by the
    # target's own E_l (eq. 4 at G = 0), so equal layer weights weigh layers equally.
    f = rng.normal(size=(1, 4, 6, 3))
    s = rng.normal(size=(1, 5, 5, 3))
    a = np_gram(s[0])
    fm = f[0].reshape(-1, 3)
    n, m = fm.shape[1], fm.shape[0]
    g_unnormalised, a_unnormalised = fm.T @ fm, a * m
    eq4 = np.sum((g_unnormalised - a_unnormalised) ** 2) / (4 * n**2 * m**2)
    own = np.sum(a_unnormalised**2) / (4 * n**2 * m**2)
    got = losses.GramStatistic().loss(tf.constant(f), tf.constant(a[None])).numpy()[0]
    assert got == pytest.approx(eq4 / own, rel=1e-6)


def test_gram_statistic_is_relative_to_target():
    f = rng.normal(size=(1, 4, 6, 3))
    a = np_gram(rng.normal(size=(5, 5, 3)))
    stat = losses.GramStatistic()
    got = stat.loss(tf.constant(f), tf.constant(a[None])).numpy()[0]
    want = np.mean((np_gram(f[0]) - a) ** 2) / np.mean(a**2)
    assert got == pytest.approx(want, rel=1e-6)
    same = tf.constant(rng.normal(size=(1, 5, 5, 3)))
    assert stat.loss(same, stat.target(same)).numpy()[0] == pytest.approx(0, abs=1e-12)


def test_style_term_weights_layers():
    from tfnst.terms import Style

    feats = {"a": tf.constant(rng.normal(size=(1, 4, 4, 2))), "b": tf.constant(rng.normal(size=(1, 4, 4, 2)))}
    targets = {k: losses.gram_matrix(tf.constant(rng.normal(size=(1, 4, 4, 2)))) for k in feats}
    w = losses.normalized_layer_weights(["a", "b"], [3, 1])
    assert w == {"a": 0.75, "b": 0.25}
    stat = losses.GramStatistic()
    want = 0.75 * stat.loss(feats["a"], targets["a"]) + 0.25 * stat.loss(feats["b"], targets["b"])
    np.testing.assert_allclose(Style(["a", "b"], "gram", [3, 1]).loss(feats, targets), want, rtol=1e-6)


def test_total_variation_matches_numpy():
    x = rng.random((2, 5, 6, 3))
    got = losses.total_variation_loss(tf.constant(x)).numpy()
    want = [np.mean((x[b, 1:] - x[b, :-1]) ** 2) + np.mean((x[b, :, 1:] - x[b, :, :-1]) ** 2) for b in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert losses.total_variation_loss(tf.ones((1, 4, 4, 3))).numpy()[0] == 0


def test_gradients_are_finite_and_match_finite_differences():
    x = tf.constant(rng.random((1, 6, 6, 2)))
    target = losses.gram_matrix(tf.constant(rng.random((1, 6, 6, 2))))

    def f(v):
        return losses.GramStatistic().loss(v, target)[0] + losses.total_variation_loss(v)[0]

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    g = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(g))
    e = np.zeros(x.shape)
    e[0, 2, 3, 1] = 1e-6
    numeric = (f(x + e) - f(x - e)).numpy() / 2e-6
    assert g[0, 2, 3, 1] == pytest.approx(numeric, rel=1e-4)


def test_all_black_target_gives_finite_loss():
    z = tf.zeros((1, 4, 4, 3), tf.float32)
    from tfnst.terms import Content

    content = Content(["x"])
    assert np.isfinite(content.loss({"x": z + 1}, content.target({"x": z})).numpy()).all()
    assert np.isfinite(losses.GramStatistic().loss(z + 1, losses.gram_matrix(z)).numpy()).all()


def test_mean_and_meancov_statistics_match_numpy():
    f = rng.normal(size=(1, 5, 6, 3))
    s = rng.normal(loc=0.5, size=(1, 4, 4, 3))
    fm, sm = f[0].reshape(-1, 3), s[0].reshape(-1, 3)
    mean = losses.MeanStatistic()
    want = np.mean((fm.mean(0) - sm.mean(0)) ** 2) / np.mean(sm.mean(0) ** 2)
    assert mean.loss(tf.constant(f), mean.target(tf.constant(s))).numpy()[0] == pytest.approx(want, rel=1e-6)
    mc = losses.MeanCovStatistic()
    target = mc.target(tf.constant(s)).numpy()[0]
    np.testing.assert_allclose(target[0], sm.mean(0), rtol=1e-6)
    np.testing.assert_allclose(target[1:], np.cov(sm.T, bias=True), rtol=1e-6, atol=1e-9)
    cov_f = np.cov(fm.T, bias=True)
    want = 0.5 * (
        np.mean((fm.mean(0) - sm.mean(0)) ** 2) / np.mean(sm.mean(0) ** 2)
        + np.mean((cov_f - target[1:]) ** 2) / np.mean(target[1:] ** 2)
    )
    assert mc.loss(tf.constant(f), mc.target(tf.constant(s))).numpy()[0] == pytest.approx(want, rel=1e-6)


def test_histogram_remap_is_exact_matching():
    f = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    s = rng.uniform(size=(1, 4, 5, 2)).astype(np.float32)  # same count: exact remap
    target = losses.histogram_target(tf.constant(s), quantiles=20)
    remapped = losses.histogram_remap(tf.constant(f), target).numpy()
    for c in range(2):
        fc, sc, rc = f[0, ..., c].ravel(), s[0, ..., c].ravel(), remapped[0, ..., c].ravel()
        np.testing.assert_allclose(np.sort(rc), np.sort(sc), rtol=1e-6)  # the style's values
        assert (np.argsort(rc) == np.argsort(fc)).all()  # in the current image's order
    assert losses.histogram_loss(tf.constant(s), target).numpy()[0] == pytest.approx(0, abs=1e-10)
    assert losses.histogram_loss(tf.constant(f), target).numpy()[0] > 0.1


def np_laplacian(image, pool):
    """lap_style.lua (Li et al. 2017) written out: average-pool without padding (floor),
    then the 3x3 Laplacian of the channel sum without padding."""
    h, w = image.shape[0] // pool, image.shape[1] // pool
    pooled = image[: h * pool, : w * pool].reshape(h, pool, w, pool, 3).mean(axis=(1, 3)) * 255.0
    s = pooled.sum(-1)
    return 4 * s[1:-1, 1:-1] - s[:-2, 1:-1] - s[2:, 1:-1] - s[1:-1, :-2] - s[1:-1, 2:]


@pytest.mark.parametrize("shape,pool", [((8, 8), 2), ((37, 53), 4), ((64, 48), 16), ((20, 20), 1)])
def test_laplacian_matches_the_authors_computation_including_borders(shape, pool):
    x = rng.random((1, *shape, 3)).astype(np.float32)
    got = losses.laplacian(tf.constant(x), pool).numpy()[0, ..., 0]
    want = np_laplacian(x[0], pool)
    assert got.shape == want.shape  # every value, the borders included
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)


def test_laplacian_loss_is_zero_at_the_target_and_finite_when_empty():
    x = rng.random((1, 40, 40, 3)).astype(np.float32)
    target = {4: losses.laplacian(tf.constant(x), 4)}
    assert losses.laplacian_loss(tf.constant(x), target).numpy()[0] == pytest.approx(0, abs=1e-10)
    other = rng.random((1, 40, 40, 3)).astype(np.float32)
    want = np.sum((np_laplacian(other[0], 4) - np_laplacian(x[0], 4)) ** 2) / np.sum(np_laplacian(x[0], 4) ** 2)
    assert losses.laplacian_loss(tf.constant(other), target).numpy()[0] == pytest.approx(want, rel=1e-4)
    tiny = tf.constant(rng.random((1, 32, 32, 3)).astype(np.float32))  # pool 16 leaves 2x2: no Laplacian
    empty = {16: losses.laplacian(tiny, 16)}
    assert losses.laplacian_loss(tiny + 0.1, empty).numpy()[0] == 0.0
    assert losses.laplacian_min_side(16) == 48


def test_meancov_blend_is_the_mixtures_mean_and_covariance():
    a = rng.normal(loc=1.0, size=(1, 6, 5, 3))
    b = rng.normal(loc=-2.0, scale=2.0, size=(1, 4, 5, 3))
    mc = losses.MeanCovStatistic()
    blended = mc.blend([mc.target(tf.constant(a)), mc.target(tf.constant(b))], [0.25, 0.75]).numpy()[0]
    # A mixture 1:3 written out by hand: weight each image's pixels so the shares hold.
    fa, fb = a[0].reshape(-1, 3), b[0].reshape(-1, 3)
    weights = np.concatenate([np.full(len(fa), 0.25 / len(fa)), np.full(len(fb), 0.75 / len(fb))])
    pixels = np.concatenate([fa, fb])
    mean = weights @ pixels
    cov = (pixels - mean).T @ ((pixels - mean) * weights[:, None])
    np.testing.assert_allclose(blended[0], mean, rtol=1e-6)
    np.testing.assert_allclose(blended[1:], cov, rtol=1e-6, atol=1e-9)


def test_discriminator_update_is_a_gradient_step_of_its_logistic_loss():
    # The update is written analytically; check it against autodiff of the loss the
    # docstring states (weighted logistic loss + L2), and the accuracy by counting.
    d = losses.DiscriminatorStatistic(learning_rate=0.1, l2=0.3)
    style = tf.constant(rng.normal(size=(1, 5, 6, 4)), tf.float32)
    current = tf.constant(rng.normal(loc=0.5, size=(1, 4, 4, 4)), tf.float32)
    target = d.target(style)
    state = {
        "w": tf.constant(rng.normal(size=4) * 0.1, tf.float32),
        "a": tf.constant(rng.normal(size=(4, 4)) * 0.05, tf.float32),
        "b": tf.constant(0.2),
        "accuracy": tf.constant(0.0),
    }
    generator, new = d.loss_and_update(current, target, state)
    s, c = style.numpy()[0].reshape(-1, 4), current.numpy()[0].reshape(-1, 4)
    mu = s.mean(0)
    sd = np.sqrt(((s - mu) ** 2).mean()) + 1e-3
    s, c = (s - mu) / sd, (c - mu) / sd
    params = {k: tf.Variable(state[k]) for k in ("w", "a", "b")}
    with tf.GradientTape() as tape:
        logit = lambda v: (
            tf.linalg.matvec(v, params["w"]) + tf.reduce_sum((v @ params["a"]) * v, -1) / 4.0 + params["b"]
        )
        loss = (
            tf.reduce_mean(tf.nn.softplus(-logit(tf.constant(s))))
            + tf.reduce_mean(tf.nn.softplus(logit(tf.constant(c))))
            + 0.15 * (tf.reduce_sum(params["w"] ** 2) + tf.reduce_sum(params["a"] ** 2))
        )
    grads = tape.gradient(loss, params)
    for k in ("w", "a", "b"):
        np.testing.assert_allclose(new[k], state[k] - 0.1 * grads[k], rtol=1e-4, atol=1e-6)
    z_s, z_c = logit(tf.constant(s)).numpy(), logit(tf.constant(c)).numpy()
    assert float(new["accuracy"]) == pytest.approx(0.5 * ((z_s > 0).mean() + (z_c < 0).mean()))
    assert float(generator[0]) == pytest.approx(float(tf.reduce_mean(tf.nn.softplus(-z_c))), rel=1e-5)
