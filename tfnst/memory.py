"""How much memory a run needs, estimated before it starts, and how much there is.

Refusing with an estimate beats being killed by the OOM killer minutes into a run.
"""

from __future__ import annotations

from tfnst.config import StyleConfig
from tfnst.vgg_layers import CONV_LAYERS, LAYER_CHANNELS, layer_depth, layer_stride

# Measured on the defaults at 512x384 (Adam, to block5_conv1): 1.41 GB peak RSS, of
# which about 0.55 GB is TensorFlow, Keras and the weights whatever the size; the rest
# is about 4x the forward activations.
BASELINE_BYTES = 600 * 2**20
ACTIVATION_FACTOR = 4.0


def activation_floats(size: tuple[int, int], depth: int) -> int:
    """Floats of VGG19's forward activations (conv outputs) up to layer ``depth``, and the image."""
    h, w = size
    floats = 3 * h * w
    for name in CONV_LAYERS[:depth]:
        stride = layer_stride(name)
        floats += (h // stride) * (w // stride) * LAYER_CHANNELS[name]
    return floats


def estimate_bytes(size: tuple[int, int], config: StyleConfig, has_content: bool = True) -> int:
    """Peak memory of optimizing an image of ``size`` (H, W) with ``config``."""
    from tfnst.objective import feature_layers

    depth = max(layer_depth(n) for n in feature_layers(config, has_content))
    return int(BASELINE_BYTES + ACTIVATION_FACTOR * 4 * activation_floats(size, depth))


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS): what an estimate of the whole
    process's peak already has in hand."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def additional_bytes(size: tuple[int, int], config: StyleConfig, has_content: bool = True) -> int:
    """What a run still needs beyond what this process holds: the estimated peak less
    the resident memory (TensorFlow, the weights, … are counted once, not again)."""
    return max(0, estimate_bytes(size, config, has_content) - resident_bytes())


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
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
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
