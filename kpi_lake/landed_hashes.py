"""What a landed file's hash was, by a fingerprint that costs no read of the file: a cache, so that a quiet night
neither reads (nor, from Azure, downloads) every landed file again only to find it unchanged.

A local file's fingerprint is its size, modification time (ns) and inode; an Azure blob's is its ETag (which
changes with every write) and size. A local file modified within the last 2 s gets none (its time may not have
ticked yet after a write in the same instant: git's "racily clean" case), so it is hashed, as is any file whose
fingerprint differs from the one recorded with its hash. The record is one small JSON document per bronze table in
the lake's own area (``_kpi_lake/landed/<source>/<table>.json``), written after the table's commit; missing or
unreadable, it is an empty cache: the files are hashed, as they always were.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from kpi_lake.storage import join_uri

if TYPE_CHECKING:
    from kpi_lake.tables import TableRef
    from resources.lake import DeltaLake

LANDED_PATH = "_kpi_lake/landed"
#: A local file changed more recently than this gets no fingerprint (it is hashed every time until it settles).
SETTLE_NS = 2_000_000_000
_VERSION = 1


def local_fingerprint(stat: os.stat_result, now_ns: int | None = None) -> str | None:
    """A local file's fingerprint from its ``stat``, or None while it may still be changing."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if now_ns - stat.st_mtime_ns < SETTLE_NS:
        return None
    return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns};inode={stat.st_ino}"


def blob_fingerprint(entry: dict) -> str | None:
    """An Azure blob's fingerprint from its listing entry (adlfs ``ls(detail=True)``), None without an ETag."""
    etag = entry.get("etag")
    return f"etag={str(etag).strip(chr(34))};size={int(entry['size'])}" if etag else None


class LandedHashes:
    """The recorded (fingerprint, SHA-256) of each landed file of one bronze table."""

    def __init__(self, lake: DeltaLake, ref: TableRef) -> None:
        self.lake = lake
        self.uri = join_uri(lake.root, LANDED_PATH, ref.source, f"{ref.table}.json")

    def load(self) -> dict[str, tuple[str, str]]:
        """File name → (fingerprint, hash); empty when nothing is recorded or the record cannot be read."""
        try:
            document = json.loads(self.lake.read_document(self.uri).decode())
        except (OSError, ValueError, UnicodeDecodeError):  # missing, unreadable or corrupt: hash everything
            return {}
        if not isinstance(document, dict) or document.get("version") != _VERSION:
            return {}
        files = document.get("files")
        if not isinstance(files, dict):
            return {}
        return {
            name: (entry[0], entry[1])
            for name, entry in files.items()
            if isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)
        }

    def save(self, files: dict[str, tuple[str, str]]) -> None:
        """Replace the record, atomically (a reader sees the old document or the new one)."""
        data = json.dumps(
            {"version": _VERSION, "files": {n: list(v) for n, v in sorted(files.items())}}, indent=0
        ).encode()
        self.lake.write_document(self.uri, data)


__all__ = ["LANDED_PATH", "LandedHashes", "blob_fingerprint", "local_fingerprint"]
