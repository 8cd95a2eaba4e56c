"""Several annotators on one feedback queue: who may label, what each is handed, their labels, label
quality, and the status of the RLHF round the queue belongs to.

A queue created with ``annotators_per_item: k`` (``reinforge rlhf`` with a ``labelers`` section makes
one per round) wants k labels per item, one per annotator. Its owner names the other keys that may
label it (``annotators``: key ids); to anyone else it is a 404, as every object is. Each annotator is
handed only the items they have not labelled and that still want labels; a label carries the key that
sent it (the API key, or the key a web-UI login stands for). Judging an item again replaces one's own
label (same id), so no label counts twice.

==========================================  =====================================================
``GET /v1/feedback/queues/{qid}/next``       the caller's next item (``item: null`` when none is left)
``GET /v1/feedback/queues/{qid}/labels``     every label (owner): what ``reinforge rlhf`` pulls
``GET /v1/feedback/queues/{qid}/quality``    agreement, alpha, gold accuracy, labels per hour (owner)
``POST /v1/feedback/queues/{qid}/round``     the loop's round status: RM accuracy, PPO reward and KL,
                                             samples before and after (owner); shown on the round page
==========================================  =====================================================
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Hashable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from reinforge.data.label_quality import Label, Value, aggregate, label_value, summarise
from reinforge.serve.context import Owner, Svc
from reinforge.serve.db import ApiKey, FeedbackItem, FeedbackLabel, FeedbackQueue
from reinforge.serve.errors import documented, not_found

router = APIRouter(prefix="/v1/feedback", responses=documented(400, 401, 403, 404, 413))


def load_queue(s: Session, caller: str, qid: str, owner_only: bool = False) -> FeedbackQueue:
    """The queue when ``caller`` owns it or (unless ``owner_only``) is one of its annotators; else 404."""
    q = s.get(FeedbackQueue, qid)
    allowed = q is not None and (q.owner == caller or (not owner_only and caller in (q.annotators or [])))
    if q is None or not allowed:
        raise not_found("feedback queue", qid)
    return q


def queue_labels(s: Session, qid: str) -> list[FeedbackLabel]:
    return list(
        s.scalars(select(FeedbackLabel).where(FeedbackLabel.queue_id == qid).order_by(FeedbackLabel.id))
    )


def caller_items(s: Session, q: FeedbackQueue, caller: str) -> list[dict]:
    """The items ``caller`` sees: those they labelled (``judged``, with their label) and those that still
    want labels from someone; gold items look like any other."""
    items = s.scalars(
        select(FeedbackItem).where(FeedbackItem.queue_id == q.id).order_by(FeedbackItem.position)
    )
    labels = queue_labels(s, q.id)
    count = Counter(lb.item_id for lb in labels)
    mine = {lb.item_id: lb for lb in labels if lb.annotator == caller}
    k = q.annotators_per_item or 1
    return [item_view(it, mine.get(it.id)) for it in items if it.id in mine or count[it.id] < k]


def item_view(it: FeedbackItem, own: FeedbackLabel | None) -> dict:
    """An item as an annotator sees it: with their own label (``judged``), if any."""
    return {
        "id": it.id,
        "position": it.position,
        "prompt": it.prompt,
        "responses": it.responses,
        "sources": it.sources,
        "ranking": own.ranking if own else None,
        "thumbs": own.thumbs if own else None,
        "comment": own.comment if own else None,
        "skip": bool(own and own.skip),
        "judged": own is not None,
        "kind": it.kind,
    }


def save_label(s: Session, it: FeedbackItem, caller: str, judgement: Any) -> dict:
    """Store (or replace) the caller's label of ``it``; the item as the caller now sees it."""
    lb = s.scalar(
        select(FeedbackLabel).where(FeedbackLabel.item_id == it.id, FeedbackLabel.annotator == caller)
    )
    if lb is None:
        lb = FeedbackLabel(item_id=it.id, queue_id=it.queue_id, annotator=caller)
        s.add(lb)
    lb.ranking, lb.thumbs, lb.comment = judgement.ranking, judgement.thumbs, judgement.comment
    lb.skip, lb.created_at = bool(judgement.skip), time.time()
    s.commit()
    return {**item_view(it, lb), "label_id": lb.id}


