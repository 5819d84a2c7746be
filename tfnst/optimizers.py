"""Optimizers over the image: Adam in a compiled GradientTape step, and L-BFGS (tfp).

Both minimize a ``loss_fn(image, targets) -> (total, terms)`` over an [H, W, 3]
image, report an `IterationRecord` per iteration to callbacks, and return the
result clipped to [0, 1]. Their compiled functions take the targets as arguments,
so a second run at the same size reuses the trace.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import tensorflow as tf
import tensorflow_probability as tfp

from tfnst.callbacks import Callback, IterationRecord

LossFn = Callable[[tf.Tensor, dict], tuple[tf.Tensor, dict]]


def _to_floats(terms) -> dict[str, float]:
    return {k: float(v) for k, v in terms.items()}


class _Run:
    """Bookkeeping shared by the optimizers: timing, records, callbacks."""

    def __init__(self, name, iterations, size, callbacks):
        self.name, self.iterations, self.size, self.callbacks = name, iterations, size, callbacks
        self.start = time.perf_counter()
        for c in callbacks:
            c.on_run_begin(iterations, size)

    def report(self, iteration, loss, terms, image) -> IterationRecord:
        record = IterationRecord(iteration, self.iterations, float(loss), terms, self.size,
                                 time.perf_counter() - self.start, self.name)
        if self.callbacks:
            clipped = tf.clip_by_value(image, 0.0, 1.0)
            for c in self.callbacks:
                c.on_iteration_end(record, clipped)
        return record

    def end(self):
        for c in self.callbacks:
            c.on_run_end()


def adam_update(x, g, m, v, t, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """One Adam step (Kingma & Ba 2015, Algorithm 1) on the pixels, then clip to [0, 1].

    Pure: returns (x, m, v). Shared by `Adam` and the exported serving graph.
    """
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * tf.square(g)
    m_hat = m / (1.0 - tf.pow(beta_1, t))
    v_hat = v / (1.0 - tf.pow(beta_2, t))
    x = tf.clip_by_value(x - learning_rate * m_hat / (tf.sqrt(v_hat) + epsilon), 0.0, 1.0)
    return x, m, v


class Adam:
    """Adam (Kingma & Ba 2015) on the pixels, clipped to [0, 1] after every step.

    Hand-written on plain tensors rather than `keras.optimizers.Adam`: the moments are
    loop values, not variables, so there is no per-shape slot state and the same step
    serves images of any size (one trace per size).
    """

    name = "adam"

    def __init__(self, loss_fn: LossFn, learning_rate=0.02, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.loss_fn = loss_fn
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self._step = tf.function(self._step_impl)

    def _step_impl(self, x, m, v, t, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total, terms = self.loss_fn(x, targets)
        x, m, v = adam_update(x, tape.gradient(total, x), m, v, t, self.learning_rate,
                              self.beta_1, self.beta_2, self.epsilon)
        return x, m, v, total, terms

    def minimize(self, image, targets, iterations: int, callbacks: list[Callback] = ()) -> tf.Tensor:
        x = tf.clip_by_value(tf.convert_to_tensor(image, tf.float32), 0.0, 1.0)
        m, v = tf.zeros_like(x), tf.zeros_like(x)
        run = _Run(self.name, iterations, tuple(x.shape[:2]), callbacks)
        try:
            for i in range(1, iterations + 1):
                x, m, v, total, terms = self._step(x, m, v, tf.constant(float(i)), targets)
                run.report(i, total, _to_floats(terms), x)
        finally:
            run.end()
        return x


class LBFGS:
    """L-BFGS from tensorflow-probability over the same loss.

    L-BFGS has no projection step, so pixels are kept in range by a smooth penalty on
    how far they stray outside [0, 1], and the result is clipped. It runs one
    iteration per compiled call, resuming from the previous call's state (history
    included), so callbacks see every iteration.
    """

    name = "lbfgs"
    RANGE_PENALTY = 1e3

    def __init__(self, loss_fn: LossFn, num_correction_pairs: int = 10, report_every: int = 10):
        self.loss_fn = loss_fn
        self.num_correction_pairs, self.report_every = num_correction_pairs, report_every
        self._start = tf.function(self._start_impl)
        self._iterate = tf.function(self._iterate_impl)
        self._terms = tf.function(lambda x, targets: self.loss_fn(x, targets)[1])

    def _value_and_gradients(self, shape, targets):
        def fn(flat):
            with tf.GradientTape() as tape:
                tape.watch(flat)
                x = tf.reshape(flat, shape)
                total, _ = self.loss_fn(x, targets)
                outside = x - tf.clip_by_value(x, 0.0, 1.0)
                total += self.RANGE_PENALTY * tf.reduce_mean(tf.square(outside))
            return total, tape.gradient(total, flat)
        return fn

    def _start_impl(self, x, targets):
        return tfp.optimizer.lbfgs_minimize(
            self._value_and_gradients(tf.shape(x), targets), initial_position=tf.reshape(x, [-1]),
            num_correction_pairs=self.num_correction_pairs, max_iterations=0, tolerance=0.0)

    def _iterate_impl(self, state, shape, targets, max_iterations):
        return tfp.optimizer.lbfgs_minimize(
            self._value_and_gradients(shape, targets), initial_position=None,
            previous_optimizer_results=state,
            num_correction_pairs=self.num_correction_pairs, max_iterations=max_iterations,
            tolerance=0.0)

    def minimize(self, image, targets, iterations: int, callbacks: list[Callback] = ()) -> tf.Tensor:
        x = tf.clip_by_value(tf.convert_to_tensor(image, tf.float32), 0.0, 1.0)
        shape = tf.shape(x)
        state = self._start(x, targets)
        run = _Run(self.name, iterations, tuple(x.shape[:2]), callbacks)
        try:
            for i in range(1, iterations + 1):
                state = self._iterate(state, shape, targets, tf.constant(i))
                image = tf.reshape(state.position, shape)
                terms = None
                if i % self.report_every == 0 or i == iterations:
                    terms = _to_floats(self._terms(tf.clip_by_value(image, 0.0, 1.0), targets))
                run.report(i, state.objective_value, terms, image)
                if bool(state.failed) or bool(state.converged):
                    break  # the line search found no descent: further calls change nothing
        finally:
            run.end()
        return tf.clip_by_value(tf.reshape(state.position, shape), 0.0, 1.0)
