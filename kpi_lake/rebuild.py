"""Work proportional to change: a table records, in its Delta commit, what it was built from (each input's
Delta version and a hash of the code that built it); a build whose record matches has nothing to do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from kpi_lake.tables import TableRef

#: Commit-metadata key (stored as ``kpi_lake.built_from``) of the record.
BUILT_FROM = "built_from"


def fingerprint(
    lake: Any, inputs: Iterable[TableRef], code: str, *, key_fingerprint: str | None = None
) -> str:
    """What a build depends on: each input's current Delta version, and the code (SQL, module source); for a
    pseudonymised table also the fingerprint of its key (never the key), so a new key rebuilds it."""
    versions = {str(ref): lake.version(ref) for ref in inputs}
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    record: dict[str, Any] = {"inputs": versions, "code": digest}
    if key_fingerprint is not None:
        record["pseudonym_key"] = key_fingerprint
    return json.dumps(record, sort_keys=True)


def is_current(lake: Any, ref: TableRef, built_from: str) -> bool:
    """True when ``ref``'s latest commit says it was built from exactly ``built_from``."""
    return lake.last_commit_metadata(ref).get(f"kpi_lake.{BUILT_FROM}") == built_from
