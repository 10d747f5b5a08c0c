"""Business-system tables → conformed operational facts with the flags the KPIs count.

Rows deleted in the source (soft-deleted, ``deleted_at`` set, or gone: ``_deleted_in_source``) are not
facts: silver leaves them out (bronze keeps them). Rows whose dates contradict each other (decided before
received, completed before reported) are quarantined with the reason. Working days exclude weekends and
England's bank holidays.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import polars as pl

from kpi_lake.conform import Conformed, require_columns, split_by_checks
from kpi_lake.periods import financial_quarter_key

FOI_DEADLINE_WORKING_DAYS = 20
COMMON = {"is_deleted": "Never true in silver: deleted rows are left in bronze"}


@cache
def england_bank_holidays(first_year: int = 2015, last_year: int = 2035) -> tuple[dt.date, ...]:
    """England and Wales bank holidays (the ``holidays`` package), for working-day counts."""
    import holidays  # imported here: only the FOI asset needs it

    calendar = holidays.country_holidays("GB", subdiv="ENG", years=range(first_year, last_year + 1))
    return tuple(sorted(calendar))


def _live(frame: pl.LazyFrame) -> pl.LazyFrame:
    names = frame.collect_schema().names()
    keep = pl.lit(True)
    if "deleted_at" in names:
        keep = keep & pl.col("deleted_at").is_null()
    if "_deleted_in_source" in names:
        keep = keep & ~pl.col("_deleted_in_source").fill_null(False)
    return frame.filter(keep)


def _financial_year_key(column: str) -> pl.Expr:
    """ "2024/25" → "FY2024-25" (null for anything else)."""
    parts = pl.col(column).str.strip_chars().str.extract_groups(r"^(\d{4})[/-](\d{2})$")
    first, second = parts.struct.field("1").cast(pl.Int32), parts.struct.field("2").cast(pl.Int32)
    return pl.when((first + 1) % 100 == second).then(pl.format("FY{}-{}", first, parts.struct.field("2")))


def _split(
    frame: pl.DataFrame, checks: list[tuple[pl.Expr, str, str]], *, source_table: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows passing every check, and quarantine rows for the first check each failing row fails."""
    if "_source_file" not in frame.columns:
        frame = frame.with_columns(pl.lit(source_table).alias("_source_file"))
    good, bad = split_by_checks(frame, checks, source_table=source_table)
    return good.drop("_source_file"), bad


def _bronze(table: str) -> str:
    return f"bronze/business_systems/{table}"


# ---- planning ---------------------------------------------------------------------------------------------
PLANNING_COLUMNS = {
    "application_ref": "Planning application reference",
    "ward_code": "Ward of the site",
    "development_category": "major | minor | other (PS2 categories)",
    "application_type": "Type of application",
    "received_on": "Date received",
    "valid_on": "Date the application was made valid (the clock starts)",
    "target_date": "Statutory determination date: 13 weeks for majors, 8 for others",
    "extension_agreed_to": "Extension of time agreed with the applicant, if any",
    "deadline": "The date that counts: the agreed extension, else the target date",
    "decided_on": "Decision date; null while undecided",
    "decision": "Granted | Refused | Withdrawn | null",
    "is_determined": "Granted or refused (withdrawn applications are not determinations)",
    "decided_in_time": "Determined on or before the deadline (PS2 'in 13/8 weeks or agreed time')",
    "weeks_to_decision": "Weeks from valid to decision",
    "decision_quarter": "Financial quarter of the decision (FY2024-25-Q2)",
}


def conform_planning(planning_applications: pl.LazyFrame | None) -> Conformed:
    if planning_applications is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in PLANNING_COLUMNS}))
    require_columns(planning_applications, ["application_ref", "received_on", "decided_on"], what="planning")
    frame = _live(planning_applications).collect()
    good, bad = _split(
        frame,
        [
            (pl.col("decided_on") < pl.col("received_on"), "decided_on", "decided before it was received"),
            (pl.col("valid_on") < pl.col("received_on"), "valid_on", "made valid before it was received"),
        ],
        source_table=_bronze("planning_applications"),
    )
    rows = good.with_columns(
        pl.coalesce("extension_agreed_to", "target_date").alias("deadline"),
        pl.col("decision").is_in(["Granted", "Refused"]).fill_null(False).alias("is_determined"),
    ).with_columns(
        (pl.col("is_determined") & (pl.col("decided_on") <= pl.col("deadline")))
        .fill_null(False)
        .alias("decided_in_time"),
        ((pl.col("decided_on") - pl.col("valid_on")).dt.total_days() / 7).alias("weeks_to_decision"),
        financial_quarter_key("decided_on").alias("decision_quarter"),
    )
    return Conformed(rows=rows.select(list(PLANNING_COLUMNS)), quarantine=bad)


