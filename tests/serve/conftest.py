"""Session fixtures for the service tests: one real ``reinforge serve`` shared by the tests that need one."""

from __future__ import annotations

import pytest

from tests.serve.helpers import Postgres, SmallDisk, launch_chromium, signed_in_page, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("serve") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def api_key(server) -> str:
    return server.new_key("alice")


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright (skipped without the playwright package)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, api_key, request):
    """A page signed in with ``api_key``, sized by the test module's ``VIEWPORT`` (1280x900 by default)."""
    pg = signed_in_page(browser, server.url, api_key)
    pg.set_viewport_size(getattr(request.module, "VIEWPORT", {"width": 1280, "height": 900}))
    yield pg
    pg.context.close()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server shared by the session's tests (skipped when PostgreSQL is not installed)."""
    yield from own_postgres()


@pytest.fixture
def fresh_postgres():
    """A PostgreSQL server of the test's own, which it may stop and start."""
    yield from own_postgres()


def own_postgres():
    pytest.importorskip("psycopg2")
    pg = Postgres.create()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def pg_db(postgres, request) -> str:
    """A fresh database on the shared server for each test."""
    import psycopg2

    name = "t_" + request.node.name.lower()[:40].replace("[", "_").replace("]", "_")
    conn = psycopg2.connect(postgres.url.replace("postgresql://", "postgres://"))
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return postgres.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk (skipped where it cannot be mounted; root can); resizable."""
    disk = SmallDisk.mount(tmp_path / "disk", "1m")
    if disk is None:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    disk.unmount()
