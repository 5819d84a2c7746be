"""The loss at each coarse-to-fine scale's first iterations (issue 21, item 3).

    python benchmarks/scale_start.py [--size 512] [--style examples/starry_night.jpg]
        [--settings '{"iterations": 12, "coarse_iterations": [8]}'] [--first 5] [--name NAME]

One `tfnst.Stylizer.run` of the bundled content photo with the defaults (or the
``--settings`` on top of them), a `tfnst.History` recording every accepted iteration.
Run as a file, it measures whichever tfnst is first on ``PYTHONPATH`` (so the code
before a change can be measured with the same command). Prints, per scale, the loss
at its start (the first evaluation: the warm start), its first ``--first`` iterations,
the highest loss of the scale over its start (the worst step uphill, as a ratio) and
the loss at its end; then the final loss and the loss-and-gradient evaluations used.
With ``--name`` the report is written to ``benchmarks/results/NAME.json``.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--content", default="examples/tubingen.jpg")
    p.add_argument("--style", default="examples/starry_night.jpg")
    p.add_argument("--settings", default="{}", help="StyleConfig options as JSON, on top of the defaults")
    p.add_argument("--first", type=int, default=5, help="iterations shown per scale")
    p.add_argument("--name", help="write benchmarks/results/NAME.json")
    args = p.parse_args(argv)
    settings = json.loads(args.settings)

    start = time.perf_counter()
    import tfnst
    from tfnst import optimizers

    history = tfnst.History()
    stylizer = tfnst.Stylizer(size=args.size, **settings)
    result = stylizer.run(args.content, args.style, callbacks=[history])
    seconds = time.perf_counter() - start

    scales = {}
    for r in history.records:
        hw = getattr(r, "hw", None) or r.size  # IterationRecord.size before it was named hw
        scales.setdefault(r.scale, {"size": list(hw), "losses": []})["losses"].append(r.loss)
    for s in scales.values():
        losses = s["losses"]
        s["start"], s["end"] = losses[0], losses[-1]
        s["worst_over_start"] = max(losses[1:], default=losses[0]) / losses[0]
        s["rises"] = sum(b > a for a, b in zip(losses, losses[1:]))  # iterations whose loss rose
    report = {
        "command": "python benchmarks/scale_start.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "tfnst": os.path.dirname(tfnst.__file__),
        "settings": settings,
        "scales": scales,
        "final_loss": history.records[-1].loss,
        "evaluations": int(optimizers.evaluations(result.state)),
        "iterations": len(history.records),
        "seconds": seconds,
    }
    for k, s in scales.items():
        first = ", ".join(f"{v:.3f}" for v in s["losses"][: args.first + 1])
        print(
            f"scale {k} {s['size'][0]}x{s['size'][1]}: {first} ... end {s['end']:.4f}; "
            f"worst/start {s['worst_over_start']:.3f}, rises {s['rises']}"
        )
    print(
        f"final loss {report['final_loss']:.4f}, evaluations {report['evaluations']}, "
        f"iterations {report['iterations']}, {seconds:.0f} s"
    )
    if args.name:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", args.name + ".json")
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
        print("wrote", path)
    return report


if __name__ == "__main__":
    main()
