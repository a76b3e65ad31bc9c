"""Object ids: blake3 digests of canonical bytes, and their validation.

An id is 64 lowercase hex characters. Ids read from a store (a shared store is
untrusted input) are validated before they ever become part of a path.
"""

from __future__ import annotations

import re
from typing import NewType

from blake3 import blake3

from doteval.errors import CorruptStoreError

ObjectId = NewType("ObjectId", str)

_ID_RE = re.compile(r"[0-9a-f]{64}\Z")


def hash_bytes(data: bytes) -> ObjectId:
    return ObjectId(blake3(data).hexdigest())


def digest(data: bytes) -> bytes:
    """The raw 32-byte digest, for compact tables."""
    return blake3(data).digest()


def is_object_id(text: str) -> bool:
    return isinstance(text, str) and _ID_RE.match(text) is not None


def check_object_id(text: str, *, where: str = "") -> ObjectId:
    if not is_object_id(text):
        raise CorruptStoreError(f"invalid object id {str(text)[:80]!r}" + (f" in {where}" if where else ""))
    return ObjectId(text)