# ---- housing repairs --------------------------------------------------------------------------------------
REPAIR_COLUMNS = {
    "job_id": "Repair job id",
    "property_ref": "Council property reference",
    "ward_code": "Ward",
    "priority": "emergency | urgent | routine",
    "trade": "Trade",
    "reported_at": "When the repair was reported",
    "target_completion_at": "When it should be completed by (priority's target)",
    "completed_at": "When it was completed; null while open",
    "status": "Completed | Open | Cancelled",
    "is_completed": "Status is Completed",
    "completed_on_time": "Completed on or before the target",
    "days_to_complete": "Days from report to completion",
    "completion_quarter": "Financial quarter of completion",
}


def conform_repairs(housing_repairs: pl.LazyFrame | None) -> Conformed:
    if housing_repairs is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in REPAIR_COLUMNS}))
    require_columns(
        housing_repairs, ["job_id", "reported_at", "completed_at", "status"], what="housing repairs"
    )
    frame = _live(housing_repairs).collect()
    good, bad = _split(
        frame,
        [
            (
                pl.col("completed_at") < pl.col("reported_at"),
                "completed_at",
                "completed before it was reported",
            )
        ],
        source_table=_bronze("housing_repairs"),
    )
    rows = good.with_columns(
        (pl.col("status") == "Completed").alias("is_completed"),
    ).with_columns(
        (pl.col("is_completed") & (pl.col("completed_at") <= pl.col("target_completion_at")))
        .fill_null(False)
        .alias("completed_on_time"),
        ((pl.col("completed_at") - pl.col("reported_at")).dt.total_seconds() / 86_400).alias(
            "days_to_complete"
        ),
        financial_quarter_key("completed_at").alias("completion_quarter"),
    )
    return Conformed(rows=rows.select(list(REPAIR_COLUMNS)), quarantine=bad)


# ---- waste ------------------------------------------------------------------------------------------------
COLLECTION_COLUMNS = {
    "round_day_id": "One round on one day",
    "round_code": "Collection round",
    "collection_date": "Day of collection",
    "service": "refuse | recycling | garden",
    "scheduled_collections": "Bins scheduled for collection that day on that round",
    "collection_quarter": "Financial quarter",
}
MISSED_BIN_COLUMNS = {
    "report_id": "Missed-bin report id",
    "ward_code": "Ward",
    "collection_date": "The collection that was missed",
    "reported_at": "When the miss was reported",
    "service": "refuse | recycling | garden",
    "is_valid": "The crew confirms the bin was presented and missed (invalid reports do not count)",
    "resolved_at": "When the bin was collected after all",
    "collection_quarter": "Financial quarter of the missed collection",
}


def conform_collections(waste_collection_rounds: pl.LazyFrame | None) -> Conformed:
    if waste_collection_rounds is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in COLLECTION_COLUMNS}))
    frame = _live(waste_collection_rounds).collect()
    good, bad = _split(
        frame,
        [(pl.col("scheduled_collections") < 0, "scheduled_collections", "negative number of collections")],
        source_table=_bronze("waste_collection_rounds"),
    )
    rows = good.with_columns(financial_quarter_key("collection_date").alias("collection_quarter"))
    return Conformed(rows=rows.select(list(COLLECTION_COLUMNS)), quarantine=bad)


def conform_missed_bins(missed_bin_reports: pl.LazyFrame | None) -> Conformed:
    if missed_bin_reports is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in MISSED_BIN_COLUMNS}))
    frame = _live(missed_bin_reports).collect()
    good, bad = _split(
        frame,
        [
            (
                pl.col("reported_at").cast(pl.Date) < pl.col("collection_date"),
                "reported_at",
                "reported before the collection day",
            )
        ],
        source_table=_bronze("missed_bin_reports"),
    )
    rows = good.with_columns(financial_quarter_key("collection_date").alias("collection_quarter"))
    return Conformed(rows=rows.select(list(MISSED_BIN_COLUMNS)), quarantine=bad)


