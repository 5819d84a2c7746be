"""How much memory a run needs, estimated before it starts, and how much there is.

Refusing with an estimate beats being killed by the OOM killer minutes into a run, and
the estimate decides when a run goes in tiles (`tfnst.tiling`).

The model is fitted to measured peaks (VmHWM of a fresh process per run) by
``python -m benchmarks.memory``, per machine kind (`machine_kind`: the tables, their
commands and the machines are in docs/reliability.md): a fixed part (TensorFlow, the
weights, traced graphs) plus a multiple of the bytes of VGG19's float32 activations up
to the deepest layer used (of the whole image, or of one tile with its margins); then
the whole-image buffers of a tiled run and an L-BFGS's correction pairs, what the
options add, and a margin.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

from tfnst.config import LBFGS_HISTORY, LBFGS_MIN_HISTORY, StyleConfig
from tfnst.errors import TfnstError
from tfnst.vgg_layers import CONV_LAYERS, LAYER_CHANNELS, layer_depth, layer_stride

ALIGN = 16  # tiles are multiples of this (`tfnst.tiling.ALIGN`)

GB = 2**30
# machine kind -> (optimizer, precision) -> (fixed bytes, bytes per byte of float32
# activations): the line no measured peak exceeds by more than MARGIN allows for
# (docs/reliability.md has the rows, the machines and the commands). VGG19 runs other
# kernels on other CPUs, and a fit made on one machine type does not bound another's
# peaks: a 512 px float32 Adam run peaked at 1.21 GB with AVX-512 and at 1.76 GB
# without. The AVX-512 lines are `python -m benchmarks.memory --fit` of its two sizes
# reports; the AVX2 ones were fitted by hand (2026-12-02, before the command): 0.97 to
# 1.13 times what it gives for the same rows (L-BFGS's with its 0.05 GB, below), at
# or above every row's peak / 1.05 but not its least line. L-BFGS's correction
# pairs are not in the fit: they are counted (`pair_bytes`). L-BFGS's fixed parts
# include 0.05 GB for runs inside the test suite (pytest-xdist), which peaked above the
# same runs alone, for a reason not found; the estimate must cover both.
FITS = {
    "avx2": {
        ("adam", "float32"): (0.816 * GB, 4.02),
        ("adam", "bfloat16"): (0.719 * GB, 3.09),
        ("lbfgs", "float32"): (0.857 * GB, 3.53),
        ("lbfgs", "bfloat16"): (0.784 * GB, 2.63),
    },
    "avx512": {
        ("adam", "float32"): (0.746 * GB, 1.95),
        ("adam", "bfloat16"): (0.695 * GB, 1.60),
        ("lbfgs", "float32"): ((0.763 + 0.05) * GB, 1.94),
        ("lbfgs", "bfloat16"): ((0.719 + 0.05) * GB, 1.30),
    },
}


def machine_kind(cpu_flags: set[str] | None = None) -> str:
    """Which measured fit bounds this machine's peaks: "avx512" (AVX-512 without AMX,
    measured on an AMD EPYC with AVX512_BF16), "avx2" (x86 without AVX-512), or
    "unmeasured" (AMX, whose bfloat16 convolutions run other kernels, and CPUs without
    these flags), which takes the larger of the two fits' fixed parts and slopes (today
    the AVX2 fit's, in the hope that it bounds a machine it was not fitted on).

    Args:
        cpu_flags: stands in for /proc/cpuinfo's flags in tests.
    """
    from tfnst.features import _cpu_flags

    flags = _cpu_flags() if cpu_flags is None else cpu_flags
    if "avx512f" in flags and not flags & {"amx_tile", "amx_bf16"}:
        return "avx512"
    if "avx2" in flags and "avx512f" not in flags:
        return "avx2"
    return "unmeasured"


@functools.cache
def _this_machine_kind() -> str:
    return machine_kind()


def fit(optimizer: str, precision: str, kind: str | None = None) -> tuple[float, float]:
    """(fixed bytes, slope) of the peak model for this optimizer ("adam" or "lbfgs") and
    resolved precision on a machine of ``kind`` (default: this one, `machine_kind`)."""
    kind = _this_machine_kind() if kind is None else kind
    if kind in FITS:
        return FITS[kind][(optimizer, precision)]
    fixed, slope = zip(*(lines[(optimizer, precision)] for lines in FITS.values()))
    return max(fixed), max(slope)


# Each coarser coarse-to-fine scale: its traced step and targets, kept while the finer
# scales run (measured in docs/reliability.md). Its optimizer state is not kept (at
# 1024 px a second scale adds nothing measurable: docs/tiling.md, many small tiles).
SCALE_EXTRA = 0.05 * GB
# Computing a style's targets (a forward pass of the style image, at its own size).
STYLE_FORWARD = 0.95
# Per byte of float32 activations: what the statistic's own tensors add.
STATISTIC_EXTRA = {"meancov": 0.3, "discriminator": 2.2}
# Per byte of a histogram layer's features (sorting and ranking them).
HISTOGRAM_EXTRA = 4.5
# The estimate is the fit times this: the fit may fall 5% short of a peak, and the
# estimate should not fall short of the scatter between repeats of a run.
MARGIN = 1.11
# Whole-image buffers of a tiled run, in floats per pixel, beyond L-BFGS's pairs
# (measured in docs/tiling.md). Adam: the image, its moments, the accepted state they
# roll back to, the average, the best image, the gradient and its tiles'
# contributions, and the transients of the whole-image TV term. L-BFGS: the iterate
# and its gradient, the candidate and its gradient, the best image, the two-loop
# recursion's and the TV term's transients.
IMAGE_FLOATS_PER_PIXEL = {"adam": 3 * 20, "lbfgs": 3 * 18}
# An L-BFGS short of memory keeps fewer pairs (down to LBFGS_MIN_HISTORY) before its
# tiles shrink below this side: the smaller a tile, the more of its compute goes to
# its margins, while fewer pairs cost little (docs/tiling.md).
PAIRS_BEFORE_TILE = 512


def activation_floats(hw: tuple[int, int], depth: int) -> int:
    """Floats of VGG19's forward activations (conv outputs) up to layer ``depth``, and the image."""
    h, w = hw
    floats = 3 * h * w
    for name in CONV_LAYERS[:depth]:
        stride = layer_stride(name)
        floats += (h // stride) * (w // stride) * LAYER_CHANNELS[name]
    return floats


def layer_floats(hw: tuple[int, int], layers) -> int:
    """Floats of these layers' features for an image of ``hw``."""
    return sum((hw[0] // layer_stride(n)) * (hw[1] // layer_stride(n)) * LAYER_CHANNELS[n] for n in layers)


def _fitted_optimizer(config: StyleConfig) -> str:
    """Which fitted optimizer's figures apply: tensorflow-probability's L-BFGS keeps
    fewer correction pairs (10) than tfnst's, so tfnst's L-BFGS figures bound it (its
    line search's buffers are not measured separately)."""
    name = config.optimizer_name
    return "lbfgs" if name == "tfp-lbfgs" else name


class Layout(NamedTuple):
    """How a run of one size is laid out in memory: its tile (None: whole) and, for an
    L-BFGS, its correction pairs."""

    tile: int | None
    history: int


def pair_bytes(hw: tuple[int, int], history: int) -> int:
    """An L-BFGS's correction pairs at ``hw``: 2 x ``history`` float32 images."""
    return 4 * 2 * history * 3 * hw[0] * hw[1]


def estimate_bytes(
    hw: tuple[int, int],
    config: StyleConfig,
    has_content: bool = True,
    tile: int | None = None,
    history: int = LBFGS_HISTORY,
    kind: str | None = None,
) -> int:
    """Peak memory of optimizing an image of ``hw`` (H, W) with ``config``; with
    ``tile``, of doing it in tiles of that size (`tfnst.tiling`); an L-BFGS keeping
    ``history`` correction pairs; on a machine of ``kind`` (`machine_kind`; default
    this one)."""
    from tfnst import tiling
    from tfnst.features import resolve_precision
    from tfnst.objective import feature_layers
    from tfnst.plan import plan

    layers = feature_layers(config, has_content)
    depth = max(layer_depth(n) for n in layers)
    optimizer = _fitted_optimizer(config)
    fixed, slope = fit(optimizer, resolve_precision(config.precision), kind)
    slope += STATISTIC_EXTRA.get(config.style_statistic, 0.0)
    work = hw if tile is None else tuple(min(d, tile + 2 * tiling.margin(layers)) for d in hw)
    optimizing = slope * 4 * activation_floats(work, depth)
    if config.hist_weight > 0 and tile is None:
        optimizing += HISTOGRAM_EXTRA * 4 * layer_floats(hw, config.hist_layers)
    style_side = max(config.style_scale, 1.0)  # a larger style is a larger forward pass
    style = tuple(round(d * style_side) for d in work)
    targets = STYLE_FORWARD * 4 * activation_floats(style, depth)
    buffers = pair_bytes(hw, history) if optimizer == "lbfgs" else 0
    if tile is not None:
        content = layer_floats(hw, config.content_layers) if has_content and config.content_weight > 0 else 0
        buffers += 4 * (IMAGE_FLOATS_PER_PIXEL[optimizer] * hw[0] * hw[1] + content)
    coarser = len({scale.hw for scale in plan(config, hw)}) - 1
    return int(MARGIN * (fixed + max(optimizing, targets) + buffers + coarser * SCALE_EXTRA))


def _too_large(hw, config, has_content, need, budget, tile=None) -> TfnstError:
    pairs = f" with {LBFGS_MIN_HISTORY} L-BFGS pairs" if _fitted_optimizer(config) == "lbfgs" else ""
    where = f"in tiles of {tile} px" if tile else "even in tiles of 64 px"
    return TfnstError(
        f"a {hw[1]}x{hw[0]} run needs about {gigabytes(need)} {where}{pairs}, "
        f"more than the {gigabytes(budget)} allowed; raise --max-memory or use a smaller size"
        + (" or tile" if tile else "")
    )


def tile_for(
    hw: tuple[int, int], config: StyleConfig, has_content: bool, budget: int, history: int = LBFGS_HISTORY
) -> int:
    """The largest tile (a multiple of 16) whose run of ``hw`` fits ``budget`` bytes.

    Raises:
        TfnstError: when not even 64-pixel tiles fit.
    """
    # The estimate grows with the tile: the smallest tile first (a size that does not fit
    # even so is refused at once), then a bisection over multiples of 16, not a walk down
    # from the image's side (millions of estimates for a side of 10^8 px).
    need = estimate_bytes(hw, config, has_content, 64, history)
    if need > budget:
        raise _too_large(hw, config, has_content, need, budget)
    low, high = 4, max(4, max(hw) // 16)  # in units of 16 px: low fits
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_bytes(hw, config, has_content, 16 * middle, history) <= budget:
            low = middle
        else:
            high = middle - 1
    return 16 * low


def history_for(
    hw: tuple[int, int], config: StyleConfig, has_content: bool, budget: int | None, tile: int | None
) -> int:
    """An L-BFGS's correction pairs for a run of ``hw`` in tiles of ``tile`` (None:
    whole) within ``budget``: `LBFGS_HISTORY`, or the most that fit, not fewer than
    `LBFGS_MIN_HISTORY` (the estimate then exceeds the budget; the caller refuses)."""
    if _fitted_optimizer(config) != "lbfgs" or budget is None:
        return LBFGS_HISTORY
    for history in range(LBFGS_HISTORY, LBFGS_MIN_HISTORY, -1):
        if estimate_bytes(hw, config, has_content, tile, history) <= budget:
            return history
    return LBFGS_MIN_HISTORY


def layout(
    hw: tuple[int, int], config: StyleConfig, has_content: bool, budget: int | None, tile: int | None = None
) -> Layout:
    """The tile and L-BFGS pairs of a run of ``hw`` within ``budget`` bytes (None: no
    limit). With ``tile`` (``--tile``) the tile is the user's and the pairs are the
    most that fit beside it; else the whole image with `LBFGS_HISTORY` pairs if it
    fits; else tiles, with the most pairs (at least `LBFGS_MIN_HISTORY`) that leave
    room for tiles of `PAIRS_BEFORE_TILE` px, then the largest tile that fits beside them.

    Raises:
        TfnstError: when not even 64-pixel tiles with `LBFGS_MIN_HISTORY` pairs fit, or
            ``tile`` does not fit with them.
    """
    if tile is not None:
        history = history_for(hw, config, has_content, budget, tile)
        need = estimate_bytes(hw, config, has_content, tile, history)
        if budget is not None and need > budget:
            raise _too_large(hw, config, has_content, need, budget, tile)
        return Layout(tile, history)
    if budget is None or estimate_bytes(hw, config, has_content) <= budget:
        return Layout(None, LBFGS_HISTORY)
    side = min(PAIRS_BEFORE_TILE, ALIGN * math.ceil(max(hw) / ALIGN))
    history = history_for(hw, config, has_content, budget, side)
    return Layout(tile_for(hw, config, has_content, budget, history), history)


def _status_bytes(field: str) -> int | None:
    """A size field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS): what an estimate of the whole
    process's peak already has in hand."""
    return _status_bytes("VmRSS") or 0


def peak_bytes() -> int | None:
    """This process's own peak resident memory (VmHWM), what the model is fitted to.
    Not ru_maxrss: Linux carries that across fork+exec from the parent."""
    return _status_bytes("VmHWM")


def additional_bytes(
    size: tuple[int, int],
    config: StyleConfig,
    has_content: bool = True,
    tile: int | None = None,
    history: int = LBFGS_HISTORY,
) -> int:
    """What a run still needs beyond what this process holds: the estimated peak less
    the resident memory (TensorFlow, the weights, … are counted once, not again)."""
    return max(0, estimate_bytes(size, config, has_content, tile, history) - resident_bytes())


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, capped by a cgroup limit."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        return None
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            room = int(limit) - usage
            available = room if available is None else min(available, room)
        break
    return available


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.1f} GB"
