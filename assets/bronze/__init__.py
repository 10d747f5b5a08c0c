"""Bronze assets: one per source table, landing raw data as Delta with lineage. See ``kpi_lake.bronze``."""

from assets.bronze import benchmarks, business_systems, education, emissions, qol_survey, reference, spar_net
from assets.bronze.factory import database_bronze_asset, file_bronze_asset

FILE_TABLES = [
    *spar_net.FILE_TABLES,
    *emissions.FILE_TABLES,
    *education.FILE_TABLES,
    *qol_survey.FILE_TABLES,
    *benchmarks.FILE_TABLES,
    *reference.FILE_TABLES,
]
DATABASE_TABLES = business_systems.DATABASE_TABLES

bronze_assets = [
    *(
        file_bronze_asset(spec, [other for other in FILE_TABLES if other.source == spec.source])
        for spec in FILE_TABLES
    ),
    *(database_bronze_asset(spec) for spec in DATABASE_TABLES),
]
