"""Optimizers over the image: Adam and L-BFGS (a fixed step, as Gatys et al.'s code), each a pure,
graph-safe ``step(state, targets) -> state``, and `minimize`, the library's loop.

The state holds everything a run needs to go on: the iterate and the optimizer's
memory, the last accepted iterate (so a non-finite step is undone inside the graph),
the best iterate so far, the loss and terms of the last evaluation, and whether the
run is done (stalled or failed). `tfnst.Stylizer` runs `step` from Python, one
iteration at a time, for its callbacks and checkpoints; the exported SavedModel runs
the very same `step` in a `tf.while_loop`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfnst.callbacks import Callback, IterationRecord
from tfnst.config import ADAM_DEFAULTS, LBFGS_HISTORY
from tfnst.objective import value_and_gradient_by_autodiff

log = logging.getLogger(__name__)

State = dict  # an optimizer's state: a nest of tensors

MAX_REJECTED = 8  # consecutive non-finite evaluations (each halving Adam's rate) before giving up


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
    """What `minimize` returns."""

    image: np.ndarray  # the final iterate (or average); the best so far after a failure; in [0, 1]
    best_loss: float  # the lowest total loss seen at an iterate (an average's is not evaluated)
    iterations: int  # the last iteration run (counting those before a resume)
    stop_reason: str | None = None  # why it ended before ``iterations``
    failed: bool = False  # True when it stopped on a numerical failure
    state: State | None = None  # the optimizer's final state (coarse-to-fine warm starts)


class ObjectiveFunction:
    """Wraps a plain ``fn(image, targets) -> (total, {term: value})`` as an objective
    (stateless, declared terms), e.g. for toy losses.

    The interface the optimizers use (`tfnst.objective.Objective` has it too):
    ``terms``, ``initial_state()``, ``__call__(image, targets, state)`` and
    ``value_and_gradient(image, targets, state) -> (total, terms, state, gradient)``;
    ``graph_safe`` says whether a step may be compiled into one graph."""

    graph_safe = True

    def __init__(self, fn, terms=()):
        self.fn, self.terms = fn, tuple(terms)

    def initial_state(self):
        return {}

    def __call__(self, image, targets, state=None):
        total, terms = self.fn(image, targets)
        return total, terms, {} if state is None else state

    def value_and_gradient(self, image, targets, state):
        return value_and_gradient_by_autodiff(self, image, targets, state)


# ------------------------------------------------------------------ pure maths
def adam_update(x, g, m, v, t, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """One Adam step (Kingma & Ba 2015, Algorithm 1) on the pixels, then clip to [0, 1].

    Returns:
        (x, m, v).
    """
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * tf.square(g)
    m_hat = m / (1.0 - tf.pow(beta_1, t))
    v_hat = v / (1.0 - tf.pow(beta_2, t))
    x = tf.clip_by_value(x - learning_rate * m_hat / (tf.sqrt(v_hat) + epsilon), 0.0, 1.0)
    return x, m, v


def ema_update(average, x, decay):
    """The biased exponential moving average after one more value (as Adam's m)."""
    return decay * average + (1.0 - decay) * x


def ema_debiased(average, count, decay):
    """`ema_update`'s average after ``count`` values, divided by 1 - decay^count so that
    the zero it started from does not pull it down (Kingma & Ba 2015, section 3)."""
    return average / (1.0 - tf.pow(decay, count))


def flatten_with_paths(structure) -> list[tuple[str, object]]:
    """(path, leaf) pairs in `tf.nest.flatten`'s order (dict keys sorted), paths joined by
    "/": how a state is written to a checkpoint."""
    if isinstance(structure, dict):
        return [(f"{k}/{p}" if p else str(k), leaf) for k in sorted(structure)
                for p, leaf in flatten_with_paths(structure[k])]
    if isinstance(structure, (tuple, list)):
        names = structure._fields if hasattr(structure, "_fields") else range(len(structure))
        return [(f"{k}/{p}" if p else str(k), leaf) for k, item in zip(names, structure)
                for p, leaf in flatten_with_paths(item)]
    return [("", structure)]


def select(condition, if_true, if_false):
    """Element-wise choice between two states of the same structure (graph-safe)."""
    return tf.nest.map_structure(lambda a, b: tf.where(condition, a, b), if_true, if_false)


def progress_start(patience: int) -> dict:
    """The convergence tracker's start: the best loss after each of the last
    ``patience`` accepted iterations."""
    return {"window": tf.fill([max(1, patience)], np.float32(np.inf)), "count": tf.constant(0)}


def progress_update(progress: dict, best: tf.Tensor, accepted: tf.Tensor, tolerance: tf.Tensor):
    """(progress, stalled): stalled when the best loss improved by less than
    ``tolerance`` (relative) over the last ``patience`` accepted iterations."""
    window, count = progress["window"], progress["count"]
    patience = tf.shape(window)[0]
    oldest = window[0]  # the best loss ``patience`` accepted iterations ago
    stalled = accepted & (tolerance > 0) & (count >= patience) & (oldest - best <= tolerance * tf.abs(best))
    window = tf.where(accepted, tf.concat([window[1:], [best]], 0), window)
    return {"window": window, "count": count + tf.cast(accepted, tf.int32)}, stalled


# ------------------------------------------------------------------ the interface
class ImageOptimizer:
    """What `minimize`, `tfnst.Stylizer` and the served graph use of an optimizer.

    A subclass sets ``name`` and ``averages`` and provides ``init_state(x, targets,
    learning_rate, tolerance)``, the pure ``step(state, targets)`` (and
    ``compiled_step``), ``image``, ``best_image`` and ``rescale_state``, and an
    ``objective`` and ``patience``. Its state holds, besides its own, the part kept by
    `_record_start` and `_record` (loss, terms, best image, stall test, done).
    """

    name: str
    averages: bool
    objective: object
    patience: int

    def result_image(self, state: State) -> tf.Tensor:
        """The run's result: `image`, or after a numerical failure `best_image`."""
        return tf.where(failed(state), self.best_image(state), self.image(state))

    def _record_start(self, x, tolerance) -> State:
        """The part of a state every optimizer keeps the same way, before any evaluation."""
        return {"loss": tf.constant(np.float32(np.nan)), "finite": tf.constant(True),
                "terms": {t: tf.constant(0.0) for t in self.objective.terms},
                "rejected": tf.constant(0), "best_x": x, "best_loss": tf.constant(np.float32(np.inf)),
                "progress": progress_start(self.patience), "tolerance": tf.cast(tolerance, tf.float32),
                "done": tf.constant(False), "stalled": tf.constant(False)}

    def _record(self, state: State, evaluated, total, terms, finite) -> State:
        """That part after evaluating image ``evaluated``: its loss and terms, the best
        image so far, the stall test, and done after `MAX_REJECTED` non-finite
        evaluations in a row."""
        improved = finite & (total < state["best_loss"])
        best_loss = tf.where(improved, total, state["best_loss"])
        progress, stalled = progress_update(state["progress"], best_loss, finite, state["tolerance"])
        rejected = tf.where(finite, 0, state["rejected"] + 1)
        return {"loss": total, "finite": finite, "terms": select(finite, terms, state["terms"]),
                "rejected": rejected, "best_x": tf.where(improved, evaluated, state["best_x"]),
                "best_loss": best_loss, "progress": progress, "tolerance": state["tolerance"],
                "done": stalled | (rejected >= MAX_REJECTED), "stalled": stalled}

    def state_to_arrays(self, state: State) -> dict[str, np.ndarray]:
        """The state as named arrays (a checkpoint)."""
        return {path: np.asarray(value) for path, value in flatten_with_paths(state)}

    def state_from_arrays(self, arrays: dict[str, np.ndarray], like: State) -> State:
        """The state saved by `state_to_arrays`, with the structure of ``like``."""
        return tf.nest.pack_sequence_as(like, [tf.constant(arrays[p]) for p, _ in flatten_with_paths(like)])


# ------------------------------------------------------------------ Adam
class Adam(ImageOptimizer):
    """Adam on the pixels, clipped to [0, 1] after every step.

    Hand-written on plain tensors rather than `keras.optimizers.Adam`: the moments are
    state values, not variables, so the same step serves every size and every
    concurrent request of a served graph, and the state is trivially checkpointed.

    A step whose loss or gradient is not finite is undone inside the graph: the state
    goes back to the last accepted iterate with its moments, and the rate is halved,
    so the next step from there is a shorter one (`tf.where`, no host decision).

    With ``ema_decay`` > 0 the image it returns is an exponential moving average of
    the iterates, bias-corrected as Adam's moments are (Polyak & Juditsky 1992 for
    averaging; crowsonkb/style-transfer-pytorch averages the same way).

    Args:
        objective: ``objective(x, targets, state) -> (total, terms, state)`` with
            ``initial_state()`` and ``terms`` (an `Objective` or `ObjectiveFunction`).
        ema_decay: averaging (0 = off).
        patience: the window of the stall test (``tolerance``, given to `init_state`:
            stop when the best loss improved by less than that fraction over
            ``patience`` iterations; 0 = never).
    """

    name = "adam"

    def __init__(self, objective, beta_1=0.9, beta_2=0.999, epsilon=1e-8, ema_decay=0.0,
                 patience: int = 20):
        self.objective = objective
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.ema_decay = float(ema_decay)
        self.averages = self.ema_decay > 0
        self.patience = int(patience)
        # One graph per step, unless the objective runs its own compiled pieces (tiles).
        self.compiled_step = tf.function(self.step) if objective.graph_safe else self.step

    def _core(self, x, m, v, t, aux) -> State:
        core = {"x": x, "m": m, "v": v, "t": t, "aux": aux}
        if self.averages:
            core["avg"], core["avg_t"] = tf.zeros_like(x), tf.constant(0.0)
        return core

    def init_state(self, x, targets=None, learning_rate: float | None = None,
                   tolerance: float = 0.0) -> State:
        """The state before the first step from image ``x`` [H, W, 3]."""
        x = tf.convert_to_tensor(x, tf.float32)
        zeros = tf.zeros_like(x)
        core = self._core(x, zeros, zeros, tf.constant(0.0), self.objective.initial_state())
        return {"core": core, "prev": core,
                "lr": tf.constant(float(ADAM_DEFAULTS["learning_rate"] if learning_rate is None else learning_rate)),
                **self._record_start(x, tolerance)}

    def step(self, state: State, targets) -> State:
        """Evaluate the loss at the current iterate and take one step (pure, graph-safe)."""
        core = state["core"]
        x = core["x"]
        total, terms, aux, g = self.objective.value_and_gradient(x, targets, core["aux"])
        finite = tf.math.is_finite(total) & tf.reduce_all(tf.math.is_finite(g))
        g = tf.where(finite, g, tf.zeros_like(g))  # keep NaNs out of the moments
        t = core["t"] + 1.0
        new_x, m, v = adam_update(x, g, core["m"], core["v"], t, state["lr"], self.beta_1,
                                  self.beta_2, self.epsilon)
        accepted = {"x": new_x, "m": m, "v": v, "t": t, "aux": aux}
        if self.averages:
            accepted["avg"] = ema_update(core["avg"], new_x, self.ema_decay)
            accepted["avg_t"] = core["avg_t"] + 1.0
        # Rejected: back to the state this iterate came from, at half the rate.
        return {"core": select(finite, accepted, state["prev"]),
                "prev": select(finite, core, state["prev"]),
                "lr": tf.where(finite, state["lr"], 0.5 * state["lr"]),
                **self._record(state, x, total, terms, finite)}

    def image(self, state: State) -> tf.Tensor:
        """The current result: the iterate, or with averaging the bias-corrected average
        (the iterate until something has been averaged). Graph-safe."""
        core = state["core"]
        if not self.averages:
            return core["x"]
        return tf.where(core["avg_t"] > 0, ema_debiased(core["avg"], tf.maximum(core["avg_t"], 1.0),
                                                        self.ema_decay), core["x"])

    def best_image(self, state: State) -> tf.Tensor:
        """What to keep when a run stops early: the average when averaging (its loss is
        not evaluated), else the lowest-loss iterate."""
        return self.image(state) if self.averages else state["best_x"]

    def rescale_state(self, state: State, image, targets=None) -> State:
        """Warm start at a new size (coarse-to-fine): the moments resized with the image,
        so Adam keeps its per-pixel step sizes rather than starting its bias correction
        over. Graph-safe.

        The losses are means over pixels, so a pixel's gradient scales with 1/pixels:
        m is rescaled by the pixel ratio and v by its square, else v (which decays
        over ~1/(1-β2) = 1000 steps) would shrink the steps at the finer scale.
        An average starts over: ``image`` (the coarser result) already is one.
        """
        from tfnst.resize import resize

        core = state["core"]
        image = tf.convert_to_tensor(image, tf.float32)
        size = tf.shape(image)[:2]
        old = tf.cast(tf.reduce_prod(tf.shape(core["x"])[:2]), tf.float32)
        ratio = old / tf.cast(tf.reduce_prod(size), tf.float32)
        m = resize(core["m"], size, clip=False) * ratio
        v = tf.maximum(resize(core["v"], size, clip=False), 0.0) * ratio**2
        fresh = self.init_state(image, learning_rate=1.0)
        new_core = self._core(image, m, v, core["t"], core["aux"])
        return {**fresh, "core": new_core, "prev": new_core, "lr": state["lr"],
                "tolerance": state["tolerance"], "rejected": state["rejected"]}



# ------------------------------------------------------------------ L-BFGS
CURVATURE_EPS = 1e-10  # a pair with sᵀy at or below this is skipped (torch.optim.LBFGS's test)


def lbfgs_direction(g, s_pairs, y_pairs, rho):
    """The L-BFGS search direction -H g by the two-loop recursion (Nocedal & Wright
    2006, Algorithm 7.4). Pairs are oldest first; ``rho[i]`` = 1 / (s_iᵀ y_i), and a
    slot with rho 0 is empty (its terms vanish). The initial matrix is γI with
    γ = sᵀy / yᵀy of the newest pair (their eq. 7.20), or I when there is none.

    Returns:
        The direction, shaped as ``g``.
    """
    q, alphas = g, []
    for i in reversed(range(len(s_pairs))):
        alphas.append(rho[i] * tf.reduce_sum(s_pairs[i] * q))
        q = q - alphas[-1] * y_pairs[i]
    s, y = s_pairs[-1], y_pairs[-1]
    gamma = tf.where(rho[-1] > 0, tf.reduce_sum(s * y) / tf.maximum(tf.reduce_sum(y * y), 1e-30), 1.0)
    r = gamma * q
    for i, alpha in zip(range(len(s_pairs)), reversed(alphas)):
        beta = rho[i] * tf.reduce_sum(y_pairs[i] * r)
        r = r + (alpha - beta) * s_pairs[i]
    return -r


def lbfgs_push(s_pairs: tuple, y_pairs: tuple, rho, s, y, accept):
    """The pairs with (s, y) appended and the oldest dropped, when ``accept`` and the
    curvature sᵀy is positive (else BFGS's update would not stay positive definite);
    unchanged otherwise. The tuple is re-linked, not copied (`tf.cond`).

    Returns:
        (s_pairs, y_pairs, rho).
    """
    sy = tf.reduce_sum(s * y)
    return tf.cond(accept & (sy > CURVATURE_EPS),
                   lambda: (s_pairs[1:] + (s,), y_pairs[1:] + (y,), tf.concat([rho[1:], [1.0 / sy]], 0)),
                   lambda: (s_pairs, y_pairs, rho))


class LBFGS(ImageOptimizer):
    """L-BFGS on the pixels with a fixed step: one loss evaluation per iteration.

    Gatys et al.'s own code (leongatys/PytorchNeuralStyleTransfer, ``optim.LBFGS``) and
    jcjohnson/neural-style (``optim.lbfgs``) run L-BFGS without a line search: the
    quasi-Newton step is taken as it is (a step of 1; the first, with no curvature
    yet, is a gradient step of length min(1, 1/‖g‖₁), as torch's). A line search
    (tensorflow-probability's Hager–Zhang, which tfnst used before) costs about 3
    evaluations an iteration and was slower per second than Adam (docs/speed.md).
    Here the step is projected onto [0, 1] and the pair stores the step actually
    taken, so the curvature pairs describe the points evaluated.

    A non-finite loss or gradient at the new point is undone as for `Adam`: the run
    stays at the last accepted iterate (its gradient and history kept) and the step
    is halved, so the next try lies half as far along the same direction.

    Args:
        objective: as for `Adam`.
        history: correction pairs kept (`LBFGS_HISTORY`).
        patience: the window of the stall test, as for `Adam`.
    """

    name = "lbfgs"
    averages = False

    def __init__(self, objective, history: int = LBFGS_HISTORY, patience: int = 20):
        self.objective, self.history, self.patience = objective, int(history), int(patience)
        self.compiled_step = tf.function(self.step) if objective.graph_safe else self.step

    def init_state(self, x, targets=None, learning_rate: float | None = None,
                   tolerance: float = 0.0) -> State:
        """The state before the first evaluation, at image ``x`` [H, W, 3]; the first
        `step` evaluates ``x`` itself. ``learning_rate`` scales the steps (1 unset)."""
        x = tf.convert_to_tensor(x, tf.float32)
        zeros = tf.zeros_like(x)
        core = {"x": x, "g": zeros, "evaluated": tf.constant(False), "aux": self.objective.initial_state(),
                "s": (zeros,) * self.history, "y": (zeros,) * self.history, "rho": tf.zeros([self.history])}
        return {"core": core, "candidate": x, "lr": tf.cast(1.0 if learning_rate is None else learning_rate, tf.float32),
                **self._record_start(x, tolerance)}

    def step(self, state: State, targets) -> State:
        """Evaluate the candidate, accept it if finite, and propose the next (pure, graph-safe)."""
        core, candidate = state["core"], state["candidate"]
        total, terms, aux, g = self.objective.value_and_gradient(candidate, targets, core["aux"])
        finite = tf.math.is_finite(total) & tf.reduce_all(tf.math.is_finite(g))
        g = tf.where(finite, g, core["g"])
        s_pairs, y_pairs, rho = lbfgs_push(core["s"], core["y"], core["rho"], candidate - core["x"],
                                           g - core["g"], finite & core["evaluated"])
        x = tf.where(finite, candidate, core["x"])
        lr = tf.where(finite, state["lr"], 0.5 * state["lr"])
        direction = lbfgs_direction(g, s_pairs, y_pairs, rho)
        first = tf.minimum(1.0, 1.0 / tf.maximum(tf.reduce_sum(tf.abs(g)), 1e-30))
        length = tf.where(rho[-1] > 0, 1.0, first) * lr
        new_core = {"x": x, "g": g, "evaluated": core["evaluated"] | finite,
                    "aux": select(finite, aux, core["aux"]), "s": s_pairs, "y": y_pairs, "rho": rho}
        return {"core": new_core, "candidate": tf.clip_by_value(x + length * direction, 0.0, 1.0), "lr": lr,
                **self._record(state, candidate, total, terms, finite)}

    def image(self, state: State) -> tf.Tensor:
        """The last accepted iterate (its loss is the one reported). Graph-safe."""
        return state["core"]["x"]

    def best_image(self, state: State) -> tf.Tensor:
        return state["best_x"]

    def rescale_state(self, state: State, image, targets=None) -> State:
        """L-BFGS's pairs do not carry over to another size: it starts afresh at ``image``."""
        return self.init_state(image, targets, tolerance=state["tolerance"])


def failed(state: State) -> tf.Tensor:
    """Whether the run stopped on a numerical failure (done, but not stalled)."""
    return state["done"] & ~state["stalled"]


# ------------------------------------------------------------------ the library's loop
def _fetch(state: State):
    """The few values the loop reads back each iteration, in one transfer."""
    return {k: state[k].numpy() for k in ("loss", "finite", "rejected", "best_loss", "done", "stalled")}


def minimize(optimizer, image, targets, iterations: int, callbacks: list[Callback] = (), *,
             state: State | None = None, start_iteration: int = 0, learning_rate: float | None = None,
             tolerance: float = 0.0, checkpoint: Callable[[int, State], None] | None = None,
             checkpoint_every: int | None = None, scale: tuple[int, int] = (1, 1)) -> Result:
    """Run ``optimizer`` from ``image`` (or a restored ``state``) up to ``iterations``.

    Calls the optimizer's compiled `step` once per iteration and reports each accepted
    one to the callbacks as an `IterationRecord` (a rejected, non-finite evaluation is
    undone by the step itself and not reported). Stops early when the state says done:
    `MAX_REJECTED` non-finite evaluations in a row (a failure: the best image so far
    is returned) or a stall (converged). Ctrl-C raises
    `Interrupted` with the best image so far.

    Returns:
        A `Result`.
    """
    if state is None:
        x = tf.clip_by_value(tf.convert_to_tensor(image, tf.float32), 0.0, 1.0)
        state = optimizer.init_state(x, targets, learning_rate, tolerance)
    size = tuple(int(d) for d in optimizer.image(state).shape[:2])
    start = time.perf_counter()
    iteration, reason, failure = start_iteration, None, False
    best_loss = math.inf

    def best_so_far():
        return np.clip(optimizer.best_image(state).numpy(), 0.0, 1.0)

    for c in callbacks:
        c.on_run_begin(iterations - start_iteration, size)
    try:
        for iteration in range(start_iteration + 1, iterations + 1):
            state = optimizer.compiled_step(state, targets)
            info = _fetch(state)
            best_loss = float(info["best_loss"])
            if info["finite"]:
                record = IterationRecord(
                    iteration, iterations, float(info["loss"]), {k: float(v) for k, v in state["terms"].items()},
                    size, time.perf_counter() - start, optimizer.name, *scale)
                if callbacks:
                    current = optimizer.image(state)
                    for c in callbacks:
                        c.on_iteration_end(record, current)
                if checkpoint and checkpoint_every and iteration % checkpoint_every == 0:
                    checkpoint(iteration, state)
            else:
                log.warning("tfnst: iteration %d: the loss or its gradient is not finite (%s); "
                            "step undone, step size halved", iteration, float(info["loss"]))
            if info["done"]:
                if info["stalled"]:
                    reason = (f"converged at iteration {iteration}: the loss improved by less than "
                              f"{float(state['tolerance']):g} over {optimizer.patience} iterations")
                else:
                    failure = True
                    reason = (f"numerical failure at iteration {iteration} "
                              f"(loss {float(info['loss'])}, {int(info['rejected'])} non-finite in a row)")
                break
            if any(c.stop_requested for c in callbacks):
                break
    except KeyboardInterrupt as e:
        raise Interrupted(best_so_far(), iteration, best_loss, e, optimizer.averages) from None
    finally:
        for c in callbacks:
            c.on_run_end()
    if failure:
        log.warning("tfnst: stopped early: %s; keeping the best image so far (loss %s)", reason, best_loss)
    final = np.clip(optimizer.result_image(state).numpy(), 0.0, 1.0)
    return Result(final, best_loss, iteration, reason, failure, state)
