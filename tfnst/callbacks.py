"""Per-iteration records and the callbacks that receive them (progress, history, snapshots)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from tfnst.errors import TfnstError
from tfnst.image_io import save_image


@dataclass(frozen=True)
class IterationRecord:
    """What one optimizer iteration did. ``loss`` is the total at the iterate before
    the step (Adam) or after it (L-BFGS: the image it hands to callbacks); ``terms``
    holds the unweighted loss terms of that evaluation (``content``, ``style``,
    ``tv``, …), or None from an optimizer that did not compute them."""

    iteration: int  # 1-based
    iterations: int  # planned in this run
    loss: float
    terms: Mapping[str, float] | None
    hw: tuple[int, int]  # (height, width) being optimized
    elapsed: float  # seconds since the run began
    optimizer: str
    scale: int = 1  # which coarse-to-fine scale (1-based)
    scales: int = 1  # how many


class Callback:
    """Base class: override what you need. Plain functions ``f(record)`` work too.

    Setting ``self.stop_requested = True`` ends the run after the current iteration
    (as Keras' ``stop_training`` does)."""

    stop_requested = False

    def on_run_begin(self, iterations: int, hw: tuple[int, int]) -> None:
        pass

    def on_iteration_end(self, record: IterationRecord, image: tf.Tensor) -> None:
        """``image`` is the current [H, W, 3] iterate, clipped to [0, 1] on output."""

    def on_run_end(self) -> None:
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[IterationRecord], object]):
        self.fn = fn

    def on_iteration_end(self, record, image):
        self.fn(record)


def as_callbacks(callbacks) -> list[Callback]:
    """``callbacks`` (None, one, or a list of `Callback`s and functions) as a list.

    Raises:
        TfnstError: for a Keras callback: it expects a Keras model being fitted, and
            the optimizer here fits an image (Keras callbacks do work with
            `tfnst.networks`, which trains with ``model.fit``).
    """
    import keras

    if callbacks is None:
        return []
    if isinstance(callbacks, (Callback, keras.callbacks.Callback)) or callable(callbacks):
        callbacks = [callbacks]
    for c in callbacks:
        if isinstance(c, keras.callbacks.Callback):
            raise TfnstError(
                f"{type(c).__name__} is a Keras callback: it needs a Keras model in model.fit, and "
                "this loop optimizes an image. Pass a tfnst.Callback or a function of an "
                "IterationRecord (Keras callbacks work with tfnst.networks training)"
            )
        if not (isinstance(c, Callback) or callable(c)):
            raise TfnstError(f"callbacks must be tfnst.Callback objects or functions, not {c!r}")
    return [c if isinstance(c, Callback) else _FunctionCallback(c) for c in callbacks]


class History(Callback):
    """Keeps every record, e.g. to plot loss against time."""

    def __init__(self):
        self.records: list[IterationRecord] = []

    def on_iteration_end(self, record, image):
        self.records.append(record)


class ProgressBar(Callback):
    """A tqdm bar with the loss terms, it/s and ETA (to stderr)."""

    def __init__(self, description: str = "tfnst", file=None):
        self.description, self.file, self.bar = description, file or sys.stderr, None
        self.terms: Mapping[str, float] = {}

    def on_run_begin(self, iterations, hw):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=iterations,
            desc=f"{self.description} {hw[1]}x{hw[0]}",
            file=self.file,
            unit="it",
            dynamic_ncols=True,
        )

    def on_iteration_end(self, record, image):
        self.terms = record.terms or self.terms
        shown = {"loss": f"{record.loss:.4g}", **{k: f"{v:.3g}" for k, v in self.terms.items()}}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def on_run_end(self):
        if self.bar is not None:
            self.bar.close()


class TimeLimit(Callback):
    """Stops the run once ``seconds`` of wall time have passed since it began (across
    all coarse-to-fine scales)."""

    def __init__(self, seconds: float):
        self.seconds, self.start = float(seconds), None

    def on_run_begin(self, iterations, hw):
        if self.start is None:
            self.start = time.perf_counter()

    def on_iteration_end(self, record, image):
        self.stop_requested = time.perf_counter() - self.start >= self.seconds


class SaveEvery(Callback):
    """Saves the current image every ``every`` iterations to ``path`` (atomically).

    ``path`` may contain ``{iteration}`` and ``{scale}`` for one file per snapshot;
    `snapshot_pattern` makes such a path from an output path.
    """

    def __init__(self, path, every: int):
        self.path, self.every = str(path), int(every)

    def on_iteration_end(self, record, image):
        if record.iteration % self.every == 0:
            save_image(image, Path(self.path.format(iteration=record.iteration, scale=record.scale)))


def snapshot_pattern(output: Path, scales: int = 1) -> str:
    """``OUT_STEM_<iteration>.ext``, or with several coarse-to-fine scales (whose
    iterations each start at 1) ``OUT_STEM_s<scale>_<iteration>.ext``."""
    middle = "_s{scale}_{iteration}" if scales > 1 else "_{iteration}"
    return str(output.with_name(f"{output.stem}{middle}{output.suffix}"))
