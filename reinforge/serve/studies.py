"""``/v1/studies``: read-only views of tune studies (trials table, Pareto front, parameter importance).

A key's studies are the study files (``reinforge tune``'s SQLite ``.db``) in ``<data dir>/studies/<key id>/``:
run ``reinforge tune CONFIG --set storage=<data dir>/studies/<key id>/NAME.db`` (or copy the file there) and
the key sees it; nothing here writes to a study, and no key sees another's folder (their ids answer 404).
"""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from reinforge.serve.context import Owner, Svc
from reinforge.serve.errors import documented, not_found
from reinforge.tune.storage import Storage
from reinforge.tune.study import Study

router = APIRouter(prefix="/v1/studies", responses=documented(401, 403, 404))
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.db$")  # one file in the owner's folder, no path


def owner_dir(svc, owner: str) -> Path:
    return svc.data_dir / "studies" / owner


def finite(x: Any) -> Any:
    """JSON has no NaN or infinity: they read as null."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def study_names(path: Path) -> list[str]:
    try:
        st = Storage(path)
    except sqlite3.DatabaseError:
        return []  # not a study file: not listed
    try:
        return st.study_names()
    except sqlite3.DatabaseError:
        return []
    finally:
        st.close()


@router.get("")
def list_studies(svc: Svc, owner: Owner):
    folder = owner_dir(svc, owner)
    files = sorted(p for p in folder.glob("*.db") if FILE_NAME.match(p.name)) if folder.is_dir() else []
    data = [
        {"object": "study", "id": f"{p.name}/{n}", "file": p.name, "name": n}
        for p in files
        for n in study_names(p)
    ]
    return {"object": "list", "data": data}


@router.get("/{study_id:path}")
def get_study(study_id: str, svc: Svc, owner: Owner):
    """``FILE.db/NAME``: the study's trials (one row each: values, params, metrics), its Pareto front and
    its parameters' importance."""
    from reinforge.tune.plots import parameter_importance

    file, _, name = study_id.partition("/")
    path = owner_dir(svc, owner) / file
    if not FILE_NAME.match(file) or not path.is_file() or name not in study_names(path):
        raise not_found("study", study_id)
    study = Study.load(path, name)
    try:
        rows = [{k: finite(v) for k, v in row.items()} for row in study.rows()]
        return {
            "object": "study",
            "id": study_id,
            "file": file,
            "name": name,
            "objective_names": study.objective_names,
            "directions": study.directions,
            "params": list(study.space),
            "trials": rows,
            "pareto": [t.number for t in study.best_trials],
            "importance": parameter_importance(study),
        }
    finally:
        study.storage.close()
