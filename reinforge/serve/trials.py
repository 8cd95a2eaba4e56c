"""``/v1/trials/{file}/{name}/...``: score a study's trials by hand (the web UI's scoring page).

The manual mode of ``reinforge tune`` for when a person is the grader: ``ask`` starts the next trial,
``try`` runs a trial's configuration on a few examples and returns what it said (outputs, the study
grader's grades, agent trajectories) and what a whole trial of it costs, ``tell`` records the person's
score, as ``reinforge tune tell`` does. ``file/name`` is a study's id in ``/v1/studies``.

``try`` needs the study's tune config beside its file: ``studies/<key id>/NAME.yaml`` beside
``NAME.db`` (relative paths in it from that folder), with an objective that calls a model (chat,
agent, workflow, rag with an ``llm``). Only someone with access to the data directory puts files in
that folder, and the config runs as ``reinforge tune`` would run it there (its Python tools included);
nothing uploaded through the API is run this way.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from pydantic import BaseModel, Field

from reinforge.config import load_config
from reinforge.errors import ReinforgeError
from reinforge.serve.context import Owner, Svc
from reinforge.serve.errors import APIError, documented, not_found
from reinforge.serve.studies import FILE_NAME, owner_dir, study_names
from reinforge.tune.factory import build_objective
from reinforge.tune.schema import TuneConfig
from reinforge.tune.study import Study
from reinforge.tune.tryout import is_llm_study, try_params

router = APIRouter(prefix="/v1/trials", responses=documented(400, 401, 403, 404))


class TryBody(BaseModel):
    examples: int = Field(3, ge=1, le=20)  # how many of the study's examples to run the configuration on


class TellBody(BaseModel):
    values: list[float]  # one per objective of the study, in its order
    metrics: dict[str, float] = {}  # measured along (tokens, usd...), stored with the trial


def study_path(svc, owner: str, file: str, name: str) -> Path:
    path = owner_dir(svc, owner) / file
    if not FILE_NAME.match(file) or not path.is_file() or name not in study_names(path):
        raise not_found("study", f"{file}/{name}")
    return path


def bad(e: Exception) -> APIError:
    return APIError(400, str(e), code="invalid_request")


@router.post("/{file}/{name}/ask")
def ask_trial(file: str, name: str, svc: Svc, owner: Owner):
    """Start the study's next trial (as ``reinforge tune ask``): its number and configuration."""
    study = Study.load(study_path(svc, owner, file, name), name)
    try:
        trial = study.ask()
    finally:
        study.storage.close()
    return {"object": "study.trial", "number": trial.number, "params": trial.params, "state": trial.state}


@router.post("/{file}/{name}/{number}/try")
def try_trial(file: str, name: str, number: int, body: TryBody, svc: Svc, owner: Owner):
    """Run trial ``number``'s configuration on ``examples`` examples with the config beside the study."""
    path = study_path(svc, owner, file, name)
    config = path.with_suffix(".yaml")
    if not config.is_file():
        raise APIError(
            400,
            f"no config beside the study: put its tune config at studies/{owner}/{config.name} "
            "(the one `reinforge tune` ran) to try its trials here",
            param="file",
            code="no_config",
        )
    study = Study.load(path, name)
    try:
        trial = next((t for t in study.trials if t.number == number), None)
    finally:
        study.storage.close()
    if trial is None:
        raise not_found("trial", f"{file}/{name}/{number}")
    try:
        cfg = load_config(TuneConfig, config, [f"storage={path}"])
        if cfg.study != name:
            raise ReinforgeError(f"{config.name}: study is {cfg.study!r}, not {name!r}; fix one of them")
        if not is_llm_study(cfg):
            raise ReinforgeError(
                f"{config.name}: objective.type {cfg.objective.type} has no examples to try; "
                "chat, agent, workflow and rag with an llm have"
            )
        tried = try_params(build_objective(cfg, config.parent), trial.params, body.examples)
    except ReinforgeError as e:
        raise bad(e) from None
    return {"object": "study.trial.try", "number": number, "params": trial.params, **tried}


@router.post("/{file}/{name}/{number}/tell")
def tell_trial(file: str, name: str, number: int, body: TellBody, svc: Svc, owner: Owner):
    """Record a person's score for trial ``number`` (as ``reinforge tune tell``)."""
    study = Study.load(study_path(svc, owner, file, name), name)
    try:
        told = study.tell(number, body.values, attrs={**body.metrics, "scored_by": "hand"})
        best = study.best if study.finished() else None
    except ReinforgeError as e:
        raise bad(e) from None
    finally:
        study.storage.close()
    return {
        "object": "study.trial",
        "number": told.number,
        "state": told.state,
        "values": told.values,
        "best": {"number": best.number, "values": best.values} if best else None,
    }
