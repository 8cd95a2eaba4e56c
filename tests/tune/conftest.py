"""Fixtures for the tune tests: a real ``reinforge serve`` on loopback with a key in the environment."""

from __future__ import annotations

import pytest

from reinforge.tune.toyagent import ToyEndpoint
from tests.serve.helpers import start_server


@pytest.fixture(scope="module")
def toy():
    """The scripted tool-using endpoint (``reinforge.tune.toyagent``) on a free loopback port."""
    with ToyEndpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def served(tmp_path_factory, monkeypatch_module):
    """(the server, the name of the environment variable holding a key for it)."""
    srv = start_server(tmp_path_factory.mktemp("serve") / "data")
    monkeypatch_module.setenv("REINFORGE_TEST_KEY", srv.new_key("tuner"))
    yield srv, "REINFORGE_TEST_KEY"
    srv.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp
