"""Time to quality: total loss against wall-clock seconds, and the time each method needs
to reach the loss the reference reaches after 500 Adam iterations.

    python -m benchmarks.quality [--quick] [--size 512] [--iterations 500] [--methods ...]

A loss level only compares on one objective, so every method here minimizes tfnst's
default objective (`StyleConfig()`: Gatys content + Gram style + TV), and every
iterate is scored by the float32 objective at the final size, outside the timed
region. The reference is the TF tutorial's loop (its full Keras VGG19 model, a
`tf.Variable`, Keras' Adam, a `tf.function` step; `benchmarks.reference.TutorialLoop`)
on that objective with tfnst's Adam settings: the tutorial's own loss weights and
Adam ε are tuned to its own loss scale, on which no other method's loss is defined.
Each method runs in its own process; its clock starts before its model is built, so
building, targets, tracing and coarse scales all count. A method stops once its own
loss is below the target (or after 1.5 times the reference's total time); with an
average of the iterates (``ema_decay``), whose loss the run does not see, after the
reference's iteration count.

Writes benchmarks/results/time-to-quality-<date>.json and .png and prints a table.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.run import RESULTS, has_bfloat16, report_header, save_report  # noqa: E402

COARSE_TO_FINE = {"scales": 3, "scale_factor": 2**0.5}  # 256, 362, 512 px
# Options of each method (None: the reference); `one` sets iterations. The named methods
# are float32 Adam without averaging or an early stop (`PLAIN`), but for what their name
# adds; tfnst-defaults is `StyleConfig()` as it is (auto precision, averaging, early stop).
from benchmarks.worker import PLAIN  # noqa: E402  (float32 Adam at one size, the last iterate)

LBFGS = {**PLAIN, "optimizer": "lbfgs", "ema_decay": None, "learning_rate": None}
METHODS = {
    "reference": None,
    "tfnst-adam": {**PLAIN},
    "tfnst-adam-bf16": {**PLAIN, "precision": "bfloat16"},
    "tfnst-adam-ema": {**PLAIN, "ema_decay": 0.9},
    "tfnst-adam-ema-bf16": {**PLAIN, "ema_decay": 0.9, "precision": "bfloat16"},
    "tfnst-lbfgs": {**LBFGS},
    "tfnst-c2f": {**PLAIN, **COARSE_TO_FINE},
    "tfnst-c2f-bf16": {**PLAIN, **COARSE_TO_FINE, "precision": "bfloat16"},
    "tfnst-c2f-lbfgs": {**LBFGS, **COARSE_TO_FINE},
    "tfnst-defaults": {},
}


def scorer(content, style, **objective):
    """The float32 objective of `StyleConfig()` (its weights and layers; ``objective``
    overrides them, e.g. other layers) on these images: the one yardstick every method is
    scored by."""
    import tensorflow as tf

    import tfnst
    from tfnst.engine import Engine
    from tfnst.features import VGG19
    from tfnst.objective import feature_layers

    config = tfnst.StyleConfig(**{**objective, "precision": "float32"})
    engine = Engine(config, VGG19(feature_layers(config), precision="float32"))
    targets = engine.targets(engine.inputs(content, [style]), content.shape[:2])

    def score(image) -> dict:
        total, terms = engine.objective(tf.constant(image), targets)[:2]
        return {k: float(v) for k, v in {"total": total, **terms}.items()}

    return score


def _snapshots_and_score(size, run, every):
    """Time ``run(recorder)``, then score its snapshots with the float32 objective."""
    from benchmarks.worker import images

    content, style = images(size)
    snaps = []  # (seconds, iteration, image)
    start = time.perf_counter()
    run(content, style, start, snaps, every)
    total = time.perf_counter() - start
    score = scorer(content, style)
    curve = [[t, score(im)["total"], it] for t, it, im in snaps]
    return {"hw": list(content.shape[:2]), "seconds": total, "curve": curve}


def run_reference(size, iterations, every):
    import tfnst
    from benchmarks.reference import TutorialLoop, tutorial_features
    from tfnst.objective import Objective

    def run(content, style, start, snaps, every):
        cfg = tfnst.StyleConfig()
        objective = Objective(cfg, tutorial_features(cfg.style_layers + cfg.content_layers))
        loop = TutorialLoop(objective, objective.targets(content, [style]), content)
        for i in range(1, iterations + 1):
            loop.step()
            if i % every == 0 or i in (1, iterations):
                snaps.append((time.perf_counter() - start, i, loop.image.numpy()))

    return _snapshots_and_score(size, run, every)


def run_tfnst(size, iterations, every, options, stop_below, time_limit):
    import tfnst

    class Recorder(tfnst.Callback):
        """Snapshots of the final scale; stops below the target loss or past the limit."""

        def __init__(self, start, snaps, every, final_hw):
            self.start, self.snaps, self.every, self.final_hw = start, snaps, every, final_hw

        def on_iteration_end(self, record, image):
            elapsed = time.perf_counter() - self.start
            self.stop_requested = elapsed > time_limit or (record.hw == self.final_hw and record.loss < stop_below)
            if record.hw == self.final_hw and (
                record.iteration % self.every == 0
                or record.iteration == 1
                or self.stop_requested
                or record.iteration == record.iterations
            ):
                self.snaps.append((elapsed, record.iteration, image.numpy()))

    def run(content, style, start, snaps, every):
        options.setdefault("iterations", iterations)
        stylizer = tfnst.Stylizer(**options)
        stylizer.stylize(content, style, size=size, callbacks=[Recorder(start, snaps, every, tuple(content.shape[:2]))])

    return _snapshots_and_score(size, run, every)


def one(method, size, iterations, stop_below, time_limit, c2f_iterations):
    options = METHODS[method]
    lbfgs = options is not None and options.get("optimizer") == "lbfgs"
    every = 2 if lbfgs else 5
    if options is None:
        return run_reference(size, iterations, every)
    options = dict(options)
    if options.get("ema_decay") or not options:
        # The loss a callback sees is the iterate's, not the average's (which is what gets
        # scored), so it cannot tell when to stop: run the reference's iteration count.
        options["iterations"], stop_below = iterations, 0.0
    elif options.get("scales", 1) > 1:  # coarse-to-fine (the plain settings pin one scale)
        options["iterations"] = options["coarse_iterations"] = c2f_iterations // (3 if lbfgs else 1)
    elif lbfgs:
        options["iterations"] = iterations // 2
    else:  # Adam: room to cross the target a little after the reference's last iteration
        options["iterations"] = iterations * 6 // 5
    return run_tfnst(size, iterations, every, options, stop_below, time_limit)


def time_to(curve, target):
    """Seconds and iteration of the first scored iterate at or below ``target``."""
    for seconds, loss, iteration in curve:
        if loss <= target:
            return seconds, iteration
    return None, None


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, r in report["methods"].items():
        if "curve" in r and r["curve"]:
            seconds, losses, _ = zip(*r["curve"])
            ax.plot(seconds, losses, label=method, lw=2 if method == "reference" else 1.2)
    ax.axhline(
        report["target_loss"], color="gray", ls="--", lw=0.8, label=f"reference after {report['iterations']} iterations"
    )
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock seconds (build, targets, tracing and coarse scales included)")
    ax.set_ylabel("tfnst objective (float32)")
    ax.set_title(f"{report['hw'][1]}x{report['hw'][0]}, {report['cpu']}", fontsize=9)
    top = report["methods"]["reference"]["curve"][0][1]
    ax.set_ylim(report["target_loss"] * 0.7, top * 1.2)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(report) -> str:
    """Time to the target, and to within 1% of it: the target lies on the flat tail of
    every curve, where a percent of loss costs minutes."""
    ref_seconds = report["methods"]["reference"]["seconds"]
    target = report["target_loss"]
    rows = [
        "| method | reaches target after | iteration | of reference time | within 1% after "
        "| of reference time | final loss |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, r in report["methods"].items():
        if "error" in r:
            rows.append(f"| {method} | n/a ({r['error']}) | | | | | |")
            continue
        cells = []
        for level in (target, 1.01 * target):
            seconds, iteration = time_to(r["curve"], level)
            cells += (
                [f"{seconds:.0f} s", str(iteration), f"{100 * seconds / ref_seconds:.0f}%"]
                if seconds is not None
                else ["not reached", "", ""]
            )
        del cells[4]  # one iteration column is enough
        final = r["curve"][-1][1] if r["curve"] else float("nan")
        rows.append(f"| {method} | " + " | ".join(cells) + f" | {final:.4g} |")
    return "\n".join(rows)


def measure(method, args, stop_below, time_limit):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.quality",
            "--method",
            method,
            "--size",
            str(args.size),
            "--iterations",
            str(args.iterations),
            "--c2f-iterations",
            str(args.c2f_iterations),
            "--stop-below",
            repr(stop_below),
            "--time-limit",
            repr(time_limit),
        ],
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if r.returncode != 0:
        return {"error": ((r.stderr.strip().splitlines() or ["failed"])[-1])[:200]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 px, 20 iterations (a smoke check)")
    parser.add_argument("--size", type=int)
    parser.add_argument("--iterations", type=int, help="the reference's Adam iterations (default 500)")
    parser.add_argument(
        "--c2f-iterations", type=int, help="Adam iterations per coarse-to-fine scale (L-BFGS: a third); default 150"
    )
    parser.add_argument(
        "--methods",
        help="comma-separated, from "
        + ",".join(METHODS)
        + "; default all (bf16 ones only on CPUs with bfloat16 instructions)",
    )
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument(
        "--name",
        help="file name stem of the report; default time-to-quality-<date> (quick-time-to-quality-<date> with --quick)",
    )
    parser.add_argument("--table", metavar="JSON", help="print the table of a saved report and exit")
    parser.add_argument("--method", help=argparse.SUPPRESS)  # one method, in a worker process
    parser.add_argument("--stop-below", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--time-limit", type=float, default=float("inf"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print(table(json.load(f)))
        return 0
    args.size = args.size or (64 if args.quick else 512)
    args.iterations = args.iterations or (20 if args.quick else 500)
    args.c2f_iterations = args.c2f_iterations or (10 if args.quick else 150)
    if args.method:
        result = one(args.method, args.size, args.iterations, args.stop_below, args.time_limit, args.c2f_iterations)
        print(json.dumps(result))
        return 0

    bf16 = has_bfloat16()
    methods = args.methods.split(",") if args.methods else [m for m in METHODS if "bf16" not in m or bf16]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods: {', '.join(sorted(unknown))}")
    reference = measure("reference", args, 0.0, float("inf"))
    if "error" in reference:
        print(f"benchmarks.quality: the reference failed: {reference['error']}", file=sys.stderr)
        return 1
    target = reference["curve"][-1][1]
    results = {"reference": reference}
    for method in methods:
        if method != "reference":
            # Stop a little below the target by the method's own loss (which for bfloat16 and
            # L-BFGS's range penalty differs slightly from the float32 score).
            # The time limit bounds a method that cannot reach the target; a --quick smoke
            # run has none, since there the first iteration's tracing can outlast the limit.
            limit = float("inf") if args.quick else 1.5 * reference["seconds"]
            results[method] = measure(method, args, 0.98 * target, limit)
        print(method, json.dumps({k: v for k, v in results[method].items() if k != "curve"}), file=sys.stderr)
    report = {
        **report_header("benchmarks.quality", argv),
        "hw": reference["hw"],
        "iterations": args.iterations,
        "c2f_iterations": args.c2f_iterations,
        "coarse_to_fine": COARSE_TO_FINE,
        "target_loss": target,
        "methods": results,
    }
    name = args.name or (f"{'quick-' if args.quick else ''}time-to-quality-{datetime.date.today().isoformat()}")
    save_report(report, args.out, name, lambda path: plot(report, path))
    print(
        f"{report['cpu']}, {report['cores']} cores; {report['hw'][1]}x{report['hw'][0]}; target: the "
        f"reference's loss after {args.iterations} iterations, {target:.4g}, "
        f"reached in {reference['seconds']:.0f} s"
    )
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
