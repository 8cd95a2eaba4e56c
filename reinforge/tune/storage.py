"""Study storage: one SQLite file holds studies, their trials and the evaluation cache.

Every ``tell`` is committed at once, so a killed study loses no finished trial; trials that were
running when the process died are found by ``Study.resume`` and evaluated again (the cache makes
that free for every example already graded). ``path=None`` keeps everything in memory.

>>> s = Storage(None)
>>> s.create_study("demo", {"directions": ["minimize"]})
>>> s.add_trial("demo", 0, {"x": 1.0})
>>> s.finish_trial("demo", 0, "complete", [0.5], {}, None)
>>> [t.values for t in s.trials("demo")]
[[0.5]]
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reinforge.errors import ReinforgeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (name TEXT PRIMARY KEY, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    study TEXT NOT NULL, number INTEGER NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL,
    vals TEXT, intermediate TEXT NOT NULL DEFAULT '{}', attrs TEXT NOT NULL DEFAULT '{}',
    constraints TEXT, started REAL, finished REAL, PRIMARY KEY (study, number));
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Trial:
    """One evaluated (or running) configuration. ``values`` has one entry per objective."""

    number: int
    params: dict[str, Any]
    state: str = "running"  # running | complete | pruned | failed
    values: list[float] | None = None
    intermediate: dict[int, float] = field(default_factory=dict)  # budget -> value at that budget
    attrs: dict[str, Any] = field(default_factory=dict)  # metrics, cost, tokens, failures, errors
    constraints: list[float] | None = None  # each <= 0 when satisfied
    started: float | None = None
    finished: float | None = None

    @property
    def value(self) -> float | None:
        return None if self.values is None else self.values[0]

    @property
    def scored(self) -> list[float]:
        """``values`` of a trial known to be finished (one without values here is a caller's bug)."""
        if self.values is None:
            raise ValueError(f"trial {self.number} ({self.state}) has no values")
        return self.values

    @property
    def feasible(self) -> bool:
        return self.constraints is None or all(c <= 0 for c in self.constraints)

    @property
    def duration(self) -> float | None:
        return None if self.finished is None or self.started is None else self.finished - self.started


def owner() -> str:
    """Who runs a trial started here: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def abandoned(trial: Trial) -> bool:
    """A running trial no process is running any more, so a resumed study evaluates it again: started by
    this process, by a process of this machine that has ended, or by a version that recorded no owner. A
    trial of another machine's process is never taken (that machine's own resume does it)."""
    if trial.state != "running":
        return False
    host, _, pid = str(trial.attrs.get("owner") or "").rpartition(":")
    if not pid.isdigit():
        return True
    if host != socket.gethostname():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)  # signal 0: is the process there?
    except ProcessLookupError:
        return True
    except PermissionError:  # there, another user's
        pass
    return False


class Storage:
    """Thread-safe SQLite storage; several processes may share one file (WAL mode)."""

    def __init__(self, path: str | Path | None):
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(
            ":memory:" if path is None else str(path),
            timeout=60,
            check_same_thread=False,
            isolation_level=None,
        )
        if path is not None:
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def _exec(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    # -- studies
    def create_study(self, name: str, meta: dict) -> None:
        # OR IGNORE: another process sharing the file made the same study first
        self._exec("INSERT OR IGNORE INTO studies (name, meta) VALUES (?, ?)", (name, json.dumps(meta)))

    def study_meta(self, name: str) -> dict | None:
        rows = self._exec("SELECT meta FROM studies WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def study_names(self) -> list[str]:
        return [r[0] for r in self._exec("SELECT name FROM studies ORDER BY name")]

    # -- trials
    def add_trial(self, study: str, number: int, params: dict) -> None:
        self._exec(
            "INSERT INTO trials (study, number, params, state, started) VALUES (?, ?, ?, 'running', ?)",
            (study, number, json.dumps(params), time.time()),
        )

    def new_trial(self, study: str) -> int:
        """Start a running trial under the study's next number, in one statement, so processes sharing the
        file never get the same number; :meth:`set_params` gives it its parameters."""
        return self._exec(
            "INSERT INTO trials (study, number, params, state, attrs, started) "
            "SELECT ?, COALESCE(MAX(number) + 1, 0), '{}', 'running', ?, ? FROM trials WHERE study = ? "
            "RETURNING number",
            (study, json.dumps({"owner": owner()}), time.time(), study),
        )[0][0]

    def set_params(self, study: str, number: int, params: dict) -> None:
        self._exec(
            "UPDATE trials SET params = ? WHERE study = ? AND number = ?", (json.dumps(params), study, number)
        )

    def drop_trial(self, study: str, number: int) -> None:
        """Forget a trial :meth:`new_trial` started that got no parameters (the search was exhausted)."""
        self._exec("DELETE FROM trials WHERE study = ? AND number = ?", (study, number))

    def next_number(self, study: str) -> int:
        return self._exec("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study = ?", (study,))[0][0]

    def report(self, study: str, number: int, budget: int, value: float) -> None:
        with self.lock:
            rows = self._exec(
                "SELECT intermediate FROM trials WHERE study = ? AND number = ?", (study, number)
            )
            inter = json.loads(rows[0][0]) if rows else {}
            inter[str(budget)] = value
            self._exec(
                "UPDATE trials SET intermediate = ? WHERE study = ? AND number = ?",
                (json.dumps(inter), study, number),
            )

    def finish_trial(
        self,
        study: str,
        number: int,
        state: str,
        values: list[float] | None,
        attrs: dict,
        constraints: list[float] | None,
    ) -> None:
        self._exec(
            "UPDATE trials SET state = ?, vals = ?, attrs = ?, constraints = ?, finished = ? "
            "WHERE study = ? AND number = ?",
            (
                state,
                json.dumps(values),
                json.dumps(attrs, default=str),
                json.dumps(constraints),
                time.time(),
                study,
                number,
            ),
        )

    def trials(self, study: str) -> list[Trial]:
        rows = self._exec(
            "SELECT number, params, state, vals, intermediate, attrs, constraints, started, finished "
            "FROM trials WHERE study = ? ORDER BY number",
            (study,),
        )
        return [
            Trial(
                r[0],
                json.loads(r[1]),
                r[2],
                json.loads(r[3]) if r[3] else None,
                {int(k): v for k, v in json.loads(r[4]).items()},
                json.loads(r[5]),
                json.loads(r[6]) if r[6] else None,
                r[7],
                r[8],
            )
            for r in rows
        ]

    def trial(self, study: str, number: int) -> Trial:
        for t in self.trials(study):
            if t.number == number:
                return t
        raise ReinforgeError(f"study {study!r}: no trial {number}")

    # -- cache of (config, example) -> output
    def cache_get(self, key: str) -> Any | None:
        rows = self._exec("SELECT value FROM cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def cache_put(self, key: str, value: Any) -> None:
        self._exec("INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def cache_size(self) -> int:
        return self._exec("SELECT COUNT(*) FROM cache")[0][0]

    def close(self) -> None:
        with self.lock:
            self.db.close()
