"""The business-system tables the lake extracts, and the primary key of each.

One list for the pipeline (what to mirror into bronze) and the sample-data generator (what to write). Every
table also has ``updated_at`` (the extraction watermark) and ``deleted_at`` (soft deletes).
"""

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
