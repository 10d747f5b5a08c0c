-- One row per KPI: definition, owner, polarity, frequency, primary theme and RAG tolerance from SPAR.net where
-- it holds them, else from kpi_catalogue_definitions; source_system is the family the lake computes it from
-- (kpi_catalogue), or spar_net for KPIs that live only in SPAR.net. A definition row that names no corporate
-- theme and has no values anywhere (e.g. a broken line of an export) is not a KPI any report can show, and is
-- left out; a real KPI without a theme stays, and fails the primary_theme_code test.
with spar_definitions as (
    select * from source('silver', 'spar_net', 'kpi_definitions')
),
local_definitions as (
    select * from ref('kpi_catalogue_definitions')
),
catalogue as (
    select * from ref('kpi_catalogue')
),
bridge as (
    select * from ref('bridge_kpi_theme')
),
spar_values as (
    select * from source('silver', 'spar_net', 'kpi_values')
),
kpis_with_values as (
    select kpi_code from spar_values
    union
    select kpi_code from catalogue
),
definitions as (
    select
        kpi_code, kpi_name, definition, unit, polarity, frequency, directorate, service,
        responsible_officer, rag_tolerance_pct, source_system
    from spar_definitions
    union all
    select
        kpi_code, kpi_name, definition, unit, polarity, frequency, directorate, service,
        responsible_officer, rag_tolerance_pct, 'catalogue' as source_system
    from local_definitions
    where kpi_code not in (select kpi_code from spar_definitions)
),
primary_themes as (
    select kpi_code, min(theme_code) as primary_theme_code
    from bridge
    where is_primary
    group by kpi_code
),
theme_counts as (
    select kpi_code, count(distinct theme_code) as themes
    from bridge
    group by kpi_code
),
final as (
    select
        d.kpi_code,
        d.kpi_name,
        d.definition,
        d.unit,
        d.polarity,
        d.frequency,
        d.directorate,
        d.service,
        d.responsible_officer,
        p.primary_theme_code,
        coalesce(n.themes, 0) > 1 as is_cross_cutting,
        d.rag_tolerance_pct,
        coalesce(c.source_system, d.source_system) as source_system
    from definitions as d
    left join catalogue as c on d.kpi_code = c.kpi_code
    left join primary_themes as p on d.kpi_code = p.kpi_code
    left join theme_counts as n on d.kpi_code = n.kpi_code
    where p.primary_theme_code is not null
        or d.kpi_code in (select kpi_code from kpis_with_values)
)
select * from final
