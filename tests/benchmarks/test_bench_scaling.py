"""benchmarks/bench_scaling.py: the all-reduce probe (the whole benchmark is `make bench`)."""

from benchmarks.bench_scaling import allreduce_seconds


def test_allreduce_probe_times_two_gloo_ranks():
    seconds = allreduce_seconds(1000, repeats=2)  # 2 forked ranks, one flat buffer
    assert 0 < seconds < 60
