-- Which DfE (Explore Education Statistics) figure each education KPI is: the publication (file name start),
-- the indicator column and a filter the row's filters must contain. Edit the rows (no Python) to take a
-- KPI from another published figure.
with source as (
    select * from (
        values
            -- kpi_code, publication_prefix, indicator,                      filter_match
            ('DCS201', 'ks2_attainment', 'pt_rwm_met_expected_standard', '"breakdown":"Total"'),
            ('DCS202', 'ks2_attainment', 'pt_rwm_met_expected_standard', '"breakdown":"Disadvantaged"'),
            ('DCS205', 'ks4_attainment', 'avg_att8',                     '"breakdown":"Total"'),
            ('DCS210', 'pupil_absence',  'sess_overall_percent',         '"school_type":"Total"'),
            ('DCS215', 'UD_NEETNK',      'neet_not_known_percent',       '"age":"16-17"')
    ) as indicators (kpi_code, publication_prefix, indicator, filter_match)
),
renamed as (
    select
        cast(kpi_code as varchar) as kpi_code,
        cast(publication_prefix as varchar) as publication_prefix,
        cast(indicator as varchar) as indicator,
        cast(filter_match as varchar) as filter_match
    from source
),
final as (
    select * from renamed
)
select * from final
