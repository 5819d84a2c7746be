"""Adam settings against the time-to-quality target: learning rates, decaying schedules,
and an exponential moving average (EMA) of the iterates, all on tfnst's objective.

    python -m benchmarks.adam_settings [--size 256] [--iterations 500]
        [--settings 0.02,0.04,0.04@0.9] [--schedules] [--precision bfloat16]

A setting is ``RATE`` or ``RATE@DECAY`` (Adam's ``ema_decay``). Prints, every 25
iterations, the float32 objective of the iterate and, with an EMA, of the average
that Adam returns. The first setting's loss at the last iteration is the target to
compare with, as in `benchmarks.quality` (whose default is the constant 0.02).
``--schedules`` adds cosine and linear decays of the rate (they were worse than a
constant rate at 256 px on 2026-11-24).
"""

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--settings", default="0.02,0.04,0.04@0.9", help="comma-separated RATE or RATE@DECAY")
    parser.add_argument("--schedules", action="store_true", help="also decaying learning rates")
    parser.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "bfloat16"),
        help="of the runs (scores are float32 either way)",
    )
    args = parser.parse_args(argv)

    import tensorflow as tf

    from benchmarks.quality import scorer
    from benchmarks.run import cpu_model
    from benchmarks.worker import images
    from tfnst.config import StyleConfig
    from tfnst.engine import Engine
    from tfnst.features import VGG19
    from tfnst.objective import feature_layers
    from tfnst.optimizers import Adam

    content, style = images(args.size)
    config = StyleConfig(precision=args.precision)
    engine = Engine(config, VGG19(feature_layers(config), precision=args.precision))
    targets = engine.targets(engine.inputs(content, [style]), content.shape[:2])
    score_of = scorer(content, style)
    score = lambda x: round(score_of(x.numpy())["total"], 4)  # noqa: E731

    def run(iterations, rate, ema_decay=0.0):
        """{iteration: [loss of the iterate(, loss of the average)]} every 25 iterations."""
        adam = Adam(engine.objective, ema_decay=ema_decay, patience=config.patience)
        state, scores = adam.init_state(tf.constant(content), targets), {}
        step = tf.function(adam.step)
        for i in range(1, iterations + 1):
            state = step(state._replace(rate=tf.constant(rate(i), tf.float32)), targets)
            if i % 25 == 0 or i == iterations:
                scores[i] = [score(state.core.x)] + ([score(adam.image(state))] if ema_decay else [])
        return scores

    print(f"{cpu_model()}; {content.shape[1]}x{content.shape[0]}; {args.precision}", flush=True)
    n = args.iterations
    for setting in args.settings.split(","):
        rate, _, decay = setting.partition("@")
        print(
            f"constant {rate}" + (f", EMA {decay}" if decay else "") + ":",
            run(n, lambda i, r=float(rate): r, float(decay or 0)),
            flush=True,
        )
    if args.schedules:
        for m in (n // 5, n * 3 // 10, n // 2):
            print(
                f"cosine 0.02 -> 0 over {m}:",
                run(m, lambda i, m=m: 0.01 * (1 + math.cos(math.pi * (i - 1) / m))),
                flush=True,
            )
            print(f"linear 0.02 -> 0.002 over {m}:", run(m, lambda i, m=m: 0.02 * (1 - 0.9 * (i - 1) / m)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
