"""The Ray executor on a local instance (skipped when ray is not installed)."""

from __future__ import annotations

import pytest

from reinforge import tune
from reinforge.errors import ConfigError

ray = pytest.importorskip("ray")


def sphere(params: dict) -> float:
    import os

    return (params["x"] - 0.5) ** 2 + 0 * os.getpid()


@pytest.mark.ray
def test_ray_executor_runs_a_study_on_a_local_instance(tmp_path):
    ex = tune.RayExecutor(address=None, workers=2, num_cpus=0.5)
    try:
        study = tune.run(
            sphere,
            {"x": tune.Float(0, 1)},
            sampler="tpe",
            n_trials=8,
            executor=ex,
            storage=tmp_path / "ray.db",
            seed=0,
        )
        assert len(study.trials) == 8 and all(t.state == "complete" for t in study.trials)
        assert study.best.value < 0.1
        # with a scheduler too: (params, budget) jobs run as Ray tasks
        study2 = tune.run(
            lambda p, b: (p["x"] - 0.5) ** 2 + 1 / b,
            {"x": tune.Float(0, 1)},
            sampler="random",
            scheduler=tune.ASHA(1, 4, eta=2),
            n_trials=6,
            executor=ex,
            study_name="asha",
            storage=tmp_path / "ray.db",
        )
        assert any(t.attrs.get("budget") == 4 for t in study2.trials)
    finally:
        ray.shutdown()


def visible_gpus() -> list:
    return list(ray.get_gpu_ids())


@pytest.mark.ray
def test_resources_per_trial_reserve_a_gpu_for_each_trial():
    # a local instance that declares one GPU (Ray hands out the id; no device is touched)
    ex = tune.RayExecutor(address=None, workers=1, resources_per_trial={"cpu": 1, "gpu": 1}, num_gpus=1)
    try:
        [(_, ok, gpus)] = ex.wait([ex.submit(visible_gpus)])
        assert ok and len(gpus) == 1  # the trial's task holds a GPU of its own
    finally:
        ray.shutdown()


def test_resources_per_trial_rejects_unknown_resources():
    with pytest.raises(ConfigError) as e:
        tune.RayExecutor(address=None, resources_per_trial={"tpu": 1})
    assert "resources_per_trial" in str(e.value) and "{cpu: 4, gpu: 1}" in str(e.value)
