"""Every option of a stylization, with its default, its help and its constraint, in one place.

Each field of `StyleConfig` (and `TrainConfig`) is declared with `option`: its default,
its help and a `Rule` (its kind, range, choices, and which other option it needs to
mean anything). The checks (`validated`) and the ``tfnst`` command line (`tfnst.cli`)
are generated from these declarations, so a new option is written here once. The
rules that involve the inputs of a call (how many styles and masks, whether there is
a content image) live in one request-level check, `check_request`.

Importing this module does not load TensorFlow, so bad options are refused at once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfnst.errors import TfnstError
from tfnst.image_io import DEFAULT_MAX_PIXELS
from tfnst.vgg_layers import MIN_SIDE, POOLING, PRECISIONS, layer_depth

OPTIMIZERS = ("auto", "lbfgs", "adam", "tfp-lbfgs")
INITS = ("content", "noise", "style")
# How a feed-forward network doubles its resolution (`tfnst.networks.StyleTransformer`):
# "nearest" was the only way until 2026-12-02, and is what a network saved then loads with.
UPSAMPLINGS = ("bilinear", "nearest")
LEARNING_RATE_DECAYS = ("constant", "cosine")
PRESERVE_COLOR = ("luminance", "histogram")
STYLE_STATISTICS = ("gram", "mean", "meancov", "discriminator")

# Gatys et al. 2016: style on conv1_1..conv5_1, content on conv4_2.
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
DEFAULT_CONTENT_LAYERS = ("block4_conv2",)

# Adam's settings when left unset (None): the L-BFGS variants have neither.
ADAM_DEFAULTS = {"learning_rate": 0.02, "ema_decay": 0.9}
# L-BFGS's correction pairs: 2 x 20 image-sized tensors. torch's and jcjohnson's 100 cost
# 0.07 s more per 512 px iteration and gained 0.2% of the loss after 150 (docs/speed.md).
LBFGS_HISTORY = 20
# Where memory is short (`tfnst.memory.layout`) L-BFGS keeps fewer pairs, not fewer than
# this: Nocedal & Wright (2006, ch. 7) give 3-20 as typical; docs/tiling.md measures it.
LBFGS_MIN_HISTORY = 5
# Iterations at each coarser scale when unset: crowsonkb's and jcjohnson's recipes spend more
# at coarse sizes; 40 then 140 at full size measured within 2.4% of 300 (docs/speed.md).
COARSE_ITERATIONS = 40

# Which commands take an option (tfnst.cli): CONTENT options need a content image.
# `video` (tfnst.video) stylizes each frame as `stylize` does, so it takes what stylize takes.
ALL, CONTENT, RUN = (
    ("stylize", "texture", "export", "video"),
    ("stylize", "export", "video"),
    ("stylize", "texture", "video"),
)


@dataclass(frozen=True)
class Rule:
    """What values an option takes, declared next to its default (`option`).

    Attributes:
        kind: how the value is read and checked: ``int``, ``number``, ``text``,
            ``layers`` (VGG19 layer names), ``numbers``, ``ints``, ``paths``, ``memory``
            (bytes; the CLI reads ``2GB``).
        minimum, above, below: the range (``>= minimum``, ``> above``, ``< below``).
        choices: the allowed values of a ``text`` option.
        optional: None is allowed (unset).
        nonempty: a sequence needs at least one item.
        multiple_of: an ``int`` must be a multiple of this.
        needs: ``(description, test)``: the option changes nothing unless
            ``test(config)`` holds, so a value other than the default is refused
            without it, with the description as the reason.
    """

    kind: str
    minimum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    optional: bool = False
    nonempty: bool = False
    multiple_of: int | None = None
    needs: tuple[str, Callable] | None = None


def option(default, help: str, rule: Rule, *, commands=ALL, flag: str | None = None, aliases=()):
    """A config field: its default, its help, its `Rule`, and for the command line which
    subcommands take it (``commands``) and its flag (``--field-name`` unless ``flag``)."""
    return field(default=default, metadata=dict(help=help, rule=rule, commands=commands, flag=flag, aliases=aliases))


SEQUENCE_KINDS = ("layers", "numbers", "ints", "paths")


def _check_value(name: str, value, rule: Rule) -> None:
    """A `TfnstError` naming ``name``, what was expected and what was received, unless
    ``value`` follows ``rule``."""
    if value is None:
        if rule.optional:
            return
        raise TfnstError(f"{name} needs a value, received None")
    kind = rule.kind

    def number(v, integer: bool) -> None:
        expected = "a whole number" if integer else "a number"
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) or not math.isfinite(v):
            raise TfnstError(f"{name} must be {expected}, received {v!r}")
        if rule.minimum is not None and not v >= rule.minimum:
            raise TfnstError(f"{name} must be >= {rule.minimum:g}, received {v!r}")
        if rule.above is not None and not v > rule.above:
            raise TfnstError(f"{name} must be > {rule.above:g}, received {v!r}")
        if rule.below is not None and not v < rule.below:
            raise TfnstError(f"{name} must be < {rule.below:g}, received {v!r}")
        if rule.multiple_of and v % rule.multiple_of:
            raise TfnstError(f"{name} must be a multiple of {rule.multiple_of}, received {v!r}")

    if kind in ("int", "memory"):
        number(value, True)
    elif kind == "number":
        number(value, False)
    elif kind == "text":
        if not isinstance(value, str):
            raise TfnstError(f"{name} must be text, received {value!r}")
        if rule.choices and value not in rule.choices:
            raise TfnstError(f"{name} must be one of {', '.join(rule.choices)}, received {value!r}")
    elif kind in SEQUENCE_KINDS:
        if not isinstance(value, tuple) or (rule.nonempty and not value):
            expected = {
                "layers": "VGG19 layer names",
                "numbers": "numbers",
                "ints": "whole numbers",
                "paths": "file paths",
            }[kind]
            raise TfnstError(
                f"{name} must be a {'non-empty ' if rule.nonempty else ''}list of {expected}, received {value!r}"
            )
        for item in value:
            if kind == "layers":
                layer_depth(item)  # raises for unknown names
            elif kind == "paths":
                if not Path(item).is_file():
                    raise TfnstError(f"{name}: {item}: no such file")
            else:
                number(item, kind == "ints")
    else:  # a declaration error, not a user's
        raise AssertionError(f"unknown kind {kind!r} of option {name}")


class _Options:
    """What `StyleConfig` and `TrainConfig` share: checks generated from the rules."""

    def replace(self, **changes):
        """A copy with ``changes`` (validated as every config is, when made); self when
        there are none.

        Raises:
            TfnstError: for unknown options or values that break an option's rule.
        """
        if not changes:
            return self
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TfnstError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        # Sequences as tuples (hashable, and `+` works): lists are what users write.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = f.metadata["rule"].kind
            if kind in SEQUENCE_KINDS and isinstance(value, Sequence) and not isinstance(value, str):
                object.__setattr__(self, f.name, tuple(value))
            elif kind == "ints" and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, (value,))  # one count for every item
        self.validated()  # valid by construction: a config that exists follows its rules

    def validated(self):
        """Self, or a `TfnstError` naming the first option that breaks its rule, or that is
        set (away from its default) without what it needs to mean anything."""
        for f in dataclasses.fields(self):
            _check_value(f.name, getattr(self, f.name), f.metadata["rule"])
        for f in dataclasses.fields(self):
            needs = f.metadata["rule"].needs
            if needs and getattr(self, f.name) != f.default and not needs[1](self):
                raise TfnstError(f"{f.name} needs {needs[0]}; without it, it changes nothing")
        self._check_together()
        return self

    def _check_together(self) -> None:
        """Rules between options that a single option's `Rule` cannot say."""

    @classmethod
    def rules(cls) -> dict[str, Rule]:
        return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls)}


