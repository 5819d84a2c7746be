"""Optimizers over the image: Adam in a compiled GradientTape step, and L-BFGS (tfp).

An optimizer here only knows its state and one step over a
``loss_fn(image, targets) -> (total, terms)``; `minimize` is the one loop around
them: it reports an `IterationRecord` per iteration to callbacks, keeps the best
image so far, rejects non-finite steps, saves checkpoints, and on Ctrl-C raises
`Interrupted` carrying the best image. Compiled functions take the targets as
arguments, so a second run at the same size reuses the trace.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.optimizer.lbfgs import LBfgsOptimizerResults

from tfnst.callbacks import Callback, IterationRecord

log = logging.getLogger(__name__)

LossFn = Callable[[tf.Tensor, dict], tuple[tf.Tensor, dict]]
State = dict  # an optimizer's state: name -> tensor


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, via the CLI) during `minimize`; carries the best image so far:
    the lowest-loss iterate, or with averaging (``averaged``) the average so far.
    ``loss`` is the lowest loss seen at an iterate."""

    def __init__(self, image: np.ndarray, iteration: int, loss: float, cause: BaseException,
                 averaged: bool = False):
        super().__init__(f"interrupted at iteration {iteration}")
        self.image, self.iteration, self.loss, self.cause = image, iteration, loss, cause
        self.averaged = averaged


