"""The council's annual Quality of Life survey: microdata per wave and the questionnaire codebook.

Bronze is the only layer that holds the survey's personal fields (postcode, email, free text); silver
pseudonymises and drops them.
"""

from kpi_lake.bronze import FileTable

FILE_TABLES = [
    FileTable(
        source="qol_survey",
        table="responses",
        patterns=("*.csv", "*.xlsx"),
        exclude=("*codebook*",),
        required_columns=("respondent_id", "survey_year", "weight", "ward_code"),
        description=(
            "Quality of Life survey microdata, one row per respondent per wave, as landed. Holds personal data "
            "(postcode, email, free text): restricted to bronze."
        ),
    ),
    FileTable(
        source="qol_survey",
        table="codebook",
        patterns=("*codebook*.csv", "*codebook*.xlsx"),
        required_columns=("question", "indicator_name", "positive_answers"),
        description="Survey questionnaire codebook: question, wording, indicator and the answers that count.",
    ),
]
