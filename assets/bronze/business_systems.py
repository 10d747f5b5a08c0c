"""The council's internal business systems, extracted from their databases incrementally."""

from kpi_lake.bronze import DatabaseTable

#: Table → primary key. Each table also has ``updated_at`` (the watermark) and ``deleted_at`` (soft delete).
BUSINESS_TABLES: dict[str, str] = {
    "council_tax_accounts": "account_ref",
    "council_tax_charges": "charge_id",
    "council_tax_payments": "payment_id",
    "planning_applications": "application_ref",
    "housing_repairs": "job_id",
    "waste_collection_rounds": "round_day_id",
    "missed_bin_reports": "report_id",
    "foi_requests": "request_id",
    "employees": "employee_id",
    "sickness_absence": "absence_id",
    "service_requests": "request_id",
}

DATABASE_TABLES = [
    DatabaseTable(
        source="business_systems",
        table=table,
        primary_key=key,
        description=(
            f"The business-system table `{table}`, mirrored incrementally: rows changed since the last "
            f"`updated_at` are merged on `{key}`; rows deleted at source are kept, flagged `_deleted_in_source`."
        ),
    )
    for table, key in BUSINESS_TABLES.items()
]