def _adam(config) -> bool:
    return config.optimizer_name == "adam"


@dataclass(frozen=True)
class StyleConfig(_Options):
    """Options of a stylization or texture synthesis.

    Loss weights are for tfnst's normalised losses (see `tfnst.losses`): each term
    is about 1 for a random image, so the weights are the terms' shares and hold at
    any image size. Sequence options accept lists and are stored as tuples.
    """

    size: int = option(
        512, "longest side of the result in pixels", Rule("int", minimum=MIN_SIDE), commands=("stylize", "video")
    )
    iterations: int = option(
        140,
        "iterations at full size (coarser scales: --coarse-iterations); the run may stop sooner, see --tolerance",
        Rule("int", above=0),
    )
    optimizer: str = option(
        "auto",
        "auto: L-BFGS with a fixed step (one loss evaluation an iteration, "
        "as Gatys et al.'s code), or Adam where an option needs it (the "
        "discriminator, --learning-rate, --ema-decay); adam (about twice the "
        "iterations for the same loss); tfp-lbfgs (tensorflow-probability's "
        "L-BFGS with a line search; pip install 'tfnst[tfp]')",
        Rule("text", choices=OPTIMIZERS),
    )
    learning_rate: float | None = option(
        None,
        f"Adam's step size in [0, 1] pixel units; unset: {ADAM_DEFAULTS['learning_rate']}",
        Rule("number", above=0, optional=True, needs=("optimizer adam", _adam)),
    )
    ema_decay: float | None = option(
        None,
        "Adam: return an exponential moving average of the iterates with this decay (smoother, "
        f"lower loss late in a run); 0 = the last iterate; unset: {ADAM_DEFAULTS['ema_decay']}",
        Rule("number", minimum=0, below=1, optional=True, needs=("optimizer adam", _adam)),
    )
    tolerance: float = option(
        0.0,
        "stop when the best loss improved by less than this fraction "
        "over --patience iterations; 0 = never. With Adam's averaging the loss "
        "seen is the iterate's, which levels off before the average does",
        Rule("number", minimum=0),
    )
    patience: int = option(
        25,
        "the window of --tolerance, in iterations",
        Rule("int", above=0, needs=("a tolerance above 0", lambda c: c.tolerance > 0)),
    )
    content_weight: float = option(
        1.0, "α of Gatys eq. 7; 0 = texture synthesis from the init", Rule("number", minimum=0), commands=CONTENT
    )
    style_weight: float = option(10.0, "β of Gatys eq. 7", Rule("number", minimum=0))
    tv_weight: float = option(20.0, "γ, the total variation weight (smoothness)", Rule("number", minimum=0))
    content_layers: tuple[str, ...] = option(
        DEFAULT_CONTENT_LAYERS,
        "content layers (Keras names)",
        Rule("layers"),
        commands=CONTENT,
    )
    style_layers: tuple[str, ...] = option(
        DEFAULT_STYLE_LAYERS, "style layers (Keras names)", Rule("layers", nonempty=True)
    )
    style_layer_weights: tuple[float, ...] | None = option(
        None,
        "w_l of Gatys eq. 5, one per style layer, normalised; equal when unset",
        Rule("numbers", minimum=0, optional=True),
    )
    style_statistic: str = option(
        "gram",
        "statistic matched per style layer: Gram (Gatys), mean, "
        "mean+covariance, or a discriminator (a GAN loss; runs with Adam)",
        Rule("text", choices=STYLE_STATISTICS),
        flag="--style-stat",
        aliases=("--style-loss",),
    )
    hist_weight: float = option(0.0, "histogram loss weight (Risser et al. 2017); 0 = off", Rule("number", minimum=0))
    hist_layers: tuple[str, ...] = option(
        ("block1_conv1", "block4_conv1"),
        "layers of the histogram loss (Risser's relu1_1, relu4_1)",
        Rule("layers", nonempty=True),
    )
    lap_weight: float = option(
        0.0,
        "Laplacian loss weight (Li et al. 2017, keeps the content's edges); 0 = off",
        Rule("number", minimum=0),
        commands=CONTENT,
    )
    lap_pool: tuple[int, ...] = option(
        (4, 16),
        "average-pooling sizes of the Laplacian loss",
        Rule("ints", minimum=1, nonempty=True),
        commands=CONTENT,
    )
    temporal_weight: float = option(
        2e2,
        'video: weight of Ruder et al.\'s temporal loss ("Artistic Style Transfer for Videos", '
        "2016), which ties each frame to the earlier results warped into it by the optical flow "
        "where the flow is reliable; 0 = independent frames",
        Rule("number", minimum=0),
        commands=("video",),
    )
    style_blend: tuple[float, ...] | None = option(
        None, "weights of several style images, normalised; equal when unset", Rule("numbers", minimum=0, optional=True)
    )
    preserve_color: str | None = option(
        None,
        "keep the content's colours (Gatys et al. 2016b); off when unset",
        Rule("text", choices=PRESERVE_COLOR, optional=True),
        commands=CONTENT,
    )
    normalize_vgg: tuple[str, ...] | None = option(
        None,
        "rescale VGG19 so each filter's mean activation over these images (none given: "
        "the bundled examples) is 1, as Gatys et al. did",
        Rule("paths", optional=True),
    )
    scales: int = option(
        2,
        "coarse-to-fine: optimize at this many sizes, each --scale-factor larger; 1 = at full size only",
        Rule("int", above=0),
    )
    scale_factor: float = option(
        2.0, "size ratio between scales", Rule("number", above=1, needs=("scales above 1", lambda c: c.scales > 1))
    )
    coarse_iterations: tuple[int, ...] | None = option(
        None,
        "coarse-to-fine: iterations at each coarser scale, one value for all or one per coarser "
        f"scale (coarsest first, e.g. 200,40 for a few at full size); unset: {COARSE_ITERATIONS}, at most "
        "--iterations",
        Rule("ints", minimum=1, nonempty=True, optional=True, needs=("scales above 1", lambda c: c.scales > 1)),
    )
    pooling: str = option(
        "max", "max (the network as trained) or avg (Gatys' choice, smoother)", Rule("text", choices=POOLING)
    )
    precision: str = option(
        "auto",
        "VGG19's convolutions in bfloat16 (losses stay float32): "
        "auto = bfloat16 where the hardware has it natively (CPUs with "
        "AVX512_BF16 or AMX, NVIDIA GPUs from Ampere on, TPUs)",
        Rule("text", choices=PRECISIONS),
    )
    vgg_weights: str = option(
        "imagenet", "'imagenet' (offline ImageNet weights) or a Keras VGG19 notop weights file", Rule("text")
    )
    init: str | None = option(
        None,
        "the starting image: content, noise, style or an image file; unset: the content, or noise for a texture",
        Rule("text", optional=True),
        commands=ALL,
    )
    seed: int | None = option(
        None,
        "makes noise initialisation reproducible",
        Rule("int", minimum=0, below=2**63, optional=True, needs=("init noise", lambda c: c.init in (None, "noise"))),
    )
    style_scale: float = option(
        1.0, "style image size relative to the result (smaller: finer strokes)", Rule("number", above=0)
    )
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS,
        "refuse input images with more pixels than this (decompression bombs)",
        Rule("int", above=0),
        commands=RUN,
    )
    max_memory: int | None = option(
        None,
        "the memory a run may use, e.g. 2GB; a larger run is evaluated in tiles that fit (the "
        "same result); unset: what is available",
        Rule("memory", above=0, optional=True),
        commands=RUN,
    )
    tile: int | None = option(
        None,
        "evaluate the loss in tiles of N pixels a side (a multiple of 16), "
        "whatever the memory; unset: tiles only when needed",
        Rule("int", above=0, multiple_of=16, optional=True),
        commands=RUN,
    )
    devices: int = option(
        1,
        "spread a tiled run's tiles over N devices (GPUs, else CPUs; "
        "tf.distribute.MirroredStrategy): the same loss and gradient",
        Rule(
            "int",
            minimum=1,
            needs=("tiles (--tile or --max-memory)", lambda c: c.tile is not None or c.max_memory is not None),
        ),
        commands=RUN,
    )

    @property
    def optimizer_name(self) -> str:
        """The optimizer that runs: ``optimizer``, or for ``auto`` Adam where an option needs
        it (the discriminator trains alongside the image, one step per image step; the
        learning rate and averaging are Adam's) and L-BFGS otherwise."""
        if self.optimizer != "auto":
            return self.optimizer
        adam = self.style_statistic == "discriminator" or self.learning_rate is not None or self.ema_decay is not None
        return "adam" if adam else "lbfgs"

    @property
    def averaging(self) -> float:
        """The decay of the iterates' average: Adam's (`ADAM_DEFAULTS` when unset); 0 otherwise."""
        if self.optimizer_name != "adam":
            return 0.0
        return ADAM_DEFAULTS["ema_decay"] if self.ema_decay is None else float(self.ema_decay)

    def coarse_iterations_at(self, scale: int) -> int:
        """The iterations of coarser scale ``scale`` (0 = the coarsest): as given, or unset
        `COARSE_ITERATIONS`, at most `iterations` (so that --iterations 10 is a short run)."""
        counts = self.coarse_iterations
        if counts is None:
            return min(COARSE_ITERATIONS, self.iterations)
        return counts[0] if len(counts) == 1 else counts[scale]

    def _check_together(self) -> None:
        if self.optimizer_name != "adam" and self.style_statistic == "discriminator":
            raise TfnstError(
                "the discriminator style loss trains alongside the image, one step per "
                f"image step, so it runs with Adam, not {self.optimizer} (leave --optimizer "
                "out, or choose adam)"
            )
        if self.content_weight > 0 and not self.content_layers:
            raise TfnstError("content_weight needs at least one content layer")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise TfnstError(
                    f"style_layer_weights needs {len(self.style_layers)} values, one per style "
                    f"layer, received {len(self.style_layer_weights)}"
                )
            if sum(self.style_layer_weights) <= 0:
                raise TfnstError("style_layer_weights must not all be 0")
        if self.style_blend is not None and sum(self.style_blend) <= 0:
            raise TfnstError("style_blend must not all be 0")
        if (
            self.scales > 1
            and self.coarse_iterations is not None
            and len(self.coarse_iterations) not in (1, self.scales - 1)
        ):
            raise TfnstError(
                f"coarse_iterations needs 1 value or {self.scales - 1} (one per coarser scale), "
                f"received {len(self.coarse_iterations)}"
            )
        if self.init is not None and self.init not in INITS and not Path(self.init).is_file():
            raise TfnstError(f"init must be one of {', '.join(INITS)} or an image file, received {self.init!r}")
        if self.vgg_weights != "imagenet" and not Path(self.vgg_weights).is_file():
            raise TfnstError(f"vgg_weights must be 'imagenet' or a Keras weights file, received {self.vgg_weights!r}")


