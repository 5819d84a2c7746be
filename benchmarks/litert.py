"""LiteRT (TFLite) variants of a network: file size, latency and agreement with Keras.

    python -m benchmarks.litert [--network MODEL.keras] [--sizes 256,512] [--repeats 5]

Each of `tfnst.litert.QUANTIZATIONS` converted once (int8 calibrated on data/photos,
the library's default crops), then run in LiteRT's interpreter (``ai-edge-litert``,
XNNPACK, ``--threads`` threads) on examples/tubingen.jpg fitted to each longest side:
seconds per image (median and best of ``--repeats`` after a warm-up; the best is the
figure least disturbed by other work on a shared machine), the process's CPU seconds
per image (all its threads; less disturbed than wall time by other work competing for
the cores, not immune to it: caches and cores are shared), and PSNR against the Keras
network on the same input. The Keras network's own time is the first row. Without
``--network``, an untrained network of the README's size (width 16, depth 3, seed 0):
sizes and latencies do not depend on training, PSNRs somewhat do. The machine's load
average is recorded before and after.
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

from benchmarks.run import RESULTS, report_header, save_report

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn, repeats: int) -> dict:
    """Wall seconds and this process's CPU seconds (all its threads) per call, median and best."""
    fn()  # warm-up (and the interpreter's allocation for this size)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    wall.sort()
    cpu.sort()
    return {
        "median_s": wall[len(wall) // 2],
        "best_s": wall[0],
        "cpu_median_s": cpu[len(cpu) // 2],
        "cpu_best_s": cpu[0],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", help="a .keras network (default: untrained, width 16, depth 3)")
    parser.add_argument("--sizes", default="256,512", help="longest sides of the test image")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quantize", default="none,float16,dynamic,int8")
    parser.add_argument("--images", default=str(ROOT / "data" / "photos"), help="int8 calibration photos")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--name", default=f"litert-{datetime.date.today().isoformat()}")
    args = parser.parse_args(argv)

    import numpy as np

    from tfnst.image_io import read_image
    from tfnst.litert import LiteRTNetwork, convert
    from tfnst.networks import StyleTransformer, load_network
    from tfnst.resize import fit_size, resize

    model = load_network(args.network) if args.network else StyleTransformer(16, 3, seed=0)
    photo = read_image(ROOT / "examples" / "tubingen.jpg")
    inputs = {size: resize(photo, fit_size(photo.shape[:2], size)).numpy() for size in map(int, args.sizes.split(","))}
    expected = {size: model(x[None], training=False).numpy()[0] for size, x in inputs.items()}
    load_before = os.getloadavg()
    rows = []
    for size, x in inputs.items():
        rows.append(
            {
                "variant": "keras",
                "size": size,
                "hw": list(x.shape[:2]),
                "parameters": model.count_params(),
                **_timed(lambda x=x: model(x[None], training=False).numpy(), args.repeats),
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
    for quantize in args.quantize.split(","):
        start = time.perf_counter()
        data = convert(model, quantize, args.images if quantize == "int8" else None)
        convert_s = time.perf_counter() - start
        lite = LiteRTNetwork(data, num_threads=args.threads)
        for size, x in inputs.items():
            out = lite(x)
            psnr = 10 * np.log10(1.0 / np.mean((out.astype(np.float64) - expected[size]) ** 2))
            timed = _timed(lambda lite=lite, x=x: lite(x), args.repeats)
            rows.append(
                {
                    "variant": quantize,
                    "size": size,
                    "hw": list(x.shape[:2]),
                    "bytes": len(data),
                    "convert_s": convert_s,
                    "psnr_db": float(psnr),
                    **timed,
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    report = {
        **report_header("benchmarks.litert", argv),
        "threads": args.threads,
        "network": args.network or "untrained StyleTransformer(16, 3, seed=0)",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }
    save_report(report, args.out, args.name, lambda path: None)
    print(
        f"{report['cpu']}, {report['cores']} cores, {args.threads} threads; load average "
        f"{load_before[0]:.1f} before, {report['load_average_after'][0]:.1f} after"
    )
    print(
        "| variant | file | image (H×W) | CPU s / image | wall s, median | best | PSNR vs Keras |\n"
        "| --- | --- | --- | --- | --- | --- | --- |"
    )
    for r in rows:
        size = f"{r['bytes'] / 1e3:.0f} kB" if "bytes" in r else "–"
        psnr = f"{r['psnr_db']:.1f} dB" if "psnr_db" in r else "–"
        print(
            f"| {r['variant']} | {size} | {r['hw'][0]}×{r['hw'][1]} | {r['cpu_median_s']:.3f} | "
            f"{r['median_s']:.3f} | {r['best_s']:.3f} | {psnr} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
