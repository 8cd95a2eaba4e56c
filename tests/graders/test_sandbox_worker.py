"""The sandbox worker's own pieces, run in this process (the worker module is standard library only)."""

import resource
import sys

import pytest

from reinforge.graders.sandbox_worker import _arm_cpu_limit

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux rlimits")


def cpu_used() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def test_each_row_gets_its_whole_cpu_allowance():
    """With 5.9 s used, a 1 s row was armed at 6 s (the used time rounded down): 0.1 s of CPU."""
    while cpu_used() % 1 < 0.9:  # spin to a late fraction of a second (at most 1 s of CPU)
        pass
    before = resource.getrlimit(resource.RLIMIT_CPU)
    try:
        _arm_cpu_limit(1)
        soft = resource.getrlimit(resource.RLIMIT_CPU)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, before)
    assert soft >= cpu_used() + 0.9