def check_request(
    config: StyleConfig, *, has_content: bool, styles: int, masks: int | None = None, style_masks: int | None = None
) -> None:
    """The rules between the options and the inputs of one call, in one place.

    Args:
        config: the call's options (already validated).
        has_content: False for a texture.
        styles: the number of style images.
        masks, style_masks: how many of each were given (None: none).

    Raises:
        TfnstError: naming what does not fit.
    """
    if styles < 1:
        raise TfnstError("at least one style image is needed")
    if config.style_blend is not None and len(config.style_blend) != styles:
        raise TfnstError(f"style_blend has {len(config.style_blend)} weights for {styles} style images")
    if config.style_blend is not None and styles == 1:
        raise TfnstError("style_blend weighs several style images; with one it changes nothing")
    if not has_content:
        for name, on in (
            ("preserve_color", config.preserve_color is not None),
            ("lap_weight", config.lap_weight > 0),
            ("init='content'", config.init == "content"),
        ):
            if on:
                raise TfnstError(f"{name} needs a content image; a texture has none")
    if has_content and config.seed is not None and config.init != "noise":
        raise TfnstError(
            "seed makes the noise of init noise reproducible; a stylization starts from the "
            "content unless init is noise"
        )
    if style_masks is not None and masks is None:
        raise TfnstError("style masks need masks (where each style applies)")
    for name, count in (("masks", masks), ("style masks", style_masks)):
        if count is not None and count != styles:
            raise TfnstError(f"{count} {name} for {styles} style images: one each")
    if masks is not None and config.style_blend is not None:
        raise TfnstError("masks say where each style applies; they do not blend (leave style_blend out)")
    if masks is not None and config.hist_weight > 0:
        raise TfnstError(
            "the histogram loss matches every style's histogram over the whole image; it is "
            "not masked (leave hist_weight out with masks)"
        )


