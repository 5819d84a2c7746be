"""The one resize op: target sizes computed alike in Python and in a graph, pixels kept
when the size does not change, and the filter an image tool would use."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfnst.resize import fit_longest, fit_size, fit_size_tensor, resize


def test_fit_size():
    assert fit_size((384, 512), 256) == (192, 256)
    assert fit_size((512, 100), 64) == (64, 12)
    assert fit_size((3, 1000), 16) == (1, 16)  # never 0


@pytest.mark.parametrize("longest", [16, 37, 48, 64, 333, 512, 1000])
def test_graph_sizes_equal_python_sizes(longest):
    # The served graph sizes images with fit_size_tensor, the library with fit_size:
    # they must agree everywhere, .5 rounding cases included (e.g. 30x40 -> longest 37).
    rng = np.random.default_rng(longest)
    shapes = [(30, 40), (40, 30), (25, 40), (1, 7), (768, 1024)] + [
        tuple(int(v) for v in rng.integers(1, 3000, 2)) for _ in range(200)
    ]
    graph = tf.function(lambda s: fit_size_tensor(s, longest))
    for shape in shapes:
        assert tuple(graph(tf.constant(shape, tf.int32)).numpy()) == fit_size(shape, longest), shape


def test_same_size_is_bit_exact_in_eager_and_graph():
    image = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    assert np.array_equal(resize(image, (30, 40)).numpy(), image)
    graph = tf.function(
        lambda x, s: resize(x, s), input_signature=[tf.TensorSpec([None, None, 3]), tf.TensorSpec([2], tf.int32)]
    )
    assert np.array_equal(graph(image, tf.constant([30, 40])).numpy(), image)
    np.testing.assert_allclose(graph(image, tf.constant([15, 20])).numpy(), resize(image, (15, 20)).numpy(), atol=1e-6)


def test_shrinking_is_an_antialiased_lanczos_like_pil():
    # An independent reference: PIL's Lanczos (what image tools use). The two
    # implementations differ slightly in kernel support and edge handling.
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:96, 0:128] / 96.0
    image = np.stack([0.5 + 0.4 * np.sin(6 * xx), 0.5 + 0.4 * np.cos(5 * yy), 0.3 + 0.4 * xx * yy], -1)
    image = np.clip(image + 0.02 * rng.standard_normal(image.shape), 0, 1).astype(np.float32)
    ours = resize(image, (48, 64)).numpy()
    pil = np.stack(
        [np.asarray(Image.fromarray(image[..., c], mode="F").resize((64, 48), Image.LANCZOS)) for c in range(3)], -1
    )
    interior = (slice(4, -4), slice(4, -4))
    assert np.abs(ours[interior] - pil[interior]).mean() < 0.005
    # Not a plain subsampling (no antialiasing): that would keep the noise.
    assert np.abs(ours - image[::2, ::2]).mean() > 0.01


def test_resize_clips_images_but_not_other_fields():
    image = np.zeros((20, 20, 3), np.float32)
    image[:, 10:] = 1.0  # a hard edge: Lanczos overshoots there
    assert 0.0 <= resize(image, (40, 40)).numpy().min() and resize(image, (40, 40)).numpy().max() <= 1.0
    assert resize(image, (40, 40), clip=False).numpy().max() > 1.0


def test_fit_longest():
    image = tf.zeros((30, 40, 3))
    assert fit_longest(image, 20).shape == (15, 20, 3)
