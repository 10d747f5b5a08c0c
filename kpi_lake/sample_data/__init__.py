"""Deterministic, seeded sample data: a landing zone for the fictional Kestrelford City Council and its
comparators, in the real published formats of every source family (see docs/SAMPLE_DATA.md).

    story = generate_landing("landing", scale=1.0, seed=20261126)

The same (scale, seed) always writes the same bytes; nothing reads the clock (the data is "as of"
31 October 2026). ``SampleStory`` is the ground truth tests reconcile against.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from kpi_lake.personal_data import SAMPLE_MARKER, sample_marker
from kpi_lake.raw_files import file_hash
from kpi_lake.sample_data._common import AS_OF, LandingWriter
from kpi_lake.sample_data.benchmarks import write_benchmarks
from kpi_lake.sample_data.business_systems import (
    BUSINESS_TABLES,
    build_business_frames,
    compute_business_kpis,
    sqlite_url,
    write_business_database,
    write_business_frames,
)
from kpi_lake.sample_data.council import COMPARATORS, KPIS, OWN, computed_kpis
from kpi_lake.sample_data.education import write_education
from kpi_lake.sample_data.emissions import write_emissions
from kpi_lake.sample_data.qol_survey import write_survey
from kpi_lake.sample_data.spar_net import Mismatch, build_spar, write_spar

__all__ = [
    "BUSINESS_DATABASE",
    "BUSINESS_TABLES",
    "DEFAULT_SEED",
    "FAMILIES",
    "Mismatch",
    "SampleStory",
    "generate_landing",
    "write_business_database",
]

DEFAULT_SEED = 20261126
BUSINESS_DATABASE = "business_systems/council_systems.sqlite"
FAMILIES = ("business_systems", "spar_net", "emissions", "education", "qol_survey", "benchmarks", "reference")


@dataclass(frozen=True)
class SampleStory:
    """Ground truth about one generated landing zone.

    ``computed_values`` maps (kpi_code, period) to the value the lake should compute, rounded as
    SPAR.net shows it; periods are '2024/25 Q2' (quarters), '2024/25' (financial or academic years)
    and '2023' (calendar years). SPAR.net reports exactly these values except for ``mismatches``.
    """

    council_code: str
    council_name: str
    comparator_codes: tuple[str, ...]
    kpi_codes: tuple[str, ...]
    computed_kpis: Mapping[str, str]  # kpi_code -> landing family it is computed from
    computed_values: Mapping[tuple[str, str], float]
    mismatches: tuple[Mismatch, ...]
    business_rows: Mapping[str, int]  # business-system table -> rows written (soft-deleted included)
    family_rows: Mapping[str, int]
    files: tuple[str, ...]  # relative to the landing directory, '/'-separated
    scale: float
    seed: int
    as_of: str = field(default=AS_OF.isoformat())

    def files_of(self, family: str) -> tuple[str, ...]:
        return tuple(f for f in self.files if f.split("/", 1)[0] == family)


def generate_landing(
    landing_dir: str | os.PathLike, *, scale: float = 1.0, seed: int = DEFAULT_SEED
) -> SampleStory:
    """Write the landing zone under ``landing_dir/<family>/`` and return its ground truth.

    Files it writes are overwritten (same bytes for the same arguments); other files are left alone.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    root = Path(landing_dir)
    root.mkdir(parents=True, exist_ok=True)
    writer = LandingWriter(root)
    family_rows: dict[str, int] = {}

    frames = build_business_frames(scale=scale, seed=seed)
    database = writer.path(BUSINESS_DATABASE)
    database.unlink(missing_ok=True)  # a fresh file, so the bytes depend only on (scale, seed)
    business_rows = write_business_frames(sqlite_url(database), frames)
    writer.register(BUSINESS_DATABASE)
    family_rows["business_systems"] = sum(business_rows.values())
    computed = compute_business_kpis(frames)
    del frames

    emission_kpis, family_rows["emissions"] = write_emissions(writer, seed=seed)
    education_kpis, family_rows["education"], education = write_education(writer, seed=seed)
    # A residents' survey is a few thousand responses a year however big the council's systems are: the
    # survey follows scale only downwards (small test landings), so 10-million-row runs stay realistic.
    survey_kpis, family_rows["qol_survey"] = write_survey(writer, scale=min(scale, 1.0), seed=seed)
    computed |= emission_kpis | education_kpis | survey_kpis

    spar = build_spar(computed, seed=seed)
    family_rows["spar_net"] = write_spar(writer, spar)
    family_rows["benchmarks"], family_rows["reference"] = write_benchmarks(
        writer, seed=seed, spar=spar, computed=computed, education=education
    )
    # The marker that tells this landing zone from real data (where the development pseudonym key is
    # refused): the survey files written here, with their hashes.
    survey_files = {name: file_hash(root / name) for name in writer.files if name.startswith("qol_survey/")}
    writer.write_bytes(SAMPLE_MARKER, sample_marker(survey_files, seed=seed, scale=scale))
    return SampleStory(
        council_code=OWN.code,
        council_name=OWN.full_name,
        comparator_codes=tuple(c.code for c in COMPARATORS),
        kpi_codes=tuple(k.code for k in KPIS),
        computed_kpis=MappingProxyType(dict(computed_kpis())),
        computed_values=MappingProxyType(dict(spar.computed_values)),
        mismatches=tuple(spar.mismatches),
        business_rows=MappingProxyType(dict(business_rows)),
        family_rows=MappingProxyType(family_rows),
        files=tuple(writer.files),
        scale=scale,
        seed=seed,
    )
