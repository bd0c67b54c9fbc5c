"""A pytest plugin: each test's wall seconds, CPU seconds and the load average, one tab-separated line a test.

On a shared machine wall time says more about the neighbours than about the test; CPU time (this process's
threads plus the subprocesses it waited for) is what the test itself costs, and it is what spinning OpenMP
threads inflate. Used for docs/BENCHMARKS.md's test-suite section:

    PYTHONPATH=bench CPUTIME_OUT=/tmp/fast.tsv python3 -m pytest -q -m "not slow" -p pytest_cputime
"""

from __future__ import annotations

import os
import resource
import time

import pytest

OUT = os.environ.get("CPUTIME_OUT", "cputime.tsv")


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Setup, call and teardown of one test: a module fixture is charged to the first test that uses it."""
    wall, cpu = time.monotonic(), _cpu()
    yield
    with open(OUT, "a", encoding="utf-8") as f:
        f.write(f"{item.nodeid}\t{time.monotonic() - wall:.2f}\t{_cpu() - cpu:.2f}\t{os.getloadavg()[0]:.1f}\n")