def label_obj(lb: FeedbackLabel, it: FeedbackItem) -> dict:
    value = None if lb.skip else label_value(lb.ranking, lb.thumbs, len(it.responses))
    return {
        "id": lb.id,
        "item_id": it.id,
        "item_ref": it.ref,
        "gold": it.gold is not None,
        "annotator": lb.annotator,
        "ranking": lb.ranking,
        "thumbs": lb.thumbs,
        "skip": lb.skip,
        "value": list(value) if value is not None else None,
        "comment": lb.comment,
        "created_at": lb.created_at,
    }


def labels_with_items(s: Session, q: FeedbackQueue) -> list[dict]:
    items = {it.id: it for it in s.scalars(select(FeedbackItem).where(FeedbackItem.queue_id == q.id))}
    return [label_obj(lb, items[lb.item_id]) for lb in queue_labels(s, q.id)]


def quality(s: Session, q: FeedbackQueue) -> dict:
    """The queue's label quality (``data/label_quality.summarise``), annotators named by their keys."""
    items = list(s.scalars(select(FeedbackItem).where(FeedbackItem.queue_id == q.id)))
    rows = labels_with_items(s, q)
    labels = [
        Label(r["item_id"], r["annotator"], tuple(r["value"]) if r["value"] else None, r["created_at"])
        for r in rows
    ]
    gold: dict[Hashable, Value] = {it.id: tuple(it.gold) for it in items if it.gold is not None}
    out = summarise(labels, gold, [it.id for it in items if it.gold is None], q.annotators_per_item or 1)
    names = {k.id: k.name for k in s.scalars(select(ApiKey).where(ApiKey.id.in_(list(out["annotators"]))))}
    for who, row in out["annotators"].items():
        row["name"] = names.get(who, who)
    return out


def aggregated(s: Session, q: FeedbackQueue) -> list[tuple[FeedbackItem, tuple[int, ...]]]:
    """The non-gold items whose labels decide a preference (majority), with that ranking."""
    values: dict[int, list] = {}
    for r in labels_with_items(s, q):
        values.setdefault(r["item_id"], []).append(tuple(r["value"]) if r["value"] else None)
    items = s.scalars(
        select(FeedbackItem).where(FeedbackItem.queue_id == q.id).order_by(FeedbackItem.position)
    )
    out = []
    for it in items:
        outcome = aggregate(values.get(it.id, []))
        if it.gold is None and outcome.ranking is not None:
            out.append((it, outcome.ranking))
    return out


@router.get("/queues/{qid}/next")
def next_item(qid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        q = load_queue(s, owner, qid)
        todo = [it for it in caller_items(s, q, owner) if not it["judged"]]
        return {
            "object": "feedback.next",
            "queue": qid,
            "remaining": len(todo),
            "item": todo[0] if todo else None,
        }


@router.get("/queues/{qid}/labels")
def list_labels(qid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        q = load_queue(s, owner, qid, owner_only=True)
        return {"object": "list", "data": labels_with_items(s, q), "has_more": False}


@router.get("/queues/{qid}/quality")
def get_quality(qid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        return quality(s, load_queue(s, owner, qid, owner_only=True))


class RoundUpdate(BaseModel):
    """What the RLHF loop reports about the queue's round; fields left out keep their values."""

    model_config = ConfigDict(extra="forbid", strict=True)
    round: int | None = None
    status: str | None = None  # labelling | training | done
    requested: int | None = None
    labelled: int | None = None
    rm_accuracy: float | None = None
    ppo_reward: float | None = None
    kl: float | None = None
    samples: list[dict[str, Any]] | None = None  # [{"prompt", "before", "after"}]


@router.post("/queues/{qid}/round")
def update_round(qid: str, req: RoundUpdate, svc: Svc, owner: Owner):
    with svc.sf() as s:
        q = load_queue(s, owner, qid, owner_only=True)
        q.round_info = {**(q.round_info or {}), **req.model_dump(exclude_none=True)}
        s.commit()
        return {"id": q.id, "object": "feedback.round", **q.round_info}
