"""The high-level API: `Stylizer` (reusable) and the one-call `stylize` / `synthesize_texture`.

A call is four steps: load the inputs (`_load`), plan the scales (`tfnst.plan.plan`),
run each scale (`_run`'s ``iterate``, handed to `tfnst.engine.run_plan`, the loop the
served graph runs too), and bring the result to full size in the content's colours
(`_full_size`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np

from tfnst import memory, tiling
from tfnst.callbacks import History, IterationRecord, as_callbacks
from tfnst.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tfnst.config import INITS, LBFGS_HISTORY, StyleConfig, check_request
from tfnst.engine import Engine, Inputs, Resume, run_plan
from tfnst.errors import TfnstError
from tfnst.features import VGG19
from tfnst.image_io import to_array
from tfnst.losses import laplacian_min_side
from tfnst.objective import feature_layers
from tfnst.optimizers import Interrupted, failed, minimize
from tfnst.plan import plan
from tfnst.resize import fit_size, resize
from tfnst.vgg_layers import MIN_SIDE

log = logging.getLogger(__name__)


def _parse_hw(size, name="size") -> tuple[int, int]:
    """A texture's size: an int (square) or (width, height), as a user writes sizes;
    returns (height, width)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        w = h = int(size)
    else:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise TfnstError(f"{name} must be an int or (width, height), received {size!r}") from None
    if min(w, h) < MIN_SIDE:
        raise TfnstError(
            f"{name} must be at least {MIN_SIDE}x{MIN_SIDE} pixels (VGG19 pools 4 times), received {w}x{h}"
        )
    return h, w


@dataclass
class StyleResult:
    """What a stylization returns (`Stylizer.run`).

    Attributes:
        image: float32 [H, W, 3] in [0, 1] at full size, in the content's colours.
        stop_reason: why the run ended before its iterations (converged, a numerical
            failure, a callback's stop), or None.
        failed: it stopped on a numerical failure (``image`` is the best so far).
        history: one `IterationRecord` per accepted iteration, every scale.
        state: the optimizer's final state (of the last scale).
    """

    image: np.ndarray
    stop_reason: str | None = None
    failed: bool = False
    history: list[IterationRecord] = field(default_factory=list)
    state: object = None


