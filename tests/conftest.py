"""Session fixtures: tiny models are built once per test session, in a temp cache (never in the repo)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    # keep every cached tiny model of the test session out of the user's cache and the working tree
    if "REINFORGE_CACHE" not in os.environ:
        import tempfile

        os.environ["REINFORGE_CACHE"] = tempfile.mkdtemp(prefix="reinforge-test-cache-")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # tiny models gain nothing from intra-op threads, and spinning OpenMP threads crawl on a busy machine
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    # nothing in the suite may reach a hub: fail fast instead of waiting on network time-outs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # property tests keep their example database and caches out of the working tree (.hypothesis/)
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        import tempfile

        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(prefix="reinforge-test-hypothesis-")


@pytest.fixture(scope="session")
def tiny_addition_dir():
    """A 0.9M-parameter Llama, SFT-warmed for a few steps on addition (built once per session)."""
    from reinforge.train.warmup import tiny_model

    return tiny_model("addition", "1m", seed=0, train_examples=128, sft_steps=60)


@pytest.fixture(scope="session")
def tiny_untrained_dir():
    from reinforge.train.warmup import tiny_model

    return tiny_model("addition", "1m", seed=0, sft_steps=0)
