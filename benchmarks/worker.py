"""One measurement in its own process (so peak memory is its own):

    python -m benchmarks.worker IMPL SIZE ITERATIONS

IMPL is tfnst-adam, tfnst-lbfgs, tfnst-adam-bf16 (precision="bfloat16"), tfnst-adam-xla
(Adam's step compiled with XLA, ``jit_compile=True``: an experiment, not an option), reference
or pastiche. Prints one JSON line:
seconds per iteration (after warm-up iterations that include tracing), peak RSS.
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WARMUP = 2
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def images(size):
    from tfnst.image_io import fit_size, read_image, resize

    content = read_image(os.path.join(EXAMPLES, "tubingen.jpg"))
    content = resize(content, fit_size(content.shape[:2], size))
    style = resize(read_image(os.path.join(EXAMPLES, "starry_night.jpg")), content.shape[:2])
    return content, style


def time_tfnst(optimizer, size, iterations, precision="float32"):
    import tfnst

    content, style = images(size)
    history = tfnst.History()
    tfnst.Stylizer(optimizer=optimizer, precision=precision).stylize(
        content, style, size=size, iterations=WARMUP + iterations, callbacks=[history])
    records = history.records
    return (records[-1].elapsed - records[WARMUP - 1].elapsed) / (len(records) - WARMUP), content.shape[:2]


def time_reference(size, iterations):
    from benchmarks.reference import Reference

    content, style = images(size)
    ref = Reference(content, style)
    for _ in range(WARMUP):
        ref.step().numpy()
    start = time.perf_counter()
    for _ in range(iterations):
        ref.step().numpy()
    return (time.perf_counter() - start) / iterations, content.shape[:2]


def time_pastiche(size, iterations):
    """pastiche's Python API (PyTorch, CPU), the same weights file, Adam, same images
    (written at the benchmark size so pastiche does no resizing)."""
    import tempfile

    try:
        from pastiche.pastiche import PasticheArtist
    except ImportError as e:
        raise SystemExit(f"pastiche not installed ({e.name})") from None
    from tfnst.image_io import save_image

    content, style = images(size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, n) for n in ("content.png", "style.png")]
        save_image(content, paths[0])
        save_image(style, paths[1])
        artist = PasticheArtist(paths[0], [paths[1]], optimizer="adam", device="cpu")
        for _ in range(WARMUP):
            artist.draw()
        start = time.perf_counter()
        for _ in range(iterations):
            artist.draw()
    return (time.perf_counter() - start) / iterations, content.shape[:2]


def peak_rss_bytes() -> int:
    """This process's own peak RSS. Not ru_maxrss: Linux carries that across fork+exec
    from the parent (the runner, which has loaded TensorFlow), so every worker reported
    at least the runner's peak. VmHWM belongs to this address space alone."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    impl, size, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if impl == "tfnst-adam-xla":
        import tensorflow as tf

        from tfnst.optimizers import Adam

        init = Adam.__init__

        def jit_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self._step = tf.function(self._step_impl, jit_compile=True)

        Adam.__init__ = jit_init
        seconds, hw = time_tfnst("adam", size, iterations)
    elif impl == "tfnst-adam-bf16":
        seconds, hw = time_tfnst("adam", size, iterations, precision="bfloat16")
    elif impl.startswith("tfnst-"):
        seconds, hw = time_tfnst(impl[len("tfnst-"):], size, iterations)
    elif impl == "reference":
        seconds, hw = time_reference(size, iterations)
    elif impl == "pastiche":
        seconds, hw = time_pastiche(size, iterations)
    else:
        raise SystemExit(f"unknown implementation {impl}")
    peak = peak_rss_bytes()
    print(json.dumps({"impl": impl, "size": size, "hw": list(hw), "iterations": iterations,
                      "seconds_per_iteration": seconds, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
