"""``/v1/files``: upload (a fine-tune file is validated line by line), list, retrieve, content, delete."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from reinforge.errors import ReinforgeError
from reinforge.serve.context import Limit, Owner, Svc, page
from reinforge.serve.db import FileRow, new_id
from reinforge.serve.errors import APIError, documented, not_found
from reinforge.serve.uploads import validate_upload

router = APIRouter(prefix="/v1/files", responses=documented(400, 401, 403, 404, 413, 507))
PURPOSES = ("fine-tune", "user_data", "evals", "batch")


def file_obj(f: FileRow) -> dict:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": int(f.created_at),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def get_file(s: Session, owner: str, fid: str) -> FileRow:
    f = s.get(FileRow, fid)
    if f is None or f.owner != owner:
        raise not_found("file", fid)
    return f


@router.post("")
def upload_file(svc: Svc, owner: Owner, file: UploadFile = File(...), purpose: str = Form(...)):
    if purpose not in PURPOSES:
        raise APIError(400, f"purpose {purpose!r}: use 'fine-tune' for training files", param="purpose")
    fid = new_id("file")
    path = svc.data_dir / "files" / f"{fid}.jsonl"
    limit, size = svc.settings.max_upload_bytes, 0
    try:
        with path.open("wb") as out:
            while chunk := file.file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    out.close()
                    path.unlink(missing_ok=True)
                    raise APIError(
                        413,
                        f"{file.filename}: larger than the upload limit of {limit} bytes",
                        param="file",
                        code="file_too_large",
                    )
                out.write(chunk)
    except OSError as e:  # a full disk: nothing half-written is kept
        path.unlink(missing_ok=True)
        raise APIError(
            507,
            f"{file.filename}: the server could not store the file ({e.strerror or e}); nothing was kept. "
            "Try again once the server's disk has room.",
            param="file",
            code="storage_error",
            type="server_error",
        ) from None
    name = file.filename or "upload.jsonl"
    kind, rows = "raw", 0
    if purpose == "fine-tune":
        try:
            kind, rows = validate_upload(path, name)
        except ReinforgeError as e:
            path.unlink(missing_ok=True)
            raise APIError(400, str(e), param="file", code="invalid_file") from None
    row = FileRow(
        id=fid,
        owner=owner,
        filename=name,
        purpose=purpose,
        bytes=size,
        path=str(path),
        kind=kind,
        rows=rows,
        created_at=time.time(),
    )
    with svc.sf() as s:
        s.add(row)
        s.commit()
    return file_obj(row)


@router.get("")
def list_files(
    svc: Svc,
    owner: Owner,
    purpose: str | None = None,
    limit: Limit = 10000,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
):
    with svc.sf() as s:
        q = select(FileRow).where(FileRow.owner == owner)
        if purpose:
            q = q.where(FileRow.purpose == purpose)
        col = FileRow.created_at
        if after:
            a = get_file(s, owner, after)
            q = q.where(col < a.created_at if order == "desc" else col > a.created_at)
        rows = s.scalars(q.order_by(col.desc() if order == "desc" else col).limit(limit + 1)).all()
        return page([file_obj(f) for f in rows], limit)


@router.get("/{fid}")
def retrieve_file(fid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        return file_obj(get_file(s, owner, fid))


@router.get(
    "/{fid}/content",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def file_content(fid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        f = get_file(s, owner, fid)
    return FileResponse(f.path, media_type="application/octet-stream", filename=f.filename)


@router.delete("/{fid}")
def delete_file(fid: str, svc: Svc, owner: Owner):
    with svc.sf() as s:
        f = get_file(s, owner, fid)
        if f.kind != "results":
            Path(f.path).unlink(missing_ok=True)
        s.delete(f)
        s.commit()
    return {"id": fid, "object": "file", "deleted": True}
