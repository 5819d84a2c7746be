"""One measurement in its own process (so peak memory is its own):

    python -m benchmarks.worker IMPL SIZE ITERATIONS [OPTIONS_JSON]

IMPL is tfnst-adam, tfnst-lbfgs, tfnst-adam-bf16 (precision="bfloat16"), tfnst-adam-xla
(Adam's step compiled with XLA, ``jit_compile=True``: an experiment, not an option), reference
or pastiche; or, for the feature extractor alone (forward and input gradient, as a
stylization step uses it), features-tfnst (`tfnst.features.VGG19`) and features-keras (the
Keras-layer VGG19 of `keras.applications`, the path tfnst used before its own module).
tfnst rows use float32 and plain Adam unless named otherwise, and never stop early.
Prints one JSON line: seconds per iteration (after warm-up iterations that include
tracing), peak RSS.

IMPL ``train`` times training steps of a feed-forward network (OPTIONS: ``width``,
``depth``, ``batch_size``, ``precision`` of the loss network) on data/photos at SIZE and
reports images per second; ``apply`` times one forward pass of such a network on the
content photo at SIZE (the longest side), in seconds per image.

IMPL ``stylize`` is a whole run as a user makes it: `tfnst.Stylizer(**OPTIONS)` on the
bundled content photo and a style (``"style"`` in OPTIONS, a file name in examples/;
default starry_night.jpg), from the file paths, timed from before TensorFlow is imported
to the result; it also reports the iterations run, why it stopped, tfnst's memory
estimate, and with ``"score": true`` the result's float32 objective and terms; with
``"save": PATH`` it writes the result there.
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WARMUP = 2
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def images(size, style_name="starry_night.jpg"):
    from tfnst.image_io import read_image
    from tfnst.resize import fit_size, resize

    content = read_image(os.path.join(EXAMPLES, "tubingen.jpg"))
    content = resize(content, fit_size(content.shape[:2], size)).numpy()
    style = resize(read_image(os.path.join(EXAMPLES, style_name)), content.shape[:2]).numpy()
    return content, style


# The settings the speed rows were measured with before the quick-start defaults
# (float32 Adam at one size, the last iterate, no early stop): a row's name says what differs.
PLAIN = dict(optimizer="adam", scales=1, precision="float32", learning_rate=0.02, ema_decay=0.0, tolerance=0.0)


def time_tfnst(optimizer, size, iterations, precision="float32"):
    import tfnst

    content, style = images(size)
    history = tfnst.History()
    options = {
        **PLAIN,
        "optimizer": optimizer,
        "precision": precision,
        **({"ema_decay": None, "learning_rate": None} if optimizer == "lbfgs" else {}),
    }
    tfnst.Stylizer(**options).stylize(content, style, size=size, iterations=WARMUP + iterations, callbacks=[history])
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


def time_features(impl, size, iterations):
    """Forward to block5_conv1 and the gradient with respect to the image, compiled."""
    import tensorflow as tf

    from tfnst.vgg_layers import CONV_LAYERS

    content, _ = images(size)
    layers = list(CONV_LAYERS[: CONV_LAYERS.index("block5_conv1") + 1])
    if impl == "features-tfnst":
        from tfnst.features import VGG19

        extract = VGG19(layers)
    else:
        from benchmarks.reference import tutorial_features

        extract = tutorial_features(layers)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.add_n([tf.reduce_mean(tf.square(f)) for f in extract(x).values()])
        return tape.gradient(loss, x)

    x = tf.constant(content[None])
    for _ in range(WARMUP):
        step(x).numpy()
    start = time.perf_counter()
    for _ in range(iterations):
        step(x).numpy()
    return (time.perf_counter() - start) / iterations, content.shape[:2]


def steady_seconds_per_iteration(records) -> float:
    """Seconds per iteration after the first `WARMUP` (which include tracing)."""
    if len(records) <= WARMUP:
        return records[-1].elapsed / len(records)
    return (records[-1].elapsed - records[WARMUP - 1].elapsed) / (len(records) - WARMUP)


def run_stylize(size, iterations, options):
    start = time.perf_counter()
    import tfnst
    from tfnst import memory

    names = options.pop("style", "starry_night.jpg")
    style = [os.path.join(EXAMPLES, n) for n in names] if isinstance(names, list) else os.path.join(EXAMPLES, names)
    content = os.path.join(EXAMPLES, "tubingen.jpg")
    score, save = options.pop("score", False), options.pop("save", None)
    stylizer = tfnst.Stylizer(**options)
    history = tfnst.History()
    run = stylizer.run(content, style, size=size, iterations=iterations, callbacks=[history])
    out = run.image
    seconds = time.perf_counter() - start
    config = stylizer.config.replace(size=size, iterations=iterations)
    tile, pairs = stylizer._layout(config, out.shape[:2], True)
    result = {
        "seconds": seconds,
        "hw": list(out.shape[:2]),
        "peak_rss_bytes": peak_rss_bytes(),
        "estimate_bytes": memory.estimate_bytes(out.shape[:2], config, True, tile, pairs),
        "tile": tile,
        "lbfgs_pairs": pairs if config.optimizer_name != "adam" else None,
        "iterations_run": history.records[-1].iteration if history.records else 0,
        "stop_reason": run.stop_reason,
        "seconds_per_iteration": steady_seconds_per_iteration(history.records),
    }
    if save:
        tfnst.save_image(out, save)
    if score:
        from benchmarks.quality import scorer
        from tfnst.image_io import read_image

        content_image = read_image(content)
        content_image = tfnst.resize.resize(content_image, out.shape[:2]).numpy()
        first = style[0] if isinstance(style, list) else style
        style_image = stylizer.engine(stylizer.config, True).fit_style(read_image(first), out.shape[:2]).numpy()
        result["scores"] = scorer(content_image, style_image)(out)
    return result


def time_train(size, iterations, options):
    import keras

    from tfnst.networks import train

    marks = []

    def mark(batch, logs):
        marks.append(time.perf_counter())

    batch = options.get("batch_size", 4)
    photos = os.path.join(os.path.dirname(EXAMPLES), "data", "photos")
    train(
        os.path.join(EXAMPLES, "starry_night.jpg"),
        photos,
        size=size,
        steps=WARMUP + iterations,
        batch_size=batch,
        width=options.get("width", 32),
        depth=options.get("depth", 5),
        precision=options.get("precision", "auto"),
        crops=8,
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=mark)],
    )
    seconds = (marks[-1] - marks[WARMUP - 1]) / (len(marks) - WARMUP)
    return {"seconds_per_step": seconds, "images_per_second": batch / seconds, "hw": [size, size]}


def time_apply(size, iterations, options):
    import numpy as np

    from tfnst.networks import StyleTransformer

    content, _ = images(size)
    model = StyleTransformer(options.get("width", 32), options.get("depth", 5))
    run = __import__("tensorflow").function(lambda x: model(x, training=False))
    x = content[None].astype(np.float32)
    for _ in range(WARMUP):
        run(x).numpy()
    start = time.perf_counter()
    for _ in range(iterations):
        run(x).numpy()
    return {"seconds_per_image": (time.perf_counter() - start) / iterations, "hw": list(content.shape[:2])}


def peak_rss_bytes() -> int:
    """This process's own peak RSS (`tfnst.memory.peak_bytes`: VmHWM, not ru_maxrss,
    which Linux carries across fork+exec from the runner that loaded TensorFlow)."""
    from tfnst.memory import peak_bytes

    return peak_bytes() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    impl, size, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    runs = {"stylize": run_stylize, "train": time_train, "apply": time_apply}
    if impl in runs:
        result = runs[impl](size, iterations, dict(options))
        print(
            json.dumps(
                {
                    "impl": impl,
                    "size": size,
                    "iterations": iterations,
                    "options": options,
                    "peak_rss_bytes": peak_rss_bytes(),
                    **result,
                }
            )
        )
        return
    if impl == "tfnst-adam-xla":
        import tensorflow as tf

        from tfnst.optimizers import Adam

        init = Adam.__init__

        def jit_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.compiled_step = tf.function(self.step, jit_compile=True)

        Adam.__init__ = jit_init
        seconds, hw = time_tfnst("adam", size, iterations)
    elif impl.startswith("features-"):
        seconds, hw = time_features(impl, size, iterations)
    elif impl == "tfnst-adam-bf16":
        seconds, hw = time_tfnst("adam", size, iterations, precision="bfloat16")
    elif impl.startswith("tfnst-"):
        seconds, hw = time_tfnst(impl[len("tfnst-") :], size, iterations)
    elif impl == "reference":
        seconds, hw = time_reference(size, iterations)
    elif impl == "pastiche":
        seconds, hw = time_pastiche(size, iterations)
    else:
        raise SystemExit(f"unknown implementation {impl}")
    peak = peak_rss_bytes()
    print(
        json.dumps(
            {
                "impl": impl,
                "size": size,
                "hw": list(hw),
                "iterations": iterations,
                "seconds_per_iteration": seconds,
                "peak_rss_bytes": peak,
            }
        )
    )


if __name__ == "__main__":
    main()