class Stylizer:
    """Builds the VGG19 feature extractor and compiled steps once, for many stylizations.

    >>> stylizer = tfnst.Stylizer(style_weight=20.0)
    >>> out = stylizer.stylize("photo.jpg", "painting.jpg", iterations=200)

    Args:
        config: a `StyleConfig`; ``options`` override its fields.

    Options are those of `StyleConfig`. Those that do not change the network (sizes,
    weights, iterations, init, seed, optimizer settings) may be passed to each call; the
    network-defining ones (`NETWORK_OPTIONS`) are fixed at construction.

    Raises:
        TfnstError: for bad options.
    """

    NETWORK_OPTIONS = (
        "content_layers",
        "style_layers",
        "pooling",
        "vgg_weights",
        "style_statistic",
        "style_layer_weights",
        "hist_layers",
        "lap_pool",
        "normalize_vgg",
        "precision",
        "devices",
    )

    def __init__(self, config: StyleConfig | None = None, **options):
        self.config = (config or StyleConfig()).replace(**options)
        # With several devices, a tiled run deals its tiles to their replicas (`tfnst.tiling.Tiled`).
        self.strategy = tiling.strategy_for(self.config.devices)
        self._engines: dict[tuple, Engine] = {}

    @functools.cached_property
    def features(self) -> VGG19:
        """The VGG19 feature extractor, built (and its weights read, or fetched once) at the
        first call, after that call's inputs are read and checked: bad input is refused
        before anything is fetched."""
        cfg = self.config
        # Every layer any call may read: content and histogram terms can be turned on per call.
        layers = tuple(dict.fromkeys(feature_layers(cfg) + cfg.content_layers + cfg.hist_layers))
        # VGG19's weights are made in the strategy's scope: a copy on each device.
        with self.strategy.scope() if self.strategy else contextlib.nullcontext():
            return VGG19(
                layers,
                pooling=cfg.pooling,
                vgg_weights=cfg.vgg_weights,
                precision=cfg.precision,
                normalize=cfg.normalize_vgg,
            )

    # -------------------------------------------------------------- public
    def stylize(self, content, style, **kwargs) -> np.ndarray:
        """Content image restyled: `run`'s image (float32 [H, W, 3] in [0, 1])."""
        return self.run(content, style, **kwargs).image

    def synthesize_texture(self, style, size=256, **kwargs) -> np.ndarray:
        """A new texture of ``size`` (int or (width, height)) from noise, matching the
        style (or the blend of a list of styles); arguments as for `run`.

        Raises:
            TfnstError: for bad input, or options that need a content image.
        """
        return self.run(None, style, texture_size=size, **kwargs).image

    def run(
        self,
        content,
        style,
        *,
        masks=None,
        style_masks=None,
        texture_size=None,
        callbacks=None,
        checkpoint=None,
        checkpoint_every=None,
        resume=False,
        temporal=None,
        **options,
    ) -> StyleResult:
        """Restyle ``content`` after ``style``, or with ``content=None`` synthesize a texture
        of ``texture_size``.

        Args:
            content: a path, PIL image, numpy array or tensor; None for a texture.
            style: the same, or a list of them, blended with ``style_blend``.
            masks: spatial control (Gatys et al., CVPR 2017): one grayscale mask per style
                image, any size (resized to the content): where each style applies; its
                statistics are matched within its region (guided Gram matrices).
            style_masks: with ``masks``, one mask per style image: which part of it to take.
            texture_size: a texture's size, int or (width, height) (256 when None).
            callbacks: `tfnst.Callback` objects or functions of an `IterationRecord`.
            checkpoint: a path: the optimizer state is saved there at the end of each
                scale, every ``checkpoint_every`` iterations when given, and
                ``resume=True`` continues from it (same inputs and options; ``iterations``
                may grow) to the result an uninterrupted run would give.
            temporal: a video frame's pull towards earlier results (Ruder et al. 2016,
                `tfnst.terms.Temporal`): ``(warped, reliability)``, the earlier stylized
                frames warped into this one ([K, H, W, 3], closest first) and their
                per-pixel reliability ([K, H, W]) at the result's size (resized to it
                otherwise), e.g. `tfnst.temporal.as_term_target`; weighed by
                ``temporal_weight``. `tfnst.video` builds it for each frame.
            **options: `StyleConfig` fields for this call; ``init`` may also be an image
                (an array: a video frame starts from the previous result warped into it).

        Returns:
            A `StyleResult`.

        Raises:
            TfnstError: for bad input or options.
            tfnst.optimizers.Interrupted: on Ctrl-C, carrying the best image so far.
        """
        has_content = content is not None
        init_image = None
        if "init" in options and not isinstance(options["init"], str):  # an image, not a config value
            init_image = to_array(options.pop("init"))
        cfg = self._call_config(options)
        if (checkpoint_every or resume) and not checkpoint:
            raise TfnstError("checkpoint_every and resume need a checkpoint path")
        if temporal is not None and not has_content:
            raise TfnstError("a temporal target ties a video frame to earlier results; it needs a content frame")
        inputs, hw = self._load(cfg, content, style, masks, style_masks, texture_size, temporal, init_image)
        return self._run(cfg, inputs, hw, as_callbacks(callbacks), checkpoint, checkpoint_every, resume)

    # -------------------------------------------------------------- steps of a call
    def _call_config(self, options) -> StyleConfig:
        fixed = [k for k in options if k in self.NETWORK_OPTIONS and options[k] != getattr(self.config, k)]
        if fixed:
            raise TfnstError(f"{', '.join(fixed)} define the network; make a new Stylizer to change them")
        return self.config.replace(**options)

    def _load(self, cfg: StyleConfig, content, style, masks, style_masks, texture_size, temporal=None, init_image=None):
        """The call's images, read and checked once, at full size: (`Inputs`, (H, W))."""
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        as_list = lambda group: (
            None
            if group is None
            # noqa: E731
            else (list(group) if isinstance(group, (list, tuple)) else [group])
        )
        masks, style_masks = as_list(masks), as_list(style_masks)
        check_request(
            cfg,
            has_content=content is not None,
            styles=len(styles),
            masks=None if masks is None else len(masks),
            style_masks=None if style_masks is None else len(style_masks),
        )
        if content is not None:
            content = to_array(content, max_pixels=cfg.max_pixels)
            hw = fit_size(content.shape[:2], cfg.size)
        else:
            hw = _parse_hw(256 if texture_size is None else texture_size)
        self._check(cfg, hw, content is not None)  # before anything of that size is allocated
        if content is not None:
            content = resize(content, hw).numpy()
        styles = [to_array(s, max_pixels=cfg.max_pixels) for s in styles]
        masks, style_masks = (
            None if group is None else [self._mask(m, i, name, cfg) for i, m in enumerate(group, 1)]
            for name, group in (("mask", masks), ("style mask", style_masks))
        )
        init = cfg.init or ("content" if content is not None else "noise")  # unset: what the request has
        if init not in INITS:
            init = to_array(init, max_pixels=cfg.max_pixels)
        if init_image is not None:
            init = init_image
        seed = cfg.seed if cfg.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        if temporal is not None:
            from tfnst.terms import Temporal

            temporal = Temporal.target(*temporal)
            temporal = temporal._replace(
                warped=resize(temporal.warped, hw), reliability=resize(temporal.reliability[..., None], hw)[..., 0]
            )
        engine = self.engine(
            cfg, content is not None, 0 if masks is None else len(masks), temporal=temporal is not None
        )
        return engine.inputs(
            content, styles, masks=masks, style_masks=style_masks, init=init, seed=seed, temporal=temporal
        ), hw

    @staticmethod
    def _mask(mask, index: int, name: str, cfg: StyleConfig) -> np.ndarray:
        """A mask as float32 [H, W] in [0, 1] (the mean of its channels)."""
        array = to_array(mask, max_pixels=cfg.max_pixels).mean(axis=-1)
        if array.max() <= 0:
            raise TfnstError(f"{name} {index} is all black: style {index} would apply nowhere")
        return array

    def _run(
        self, cfg: StyleConfig, inputs: Inputs, hw, callbacks, checkpoint, checkpoint_every, resume
    ) -> StyleResult:
        has_content = inputs.content is not None
        regions = 0 if inputs.masks is None else len(inputs.masks)
        temporal = inputs.temporal is not None
        history = History()
        callbacks = [history, *callbacks]
        meta = _run_identity(cfg, inputs, hw) if checkpoint else None
        scales = plan(cfg, hw)
        results = []

        def engine_at(scale):
            tile, history = self._layout(cfg, scale.hw, has_content)
            if tile:
                log.info("tfnst: scale %d, %dx%d, in tiles of %d px", scale.index + 1, scale.hw[1], scale.hw[0], tile)
            if history != LBFGS_HISTORY and cfg.optimizer_name != "adam":
                log.info("tfnst: scale %d: L-BFGS keeps %d correction pairs, to fit", scale.index + 1, history)
            return self.engine(cfg, has_content, regions, tile, temporal, history)

        resumed = None
        if resume:
            saved = self._resumable(checkpoint, meta, cfg.optimizer_name)
            resumed = Resume(
                saved.scale,
                lambda engine, targets: engine.optimizer.state_from_arrays(
                    saved.state, engine.start(np.zeros((*scales[saved.scale].hw, 3), np.float32), targets)
                ),
            )
            log.info("tfnst: resuming from %s at scale %d, iteration %d", checkpoint, saved.scale + 1, saved.iteration)

        def iterate(engine, scale, state, targets, count):
            optimizer = engine.optimizer
            start = saved.iteration if resumed is not None and scale.index == resumed.index else 0

            def save(iteration, current):
                save_checkpoint(
                    checkpoint,
                    Checkpoint(optimizer.name, iteration, optimizer.state_to_arrays(current), meta, scale.index),
                )

            result = minimize(
                optimizer,
                None,
                targets,
                int(count),
                callbacks,
                state=state,
                start_iteration=start,
                checkpoint=save if checkpoint else None,
                checkpoint_every=checkpoint_every,
                scale=(scale.index + 1, len(scales)),
            )
            if checkpoint:
                save(result.iterations, result.state)
            # Keep the record, not the state: a coarser scale's state (an L-BFGS's pairs,
            # the image buffers) would stay alive through every finer scale's run.
            results.append(dataclasses.replace(result, state=None))
            return result.state

        try:
            engine, state = run_plan(scales, engine_at, inputs, iterate, resume=resumed)
        except Interrupted as e:
            e.image = self._full_size(self.engine(cfg, has_content, regions, temporal=temporal), e.image, inputs, hw)
            raise
        stopped = next((r for r in results if r.failed), results[-1] if results else None)
        image = self._full_size(engine, engine.optimizer.result_image(state).numpy(), inputs, hw)
        return StyleResult(
            image,
            stopped.stop_reason if stopped else None,
            bool(failed(state)) or any(r.failed for r in results),
            history.records,
            state,
        )

    @staticmethod
    def _full_size(engine: Engine, image, inputs: Inputs, hw) -> np.ndarray:
        """The result as the caller asked for it: at full size (a run stopped at a coarser
        scale, by Ctrl-C, is upsampled as the next scale would start) and in the
        content's colours (luminance-only transfer)."""
        if tuple(np.shape(image)[:2]) != tuple(hw):
            image = engine.warm_start(image, inputs.content, hw)
        return np.clip(np.asarray(engine.restore_colors(image, inputs.original), np.float32), 0.0, 1.0)

    # -------------------------------------------------------------- internals
    def engine(
        self,
        cfg: StyleConfig,
        has_content: bool,
        regions: int = 0,
        tile: int | None = None,
        temporal: bool = False,
        history: int = LBFGS_HISTORY,
    ) -> Engine:
        """The engine for ``cfg``, cached per what shapes its graph (active terms,
        optimizer and its L-BFGS pairs, regions, tiles, a temporal target), so that a
        repeat call reuses its compiled steps."""
        temporal = temporal and cfg.temporal_weight > 0
        key = (
            has_content,
            has_content and cfg.content_weight > 0,  # the terms that are built (objective.build_terms)
            cfg.hist_weight > 0,
            has_content and cfg.lap_weight > 0,
            cfg.optimizer_name,
            cfg.averaging,
            cfg.patience,
            regions,
            tile,
            temporal,
            history,
        )
        if key not in self._engines:
            self._engines[key] = Engine(
                cfg,
                self.features,
                has_content=has_content,
                regions=regions,
                tile=tile,
                temporal=temporal,
                strategy=self.strategy,
                history=history,
            )
        engine = self._engines[key]
        engine.config = cfg  # per-call options (weights, colour, init, scales) that shape no graph
        return engine

    def _layout(self, cfg: StyleConfig, hw, has_content: bool) -> memory.Layout:
        """The tile size and L-BFGS pairs of a run of size ``hw`` (`tfnst.memory.layout`)
        within the budget: ``cfg.max_memory``, else what is available (with ``cfg.tile``
        the tile is that one, and must fit an explicit budget).

        Raises:
            TfnstError: when the run does not fit ``cfg.max_memory``.
        """
        budget = cfg.max_memory
        if budget is None:
            available = memory.available_bytes()
            budget = None if available is None else available + memory.resident_bytes()
            if cfg.tile is not None and budget is not None:
                # what is available is checked by _check, which says so; only the pairs adapt
                history = memory.history_for(hw, cfg, has_content, budget, cfg.tile)
                return memory.Layout(cfg.tile, history)
        return memory.layout(hw, cfg, has_content, budget, cfg.tile)

    def _check(self, cfg: StyleConfig, hw, has_content: bool) -> None:
        """Refuse a run that cannot work at ``hw``: too small for VGG19, Laplacian pools
        too large, or more memory than the machine has (by the estimate, before anything
        of that size is allocated)."""
        if min(hw) < MIN_SIDE:
            raise TfnstError(
                f"the image is {hw[1]}x{hw[0]} at this size; VGG19 needs at least "
                f"{MIN_SIDE} pixels per side (raise size, or crop extreme aspect ratios)"
            )
        if has_content and cfg.lap_weight > 0:
            small = [p for p in cfg.lap_pool if min(hw) < laplacian_min_side(p)]
            if small:
                raise TfnstError(
                    f"lap_pool {small[0]} leaves no Laplacian at {hw[1]}x{hw[0]} (it needs "
                    f"{laplacian_min_side(small[0])} pixels a side); use smaller pools"
                )
        tile, history = self._layout(cfg, hw, has_content)
        need = memory.additional_bytes(hw, cfg, has_content, tile, history)
        have = memory.available_bytes()
        if have is not None and need > have:
            raise TfnstError(
                f"a {hw[1]}x{hw[0]} run needs about {memory.gigabytes(need)} of memory"
                f"{f' in tiles of {tile} px' if tile else ''} and {memory.gigabytes(have)} is available; "
                "use a smaller size or --max-memory"
            )

    @staticmethod
    def _resumable(checkpoint, meta, optimizer_name) -> Checkpoint:
        saved = load_checkpoint(checkpoint)
        if saved.meta != meta or saved.optimizer != optimizer_name:
            raise TfnstError(
                f"{checkpoint} is from a run with other inputs or options; "
                "resume needs the same ones (only iterations may change)"
            )
        return saved


