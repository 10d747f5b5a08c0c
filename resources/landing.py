"""The landing zone: where source files arrive (a local folder or an Azure container), one folder per source."""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from kpi_lake.landed_hashes import blob_fingerprint, local_fingerprint
from kpi_lake.storage import is_remote, join_uri, local_path, parse_azure_uri
from resources.azure import AzureStorage


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing zone. ``name`` is its path below the landing root (``spar_net/x.csv``)."""

    name: str
    uri: str
    size: int
    #: What says the file is unchanged without reading it (see ``kpi_lake.landed_hashes``); None: hash it.
    fingerprint: str | None = None


class LandingZone(dg.ConfigurableResource):
    """Files under ``root``: ``<root>/<source>/...``. Local folder by default, or ``az://`` / ``abfss://``."""

    root: str = "landing"
    azure: AzureStorage

    def list_files(
        self, source: str, patterns: tuple[str, ...] = ("*",), exclude: tuple[str, ...] = ()
    ) -> list[LandedFile]:
        """Files directly under ``<root>/<source>`` whose names match a pattern and no exclusion, sorted."""
        files: list[LandedFile] = []
        folder = join_uri(self.root, source)
        if is_remote(self.root):
            fs = self.azure.filesystem(self.root)
            location = parse_azure_uri(folder)
            prefix = f"{location.container}/{location.path}".rstrip("/")
            if not fs.exists(prefix):
                return []
            entries = [
                (e["name"].rsplit("/", 1)[-1], e) for e in fs.ls(prefix, detail=True) if e["type"] == "file"
            ]
            for base, entry in entries:
                if _matches(base, patterns, exclude):
                    files.append(
                        LandedFile(
                            f"{source}/{base}",
                            join_uri(folder, base),
                            int(entry["size"]),
                            blob_fingerprint(entry),
                        )
                    )
        else:
            directory = local_path(folder)
            if not directory.is_dir():
                return []
            for path in directory.iterdir():
                if path.is_file() and _matches(path.name, patterns, exclude):
                    stat = path.stat()
                    files.append(
                        LandedFile(f"{source}/{path.name}", str(path), stat.st_size, local_fingerprint(stat))
                    )
        return sorted(files, key=lambda f: f.name)

    def local_root(self) -> Path | None:
        """The landing folder when it is local, else None."""
        return None if is_remote(self.root) else local_path(self.root)

    @contextmanager
    def open_local(self, file: LandedFile) -> Iterator[Path]:
        """A local path to the file's bytes: the file itself, or a temporary download of a remote one."""
        if not is_remote(file.uri):
            yield Path(file.uri)
            return
        fs = self.azure.filesystem(self.root)
        location = parse_azure_uri(file.uri)
        with tempfile.TemporaryDirectory(prefix="kpi-lake-") as tmp:
            target = Path(tmp) / Path(location.path).name
            with fs.open(f"{location.container}/{location.path}", "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            yield target


def _matches(name: str, patterns: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    if name.startswith((".", "~$")):  # hidden files and Office lock files are never data
        return False
    lowered = name.lower()
    return any(fnmatch.fnmatch(lowered, p.lower()) for p in patterns) and not any(
        fnmatch.fnmatch(lowered, p.lower()) for p in exclude
    )
