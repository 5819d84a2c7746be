"""The coarse-to-fine plan (`tfnst.plan`): the same scales for the library and the served
graph, and the same image from both (`tfnst.engine.run_plan` with either iterate)."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfnst
from tests.conftest import TEST_OPTIONS
from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.plan import plan


def expected_plan(hw, scales, factor, iterations, coarse, cap=None):
    """The rule of `tfnst.plan`, written out independently: sizes hw / factor^k (Python's
    round, half to even, as tf.round), at least 16; the coarse counts as given (unset:
    40, at most the full count); every count at most ``cap``; a size the next scale
    repeats runs nothing."""
    sizes = [tuple(max(16, round(d / factor ** (scales - 1 - k))) for d in hw) for k in range(scales)]
    coarse = [min(40, iterations)] if coarse is None else coarse
    counts = [coarse[0] if len(coarse) == 1 else coarse[k] for k in range(scales - 1)] + [iterations]
    counts = [n if cap is None else min(n, cap) for n in counts]
    counts = [0 if k + 1 < scales and sizes[k] == sizes[k + 1] else n for k, n in enumerate(counts)]
    return sizes, counts


configs = st.integers(1, 4).flatmap(
    lambda scales: st.tuples(
        st.just(scales),
        st.sampled_from([1.25, 2**0.5, 2.0, 3.0]),
        st.integers(1, 50),
        st.none()
        | st.lists(st.integers(1, 60), min_size=1, max_size=1)
        | st.lists(st.integers(1, 60), min_size=max(1, scales - 1), max_size=max(1, scales - 1)),
        st.tuples(st.integers(16, 600), st.integers(16, 600)),
        st.integers(0, 70),
    )
)


@settings(max_examples=200, deadline=None)
@given(configs)
def test_the_plan_follows_its_rule_eagerly_and_in_a_graph(case):
    scales, factor, iterations, coarse, hw, cap = case
    coarse = coarse if scales > 1 else None
    config = StyleConfig(
        scales=scales,
        iterations=iterations,
        **({"scale_factor": factor} if scales > 1 else {}),
        **({"coarse_iterations": tuple(coarse)} if coarse else {}),
    )
    sizes, counts = expected_plan(hw, scales, factor, iterations, coarse)
    eager = plan(config, hw)
    assert [s.hw for s in eager] == sizes and [s.iterations for s in eager] == counts

    @tf.function(input_signature=[tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.int32)], autograph=False)
    def traced(shape, n):
        return [(s.hw, s.iterations) for s in plan(config, shape, n)]

    graph = traced(tf.constant(hw, tf.int32), tf.constant(cap))
    _, capped = expected_plan(hw, scales, factor, iterations, coarse, cap)
    assert [tuple(int(d) for d in h.numpy()) for h, _ in graph] == sizes
    assert [int(n) for _, n in graph] == capped


def test_coarse_iterations_need_a_count_per_coarser_scale():
    assert StyleConfig(scales=3, coarse_iterations=(5, 7)).coarse_iterations_at(1) == 7
    with pytest.raises(TfnstError, match="needs 1 value or 2"):
        StyleConfig(scales=3, coarse_iterations=(5, 7, 9)).validated()


@pytest.fixture(scope="module")
def small_stylizer():
    # VGG19's first layer only: the property is about the plan and the loop, not VGG19's
    # depth (each example traces a served graph of its own; to block2 it cost 11% more).
    return tfnst.Stylizer(**{**TEST_OPTIONS, "style_layers": ("block1_conv1",), "content_layers": ("block1_conv1",)})


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(1, 3),
    st.sampled_from([2**0.5, 2.0, 3.0]),
    st.integers(1, 4),
    st.integers(1, 4),
    st.sampled_from([(16, 24), (20, 20), (28, 40), (40, 36)]),
    st.sampled_from(["adam", "lbfgs"]),
)
def test_the_library_and_the_served_graph_take_the_same_steps(
    small_stylizer, scales, factor, iterations, coarse, hw, optimizer
):
    rng = np.random.default_rng(0)
    content, style = rng.random((*hw, 3)).astype(np.float32), rng.random((24, 24, 3)).astype(np.float32)
    options = dict(
        scales=scales,
        iterations=iterations,
        optimizer=optimizer,
        style_scale=1.5,
        init="noise",
        seed=1,
        **({"scale_factor": factor, "coarse_iterations": coarse} if scales > 1 else {}),
    )
    cap = max(iterations, coarse)  # the served graph's default: the plan's largest count
    history = tfnst.History()
    library = small_stylizer.run(content, style, size=max(hw), callbacks=[history], **options)
    config = small_stylizer.config.replace(**options)
    steps = [(s.hw, s.iterations) for s in plan(config, hw)]
    ran = [(r.hw, r.iteration) for r in history.records]
    # Each scale's iterations, in order, at its size (records count from 1 at each scale):
    assert ran == [(size, i) for size, n in steps for i in range(1, n + 1)]
    engine = small_stylizer.engine(config, True)
    # Traced as tfnst.export traces it: without autograph (the engine is graph-safe as written).
    served = tf.function(lambda c, s: engine.run(c, [s], tf.constant(cap), seed=1), autograph=False)(content, style)
    # float32 sums in another order (the graph against eager steps), amplified by
    # L-BFGS's steps: measured up to 2.2e-4 (L-BFGS, 2 scales, factor 3, 4 and 2
    # iterations, 28x40); one iteration more or less at either scale of that example
    # moves the image by 0.2 (measured 2026-12-02), so 2e-3 tells them apart.
    np.testing.assert_allclose(served.numpy(), library.image, atol=2e-3)
