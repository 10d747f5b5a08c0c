"""Silver tables for the business systems: conformed operational facts with the flags KPIs count."""

from assets.silver.factory import SilverTable
from kpi_lake.conform import business_systems as conform
from kpi_lake.tables import TableRef


def _bronze(*tables: str) -> tuple[TableRef, ...]:
    return tuple(TableRef("bronze", "business_systems", t) for t in tables)


def _silver(table: str) -> TableRef:
    return TableRef("silver", "business_systems", table)


SILVER_TABLES = [
    SilverTable(
        ref=_silver("planning_decisions"),
        inputs=_bronze("planning_applications"),
        conform=conform.conform_planning,
        description="Planning applications with their deadline (agreed extension or statutory target) and "
        "whether each determination was in time (PS2).",
        columns=conform.PLANNING_COLUMNS,
        primary_key=("application_ref",),
        merge_changed=True,
    ),
    SilverTable(
        ref=_silver("repair_jobs"),
        inputs=_bronze("housing_repairs"),
        conform=conform.conform_repairs,
        description="Housing repair jobs with completion and on-time flags.",
        columns=conform.REPAIR_COLUMNS,
        primary_key=("job_id",),
        merge_changed=True,
    ),
    SilverTable(
        ref=_silver("waste_collections"),
        inputs=_bronze("waste_collection_rounds"),
        conform=conform.conform_collections,
        description="Scheduled bin collections per round and day: the denominator of missed bins per 100,000.",
        columns=conform.COLLECTION_COLUMNS,
        primary_key=("round_day_id",),
        merge_changed=True,
    ),
    SilverTable(
        ref=_silver("missed_bins"),
        inputs=_bronze("missed_bin_reports"),
        conform=conform.conform_missed_bins,
        description="Missed-bin reports, with whether each was a valid miss.",
        columns=conform.MISSED_BIN_COLUMNS,
        primary_key=("report_id",),
        merge_changed=True,
    ),
    SilverTable(
        ref=_silver("foi_requests"),
        inputs=_bronze("foi_requests"),
        conform=conform.conform_foi,
        description="FOI/EIR requests with working days to respond (weekends and England bank holidays "
        "excluded) and whether each was answered within 20 working days.",
        columns=conform.FOI_COLUMNS,
        primary_key=("request_id",),
        merge_changed=True,
    ),
    SilverTable(
        ref=_silver("staff_in_post"),
        inputs=_bronze("employees"),
        conform=conform.conform_staff,
        description="Employees with FTE and dates in post (no personal data): the denominator of days lost per FTE.",
        columns=conform.STAFF_COLUMNS,
        primary_key=("employee_id",),
        merge_changed=True,
    ),
    SilverTable(
        ref=_silver("sickness_spells"),
        inputs=_bronze("sickness_absence", "employees"),
        conform=conform.conform_sickness,
        description="Sickness absence spells with working days and FTE days lost.",
        columns=conform.SICKNESS_COLUMNS,
        primary_key=("absence_id",),
    ),
    SilverTable(
        ref=_silver("council_tax_debit"),
        inputs=_bronze("council_tax_charges", "council_tax_accounts"),
        conform=conform.conform_council_tax_debit,
        description="Council tax net collectable debit per account and financial year (QRC4 denominator).",
        columns=conform.DEBIT_COLUMNS,
        primary_key=("charge_id",),
    ),
    SilverTable(
        ref=_silver("council_tax_receipts"),
        inputs=_bronze("council_tax_payments"),
        conform=conform.conform_council_tax_receipts,
        description="Council tax receipts (refunds negative) by the year they pay for and the day paid.",
        columns=conform.RECEIPT_COLUMNS,
        primary_key=("payment_id",),
        merge_changed=True,
    ),
    SilverTable(
        ref=_silver("service_requests"),
        inputs=_bronze("service_requests"),
        conform=conform.conform_service_requests,
        description="CRM service requests with whether each was resolved within its SLA.",
        columns=conform.SERVICE_REQUEST_COLUMNS,
        primary_key=("request_id",),
        merge_changed=True,
    ),
]
