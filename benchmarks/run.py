"""Speed of tfnst against the TF-tutorial reference (and pastiche when installed), in one run.

    python -m benchmarks.run [--quick] [--sizes 128,256,512,1024] [--iterations 10] [--repeat 1]

Writes benchmarks/results/<cpu>-<date>.json and .png and prints a Markdown table:
seconds per iteration, the ratios reference/tfnst, peak resident memory, and tfnst's
fraction of the machine's measured fp32 throughput (FLOPs counted from the conv shapes).
Compare only figures from one run: machines differ from day to day.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from benchmarks.flops import iteration_flops

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
IMPLEMENTATIONS = ("tfnst-adam", "tfnst-lbfgs", "tfnst-adam-bf16", "reference", "pastiche")
EXTRA = ("tfnst-adam-xla", "features-tfnst", "features-keras")  # run only when asked for
# The deepest layer each implementation computes (its FLOPs): the tutorial's content
# layer is block5_conv2, tfnst's and pastiche's deepest style layer block5_conv1.
DEEPEST = {"reference": "block5_conv2"}
# bfloat16 is emulated, many times slower, on CPUs without these instructions.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(
                        f for f in line.split(":", 1)[1].split() if f.startswith(("avx512", "avx2", "amx", "fma"))
                    )
    except OSError:
        pass
    return []


def has_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 natively (the bf16 rows run by default only then)."""
    return bool(set(BF16_FLAGS) & set(cpu_flags()))


def report_header(module: str, argv) -> dict:
    """The machine and the command, recorded with every result (machines differ by day)."""
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:]),
    }


def save_report(report: dict, out: str, name: str, plot_fn) -> None:
    """OUT/NAME.json, and OUT/NAME.png from ``plot_fn(path)`` when matplotlib is installed."""
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, name)
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1)
    try:
        plot_fn(stem + ".png")
    except ImportError:
        print("benchmarks: matplotlib not installed; no plot", file=sys.stderr)


