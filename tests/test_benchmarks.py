"""The benchmark runs (a smoke check, no timing assertions) and counts FLOPs right."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.flops import forward_flops, iteration_flops
from benchmarks.run import RESULTS, combine, table


def test_flop_model_matches_hand_count():
    # block1_conv1 alone at 10x10: 2 * 100 positions * 9 * 3 * 64.
    assert forward_flops((10, 10), "block1_conv1") == 2 * 100 * 9 * 3 * 64
    # To block5_conv1: ~722k FLOP per pixel forward, ~285 GFLOP per 512x384 iteration.
    assert round(forward_flops((384, 512), "block5_conv1") / (384 * 512)) == 722304
    assert 280e9 < iteration_flops((384, 512)) < 290e9


def test_each_implementation_is_credited_with_its_own_flops():
    # The tutorial reference runs to block5_conv2 (its content layer), tfnst to block5_conv1.
    row = {"size": 512, "hw": [384, 512], "seconds_per_iteration": 1.0, "peak_rss_bytes": 1}
    text = table([{**row, "impl": "reference"}, {**row, "impl": "tfnst-adam"}], {"tensorflow": 1e6})
    gflops = {line.split("|")[2].strip(): float(line.split("|")[6]) for line in text.splitlines()[2:]}
    assert gflops["reference"] == round(iteration_flops((384, 512), "block5_conv2") / 1e9)
    assert gflops["tfnst-adam"] == round(iteration_flops((384, 512), "block5_conv1") / 1e9)
    assert gflops["reference"] > gflops["tfnst-adam"]


def test_repeats_report_the_median():
    rows = [
        {"impl": "a", "size": 1, "hw": [1, 1], "seconds_per_iteration": s, "peak_rss_bytes": m}
        for s, m in ((3.0, 5), (1.0, 7), (2.0, 6))
    ]
    combined = combine(rows)
    assert combined["seconds_per_iteration"] == 2.0 and combined["samples"] == [3.0, 1.0, 2.0]
    assert combined["peak_rss_bytes"] == 7


@pytest.mark.slow
def test_quick_benchmark_runs_and_leaves_the_checkout_alone():
    # Without --out, a --quick run writes its report to a temporary folder, never to
    # benchmarks/results.
    before = set(os.listdir(RESULTS))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--sizes",
            "32",
            "--iterations",
            "1",
            "--impls",
            "tfnst-adam,tfnst-adam-bf16,reference,pastiche",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert set(os.listdir(RESULTS)) == before
    out = Path(re.search(r"report in (/\S+)", r.stdout).group(1))
    assert out.is_dir() and out.resolve() != Path(RESULTS).resolve()
    assert "| 24×32 | tfnst-adam |" in r.stdout and "reference / this" in r.stdout
    (report,) = [p for p in out.iterdir() if p.suffix == ".json"]
    data = json.loads(report.read_text())
    assert data["cpu"] and data["matmul_gflops"]["tensorflow"] > 0
    assert data["matmul_gflops"]["tensorflow-bfloat16"] > 0 and "| tfnst-adam-bf16 |" in r.stdout
    by_impl = {r["impl"]: r for r in data["results"]}
    assert by_impl["tfnst-adam"]["seconds_per_iteration"] > 0
    assert by_impl["reference"]["peak_rss_bytes"] > 0
    assert "seconds_per_iteration" in by_impl["pastiche"] or "error" in by_impl["pastiche"]
    shutil.rmtree(out)


@pytest.mark.slow
def test_quick_time_to_quality_runs(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.quality",
            "--quick",
            "--size",
            "32",
            "--iterations",
            "6",
            "--c2f-iterations",
            "4",
            "--methods",
            "reference,tfnst-adam,tfnst-c2f,tfnst-adam-ema",
            "--out",
            str(tmp_path),
            "--name",
            "smoke",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| tfnst-c2f |" in r.stdout and "of reference time" in r.stdout
    (report,) = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    assert report.name == "smoke.json"
    data = json.loads(report.read_text())
    ref = data["methods"]["reference"]
    assert [point[2] for point in ref["curve"]] == [1, 5, 6]  # snapshots: first, every 5th, last
    assert data["target_loss"] == ref["curve"][-1][1]
    # Scored on one objective: from the content image, both Adams descend alike.
    adam = data["methods"]["tfnst-adam"]["curve"]
    assert adam[0][1] > adam[-1][1] and all(t > 0 for t, _, _ in adam)
    # An averaged run cannot see its average's loss: it runs the reference's iterations.
    assert data["methods"]["tfnst-adam-ema"]["curve"][-1][2] == 6


def test_the_video_animation_puts_the_clips_side_by_side(tmp_path):
    from PIL import Image

    from benchmarks.video import write_animation

    # Three clips of two 6x4 frames, each frame one grey level: a 3x4+2x2 = 16 px wide GIF
    # of two frames at 25 fps (40 ms), looping, white between the clips.
    clips = [[np.full((6, 4, 3), (c * 2 + f) / 10, np.float32) for f in range(2)] for c in range(3)]
    path = tmp_path / "a.gif"
    write_animation(path, clips, 25)
    with Image.open(path) as gif:
        assert (gif.size, gif.n_frames, gif.info["duration"], gif.info["loop"]) == ((16, 6), 2, 40, 0)
        for f in range(2):
            gif.seek(f)
            row = np.asarray(gif.convert("RGB"))[0, :, 0].astype(int)
            expected = [round((c * 2 + f) / 10 * 255) for c in range(3) for _ in range(4)]
            assert list(row[[0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15]]) == expected
            assert list(row[[4, 5, 10, 11]]) == [255] * 4


def test_memory_fit_is_the_lowest_line_under_which_every_peak_lies():
    from benchmarks.memory import ENVELOPE, fit_lines
    from tfnst import memory

    # Peaks made from a known line, one row raised 10% above it: the fit passes through
    # the raised row and one other (an optimum of the linear programme), every row's
    # peak / ENVELOPE lies under it, and L-BFGS rows have their pairs taken off first.
    depth = 13  # block5_conv1, the defaults' deepest layer
    fixed, slope = 0.7 * 2**30, 2.0
    hws = [(96, 128), (192, 256), (384, 512), (576, 768)]
    x = [4 * memory.activation_floats(hw, depth) for hw in hws]
    raised = [1.0, 1.0, 1.1, 1.0]
    rows = []
    for optimizer in ("adam", "lbfgs"):
        for hw, xi, r in zip(hws, x, raised):
            pairs = memory.pair_bytes(hw, 20) if optimizer == "lbfgs" else 0
            peak = ENVELOPE * r * (fixed + slope * xi) + pairs
            rows.append({"label": f"{optimizer} float32", "hw": list(hw), "error": None, "peak_rss_bytes": peak})
    lines = fit_lines(rows)
    assert set(lines) == {("adam", "float32"), ("lbfgs", "float32")}
    a, b = lines[("adam", "float32")]
    assert lines[("lbfgs", "float32")] == pytest.approx((a, b))
    assert all(a + b * xi >= r * (fixed + slope * xi) * (1 - 1e-9) for xi, r in zip(x, raised))
    # The least total height is the least height at the rows' mean x, which lies between
    # rows 1 and 2; there every line over rows 0 and 2 is at least their chord, and the
    # chord passes over rows 1 and 3 (row 2 is raised, its slope is above the true
    # one's): the answer, by hand. (The chord of rows 1 and 2 passes under row 0.)
    assert x[1] < sum(x) / 4 < x[2]
    y = [r * (fixed + slope * xi) for xi, r in zip(x, raised)]
    b_hand = (y[2] - y[0]) / (x[2] - x[0])
    assert (a, b) == pytest.approx((y[0] - b_hand * x[0], b_hand))
