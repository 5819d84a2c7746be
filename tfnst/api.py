"""The high-level API: `Stylizer` (reusable) and the one-call `stylize` / `synthesize_texture`."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np
import tensorflow as tf

from tfnst import color, memory
from tfnst.callbacks import as_callbacks
from tfnst.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tfnst.config import StyleConfig
from tfnst.errors import TfnstError
from tfnst.features import MIN_SIDE
from tfnst.image_io import fit_size, resize, to_array
from tfnst.objective import StyleTransferObjective, blend_weights
from tfnst.optimizers import LBFGS, Adam, minimize

log = logging.getLogger(__name__)


def _parse_size(size, name="size") -> tuple[int, int]:
    """An int (square) or (width, height), as a user writes sizes; returns (H, W)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        w = h = int(size)
    else:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise TfnstError(f"{name} must be an int or (width, height), not {size!r}") from None
    if min(w, h) < MIN_SIDE:
        raise TfnstError(f"{name} must be at least {MIN_SIDE}x{MIN_SIDE} pixels (VGG19 pools 4 times), "
                         f"not {w}x{h}")
    return h, w


class Stylizer:
    """Builds the VGG19 feature model and compiled steps once, for many stylizations.

    >>> stylizer = tfnst.Stylizer(style_weight=20.0)
    >>> out = stylizer.stylize("photo.jpg", "painting.jpg", iterations=200)

    Options are those of `StyleConfig`. Per-call options that do not change the network
    (sizes, weights, iterations, init, seed, optimizer settings) may be passed to each
    call; the network-defining ones (layers, pooling, weights file, style statistic,
    histogram layers, Laplacian pools) are fixed at construction.
    """

    _NETWORK_OPTIONS = ("content_layers", "style_layers", "pooling", "weights", "style_statistic",
                        "style_layer_weights", "hist_layers", "lap_pool", "normalize_vgg", "precision")

    def __init__(self, config: StyleConfig | None = None, **options):
        self.config = (config or StyleConfig()).replace(**options)
        self._objectives: dict[tuple, StyleTransferObjective] = {}
        self._optimizers: dict = {}
        self.last_result = None  # the `optimizers.Result` of the latest call (last scale)

    # -------------------------------------------------------------- public
    def stylize(self, content, style, *, callbacks=None, checkpoint=None, checkpoint_every=None,
                resume=False, **options) -> np.ndarray:
        """Content image restyled: float32 [H, W, 3] in [0, 1], longest side ``size``.

        ``content`` and ``style`` may be paths, PIL images, numpy arrays or tensors;
        ``style`` may be a list of them, blended with ``style_blend``.
        With ``checkpoint=PATH`` and ``checkpoint_every=N`` the optimizer state is saved
        every N iterations; ``resume=True`` continues from that file (same inputs and
        options; ``iterations`` may grow) to the result an uninterrupted run would give.
        Ctrl-C raises `tfnst.optimizers.Interrupted` carrying the best image so far.
        """
        cfg = self._call_config(options)
        content = to_array(content, max_pixels=cfg.max_pixels)
        content = resize(content, fit_size(content.shape[:2], cfg.size))
        return self._run(cfg, content, content.shape[:2], self._load_styles(style, cfg), callbacks,
                         checkpoint, checkpoint_every, resume)

    def synthesize_texture(self, style, size=256, *, callbacks=None, checkpoint=None,
                           checkpoint_every=None, resume=False, **options) -> np.ndarray:
        """A new texture of ``size`` (int or (width, height)) from noise, matching the
        style (or the blend of a list of styles)."""
        cfg = self._call_config({"init": "noise", **options, "content_weight": 0.0})
        if cfg.preserve_color:
            raise TfnstError("preserve_color needs a content image; textures have none")
        hw = _parse_size(size)
        return self._run(cfg, None, hw, self._load_styles(style, cfg), callbacks, checkpoint,
                         checkpoint_every, resume)

    # -------------------------------------------------------------- internals
    def _call_config(self, options) -> StyleConfig:
        fixed = [k for k in options if k in self._NETWORK_OPTIONS
                 and options[k] != getattr(self.config, k)]
        if fixed:
            raise TfnstError(f"{', '.join(fixed)} define the network; make a new Stylizer to change them")
        return self.config.replace(**options)

    def _objective(self, cfg: StyleConfig, has_content: bool) -> StyleTransferObjective:
        """One objective per set of active terms (they shape the graph); weights are set per call."""
        key = (has_content, cfg.content_weight > 0, cfg.hist_weight > 0, cfg.lap_weight > 0)
        if key not in self._objectives:
            self._objectives[key] = StyleTransferObjective(cfg, has_content=has_content)
        objective = self._objectives[key]
        objective.set_loss_weights(cfg)
        return objective

    def _optimizer(self, cfg: StyleConfig, objective: StyleTransferObjective):
        """Compiled optimizers, cached per settings so that a repeat call does not retrace."""
        key = (cfg.optimizer, cfg.learning_rate, cfg.ema_decay, cfg.lbfgs_report_every, id(objective))
        if key not in self._optimizers:
            if cfg.optimizer == "adam":
                self._optimizers[key] = Adam(objective, learning_rate=cfg.learning_rate,
                                             ema_decay=cfg.ema_decay)
            else:
                self._optimizers[key] = LBFGS(objective, report_every=cfg.lbfgs_report_every)
        return self._optimizers[key]

    def _load_styles(self, style, cfg: StyleConfig) -> list[np.ndarray]:
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise TfnstError("at least one style image is needed")
        blend_weights(len(styles), cfg.style_blend)  # the count must match, checked early
        return [to_array(s, max_pixels=cfg.max_pixels) for s in styles]

    @staticmethod
    def _fit_style(style: np.ndarray, cfg: StyleConfig, hw) -> np.ndarray:
        # Gatys et al. resize the style image to the content's size; style_scale
        # changes the size of the brush strokes relative to the content.
        longest = max(MIN_SIDE, round(cfg.style_scale * max(hw)))
        style = resize(style, fit_size(style.shape[:2], longest))
        if min(style.shape[:2]) < MIN_SIDE:
            raise TfnstError(f"the style image is {style.shape[1]}x{style.shape[0]} at this size; "
                             f"it needs at least {MIN_SIDE} pixels per side (raise style_scale)")
        return style

    def _initial_image(self, cfg: StyleConfig, content, style, hw) -> np.ndarray:
        if cfg.init == "content":
            if content is None:
                raise TfnstError("init='content' needs a content image")
            return resize(content, hw)
        if cfg.init == "noise":
            rng = np.random.default_rng(cfg.seed)
            return rng.uniform(0.0, 1.0, size=(*hw, 3)).astype(np.float32)
        if cfg.init == "style":
            return resize(style, hw)
        image = resize(to_array(cfg.init, max_pixels=cfg.max_pixels), hw)
        return color.luminance(image) if cfg.preserve_color == "luminance" else image

    def _check_resources(self, cfg: StyleConfig, hw) -> None:
        if min(hw) < MIN_SIDE:
            raise TfnstError(f"the image is {hw[1]}x{hw[0]} at this size; VGG19 needs at least "
                             f"{MIN_SIDE} pixels per side (raise size, or crop extreme aspect ratios)")
        layers = cfg.style_layers + (cfg.content_layers if cfg.content_weight > 0 else ())
        need, have = memory.estimate_bytes(hw, layers), memory.available_bytes()
        if have is not None and need > have:
            raise TfnstError(
                f"a {hw[1]}x{hw[0]} run needs about {memory.gigabytes(need)} of memory and "
                f"{memory.gigabytes(have)} is available; use a smaller size (memory grows with "
                "the pixel count), or coarser style layers")

    def _run(self, cfg: StyleConfig, content, hw, styles, callbacks, checkpoint=None,
             checkpoint_every=None, resume=False) -> np.ndarray:
        self._check_resources(cfg, hw)
        if (checkpoint_every or resume) and not checkpoint:
            raise TfnstError("checkpoint_every and resume need a checkpoint path")
        if cfg.seed is not None:
            tf.random.set_seed(cfg.seed)
        original_content = content
        # Colour preservation (Gatys et al. 2016b): recolour the styles to the content's
        # palette, or transfer luminance only and restore the content's colours after.
        if cfg.preserve_color == "histogram":
            styles = [color.match_colors(s, content) for s in styles]
        elif cfg.preserve_color == "luminance":
            styles = [color.match_luminance(s, content) for s in styles]
            content = color.luminance(content)
        callbacks = as_callbacks(callbacks)
        # A checkpoint names its scale; the run it belongs to is known by its inputs at
        # full size, so single- and multi-scale runs check their checkpoints alike.
        meta = _run_identity(cfg, content, [self._fit_style(s, cfg, hw) for s in styles]) \
            if checkpoint else None
        saved = self._resumable(checkpoint, meta, cfg.optimizer) if resume else None
        image = state = None
        for scale, size in enumerate(scale_sizes(hw, cfg.scales, cfg.scale_factor)):
            if saved and scale < saved.scale:
                continue  # finished before the checkpoint was written
            content_k = None if content is None else resize(content, size)
            styles_k = [self._fit_style(s, cfg, size) for s in styles]
            objective = self._objective(cfg, has_content=content is not None)
            optimizer = self._optimizer(cfg, objective)
            targets = objective.targets(content_k, styles_k, cfg.style_blend)
            start = 0
            if saved and scale == saved.scale:
                state, start = optimizer.state_from_arrays(saved.state), saved.iteration
                log.info("tfnst: resuming from %s at scale %d, iteration %d", checkpoint, scale + 1, start)
            elif image is None:
                image = self._initial_image(cfg, content_k, styles_k[0], size)
            else:  # coarse-to-fine: the previous scale's result, upsampled, is the init
                image = resize(image, size)
                state = optimizer.rescale_state(state, image) if hasattr(optimizer, "rescale_state") \
                    else None

            def save(iteration, current, scale=scale, optimizer=optimizer):
                save_checkpoint(checkpoint, Checkpoint(optimizer.name, iteration,
                                                       optimizer.state_to_arrays(current), meta, scale))

            result = minimize(optimizer, image, targets, cfg.iterations, callbacks, state=state,
                              start_iteration=start, checkpoint=save if checkpoint else None,
                              checkpoint_every=checkpoint_every)
            image, state = result.image, result.state
        self.last_result = result
        if cfg.preserve_color == "luminance":
            image = color.with_content_colors(image, original_content)
        return image

    @staticmethod
    def _resumable(checkpoint, meta, optimizer_name) -> Checkpoint:
        saved = load_checkpoint(checkpoint)
        if saved.meta != meta or saved.optimizer != optimizer_name:
            raise TfnstError(f"{checkpoint} is from a run with other inputs or options; "
                             "resume needs the same ones (only iterations may change)")
        return saved