def matmul_gflops(n: int = 2048, repeats: int = 5, bfloat16: bool = False) -> dict:
    """Attainable fp32 throughput: the best of repeated n x n matmuls, TF (and torch if
    installed); with ``bfloat16`` also TF's bfloat16 throughput, the bound of the
    bfloat16 row."""
    import tensorflow as tf

    best = {}
    for dtype in (tf.float32, tf.bfloat16) if bfloat16 else (tf.float32,):
        a = tf.cast(tf.random.uniform((n, n)), dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        matmul(a).numpy()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            matmul(a).numpy()
            times.append(time.perf_counter() - start)
        best["tensorflow" if dtype == tf.float32 else "tensorflow-bfloat16"] = 2 * n**3 / min(times) / 1e9
    try:
        import torch

        x = torch.rand(n, n)
        torch.mm(x, x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(x, x)
            times.append(time.perf_counter() - start)
        best["torch"] = 2 * n**3 / min(times) / 1e9
    except ImportError:
        pass
    return best


def measure(impl: str, size: int, iterations: int, options: dict | None = None) -> dict:
    """One `benchmarks.worker` measurement, in a process of its own."""
    extra = [json.dumps(options)] if options is not None else []
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", impl, str(size), str(iterations), *extra],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["failed"])[-1]
        return {"impl": impl, "size": size, "error": last[:200]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def combine(samples: list[dict]) -> dict:
    """One row from repeated measurements of one implementation and size: the median
    seconds (robust to a noisy neighbour), every sample kept, the highest peak RSS."""
    failed = [r for r in samples if "error" in r]
    if failed:
        return failed[0]
    seconds = sorted(r["seconds_per_iteration"] for r in samples)
    middle = len(seconds) // 2
    median = seconds[middle] if len(seconds) % 2 else (seconds[middle - 1] + seconds[middle]) / 2
    return {
        **samples[0],
        "seconds_per_iteration": median,
        "samples": [r["seconds_per_iteration"] for r in samples],
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in samples),
    }


def table(results: list[dict], peak: dict, baseline: str = "reference") -> str:
    """Markdown rows; each row's fraction of peak is against the fp32 matmul peak (the
    best of TF and torch), the bfloat16 row's against TF's bfloat16 matmul; GFLOP/s from
    each implementation's own FLOP count (`DEEPEST`)."""
    fp32_peak = max(v for k, v in peak.items() if "bfloat16" not in k)
    rows = [
        f"| size (H×W) | implementation | s / iteration | {baseline} / this | peak RSS | GFLOP/s | of peak |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_size = {}
    for r in results:
        by_size.setdefault(r["size"], {})[r["impl"]] = r
    for size, impls in sorted(by_size.items()):
        ref = impls.get(baseline, {}).get("seconds_per_iteration")
        for impl, r in impls.items():
            if "error" in r:
                rows.append(f"| {size} | {impl} | n/a ({r['error']}) | | | | |")
                continue
            s = r["seconds_per_iteration"]
            # One loss evaluation (forward and gradient) per iteration, L-BFGS's included.
            flops = iteration_flops(tuple(r["hw"]), DEEPEST.get(impl, "block5_conv1"))
            gflops = flops / s / 1e9
            peak_gflops = peak.get("tensorflow-bfloat16", fp32_peak) if impl.endswith("bf16") else fp32_peak
            rows.append(
                f"| {r['hw'][0]}×{r['hw'][1]} | {impl} | {s:.3f} | "
                f"{ref / s:.2f}× | {r['peak_rss_bytes'] / 2**30:.2f} GB | "
                f"{gflops:.0f} | {100 * gflops / peak_gflops:.0f}% |"
                if ref
                else f"| {r['hw'][0]}×{r['hw'][1]} | {impl} | {s:.3f} | | {r['peak_rss_bytes'] / 2**30:.2f} GB | | |"
            )
    return "\n".join(rows)


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for impl in sorted({r["impl"] for r in results}):
        points = sorted(
            (r["hw"][0] * r["hw"][1], r["seconds_per_iteration"])
            for r in results
            if r["impl"] == impl and "error" not in r
        )
        if points:
            ax.loglog(*zip(*points), marker="o", label=impl)
    ax.set_xlabel("pixels")
    ax.set_ylabel("seconds per iteration")
    ax.set_title(f"{cpu_model()}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few iterations (a smoke check)")
    parser.add_argument("--sizes", help="longest sides, comma-separated")
    parser.add_argument("--iterations", type=int, help="timed iterations per measurement")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each implementation this many times, interleaved (A B, B A, …), "
        "and report the median: drift on a shared machine hits all alike",
    )
    parser.add_argument(
        "--impls",
        help="comma-separated, from "
        + ",".join(IMPLEMENTATIONS + EXTRA)
        + "; default all but the last three (tfnst-adam-bf16 only on CPUs with "
        "bfloat16 instructions)",
    )
    parser.add_argument(
        "--baseline", default="reference", help="the implementation the ratio column divides by (default: reference)"
    )
    parser.add_argument("--out", help="report folder (default: benchmarks/results, or a temporary folder with --quick)")
    parser.add_argument("--name", help="report name (default: the date, quick-<date> with --quick)")
    args = parser.parse_args(argv)
    out = args.out or (tempfile.mkdtemp(prefix="tfnst-bench-") if args.quick else RESULTS)
    sizes = [int(s) for s in (args.sizes or ("64,128" if args.quick else "128,256,512,1024")).split(",")]
    iterations = args.iterations or (3 if args.quick else 10)
    impls = (
        args.impls.split(",")
        if args.impls
        else [  # tfnst-adam-xla only when asked for
            i for i in IMPLEMENTATIONS if i != "tfnst-adam-bf16" or has_bfloat16()
        ]
    )
    peak = matmul_gflops(1024 if args.quick else 2048, bfloat16="tfnst-adam-bf16" in impls)
    results = []
    for size in sizes:
        samples = {impl: [] for impl in impls}
        for r in range(args.repeat):
            for impl in impls if r % 2 == 0 else impls[::-1]:
                samples[impl].append(measure(impl, size, iterations))
                print(json.dumps(samples[impl][-1]), file=sys.stderr)
        results += [combine(samples[impl]) for impl in impls]
    report = {**report_header("benchmarks.run", argv), "matmul_gflops": peak, "results": results}
    name = args.name or f"{'quick-' if args.quick else ''}{datetime.date.today().isoformat()}"
    save_report(report, out, name, lambda path: plot(results, path))
    print(
        f"{report['cpu']}, {report['cores']} cores; matmul peak "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())
        + f"; report in {out}"
    )
    print(table(results, peak, args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
