"""A cache of parsed SQL models, so that the code location does not parse an unchanged tree again at every load.

The key is a SHA-256 of everything the result depends on: each file under the models folder (its path and
bytes), the loader's arguments, the source of the modules that parse and check the models, sqlglot's and
Python's versions. A changed model, YAML, argument or parser is a different key, so a stale entry is never
read. The entry is a pickle in ``KPI_LAKE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/kpi-lake`` or
``~/.cache/kpi-lake``), written to a temporary file and renamed into place; a cache that cannot be read or
written (a read-only home in a container, a corrupt file) only means the models are parsed as before.
:func:`cached_tree` does the same for any other tree (the expectation suites: ``assets/quality.py``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Bump when the cached objects change shape in a way the module sources below would not show.
FORMAT = "1"
#: The modules whose code decides what a model parses to: a change to any of them is a new key.
_PARSER_MODULES = ("loading.py", "parsing.py", "config.py", "cache.py", "problems.py")
_PREFIX = "sql-models-"


def cache_dir() -> Path:
    configured = os.environ.get("KPI_LAKE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kpi-lake"


def _key(root: Path, arguments: Any, code: list[Path], packages: tuple[str, ...]) -> str:
    from importlib.metadata import version  # the packages' versions, without importing them

    digest = hashlib.sha256()
    for part in (FORMAT, sys.version, *(version(name) for name in packages), repr(arguments)):
        digest.update(part.encode() + b"\0")
    for path in code:
        digest.update(path.read_bytes() + b"\0")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cached_models(root: Path, arguments: Any, load: Callable[[], T]) -> T:
    """``load()``'s result for the tree at ``root`` and ``arguments``, from the cache when an entry has the same
    key, else loaded and stored. Errors raised by ``load`` are never cached."""
    here = Path(__file__).parent
    code = [*(here / name for name in _PARSER_MODULES), here.parent / "tables.py"]
    return cached_tree(root, arguments, load, prefix=_PREFIX, code=code, packages=("sqlglot",))


def cached_tree(
    root: Path,
    arguments: Any,
    load: Callable[[], T],
    *,
    prefix: str,
    code: list[Path],
    packages: tuple[str, ...] = (),
) -> T:
    """The same for any tree of files read into Python objects (the expectation suites use it too): the key is
    made of ``code`` (the modules that read the tree), the ``packages``' versions, ``arguments`` and every file
    under ``root``; entries are named ``<prefix><key>.pickle``."""
    if os.environ.get("KPI_LAKE_SQL_CACHE", "on").lower() in ("off", "0", "false", "no"):
        return load()
    key = _key(root, arguments, code, packages)
    entry = cache_dir() / f"{prefix}{key}.pickle"
    try:
        with open(entry, "rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        pass  # no entry yet, or one this code cannot read: parse again
    result = load()
    _store(entry, result, prefix)
    return result


def _store(entry: Path, result: Any, prefix: str) -> None:
    temporary: str | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=entry.parent, prefix=".tmp-", delete=False) as handle:
            temporary = handle.name
            pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, entry)
        temporary = None
        # Entries of other trees (another checkout, an edited model) are removed once a week old.
        for old in entry.parent.glob(f"{prefix}*.pickle"):
            if old != entry and _age_days(old) > 7:
                old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, RecursionError):
        pass  # a cache that cannot be written costs time, never correctness
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _age_days(path: Path) -> float:
    import time

    return (time.time() - path.stat().st_mtime) / 86400
