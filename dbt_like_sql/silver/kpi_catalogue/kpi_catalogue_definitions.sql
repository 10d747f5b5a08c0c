-- Definitions of KPIs that SPAR.net does not know (it holds the definitions, owners, themes and targets of
-- the rest). One literal row per KPI; theme codes are those of silver/reference/themes, other themes
-- separated by ';'. Edit this list (no Python) to declare a new KPI.
with source as (
    select * from (
        values
            (
                'DCS202',
                'Disadvantaged pupils meeting the expected standard in reading, writing and maths at key stage 2',
                'Percentage of disadvantaged pupils at the end of key stage 2 in state-funded schools meeting the expected standard in reading, writing and maths (DfE pt_rwm_met_expected_standard, breakdown Disadvantaged). Declared in the lake catalogue; not reported in SPAR.net.',
                '%',
                'higher_is_better',
                'academic year',
                'Children and Education',
                'School Improvement',
                'Head of School Improvement',
                'CYP',
                'ECS',
                5.0
            )
    ) as definitions (
        kpi_code,
        kpi_name,
        definition,
        unit,
        polarity,
        frequency,
        directorate,
        service,
        responsible_officer,
        primary_theme_code,
        other_theme_codes,
        rag_tolerance_pct
    )
),
renamed as (
    select
        cast(kpi_code as varchar) as kpi_code,
        cast(kpi_name as varchar) as kpi_name,
        cast(definition as varchar) as definition,
        cast(unit as varchar) as unit,
        cast(polarity as varchar) as polarity,
        cast(frequency as varchar) as frequency,
        cast(directorate as varchar) as directorate,
        cast(service as varchar) as service,
        cast(responsible_officer as varchar) as responsible_officer,
        cast(primary_theme_code as varchar) as primary_theme_code,
        cast(other_theme_codes as varchar) as other_theme_codes,
        cast(rag_tolerance_pct as double) as rag_tolerance_pct
    from source
),
final as (
    select * from renamed
)
select * from final
