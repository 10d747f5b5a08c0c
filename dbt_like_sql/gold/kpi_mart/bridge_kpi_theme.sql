-- Which themes each KPI serves: its primary theme (is_primary) and any others (cross-cutting KPIs), from
-- SPAR.net's definitions, or from kpi_catalogue_definitions for KPIs SPAR.net does not know.
with spar_definitions as (
    select * from source('silver', 'spar_net', 'kpi_definitions')
),
local_definitions as (
    select * from ref('kpi_catalogue_definitions')
),
themes as (
    select * from source('silver', 'reference', 'themes')
),
spar_themes as (
    select
        kpi_code,
        primary_theme,
        unnest(themes) as theme_name
    from spar_definitions
),
spar_links as (
    select
        d.kpi_code,
        t.theme_code,
        true as is_primary
    from spar_definitions as d
    inner join themes as t on lower(trim(d.primary_theme)) = lower(trim(t.theme_name))
    union all
    select
        s.kpi_code,
        t.theme_code,
        false as is_primary
    from spar_themes as s
    inner join themes as t on lower(trim(s.theme_name)) = lower(trim(t.theme_name))
    where lower(trim(s.theme_name)) <> lower(trim(s.primary_theme))
),
local_kpis as (
    select *
    from local_definitions
    where kpi_code not in (select kpi_code from spar_definitions)
),
positions as (
    -- Up to six further themes, separated by ';'.
    select * from (values (1), (2), (3), (4), (5), (6)) as positions (position)
),
local_other_themes as (
    select
        k.kpi_code,
        k.primary_theme_code,
        split_part(k.other_theme_codes, ';', p.position) as theme_code
    from local_kpis as k
    cross join positions as p
    where k.other_theme_codes is not null
),
local_links as (
    select
        kpi_code,
        primary_theme_code as theme_code,
        true as is_primary
    from local_kpis
    union all
    select
        kpi_code,
        trim(theme_code) as theme_code,
        false as is_primary
    from local_other_themes
    where trim(theme_code) <> ''
        and trim(theme_code) <> primary_theme_code
),
final as (
    select distinct
        kpi_code,
        theme_code,
        is_primary
    from (
        select * from spar_links
        union all
        select * from local_links
    ) as links
)
select * from final
