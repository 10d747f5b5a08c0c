"""Reference data: geography lookups, the comparator list and the corporate themes with their owners."""

from kpi_lake.bronze import FileTable

FILE_TABLES = [
    FileTable(
        source="reference",
        table="ward_lookup",
        patterns=("*ward*.csv",),
        description="ONS ward to local authority district lookup, as landed.",
    ),
    FileTable(
        source="reference",
        table="la_lookup",
        patterns=("*la_lookup*.csv", "*ltla*.csv"),
        description="ONS lower-tier to upper-tier local authority lookup, as landed.",
    ),
    FileTable(
        source="reference",
        table="comparator_councils",
        patterns=("*comparator*.csv", "*cipfa*.csv"),
        description="The council's comparator group (CIPFA nearest neighbours), as landed.",
    ),
    FileTable(
        source="reference",
        table="corporate_themes",
        patterns=("*theme*.csv",),
        description="The corporate strategy's seven themes and the director who owns each, as landed.",
    ),
]
