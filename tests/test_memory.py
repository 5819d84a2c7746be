"""The memory model (`tfnst.memory`): estimates against measured peaks, and refusals
made by the estimate before anything is allocated."""

import re
import subprocess
import sys

import pytest

import tfnst
from tests.conftest import CONTENT, STYLE
from tfnst import memory
from tfnst.config import LBFGS_HISTORY, LBFGS_MIN_HISTORY
from tfnst.errors import TfnstError


# ----------------------------------------------------------------- memory
def test_memory_estimate_grows_with_what_a_run_holds():
    config = tfnst.StyleConfig(precision="float32", optimizer="adam")
    base = memory.estimate_bytes((384, 512), config)
    assert memory.estimate_bytes((768, 1024), config) > 2.5 * (base - memory.fit("adam", "float32")[0])
    for option in (
        {"optimizer": "lbfgs"},
        {"hist_weight": 1.0},
        # at 2 the style's forward pass (no gradient) stays under the optimization's
        # peak: measured so (docs/reliability.md, "style scale 2"); at 3 it does not
        {"style_scale": 3.0},
        {"style_statistic": "discriminator"},
    ):
        assert memory.estimate_bytes((384, 512), config.replace(**option)) > base, option
    assert memory.available_bytes() is None or memory.available_bytes() > 0


def test_lbfgs_keeps_fewer_pairs_where_memory_is_short():
    config = tfnst.StyleConfig(precision="float32")  # the defaults: L-BFGS
    hw, budget = (1152, 1536), 2 * 2**30
    assert memory.estimate_bytes(hw, config) > budget  # untiled does not fit
    # A pair is two float32 images: 24 bytes a pixel, counted by hand (times the margin).
    one_pair = memory.estimate_bytes(hw, config, True, 256, 11) - memory.estimate_bytes(hw, config, True, 256, 10)
    assert abs(one_pair - memory.MARGIN * 24 * 1152 * 1536) <= 1
    tile, history = memory.layout(hw, config, True, budget)
    assert LBFGS_MIN_HISTORY <= history < LBFGS_HISTORY and tile is not None
    assert memory.estimate_bytes(hw, config, True, tile, history) <= budget
    # the most pairs that leave room for tiles of PAIRS_BEFORE_TILE px, then the largest tile
    assert memory.estimate_bytes(hw, config, True, memory.PAIRS_BEFORE_TILE, history + 1) > budget
    assert memory.estimate_bytes(hw, config, True, tile + 16, history) > budget
    # Adam keeps no pairs: its layout does not depend on them.
    adam = config.replace(optimizer="adam")
    assert memory.layout(hw, adam, True, budget).tile == memory.tile_for(hw, adam, True, budget)
    # A budget that fits the whole image keeps every pair; one too small is refused with the number.
    assert memory.layout(hw, config, True, 2**40) == (None, LBFGS_HISTORY)
    need = memory.estimate_bytes(hw, config, True, 64, LBFGS_MIN_HISTORY)
    with pytest.raises(TfnstError, match=rf"needs about {memory.gigabytes(need)} even in tiles of 64 px with 5"):
        memory.layout(hw, config, True, need - 1)


def test_max_memory_holds_with_a_tile(stylizer, content64, style64):
    config = stylizer.config.replace(optimizer="lbfgs", tile=32)
    hw = (48, 64)
    fits = memory.estimate_bytes(hw, config, True, 32, LBFGS_HISTORY)
    assert stylizer._layout(config.replace(max_memory=fits), hw, True) == (32, LBFGS_HISTORY)
    ten = memory.estimate_bytes(hw, config, True, 32, 10)
    assert stylizer._layout(config.replace(max_memory=ten), hw, True) == (32, 10)
    need = memory.estimate_bytes(hw, config, True, 32, LBFGS_MIN_HISTORY)
    with pytest.raises(TfnstError, match=rf"needs about {memory.gigabytes(need)} in tiles of 32 px"):
        stylizer.stylize(content64, style64, size=64, iterations=1, optimizer="lbfgs", tile=32, max_memory=need - 1)


TILED_PEAK_RUN = """
import json, sys
import tfnst
from tfnst import memory
options = json.loads(sys.argv[3])
stylizer = tfnst.Stylizer(**options)
out = stylizer.stylize(sys.argv[1], sys.argv[2], iterations=2)
tile, pairs = stylizer._layout(stylizer.config, out.shape[:2], True)
estimate = memory.estimate_bytes(out.shape[:2], stylizer.config, True, tile, pairs)
print(json.dumps({"peak": memory.peak_bytes(), "estimate": estimate}))
"""