@dataclass
class Result:
    image: np.ndarray  # the final iterate (or average), the best so far if the run stopped early; in [0, 1]
    best_loss: float  # the lowest total loss seen at an iterate (an average's is not evaluated)
    iterations: int  # the last iteration run (counting those before a resume)
    stopped_early: str | None = None  # why, when it did not run all iterations
    state: State | None = None  # the optimizer's final state (coarse-to-fine warm starts)


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
    """Adam on the pixels, clipped to [0, 1] after every step.

    Hand-written on plain tensors rather than `keras.optimizers.Adam`: the moments are
    state values, not variables, so there is no per-shape slot state, the same step
    serves every size (one trace per size), and the state is trivially checkpointed.
    A step whose loss or gradient is not finite is rejected and the learning rate
    halved (the rate is part of the state, a tensor, so this does not retrace).

    With ``ema_decay`` > 0 the image it returns is an exponential moving average of
    the iterates, bias-corrected as Adam's moments are (Polyak & Juditsky 1992 for
    averaging; crowsonkb/style-transfer-pytorch averages the same way). Adam's
    iterates jitter around the optimum at a constant step size; the average does
    not, and reaches a given loss in fewer iterations late in a run (README, Speed).
    """

    name = "adam"

    def __init__(self, loss_fn: LossFn, learning_rate=0.02, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 ema_decay=0.0):
        self.loss_fn = loss_fn
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.ema_decay = float(ema_decay)
        self.averages = self.ema_decay > 0
        self._step = tf.function(self._step_impl)

    def _step_impl(self, x, m, v, t, lr, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total, terms = self.loss_fn(x, targets)
        g = tape.gradient(total, x)
        finite = tf.math.is_finite(total) & tf.reduce_all(tf.math.is_finite(g))
        new_x, new_m, new_v = adam_update(x, g, m, v, t, lr, self.beta_1, self.beta_2, self.epsilon)
        return new_x, new_m, new_v, total, terms, finite

    def _keys(self) -> tuple[str, ...]:
        return ("x", "m", "v", "t", "lr") + (("avg", "avg_t") if self.averages else ())

    def _new_average(self, state: State) -> State:
        """``state`` with an empty average (a run's or a scale's start), when averaging."""
        if not self.averages:
            return state
        return {**state, "avg": tf.zeros_like(state["x"]), "avg_t": tf.constant(0.0)}

    def init_state(self, x: tf.Tensor, targets) -> State:
        zeros = tf.zeros_like(x)
        return self._new_average({"x": x, "m": zeros, "v": zeros, "t": tf.constant(0.0),
                                  "lr": tf.constant(float(self.learning_rate))})

    def step(self, state: State, targets, report: bool = False):
        """(new state, loss at the iterate before the step, that iterate, terms, finite)."""
        t = state["t"] + 1.0
        x, m, v, total, terms, finite = self._step(state["x"], state["m"], state["v"], t,
                                                   state["lr"], targets)
        if not bool(finite):
            return {**state, "lr": state["lr"] * 0.5}, float(total), state["x"], None, False
        new = {"x": x, "m": m, "v": v, "t": t, "lr": state["lr"]}
        if self.averages:
            new["avg"], new["avg_t"] = ema_update(state["avg"], x, self.ema_decay), state["avg_t"] + 1.0
        return new, float(total), state["x"], terms, True

    def image(self, state: State) -> tf.Tensor:
        """The current result: the iterate, or with averaging the bias-corrected average."""
        if not self.averages or float(state["avg_t"]) == 0:
            return state["x"]
        return ema_debiased(state["avg"], state["avg_t"], self.ema_decay)

    def rescale_state(self, state: State, image) -> State:
        """Warm start at a new size: the moments resized with the image, so Adam keeps
        its per-pixel step sizes rather than starting its bias correction over.

        The losses are means over pixels, so a pixel's gradient scales with 1/pixels:
        m is rescaled by the pixel ratio and v by its square, else v (which decays
        over ~1/(1-β2) = 1000 steps) would shrink the steps at the finer scale.
        An average starts over: ``image`` (the coarser result) already is one.
        """
        size = tf.shape(image)[:2]
        old = tf.cast(tf.reduce_prod(tf.shape(state["x"])[:2]), tf.float32)
        ratio = old / tf.cast(tf.reduce_prod(size), tf.float32)
        m = tf.image.resize(state["m"], size, method="bilinear") * ratio
        v = tf.maximum(tf.image.resize(state["v"], size, method="bilinear"), 0.0) * ratio**2
        return self._new_average({"x": tf.constant(image, tf.float32), "m": m, "v": v,
                                  "t": state["t"], "lr": state["lr"]})

    def state_to_arrays(self, state: State) -> dict[str, np.ndarray]:
        return {k: state[k].numpy() for k in self._keys()}

    def state_from_arrays(self, arrays: dict[str, np.ndarray]) -> State:
        return {k: tf.constant(arrays[k]) for k in self._keys()}


def ema_update(average, x, decay):
    """The biased exponential moving average after one more value (as Adam's m)."""
    return decay * average + (1.0 - decay) * x


def ema_debiased(average, count, decay):
    """`ema_update`'s average after ``count`` values, divided by 1 - decay^count so that
    the zero it started from does not pull it down (Kingma & Ba 2015, section 3)."""
    return average / (1.0 - tf.pow(decay, count))


class LBFGS:
    """L-BFGS from tensorflow-probability over the same loss.

    L-BFGS has no projection step, so pixels are kept in range by a smooth penalty on
    how far they stray outside [0, 1], and the result is clipped. It runs one
    iteration per compiled call, resuming from the previous call's state (history
    included), so callbacks see every iteration and the state can be checkpointed.
    """

    name = "lbfgs"
    averages = False
    RANGE_PENALTY = 1e3

    def __init__(self, loss_fn: LossFn, num_correction_pairs: int = 10, report_every: int = 10):
        self.loss_fn = loss_fn
        self.num_correction_pairs, self.report_every = num_correction_pairs, report_every
        # Each trace builds tfp's whole L-BFGS loop (about 15 s at 256 px on 2 cores);
        # after a second image size, one trace with unknown sizes serves every later
        # one (coarse-to-fine's third scale, a Stylizer's next image) at ~1% slower steps.
        relaxed = dict(reduce_retracing=True)
        self._start = tf.function(self._start_impl, **relaxed)
        self._iterate = tf.function(self._iterate_impl, **relaxed)
        self._terms = tf.function(lambda x, targets: self.loss_fn(x, targets)[1], **relaxed)
        self._shape = None

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

    def init_state(self, x: tf.Tensor, targets) -> State:
        return {"results": self._start(x, targets), "shape": tf.shape(x)}

    def step(self, state: State, targets, report: bool = False):
        """(new state, loss at the new image, that image, terms or None, finite).

        The loss terms cost an extra forward pass, so they are computed only every
        ``report_every`` iterations and when ``report`` asks for them."""
        results = self._iterate(state["results"], state["shape"], targets,
                                state["results"].num_iterations + 1)
        new = {"results": results, "shape": state["shape"]}
        image = self.image(new)
        loss = float(results.objective_value)
        finite = math.isfinite(loss) and not bool(results.failed)
        terms = None
        if finite and (report or int(results.num_iterations) % self.report_every == 0):
            terms = self._terms(tf.clip_by_value(image, 0.0, 1.0), targets)
        return new, loss, image, terms, finite

    def image(self, state: State) -> tf.Tensor:
        return tf.reshape(state["results"].position, state["shape"])

    def state_to_arrays(self, state: State) -> dict[str, np.ndarray]:
        arrays = {f"results.{k}": v.numpy() for k, v in state["results"]._asdict().items()}
        arrays["shape"] = state["shape"].numpy()
        return arrays

    def state_from_arrays(self, arrays: dict[str, np.ndarray]) -> State:
        results = LBfgsOptimizerResults(
            **{k: tf.constant(arrays[f"results.{k}"]) for k in LBfgsOptimizerResults._fields})
        return {"results": results, "shape": tf.constant(arrays["shape"])}


MAX_REJECTED = 8  # consecutive non-finite steps (each halving Adam's rate) before giving up


def minimize(optimizer, image, targets, iterations: int, callbacks: list[Callback] = (), *,
             state: State | None = None, start_iteration: int = 0,
             checkpoint: Callable[[int, State], None] | None = None,
             checkpoint_every: int | None = None) -> Result:
    """Run ``optimizer`` from ``image`` (or a restored ``state``) up to ``iterations``.

    Returns the final iterate (Adam with averaging: the average). Non-finite steps are
    rejected (Adam halves its rate); after `MAX_REJECTED` in a row, or when L-BFGS's
    line search fails, the run stops early with a warning and returns the best image
    seen. Ctrl-C raises `Interrupted` with the best image so far. An average's loss
    is not evaluated (that would cost a forward pass per iteration); the average is
    taken as the best image.
    """
    if state is None:
        x = tf.clip_by_value(tf.convert_to_tensor(image, tf.float32), 0.0, 1.0)
        state = optimizer.init_state(x, targets)
    best_image, best_loss = optimizer.image(state), math.inf
    size = tuple(int(d) for d in optimizer.image(state).shape[:2])
    start = time.perf_counter()
    rejected, stopped, iteration = 0, None, start_iteration

    def best_so_far():  # an average's loss is not known: with averaging, the average
        return optimizer.image(state) if optimizer.averages else best_image

    for c in callbacks:
        c.on_run_begin(iterations - start_iteration, size)
    try:
        for iteration in range(start_iteration + 1, iterations + 1):
            state, loss, evaluated, terms, finite = optimizer.step(state, targets,
                                                                   report=iteration == iterations)
            if not finite:
                rejected += 1
                log.warning("tfnst: iteration %d: the loss or its gradient is not finite (%s); "
                            "step rejected%s", iteration, loss,
                            ", learning rate halved" if optimizer.name == "adam" else "")
                if rejected >= MAX_REJECTED or optimizer.name == "lbfgs":
                    stopped = f"numerical failure at iteration {iteration} (loss {loss})"
                    iteration -= 1
                    break
                continue
            rejected = 0
            if loss < best_loss:
                best_loss, best_image = loss, evaluated
            record = IterationRecord(iteration, iterations, loss,
                                     None if terms is None else {k: float(v) for k, v in terms.items()},
                                     size, time.perf_counter() - start, optimizer.name)
            if callbacks:
                current = tf.clip_by_value(optimizer.image(state), 0.0, 1.0)
                for c in callbacks:
                    c.on_iteration_end(record, current)
            if checkpoint and checkpoint_every and iteration % checkpoint_every == 0:
                checkpoint(iteration, state)
            if any(c.stop_requested for c in callbacks):
                break
    except KeyboardInterrupt as e:
        raise Interrupted(np.clip(best_so_far().numpy(), 0.0, 1.0), iteration, best_loss, e,
                          optimizer.averages) from None
    finally:
        for c in callbacks:
            c.on_run_end()
    if stopped:
        log.warning("tfnst: stopped early: %s; keeping the best image so far (loss %s)",
                    stopped, best_loss)
    final = best_so_far() if stopped else optimizer.image(state)
    return Result(np.clip(final.numpy(), 0.0, 1.0), best_loss, iteration, stopped, state)
