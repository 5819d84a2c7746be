"""A pytest plugin: each test's CPU seconds (the worker's, and its finished child
processes') and wall seconds, one line per test as it ends, so the suite's cost can be
compared across machines (a shared machine's load raises both: TensorFlow's threads
spin while they wait for a core, so compare runs on an idle machine).

    python -m pytest -n 2 -p benchmarks.suite_times          # the whole suite
    python -m pytest -n 2 -m "not slow" -p benchmarks.suite_times
    python -m benchmarks.suite_times                          # per-file totals of the last run

Lines go to ``$TEST_TIMES_DIR`` (default ``/tmp/tfnst-test-times``), one file per
pytest-xdist worker: ``nodeid<TAB>cpu<TAB>wall``. docs/speed.md#tests has the figures.
"""

from __future__ import annotations

import collections
import os
import resource
import time
from pathlib import Path

import pytest

DIRECTORY = Path(os.environ.get("TEST_TIMES_DIR", "/tmp/tfnst-test-times"))


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _cpu(), time.perf_counter()
    yield
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(DIRECTORY / f"{worker}.tsv", "a") as f:
        f.write(f"{item.nodeid}\t{_cpu() - cpu:.2f}\t{time.perf_counter() - wall:.2f}\n")


def main() -> None:
    per_file: dict = collections.defaultdict(lambda: [0, 0.0])
    for path in DIRECTORY.glob("*.tsv"):
        for line in path.read_text().splitlines():
            nodeid, cpu, _ = line.split("\t")
            entry = per_file[nodeid.split("::")[0]]
            entry[0] += 1
            entry[1] += float(cpu)
    print("| file | tests | CPU s |\n| --- | --- | --- |")
    for name, (count, cpu) in sorted(per_file.items(), key=lambda kv: -kv[1][1]):
        print(f"| {name} | {count} | {cpu:.0f} |")
    print(f"| all | {sum(c for c, _ in per_file.values())} | {sum(s for _, s in per_file.values()):.0f} |")


if __name__ == "__main__":
    main()
