"""The optimizers on a toy loss (no VGG19): Adam's moving average of the iterates."""

import numpy as np
import pytest
import tensorflow as tf

from tfnst.callbacks import Callback
from tfnst.optimizers import Adam, Interrupted, minimize

TARGET = np.linspace(0.1, 0.9, 2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)


def toy_loss(x, targets):
    total = tf.reduce_sum(tf.square(x - targets["target"]) * tf.constant([1.0, 10.0, 100.0]))
    return total, {"toy": total}


TARGETS = {"target": tf.constant(TARGET)}
START = np.full_like(TARGET, 0.5)


def numpy_average(iterates, decay):
    """The bias-corrected EMA, written out (Kingma & Ba 2015's correction, applied to x)."""
    average = np.zeros_like(iterates[0])
    for x in iterates:
        average = decay * average + (1 - decay) * x
    return average / (1 - decay ** len(iterates))


def test_adam_returns_the_bias_corrected_average_of_its_iterates():
    adam = Adam(toy_loss, learning_rate=0.1, ema_decay=0.8)
    state = adam.init_state(tf.constant(START), TARGETS)
    np.testing.assert_array_equal(adam.image(state), START)  # nothing averaged yet
    iterates = []
    for _ in range(6):
        state = adam.step(state, TARGETS)[0]
        iterates.append(state["x"].numpy())
        np.testing.assert_allclose(adam.image(state), numpy_average(iterates, 0.8), atol=1e-6)
    np.testing.assert_allclose(numpy_average(iterates[:1], 0.8), iterates[0])  # no pull to 0
    assert not np.allclose(adam.image(state), iterates[-1], atol=1e-3)
    result = minimize(Adam(toy_loss, learning_rate=0.1, ema_decay=0.8), START, TARGETS, 6)
    np.testing.assert_allclose(result.image, adam.image(state), atol=1e-6)


def test_without_averaging_adam_returns_its_last_iterate():
    adam = Adam(toy_loss, learning_rate=0.1)
    state = adam.step(adam.init_state(tf.constant(START), TARGETS), TARGETS)[0]
    assert set(state) == {"x", "m", "v", "t", "lr"}
    np.testing.assert_array_equal(adam.image(state), state["x"])


class InterruptAt(Callback):
    def __init__(self, iteration):
        self.iteration = iteration

    def on_iteration_end(self, record, image):
        if record.iteration == self.iteration:
            raise KeyboardInterrupt


def test_interrupted_carries_the_average():
    result = minimize(Adam(toy_loss, learning_rate=0.1, ema_decay=0.8), START, TARGETS, 3)
    with pytest.raises(Interrupted) as e:
        minimize(Adam(toy_loss, learning_rate=0.1, ema_decay=0.8), START, TARGETS, 50,
                 [InterruptAt(3)])
    assert e.value.iteration == 3 and e.value.averaged
    np.testing.assert_allclose(e.value.image, result.image, atol=1e-6)


def test_a_new_scale_starts_a_new_average():
    adam = Adam(toy_loss, learning_rate=0.1, ema_decay=0.8)
    state = adam.init_state(tf.constant(START), TARGETS)
    for _ in range(3):
        state = adam.step(state, TARGETS)[0]
    finer = np.full((4, 6, 3), 0.25, np.float32)
    state = adam.rescale_state(state, finer)
    np.testing.assert_array_equal(adam.image(state), finer)
    assert float(state["avg_t"]) == 0 and float(state["t"]) == 3  # Adam's own count goes on


def test_a_run_stopped_by_non_finite_losses_returns_the_average():
    # The loss turns NaN once a pixel passes 0.7 (the target pulls it to 0.9): the run
    # stops early, and with averaging it hands back the average, not the best iterate.
    def blows_up(x, targets):
        total, terms = toy_loss(x, targets)
        return tf.where(tf.reduce_max(x) > 0.7, np.nan, total), terms

    plain = minimize(Adam(blows_up, learning_rate=0.05), START, TARGETS, 50)
    averaged = minimize(Adam(blows_up, learning_rate=0.05, ema_decay=0.8), START, TARGETS, 50)
    assert plain.stopped_early and averaged.stopped_early
    assert plain.image.max() <= 0.7  # the best iterate: one the loss was finite at
    assert not np.allclose(averaged.image, plain.image)
    np.testing.assert_allclose(averaged.image, Adam(blows_up, ema_decay=0.8).image(averaged.state),
                               atol=1e-6)
