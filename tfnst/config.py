"""Every option of a stylization, with its default and its help, in one place.

The Python API reads its defaults from `StyleConfig`, and the ``tfnst`` command line
is generated from its fields (`tfnst.cli`): a new option is written here once.
Importing this module does not load TensorFlow, so bad options are refused at once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfnst.errors import TfnstError
from tfnst.vgg_layers import MIN_SIDE, POOLING, PRECISIONS, layer_depth

OPTIMIZERS = ("adam", "lbfgs")
INITS = ("content", "noise", "style")
PRESERVE_COLOR = ("luminance", "histogram")
STYLE_STATISTICS = ("gram", "mean", "meancov", "discriminator")

# Gatys et al. 2016: style on conv1_1..conv5_1, content on conv4_2.
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
DEFAULT_CONTENT_LAYERS = ("block4_conv2",)

# Adam's settings when left unset (None): L-BFGS has neither.
ADAM_DEFAULTS = {"learning_rate": 0.02, "ema_decay": 0.9}
# L-BFGS's correction pairs: 2 x 20 image-sized tensors. torch's and jcjohnson's 100 cost
# 0.07 s more per 512 px iteration here and gained 0.2% of the loss after 150 (docs/speed.md).
LBFGS_HISTORY = 20

# Which commands take an option (tfnst.cli): CONTENT options need a content image.
ALL, CONTENT, RUN = ("stylize", "texture", "export"), ("stylize", "export"), ("stylize", "texture")


def option(default, help: str, *, parse: str, commands=ALL, flag: str | None = None,
           choices=None, aliases=(), default_factory=None):
    """A `StyleConfig` field with what the CLI needs to offer it.

    ``parse`` names how the CLI reads it (`tfnst.cli.PARSERS`); ``commands`` which
    subcommands take it; ``flag`` overrides ``--field-name``.
    """
    metadata = dict(help=help, parse=parse, commands=commands, flag=flag, choices=choices, aliases=aliases)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class StyleConfig:
    """Options of a stylization or texture synthesis.

    Loss weights are for tfnst's normalised losses (see `tfnst.losses`): each term
    is about 1 for a random image, so the weights are the terms' shares and hold at
    any image size. Sequence options accept lists and are stored as tuples.
    """

    size: int = option(512, "longest side of the result in pixels", parse="positive_int",
                       commands=("stylize",))
    iterations: int = option(140, "iterations at full size (coarser scales: --coarse-iterations); "
                             "the run may stop sooner, see --tolerance", parse="positive_int")
    optimizer: str = option("lbfgs", "L-BFGS with a fixed step, one loss evaluation an iteration (as "
                            "Gatys et al.'s code), or Adam (about twice the iterations for the same "
                            "loss)", parse="text", choices=OPTIMIZERS)
    learning_rate: float | None = option(
        None, f"Adam's step size in [0, 1] pixel units; unset: {ADAM_DEFAULTS['learning_rate']}",
        parse="number")
    ema_decay: float | None = option(
        None, "Adam: return an exponential moving average of the iterates with this decay (smoother, "
        f"lower loss late in a run); 0 = the last iterate; unset: {ADAM_DEFAULTS['ema_decay']}",
        parse="number")
    tolerance: float = option(0.0, "stop when the best loss improved by less than this fraction "
                              "over --patience iterations; 0 = never. With averaging (the default) "
                              "the loss seen is the iterate's, which levels off before the average "
                              "does: a stop can come early", parse="number")
    patience: int = option(25, "the window of --tolerance, in iterations", parse="positive_int")
    content_weight: float = option(1.0, "α of Gatys eq. 7; 0 = texture synthesis from the init",
                                   parse="number", commands=CONTENT)
    style_weight: float = option(10.0, "β of Gatys eq. 7", parse="number")
    tv_weight: float = option(20.0, "γ, the total variation weight (smoothness)", parse="number")
    content_layers: tuple[str, ...] = option(DEFAULT_CONTENT_LAYERS, "content layers (Keras names)",
                                             parse="layers", commands=CONTENT)
    style_layers: tuple[str, ...] = option(DEFAULT_STYLE_LAYERS, "style layers (Keras names)",
                                           parse="layers")
    style_layer_weights: tuple[float, ...] | None = option(
        None, "w_l of Gatys eq. 5, one per style layer, normalised; equal when unset", parse="numbers")
    style_statistic: str = option("gram", "statistic matched per style layer: Gram (Gatys), mean, "
                                  "mean+covariance, or a discriminator (a GAN loss; Adam only)",
                                  parse="text", choices=STYLE_STATISTICS, flag="--style-stat",
                                  aliases=("--style-loss",))
    hist_weight: float = option(0.0, "histogram loss weight (Risser et al. 2017); 0 = off", parse="number")
    hist_layers: tuple[str, ...] = option(("block1_conv1", "block4_conv1"),
                                          "layers of the histogram loss (Risser's relu1_1, relu4_1)",
                                          parse="layers")
    lap_weight: float = option(0.0, "Laplacian loss weight (Li et al. 2017, keeps the content's edges); "
                               "0 = off", parse="number", commands=CONTENT)
    lap_pool: tuple[int, ...] = option((4, 16), "average-pooling sizes of the Laplacian loss",
                                       parse="ints", commands=CONTENT)
    style_blend: tuple[float, ...] | None = option(None, "weights of several style images, "
                                                   "normalised; equal when unset", parse="numbers")
    preserve_color: str | None = option(None, "keep the content's colours (Gatys et al. 2016b); off "
                                        "when unset", parse="text", choices=PRESERVE_COLOR,
                                        commands=CONTENT)
    normalize_vgg: tuple[str, ...] | None = option(
        None, "rescale VGG19 so each filter's mean activation over these images (none given: "
        "the bundled examples) is 1, as Gatys et al. did", parse="paths")
    scales: int = option(2, "coarse-to-fine: optimize at this many sizes, each --scale-factor larger; "
                         "1 = at full size only", parse="positive_int")
    scale_factor: float = option(2.0, "size ratio between scales", parse="number")
    coarse_iterations: int = option(40, "coarse-to-fine: iterations at each coarser scale (at most "
                                    "--iterations)", parse="positive_int")
    scale_iterations: tuple[int, ...] | None = option(
        None, "coarse-to-fine: iterations at each scale, coarsest first (e.g. 200,40,6: a few at full "
        "size); unset: --coarse-iterations, then --iterations at full size", parse="ints")
    pooling: str = option("max", "max (the network as trained) or avg (Gatys' choice, smoother)",
                          parse="text", choices=POOLING)
    precision: str = option("auto", "VGG19's convolutions in bfloat16 (losses stay float32): "
                            "auto = bfloat16 where the hardware has it natively (CPUs with "
                            "AVX512_BF16 or AMX, NVIDIA GPUs from Ampere on, TPUs)", parse="text",
                            choices=PRECISIONS)
    weights: str = option("imagenet", "'imagenet' (offline ImageNet weights) or a Keras VGG19 notop "
                          "weights file", parse="text")
    init: str = option("content", "the starting image: content, noise, style or an image file",
                       parse="text", commands=RUN)
    seed: int | None = option(None, "makes noise initialisation reproducible", parse="int")
    style_scale: float = option(1.0, "style image size relative to the result (smaller: finer strokes)",
                                parse="number")
    max_pixels: int = option(89_478_485, "refuse input images with more pixels than this "
                             "(decompression bombs)", parse="positive_int", commands=RUN)
    max_memory: int | None = option(None, "the memory a run may use, e.g. 2GB; a larger run is "
                                    "evaluated in tiles that fit (the same result); unset: what is "
                                    "available", parse="memory", commands=RUN)
    tile: int | None = option(None, "evaluate the loss in tiles of N pixels a side (a multiple of 16), "
                              "whatever the memory; unset: tiles only when needed", parse="positive_int",
                              commands=RUN)

    def replace(self, **changes) -> "StyleConfig":
        """A copy with ``changes``, validated.

        Raises:
            TfnstError: for unknown options or values that make no sense.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TfnstError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).validated()

    def __post_init__(self):
        # Sequences as tuples (hashable, and `+` works): lists are what users write.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("parse") in ("layers", "numbers", "ints", "paths") \
                    and isinstance(value, Sequence) and not isinstance(value, str):
                object.__setattr__(self, f.name, tuple(value))

    def validated(self) -> "StyleConfig":
        """Self, or a `TfnstError` naming the first option that makes no sense."""
        def number(name, integer=False, minimum=None, above=None):
            v = getattr(self, name)
            kind = "a whole number" if integer else "a number"
            if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) \
                    or not math.isfinite(v):
                raise TfnstError(f"{name} must be {kind}, not {v!r}")
            if above is not None and not v > above:
                raise TfnstError(f"{name} must be {'positive' if above == 0 else f'> {above}'}, not {v}")
            if minimum is not None and not v >= minimum:
                raise TfnstError(f"{name} must be a number >= {minimum}, not {v}")

        def choice(name, allowed, optional=False):
            v = getattr(self, name)
            if not (optional and v is None) and v not in allowed:
                raise TfnstError(f"{name} must be one of {', '.join(allowed)}, not {v!r}")

        def names(name, required=True):
            v = getattr(self, name)
            if not isinstance(v, tuple) or (required and not v):
                raise TfnstError(f"{name} must be a list of VGG19 layer names, not {v!r}")
            for n in v:
                layer_depth(n)  # raises for unknown names

        def weights(name, count=None, what=""):
            v = getattr(self, name)
            if v is None:
                return
            if not isinstance(v, tuple) or any(isinstance(w, bool) or not isinstance(w, (int, float))
                                               or not (math.isfinite(w) and w >= 0) for w in v) \
                    or sum(v) <= 0:
                raise TfnstError(f"{name} must be numbers >= 0, not all 0, not {v!r}")
            if count is not None and len(v) != count:
                raise TfnstError(f"{name} needs {count} values, {what}, not {len(v)}")

        for name in ("size", "iterations", "coarse_iterations", "max_pixels", "patience", "scales"):
            number(name, integer=True, above=0)
        for name in ("max_memory", "tile"):
            if getattr(self, name) is not None:
                number(name, integer=True, above=0)
        if self.tile is not None and self.tile % 16:
            raise TfnstError(f"tile must be a multiple of 16 (VGG19's pooling stride), not {self.tile}")
        for name in ("style_scale",):
            number(name, above=0)
        if self.learning_rate is not None:
            number("learning_rate", above=0)
        if self.ema_decay is not None:
            number("ema_decay", minimum=0)
        for name in ("content_weight", "style_weight", "tv_weight", "hist_weight", "lap_weight",
                     "tolerance"):
            number(name, minimum=0)
        number("scale_factor", above=1)
        if self.ema_decay is not None and self.ema_decay >= 1:
            raise TfnstError(f"ema_decay must be below 1, not {self.ema_decay}")
        choice("optimizer", OPTIMIZERS)
        choice("pooling", POOLING)
        choice("precision", PRECISIONS)
        choice("style_statistic", STYLE_STATISTICS)
        choice("preserve_color", PRESERVE_COLOR, optional=True)
        for name in ("content_layers", "hist_layers"):
            names(name, required=False)
        names("style_layers")
        if self.scale_iterations is not None:
            if len(self.scale_iterations) != self.scales or any(
                    isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.scale_iterations):
                raise TfnstError(f"scale_iterations needs {self.scales} whole numbers >= 1, one per scale "
                                 f"(scales={self.scales}), not {self.scale_iterations!r}")
        if self.content_weight > 0 and not self.content_layers:
            raise TfnstError("content_weight needs at least one content layer")
        weights("style_layer_weights", len(self.style_layers), "one per style layer")
        weights("style_blend")
        if not isinstance(self.lap_pool, tuple) or not self.lap_pool or any(
                not isinstance(p, int) or isinstance(p, bool) or p < 1 for p in self.lap_pool):
            raise TfnstError(f"lap_pool must be whole numbers >= 1, not {self.lap_pool!r}")
        if self.size < MIN_SIDE:
            raise TfnstError(f"size must be at least {MIN_SIDE} pixels (VGG19 pools 4 times), "
                             f"not {self.size}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2**63):
            raise TfnstError(f"seed must be a whole number >= 0, not {self.seed!r}")
        if not isinstance(self.init, str) or (self.init not in INITS and not Path(self.init).is_file()):
            raise TfnstError(f"init must be one of {', '.join(INITS)} or an image file; "
                             f"{self.init!r} is none of these")
        if self.weights != "imagenet" and not (isinstance(self.weights, str) and Path(self.weights).is_file()):
            raise TfnstError(f"weights must be 'imagenet' or a path to a Keras weights file: {self.weights}")
        if self.normalize_vgg is not None:
            for p in self.normalize_vgg:
                if not Path(p).is_file():
                    raise TfnstError(f"normalize_vgg: {p}: no such file")
        # Options that would be silently ignored are refused, with the reason.
        if self.optimizer != "adam":
            for name, unused in (("learning_rate", self.learning_rate is not None),
                                 ("ema_decay", self.ema_decay is not None)):
                if unused:
                    raise TfnstError(f"{name} is an Adam setting; L-BFGS has none (it needs "
                                     "optimizer='adam', --optimizer adam, or leave it out)")
            if self.style_statistic == "discriminator":
                raise TfnstError("the discriminator style loss trains alongside the image, one step "
                                 "per image step, and needs optimizer='adam' (--optimizer adam)")
        return self

    def iterations_at(self, scale: int, count: int) -> int:
        """Iterations at coarse-to-fine scale ``scale`` of ``count`` (0-based; fewer sizes
        than scales when small images repeat a size: the last ones count)."""
        if self.scale_iterations is None:
            return self.iterations if scale == count - 1 else min(self.coarse_iterations, self.iterations)
        return self.scale_iterations[len(self.scale_iterations) - count + scale]

    @property
    def averaging(self) -> float:
        """The decay of the iterates' average: Adam's (`ADAM_DEFAULTS` when unset); 0 for L-BFGS."""
        if self.optimizer != "adam":
            return 0.0
        return ADAM_DEFAULTS["ema_decay"] if self.ema_decay is None else float(self.ema_decay)


TRAIN = ("train",)


@dataclass(frozen=True)
class TrainConfig:
    """Options of training a feed-forward stylization network (`tfnst.networks.train`).

    The loss is Johnson, Alahi & Fei-Fei's (2016): content at relu3_3 (``block3_conv3``),
    Gram style at relu1_2, relu2_2, relu3_3 and relu4_3, plus total variation, with
    tfnst's normalised terms (each about 1 for a random image).
    """

    size: int = option(256, "training crops are SIZExSIZE (Johnson et al.: 256)", parse="positive_int",
                       commands=TRAIN)
    steps: int = option(2000, "training steps (batches)", parse="positive_int", commands=TRAIN)
    batch_size: int = option(4, "images per step (Johnson et al.: 4)", parse="positive_int", commands=TRAIN)
    learning_rate: float = option(1e-3, "Adam's learning rate (Johnson et al.: 1e-3)", parse="number",
                                  commands=TRAIN)
    content_weight: float = option(1.0, "α, the content term's weight", parse="number", commands=TRAIN)
    style_weight: float = option(10.0, "β, the style term's weight", parse="number", commands=TRAIN)
    tv_weight: float = option(20.0, "γ, the total variation weight", parse="number", commands=TRAIN)
    width: int = option(32, "filters of the first layer; the network has 2x and 4x that deeper "
                        "(Johnson et al.: 32; 16 is a small network for CPUs)", parse="positive_int",
                        commands=TRAIN)
    depth: int = option(5, "residual blocks (Johnson et al.: 5)", parse="positive_int", commands=TRAIN)
    content_layers: tuple[str, ...] = option(("block3_conv3",), "content layers", parse="layers",
                                             commands=TRAIN)
    style_layers: tuple[str, ...] = option(("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"),
                                           "style layers", parse="layers", commands=TRAIN)
    crops: int = option(4, "fixed crops taken from each training image (the same every epoch, so a "
                        "resumed training sees the data an uninterrupted one would)", parse="positive_int",
                        commands=TRAIN)
    precision: str = option("auto", "the loss network's (VGG19's) precision; the trained network is "
                            "float32", parse="text", choices=PRECISIONS, commands=TRAIN)
    seed: int = option(0, "order of the images and of the crops", parse="int", commands=TRAIN)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes``, validated (`TfnstError` for unknown or bad ones)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TfnstError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).validated()

    def __post_init__(self):
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str):
                object.__setattr__(self, name, tuple(value))

    def validated(self) -> "TrainConfig":
        for name in ("size", "steps", "batch_size", "width", "depth", "crops"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise TfnstError(f"{name} must be a positive whole number, not {v!r}")
        for name in ("learning_rate",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise TfnstError(f"{name} must be a positive number, not {v!r}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                raise TfnstError(f"{name} must be a number >= 0, not {v!r}")
        if self.size < MIN_SIDE:
            raise TfnstError(f"size must be at least {MIN_SIDE} pixels, not {self.size}")
        for name in ("content_layers", "style_layers"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not v:
                raise TfnstError(f"{name} must be a list of VGG19 layer names, not {v!r}")
            for n in v:
                layer_depth(n)
        if self.precision not in PRECISIONS:
            raise TfnstError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TfnstError(f"seed must be a whole number >= 0, not {self.seed!r}")
        return self
