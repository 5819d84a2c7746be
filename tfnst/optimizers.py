"""Optimizers over the image: Adam, L-BFGS with a fixed step (as Gatys et al.'s code) and,
with the ``tfp`` extra, tensorflow-probability's L-BFGS with a line search; each a pure,
graph-safe ``step(state, targets) -> state``, and `minimize`, the library's loop.

Each optimizer provides only its pure update, ``update(core, rate, targets) -> (core,
Evaluation)``: from its own state (``core``, a NamedTuple), evaluate the loss once
(or, with a line search, a few times) and move. What every optimizer does the same way
is written once, as small pure functions that `ImageOptimizer.step` wraps around that
update (as optax's ``apply_if_finite`` and ``ema`` wrap a gradient transformation):

- `keep_if_finite`: a step whose evaluation is not finite is undone (back to the last
  accepted state) and the step scale halved, so the next try is a shorter one;
- `average_update` / `average_value`: the iterates' exponential moving average,
  bias-corrected (Polyak & Juditsky 1992 for averaging, Kingma & Ba 2015 for the
  correction), for any optimizer whose ``ema_decay`` is above 0;
- `track_best`, `track_stall` and `record`: the best image so far, the stall test, the
  count of non-finite evaluations in a row, and whether the run is done.

The state (`State`) holds everything a run needs to go on, as NamedTuples of tensors
(`tf.nest` and `tf.function` take them as they are; `ImageOptimizer.state_to_arrays`
names each array by its path for a checkpoint). `tfnst.Stylizer` runs `step` from
Python, one iteration at a time, for its callbacks and checkpoints; the exported
SavedModel runs the very same `step` in a `tf.while_loop`. Read a state with `done`,
`failed`, `loss`, `terms` and `evaluations` rather than by its layout.

The optimizers' settings (patience, history, averaging) have no defaults here: they
live in `tfnst.config` and reach the optimizers through `build_optimizer`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from tfnst.callbacks import Callback, IterationRecord
from tfnst.config import ADAM_DEFAULTS, LBFGS_HISTORY
from tfnst.errors import TfnstError
from tfnst.objective import value_and_gradient_by_autodiff

log = logging.getLogger(__name__)

MAX_REJECTED = 8  # consecutive non-finite evaluations (each halving the step) before giving up
TFP_MISSING = (
    "optimizer 'tfp-lbfgs' needs tensorflow-probability: pip install 'tfnst[tfp]' "
    "(or choose optimizer 'lbfgs' or 'adam')"
)


# ------------------------------------------------------------------ the state
class Evaluation(NamedTuple):
    """What one update evaluated: the image, its loss and terms, whether both the loss and
    its gradient were finite, how many loss-and-gradient evaluations the update made, and
    the optimizer's own convergence test (tensorflow-probability's; False for the others)."""

    point: tf.Tensor
    loss: tf.Tensor
    terms: dict
    finite: tf.Tensor
    evaluations: tf.Tensor
    converged: tf.Tensor


class Progress(NamedTuple):
    """The part of a state every optimizer keeps the same way (`record`)."""

    loss: tf.Tensor  # of the last evaluation (NaN before any)
    finite: tf.Tensor  # whether it was finite (loss and gradient)
    terms: dict  # {term: value} of the last finite evaluation; terms are named by the objective
    rejected: tf.Tensor  # non-finite evaluations in a row
    best_x: tf.Tensor  # the lowest-loss image evaluated
    best_loss: tf.Tensor
    window: tf.Tensor  # the best loss after each of the last ``patience`` accepted iterations
    count: tf.Tensor  # accepted iterations (how much of the window is filled)
    tolerance: tf.Tensor  # of the stall test; 0 = never
    evaluations: tf.Tensor  # loss-and-gradient evaluations so far (int32), every scale
    converged: tf.Tensor  # the optimizer's own convergence test said so
    stalled: tf.Tensor  # the stall test said so
    done: tf.Tensor  # stalled, converged, or `MAX_REJECTED` non-finite evaluations in a row


class Average(NamedTuple):
    """An exponential moving average of the iterates: the biased sum (as Adam's m) and how
    many iterates it holds (float32)."""

    value: tf.Tensor
    count: tf.Tensor


class State(NamedTuple):
    """An optimizer's state.

    ``core`` is the optimizer's own (`AdamCore`, `LBFGSCore`, `TfpCore`); ``average``
    the iterates' `Average` (``()`` without averaging); ``last`` the (core, average)
    a non-finite evaluation goes back to, for an optimizer whose update evaluates the
    iterate it was given (Adam; ``()`` for the others, whose update evaluates the point
    it moves to, so the state it was given is that one); ``rate`` scales the steps and
    is halved on each undone one."""

    core: Any
    average: Any
    last: Any
    rate: tf.Tensor
    progress: Progress


def done(state: State) -> tf.Tensor:
    """Whether the run is over: stalled, converged, or failed."""
    return state.progress.done


def failed(state: State) -> tf.Tensor:
    """Whether the run stopped on a numerical failure (done, but neither stalled nor converged)."""
    p = state.progress
    return p.done & ~p.stalled & ~p.converged


def loss(state: State) -> tf.Tensor:
    """The loss of the last evaluation."""
    return state.progress.loss


def terms(state: State) -> dict:
    """{term: value} of the last finite evaluation."""
    return state.progress.terms


def evaluations(state: State) -> tf.Tensor:
    """The loss-and-gradient evaluations so far (every scale)."""
    return state.progress.evaluations


# ------------------------------------------------------------------ shared wrappers (pure)
def keep_if_finite(finite, proposed, accepted, rate):
    """(state, rate): ``proposed`` when the evaluation behind it was finite; else
    ``accepted`` (the last state whose evaluation was) with ``rate`` halved, so the next
    step from there is a shorter one. Any structure; a `tf.cond`, so nothing is copied
    (graph-safe; no host decision)."""
    finite = tf.convert_to_tensor(finite)
    state = tf.cond(finite, lambda: proposed, lambda: accepted)
    return state, tf.where(finite, rate, 0.5 * rate)


def average_start(x) -> Average:
    """An empty average of iterates shaped as ``x``."""
    return Average(tf.zeros_like(x), tf.constant(0.0))


def average_update(average: Average, x, decay) -> Average:
    """The average after one more iterate ``x`` (`ema_update`)."""
    return Average(ema_update(average.value, x, decay), average.count + 1.0)


def average_value(average: Average, x, decay):
    """The bias-corrected average (`ema_debiased`), or ``x`` while it holds nothing."""
    return tf.where(average.count > 0, ema_debiased(average.value, tf.maximum(average.count, 1.0), decay), x)


def track_best(best_x, best_loss, x, total, finite):
    """(best_x, best_loss): ``x`` and its loss when finite and lower, else unchanged."""
    improved = finite & (total < best_loss)
    return tf.where(improved, x, best_x), tf.where(improved, total, best_loss)


def track_stall(window, count, best_loss, accepted, tolerance):
    """(window, count, stalled): stalled when the best loss improved by less than
    ``tolerance`` (relative) over the last ``len(window)`` (patience) accepted iterations;
    only accepted iterations enter the window."""
    patience = tf.shape(window)[0]
    oldest = window[0]  # the best loss ``patience`` accepted iterations ago
    stalled = accepted & (tolerance > 0) & (count >= patience) & (oldest - best_loss <= tolerance * tf.abs(best_loss))
    window = tf.where(accepted, tf.concat([window[1:], [best_loss]], 0), window)
    return window, count + tf.cast(accepted, tf.int32), stalled


def progress_start(x, term_names, tolerance, patience: int, evaluations=0) -> Progress:
    """`Progress` before any evaluation, at image ``x``."""
    return Progress(
        loss=tf.constant(np.float32(np.nan)),
        finite=tf.constant(True),
        terms={t: tf.constant(0.0) for t in term_names},
        rejected=tf.constant(0),
        best_x=x,
        best_loss=tf.constant(np.float32(np.inf)),
        window=tf.fill([max(1, int(patience))], np.float32(np.inf)),
        count=tf.constant(0),
        tolerance=tf.cast(tolerance, tf.float32),
        evaluations=tf.cast(evaluations, tf.int32),
        converged=tf.constant(False),
        stalled=tf.constant(False),
        done=tf.constant(False),
    )


def record(progress: Progress, ev: Evaluation) -> Progress:
    """`Progress` after an `Evaluation`: its loss and (if finite) terms, the best image so
    far, the stall test, the non-finite count, and done after a stall, the optimizer's
    convergence (on a finite evaluation) or `MAX_REJECTED` non-finite evaluations in a row."""
    finite = ev.finite
    best_x, best_loss = track_best(progress.best_x, progress.best_loss, ev.point, ev.loss, finite)
    window, count, stalled = track_stall(progress.window, progress.count, best_loss, finite, progress.tolerance)
    rejected = tf.where(finite, 0, progress.rejected + 1)
    converged = finite & ev.converged
    return Progress(
        loss=ev.loss,
        finite=finite,
        terms=select(finite, ev.terms, progress.terms),
        rejected=rejected,
        best_x=best_x,
        best_loss=best_loss,
        window=window,
        count=count,
        tolerance=progress.tolerance,
        evaluations=progress.evaluations + tf.cast(ev.evaluations, tf.int32),
        converged=converged,
        stalled=stalled,
        done=stalled | converged | (rejected >= MAX_REJECTED),
    )


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, via the CLI) during `minimize`; carries the best image so far:
    the lowest-loss iterate, or with averaging (``averaged``) the average so far.
    ``loss`` is the lowest loss seen at an iterate."""

    def __init__(self, image: np.ndarray, iteration: int, loss: float, cause: BaseException, averaged: bool = False):
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
    evaluations: int = 0  # loss-and-gradient evaluations, over the run (every scale)


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


def _finite(total, gradient):
    return tf.math.is_finite(total) & tf.reduce_all(tf.math.is_finite(gradient))


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
        return [
            (f"{k}/{p}" if p else str(k), leaf)
            for k in sorted(structure)
            for p, leaf in flatten_with_paths(structure[k])
        ]
    if isinstance(structure, (tuple, list)):
        names = structure._fields if hasattr(structure, "_fields") else range(len(structure))
        return [
            (f"{k}/{p}" if p else str(k), leaf)
            for k, item in zip(names, structure)
            for p, leaf in flatten_with_paths(item)
        ]
    return [("", structure)]


def select(condition, if_true, if_false):
    """Element-wise choice between two states of the same structure (graph-safe)."""
    return tf.nest.map_structure(lambda a, b: tf.where(condition, a, b), if_true, if_false)


# ------------------------------------------------------------------ the interface
class ImageOptimizer:
    """What `minimize`, `tfnst.Stylizer` and the served graph use of an optimizer.

    A subclass sets ``name``, ``judges_input`` (whether its update evaluates the iterate
    it is given, as Adam's, rather than the point it moves to) and ``default_rate``, and
    provides ``init_core(x)``, the pure ``update(core, rate, targets) -> (core,
    Evaluation)``, ``iterate(core)`` (the image a core holds) and, to warm-start at
    another size otherwise than afresh, ``rescale_state``. `step` wraps the update in
    the shared pieces (`keep_if_finite`, the average, `record`), the same for all.

    Args (of every subclass):
        objective: ``objective(x, targets, state) -> (total, terms, state)`` with
            ``initial_state()``, ``terms`` and ``value_and_gradient`` (an `Objective`
            or `ObjectiveFunction`).
        patience: the window of the stall test (``tolerance``, given to `init_state`:
            stop when the best loss improved by less than that fraction over
            ``patience`` iterations; 0 = never).
        ema_decay: return the iterates' bias-corrected exponential moving average with
            this decay (0 = the iterate itself).
    """

    name: str
    judges_input = False
    default_rate = 1.0

    def __init__(self, objective, *, patience: int, ema_decay: float):
        self.objective = objective
        self.patience = int(patience)
        self.ema_decay = float(ema_decay)
        self.averages = self.ema_decay > 0
        # One graph per step, unless the objective runs its own compiled pieces (tiles).
        # reduce_retracing: after a second image size the graph takes any size, so later
        # scales and images of new sizes do not trace again (ten sizes at 32-64 px:
        # 30 -> 22 CPU s; a 256 px iteration as fast as in the size's own graph). No
        # autograph: the steps are graph-safe as written (tf.cond, tf.while_loop), and
        # converting them cost about half of a first step's tracing (docs/speed.md#tests).
        self.compiled_step = (
            tf.function(self.step, reduce_retracing=True, autograph=False) if objective.graph_safe else self.step
        )

    # the optimizer's own part
    def init_core(self, x):
        raise NotImplementedError

    def update(self, core, rate, targets):
        raise NotImplementedError

    def iterate(self, core) -> tf.Tensor:
        return core.x

    # written once
    def init_state(
        self, x, targets=None, learning_rate: float | None = None, tolerance: float = 0.0, evaluations=0
    ) -> State:
        """The state before the first step, at image ``x`` [H, W, 3]. ``learning_rate``
        scales the steps (``default_rate`` when None)."""
        x = tf.convert_to_tensor(x, tf.float32)
        core = self.init_core(x)
        average = average_start(x) if self.averages else ()
        rate = tf.cast(self.default_rate if learning_rate is None else learning_rate, tf.float32)
        return State(
            core,
            average,
            (core, average) if self.judges_input else (),
            rate,
            progress_start(x, self.objective.terms, tolerance, self.patience, evaluations),
        )

    def step(self, state: State, targets) -> State:
        """One iteration: the optimizer's update, then the shared pieces (pure, graph-safe)."""
        core, ev = self.update(state.core, state.rate, targets)
        average = average_update(state.average, self.iterate(core), self.ema_decay) if self.averages else ()
        if self.judges_input:  # it evaluated state.core's iterate: a failure undoes that one too
            (core, average), rate = keep_if_finite(ev.finite, (core, average), state.last, state.rate)
            last = tf.cond(ev.finite, lambda: (state.core, state.average), lambda: state.last)
        else:  # it evaluated where it moved: a failure goes back to where it came from
            (core, average), rate = keep_if_finite(ev.finite, (core, average), (state.core, state.average), state.rate)
            last = ()
        return State(core, average, last, rate, record(state.progress, ev))

    def image(self, state: State) -> tf.Tensor:
        """The current result: the iterate, or with averaging the bias-corrected average
        (the iterate until something has been averaged). Graph-safe."""
        x = self.iterate(state.core)
        return average_value(state.average, x, self.ema_decay) if self.averages else x

    def best_image(self, state: State) -> tf.Tensor:
        """What to keep when a run stops early: the average when averaging (its loss is
        not evaluated), else the lowest-loss image evaluated."""
        return self.image(state) if self.averages else state.progress.best_x

    def result_image(self, state: State) -> tf.Tensor:
        """The run's result: `image`, or after a numerical failure `best_image`."""
        return tf.where(failed(state), self.best_image(state), self.image(state))

    def rescale_state(self, state: State, image, targets=None) -> State:
        """Warm start at ``image`` of another size (coarse-to-fine): afresh, keeping the
        tolerance and the count of evaluations."""
        p = state.progress
        return self.init_state(image, targets, tolerance=p.tolerance, evaluations=p.evaluations)

    def stop_reason(self, state: State, iteration: int) -> str | None:
        """Why a done state stopped, in words."""
        p = state.progress
        if p.stalled:
            return (
                f"converged at iteration {iteration}: the loss improved by less than "
                f"{float(p.tolerance):g} over {self.patience} iterations"
            )
        if p.converged:
            return f"converged at iteration {iteration}: {self.convergence}"
        return (
            f"numerical failure at iteration {iteration} (loss {float(p.loss)}, {int(p.rejected)} non-finite in a row)"
        )

    convergence = "the optimizer's own test"

    def state_to_arrays(self, state: State) -> dict[str, np.ndarray]:
        """The state as named arrays (a checkpoint)."""
        return {path: np.asarray(value) for path, value in flatten_with_paths(state)}

    def state_from_arrays(self, arrays: dict[str, np.ndarray], like: State) -> State:
        """The state saved by `state_to_arrays`, with the structure of ``like``.

        Raises:
            TfnstError: when the arrays are not such a state (another optimizer's, or an
                older tfnst's layout).
        """
        paths = [p for p, _ in flatten_with_paths(like)]
        missing = [p for p in paths if p not in arrays]
        if missing:
            raise TfnstError(
                f"the checkpoint does not hold a {self.name} state of this tfnst "
                f"(no {missing[0]}); start the run afresh"
            )
        return tf.nest.pack_sequence_as(like, [tf.constant(arrays[p]) for p in paths])


# ------------------------------------------------------------------ Adam
class AdamCore(NamedTuple):
    x: tf.Tensor  # the iterate (evaluated by the next update)
    m: tf.Tensor
    v: tf.Tensor
    t: tf.Tensor  # steps taken (float32)
    aux: Any  # the objective's state (a discriminator's weights), or {}


class Adam(ImageOptimizer):
    """Adam on the pixels, clipped to [0, 1] after every step.

    Hand-written on plain tensors rather than `keras.optimizers.Adam`: the moments are
    state values, not variables, so the same step serves every size and every
    concurrent request of a served graph, and the state is trivially checkpointed.

    Its update evaluates the iterate it is given, then steps: a non-finite evaluation
    sends the state back to the one this iterate came from, with its moments (and
    average), at half the rate (`keep_if_finite`). With ``ema_decay`` > 0 the image it
    returns is the iterates' bias-corrected average (crowsonkb/style-transfer-pytorch
    averages the same way).

    Args:
        objective, patience, ema_decay: as for `ImageOptimizer`.
        beta_1, beta_2, epsilon: Kingma & Ba's constants (their values; no option sets them).
    """

    name = "adam"
    judges_input = True
    default_rate = ADAM_DEFAULTS["learning_rate"]

    def __init__(self, objective, *, patience: int, ema_decay: float, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        super().__init__(objective, patience=patience, ema_decay=ema_decay)

    def init_core(self, x) -> AdamCore:
        zeros = tf.zeros_like(x)
        return AdamCore(x, zeros, zeros, tf.constant(0.0), self.objective.initial_state())

    def update(self, core: AdamCore, rate, targets):
        """Evaluate the loss at the iterate and take one Adam step (pure)."""
        total, terms, aux, g = self.objective.value_and_gradient(core.x, targets, core.aux)
        finite = _finite(total, g)
        t = core.t + 1.0
        x, m, v = adam_update(core.x, g, core.m, core.v, t, rate, self.beta_1, self.beta_2, self.epsilon)
        return AdamCore(x, m, v, t, aux), Evaluation(core.x, total, terms, finite, 1, tf.constant(False))

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

        core = state.core
        image = tf.convert_to_tensor(image, tf.float32)
        size = tf.shape(image)[:2]
        old = tf.cast(tf.reduce_prod(tf.shape(core.x)[:2]), tf.float32)
        ratio = old / tf.cast(tf.reduce_prod(size), tf.float32)
        m = resize(core.m, size, clip=False) * ratio
        v = tf.maximum(resize(core.v, size, clip=False), 0.0) * ratio**2
        fresh = super().rescale_state(state, image, targets)
        new_core = AdamCore(image, m, v, core.t, core.aux)
        return fresh._replace(
            core=new_core,
            last=(new_core, fresh.average),
            rate=state.rate,
            progress=fresh.progress._replace(rejected=state.progress.rejected),
        )


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
    return tf.cond(
        accept & (sy > CURVATURE_EPS),
        lambda: (s_pairs[1:] + (s,), y_pairs[1:] + (y,), tf.concat([rho[1:], [1.0 / sy]], 0)),
        lambda: (s_pairs, y_pairs, rho),
    )


UPHILL = 0.01  # L-BFGS: a step may raise the loss by at most this fraction (above bfloat16's rounding, 2^-8)
BACKTRACKS = 6  # L-BFGS: tries of a step halved each time, before a restart (at most 7 evaluations)


def backtrack(evaluate, placeholder, reference, tries: int):
    """A bounded backtracking: ``evaluate(k)`` for k = 0, 1, … while its loss is finite
    and above ``reference``, at most ``tries`` times. ``evaluate`` returns (point, loss,
    …), ``placeholder`` the same structure (the `tf.while_loop`'s first value, so the
    objective appears once in a graph). A non-finite loss ends it (`keep_if_finite`
    undoes that step); after ``tries`` the last evaluation stands. Pure, graph-safe.

    Returns:
        (the last evaluation, how many were made: int32).
    """

    def cond(k, ev):
        return (k == 0) | ((k < tries) & tf.math.is_finite(ev[1]) & (ev[1] > reference))

    def body(k, ev):
        return k + 1, evaluate(k)

    k, ev = tf.while_loop(cond, body, (tf.constant(0), placeholder))
    return ev, k


class LBFGSCore(NamedTuple):
    x: tf.Tensor  # the last accepted iterate
    g: tf.Tensor  # its gradient
    evaluated: tf.Tensor  # whether x has been (its gradient is known)
    aux: Any
    s: tuple  # correction pairs, oldest first
    y: tuple
    rho: tf.Tensor
    loss: tf.Tensor  # x's loss (NaN until evaluated)


class LBFGS(ImageOptimizer):
    """L-BFGS on the pixels with a fixed step: one loss evaluation per iteration.

    Gatys et al.'s own code (leongatys/PytorchNeuralStyleTransfer, ``optim.LBFGS``) and
    jcjohnson/neural-style (``optim.lbfgs``) run L-BFGS without a line search: the
    quasi-Newton step is taken as it is (a step of 1; the first, with no curvature
    yet, is a gradient step of length min(1, 1/‖g‖₁), as torch's). A line search
    (`TfpLBFGS`, tensorflow-probability's Hager–Zhang) costs more evaluations an
    iteration (docs/speed.md). Here the step is projected onto [0, 1] and the pair
    stores the step actually taken, so the curvature pairs describe the points evaluated.

    No step uphill: a step whose loss is more than `UPHILL` above the last accepted
    one is halved and evaluated again (`backtrack`: Nocedal & Wright 2006, Algorithm
    3.1, with contraction 1/2 and a relative tolerance in place of the
    sufficient-decrease term), up to `BACKTRACKS` tries; if none is low enough, the
    last try is a restart, the first step's gradient step, with the correction pairs
    dropped (as L-BFGS-B refreshes its memory when its line search fails; Byrd, Lu,
    Nocedal & Zhu 1995). Every try is counted in ``evaluations``. At a new scale the
    first step's curvature pair comes from a step of about 1e-4 a pixel, where a
    bfloat16 gradient's rounding can outweigh the change it measures: sᵀy near 0,
    the next step thousands of times too long (docs/reliability.md measures it).

    Its update proposes the next point from the last accepted iterate and evaluates it
    (the first evaluates the start itself): a non-finite evaluation keeps the last
    accepted iterate, its gradient and history, and halves the step
    (`keep_if_finite`), so the next try lies half as far along the same direction.

    Args:
        objective, patience, ema_decay: as for `ImageOptimizer`.
        history: correction pairs kept (`tfnst.config.LBFGS_HISTORY`).
    """

    name = "lbfgs"

    backtracks = BACKTRACKS

    def __init__(self, objective, *, history: int, patience: int, ema_decay: float):
        self.history = int(history)
        super().__init__(objective, patience=patience, ema_decay=ema_decay)

    def init_core(self, x) -> LBFGSCore:
        # Each empty slot is a buffer of its own (not one zero tensor shared): the pairs
        # take their memory at the first step, not over the first ``history`` ones, so
        # a run's peak is reached at once and measured by a 2-iteration run
        # (`tfnst.memory`, benchmarks.memory).
        def zeros():
            return tf.zeros_like(x)

        return LBFGSCore(
            x,
            zeros(),
            tf.constant(False),
            self.objective.initial_state(),
            tuple(zeros() for _ in range(self.history)),
            tuple(zeros() for _ in range(self.history)),
            tf.zeros([self.history]),
            tf.constant(np.float32(np.nan)),
        )

    def update(self, core: LBFGSCore, rate, targets):
        """Propose a step from the last accepted iterate and evaluate it; halve it while
        its loss is more than `UPHILL` above that iterate's, and restart from a gradient
        step when that fails (`backtrack`, see the class) (pure)."""
        direction = lbfgs_direction(core.g, core.s, core.y, core.rho)
        first = tf.minimum(1.0, 1.0 / tf.maximum(tf.reduce_sum(tf.abs(core.g)), 1e-30)) * rate
        length = tf.where(core.rho[-1] > 0, rate, first)

        def evaluate(k):  # try k: the step halved k times; the last, the first step's, along -g
            restart = k >= self.backtracks
            step = tf.where(restart, -first * core.g, tf.pow(0.5, tf.cast(k, tf.float32)) * length * direction)
            candidate = tf.where(core.evaluated, tf.clip_by_value(core.x + step, 0.0, 1.0), core.x)
            return (candidate, *self.objective.value_and_gradient(candidate, targets, core.aux))

        terms = {t: tf.constant(0.0) for t in self.objective.terms}
        placeholder = (core.x, tf.constant(np.float32(np.nan)), terms, core.aux, core.g)
        reference = tf.where(core.evaluated, (1.0 + UPHILL) * core.loss, np.float32(np.inf))
        (candidate, total, terms, aux, g), count = backtrack(evaluate, placeholder, reference, self.backtracks + 1)
        finite = _finite(total, g)
        kept = tf.where(count > self.backtracks, tf.zeros_like(core.rho), core.rho)  # a restart empties the memory
        s, y, rho = lbfgs_push(core.s, core.y, kept, candidate - core.x, g - core.g, finite & core.evaluated)
        return (
            LBFGSCore(candidate, g, tf.constant(True), aux, s, y, rho, total),
            Evaluation(candidate, total, terms, finite, count, tf.constant(False)),
        )


# ------------------------------------------------------------------ tensorflow-probability's L-BFGS
def _tfp():
    """tensorflow_probability, or a `TfnstError` naming the extra that installs it."""
    try:
        import tensorflow_probability as tfp
    except ImportError:
        raise TfnstError(TFP_MISSING) from None
    return tfp


RANGE_PENALTY = 1e3  # TfpLBFGS: weight of the squared distance outside [0, 1] (a mean over pixels)


def range_penalty(x):
    """`RANGE_PENALTY` times the mean squared distance of ``x`` from [0, 1]; 0 inside."""
    outside = x - tf.clip_by_value(x, 0.0, 1.0)
    return RANGE_PENALTY * tf.reduce_mean(tf.square(outside))


class TfpCore(NamedTuple):
    results: Any  # tfp's LBfgsOptimizerResults; its position is the image flattened
    x: tf.Tensor  # the image: the position as [H, W, 3], clipped to [0, 1]
    aux: Any  # the objective's state, constant (a stateful objective is refused)


class TfpLBFGS(ImageOptimizer):
    """tensorflow-probability's L-BFGS (``tfp.optimizer.lbfgs_minimize``) with its
    Hager–Zhang line search: several loss evaluations an iteration, each step satisfying
    the Wolfe conditions. Needs the ``tfp`` extra (``pip install 'tfnst[tfp]'``).

    One `step` is one L-BFGS iteration: ``lbfgs_minimize`` resumed from the previous
    results (``previous_optimizer_results``) with ``max_iterations`` one more than it has
    done, so callbacks see each iteration and the state (tfp's results) is checkpointed
    as any other; the first step only evaluates the start (tfp's initial state).

    The position is the image flattened: tfp treats a position's leading dimensions as
    a batch of independent problems (its norms and dot products are over the last axis),
    so an [H, W, 3] position would be H·W problems of 3 unknowns.

    Values outside [0, 1]: Adam and `LBFGS` clip each step, but clipping tfp's iterate
    between iterations would leave its stored value, gradient and curvature pairs
    describing another point. So tfp minimizes, instead of f(x), f(clip(x)) +
    `range_penalty`(x): the loss is that of the projected image (what the image is, and
    what is reported: the penalty is taken off), inside [0, 1] nothing changes, and
    outside, where f(clip(x)) is flat, the penalty's gradient pulls a pixel back to the
    box instead of leaving it where it strayed. The image is clip(x), as for the others.

    Stops on tfp's own convergence (tolerances 0: only when an iteration changed
    nothing) or when its line search found no step satisfying the Wolfe conditions
    (in float32, where the loss stops decreasing), both reported as converged; and on
    the shared stall test. A non-finite result is undone by `keep_if_finite` (rare:
    the line search itself shrinks a step whose loss is not finite); ``rate`` has no
    effect here, the line search chooses the step. The terms are reported by one more
    forward pass an iteration, at the image (not counted in ``evaluations``).

    Args:
        objective, patience, ema_decay: as for `ImageOptimizer`; a stateful objective
            (the discriminator) is refused: the line search evaluates it several times.
        history: correction pairs kept (`tfnst.config.LBFGS_HISTORY`).
    """

    name = "tfp-lbfgs"
    convergence = "tensorflow-probability's L-BFGS made no progress (its line search found no lower loss)"

    def __init__(self, objective, *, history: int, patience: int, ema_decay: float):
        self.tfp = _tfp()
        if getattr(getattr(objective, "statistic", None), "stateful", False):
            raise TfnstError(
                "the discriminator style loss trains alongside the image, one step per "
                "image step; tfp-lbfgs's line search evaluates several: choose adam"
            )
        self.history = int(history)
        super().__init__(objective, patience=patience, ema_decay=ema_decay)
        if objective.graph_safe:  # one trace for every size (each builds tfp's whole loop)
            self.compiled_step = tf.function(self.step, reduce_retracing=True, autograph=False)

    def init_core(self, x) -> TfpCore:
        from tensorflow_probability.python.optimizer.lbfgs import LBfgsOptimizerResults

        flat = tf.reshape(x, [-1])
        pairs = tf.zeros(tf.concat([[self.history], tf.shape(flat)], 0))
        no = tf.constant(False)
        results = LBfgsOptimizerResults(
            converged=no,
            failed=no,
            num_iterations=tf.constant(0),
            num_objective_evaluations=tf.constant(0),
            position=flat,
            objective_value=tf.constant(np.float32(np.nan)),
            objective_gradient=tf.zeros_like(flat),
            position_deltas=pairs,
            gradient_deltas=pairs,
        )
        return TfpCore(results, tf.clip_by_value(x, 0.0, 1.0), self.objective.initial_state())

    @staticmethod
    def _unflatten(flat, like):
        x = tf.reshape(flat, tf.shape(like))
        x.set_shape(like.shape)  # what is known of the size (a static one in a while_loop)
        return x

    def _value_and_gradients(self, core: TfpCore, targets):
        def fn(flat):
            x = self._unflatten(flat, core.x)
            inside = tf.clip_by_value(x, 0.0, 1.0)
            total, _, _, g = self.objective.value_and_gradient(inside, targets, core.aux)
            in_box = tf.cast((x >= 0.0) & (x <= 1.0), g.dtype)  # d clip(x) / dx
            with tf.GradientTape() as tape:
                tape.watch(x)
                penalty = range_penalty(x)
            return total + penalty, tf.reshape(g * in_box + tape.gradient(penalty, x), [-1])

        return fn

    def update(self, core: TfpCore, rate, targets):
        """One L-BFGS iteration of tfp, or on the first call tfp's evaluation of the start (pure)."""
        fn = self._value_and_gradients(core, targets)
        lbfgs = self.tfp.optimizer.lbfgs_minimize
        zero = {"tolerance": 0.0, "x_tolerance": 0.0, "f_relative_tolerance": 0.0}
        previous = core.results

        def start():  # what tfp's own initial state holds (lbfgs._get_initial_state), with tolerance 0
            value, gradient = fn(previous.position)
            return previous._replace(
                num_objective_evaluations=tf.constant(1), objective_value=value, objective_gradient=gradient
            )

        results = tf.cond(
            previous.num_objective_evaluations > 0,
            lambda: lbfgs(
                fn, None, previous_optimizer_results=previous, max_iterations=previous.num_iterations + 1, **zero
            ),
            start,
        )
        # tfp's loop forgets what is known of the shapes; a tf.while_loop needs them kept
        results = tf.nest.map_structure(lambda new, old: tf.ensure_shape(new, old.shape), results, previous)
        x = self._unflatten(results.position, core.x)
        image = tf.clip_by_value(x, 0.0, 1.0)
        total = results.objective_value - range_penalty(x)  # f(clip(x)): the image's loss
        finite = _finite(results.objective_value, results.objective_gradient)
        terms = self.objective(image, targets, core.aux)[1]
        ev = Evaluation(
            image,
            total,
            terms,
            finite,
            results.num_objective_evaluations - previous.num_objective_evaluations,
            results.converged | results.failed,
        )
        return TfpCore(results, image, core.aux), ev


# ------------------------------------------------------------------ choosing one
def build_optimizer(config, objective, history: int = LBFGS_HISTORY) -> ImageOptimizer:
    """The optimizer ``config`` asks for (``optimizer_name``: "auto" resolved), over
    ``objective``, with the config's settings; an L-BFGS keeps ``history`` correction
    pairs (fewer than `LBFGS_HISTORY` where memory is short: `tfnst.memory.layout`).

    The config has already refused what cannot run (the discriminator with an L-BFGS:
    `tfnst.config.StyleConfig`); this trusts it.

    Raises:
        TfnstError: for tfp-lbfgs without tensorflow-probability.
    """
    name = config.optimizer_name
    if name == "adam":
        return Adam(objective, patience=config.patience, ema_decay=config.averaging)
    if name == "lbfgs":
        return LBFGS(objective, history=history, patience=config.patience, ema_decay=config.averaging)
    if name == "tfp-lbfgs":
        return TfpLBFGS(objective, history=history, patience=config.patience, ema_decay=config.averaging)
    raise TfnstError(f"unknown optimizer {name!r}: choose lbfgs, adam or tfp-lbfgs")


# ------------------------------------------------------------------ the library's loop
def _fetch(state: State):
    """The few values the loop reads back each iteration, in one transfer."""
    p = state.progress
    return {k: getattr(p, k).numpy() for k in ("loss", "finite", "rejected", "best_loss", "done", "evaluations")}


def minimize(
    optimizer,
    image,
    targets,
    iterations: int,
    callbacks: list[Callback] = (),
    *,
    state: State | None = None,
    start_iteration: int = 0,
    learning_rate: float | None = None,
    tolerance: float = 0.0,
    checkpoint: Callable[[int, State], None] | None = None,
    checkpoint_every: int | None = None,
    scale: tuple[int, int] = (1, 1),
) -> Result:
    """Run ``optimizer`` from ``image`` (or a restored ``state``) up to ``iterations``.

    Calls the optimizer's compiled `step` once per iteration and reports each accepted
    one to the callbacks as an `IterationRecord` (a rejected, non-finite evaluation is
    undone by the step itself and not reported). Stops early when the state says done:
    `MAX_REJECTED` non-finite evaluations in a row (a failure: the best image so far
    is returned), a stall or the optimizer's own convergence. Ctrl-C raises
    `Interrupted` with the best image so far.

    Returns:
        A `Result`.
    """
    if state is None:
        x = tf.clip_by_value(tf.convert_to_tensor(image, tf.float32), 0.0, 1.0)
        state = optimizer.init_state(x, targets, learning_rate, tolerance)
    hw = tuple(int(d) for d in optimizer.image(state).shape[:2])
    start = time.perf_counter()
    iteration, reason, failure = start_iteration, None, False
    best_loss = math.inf

    def best_so_far():
        return np.clip(optimizer.best_image(state).numpy(), 0.0, 1.0)

    for c in callbacks:
        c.on_run_begin(iterations - start_iteration, hw)
    try:
        for iteration in range(start_iteration + 1, iterations + 1):
            state = optimizer.compiled_step(state, targets)
            info = _fetch(state)
            best_loss = float(info["best_loss"])
            if info["finite"]:
                record = IterationRecord(
                    iteration,
                    iterations,
                    float(info["loss"]),
                    {k: float(v) for k, v in state.progress.terms.items()},
                    hw,
                    time.perf_counter() - start,
                    optimizer.name,
                    *scale,
                )
                if callbacks:
                    current = optimizer.image(state)
                    for c in callbacks:
                        c.on_iteration_end(record, current)
                if checkpoint and checkpoint_every and iteration % checkpoint_every == 0:
                    checkpoint(iteration, state)
            else:
                log.warning(
                    "tfnst: iteration %d: the loss or its gradient is not finite (%s); step undone, step size halved",
                    iteration,
                    float(info["loss"]),
                )
            if info["done"]:
                reason = optimizer.stop_reason(state, iteration)
                failure = bool(failed(state))
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
    return Result(final, best_loss, iteration, reason, failure, state, int(evaluations(state)))
