"""What tracing costs a coarse-to-fine run: a fresh `Stylizer`, 3 scales, 2 iterations a
scale, timed cold (every trace built) and again warm (all reused).

    python -m benchmarks.tracing [--size 256] [--optimizers lbfgs,adam]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--optimizers", default="lbfgs,adam")
    args = parser.parse_args(argv)

    import tfnst
    from benchmarks.run import cpu_model
    from benchmarks.worker import images

    content, style = images(args.size)
    print(f"{cpu_model()}, {os.cpu_count()} cores; longest side {args.size}, scales=3")
    for optimizer in args.optimizers.split(","):
        stylizer, seconds = (
            tfnst.Stylizer(precision="float32", tolerance=0.0, **({"ema_decay": 0.0} if optimizer == "adam" else {})),
            [],
        )
        for _ in ("cold", "warm"):
            start = time.perf_counter()
            stylizer.stylize(content, style, size=args.size, iterations=2, scales=3, optimizer=optimizer)
            seconds.append(time.perf_counter() - start)
        print(f"{optimizer}: cold {seconds[0]:.1f} s, warm {seconds[1]:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