def _run_identity(cfg: StyleConfig, inputs: Inputs, hw) -> dict:
    """What a checkpoint must match to be resumed: every option but the iteration count
    (a seed only if given: the initial image it made is in the saved state), and
    digests of the (prepared) input images at full size."""
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "iterations"}
    digest = hashlib.sha256()
    digest.update(repr(tuple(hw)).encode())
    for image in (inputs.content, *inputs.styles, *(inputs.masks or []), *(inputs.style_masks or [])):
        if image is not None:
            digest.update(np.ascontiguousarray(np.asarray(image), np.float32).tobytes())
    return {"options": _jsonable(options), "inputs": digest.hexdigest()}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def stylize(content, style, *, callbacks=None, **options) -> np.ndarray:
    """Restyle ``content`` after ``style`` (Gatys et al. 2016); see `StyleConfig` for options.

    Returns:
        A float32 [H, W, 3] array in [0, 1]. For many calls, use a `Stylizer`.
    """
    return Stylizer(**options).stylize(content, style, callbacks=callbacks)


def synthesize_texture(style, size=256, *, callbacks=None, **options) -> np.ndarray:
    """A texture of ``size`` (int or (width, height)) synthesized from noise after ``style``."""
    return Stylizer(**options).synthesize_texture(style, size, callbacks=callbacks)
