"""Images per second of ``tfnst batch`` (Beam, DirectRunner) against a plain Python loop
over the same SavedModel.

    python -m benchmarks.batch [--size 256] [--count 24] [--width 32] [--depth 5]

A StyleTransformer of the given width and depth (Johnson et al.'s: 32 and 5; its weights
do not change the time) is exported with ``tfnst.networks.export_network``; ``--count``
photos from data/ are cropped and resized to ``--size`` square and written as JPEG
(quality 90) to a temporary folder. Every variant does the same work for each image:
read the file, decode it (`tfnst.batch.decode`), call the ``stylize_float`` signature,
quantize, encode a PNG and write it; and loads the model itself. Times are wall-clock,
end to end (model load and, for Beam, pipeline construction included), one run each
after a warm-up loop that is not counted; beside them the process's CPU seconds (all its
threads), which other work on a shared machine does not inflate, and the load average.
"""

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def make_inputs(folder: Path, size: int, count: int) -> list[Path]:
    photos = sorted((ROOT / "data" / "photos").glob("*.jpg")) + sorted((ROOT / "data" / "holdout").glob("*.jpg"))
    paths = []
    for i in range(count):
        image = Image.open(photos[i % len(photos)]).convert("RGB")
        side = min(image.size)
        image = image.crop(
            (
                (image.width - side) // 2,
                (image.height - side) // 2,
                (image.width + side) // 2,
                (image.height + side) // 2,
            )
        ).resize((size, size))
        if (i // len(photos)) % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"{i:03d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def plain_loop(model_dir: str, paths: list[Path], out: Path, batch_size: int) -> float:
    """The same work as the pipeline, in a Python loop; returns the seconds."""
    import tensorflow as tf

    from tfnst.batch import decode, encode_png, to_uint8

    start = time.perf_counter()
    call = tf.saved_model.load(model_dir).signatures["stylize_float"]
    out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(paths), batch_size):
        chunk = paths[i : i + batch_size]
        images = np.stack([decode(p.read_bytes()) for p in chunk])
        result = call(images=tf.constant(images))["stylized"].numpy()
        for p, r in zip(chunk, result):
            (out / f"{p.stem}.png").write_bytes(encode_png(to_uint8(r)))
    return time.perf_counter() - start


def beam_job(model_dir: str, folder: Path, out: Path, batch_size: int, beam_args: list[str]) -> float:
    from tfnst.cli import main

    start = time.perf_counter()
    code = main(
        [
            "batch",
            "--model",
            model_dir,
            "--input",
            str(folder / "*.jpg"),
            "--output",
            str(out),
            "--batch-size",
            str(batch_size),
            *beam_args,
        ]
    )
    assert code == 0
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=5)
    args = parser.parse_args(argv)

    from tfnst.networks import StyleTransformer, export_network

    work = Path(tempfile.mkdtemp(prefix="tfnst-bench-batch-"))
    inputs = work / "in"
    inputs.mkdir()
    paths = make_inputs(inputs, args.size, args.count)
    model_dir = str(
        export_network(
            StyleTransformer(width=args.width, depth=args.depth), work / "model", max_size=max(args.size, 512)
        )
    )
    plain_loop(model_dir, paths[:2], work / "warm", 1)  # TensorFlow's one-time start-up, not counted

    rows = [
        ("plain Python loop, 1 image a call", lambda: plain_loop(model_dir, paths, work / "loop1", 1)),
        ("plain Python loop, 8 images a call", lambda: plain_loop(model_dir, paths, work / "loop8", 8)),
        ("tfnst batch, DirectRunner, --batch-size 1", lambda: beam_job(model_dir, inputs, work / "beam1", 1, [])),
        ("tfnst batch, DirectRunner, --batch-size 8", lambda: beam_job(model_dir, inputs, work / "beam8", 8, [])),
        (
            "tfnst batch, DirectRunner, 2 threads (--direct_num_workers 2), --batch-size 1",
            lambda: beam_job(
                model_dir,
                inputs,
                work / "beam1t",
                1,
                ["--direct_num_workers", "2", "--direct_running_mode", "multi_threading"],
            ),
        ),
    ]
    print(
        f"{args.count} JPEGs of {args.size}x{args.size} px; StyleTransformer(width={args.width}, "
        f"depth={args.depth}); {cpu_model()}"
    )
    print()
    print("| how | seconds (end to end) | images/s | CPU seconds | CPU s per image | load average before |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, fn in rows:
        load = os.getloadavg()[0]
        cpu = time.process_time()
        seconds = fn()
        cpu = time.process_time() - cpu
        print(
            f"| {name} | {seconds:.1f} | {args.count / seconds:.2f} | {cpu:.1f} | {cpu / args.count:.2f} | "
            f"{load:.1f} |",
            flush=True,
        )
    import tensorflow as tf

    start = time.perf_counter()
    tf.saved_model.load(model_dir)
    print(f"\nLoading the SavedModel alone: {time.perf_counter() - start:.1f} s", end="")
    for name in ("loop1", "beam1", "beam8"):
        a = np.asarray(Image.open(work / "loop8" / "000.png"))
        b = np.asarray(Image.open(work / name / "000.png"))
        print(f"\n{name} vs loop8, first image: max difference {np.abs(a.astype(int) - b).max()} levels", end="")
    print()


if __name__ == "__main__":
    main()
