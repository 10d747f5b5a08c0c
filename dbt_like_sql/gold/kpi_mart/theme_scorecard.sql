-- Per theme and period, for the own council: the theme's owning director and how many of its KPIs are green,
-- amber, red, without a target, without data, improving, stable and worsening. A cross-cutting KPI counts in
-- every theme it serves (bridge_kpi_theme).
with facts as (
    select * from gold.kpi_mart.fact_kpi_value
),
geographies as (
    select * from ref('dim_geography')
),
bridge as (
    select * from ref('bridge_kpi_theme')
),
themes as (
    select * from ref('dim_theme')
),
periods as (
    select * from ref('dim_period')
),
own_facts as (
    select f.*
    from facts as f
    inner join geographies as g on f.geography_code = g.geography_code
    where g.is_own_council
),
final as (
    select
        t.theme_code,
        t.theme_name,
        t.owning_director,
        f.period_key,
        max(p.label) as period_label,
        max(p.period_type) as period_type,
        count(*) as kpi_count,
        sum(case when f.rag_status = 'green' then 1 else 0 end) as green_count,
        sum(case when f.rag_status = 'amber' then 1 else 0 end) as amber_count,
        sum(case when f.rag_status = 'red' then 1 else 0 end) as red_count,
        sum(case when f.rag_status = 'no_target' then 1 else 0 end) as no_target_count,
        sum(case when f.rag_status = 'no_data' then 1 else 0 end) as no_data_count,
        sum(case when f.direction_of_travel = 'improving' then 1 else 0 end) as improving_count,
        sum(case when f.direction_of_travel = 'stable' then 1 else 0 end) as stable_count,
        sum(case when f.direction_of_travel = 'worsening' then 1 else 0 end) as worsening_count
    from own_facts as f
    inner join bridge as b on f.kpi_code = b.kpi_code
    inner join themes as t on b.theme_code = t.theme_code
    left join periods as p on f.period_key = p.period_key
    group by t.theme_code, t.theme_name, t.owning_director, f.period_key
)
select * from final
