"""Session fixtures for the service tests: one real ``reinforge serve`` shared by the tests that need one."""

from __future__ import annotations

import pytest

from tests.serve.helpers import start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("serve") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def api_key(server) -> str:
    return server.new_key("alice")
