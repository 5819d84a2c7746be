"""The memory model (`tfnst.memory`): estimates against measured peaks, and refusals
made by the estimate before anything is allocated."""

import re
import subprocess
import sys

import pytest

import tfnst
from tests.conftest import CONTENT, STYLE
from tfnst import memory
from tfnst.errors import TfnstError


def test_memory_estimate_grows_with_what_a_run_holds():
    config = tfnst.StyleConfig(precision="float32", optimizer="adam")
    base = memory.estimate_bytes((384, 512), config)
    assert memory.estimate_bytes((768, 1024), config) > 2.5 * (base - memory.FIT[("adam", "float32")][0])
    for option in (
        {"optimizer": "lbfgs"},
        {"hist_weight": 1.0},
        {"style_scale": 2.0},
        {"style_statistic": "discriminator"},
    ):
        assert memory.estimate_bytes((384, 512), config.replace(**option)) > base, option
    assert memory.available_bytes() is None or memory.available_bytes() > 0


TILED_PEAK_RUN = """
import json, sys
import tfnst
from tfnst import memory
options = json.loads(sys.argv[3])
stylizer = tfnst.Stylizer(**options)
out = stylizer.stylize(sys.argv[1], sys.argv[2], iterations=1)
estimate = memory.estimate_bytes(out.shape[:2], stylizer.config, tile=stylizer.config.tile)
print(json.dumps({"peak": memory.peak_bytes(), "estimate": estimate}))
"""


@pytest.fixture(scope="module")
def peaks():
    """512x384 untiled and in tiles of 128 px (crops of 320 with block5_conv1's margin),
    each in a fresh process so that its peak (VmHWM) is its own: {name: {peak, estimate}}."""
    import json

    base = {"size": 512, "precision": "float32", "optimizer": "adam", "scales": 1}
    report = {}
    for name, options in (("whole", base), ("tiled", {**base, "tile": 128})):
        r = subprocess.run(
            [sys.executable, "-c", TILED_PEAK_RUN, CONTENT, STYLE, json.dumps(options)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        report[name] = json.loads(r.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.slow
def test_tiles_lower_the_measured_peak(peaks):
    # Measured (2026-12-02, AVX2-only AMD EPYC, float32, Adam, one iteration): untiled
    # 1.89 GB, tiled 1.39 GB.
    assert peaks["tiled"]["peak"] < peaks["whole"]["peak"] - 0.25 * 2**30, peaks


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 21, item 1: the memory model, fitted on an AVX512_BF16 machine, "
    "estimates 1.45 and 1.26 GB against peaks of 1.89 and 1.39 GB here; strict, so a fix shows",
)
def test_the_estimates_bound_the_measured_peaks(peaks):
    for name in peaks:
        assert peaks[name]["estimate"] >= peaks[name]["peak"], (name, peaks)


def test_refuses_runs_that_do_not_fit(stylizer, content64, style64, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 200 * 2**20)
    monkeypatch.setattr(memory, "resident_bytes", lambda: 300 * 2**20)  # a fresh process
    with pytest.raises(TfnstError, match=r"needs about .* GB .*smaller size"):
        stylizer.stylize(content64, style64, size=64, iterations=1)


def test_a_size_no_machine_holds_is_refused_before_it_is_allocated(stylizer, content64, style64):
    # 99999999x74999999 px: resizing to it would take 84 PB; the estimate refuses first.
    with pytest.raises(TfnstError, match=r"needs about [0-9.]+ GB even in tiles of 64 px"):
        stylizer.stylize(content64, style64, size=99999999, iterations=1)


@pytest.mark.slow
def test_a_size_no_machine_holds_is_refused_by_the_estimate(tmp_path):
    # The estimate refuses it before anything of that size is allocated (issue 21: it
    # used to fail allocating, exit 1; then the tile search walked down from the image's
    # side, 6 million estimates): exit 2, one line with the estimate's number.
    out = tmp_path / "o.png"
    r = subprocess.run(
        [sys.executable, "-m", "tfnst", "stylize", CONTENT, STYLE, "-o", str(out), "--size", "99999999"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("tfnst: error:"), r.stderr
    assert re.search(r"needs about [0-9.]+ GB", r.stderr), r.stderr
    assert not out.exists()


PEAK_RUN = """
import json, sys
import tfnst
from tfnst import memory
options = json.loads(sys.argv[3])
stylizer = tfnst.Stylizer(**options)
out = stylizer.stylize(sys.argv[1], sys.argv[2], iterations=2)
config = stylizer.config.replace(size=options["size"])
estimate = memory.estimate_bytes(out.shape[:2], config)
with open("/proc/self/status") as f:
    peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
print(json.dumps({"peak": peak, "estimate": estimate}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        {"size": 192, "precision": "float32"},
        {"size": 128, "precision": "float32", "optimizer": "lbfgs"},
        {"size": 192, "precision": "float32", "hist_weight": 1.0, "style_statistic": "meancov"},
    ],
)
def test_the_memory_estimate_bounds_the_measured_peak(options):
    # In a fresh process, so that the peak (VmHWM) is the run's own: the estimate is at
    # least the peak (a refusal never stops a run that fits… by much) and at most 1.3x it
    # (the model, fitted at 128-1024 px: docs/reliability.md, python -m benchmarks.memory).
    import json

    r = subprocess.run(
        [sys.executable, "-c", PEAK_RUN, CONTENT, STYLE, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["peak"] <= report["estimate"] <= 1.3 * report["peak"], report
