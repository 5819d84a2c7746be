"""The three optimizers compared on the bundled pairs: fixed-step L-BFGS, Adam, and
tensorflow-probability's L-BFGS with its Hager–Zhang line search (the ``tfp`` extra).

    python -m benchmarks.optimizers [--size 256] [--iterations 100]
        [--optimizers lbfgs,adam,tfp-lbfgs] [--styles starry_night.jpg,the_scream.jpg]
        [--histories 5,10,20]

For each bundled style and each optimizer, one `tfnst.Stylizer.run` of the bundled
content photo at one size (``--size``, one scale, so the optimizers meet the same
problem), from the content, ``--iterations`` iterations, no early stop, the other
options at their defaults; in one process, one VGG19 for all. Wall time of the run
(the first iteration includes tracing the step: tfp's loop takes the longest, shown
apart), the loss-and-gradient evaluations the optimizer made
(`tfnst.optimizers.evaluations`), and the result scored by the float32 objective of
the defaults (`benchmarks.quality.scorer`: the total, the style and content terms).
With ``--histories``, L-BFGS runs once with each number of correction pairs (rows
``lbfgs m=N``: what `tfnst.memory.layout` chooses where memory is short; the default
is `tfnst.config.LBFGS_HISTORY`).
Prints a Markdown table and writes benchmarks/results/optimizers-<date>.json.
"""

import argparse
import datetime
import json
import os
import time
from unittest import mock

from benchmarks.run import RESULTS, report_header

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def table(report) -> str:
    header = (
        "| style | optimizer | seconds | first iteration (tracing) | iterations | evaluations | "
        "objective | style term | content term |"
    )
    rows = [header, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for style, runs in report["pairs"].items():
        for name, r in runs.items():
            if "error" in r:
                rows.append(f"| {style} | {name} | n/a ({r['error']}) | | | | | | |")
                continue
            s = r["scores"]
            rows.append(
                f"| {style} | {name} | {r['seconds']:.0f} | {r['first_iteration_seconds']:.0f} | "
                f"{r['iterations_run']} | {r['evaluations']} | {s['total']:.4f} | {s['style']:.4f} | "
                f"{s['content']:.4f} |"
            )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--optimizers", default="lbfgs,adam,tfp-lbfgs")
    parser.add_argument("--styles", default="starry_night.jpg,the_scream.jpg")
    parser.add_argument("--histories", help="L-BFGS correction pairs to compare, e.g. 5,10,20")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"optimizers-{datetime.date.today().isoformat()}")
    args = parser.parse_args(argv)
    report = {
        **report_header("benchmarks.optimizers", argv),
        "size": args.size,
        "iterations": args.iterations,
        "pairs": {},
    }
    print(f"{report['cpu']}, {report['cores']} cores; {report['command']}", flush=True)

    import tfnst
    from benchmarks.quality import scorer
    from benchmarks.worker import images
    from tfnst import memory
    from tfnst.callbacks import History
    from tfnst.config import LBFGS_HISTORY
    from tfnst.errors import TfnstError
    from tfnst.optimizers import evaluations

    variants = []
    for name in args.optimizers.split(","):
        if name == "lbfgs" and args.histories:
            variants += [(f"lbfgs m={m}", name, int(m)) for m in args.histories.split(",")]
        else:
            variants.append((name, name, None))
    stylizer = tfnst.Stylizer(scales=1, size=args.size, iterations=args.iterations, tolerance=0.0, init="content")
    for style_name in args.styles.split(","):
        content, style = images(args.size, style_name)
        score = scorer(content, style)
        runs = report["pairs"][style_name] = {}
        for label, name, pairs in variants:
            history = History()
            start = time.perf_counter()
            try:
                # the pairs a budget would leave (memory.layout keeps at most LBFGS_HISTORY)
                with mock.patch.object(memory, "LBFGS_HISTORY", pairs or LBFGS_HISTORY):
                    result = stylizer.run(content, style, optimizer=name, callbacks=[history])
            except TfnstError as e:
                runs[label] = {"error": str(e)}
                continue
            seconds = time.perf_counter() - start
            runs[label] = {
                "seconds": seconds,
                "first_iteration_seconds": history.records[0].elapsed,
                "iterations_run": history.records[-1].iteration,
                "evaluations": int(evaluations(result.state)),
                "stop_reason": result.stop_reason,
                "scores": score(result.image),
            }
            print(style_name, label, json.dumps(runs[label]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(report, f, indent=1)
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
