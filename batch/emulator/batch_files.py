"""The Files API of the Batch routes: upload (multipart, ``purpose=batch``), retrieve, list,
content download and delete, held in memory.

A resource keeps at most ``max_files`` files uploaded without ``expires_after`` (Azure: 500);
uploads that set it count against a larger cap (10,000), as the service documents. Output and
error files written by batches are stored here too, so a client that never deletes them hits
the cap like it would on Azure.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from .errors import ApiError, bad_request

__all__ = ["MAX_FILE_BYTES", "FileStore", "StoredFile", "read_upload"]

#: Largest input file the Batch API takes (Azure and OpenAI: 200 MB).
MAX_FILE_BYTES = 200 * 1024 * 1024
#: Files per resource when uploads set ``expires_after``.
EXPIRING_FILES_CAP = 10_000
#: ``expires_after.seconds`` bounds (OpenAI's 1 h to 30 days; Azure documents 14 to 30 days).
EXPIRES_MIN_S, EXPIRES_MAX_S = 3600, 2_592_000


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class FileStore:
    def __init__(self, max_files: int) -> None:
        self.max_files = max_files
        self.files: dict[str, StoredFile] = {}
        self.deleted = 0

    def add(self, filename: str, purpose: str, data: bytes, expires_after_s: int | None = None) -> StoredFile:
        expiring = sum(1 for f in self.files.values() if f.expires_at is not None)
        if expires_after_s is None and len(self.files) - expiring >= self.max_files:
            raise bad_request(
                "quota_exceeded",
                f"The resource holds its maximum of {self.max_files} files. Delete files you no longer need, "
                "or upload with expires_after.",
            )
        if expires_after_s is not None and expiring >= EXPIRING_FILES_CAP:
            raise bad_request("quota_exceeded", f"The resource holds its maximum of {EXPIRING_FILES_CAP} files.")
        now = int(time.time())
        stored = StoredFile(
            id="file-" + uuid.uuid4().hex,
            filename=filename,
            purpose=purpose,
            data=data,
            created_at=now,
            expires_at=None if expires_after_s is None else now + expires_after_s,
        )
        self.files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise ApiError(404, "file_not_found", f"File with id '{file_id}' not found.")
        return stored

    def delete(self, file_id: str) -> dict[str, Any]:
        self.get(file_id)
        del self.files[file_id]
        self.deleted += 1
        return {"id": file_id, "object": "file", "deleted": True}


async def read_upload(request: web.Request) -> tuple[str, str, bytes, int | None]:
    """``(filename, purpose, data, expires_after_seconds)`` from a multipart upload."""
    if not request.content_type.startswith("multipart/"):
        raise bad_request("invalid_request", "Files must be uploaded as multipart/form-data.")
    fields: dict[str, str] = {}
    filename, data = "", None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.name == "file":
            filename = part.filename or "upload.jsonl"
            data = await part.read(decode=False)
            if len(data) > MAX_FILE_BYTES:
                raise ApiError(413, "file_too_large", f"The file exceeds the maximum size of {MAX_FILE_BYTES} bytes.")
        else:
            fields[part.name] = (await part.read(decode=False)).decode("utf-8", "replace")
    if data is None:
        raise bad_request("missing_required_parameter", "Missing required parameter: 'file'.", param="file")
    purpose = fields.get("purpose")
    if purpose != "batch":
        raise bad_request("invalid_value", "purpose must be 'batch' on this resource.", param="purpose")
    return filename, purpose, bytes(data), _expires_after(fields)


def _expires_after(fields: dict[str, str]) -> int | None:
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at" or seconds is None or not seconds.isdigit():
        raise bad_request(
            "invalid_value", "expires_after needs anchor 'created_at' and whole seconds.", param="expires_after"
        )
    value = int(seconds)
    if not EXPIRES_MIN_S <= value <= EXPIRES_MAX_S:
        raise bad_request(
            "invalid_value",
            f"expires_after.seconds must be between {EXPIRES_MIN_S} and {EXPIRES_MAX_S}.",
            param="expires_after",
        )
    return value