# ---- FOI --------------------------------------------------------------------------------------------------
FOI_COLUMNS = {
    "request_id": "FOI/EIR request id",
    "directorate": "Directorate that answered",
    "received_on": "Date received",
    "responded_on": "Date answered; null while open",
    "outcome": "Outcome; Withdrawn requests do not count",
    "exemption": "Exemption applied, if any",
    "is_withdrawn": "The requester withdrew it",
    "working_days_to_respond": "Working days after receipt up to the response (weekends and England bank holidays excluded)",
    "answered_within_20_working_days": "Answered within 20 working days (FOI Act s.10)",
    "received_quarter": "Financial quarter of receipt",
}


def conform_foi(foi_requests: pl.LazyFrame | None) -> Conformed:
    if foi_requests is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in FOI_COLUMNS}))
    require_columns(foi_requests, ["request_id", "received_on", "responded_on"], what="FOI requests")
    frame = _live(foi_requests).collect()
    good, bad = _split(
        frame,
        [(pl.col("responded_on") < pl.col("received_on"), "responded_on", "answered before it was received")],
        source_table=_bronze("foi_requests"),
    )
    working_days = pl.business_day_count(
        pl.col("received_on") + pl.duration(days=1),
        pl.col("responded_on") + pl.duration(days=1),
        holidays=list(england_bank_holidays()),
    )
    rows = good.with_columns(
        (pl.col("outcome") == "Withdrawn").fill_null(False).alias("is_withdrawn"),
        working_days.alias("working_days_to_respond"),
        financial_quarter_key("received_on").alias("received_quarter"),
    ).with_columns(
        (pl.col("working_days_to_respond") <= FOI_DEADLINE_WORKING_DAYS)
        .fill_null(False)
        .alias("answered_within_20_working_days")
    )
    return Conformed(rows=rows.select(list(FOI_COLUMNS)), quarantine=bad)


# ---- HR ---------------------------------------------------------------------------------------------------
SICKNESS_COLUMNS = {
    "absence_id": "Sickness spell id",
    "employee_id": "Employee (pseudonymous number from HR; no names)",
    "directorate": "Employee's directorate",
    "first_day": "First day of absence",
    "last_day": "Last day of absence",
    "working_days_lost": "Working days lost in the spell",
    "fte": "Employee's full-time equivalent",
    "fte_days_lost": "Working days lost weighted by FTE",
    "reason_category": "Reason category",
    "start_quarter": "Financial quarter the spell started",
}
STAFF_COLUMNS = {
    "employee_id": "Employee (pseudonymous number from HR)",
    "directorate": "Directorate",
    "fte": "Full-time equivalent",
    "start_date": "Start date",
    "leave_date": "Leaving date; null while in post",
}


def conform_staff(employees: pl.LazyFrame | None) -> Conformed:
    if employees is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in STAFF_COLUMNS}))
    frame = _live(employees).collect()
    good, bad = _split(
        frame,
        [
            (~pl.col("fte").is_between(0.01, 1.5), "fte", "FTE is not between 0.01 and 1.5"),
            (pl.col("leave_date") < pl.col("start_date"), "leave_date", "left before starting"),
        ],
        source_table=_bronze("employees"),
    )
    return Conformed(rows=good.select(list(STAFF_COLUMNS)), quarantine=bad)


def conform_sickness(sickness_absence: pl.LazyFrame | None, employees: pl.LazyFrame | None) -> Conformed:
    if sickness_absence is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in SICKNESS_COLUMNS}))
    frame = _live(sickness_absence).collect()
    staff = (
        _live(employees).select("employee_id", "directorate", "fte").collect()
        if employees is not None
        else pl.DataFrame(schema={"employee_id": pl.Int64, "directorate": pl.String, "fte": pl.Float64})
    )
    frame = frame.join(staff, on="employee_id", how="left")
    good, bad = _split(
        frame,
        [
            (pl.col("last_day") < pl.col("first_day"), "last_day", "spell ends before it starts"),
            (pl.col("working_days_lost") < 0, "working_days_lost", "negative days lost"),
            (pl.col("fte").is_null(), "employee_id", "no such employee in HR"),
        ],
        source_table=_bronze("sickness_absence"),
    )
    rows = good.with_columns(
        (pl.col("working_days_lost") * pl.col("fte")).alias("fte_days_lost"),
        financial_quarter_key("first_day").alias("start_quarter"),
    )
    return Conformed(rows=rows.select(list(SICKNESS_COLUMNS)), quarantine=bad)