def scale_sizes(hw, scales: int, factor: float) -> list[tuple[int, int]]:
    """(H, W) of each coarse-to-fine scale, smallest first, the last being ``hw``;
    each ``factor`` times the one before (never under `MIN_SIDE` pixels a side)."""
    sizes = []
    for k in range(scales - 1, -1, -1):
        h, w = (max(MIN_SIDE, round(d / factor**k)) for d in hw)
        if not sizes or (h, w) != sizes[-1]:
            sizes.append((h, w))
    return sizes


def _run_identity(cfg: StyleConfig, content, styles) -> dict:
    """What a checkpoint must match to be resumed: every option but the iteration count,
    and digests of the (resized) input images."""
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "iterations"}
    digest = hashlib.sha256()
    for image in (content, *styles):
        if image is not None:
            digest.update(np.ascontiguousarray(image, np.float32).tobytes())
    return {"options": _jsonable(options), "inputs": digest.hexdigest()}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def stylize(content, style, *, callbacks=None, **options) -> np.ndarray:
    """Restyle ``content`` after ``style`` (Gatys et al. 2016); see `StyleConfig` for options.

    Returns a float32 [H, W, 3] array in [0, 1]. For many calls, use a `Stylizer`.
    """
    return Stylizer(**options).stylize(content, style, callbacks=callbacks)


def synthesize_texture(style, size=256, *, callbacks=None, **options) -> np.ndarray:
    """A texture of ``size`` (int or (width, height)) synthesized from noise after ``style``."""
    return Stylizer(**options).synthesize_texture(style, size, callbacks=callbacks)