TRAIN = ("train",)


@dataclass(frozen=True)
class TrainConfig(_Options):
    """Options of training a feed-forward stylization network (`tfnst.networks.train`).

    The loss is Johnson, Alahi & Fei-Fei's (2016) by default: content at relu3_3
    (``block3_conv3``), Gram style at relu1_2, relu2_2, relu3_3 and relu4_3 (the layers of
    their code, jcjohnson/fast-neural-style), plus total variation, with tfnst's
    normalised terms (each about 1 for a random image). docs/networks.md's recipe trains
    on the optimization's layers instead, the objective tfnst optimizes and scores.
    """

    size: int = option(
        256, "training crops are SIZExSIZE (Johnson et al.: 256)", Rule("int", minimum=MIN_SIDE), commands=TRAIN
    )
    steps: int = option(2000, "training steps (batches)", Rule("int", above=0), commands=TRAIN)
    batch_size: int = option(4, "images per step (Johnson et al.: 4)", Rule("int", above=0), commands=TRAIN)
    learning_rate: float = option(
        1e-3, "Adam's learning rate (Johnson et al.: 1e-3)", Rule("number", above=0), commands=TRAIN
    )
    learning_rate_decay: str = option(
        "constant",
        "the learning rate over the steps: constant (Johnson et al.), or cosine, from "
        "--learning-rate down to 0 at the last step",
        Rule("text", choices=LEARNING_RATE_DECAYS),
        commands=TRAIN,
    )
    content_weight: float = option(1.0, "α, the content term's weight", Rule("number", minimum=0), commands=TRAIN)
    style_weight: float = option(10.0, "β, the style term's weight", Rule("number", minimum=0), commands=TRAIN)
    tv_weight: float = option(20.0, "γ, the total variation weight", Rule("number", minimum=0), commands=TRAIN)
    width: int = option(
        32,
        "filters of the first layer; the network has 2x and 4x that deeper "
        "(Johnson et al.: 32; 16 is a small network for CPUs)",
        Rule("int", above=0),
        commands=TRAIN,
    )
    depth: int = option(5, "residual blocks (Johnson et al.: 5)", Rule("int", above=0), commands=TRAIN)
    upsampling: str = option(
        "bilinear",
        "the network's two 2x upsamplings, each before a convolution: bilinear, or nearest "
        "(Odena et al. 2016's resize-convolution; its staircase printed a grid of 2 and 4 pixels "
        "on flat areas, docs/networks.md)",
        Rule("text", choices=UPSAMPLINGS),
        commands=TRAIN,
    )
    content_layers: tuple[str, ...] = option(
        ("block3_conv3",), "content layers", Rule("layers", nonempty=True), commands=TRAIN
    )
    style_layers: tuple[str, ...] = option(
        ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"),
        "style layers",
        Rule("layers", nonempty=True),
        commands=TRAIN,
    )
    crop_size: int | None = option(
        None,
        "side of the training crops, cut from photos scaled for --size (the style is fitted to "
        "--size too): a smaller crop costs the loss network less per step at the same "
        "resolution; unset: --size",
        Rule("int", minimum=MIN_SIDE, optional=True),
        commands=TRAIN,
    )
    loss_jitter: int = option(
        8,
        "the loss network sees each step's outputs and contents cut to a window this many "
        "pixels smaller, at an offset drawn per step, so that its max-pooling grid and the "
        "network's stride grid change phase every step (a fixed phase trained a grid into "
        "flat areas: docs/networks.md, The grid); 0: off",
        Rule("int", minimum=0),
        commands=TRAIN,
    )
    crops: int = option(
        4,
        "fixed crops taken from each training image (the same every epoch, so a "
        "resumed training sees the data an uninterrupted one would)",
        Rule("int", above=0),
        commands=TRAIN,
    )
    precision: str = option(
        "auto",
        "the loss network's (VGG19's) precision; the trained network is float32",
        Rule("text", choices=PRECISIONS),
        commands=TRAIN,
    )
    seed: int = option(0, "order of the images and of the crops", Rule("int", minimum=0), commands=TRAIN)
    stability_weight: float = option(
        0.0,
        "weight of the stability term: the mean squared difference between the network's "
        "output on a crop moved by a few pixels (plus a little noise) and its output on the "
        "crop moved the same way, so that video frames do not flicker (Huang et al. 2017's "
        "temporal loss on synthetic motion; docs/video.md); 0: off",
        Rule("number", minimum=0),
        commands=TRAIN,
    )
    stability_shift: int = option(
        4,
        "the stability term's largest move, in pixels along each axis (4 covers every "
        "phase of the network's two stride-2 convolutions)",
        Rule("int", above=0, needs=("stability_weight above 0", lambda c: c.stability_weight > 0)),
        commands=TRAIN,
    )

    def _check_together(self) -> None:
        if self.crop_size is not None and self.crop_size > self.size:
            raise TfnstError(f"crop_size must be at most size ({self.size}), received {self.crop_size}")
        side = self.crop_size or self.size
        if side - self.loss_jitter < MIN_SIDE:
            raise TfnstError(
                f"loss_jitter leaves the loss network windows of {side - self.loss_jitter} pixels; "
                f"it needs at least {MIN_SIDE}: lower loss_jitter or raise the crops' side"
            )
        if self.stability_shift >= side:
            which = "size" if self.crop_size is None else "crop_size"
            raise TfnstError(f"stability_shift must be under {which} ({side}), received {self.stability_shift}")


def check_layers_used(config: StyleConfig, has_content: bool = True) -> None:
    """Refuse layer options whose term is off: the command line's rule (a `Stylizer` may be
    built with layers whose term a later call turns on, so the library does not refuse it).

    Raises:
        TfnstError: naming the option and the weight it needs.
    """
    for name, weight, needs_content in (
        ("content_layers", "content_weight", True),
        ("hist_layers", "hist_weight", False),
        ("lap_pool", "lap_weight", True),
    ):
        changed = getattr(config, name) != StyleConfig.__dataclass_fields__[name].default
        if changed and getattr(config, weight) <= 0 and (has_content or not needs_content):
            raise TfnstError(f"{name} needs {weight} above 0; without it, it changes nothing")
