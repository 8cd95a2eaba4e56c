"""Service storage: a database made by an older version gains the columns added since."""

from __future__ import annotations

from sqlalchemy import inspect, text

from reinforge.serve.db import make_engine


def test_old_database_gains_new_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with make_engine(url).begin() as c:  # as a database from before jobs stored their config
        c.execute(text("ALTER TABLE jobs DROP COLUMN config"))
    eng = make_engine(url)
    assert "config" in {col["name"] for col in inspect(eng).get_columns("jobs")}
