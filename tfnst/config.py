"""Every option of a stylization, with its default, in one place.

The Python API and the CLI both read their defaults from `StyleConfig`; nothing
else repeats them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from tfnst.errors import TfnstError
from tfnst.features import MIN_SIDE, POOLING, PRECISIONS, layer_depth

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
PRESERVE_COLOR = ("luminance", "histogram")

# Gatys et al. 2016: style on conv1_1..conv5_1, content on conv4_2.
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
DEFAULT_CONTENT_LAYERS = ("block4_conv2",)


@dataclass(frozen=True)
class StyleConfig:
    """Options of a stylization or texture synthesis.

    Loss weights are for tfnst's normalised losses (see `tfnst.losses`): each term
    is about 1 for a random image, so the weights are the terms' shares and hold at
    any image size.
    """

    size: int = 512
    """Longest side of the result in pixels (the content image is resized to it)."""
    iterations: int = 300
    optimizer: str = "adam"
    """``"adam"`` or ``"lbfgs"`` (tensorflow-probability). L-BFGS needs fewer
    iterations, but its line search costs about 3 loss evaluations per iteration,
    and per second Adam was as good or better (see README)."""
    learning_rate: float = 0.02
    """Adam's step size, in [0, 1] pixel units."""
    ema_decay: float = 0.0
    """Adam: return an exponential moving average of the iterates with this decay
    (e.g. 0.9) instead of the last iterate; 0 = off. The average does not jitter as the
    iterate does: at 512 px it reached the reference's 500-iteration loss after 400
    iterations, the iterate after 445 (README, Speed). The losses reported per
    iteration stay the iterate's."""
    content_weight: float = 1.0
    """α of Gatys eq. 7; 0 turns stylization into texture synthesis."""
    style_weight: float = 10.0
    """β of Gatys eq. 7."""
    tv_weight: float = 20.0
    """γ, the total variation weight (smoothness)."""
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    """w_l of Gatys eq. 5, one per style layer; equal when None. Normalised to sum to 1."""
    style_statistic: str = "gram"
    """``"gram"`` (Gatys), ``"mean"``, ``"meancov"`` (mean and covariance), or
    ``"discriminator"`` (a GAN loss with a per-layer logistic-regression discriminator;
    Adam only)."""
    hist_weight: float = 0.0
    """Weight of the histogram loss (Risser et al. 2017); 0 = off."""
    hist_layers: tuple[str, ...] = ("block1_conv1", "block4_conv1")
    """Risser et al.'s layers (relu1_1 and relu4_1)."""
    lap_weight: float = 0.0
    """Weight of the Laplacian loss (Li et al. 2017): keeps the content's edges; 0 = off."""
    lap_pool: tuple[int, ...] = (4, 16)
    """Average-pooling sizes at which the Laplacians are compared."""
    style_blend: tuple[float, ...] | None = None
    """Weights of several style images (normalised); equal when None."""
    preserve_color: str | None = None
    """``"luminance"`` (transfer luminance only) or ``"histogram"`` (match the style's
    colours to the content first), after Gatys et al. 2016b; None = off."""
    normalize_vgg: tuple[str, ...] | None = None
    """Rescale VGG19 so each filter's mean activation over these images is 1 (Gatys et
    al.); ``()`` uses the bundled examples; None = off."""
    scales: int = 1
    """Coarse-to-fine: optimize at this many sizes, each ``scale_factor`` larger, up to ``size``."""
    scale_factor: float = 2 ** 0.5
    pooling: str = "max"
    """``"max"`` (the trained network) or ``"avg"`` (Gatys' choice, smoother)."""
    precision: str = "float32"
    """``"bfloat16"`` runs VGG19's convolutions in bfloat16 (losses stay float32): about
    half the time per iteration on GPUs from Ampere on, TPUs, and CPUs with AVX512_BF16
    or AMX, with a slightly different result; many times slower on other CPUs, so it is
    never the default (see README, Speed)."""
    weights: str = "imagenet"
    """``"imagenet"`` or a path to a Keras VGG19 notop weights file."""
    init: str = "content"
    """``"content"``, ``"noise"``, ``"style"`` or a path to an image."""
    seed: int | None = None
    style_scale: float = 1.0
    """Style image size relative to the content size (longest sides)."""
    max_pixels: int = 89_478_485
    """Input images above this many pixels are refused (decompression bombs)."""
    lbfgs_report_every: int = field(default=10, repr=False)
    """L-BFGS: compute the individual loss terms for callbacks every N iterations
    (an extra forward pass each time; the total is known at every iteration)."""

    def replace(self, **changes) -> "StyleConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TfnstError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> "StyleConfig":
        """Self, or a `TfnstError` naming the first option that makes no sense."""
        def positive(name, integer=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
                raise TfnstError(f"{name} must be a {'whole ' if integer else ''}number, not {v!r}")
            if not (math.isfinite(v) and v > 0):
                raise TfnstError(f"{name} must be positive, not {v}")

        def non_negative(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                raise TfnstError(f"{name} must be a number >= 0, not {v!r}")

        for name in ("size", "iterations", "max_pixels", "lbfgs_report_every"):
            positive(name, integer=True)
        for name in ("learning_rate", "style_scale"):
            positive(name)
        for name in ("content_weight", "style_weight", "tv_weight", "hist_weight", "lap_weight"):
            non_negative(name)
        positive("scales", integer=True)
        non_negative("ema_decay")
        if self.ema_decay >= 1:
            raise TfnstError(f"ema_decay must be below 1, not {self.ema_decay}")
        if self.ema_decay > 0 and self.optimizer != "adam":
            raise TfnstError("ema_decay averages Adam's iterates; it needs optimizer='adam'")
        if not (isinstance(self.scale_factor, (int, float)) and self.scale_factor > 1
                and math.isfinite(self.scale_factor)):
            raise TfnstError(f"scale_factor must be a number > 1, not {self.scale_factor!r}")
        if any(not isinstance(p, int) or isinstance(p, bool) or p < 1 for p in self.lap_pool) \
                or not self.lap_pool:
            raise TfnstError(f"lap_pool must be whole numbers >= 1, not {self.lap_pool!r}")
        if self.preserve_color not in (None, *PRESERVE_COLOR):
            raise TfnstError(f"preserve_color must be one of {', '.join(PRESERVE_COLOR)}, "
                             f"not {self.preserve_color!r}")
        if self.style_blend is not None and (
                any(not (math.isfinite(w) and w >= 0) for w in self.style_blend)
                or sum(self.style_blend) <= 0):
            raise TfnstError("style_blend weights must be >= 0 and not all 0")
        if self.size < MIN_SIDE:
            raise TfnstError(f"size must be at least {MIN_SIDE} pixels (VGG19 pools 4 times), "
                             f"not {self.size}")
        if self.optimizer not in OPTIMIZERS:
            raise TfnstError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.pooling not in POOLING:
            raise TfnstError(f"pooling must be one of {', '.join(POOLING)}, not {self.pooling!r}")
        if self.precision not in PRECISIONS:
            raise TfnstError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if not self.style_layers:
            raise TfnstError("at least one style layer is needed")
        for name in self.content_layers + self.style_layers + self.hist_layers:
            layer_depth(name)  # raises for unknown names
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise TfnstError(f"style_layer_weights needs {len(self.style_layers)} values, "
                                 f"one per style layer, not {len(self.style_layer_weights)}")
            if any(not (math.isfinite(w) and w >= 0) for w in self.style_layer_weights) or \
                    sum(self.style_layer_weights) <= 0:
                raise TfnstError("style_layer_weights must be >= 0 and not all 0")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed < 0):
            raise TfnstError(f"seed must be a whole number >= 0, not {self.seed!r}")
        from tfnst.losses import style_statistic

        style_statistic(self.style_statistic)
        if self.style_statistic == "discriminator":
            if self.optimizer != "adam":
                raise TfnstError("the discriminator style loss trains alongside the image and "
                                 "needs optimizer='adam'")
            if self.style_blend is not None:
                raise TfnstError("the discriminator style loss does not blend styles yet")
        return self

