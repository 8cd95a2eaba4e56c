"""Service storage: SQLAlchemy tables for keys, files, jobs, events, checkpoints and feedback.

SQLite (WAL mode, so workers write while the API reads) by default; PostgreSQL by URL. Every row that a
user owns carries ``owner`` (the API key's id) and every query filters on it.

>>> eng = make_engine("sqlite://")
>>> key_id, key = create_key(eng, "alice")
>>> key.startswith("rf-") and lookup_key(eng, key).id == key_id
True
>>> revoke_key(eng, key_id) is not None and lookup_key(eng, key) is None
True
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(
        String(64), unique=True, index=True
    )  # sha256; the key is never stored
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: never
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    admin: Mapped[bool | None] = mapped_column(
        Boolean, nullable=True, default=False
    )  # sees all jobs, manages keys


class FileRow(Base):
    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    purpose: Mapped[str] = mapped_column(String(50))
    bytes: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))  # rft | chat | preference: what the rows hold
    rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(500))
    model_path: Mapped[str] = mapped_column(Text)  # what the trainer loads: a tiny id or a local directory
    method: Mapped[dict] = mapped_column(JSON)  # OpenAI's method object, verbatim
    # the trainer config resolved once at creation (openai_compat.job_config), which the worker trains
    config: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), nullable=True)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    user_metadata: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(
        String(20), index=True
    )  # queued running paused succeeded failed cancelled
    control: Mapped[str | None] = mapped_column(String(20), nullable=True)  # cancel | pause, set by the API
    resume: Mapped[bool] = mapped_column(Boolean, default=False)  # the next run continues from a checkpoint
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)  # lease token of the running worker
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_dir: Mapped[str] = mapped_column(Text)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(500), nullable=True)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class EventRow(Base):
    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), ForeignKey("jobs.id"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    level: Mapped[str] = mapped_column(String(10), default="info")
    type: Mapped[str] = mapped_column(String(10), default="message")  # message | metrics
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), ForeignKey("jobs.id"), index=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    step: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(500), index=True)  # ft:...:ckpt-step-N
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class FeedbackQueue(Base):
    __tablename__ = "feedback_queues"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    # several annotators (serve/annotation.py): the client's idempotency reference, labels wanted per
    # item (None: the owner judges alone, on the item), the other keys allowed to label, round status
    ref: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    annotators_per_item: Mapped[int | None] = mapped_column(Integer, nullable=True)
    annotators: Mapped[list | None] = mapped_column(JSON, nullable=True)  # key ids
    round_info: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class FeedbackItem(Base):
    __tablename__ = "feedback_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue_id: Mapped[str] = mapped_column(String(64), ForeignKey("feedback_queues.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[Any] = mapped_column(JSON)  # a string or a list of chat messages
    responses: Mapped[list] = mapped_column(JSON)  # strings
    sources: Mapped[list | None] = mapped_column(JSON, nullable=True)  # model id per response
    ranking: Mapped[list | None] = mapped_column(JSON, nullable=True)  # response indices, best first
    thumbs: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {"0": 1, "1": -1}
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    judged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ref: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the client's id of the item
    gold: Mapped[list | None] = mapped_column(JSON, nullable=True)  # a gold item's known ranking
    kind: Mapped[str | None] = mapped_column(String(20), nullable=True)  # pairwise | ranking | thumbs: asked


class FeedbackLabel(Base):
    """One annotator's judgement of one item of a queue with ``annotators_per_item`` (one per pair)."""

    __tablename__ = "feedback_labels"
    __table_args__ = (UniqueConstraint("item_id", "annotator"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(Integer, ForeignKey("feedback_items.id"), index=True)
    queue_id: Mapped[str] = mapped_column(String(64), ForeignKey("feedback_queues.id"), index=True)
    annotator: Mapped[str] = mapped_column(String(64))  # the key id (API key or web-UI login)
    ranking: Mapped[list | None] = mapped_column(JSON, nullable=True)
    thumbs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    skip: Mapped[bool] = mapped_column(Boolean, default=False)  # no preference (a tie, or cannot tell)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


# ---------------------------------------------------------------------------------------------- engine


def default_db_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'reinforge.db'}"


def make_engine(url: str) -> Engine:
    """Create tables if missing. SQLite gets WAL + a busy timeout so API and workers share the file."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            if ":memory:" not in url and url != "sqlite://":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    else:
        eng = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    Base.metadata.create_all(eng)
    add_missing_columns(eng)
    return eng


def add_missing_columns(eng: Engine) -> None:
    """Columns added since a database was created (create_all makes only missing tables), all nullable."""
    have = {t: {c["name"] for c in inspect(eng).get_columns(t)} for t in Base.metadata.tables}
    with eng.begin() as conn:
        for table in Base.metadata.sorted_tables:
            for col in table.columns:
                if col.name not in have[table.name] and col.nullable:
                    kind = col.type.compile(eng.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}'))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


DB_RETRY_S = 120.0  # how long a worker waits for its database to come back before it gives up
T = TypeVar("T")


def db_unreachable(e: BaseException) -> bool:
    """Whether ``e`` says the database could not be reached (a restart, a failover, a dropped
    connection) rather than that a query was wrong. A SQLite file is never unreachable: its locks wait
    in ``busy_timeout``."""
    if not isinstance(e, DBAPIError):
        return False
    if e.connection_invalidated:
        return True
    return isinstance(e, OperationalError) and type(e.orig).__module__.split(".")[0] != "sqlite3"


def retry_db(fn: Callable[[], T], patience_s: float | None = DB_RETRY_S) -> T:
    """``fn()``, tried again while the database is unreachable, for up to ``patience_s`` seconds (None:
    until it answers). ``fn`` opens its own session, so a transaction cut off midway is redone whole;
    the engine's ``pool_pre_ping`` replaces the connections that died with the server."""
    deadline = None if patience_s is None else time.monotonic() + patience_s
    delay, warned = 0.1, False
    while True:
        try:
            return fn()
        except DBAPIError as e:
            if not db_unreachable(e) or (deadline is not None and time.monotonic() + delay > deadline):
                raise
            if not warned:
                why = (str(e.orig).strip().splitlines() or [""])[0][:200]
                print(f"reinforge: database unreachable ({why}); retrying", file=sys.stderr, flush=True)
                warned = True
            time.sleep(delay)
            delay = min(2 * delay, 2.0)


def db_retried(method: Callable[..., T]) -> Callable[..., T]:
    """A function whose whole body is :func:`retry_db`'d (it must open its own sessions)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return retry_db(lambda: method(*args, **kwargs))

    return wrapper


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    engine: Engine, name: str, expires_in: float | None = None, admin: bool = False
) -> tuple[str, str]:
    """Store a new key's hash; return (key id, the key itself — shown once). ``expires_in``: seconds."""
    key = "rf-" + secrets.token_urlsafe(32)
    key_id, now = new_id("key"), time.time()
    expires_at = now + expires_in if expires_in is not None else None
    with Session(engine) as s:
        s.add(ApiKey(id=key_id, name=name, key_hash=hash_key(key), created_at=now, expires_at=expires_at,
                     admin=admin))  # fmt: skip
        s.commit()
    return key_id, key


def lookup_key(engine: Engine, key: str) -> ApiKey | None:
    """The key's row while it is valid (known, not revoked, not expired); None otherwise. Read from the
    database on every call, so a revocation or an expiry holds at once, in every server process."""
    with Session(engine) as s:
        return usable_key(s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key))))


def usable_key(row: ApiKey | None) -> ApiKey | None:
    """``row`` while the key is valid (not revoked, not expired), else None: the one rule for keys and
    for the web UI's sessions (``serve/sessions.py``)."""
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= time.time():
        return None
    return row


def list_keys(engine: Engine) -> list[ApiKey]:
    with Session(engine) as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.created_at)).all())


def revoke_key(engine: Engine, key_id: str) -> ApiKey | None:
    """Mark a key revoked (kept, so `keys list` shows it); None when there is no such key."""
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = time.time()
            s.commit()
        return row


def add_event(
    s: Session,
    job_id: str,
    message: str,
    level: str = "info",
    type: str = "message",
    data: dict | None = None,
) -> None:
    s.add(EventRow(job_id=job_id, message=message, level=level, type=type, data=data, created_at=time.time()))