# ---- council tax ------------------------------------------------------------------------------------------
DEBIT_COLUMNS = {
    "charge_id": "Council tax charge id",
    "account_ref": "Council tax account",
    "ward_code": "Ward of the property",
    "financial_year": "Financial year as the system writes it (2024/25)",
    "period_key": "Financial year key (FY2024-25)",
    "band": "Valuation band A-H",
    "billed_on": "Date billed",
    "net_collectable_debit": "Net collectable debit after discounts and reductions (£)",
}
RECEIPT_COLUMNS = {
    "payment_id": "Payment id",
    "account_ref": "Council tax account",
    "financial_year": "The financial year the payment is for",
    "period_key": "Financial year key of the year the payment is for",
    "paid_on": "Date paid",
    "paid_quarter": "Financial quarter of payment",
    "amount": "Amount (£); refunds are negative",
    "method": "Payment method",
}


def conform_council_tax_debit(
    council_tax_charges: pl.LazyFrame | None, council_tax_accounts: pl.LazyFrame | None
) -> Conformed:
    if council_tax_charges is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in DEBIT_COLUMNS}))
    frame = _live(council_tax_charges).collect()
    if council_tax_accounts is not None:
        frame = frame.join(
            council_tax_accounts.select("account_ref", "ward_code").collect(), on="account_ref", how="left"
        )
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("ward_code"))
    frame = frame.with_columns(_financial_year_key("financial_year").alias("period_key"))
    good, bad = _split(
        frame,
        [
            (
                pl.col("period_key").is_null(),
                "financial_year",
                "financial year not understood (expected 2024/25)",
            ),
            (pl.col("net_collectable_debit") < 0, "net_collectable_debit", "negative net collectable debit"),
        ],
        source_table=_bronze("council_tax_charges"),
    )
    return Conformed(rows=good.select(list(DEBIT_COLUMNS)), quarantine=bad)


def conform_council_tax_receipts(council_tax_payments: pl.LazyFrame | None) -> Conformed:
    if council_tax_payments is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in RECEIPT_COLUMNS}))
    frame = (
        _live(council_tax_payments)
        .collect()
        .with_columns(
            _financial_year_key("financial_year").alias("period_key"),
            financial_quarter_key("paid_on").alias("paid_quarter"),
        )
    )
    good, bad = _split(
        frame,
        [
            (
                pl.col("period_key").is_null(),
                "financial_year",
                "financial year not understood (expected 2024/25)",
            )
        ],
        source_table=_bronze("council_tax_payments"),
    )
    return Conformed(rows=good.select(list(RECEIPT_COLUMNS)), quarantine=bad)


# ---- CRM --------------------------------------------------------------------------------------------------
SERVICE_REQUEST_COLUMNS = {
    "request_id": "CRM service request id",
    "channel": "How it came in (web, phone, app, email, face to face)",
    "service": "Service",
    "category": "Request category",
    "ward_code": "Ward",
    "created_at": "When it was raised",
    "closed_at": "When it was closed; null while open",
    "sla_days": "Service level: days allowed",
    "status": "Open | Closed | Cancelled",
    "is_closed": "Status is Closed",
    "resolved_within_sla": "Closed within sla_days of being raised",
    "closed_quarter": "Financial quarter of closure",
}


def conform_service_requests(service_requests: pl.LazyFrame | None) -> Conformed:
    if service_requests is None:
        return Conformed(rows=pl.DataFrame(schema={c: pl.String for c in SERVICE_REQUEST_COLUMNS}))
    frame = _live(service_requests).collect()
    good, bad = _split(
        frame,
        [
            (pl.col("closed_at") < pl.col("created_at"), "closed_at", "closed before it was raised"),
            (pl.col("sla_days") < 0, "sla_days", "negative SLA"),
        ],
        source_table=_bronze("service_requests"),
    )
    rows = good.with_columns((pl.col("status") == "Closed").alias("is_closed")).with_columns(
        (
            pl.col("is_closed")
            & (pl.col("closed_at") <= pl.col("created_at") + pl.duration(days=pl.col("sla_days")))
        )
        .fill_null(False)
        .alias("resolved_within_sla"),
        financial_quarter_key("closed_at").alias("closed_quarter"),
    )
    return Conformed(rows=rows.select(list(SERVICE_REQUEST_COLUMNS)), quarantine=bad)
