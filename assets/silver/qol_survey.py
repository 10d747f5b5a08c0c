"""Silver tables for the Quality of Life survey: responses without personal data, and indicator estimates."""

from assets.silver.factory import SilverTable
from kpi_lake.conform.qol_survey import (
    INDICATOR_COLUMNS,
    PERSONAL_SOURCE,
    RESPONSE_COLUMNS,
    conform_indicators,
    conform_responses,
)
from kpi_lake.tables import TableRef

RESPONSES = TableRef("silver", "qol_survey", "responses")

SILVER_TABLES = [
    SilverTable(
        ref=RESPONSES,
        inputs=(TableRef("bronze", "qol_survey", "responses"),),
        conform=conform_responses,
        description=(
            "Survey responses, one row per respondent and wave, pseudonymised: no postcode, email, free text, "
            "small-area code or respondent id (an allow-list of columns, so new personal fields never leak)."
        ),
        columns=RESPONSE_COLUMNS,
        primary_key=("respondent_key",),
        personal=PERSONAL_SOURCE,
    ),
    SilverTable(
        ref=TableRef("silver", "qol_survey", "indicators"),
        inputs=(
            RESPONSES,
            TableRef("bronze", "qol_survey", "codebook"),
            TableRef("silver", "reference", "geographies"),
        ),
        conform=conform_indicators,
        description=(
            "Survey indicators per wave for the council, each ward, each deprivation decile and each equality "
            "group: weighted %, 95% confidence limits, unweighted base; suppressed when the base is under 30."
        ),
        columns=INDICATOR_COLUMNS,
        primary_key=("indicator_code", "survey_year", "breakdown", "group_value"),
    ),
]
