"""Personal-data sources past bronze: what may leave bronze, and the key that pseudonymises respondents.

A silver table whose source holds personal data declares it (:class:`PersonalSource`): its quarantine then
keeps only allow-listed fields in ``raw_record`` and ``value``, whatever the conform code put there, and its
pseudonymous ids are built with the key from ``KPI_LAKE_PSEUDONYM_KEY``. The development key (published in
this source) is refused outside the generated sample unless ``KPI_LAKE_ALLOW_DEV_KEY`` is true (or
``kpi-lake sync --allow-dev-key``). Only a fingerprint of the key (an HMAC of a fixed label) is ever stored,
so that silver is rebuilt when the key changes; the key itself is never logged or written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from resources.landing import LandingZone

PSEUDONYM_KEY_VARIABLE = "KPI_LAKE_PSEUDONYM_KEY"
ALLOW_DEV_KEY_VARIABLE = "KPI_LAKE_ALLOW_DEV_KEY"
#: Used only when no key is set; accepted on the generated sample, refused on real data (see above).
DEVELOPMENT_KEY = "kpi-lake-development-key-not-for-real-survey-data"
#: Written by ``kpi-lake generate`` at the landing zone's root: the survey files it wrote, with their hashes.
SAMPLE_MARKER = "kpi_lake_sample.json"
SAMPLE_GENERATOR = "kpi-lake sample data"
_FINGERPRINT_LABEL = b"kpi-lake pseudonym key fingerprint v1"
_TRUE = {"1", "true", "yes", "y", "on"}


class DevelopmentKeyError(RuntimeError):
    """A run on real data would pseudonymise with the published development key."""


@dataclass(frozen=True)
class PersonalSource:
    """A silver table's source holds personal data: only ``allowed_columns`` (and columns matching
    ``allowed_pattern``) may appear in its quarantine's raw records and values. Everything else, free text
    and any column a supplier adds later included, stays in bronze."""

    allowed_columns: tuple[str, ...]
    allowed_pattern: str | None = None
    #: The conform function takes ``key=`` (bytes) for keyed pseudonyms; a key change rebuilds the table.
    pseudonymised: bool = True

    def allows(self, column: str | None) -> bool:
        if column is None:
            return False
        return column in self.allowed_columns or bool(
            self.allowed_pattern and re.fullmatch(self.allowed_pattern, column)
        )


def restrict_quarantine(quarantine: pl.DataFrame, source: PersonalSource) -> pl.DataFrame:
    """The quarantine with only allow-listed fields in ``raw_record``, and ``value`` blanked where the
    column at fault is not allow-listed."""
    if quarantine.height == 0:
        return quarantine
    decoded = quarantine["raw_record"].str.json_decode(infer_schema_length=None)
    fields = [f.name for f in decoded.dtype.fields] if isinstance(decoded.dtype, pl.Struct) else []
    kept = [name for name in fields if source.allows(name)]
    if kept:
        raw = decoded.struct.unnest().select(kept).select(pl.struct(pl.all()).struct.json_encode())
        raw_record = raw.to_series().alias("raw_record")
    else:
        raw_record = pl.Series("raw_record", ["{}"] * quarantine.height, dtype=pl.String)
    allowed_value = pl.col("column").is_in(list(source.allowed_columns))
    if source.allowed_pattern:
        allowed_value = allowed_value | pl.col("column").str.contains(f"^(?:{source.allowed_pattern})$")
    return quarantine.with_columns(
        raw_record.fill_null("{}").alias("raw_record"),
        pl.when(allowed_value.fill_null(False)).then(pl.col("value")).alias("value"),
    )


# ---- the pseudonym key ------------------------------------------------------------------------------------
def key_fingerprint(key: bytes) -> str:
    """A short fingerprint of ``key`` (HMAC of a fixed label): tells keys apart, reveals nothing of them."""
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def _environment(variable: str) -> str | None:
    import dagster as dg  # the value is read through EnvVar, as every setting; the UI shows only the name

    return dg.EnvVar(variable).get_value() or None


def dev_key_allowed() -> bool:
    return (_environment(ALLOW_DEV_KEY_VARIABLE) or "").strip().lower() in _TRUE


def pseudonym_key(landing: LandingZone | None) -> bytes:
    """The key for pseudonymous ids: ``KPI_LAKE_PSEUDONYM_KEY``; without it the development key, which is
    refused (:class:`DevelopmentKeyError`) unless the landing zone is the generated sample or
    ``KPI_LAKE_ALLOW_DEV_KEY`` is true."""
    key = _environment(PSEUDONYM_KEY_VARIABLE)
    if key:
        return key.encode()
    if dev_key_allowed() or (landing is not None and is_generated_sample(landing)):
        return DEVELOPMENT_KEY.encode()
    raise DevelopmentKeyError(
        f"{PSEUDONYM_KEY_VARIABLE} is not set, and the landing zone is not the generated sample: the survey's "
        "pseudonymous ids would be keyed with the development key published in kpi-lake's source, so anyone "
        f"could link them back to respondent ids. Set {PSEUDONYM_KEY_VARIABLE} to a secret (and keep it), or, "
        f"for a trial only, pass --allow-dev-key to kpi-lake sync (or set {ALLOW_DEV_KEY_VARIABLE}=true)."
    )


# ---- the generated sample -----------------------------------------------------------------------------------
def sample_marker(survey_hashes: dict[str, str], *, seed: int, scale: float) -> bytes:
    """The marker ``kpi-lake generate`` writes: which survey files it wrote, with their SHA-256."""
    document = {"generator": SAMPLE_GENERATOR, "seed": seed, "scale": scale, "survey_files": survey_hashes}
    return json.dumps(document, indent=2, sort_keys=True).encode()


def is_generated_sample(landing: LandingZone) -> bool:
    """True when the landing zone's survey files are exactly those the sample generator wrote (by hash):
    a real survey wave dropped into a sample landing zone makes it real data."""
    from kpi_lake.raw_files import file_hash

    markers = landing.list_files("", (SAMPLE_MARKER,))
    if not markers:
        return False
    with landing.open_local(markers[0]) as path:
        try:
            document = json.loads(path.read_bytes())
        except ValueError:
            return False
    if not isinstance(document, dict) or document.get("generator") != SAMPLE_GENERATOR:
        return False
    expected = document.get("survey_files") or {}
    present = landing.list_files("qol_survey")
    if {f.name for f in present} != set(expected):
        return False
    for landed in present:
        with landing.open_local(landed) as path:
            if file_hash(path) != expected[landed.name]:
                return False
    return True
