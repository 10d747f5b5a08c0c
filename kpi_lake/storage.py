"""Lake and landing URIs: a local folder or Azure Data Lake / Blob storage (``az://``, ``abfss://``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

AZURE_SCHEMES = ("az", "abfs", "abfss", "adl")
#: Azurite's documented development account (public, the same on every machine; not a secret).
EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
EMULATOR_URL = "http://127.0.0.1:10000"

_ABFSS = re.compile(r"^(?P<scheme>abfss?)://(?P<container>[^@/]+)@(?P<account>[^./]+)\.[^/]+(?P<path>/.*)?$")
_AZ = re.compile(r"^(?P<scheme>az|adl|abfss?)://(?P<container>[^@/]+)(?P<path>/.*)?$")


@dataclass(frozen=True)
class AzureLocation:
    """Where an Azure URI points: the storage account (when the URI names it), container and path."""

    container: str
    path: str
    account: str | None


def is_remote(uri: str) -> bool:
    """True for Azure URIs, false for local folders (plain paths or ``file://``)."""
    return uri.split("://", 1)[0].lower() in AZURE_SCHEMES if "://" in uri else False


def parse_azure_uri(uri: str) -> AzureLocation:
    """``abfss://lake@acct.dfs.core.windows.net/kpi`` or ``az://lake/kpi`` → container, path, account."""
    match = _ABFSS.match(uri) or _AZ.match(uri)
    if not match:
        raise ValueError(
            f"not an Azure storage URI: {uri!r}; expected az://<container>/<path> or "
            "abfss://<container>@<account>.dfs.core.windows.net/<path>"
        )
    groups = match.groupdict()
    return AzureLocation(
        container=groups["container"],
        path=(groups.get("path") or "").strip("/"),
        account=groups.get("account"),
    )


def join_uri(root: str, *parts: str) -> str:
    """Join path parts below a root, local or remote, with exactly one slash between them."""
    clean = [p.strip("/") for p in parts if p and p.strip("/")]
    if is_remote(root):
        return "/".join([root.rstrip("/"), *clean])
    local_root = root[len("file://") :] if root.startswith("file://") else root
    return str(Path(local_root).joinpath(*clean))


def local_path(uri: str) -> Path:
    """The local folder of a non-Azure URI."""
    if is_remote(uri):
        raise ValueError(f"{uri!r} is an Azure URI, not a local folder")
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def write_atomically(path: Path, data: bytes) -> None:
    """Write a local file so that a reader sees the old content or the new, never half: into a temporary file
    beside it, then renamed over it. Parent folders are made."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as partial:
        partial.write(data)
    try:
        os.replace(partial.name, path)
    except OSError:
        os.unlink(partial.name)
        raise


def redact(uri: str) -> str:
    """A URI safe to log: any query string (a SAS token, say) is cut off."""
    return uri.split("?", 1)[0]
