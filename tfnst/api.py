"""The high-level API: `Stylizer` (reusable) and the one-call `stylize` / `synthesize_texture`."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np

from tfnst import memory
from tfnst.callbacks import as_callbacks
from tfnst.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tfnst.config import StyleConfig
from tfnst.engine import Engine, scale_sizes
from tfnst.errors import TfnstError
from tfnst.features import VGG19
from tfnst.image_io import to_array
from tfnst.losses import laplacian_min_side
from tfnst.objective import blend_weights, feature_layers
from tfnst.optimizers import Interrupted, minimize
from tfnst.resize import fit_size, resize
from tfnst.vgg_layers import MIN_SIDE

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
    """Builds the VGG19 feature extractor and compiled steps once, for many stylizations.

    >>> stylizer = tfnst.Stylizer(style_weight=20.0)
    >>> out = stylizer.stylize("photo.jpg", "painting.jpg", iterations=200)

    Args:
        config: a `StyleConfig`; ``options`` override its fields.

    Options are those of `StyleConfig`. Per-call options that do not change the network
    (sizes, weights, iterations, init, seed, optimizer settings) may be passed to each
    call; the network-defining ones (`NETWORK_OPTIONS`) are fixed at construction.

    Raises:
        TfnstError: for bad options.
    """

    NETWORK_OPTIONS = ("content_layers", "style_layers", "pooling", "weights", "style_statistic",
                       "style_layer_weights", "hist_layers", "lap_pool", "normalize_vgg", "precision")

    def __init__(self, config: StyleConfig | None = None, **options):
        self.config = (config or StyleConfig()).replace(**options)
        cfg = self.config
        # Every layer any call may read: content and histogram terms can be turned on per call.
        layers = feature_layers(dataclasses.replace(cfg, content_weight=1.0, hist_weight=1.0))
        self.features = VGG19(layers, pooling=cfg.pooling, weights=cfg.weights, precision=cfg.precision,
                              normalize=cfg.normalize_vgg)
        self._engines: dict[tuple, Engine] = {}
        self.last_result = None  # the `optimizers.Result` of the latest call (last scale)

    # -------------------------------------------------------------- public
    def stylize(self, content, style, *, masks=None, style_masks=None, callbacks=None, checkpoint=None,
                checkpoint_every=None, resume=False, **options) -> np.ndarray:
        """Content image restyled.

        Args:
            content: a path, PIL image, numpy array or tensor.
            style: the same, or a list of them, blended with ``style_blend``.
            masks: spatial control (Gatys et al., CVPR 2017): one grayscale mask per style
                image, any size (resized to the content): where each style applies; its
                statistics are matched within its region (guided Gram matrices).
            style_masks: with ``masks``, one mask per style image: which part of it to take.
            callbacks: `tfnst.Callback` objects or functions of an `IterationRecord`.
            checkpoint: a path; with ``checkpoint_every=N`` the optimizer state is saved
                every N iterations, and ``resume=True`` continues from it (same inputs
                and options; ``iterations`` may grow) to the result an uninterrupted
                run would give.
            **options: `StyleConfig` fields for this call.

        Returns:
            float32 [H, W, 3] in [0, 1], longest side ``size``.

        Raises:
            TfnstError: for bad input or options.
            tfnst.optimizers.Interrupted: on Ctrl-C, carrying the best image so far.
        """
        cfg = self._call_config(options)
        content = to_array(content, max_pixels=cfg.max_pixels)
        content = resize(content, fit_size(content.shape[:2], cfg.size)).numpy()
        styles = self._load_styles(style, cfg)
        masks, style_masks = self._load_masks(masks, style_masks, styles, cfg)
        return self._run(cfg, content, content.shape[:2], styles, callbacks, checkpoint, checkpoint_every,
                         resume, masks, style_masks)

    def synthesize_texture(self, style, size=256, *, callbacks=None, checkpoint=None,
                           checkpoint_every=None, resume=False, **options) -> np.ndarray:
        """A new texture of ``size`` (int or (width, height)) from noise, matching the
        style (or the blend of a list of styles); arguments as for `stylize`.

        Raises:
            TfnstError: for bad input, or options that need a content image.
        """
        cfg = self._call_config({"init": "noise", **options, "content_weight": 0.0})
        for name, on in (("preserve_color", cfg.preserve_color is not None), ("lap_weight", cfg.lap_weight > 0)):
            if on:
                raise TfnstError(f"{name} needs a content image; textures have none")
        if cfg.init == "content":
            raise TfnstError("init='content' needs a content image; textures start from noise, "
                             "the style or an image file")
        hw = _parse_size(size)
        return self._run(cfg, None, hw, self._load_styles(style, cfg), callbacks, checkpoint,
                         checkpoint_every, resume)

    # -------------------------------------------------------------- internals
    def _call_config(self, options) -> StyleConfig:
        fixed = [k for k in options if k in self.NETWORK_OPTIONS and options[k] != getattr(self.config, k)]
        if fixed:
            raise TfnstError(f"{', '.join(fixed)} define the network; make a new Stylizer to change them")
        return self.config.replace(**options)

    def engine(self, cfg: StyleConfig, has_content: bool, regions: int = 0, tile: int | None = None) -> Engine:
        """The engine for ``cfg``, cached per what shapes its graph (active terms,
        optimizer, regions, tiles), so that a repeat call reuses its compiled steps."""
        key = (has_content, cfg.content_weight > 0, cfg.hist_weight > 0, cfg.lap_weight > 0,
               cfg.optimizer, cfg.averaging, cfg.patience, regions, tile)
        if key not in self._engines:
            self._engines[key] = Engine(cfg, self.features, has_content=has_content, regions=regions, tile=tile)
        engine = self._engines[key]
        engine.config = cfg  # per-call options (weights, colour, init, scales) that shape no graph
        return engine

    def _load_styles(self, style, cfg: StyleConfig) -> list[np.ndarray]:
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise TfnstError("at least one style image is needed")
        blend_weights(len(styles), cfg.style_blend)  # the count must match, checked early
        return [to_array(s, max_pixels=cfg.max_pixels) for s in styles]

    @staticmethod
    def _load_masks(masks, style_masks, styles, cfg: StyleConfig):
        """Masks as float32 [H, W] in [0, 1] (the mean of their channels), checked."""
        if masks is None:
            if style_masks is not None:
                raise TfnstError("style_masks need masks (where each style applies)")
            return None, None
        if cfg.style_blend is not None:
            raise TfnstError("masks say where each style applies; they do not blend (leave style_blend out)")
        loaded = []
        for name, group in (("masks", masks), ("style_masks", style_masks)):
            if group is None:
                loaded.append(None)
                continue
            group = list(group) if isinstance(group, (list, tuple)) else [group]
            if len(group) != len(styles):
                raise TfnstError(f"{len(group)} {name} for {len(styles)} style images: one each")
            arrays = [to_array(m, max_pixels=cfg.max_pixels).mean(axis=-1) for m in group]
            for i, a in enumerate(arrays, 1):
                if a.max() <= 0:
                    raise TfnstError(f"{name[:-1].replace('_', ' ')} {i} is all black: "
                                     f"{'style' if name == 'masks' else 'its style image'} {i} would apply nowhere")
            loaded.append(arrays)
        return loaded[0], loaded[1]

    def _tile(self, cfg: StyleConfig, hw, has_content: bool) -> int | None:
        """The tile size for a run of size ``hw``: ``cfg.tile``, or when the estimate
        exceeds the budget (``cfg.max_memory``, else what is available) the largest that
        fits, or None (no tiles)."""
        if cfg.tile is not None:
            return cfg.tile
        budget = cfg.max_memory
        if budget is None:
            available = memory.available_bytes()
            budget = None if available is None else available + memory.resident_bytes()
        if budget is None or memory.estimate_bytes(hw, cfg, has_content) <= budget:
            return None
        return memory.tile_for(hw, cfg, has_content, budget)

    def _check(self, cfg: StyleConfig, hw, has_content: bool) -> None:
        if min(hw) < MIN_SIDE:
            raise TfnstError(f"the image is {hw[1]}x{hw[0]} at this size; VGG19 needs at least "
                             f"{MIN_SIDE} pixels per side (raise size, or crop extreme aspect ratios)")
        if has_content and cfg.lap_weight > 0:
            small = [p for p in cfg.lap_pool if min(hw) < laplacian_min_side(p)]
            if small:
                raise TfnstError(f"lap_pool {small[0]} leaves no Laplacian at {hw[1]}x{hw[0]} (it needs "
                                 f"{laplacian_min_side(small[0])} pixels a side); use smaller pools")
        tile = self._tile(cfg, hw, has_content)
        need = memory.additional_bytes(hw, cfg, has_content, tile)
        have = memory.available_bytes()
        if have is not None and need > have:
            raise TfnstError(
                f"a {hw[1]}x{hw[0]} run needs about {memory.gigabytes(need)} of memory"
                f"{f' in tiles of {tile} px' if tile else ''} and {memory.gigabytes(have)} is available; "
                "use a smaller size or --max-memory")

    def _run(self, cfg: StyleConfig, content, hw, styles, callbacks, checkpoint=None,
             checkpoint_every=None, resume=False, masks=None, style_masks=None) -> np.ndarray:
        has_content = content is not None
        regions = 0 if masks is None else len(masks)
        self._check(cfg, hw, has_content)
        if (checkpoint_every or resume) and not checkpoint:
            raise TfnstError("checkpoint_every and resume need a checkpoint path")
        callbacks = as_callbacks(callbacks)
        engine = self.engine(cfg, has_content, regions)
        init = cfg.init if cfg.init in ("content", "noise", "style") \
            else to_array(cfg.init, max_pixels=cfg.max_pixels)
        seed = cfg.seed if cfg.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        original = content
        content, styles = engine.prepare(content, styles)
        # A checkpoint names its scale; the run it belongs to is known by its inputs at
        # full size, so single- and multi-scale runs check their checkpoints alike.
        meta = _run_identity(cfg, content, [engine.fit_style(s, hw) for s in styles] + (masks or [])
                             + (style_masks or [])) if checkpoint else None
        saved = self._resumable(checkpoint, meta, cfg.optimizer) if resume else None
        sizes = scale_sizes(hw, cfg.scales, cfg.scale_factor)
        state = result = None

        def finished(image) -> np.ndarray:
            """The result as the caller asked for it: at full size (a run stopped at a
            coarser scale, by a failure or Ctrl-C, is upsampled as the next scale would
            start) and in the content's colours (luminance-only transfer)."""
            if tuple(np.shape(image)[:2]) != tuple(hw):
                image = engine.warm_start(image, content, hw)
            return np.clip(np.asarray(engine.finish(image, original), np.float32), 0.0, 1.0)

        for scale, size in enumerate(sizes):
            if saved and scale < saved.scale:
                continue  # finished before the checkpoint was written
            tile = self._tile(cfg, size, has_content)
            if tile:
                log.info("tfnst: scale %d, %dx%d, in tiles of %d px", scale + 1, size[1], size[0], tile)
            engine = self.engine(cfg, has_content, regions, tile)
            optimizer = engine.optimizer
            targets = engine.targets(content, styles, size, masks=masks, style_masks=style_masks)
            start = 0
            if saved and scale == saved.scale:
                like = engine.start(np.zeros((*size, 3), np.float32), targets)
                state, start = optimizer.state_from_arrays(saved.state, like), saved.iteration
                log.info("tfnst: resuming from %s at scale %d, iteration %d", checkpoint, scale + 1, start)
            elif state is None:
                first = engine.initial_image(init, None if content is None else resize(content, size),
                                             styles[0], size, seed)
                state = engine.start(first, targets)
            else:  # coarse-to-fine: the previous scale's result, upsampled with the content's detail
                state = optimizer.rescale_state(state, engine.warm_start(result.image, content, size), targets)

            def save(iteration, current, scale=scale):
                save_checkpoint(checkpoint, Checkpoint(optimizer.name, iteration,
                                                       optimizer.state_to_arrays(current), meta, scale))

            try:
                result = minimize(optimizer, None, targets, cfg.iterations_at(scale, len(sizes)), callbacks,
                                  state=state, start_iteration=start, checkpoint=save if checkpoint else None,
                                  checkpoint_every=checkpoint_every, scale=(scale + 1, len(sizes)))
            except Interrupted as e:
                e.image = finished(e.image)
                raise
            state = result.state
            if result.failed:
                break
        self.last_result = result
        return finished(result.image)

    @staticmethod
    def _resumable(checkpoint, meta, optimizer_name) -> Checkpoint:
        saved = load_checkpoint(checkpoint)
        if saved.meta != meta or saved.optimizer != optimizer_name:
            raise TfnstError(f"{checkpoint} is from a run with other inputs or options; "
                             "resume needs the same ones (only iterations may change)")
        return saved


def _run_identity(cfg: StyleConfig, content, styles) -> dict:
    """What a checkpoint must match to be resumed: every option but the iteration count
    (a seed only if given: the initial image it made is in the saved state), and
    digests of the (prepared, resized) input images."""
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "iterations"}
    digest = hashlib.sha256()
    for image in (content, *styles):
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
