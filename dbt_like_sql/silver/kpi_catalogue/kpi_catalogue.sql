-- The KPI catalogue: every KPI the lake computes itself, the family it comes from, the SQL model that gives
-- its values and the decimals SPAR.net shows it to. Edit this list (no Python) to add a computed KPI; a KPI
-- SPAR.net does not know also needs its definition in kpi_catalogue_definitions.
with source as (
    select * from (
        values
            -- kpi_code, source_system,    value_model,                        decimals
            ('BPC210',  'business_systems', 'kpi_council_tax_collection',       1),
            ('BPB530',  'business_systems', 'kpi_planning_decisions_in_time',   1),
            ('BPB531',  'business_systems', 'kpi_planning_decisions_in_time',   1),
            ('NH617',   'business_systems', 'kpi_repairs_on_time',              1),
            ('BPE442',  'business_systems', 'kpi_missed_bins',                  1),
            ('BPC352b', 'business_systems', 'kpi_foi_on_time',                  1),
            ('BCP475',  'business_systems', 'kpi_sickness_absence',             2),
            ('BPPM474', 'business_systems', 'kpi_service_requests_in_sla',      1),
            ('BPE410',  'emissions',        'kpi_emissions',                    1),
            ('BPE411',  'emissions',        'kpi_emissions',                    2),
            ('BPE412a', 'emissions',        'kpi_emissions',                    1),
            ('DCS201',  'education',        'kpi_education',                    0),
            ('DCS202',  'education',        'kpi_education',                    0),
            ('DCS205',  'education',        'kpi_education',                    1),
            ('DCS210',  'education',        'kpi_education',                    1),
            ('DCS215',  'education',        'kpi_education',                    1),
            ('BCP481',  'qol_survey',       'kpi_qol_survey',                   1),
            ('BCP482',  'qol_survey',       'kpi_qol_survey',                   1),
            ('BPPM483', 'qol_survey',       'kpi_qol_survey',                   1),
            ('BPPM484', 'qol_survey',       'kpi_qol_survey',                   1),
            ('BPE485',  'qol_survey',       'kpi_qol_survey',                   1),
            ('PH486',   'qol_survey',       'kpi_qol_survey',                   1)
    ) as catalogue (kpi_code, source_system, value_model, decimals)
),
renamed as (
    select
        cast(kpi_code as varchar) as kpi_code,
        cast(source_system as varchar) as source_system,
        cast(value_model as varchar) as value_model,
        cast(decimals as bigint) as decimals
    from source
),
final as (
    select * from renamed
)
select * from final
