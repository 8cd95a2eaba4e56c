"""Human feedback: queues of prompts with two or more responses, judged in the web UI, exported as preferences.

A judgement is a ``ranking`` (response indices, best first), optional ``thumbs`` per response (+1/-1) and an
optional comment. Export writes the formats the reward-model and DPO trainers read:
two responses -> ``{"prompt", "chosen", "rejected"}``; more -> ``{"prompt", "responses", "ranking"}``;
thumbs alone (no ranking) -> one pair per (up, down) response pair.

>>> preference_rows("2+2", ["4", "5"], [0, 1], None)
[{'prompt': '2+2', 'chosen': '4', 'rejected': '5'}]
>>> preference_rows("q", ["a", "b", "c"], None, {"0": -1, "2": 1})
[{'prompt': 'q', 'chosen': 'c', 'rejected': 'a'}]
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from reinforge.models.chat import encode_prompt
from reinforge.models.generation import SamplingParams
from reinforge.serve.annotation import aggregated, caller_items, load_queue, save_label
from reinforge.serve.context import Owner, RowId, Service, Svc
from reinforge.serve.db import ApiKey, FeedbackItem, FeedbackQueue, new_id, usable_key
from reinforge.serve.errors import APIError, documented, not_found
from reinforge.serve.models import resolve_model

router = APIRouter(prefix="/v1/feedback", responses=documented(400, 401, 403, 404, 413))


def preference_rows(
    prompt: Any, responses: list[str], ranking: list[int] | None, thumbs: dict[str, int] | None
) -> list[dict]:
    """Preference JSONL rows for one judged item (empty when it holds no preference)."""
    if ranking and len(ranking) == len(responses):
        if len(responses) == 2:
            return [{"prompt": prompt, "chosen": responses[ranking[0]], "rejected": responses[ranking[1]]}]
        return [{"prompt": prompt, "responses": list(responses), "ranking": list(ranking)}]
    ups = [int(i) for i, v in (thumbs or {}).items() if v > 0]
    downs = [int(i) for i, v in (thumbs or {}).items() if v < 0]
    return [
        {"prompt": prompt, "chosen": responses[u], "rejected": responses[d]}
        for u in sorted(ups)
        for d in sorted(downs)
    ]


KINDS = (None, "pairwise", "ranking", "thumbs")  # what an item asks of its judges (None: any)


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: "32" is not 32, as the schema says
    name: str = "feedback"
    items: list[dict[str, Any]] | None = None  # uploaded set: [{"prompt", "responses": [...]}]
    prompts: list[Any] | None = None  # or prompts (strings or message lists) answered by `models`
    models: list[str] | None = None
    samples_per_model: int = 1
    temperature: float = 1.0
    max_tokens: int = 32
    # several annotators (serve/annotation.py); items may then carry "id" (the client's) and "gold" (a ranking)
    ref: str | None = Field(
        None, max_length=200
    )  # the client's reference: the same ref again, the same queue
    annotators_per_item: int | None = Field(None, ge=1, le=100)  # labels wanted per item, one per annotator
    annotators: list[Annotated[str, Field(max_length=64)]] | None = (
        None  # key ids that may label, besides the owner
    )
    round: dict[str, Any] | None = None  # the RLHF round's status, shown on the round page


class Judgement(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ranking: list[int] | None = None
    thumbs: dict[str, int] | None = None
    comment: str | None = None
    skip: bool = False  # no preference (a tie, or cannot tell): stored as such on shared queues


def item_obj(it: FeedbackItem) -> dict:
    return {
        "id": it.id,
        "position": it.position,
        "prompt": it.prompt,
        "responses": it.responses,
        "sources": it.sources,
        "ranking": it.ranking,
        "thumbs": it.thumbs,
        "comment": it.comment,
        "judged": it.judged_at is not None,
        "kind": it.kind,
    }


def get_queue(s, owner: str, qid: str) -> FeedbackQueue:
    q = s.get(FeedbackQueue, qid)
    if q is None or q.owner != owner:
        raise not_found("feedback queue", qid)
    return q


def queue_obj(s, q: FeedbackQueue, with_items: bool, caller: str) -> dict:
    """The queue as ``caller`` sees it: on a shared queue (``annotators_per_item``), the items they
    labelled or may still label, ``judged`` by them."""
    if q.annotators_per_item:
        items = caller_items(s, q, caller)
    else:
        rows = s.scalars(
            select(FeedbackItem).where(FeedbackItem.queue_id == q.id).order_by(FeedbackItem.position)
        ).all()
        items = [item_obj(i) for i in rows]
    out = {
        "id": q.id,
        "object": "feedback.queue",
        "name": q.name,
        "created_at": int(q.created_at),
        "total": len(items),
        "judged": sum(i["judged"] for i in items),
        "ref": q.ref,
        "annotators_per_item": q.annotators_per_item,
        "round": q.round_info,
        "owned": q.owner == caller,  # annotators of a shared queue do not own it
    }
    if with_items:
        out["items"] = items
    return out


def generate(svc: Service, owner: str, req: QueueCreate) -> list[dict]:
    """Sample ``samples_per_model`` responses to each prompt from each model."""
    items = [{"prompt": p, "responses": [], "sources": []} for p in req.prompts or []]
    for mid in req.models or []:
        path = resolve_model(svc, owner, mid)
        if path is None:
            raise APIError(400, f"models: {mid!r} is not available", param="models")
        lm = svc.pool.get(path)
        for it in items:
            msgs = (
                it["prompt"]
                if isinstance(it["prompt"], list)
                else [{"role": "user", "content": it["prompt"]}]
            )
            out = lm.submit(
                encode_prompt(lm.tokenizer, msgs),
                SamplingParams(
                    temperature=req.temperature, max_tokens=req.max_tokens, n=req.samples_per_model
                ),
            )
            it["responses"] += out.texts
            it["sources"] += [mid] * len(out.texts)
    return items


@router.post("/queues")
async def create_queue(req: QueueCreate, svc: Svc, owner: Owner):
    if req.items is not None:
        items = req.items
    elif req.prompts and req.models:
        items = await run_in_threadpool(generate, svc, owner, req)
    else:
        raise APIError(400, "give items ([{prompt, responses}]) or prompts and models", param="items")
    for i, it in enumerate(items):
        if "prompt" not in it or not isinstance(it.get("responses"), list) or len(it["responses"]) < 2:
            raise APIError(
                400,
                f"items[{i}]: needs 'prompt' and at least two 'responses' (a model list "
                "with samples_per_model * len(models) >= 2)",
                param=f"items[{i}]",
            )
        if it.get("kind") not in KINDS or (it.get("kind") == "pairwise" and len(it["responses"]) != 2):
            raise APIError(
                400, f"items[{i}].kind: pairwise (two responses), ranking or thumbs", param=f"items[{i}].kind"
            )
    with svc.sf() as s:
        unknown = [k for k in req.annotators or [] if usable_key(s.get(ApiKey, k)) is None]
        if unknown:
            raise APIError(
                400,
                f"annotators: {unknown[0]!r} is no valid key id (see `reinforge keys list`)",
                param="annotators",
            )
        if req.ref is not None:  # the same request again (a client that restarted): the same queue
            q = s.scalar(
                select(FeedbackQueue).where(FeedbackQueue.owner == owner, FeedbackQueue.ref == req.ref)
            )
            if q is not None:
                return queue_obj(s, q, with_items=False, caller=owner)
        q = FeedbackQueue(
            id=new_id("fbq"),
            owner=owner,
            name=req.name,
            created_at=time.time(),
            ref=req.ref,
            # other annotators make a shared queue (each their own label), of one label per item at least
            annotators_per_item=req.annotators_per_item or (1 if req.annotators else None),
            annotators=req.annotators,
            round_info=req.round,
        )
        s.add(q)
        s.flush()
        for i, it in enumerate(items):
            s.add(
                FeedbackItem(
                    queue_id=q.id,
                    position=i,
                    prompt=it["prompt"],
                    responses=[str(x) for x in it["responses"]],
                    sources=it.get("sources"),
                    ref=str(it["id"]) if "id" in it else None,
                    gold=it.get("gold"),
                    kind=it.get("kind"),
                )
            )
        s.commit()
        return queue_obj(s, q, with_items=False, caller=owner)


@router.get("/queues")
def list_queues(svc: Svc, owner: Owner):
    with svc.sf() as s:
        qs = s.scalars(
            select(FeedbackQueue)
            .where((FeedbackQueue.owner == owner) | FeedbackQueue.annotators_per_item.is_not(None))
            .order_by(FeedbackQueue.created_at.desc())
        ).all()
        mine = [
            q for q in qs if q.owner == owner or owner in (q.annotators or [])
        ]  # and those shared with me
        return {"object": "list", "data": [queue_obj(s, q, False, owner) for q in mine], "has_more": False}


@router.get("/queues/{qid}")
def get_queue_items(qid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        return queue_obj(s, load_queue(s, owner, qid), with_items=True, caller=owner)


@router.post("/items/{item_id}")
def judge(item_id: RowId, req: Judgement, svc: Svc, owner: Owner):
    with svc.sf() as s:
        it = s.get(FeedbackItem, item_id)
        queue = s.get(FeedbackQueue, it.queue_id) if it is not None else None
        # a 404 for the item, not "no such queue 'fbq-…'": that names another's queue
        if it is None or queue is None or not (queue.owner == owner or owner in (queue.annotators or [])):
            raise not_found("feedback item", str(item_id))
        n = len(it.responses)
        if req.ranking is not None and sorted(req.ranking) != list(range(n)):
            raise APIError(
                400,
                f"ranking: must order all {n} responses (a permutation of 0..{n - 1})",
                param="ranking",
            )
        if req.thumbs and any(int(k) not in range(n) or v not in (-1, 1) for k, v in req.thumbs.items()):
            raise APIError(400, "thumbs: {response index: 1 or -1}", param="thumbs")
        wants = "thumbs" if it.kind == "thumbs" else "ranking" if it.kind else None  # what the item asks
        if wants and not (getattr(req, wants) or req.skip):
            raise APIError(400, f"{wants}: this item asks for {wants} (or skip: true)", param=wants)
        if queue.annotators_per_item:  # a shared queue: the caller's own label
            return save_label(s, it, owner, req)
        it.ranking, it.thumbs, it.comment, it.judged_at = (
            req.ranking,
            req.thumbs,
            req.comment,
            time.time(),
        )
        s.commit()
        return item_obj(it)


@router.get(
    "/queues/{qid}/export", response_class=Response, responses={200: {"content": {"application/jsonl": {}}}}
)
def export(qid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        q = get_queue(s, owner, qid)
        if q.annotators_per_item:  # a shared queue: each item's labels as one preference (majority)
            judged: list[tuple[FeedbackItem, list | None, dict | None]] = [
                (it, list(ranking), None) for it, ranking in aggregated(s, q)
            ]
        else:
            items = s.scalars(
                select(FeedbackItem)
                .where(FeedbackItem.queue_id == qid, FeedbackItem.judged_at.is_not(None))
                .order_by(FeedbackItem.position)
            ).all()
            judged = [(it, it.ranking, it.thumbs) for it in items]
        rows = [
            row
            for it, ranking, thumbs in judged
            for row in preference_rows(it.prompt, it.responses, ranking, thumbs)
        ]
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return Response(
        body,
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{qid}-preferences.jsonl"'},
    )