@pytest.fixture(scope="module")
def peaks():
    """Adam at 512x384 untiled and in tiles of 256 px (4 tiles, crops up to 448 with
    block5_conv1's margin); L-BFGS at 256x192 in tiles of 128 (its pairs allocated at
    the first step); 2 iterations each, in a fresh process so that its peak (VmHWM) is
    its own: {name: {peak, estimate}}."""
    import json

    base = {"size": 512, "precision": "float32", "optimizer": "adam", "scales": 1}
    lbfgs = {**base, "size": 256, "optimizer": "lbfgs", "tile": 128}
    report = {}
    for name, options in (("whole", base), ("tiled", {**base, "tile": 256}), ("lbfgs tiled", lbfgs)):
        r = subprocess.run(
            [sys.executable, "-c", TILED_PEAK_RUN, CONTENT, STYLE, json.dumps(options)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        report[name] = json.loads(r.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.slow
def test_tiles_lower_the_measured_peak(peaks):
    # Measured by benchmarks.memory with the same options (docs/reliability.md): untiled
    # 1.76 GB, in tiles of 256 px 1.42 GB without AVX-512 (a saving of 0.34 GB); with it
    # 1.21 and 1.08-1.12 GB (two runs, 2026-12-03), 1.25 and 1.16 GB inside the suite
    # (stop 29's CI log): 0.08 GB. Most of the AVX2 saving, or half the least AVX-512 one
    # (and elsewhere): a tiling that computed the whole image's activations would peak
    # above the whole run.
    least = 0.25 if memory.machine_kind() == "avx2" else 0.04
    assert peaks["tiled"]["peak"] < peaks["whole"]["peak"] - least * 2**30, (memory.machine_kind(), peaks)


@pytest.mark.slow
def test_the_estimates_bound_the_measured_peaks(peaks):
    # At least the peak (the first fit, made on an AVX512_BF16 machine, fell up to 30%
    # short on AVX2: issue 21; a fit made on one machine type does not bound another's)
    # and, on the machine types the model was fitted on, at most 1.4x it
    # (docs/reliability.md): the tiled Adam run's estimate measured 1.29-1.34x its peak
    # in four runs on AVX2 on 2026-12-02. Where no fit was measured (AMX, other CPUs) the
    # estimate takes the larger fit, whose distance from the peak is not claimed.
    tight = memory.machine_kind() != "unmeasured"
    for name in peaks:
        assert peaks[name]["peak"] <= peaks[name]["estimate"], (name, peaks)
        assert not tight or peaks[name]["estimate"] <= 1.4 * peaks[name]["peak"], (name, memory.machine_kind(), peaks)


def test_each_machine_kind_has_its_fit_and_an_unmeasured_one_the_larger(monkeypatch):
    avx2, avx512 = {"avx2", "fma"}, {"avx2", "fma", "avx512f", "avx512_bf16"}
    assert memory.machine_kind(avx2) == "avx2"
    assert memory.machine_kind(avx512) == "avx512"
    assert memory.machine_kind(avx512 | {"amx_tile", "amx_bf16"}) == "unmeasured"
    assert memory.machine_kind(set()) == "unmeasured"  # no flags: not x86, or no /proc
    # Lines that cross (each kind's fixed part or slope the larger), so that the
    # unmeasured kind's line is neither's: the larger fixed part and the larger slope.
    key = ("lbfgs", "float32")
    monkeypatch.setattr(memory, "FITS", {"avx2": {key: (1.0 * 2**30, 1.0)}, "avx512": {key: (0.5 * 2**30, 2.0)}})
    assert memory.fit(*key, "avx2") == (1.0 * 2**30, 1.0) and memory.fit(*key, "avx512") == (0.5 * 2**30, 2.0)
    assert memory.fit(*key, "unmeasured") == (1.0 * 2**30, 2.0)
    # estimate_bytes takes the kind's line: fixed + slope x activation bytes, times MARGIN,
    # plus the pairs (the config has nothing else); by hand from the two lines.
    config = tfnst.StyleConfig(precision="float32", optimizer="lbfgs", scales=1)
    hw = (96, 128)
    x = 4 * memory.activation_floats(hw, 13)  # block5_conv1, the defaults' deepest layer
    pairs = memory.pair_bytes(hw, 20)
    for kind, (fixed, slope) in (("avx2", (2**30, 1.0)), ("avx512", (2**30 / 2, 2.0)), ("unmeasured", (2**30, 2.0))):
        expected = memory.MARGIN * (fixed + max(slope * x, memory.STYLE_FORWARD * x) + pairs)
        assert abs(memory.estimate_bytes(hw, config, kind=kind) - expected) <= 1, kind


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
        # Adam untiled is the `peaks` fixture's "whole" run (test_the_estimates_bound_the_measured_peaks).
        {"size": 128, "precision": "float32", "optimizer": "lbfgs"},
        {"size": 192, "precision": "float32", "hist_weight": 1.0, "style_statistic": "meancov"},
    ],
)
def test_the_memory_estimate_bounds_the_measured_peak(options):
    # In a fresh process, so that the peak (VmHWM) is the run's own: the estimate is at
    # least the peak (a refusal never stops a run that fits… by much) and, on a machine
    # kind the model was fitted on, at most 1.3x it (the model, fitted at 128-768 px:
    # docs/reliability.md, python -m benchmarks.memory).
    import json

    r = subprocess.run(
        [sys.executable, "-c", PEAK_RUN, CONTENT, STYLE, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["peak"] <= report["estimate"], report
    assert memory.machine_kind() == "unmeasured" or report["estimate"] <= 1.3 * report["peak"], report
