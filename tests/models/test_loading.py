"""Model ids: a hub id fails in a moment when offline (it retried for a minute), with the whole message."""

import pytest

from reinforge.errors import ReinforgeError
from reinforge.models.loading import load_model, resolve_model_path


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    for var in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return cache


def test_offline_hub_id_is_one_line(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ReinforgeError, match="not in the Hugging Face cache, and HF_HUB_OFFLINE is set; give"
    ):
        resolve_model_path("someorg/no-such-model")


def test_unreachable_hub_is_one_line(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")  # nothing listens on port 1: refused at once
    with pytest.raises(ReinforgeError, match="127.0.0.1 cannot be reached \\(no network\\); give a local"):
        resolve_model_path("someorg/no-such-model")


def test_cached_hub_model_loads_offline_from_its_snapshot(empty_hub_cache, monkeypatch):
    repo = empty_hub_cache / "models--someorg--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path("someorg/cached") == str(snapshot)


def test_not_a_hub_id(empty_hub_cache):
    with pytest.raises(ReinforgeError, match="not a hub id \\(owner/name\\)"):
        resolve_model_path("no such model")


def test_load_error_is_whole_and_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ReinforgeError) as e:
        load_model(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith(f"model {str(tmp_path)!r}: cannot load (") and msg.endswith(")") and "\n" not in msg
