"""Adam settings against the time-to-quality target: constant rates, decaying schedules,
and an exponential moving average (EMA) of the iterates, all on tfnst's objective.

    python -m benchmarks.adam_settings [--size 256] [--iterations 500]

Prints the float32 objective of the iterate (and of its EMAs) every 25 iterations.
The target is the constant-rate iterate's loss at the last iteration, as in
`benchmarks.quality`. An exploration, not a feature: tfnst does not offer an EMA yet.
"""

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from benchmarks.worker import images
    from tfnst.config import StyleConfig
    from tfnst.objective import StyleTransferObjective
    from tfnst.optimizers import Adam

    content, style = images(args.size)
    objective = StyleTransferObjective(StyleConfig())
    targets = objective.targets(content, style)
    adam = Adam(objective)
    start = tf.constant(content)

    def run(iterations, rate, emas=()):
        """{iteration: [loss of the iterate, loss of each EMA]} every 25 iterations."""
        state, averages, scores = adam.init_state(start, targets), {e: start for e in emas}, {}
        for i in range(1, iterations + 1):
            state = {**state, "lr": tf.constant(rate(i), tf.float32)}
            state = adam.step(state, targets)[0]
            for e in emas:
                averages[e] = e * averages[e] + (1 - e) * state["x"]
            if i % 25 == 0 or i == iterations:
                scores[i] = [round(float(objective(x, targets)[0]), 4)
                             for x in (state["x"], *averages.values())]
        return scores

    n = args.iterations
    print("constant 0.02, EMA 0.9 and 0.98:", run(n, lambda i: 0.02, emas=(0.9, 0.98)), flush=True)
    for m in (n // 5, n * 3 // 10, n // 2):
        print(f"cosine 0.02 -> 0 over {m}:",
              run(m, lambda i, m=m: 0.01 * (1 + math.cos(math.pi * (i - 1) / m))), flush=True)
        print(f"linear 0.02 -> 0.002 over {m}:", run(m, lambda i, m=m: 0.02 * (1 - 0.9 * (i - 1) / m)),
              flush=True)
    for rate in (0.04, 0.08):
        print(f"constant {rate}, EMA 0.9:", run(n // 2, lambda i, r=rate: r, emas=(0.9,)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
